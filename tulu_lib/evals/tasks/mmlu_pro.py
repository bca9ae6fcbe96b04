"""MMLU-Pro (unseen suite): 0-shot chain of thought in chat format, exact match of the answer
letter (up to 10 options, A-J), macro over its 14 categories.

Settings: OLMES ``mmlu_pro:0shot_cot::tulu3`` (suite ``tulu_3_unseen``; allenai/olmes
``oe_eval/configs/task_suites.py``: the ``mmlu_pro_<category>:0shot_cot::tulu3`` tasks of
``MMLU_PRO_CATEGORIES``, ``primary_metric: macro``; each in ``oe_eval/configs/tasks.py``:
``answer_prefix: None``, the Tülu 3 CoT description, a final description after ONE newline,
``max_gen_toks`` 2048, no stop sequences, ``answer_format_regex``
``Therefore, the answer is \\(([A-J])\\)``). Prompt and scorer follow
``oe_eval/tasks/oe_eval_tasks/mmlu_pro.py`` (``GenericMMLUPro_CoT``): "Question: …\\n (A) …\\n"
and its ``_extract_answer`` (adapted there from TIGER-Lab's ``evaluate_from_local.py``; pinned in
``tests/test_eval_unseen.py``); the CoT wording is :mod:`tulu_lib.evals.tasks.mmlu`'s. Data:
``TIGER-Lab/MMLU-Pro`` test (12,032); no PyPI package ships it.

Usage::

    MMLU_PRO.load("mmlu_pro_test.jsonl", limit=28)    # a local copy in the hub's schema
    mmlu_pro_letter("... Therefore, the answer is (J).")   # "J"
"""

from __future__ import annotations

import re

from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks.mmlu import MMLU_COT_INSTRUCTION, MMLU_COT_REMINDER

MMLU_PRO_LETTERS = "ABCDEFGHIJ"
MMLU_PRO_DESCRIPTION = MMLU_COT_INSTRUCTION + "\n\n"
MMLU_PRO_FINAL = "\n" + MMLU_COT_REMINDER  # one newline: the options already end with one
ANSWER_FORMAT = re.compile(r"Therefore, the answer is \(([A-J])\)")


def convert(row: dict, i: int) -> dict:
    return {"id": f"mmlu_pro/{row.get('question_id', i)}", "prompt": row["question"],
            "question": row["question"], "category": row["category"], "choices": list(row["options"]),
            "answer": row["answer"]}


def prompt(row: dict, shots: int) -> list[dict]:
    if shots:
        raise ValueError("mmlu_pro:0shot_cot::tulu3 is 0-shot")
    labelled = zip(MMLU_PRO_LETTERS, row["choices"], strict=False)
    options = "".join(f" ({x}) {option}\n" for x, option in labelled)
    return [{"role": "user", "content": f"{MMLU_PRO_DESCRIPTION}Question: {row['question']}\n{options}"
             f"{MMLU_PRO_FINAL}"}]


def mmlu_pro_answer(output: str) -> tuple[str, float]:
    """OLMES ``GenericMMLUPro_CoT._extract_answer`` with the tulu3 ``answer_format_regex``: the
    last "Therefore, the answer is (X)"; else the FIRST "answer is (X)" (any case, the letter too);
    else "Answer: X" (the last on the first line that has one); else the last stand-alone A-J.
    Returns (letter, upper-cased, or "", format score)."""
    found = ANSWER_FORMAT.findall(output)
    if found:
        return found[-1], 1.0
    first = re.search(r"(?i)answer is:?\s*\(?([A-J])\)?", output)
    if first:
        return first.group(1).upper(), 0.5
    line = re.search(r".*[aA]nswer:\s*([A-J])", output)
    if line:
        return line.group(1), 0.5
    found = re.findall(r".*\b([A-J])\b", output)
    return (found[-1] if found else ""), 0.0


def mmlu_pro_letter(output: str) -> str:
    return mmlu_pro_answer(output)[0]


def score(row: dict, output: str) -> dict:
    letter, fmt = mmlu_pro_answer(output)
    return {"score": float(letter.lower() == row["answer"].lower()), "letter": letter,
            "answer_format_correct": fmt}


MMLU_PRO = Benchmark(
    name="mmlu_pro", paper_name="MMLU-Pro (unseen suite)",
    settings=Settings(shots=0, cot=True, kind="chat",
                      metric="exact match of the answer letter, macro over the 14 categories",
                      source="OLMES mmlu_pro:0shot_cot::tulu3 (tulu_3_unseen)"),
    packaged=None,
    packaged_from="none: no PyPI package ships MMLU-Pro (hub: TIGER-Lab/MMLU-Pro test, 12,032)",
    hub_id="TIGER-Lab/MMLU-Pro", hub_split="test", convert=convert, spread_by="category",
    prompt=prompt, score=score, macro_by="category",
    headline="accuracy, macro over the 14 categories (0-shot CoT, 'the answer is (X)', A-J)",
    scorer="ours, following OLMES mmlu_pro.py _extract_answer (pinned in tests)",
    offline="everything, given a local copy (no packaged one)")
