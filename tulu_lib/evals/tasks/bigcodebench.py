"""BigCodeBench-Hard (the Tülu 3 unseen suite's code benchmark): 0-shot instruct prompt in chat
format, pass@1 greedy, each task's unittest run in the sandbox.

Settings: OLMES ``bigcodebench_hard::tulu`` (suite ``tulu_3_unseen``): ``task_name``
``bigcodebench_hard``, ``use_chat_format`` True, ``prompt_variant`` ``instruct``; the task's
defaults (``oe_eval/tasks/oe_eval_tasks/codex_bigcodebench.py``): hub ``bigcode/bigcodebench-hard``
split ``v0.1.2`` (``BCB_VERSION``), greedy, ``max_gen_toks`` 1280, pass@1,
``calibrate_code`` True. The user turn is OLMES's ``doc_to_text`` (BigCodeBench's own instruction
prefix, then ``instruct_prompt``). OLMES also prefills the reply with BigCodeBench's response
prefix ending in ```` ```python ````; a :class:`~tulu_lib.generation.types.Generator` cannot
prefill, so the reply's first fenced block stands for that continuation (OLMES's stop
```` \\n```\\n ```` is left out for the same reason: without the prefill it would end a reply at its
opening fence; its other stop strings are kept).

Scorer: BigCodeBench's (``bigcodebench`` 0.2.5 on PyPI, ``sanitize.py`` and
``eval/__init__.py``), re-implemented here: the package ships no data (it downloads the hub split)
and its checker (``untrusted_check``) forks an unsandboxed process that ``exec``s the model's code,
and needs ``tree_sitter`` (not installed). So: the code is sanitized as ``sanitize(code,
entrypoint)`` does (the longest parsable span, then the imports and the definitions the entry
point reaches, with ``ast`` in place of tree-sitter), calibrated (``code_prompt + "\\n    pass\\n"``
before it, ``calibrate_code``), and run with the task's ``test`` as ``unsafe_execute`` does (one
``__test__`` module, ``TestLoader().loadTestsFromTestCase(TestCases)``, pass iff no failure and no
error; TZ=UTC, one BLAS thread, I/O swallowed; failures recorded by their message, and
``traceback.clear_frames`` a no-op, so unittest walks no frame into the sandbox's frame guard)
inside the sandbox
(:func:`tulu_lib.generation.sandbox.run_program`: 240 s, BigCodeBench's ``TIMEOUT_LIMIT``; 8 GiB
per process, below its 30 GiB; 16 extra processes). The tests run in the program's own process,
as in BigCodeBench, so the verdict is the program's exit status: the sandbox contains what the
code does, it does not guard this verdict against code that forges it.

Not scorable here (skipped and counted, never scored 0): a task whose modules (``libs``, the
imports of ``code_prompt`` and of ``test``) cannot be imported in the sandbox, probed there once
per module; the reason names the module. The sandboxed interpreter also sees this environment's
site-packages when it is the same Python version (the sandbox may run the system python). A
failure caused by the sandbox's in-process guard (its message says "blocked by the sandbox", or
``import ssl`` failing on its socket stub) is raised as :class:`SandboxLimit`: a counted scorer
error, not a 0.

Usage::

    BIGCODEBENCH_HARD.load("bigcode/bigcodebench-hard")      # or a local .jsonl in its schema
    BIGCODEBENCH_HARD.score(row, "```python\\n" + row["code_prompt"] + row["canonical_solution"] + "```")
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterable

from tulu_lib.evals.bounded import in_process
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.generation.sandbox import SandboxUnavailable, run_program

# BigCodeBench's ``make_raw_chat_prompt`` instruction prefix, as OLMES's ``doc_to_text`` uses it
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem "
                      "in a markdown code block:")
# OLMES ``chat_overrides.generation_kwargs.stop_sequences`` without "\n```\n" (see the docstring)
STOP = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
TIMEOUT_S = 240.0  # bigcodebench.eval.utils.TIMEOUT_LIMIT
MEMORY_MB = 8192
MAX_PROCESSES = 16
SANDBOX_MARKERS = ("blocked by the sandbox", "argument 'code' must be code, not str")


class SandboxLimit(RuntimeError):
    """The task failed on the sandbox's in-process guard, not on the model's code."""


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        value = ast.literal_eval(value) if value.strip().startswith("[") else [value]
    return [str(v) for v in value or ()]


def _imports(code: str) -> list[str]:
    """The absolute modules ``code`` imports, in order (none when it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [m for m in found if m != "__future__"]


def convert(row: dict, i: int) -> dict:
    """A hub row (``bigcode/bigcodebench-hard``) -> the row schema; ``required``: the modules the
    task's prompt and tests import (its ``libs`` first)."""
    required = [*_as_list(row.get("libs")), *_imports(row["code_prompt"]), *_imports(row["test"])]
    return {"id": row["task_id"], "prompt": row["instruct_prompt"], "task_id": row["task_id"],
            "instruct_prompt": row["instruct_prompt"], "complete_prompt": row.get("complete_prompt", ""),
            "code_prompt": row["code_prompt"], "canonical_solution": row.get("canonical_solution", ""),
            "test": row["test"], "entry_point": row["entry_point"],
            "libs": _as_list(row.get("libs")), "required": list(dict.fromkeys(required))}


def prompt(row: dict, shots: int) -> list[dict]:
    """OLMES ``doc_to_text`` for the ``instruct`` variant, as the user turn."""
    return [{"role": "user", "content": f"{INSTRUCTION_PREFIX}\n{row['instruct_prompt'].strip()}\n"}]


# --- BigCodeBench's sanitizer (bigcodebench/sanitize.py, syncheck.py), on ``ast`` ---------------


def syntax_check(code: str) -> bool:
    """``syncheck.syntax_check``: ``ast.parse`` succeeds (also False where it raises ValueError or
    RecursionError, on which BigCodeBench's would crash)."""
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError, RecursionError):
        return False
    return True


def code_extract(text: str) -> str:
    """``sanitize.code_extract``: the span of lines (two lines at least) that parses and has the
    most non-blank lines, the first such in (start, end) order; the first line when none does.
    Same result as BigCodeBench's double loop; it skips parsing spans that cannot win, and takes
    the whole text at once when it parses (then the span from the first line to the last
    non-blank one wins)."""
    lines = text.split("\n")
    filled = [0]
    for line in lines:
        filled.append(filled[-1] + bool(line.strip()))
    total = filled[-1]
    last = max((k for k, line in enumerate(lines) if line.strip()), default=0)
    if total and last >= 1 and syntax_check(text):
        return "\n".join(lines[:last + 1])
    best, best_len = (0, 0), 0
    for i in range(len(lines)):
        if filled[-1] - filled[i] <= best_len:
            continue
        for j in range(i + 1, len(lines)):
            count = filled[j + 1] - filled[i]
            if count > best_len and syntax_check("\n".join(lines[i:j + 1])):
                best, best_len = (i, j), count
    return "\n".join(lines[best[0]:best[1] + 1])


def _identifiers(node: ast.AST) -> set[str]:
    """The identifiers inside ``node`` (tree-sitter's ``identifier`` leaves: names, attributes,
    parameters, keywords, aliases)."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.keyword) and sub.arg:
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, ast.alias):
            names.update(n.split(".")[0] for n in (sub.name, sub.asname) if n)
        elif isinstance(sub, (ast.Global, ast.Nonlocal)):
            names.update(sub.names)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _reachable(entrypoint: str, deps: dict[str, set[str]]) -> set[str]:
    """``get_function_dependency``: the definitions reachable from ``entrypoint``."""
    queue, seen = [entrypoint], {entrypoint}
    while queue:
        for name in deps.get(queue.pop(0), ()):
            if name not in seen:
                seen.add(name)
                queue.append(name)
    return seen


def extract_target_code_or_empty(code: str, entrypoint: str) -> str:
    """``sanitize.extract_target_code_or_empty``: the top-level imports, then the top-level
    classes, functions and assignments the entry point reaches (first definition of a name wins;
    decorated definitions and ``from __future__`` imports are dropped, as tree-sitter's node types
    there drop them), then top-level lines naming the entry point at the end cut off."""
    code = code_extract(code.strip())
    try:
        body = ast.parse(code).body
    except (SyntaxError, MemoryError, ValueError, RecursionError):
        return ""
    imports, definitions, seen = [], [], set()
    for node in body:
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__"):
            imports.append(node)
            continue
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and not node.decorator_list:
            name, target = node.name, node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            first = node.targets[0] if isinstance(node, ast.Assign) else node.target
            name, target = (first.id if isinstance(first, ast.Name) else None), node
        else:
            continue
        if name not in seen:
            seen.add(name)
            definitions.append((name, target))
    reachable = _reachable(entrypoint, {name: _identifiers(node) for name, node in definitions})
    parts = [ast.get_source_segment(code, node) for node in imports]
    parts += [ast.get_source_segment(code, node) for name, node in definitions if name in reachable]
    text = "\n".join(parts)
    lines, outer = text.splitlines(), []
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(" "):
            break
        if entrypoint in lines[i]:
            outer.append(i)
    return "\n".join(lines[:outer[-1]]) if outer else text


def sanitize(code: str, entrypoint: str) -> str:
    """``sanitize.sanitize``: the target code, else the longest parsable span."""
    return extract_target_code_or_empty(code, entrypoint).strip() or code_extract(code)


_FENCE = re.compile(r"```[ \t]*(?:python|py|Python|python3)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def solution(row: dict, output: str) -> str:
    """The program BigCodeBench would test: the reply's first fenced block (what OLMES's prefill
    would have continued; the whole reply when it has none), sanitized and calibrated."""
    match = _FENCE.search(output)
    code = sanitize(match.group(1) if match else output, row["entry_point"])
    return row["code_prompt"] + "\n    pass\n" + code


# --- running it: BigCodeBench's unsafe_execute, inside the sandbox ------------------------------

_HARNESS = '''
import builtins, contextlib, io, os, sys, time, traceback, types, unittest

if sys.version_info[:2] == _VERSION:
    sys.path.extend(p for p in _PATHS if p not in sys.path)
os.environ.update(TZ="UTC", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                  TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0", MPLBACKEND="Agg")
time.tzset()
traceback.clear_frames = lambda tb: None  # unittest's assertRaises would walk frames (guarded)


class _Result(unittest.TestResult):
    def _exc_info_to_string(self, err, test):  # the message only: no frame walking
        return f"{err[0].__name__}: {err[1]}"[:2000]


class _WriteOnly(io.StringIO):
    def read(self, *args, **kwargs):
        raise OSError("stdin is not readable")

    readline = readlines = read

    def readable(self, *args, **kwargs):
        return False


@contextlib.contextmanager
def _swallow_io():
    stream, stdin = _WriteOnly(), sys.stdin
    sys.stdin = stream
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        sys.stdin = stdin


def _run():
    module = types.ModuleType("__test__")
    module.__dict__.update({"__builtins__": builtins, "__file__": "__test__.py", "__package__": None,
                            "__doc__": None, "sys": sys, "os": os, "environ": os.environ})
    result = _Result()
    with _swallow_io():
        exec(compile(_CODE + "\\n" + _TEST, "__test__.py", "exec"), module.__dict__)
        sys.modules["__test__"] = module
        unittest.TestLoader().loadTestsFromTestCase(getattr(module, "TestCases")).run(result)
    return [(test.id().split(".")[-1], trace) for test, trace in result.failures + result.errors]


_exit, _quit = builtins.exit, builtins.quit
builtins.exit = builtins.quit = None
try:
    try:
        _issues = _run()
    except BaseException as exc:
        _issues = [("ALL", f"{type(exc).__name__}: {exc}"[:2000])]
finally:
    builtins.exit, builtins.quit = _exit, _quit
if _issues:
    _limited = [trace for _, trace in _issues if any(m in trace for m in _MARKERS)]
    raise AssertionError("tulu-bcb: " + ("SANDBOX-LIMIT " + _limited[0][:300] + " | " if _limited else "")
                         + " | ".join(f"{name}: {trace[:300]}" for name, trace in _issues[:5]))
'''


def _library_paths() -> list[str]:
    """This environment's site-packages (added in the sandbox when its Python has our version)."""
    paths = (sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    return [p for p in dict.fromkeys(paths) if os.path.isdir(p)]


def _header(**values) -> str:
    values = {"_VERSION": tuple(sys.version_info[:2]), "_PATHS": _library_paths(),
              "_MARKERS": SANDBOX_MARKERS, **values}
    return "".join(f"{name} = {value!r}\n" for name, value in values.items())


def program(code: str, test: str) -> str:
    """The sandboxed program: ``code`` and ``test`` run as BigCodeBench's ``unsafe_execute`` runs
    them; it ends normally iff every test passed."""
    return _header(_CODE=code, _TEST=test) + _HARNESS


_IMPORT_PROBE = '''
import importlib, json, os, sys
if sys.version_info[:2] == _VERSION:
    sys.path.extend(p for p in _PATHS if p not in sys.path)
os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
_found = {}
for _name in _MODULES:
    try:
        importlib.import_module(_name)
        _found[_name] = None
    except BaseException as exc:
        _found[_name] = f"{type(exc).__name__}: {exc}"[:160]
print("tulu-bcb-probe " + json.dumps(_found))
'''
_IMPORTABLE: dict[str, str | None] = {}  # module -> why it cannot be imported in the sandbox (None: it can)


def import_problems(modules: Iterable[str]) -> dict[str, str]:
    """Module -> why the sandbox cannot import it, for those of ``modules`` it cannot; probed in
    the sandbox (together, as a task's program imports them) once per module and cached."""
    modules = list(dict.fromkeys(modules))
    unknown = [m for m in modules if m not in _IMPORTABLE]
    if unknown:
        try:
            result = run_program(_header(_MODULES=unknown) + _IMPORT_PROBE, tests="", timeout_s=120,
                                 memory_mb=MEMORY_MB, max_processes=MAX_PROCESSES)
            line = next((x for x in result.stdout.splitlines() if x.startswith("tulu-bcb-probe ")), None)
            found = json.loads(line.split(" ", 1)[1]) if line else {
                m: f"the import probe ended {result.status}: {result.stderr.strip()[-160:]}" for m in unknown}
        except SandboxUnavailable as exc:
            found = {m: f"no sandbox here ({exc})"[:200] for m in unknown}
        _IMPORTABLE.update({m: found.get(m) for m in unknown})
    return {m: why for m in modules if (why := _IMPORTABLE[m])}


def unscorable(row: dict) -> str | None:
    """Why the task cannot be scored here: the first module it needs that the sandbox cannot import."""
    problems = import_problems(row["required"])
    if not problems:
        return None
    module, why = next(iter(problems.items()))
    return f"needs module {module!r}, which the sandbox cannot import here ({why})"


@in_process  # the sandbox bounds the program (its own process, wall clock, rlimits)
def score(row: dict, output: str) -> dict:
    """pass@1 of one reply: 1 iff every test of the task passed (:class:`SandboxLimit` raised
    where the sandbox's guard, not the code, made it fail)."""
    result = run_program(program(solution(row, output), row["test"]), tests="", timeout_s=TIMEOUT_S,
                         memory_mb=MEMORY_MB, max_processes=MAX_PROCESSES)
    if result.passed:
        return {"score": 1.0}
    if "tulu-bcb: SANDBOX-LIMIT" in result.stderr:  # the guard raised inside a test
        why = result.stderr.split("tulu-bcb: SANDBOX-LIMIT", 1)[1].strip()[:300]
        raise SandboxLimit(f"{row['task_id']}: the sandbox's guard, not the code, failed it: {why}")
    if "a test cannot trust that" in result.stderr:  # its tamper check (a library changed re, math, ...)
        raise SandboxLimit(f"{row['task_id']}: the sandbox's tamper check failed it: {result.stderr[-300:]}")
    return {"score": 0.0, "exec_status": result.status}


BIGCODEBENCH_HARD = Benchmark(
    name="bigcodebench_hard", paper_name="BigCodeBench-Hard (unseen suite)",
    settings=Settings(shots=0, cot=False, kind="chat", metric="pass@1 (greedy, calibrated)",
                      source="OLMES bigcodebench_hard::tulu (tulu_3_unseen): instruct prompt in chat, "
                             "split v0.1.2, max_gen_toks 1280"),
    packaged=None,
    packaged_from="none: the bigcodebench wheel (0.2.5) ships no data, it downloads the hub split",
    hub_id="bigcode/bigcodebench-hard", hub_split="v0.1.2", convert=convert,
    prompt=prompt, score=score, stop=STOP, max_new_tokens=1280, unscorable=unscorable,
    headline="pass@1 (greedy; BigCodeBench's sanitize + calibration, its unittest harness in the sandbox)",
    scorer="ours, following bigcodebench 0.2.5 (sanitize.py, eval/__init__.py unsafe_execute) and OLMES "
           "codex_bigcodebench.py; the tests run in tulu_lib.generation.sandbox",
    offline="the tasks whose modules the sandbox can import (the others are skipped and counted); "
            "failures the sandbox's guard causes are counted as scorer errors")
