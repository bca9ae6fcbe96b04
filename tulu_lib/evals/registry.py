"""Every benchmark the project evaluates, by name; the paper's benchmarks it does not run, and why.

A benchmark is one module of :mod:`tulu_lib.evals.tasks` defining a
:class:`~tulu_lib.evals.spec.Benchmark`; adding one is that file, its import below, its name in
the tuple registered below, and a test (``docs/evaluation.md``, "Adding a benchmark").
:data:`DATASETS` are the benchmarks with rows of their own (``mmlu_mc`` reads ``mmlu``'s): what
decontamination and the data notebook read; :data:`PACKAGED` those of them whose rows ship in an
installed package (the rest read the hub or a local copy in its schema). :data:`NOT_RUN` says why
a name has no score here; :data:`TABLE6_ROWS` is the paper's Table 6.

Usage::

    ds = load_benchmark("gsm8k")                           # packaged copy
    ds = load_benchmark("gsm8k", path="openai/gsm8k")      # hub (or a local .jsonl)
    benchmark("math").settings.source                      # 'OLMES minerva_math::tulu (paper Table 24); ...'
"""

from __future__ import annotations

import datasets

from tulu_lib.evals.spec import Benchmark
from tulu_lib.evals.tasks.agieval import AGIEVAL
from tulu_lib.evals.tasks.alpaca_eval import ALPACA_EVAL
from tulu_lib.evals.tasks.bbh import BBH
from tulu_lib.evals.tasks.bigcodebench import BIGCODEBENCH_HARD
from tulu_lib.evals.tasks.deepmind_math import DEEPMIND_MATH
from tulu_lib.evals.tasks.drop import DROP
from tulu_lib.evals.tasks.gpqa import GPQA
from tulu_lib.evals.tasks.gsm8k import GSM8K
from tulu_lib.evals.tasks.href import HREF
from tulu_lib.evals.tasks.humaneval import HUMANEVAL
from tulu_lib.evals.tasks.humanevalplus import HUMANEVALPLUS
from tulu_lib.evals.tasks.if_short import IF_SHORT
from tulu_lib.evals.tasks.ifbench import IFBENCH
from tulu_lib.evals.tasks.ifeval import IFEVAL
from tulu_lib.evals.tasks.ifeval_ood import IFEVAL_OOD
from tulu_lib.evals.tasks.minerva_math import MATH, MATH500
from tulu_lib.evals.tasks.mmlu import MMLU, MMLU_MC
from tulu_lib.evals.tasks.mmlu_pro import MMLU_PRO
from tulu_lib.evals.tasks.popqa import POPQA
from tulu_lib.evals.tasks.safety import SAFETY_BENCHMARKS, SAFETY_PARTS, safety_average
from tulu_lib.evals.tasks.truthfulqa import TRUTHFULQA

BENCHMARKS: dict[str, Benchmark] = {}


def register(spec: Benchmark) -> Benchmark:
    """Add a benchmark under its name (a name registered twice is an error)."""
    if spec.name in BENCHMARKS:
        raise ValueError(f"benchmark {spec.name!r} is registered twice")
    if spec.name in NOT_IMPLEMENTED:
        raise ValueError(f"benchmark {spec.name!r} is also listed as not implemented")
    BENCHMARKS[spec.name] = spec
    return spec


# The paper's benchmarks that have no module here yet (they are reported as not run, with why).
NOT_IMPLEMENTED: dict[str, str] = {
}

for _spec in (GSM8K, MATH, MATH500, HUMANEVAL, IFEVAL, MMLU, MMLU_MC, DROP, IFBENCH, ALPACA_EVAL, POPQA,
              TRUTHFULQA, BBH, HUMANEVALPLUS, *SAFETY_BENCHMARKS, AGIEVAL, GPQA, MMLU_PRO, DEEPMIND_MATH,
              BIGCODEBENCH_HARD, IFEVAL_OOD, HREF, IF_SHORT):
    register(_spec)

# the benchmarks with rows of their own that decontamination reads, in registry order (each once)
DATASETS: dict[str, Benchmark] = {n: b for n, b in BENCHMARKS.items() if b.data is None and b.decontaminate}
# those whose rows ship in an installed package (the others need the hub or a local copy)
PACKAGED: dict[str, Benchmark] = {n: b for n, b in DATASETS.items() if b.packaged is not None}

# A Table 6 column that is the mean of several benchmarks: its parts, and how they combine (a row
# like evaluate's, NaN with the missing parts named unless every part scored)
COMPOSITES = {"safety": (SAFETY_PARTS, safety_average)}

# why a name is not run: a judge-scored benchmark without a judge, or one not implemented yet
NOT_RUN: dict[str, str] = {
    **{n: b.not_run_without_judge for n, b in BENCHMARKS.items() if b.judge_score is not None},
    **{n: f"not run: not implemented yet; {why}" for n, why in NOT_IMPLEMENTED.items()},
}

# The rows of the paper's Table 6, in its order: (column name in the paper, our benchmark).
TABLE6_ROWS = (("MMLU", "mmlu"), ("PopQA", "popqa"), ("TruthfulQA", "truthfulqa"), ("BBH", "bbh"),
               ("DROP", "drop"), ("MATH", "math"), ("GSM8K", "gsm8k"), ("HumanEval", "humaneval"),
               ("HumanEval+", "humanevalplus"), ("IFEval", "ifeval"), ("AlpacaEval2", "alpaca_eval"),
               ("Safety", "safety"))

# The paper's unseen suite (its Table 3 / Table 24 bottom), in its order: (the paper's name, ours).
# IFBench, the published successor of IFEval-OOD, is registered too (``ifbench``), beside it.
UNSEEN_ROWS = (("AGIEval English", "agieval"), ("MMLU-Pro", "mmlu_pro"), ("GPQA", "gpqa"),
               ("DeepMind Mathematics", "deepmind_math"), ("BigCodeBench-Hard", "bigcodebench_hard"),
               ("IFEval-OOD", "ifeval_ood"), ("HREF", "href"))


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def not_run_reason(name: str) -> str:
    """Why ``name`` has no score when it was not asked for (or cannot run here)."""
    if name in NOT_RUN:
        return NOT_RUN[name]
    if name in COMPOSITES:
        return (f"not run: {name} is the mean of {len(COMPOSITES[name][0])} benchmarks; list them all in "
                f"eval.benchmarks ({', '.join(COMPOSITES[name][0])})")
    if name in BENCHMARKS:
        return "not run: not in eval.benchmarks of these params"
    return "not run: unknown benchmark"


def load_benchmark(name: str, path: str | None = None, limit: int | None = None,
                   ) -> datasets.Dataset:
    """Rows of a benchmark in its common schema; ``path`` = hub id or local copy. A ``limit``
    takes the first rows, or for MMLU and MATH rows round-robin over subjects (57 = one per
    MMLU subject)."""
    return benchmark(name).load(path, limit)


def benchmark_texts(names: list[str] | tuple[str, ...]) -> dict[str, list[tuple[str, str | tuple[str, ...]]]]:
    """``{benchmark: [(item_id, prompt or (field, ...)), ...]}`` — the input decontamination needs
    (a benchmark's ``decontamination_fields`` are scored field by field, averaged: DROP)."""
    out = {}
    for name in names:
        ds, fields = load_benchmark(name), benchmark(name).decontamination_fields
        texts = zip(*(ds[f] for f in fields), strict=True) if fields else ds["prompt"]
        out[name] = list(zip(ds["id"], texts, strict=True))
    return out
