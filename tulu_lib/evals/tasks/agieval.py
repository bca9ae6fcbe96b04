"""AGIEval English (unseen suite): 0-shot chain of thought in chat format, exact match of the
answer letter, macro over its 8 English multiple-choice subsets.

Settings: OLMES ``agi_eval_english:0shot_cot::tulu3`` (suite ``tulu_3_unseen``; allenai/olmes
``oe_eval/configs/task_suites.py``: the ``agi_eval_<subset>:0shot_cot::tulu3`` tasks of
``AGI_EVAL_ENGLISH_DATASETS`` but ``sat-en-without-passage``, ``primary_metric: macro``), each task
in ``oe_eval/configs/tasks.py`` (``prompt_style: no_answer_prefix``, the Tülu 3 CoT description
and final description, ``max_gen_toks`` 2048, no stop sequences in chat, ``answer_format_regex``
``Therefore, the answer is \\(([A-F])\\)``). Prompt and scorer follow
``oe_eval/tasks/oe_eval_tasks/agi_eval.py`` (``GenericAGIEval``): choices stripped of their
"(A)"/"A." prefixes, "Passage: …\\nQuestion: …\\n (A) …" with runs of newlines collapsed, and its
``_extract_answer`` (pinned in ``tests/test_eval_unseen.py``); the CoT wording is
:mod:`tulu_lib.evals.tasks.mmlu`'s (the same text). Data: OLMES reads AGIEval's own
``data/v1/<subset>.jsonl`` (github.com/ruixiangcui/AGIEval, vendored in OLMES), not a hub
dataset; no PyPI package ships it. A local copy is those files in one ``.jsonl``, each row with
its ``subset`` (``passage``, ``question``, ``options``, ``label``).

Usage::

    AGIEVAL.load("agieval_en.jsonl", limit=16)      # a local copy: rows of data/v1 + "subset"
    agieval_letter("... Therefore, the answer is (C).")   # "C"
"""

from __future__ import annotations

import re

from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks.mmlu import MMLU_COT_INSTRUCTION, MMLU_COT_REMINDER

# OLMES task_suites.py: AGI_EVAL_ENGLISH_DATASETS without "sat-en-without-passage"
AGIEVAL_SUBSETS = ("lsat-ar", "lsat-lr", "lsat-rc", "logiqa-en", "sat-math", "sat-en", "aqua-rat",
                   "gaokao-english")
AGIEVAL_DESCRIPTION = MMLU_COT_INSTRUCTION + "\n\n"
AGIEVAL_FINAL = "\n\n" + MMLU_COT_REMINDER
ANSWER_FORMAT = re.compile(r"Therefore, the answer is \(([A-F])\)")


def strip_choice_prefix(choice: str) -> str:
    """OLMES ``_strip_choice_prefix``: drop a leading "(A)" or "A." (also a bare leading A-E)."""
    return re.sub(r"^\s*\([A-E]\)\s*|^\s*[A-E][.?]?\s*", "", choice)


def _clean_text(text: str) -> str:
    """OLMES ``_clean_text``: "(A)X" -> "(A) X", runs of newlines -> one."""
    return re.sub(r"\n{2,}", "\n", re.sub(r"(\([A-G]\))(\w)", r"\1 \2", text))


def convert(row: dict, i: int) -> dict:
    subset = row["subset"]
    passage = None if subset == "sat-en-without-passage" else row.get("passage")
    index = row.get("index", i)
    return {"id": f"agieval/{subset}/{index}", "prompt": f"{passage}\n{row['question']}" if passage
            else row["question"], "subset": subset, "passage": passage or "", "question": row["question"],
            "choices": [strip_choice_prefix(c) for c in row["options"]], "answer": row["label"]}


def query(row: dict) -> str:
    """OLMES ``GenericAGIEval._process_doc`` with ``prompt_style: no_answer_prefix``."""
    text = f"Passage: {row['passage']}\n" if row["passage"] else ""
    text += f"Question: {row['question']}\n"
    labelled = zip("ABCDEFGH", row["choices"], strict=False)
    text += "\n".join(f" ({label}) {choice}" for label, choice in labelled)
    return _clean_text(text)


def prompt(row: dict, shots: int) -> list[dict]:
    if shots:
        raise ValueError("agi_eval_english:0shot_cot::tulu3 is 0-shot")
    return [{"role": "user", "content": AGIEVAL_DESCRIPTION + query(row) + AGIEVAL_FINAL}]


def agieval_answer(output: str) -> tuple[str, float]:
    """OLMES ``GenericAGIEval._extract_answer`` with the tulu3 ``answer_format_regex``: the last
    "Therefore, the answer is (X)"; else the last "(X)" inside the last "the answer is ….", or in
    the whole reply; else the last capital A-E anywhere. Returns (letter or "", format score)."""
    found = ANSWER_FORMAT.findall(output)
    if found:
        return found[-1], 1.0
    fmt = 0.5
    spans = re.findall(r"(?<=the answer is )(.*?)(?=\.)", output)
    if spans:
        text = spans[-1]
    else:
        fmt, text = 0.0, output
    letters = re.findall(r"\([A-E]\)", text)
    if letters:
        return letters[-1].strip("()"), fmt
    letters = re.findall("[A-E]", output)
    return (letters[-1] if letters else ""), 0.0


def agieval_letter(output: str) -> str:
    return agieval_answer(output)[0]


def score(row: dict, output: str) -> dict:
    letter, fmt = agieval_answer(output)
    return {"score": float(letter.lower() == row["answer"].lower()), "letter": letter,
            "answer_format_correct": fmt}


def unscorable(row: dict) -> str | None:
    if row["subset"] not in AGIEVAL_SUBSETS:
        return f"subset {row['subset']!r} is not one of OLMES agi_eval_english's 8"
    return None


AGIEVAL = Benchmark(
    name="agieval", paper_name="AGIEval English (unseen suite)",
    settings=Settings(shots=0, cot=True, kind="chat",
                      metric="exact match of the answer letter, macro over the 8 English subsets",
                      source="OLMES agi_eval_english:0shot_cot::tulu3 (tulu_3_unseen)"),
    packaged=None,
    packaged_from="none: no PyPI package ships AGIEval; OLMES reads AGIEval's data/v1 jsonl (GitHub "
                  "ruixiangcui/AGIEval, 2,646 items in the 8 subsets): give a local copy, one .jsonl "
                  "with a 'subset' field",
    hub_id="github:ruixiangcui/AGIEval/data/v1", hub_split="test", convert=convert, spread_by="subset",
    prompt=prompt, score=score, macro_by="subset", unscorable=unscorable,
    headline="accuracy, macro over the 8 English subsets (0-shot CoT, 'the answer is (X)')",
    scorer="ours, following OLMES agi_eval.py _extract_answer (pinned in tests)",
    offline="everything, given a local copy (no packaged one)")
