"""HumanEval+: HumanEval's prompt and sandbox, judged by EvalPlus's extended tests; pass@10 from samples.

Settings: OLMES ``codex_humanevalplus::tulu`` (``oe_eval/configs/tasks.py``; the Tülu 3 dev suite;
paper Table 24): chat, 0-shot, ``primary_metric`` pass@10 from 20 samples at temperature 0.8,
top-p 0.95 (``BenchmarkParams.samples``, as for HumanEval), pass@1 greedy beside it. Data: the hub
dataset ``evalplus/humanevalplus`` (split ``test``: ``task_id``, ``prompt``, ``canonical_solution``,
``entry_point``, ``test``: EvalPlus v0.1.10's base and extended inputs with their expected outputs
in one ``check(candidate)``), or a local copy in its schema. The ``evalplus`` wheel (0.3.1) ships
no problems or tests (``evalplus.data`` downloads them from GitHub); its checker
(``evalplus.eval.untrusted_check``) runs a local problem given its inputs and expected outputs,
but in-process behind a reliability guard, not a sandbox, and is not used here.

Scorer: HumanEval's (:mod:`tulu_lib.evals.tasks.humaneval`: the reply's code, then the tests and
``check(entry_point)``, in the sandbox). The sandbox's tests may import the standard library
only, and EvalPlus's ``test`` opens with numpy helpers (``is_floats``; ``assertion``: equal, or for
floats within ``np.testing.assert_allclose``'s tolerance, atol 1e-6, rtol 1e-7): :func:`judge_tests`
puts ``check`` first, verbatim, and after it stdlib equivalents of the two helpers and the rest of
the preamble, so all of it runs in the judge. A row whose tests use numpy beyond those helpers is
skipped and counted (``unscorable``).

Usage::

    row = HUMANEVALPLUS.load("humanevalplus.jsonl")[0]
    HUMANEVALPLUS.score(row, "```python\\n" + row["prompt"] + row["canonical_solution"] + "```")  # 1.0
"""

from __future__ import annotations

import ast
import re

from tulu_lib.evals.bounded import in_process
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks import humaneval

# EvalPlus's numpy helpers, judged with the standard library (the values a candidate returns
# reach the judge as builtin values: no ndarray)
JUDGE_HELPERS = '''
import math


def is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    return False


def _allclose(out, exp, atol, rtol=1e-07):
    """np.testing.assert_allclose(out, exp, rtol, atol)'s test: equal shapes (or a scalar against
    a sequence), every |out - exp| <= atol + rtol * |exp|, NaN equal to NaN, infinities equal."""
    seq = (list, tuple)
    if isinstance(out, seq) or isinstance(exp, seq):
        if not isinstance(out, seq):
            return all(_allclose(out, e, atol, rtol) for e in exp)
        if not isinstance(exp, seq):
            return all(_allclose(o, exp, atol, rtol) for o in out)
        return len(out) == len(exp) and all(_allclose(o, e, atol, rtol) for o, e in zip(out, exp))
    if not (isinstance(out, (int, float, complex)) and isinstance(exp, (int, float, complex))):
        return False
    if out != out or exp != exp:
        return out != out and exp != exp
    if math.isinf(abs(out)) or math.isinf(abs(exp)):
        return out == exp
    return abs(out - exp) <= atol + rtol * abs(exp)


def assertion(out, exp, atol):
    exact_match = out == exp
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        assert _allclose(out, exp, atol)
    else:
        assert exact_match
'''
REPLACED = ("is_floats", "assertion")  # EvalPlus's helpers that JUDGE_HELPERS stands in for


def _source(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
    return "".join(lines[start - 1:node.end_lineno])


def judge_tests(test: str) -> tuple[str, str]:
    """EvalPlus's ``test`` as tests the sandbox's judge can run, and why not ("" if it can):
    ``check`` first, verbatim (the sandbox takes the tests from the last top-level ``def check``
    on), then :data:`JUDGE_HELPERS`, then the rest of the preamble less its numpy imports."""
    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        return test, f"its tests do not parse ({exc.msg})"
    checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if not checks:
        return test, "its tests define no check()"
    numpy_names: set[str] = set()
    rest = []
    for node in tree.body:
        if node is checks[-1] or isinstance(node, ast.FunctionDef) and node.name in REPLACED:
            continue
        if isinstance(node, ast.Import) and all(a.name.partition(".")[0] == "numpy" for a in node.names):
            numpy_names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] == "numpy":
            numpy_names.update(a.asname or a.name for a in node.names)
        else:
            rest.append(node)
    kept = [checks[-1], *rest]
    if any(isinstance(n, ast.Name) and n.id in numpy_names for node in kept for n in ast.walk(node)):
        return test, "its tests use numpy beyond EvalPlus's assertion helpers (the sandbox's tests may " \
                     "import the standard library only)"
    lines = re.split(r"(?<=\n)|(?<=\r)(?!\n)", test)  # the tokenizer's lines (not str.splitlines')
    parts = [_source(lines, checks[-1]), JUDGE_HELPERS, *(_source(lines, n) for n in rest)]
    return "\n\n".join(p.strip("\n") + "\n" for p in parts), ""


def convert(row: dict, i: int) -> dict:
    tests, why = judge_tests(row["test"])
    return {**humaneval.convert(row, i), "test": tests, "not_judged": why}


def unscorable(row: dict) -> str | None:
    return row["not_judged"] or None


@in_process  # the sandbox bounds the program (10 s, its own process), as for HumanEval
def score(row: dict, output: str) -> dict:
    """HumanEval's scorer on the judge-side EvalPlus tests (:func:`convert` made them)."""
    return humaneval.score(row, output)


HUMANEVALPLUS = Benchmark(
    name="humanevalplus", paper_name="HumanEval+",
    settings=Settings(shots=0, cot=False, kind="chat",
                      metric="pass@10 (20 samples at T 0.8, top-p 0.95); pass@1 greedy beside it",
                      source="OLMES codex_humanevalplus::tulu (paper Table 24)"),
    packaged=None,
    packaged_from="none: the evalplus wheel (0.3.1) ships no tests; it downloads HumanEvalPlus v0.1.10 from "
                  "GitHub at run time",
    hub_id="evalplus/humanevalplus", hub_split="test", convert=convert,
    prompt=humaneval.prompt, score=score, unscorable=unscorable,
    headline="pass@1 (greedy, sandboxed, EvalPlus's extended tests)",
    scorer="EvalPlus's check() tests (its numpy assertion helpers in the standard library) in the sandbox, "
           "as HumanEval's; unbiased pass@k (Chen et al. 2021)",
    offline="everything, from a local copy in the hub's schema: the programs run in a CPU sandbox; pass@10 "
            "where the params sample")
