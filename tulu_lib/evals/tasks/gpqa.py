"""GPQA (unseen suite): 0-shot chain of thought in chat format, exact match of the answer letter
over the 448 ``gpqa_main`` questions.

Settings: OLMES ``gpqa:0shot_cot::tulu3`` (suite ``tulu_3_unseen``; allenai/olmes
``oe_eval/configs/tasks.py``: split ``train``, the Tülu 3 CoT description and final description
for four choices, ``max_gen_toks`` 2048, no stop sequences, ``answer_format_regex``
``Therefore, the answer is \\(([A-D])\\)``). Prompt, choice order and scorer follow
``oe_eval/tasks/oe_eval_tasks/gpqa.py`` (``GPQA``): the choices [incorrect 1, 2, 3, correct],
each cleaned (``_preprocess``), shuffled by ``random.Random(111 + index)`` (``answer_shuffling_seed``
111; ``index``: the row's position in the split), laid out "Question: …\\nChoices:\\n (A) …\\n";
its ``_extract_answer`` (pinned in ``tests/test_eval_unseen.py``). Data: ``Idavidrein/gpqa``
(``gpqa_main``), gated on the hub; no PyPI package ships it. A local copy must hold the whole
split in the hub's order (the shuffle is seeded by position).

Usage::

    GPQA.load("gpqa_main.jsonl")                 # a local copy in the hub's schema
    gpqa_letter("... Therefore, the answer is (B).")   # "B"
"""

from __future__ import annotations

import random
import re

from tulu_lib.evals.spec import LETTERS, Benchmark, Settings
from tulu_lib.evals.tasks.mmlu import MMLU_DESCRIPTION, MMLU_FINAL

ANSWER_SHUFFLING_SEED = 111
# the Tülu 3 CoT wording for exactly four choices: "... one of (A), (B), (C), (D)."
GPQA_DESCRIPTION = MMLU_DESCRIPTION
GPQA_FINAL = "\n" + MMLU_FINAL  # two newlines before it, where MMLU's options end with one
ANSWER_FORMAT = re.compile(r"Therefore, the answer is \(([A-D])\)")


def _preprocess(text: str | None) -> str:
    """OLMES GPQA ``_preprocess`` of a choice."""
    if text is None:
        return " "
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def convert(row: dict, i: int) -> dict:
    correct = _preprocess(row["Correct Answer"])
    choices = [_preprocess(row[f"Incorrect Answer {k}"]) for k in (1, 2, 3)] + [correct]
    random.Random(ANSWER_SHUFFLING_SEED + i).shuffle(choices)
    return {"id": f"gpqa/{i}", "prompt": row["Question"], "question": row["Question"],
            "choices": choices, "answer": LETTERS[choices.index(correct)],
            "record_id": str(row.get("Record ID") or "")}


def prompt(row: dict, shots: int) -> list[dict]:
    if shots:
        raise ValueError("gpqa:0shot_cot::tulu3 is 0-shot")
    options = "".join(f" ({x}) {c}\n" for x, c in zip(LETTERS, row["choices"], strict=True))
    return [{"role": "user", "content": f"{GPQA_DESCRIPTION}Question: {row['question']}\nChoices:\n"
             f"{options}{GPQA_FINAL}"}]


def gpqa_answer(output: str) -> tuple[str, float]:
    """OLMES ``GPQA._extract_answer`` with the tulu3 ``answer_format_regex``: the last
    "Therefore, the answer is (X)"; else the last "(X)"; else the first letter after "The correct
    answer is: "; else the last stand-alone A-D. Returns (letter or "", format score)."""
    found = ANSWER_FORMAT.findall(output)
    if found:
        return found[-1], 1.0
    found = re.findall(r"\(([A-D])\)", output)
    if found:
        return found[-1], 0.5
    after = re.search(r"(?<=The correct answer is: )([A-D])", output)
    if after:
        return after.group(1), 0.5
    found = re.findall(r".*\b([A-D])\b", output)
    return (found[-1] if found else ""), 0.0


def gpqa_letter(output: str) -> str:
    return gpqa_answer(output)[0]


def score(row: dict, output: str) -> dict:
    letter, fmt = gpqa_answer(output)
    return {"score": float(letter.lower() == row["answer"].lower()), "letter": letter,
            "answer_format_correct": fmt}


GPQA = Benchmark(
    name="gpqa", paper_name="GPQA (unseen suite)",
    settings=Settings(shots=0, cot=True, kind="chat", metric="exact match of the answer letter",
                      source="OLMES gpqa:0shot_cot::tulu3 (tulu_3_unseen)"),
    packaged=None,
    packaged_from="none: no PyPI package ships GPQA (gated on the hub: Idavidrein/gpqa gpqa_main, "
                  "448 in its train split)",
    hub_id="Idavidrein/gpqa", hub_config="gpqa_main", hub_split="train", convert=convert,
    prompt=prompt, score=score,
    headline="accuracy (0-shot CoT, 'the answer is (X)'; choices shuffled as OLMES, seed 111 + index)",
    scorer="ours, following OLMES gpqa.py _preprocess, shuffle and _extract_answer (pinned in tests)",
    offline="everything, given a local copy (gated on the hub, no packaged one)")
