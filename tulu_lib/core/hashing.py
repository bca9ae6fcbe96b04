"""Every cache key, and the hashes they are made of: params sections, rows, files, model folders
and the code a stage runs.

The keys: :func:`stage_key` (a workbook stage: its params sections, upstream stages, code and every
file it reads), :func:`arm_key` (an ablation arm), :func:`eval_key` (a model's saved evaluation
items) and :func:`reference_key` (DPO's reference log-probs). A key is the hash of everything the
cached result depends on; any change gives a new key, and the result is computed again.

Usage::

    section_hash({"sft": p.to_dict()["sft"]})        # a stable 16-hex key of any JSON-able value
    rows_fingerprint(dataset)                         # a dataset's content, in order
    output_digests(run_dir, ["tables", "artifacts/02_sft"])   # path -> digest of every file
    file_digest(path)                                 # a file's whole content, hashed once per process
    code_hash([notebook, *module_closure(notebook)])  # the code a notebook runs
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any


def section_hash(obj: Any) -> str:
    """A stable hash of a JSON-able value (dicts by sorted keys; other objects by ``str``)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def rows_fingerprint(rows: Iterable[dict]) -> str:
    """A content hash of rows (a dataset, in order): every field, keys sorted."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def folder_fingerprint(path: Path) -> str:
    """A model folder's identity without reading its weights: ``config.json`` and each
    ``*.safetensors`` file's name, size and modification time."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        stat = weights.stat()
        h.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def output_digests(run_dir: Path, outputs: list[str]) -> dict[str, str]:
    """Each file under a stage's outputs (paths relative to ``run_dir``) → its :func:`file_digest`."""
    files = sorted(p for rel in outputs if (root := run_dir / rel).exists()
                   for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file())
    return {p.relative_to(run_dir).as_posix(): file_digest(p) for p in files}


def file_sizes(run_dir: Path, files: Iterable[str]) -> dict[str, int]:
    """Each file (a path relative to ``run_dir``) → its size in bytes: what :func:`changed_output`
    compares before hashing anything."""
    return {rel: (run_dir / rel).stat().st_size for rel in files}


# (path, device, inode, size, mtime, ctime) -> digest: a file is hashed once per process while none
# of these change (a write changes its ctime even where its mtime is set back) ...
_DIGESTS: dict[tuple, str] = {}
# ... once its ctime is this old: the clock that stamps it ticks coarsely (a few ms), so a write just
# after a hash could leave every stat field as it was (git's "racy clean" case): rehash until then
SETTLED_NS = 2_000_000_000


def file_digest(path: Path) -> str:
    """A file's content hash: 16 hex of the SHA-256 of its size and every byte, streamed (0.5–1 GB/s
    on this project's 2-core CPU machine: a 16 GB 8B checkpoint takes 16–35 s). Computed once per
    process for a file whose inode, size, mtime and ctime are unchanged since (and were settled).
    Usage: ``file_digest(folder / "model.safetensors")``."""
    path = Path(path)
    before = path.stat()
    memo = (str(path.resolve()), before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns,
            before.st_ctime_ns)
    if (digest := _DIGESTS.get(memo)) is not None:
        return digest
    settled = time.time_ns() - before.st_ctime_ns > SETTLED_NS
    with open(path, "rb") as fh:
        sized = lambda: hashlib.sha256(str(before.st_size).encode())  # noqa: E731
        digest = hashlib.file_digest(fh, sized).hexdigest()[:16]
    after = path.stat()
    if settled and (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == memo[3:]:  # not written since
        _DIGESTS[memo] = digest
    return digest


def changed_output(run_dir: Path, recorded: dict[str, str],
                   sizes: dict[str, int] | None = None) -> str | None:
    """The first recorded output file that is missing or no longer hashes as recorded, and how:
    its size first (``sizes``, where recorded: no hashing when it differs), then its whole content
    (:func:`file_digest`). Files added since are not outputs (datasets' ``cache-*.arrow`` next to a
    dataset a later stage mapped, say).
    Usage: ``changed_output(run_dir, rec["output_files"], rec.get("output_sizes"))``."""
    sizes = sizes or {}
    for rel, digest in recorded.items():
        path = run_dir / rel
        if not path.is_file():
            return f"{rel} is missing"
        if (rel in sizes and path.stat().st_size != sizes[rel]) or file_digest(path) != digest:
            return f"{rel} changed"
    return None


# the evaluation benchmark behind each rlvr.select_on domain, first listed in eval.benchmarks first
# (MATH: the paper's 5,000-problem set where it runs, else MATH-500); here because 04_rlvr's key needs it
SELECT_BENCHMARKS = {"gsm8k": ("gsm8k",), "MATH": ("math", "math500"), "ifeval": ("ifeval",)}


def selection_benchmarks(resolved: dict) -> dict[str, str]:
    """Each ``rlvr.select_on`` domain → the ``eval.benchmarks`` entry that scores it under
    ``rlvr.select_with: eval`` (a resolved params dict); ``ValueError`` names a missing one."""
    out = {}
    for domain in resolved["rlvr"]["select_on"]:
        found = [b for b in SELECT_BENCHMARKS[domain] if b in resolved["eval"]["benchmarks"]]
        if not found:
            raise ValueError(f"rlvr.select_with: eval scores {domain} with eval.benchmarks "
                             f"{' or '.join(SELECT_BENCHMARKS[domain])}: list one, or select on the "
                             "held-out training prompts (rlvr.select_with: held_out)")
        out[domain] = found[0]
    return out


def section_view(resolved: dict, section: str):
    """A params section for a stage's cache key, or a narrower view of one: ``eval.ablation``
    is what ablation checkpoints are scored with, so tuning the other benchmarks' limits for
    05_eval does not retrain 02–04 (the vLLM engine options are in it: 03_dpo's synthesis and
    every ablation score generate through that engine); ``eval.selection`` is what 04_rlvr scores
    its checkpoints with under ``rlvr.select_with: eval`` (None otherwise)."""
    if section in ("eval.ablation", "eval.selection"):
        e = resolved["eval"]
        if section == "eval.ablation":
            names = e["ablation_benchmarks"]
        elif resolved["rlvr"]["select_with"] == "eval":  # 04_rlvr scores its checkpoints as 05_eval does
            names = list(selection_benchmarks(resolved).values())
        else:
            return None
        return {"benchmarks": {b: e["benchmarks"][b] for b in names},
                **{k: e[k] for k in ("backend", "max_new_tokens", "batch_size", "vllm")}}
    return resolved[section]


def scoring_view(resolved: dict) -> dict:
    """What an ablation arm is scored with (``eval.ablation`` of :func:`section_view`)."""
    return section_view(resolved, "eval.ablation")


def arm_key(**parts: Any) -> str:
    """An ablation arm's key (:func:`tulu_lib.ablations.arms.arm_key` names the parts): its stage's
    params section and launch, the seed, the model, its scoring, its start checkpoint and its rows."""
    return section_hash({"arm": parts})


def eval_key(model: str, eval_section: dict, tag: str = "") -> str:
    """The key of a model's saved evaluation items: the model's fingerprint, the eval params and a
    tag (``card``: the model's own chat template). ``eval.checkpoints`` (which models to score) is
    not part of it: a model's items do not depend on the other models named beside it."""
    section = {k: v for k, v in eval_section.items() if k != "checkpoints"}
    return section_hash({"model": model, "eval": section, **({"tag": tag} if tag else {})})


def reference_key(parts: dict) -> str:
    """DPO's reference log-prob cache key (:class:`tulu_lib.train.dpo.CacheKey` names the parts:
    the reference model, the scored rows, the chat template, tokenizer, max_length, dtype, TRL)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


PACKAGE = Path(__file__).resolve().parents[1]  # tulu_lib/


def _module_file(name: str) -> Path | None:
    """The file of a ``tulu_lib`` module (``pkg/__init__.py`` for a package), or None."""
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else \
        path / "__init__.py" if (path / "__init__.py").is_file() else None


def module_closure(source: Path, exclude: Collection[str] = ()) -> list[Path]:
    """The ``tulu_lib`` module files a Python file imports, directly or through one another, read
    from their import statements (every ``from tulu_lib... import`` and ``import tulu_lib...``,
    wherever it stands), without the modules named in ``exclude`` (dotted names) and what only
    they import."""
    found: dict[str, Path] = {}
    todo = [source]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tulu_lib"):
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("tulu_lib")]
            for name in names:
                path = _module_file(name)
                if path is None or name in exclude or name in found or path.name == "__init__.py":
                    continue
                found[name] = path
                todo.append(path)
    return sorted(found.values())


def module_closure_of(modules: Iterable[str]) -> list[Path]:
    """The files of ``modules`` (dotted names) and of the ``tulu_lib`` modules they import."""
    files = sorted({path for name in modules if (path := _module_file(name)) is not None})
    return sorted({*files, *(p for f in files for p in module_closure(f))})


def code_hash(files: Iterable[Path]) -> str:
    """A hash of source files (their names relative to the package and their bytes)."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() if not path.is_relative_to(PACKAGE) else
                 path.relative_to(PACKAGE).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def read_digests(paths: Iterable[Path], root: Path) -> dict[str, str]:
    """Each file a computation reads -> its digest (:func:`file_digest`; a folder, such as a model
    checkpoint: :func:`folder_fingerprint` when it holds a ``config.json``, else every file in it),
    keyed by its path relative to ``root`` where it lies under it."""
    out = {}
    for path in sorted(set(paths)):
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if path.is_file():
            out[name] = file_digest(path)
        elif (path / "config.json").is_file():
            out[name] = folder_fingerprint(path)
        elif path.is_dir():
            out[name] = section_hash({p.relative_to(path).as_posix(): file_digest(p)
                                      for p in sorted(path.rglob("*")) if p.is_file()})
        else:
            out[name] = "missing"
    return out


def stage_key(sections: dict, upstream: dict, code: str, reads: dict[str, str]) -> str:
    """A workbook stage's key: the params sections it reads, each upstream stage's key and outputs
    hash, the code it runs (:func:`code_hash`) and every file it reads (:func:`read_digests`)."""
    return section_hash({"sections": sections, "upstream": upstream, "code": code, "reads": reads})
