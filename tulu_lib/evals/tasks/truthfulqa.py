"""TruthfulQA: 6-shot multiple choice by log-likelihood, MC2 with lm-eval's ``process_results_mc2``.

Settings: OLMES ``truthfulqa::tulu`` (the Tülu 3 dev suite; paper Table 24: 6-shot, MC2), i.e. OLMES
``oe_eval/tasks/oe_eval_tasks/truthfulqa.py`` with ``oe_eval/configs/tasks.py``'s ``truthfulqa::tulu``
(``num_shots: 6``, ``short_prefix``, ``primary_metric: mc2``): the context is the 6 QA exemplars
``Q: …\\nA: …`` joined by blank lines, then ``Q: {question}\\nA:``; each answer ``" " + choice`` is
scored by its summed log-likelihood. The choices are OLMES's: ``mc1_targets`` then the
``mc2_targets`` not already among them, each asked once. The exemplars are read from lm-eval's
``truthfulqa/truthfulqa_mc1.yaml`` QA prompt, the same six as OLMES ``fewshot_sources.py``
``FEWSHOT_SOURCES["Original:TruthfulQA"]``; at 6 shots the context equals lm-eval's ``truthfulqa_mc2``
and OLMES's ``truthfulqa::olmo1``. Differs from ``truthfulqa::tulu`` in one respect: OLMES also sets
``use_chat_format``, putting that text in one user turn of the model's chat template and scoring
the answer (its leading space stripped) after the assistant header; here the context is plain
text, as a ``choice`` task's generator takes strings.

Scorer: lm-eval 0.4.13's ``process_results_mc2`` (``tasks/truthfulqa/utils.py``, loaded alone by
:func:`lm_eval_mc2`: that file also imports sacrebleu, not installed, for its generation metrics)
on the ``mc2_targets`` choices, each distinct choice once as OLMES's ``MC1MC2Accuracy`` counts them.
MC1 (secondary): whether the likeliest ``mc1_targets`` choice is the true one, as OLMES computes it.

Usage::

    context, continuations = TRUTHFULQA.prompt(row, 6)
    truthfulqa_mc2([1, 0], [-1.0, -2.0])              # 0.731...
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Callable

import jinja2
import numpy as np
import yaml

from tulu_lib.evals.sources import lm_eval_tasks
from tulu_lib.evals.spec import Benchmark, Settings, choice_loglikelihoods


def convert(row: dict, i: int) -> dict:
    """The hub row -> the row schema; its choices as OLMES ``TruthfulQA._process_doc`` lists them."""
    choices = list(row["mc1_targets"]["choices"])
    labels = [int(x) for x in row["mc1_targets"]["labels"]]
    mc1_indices, mc2_indices = list(range(len(choices))), []
    for choice, label in zip(row["mc2_targets"]["choices"], row["mc2_targets"]["labels"], strict=True):
        if choice in choices:
            if labels[choices.index(choice)] != int(label):
                raise ValueError(f"truthfulqa row {i}: {choice!r} is labelled differently in mc1 and mc2")
            mc2_indices.append(choices.index(choice))
        else:
            choices.append(choice)
            labels.append(int(label))
            mc2_indices.append(len(choices) - 1)
    return {"id": f"truthfulqa/{i}", "prompt": row["question"], "question": row["question"],
            "choices": choices, "labels": labels, "mc1_indices": mc1_indices, "mc2_indices": mc2_indices}


@functools.cache
def truthfulqa_exemplars() -> tuple[tuple[str, str], ...]:
    """The 6 ``(question, answer)`` exemplars of lm-eval's TruthfulQA QA prompt (its
    ``truthfulqa_mc1.yaml`` ``doc_to_text``, rendered with jinja2)."""
    config = yaml.safe_load((lm_eval_tasks() / "truthfulqa" / "truthfulqa_mc1.yaml").read_text())
    marker = "\x00"
    shown = jinja2.Template(config["doc_to_text"]).render(question=marker)
    block = shown.removesuffix(f"\n\nQ: {marker}\nA:")
    return tuple(re.fullmatch(r"Q: (.*)\nA: (.*)", pair, re.S).groups() for pair in block.split("\n\n"))


def truthfulqa_context(question: str, shots: int) -> str:
    """OLMES's plain-text few-shot context with ``short_prefix``: ``shots`` exemplars, then the question."""
    exemplars = truthfulqa_exemplars()
    if shots > len(exemplars):
        raise ValueError(f"TruthfulQA has {len(exemplars)} exemplars, {shots} asked")
    shown = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in exemplars[:shots])
    return f"{shown}Q: {question}\nA:"


def prompt(row: dict, shots: int) -> tuple[str, list[str]]:
    return truthfulqa_context(row["question"], shots), [f" {c}" for c in row["choices"]]


@functools.cache
def lm_eval_mc2() -> Callable:
    """lm-eval 0.4.13's ``process_results_mc2(doc, results)`` from ``tasks/truthfulqa/utils.py``,
    its own code: that one function of the file is compiled (with numpy as ``np``), because the
    file's top-level imports include sacrebleu (not installed) for the generation metrics."""
    path = lm_eval_tasks() / "truthfulqa" / "utils.py"
    tree = ast.parse(path.read_text())
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "process_results_mc2"]
    if len(nodes) != 1:
        raise RuntimeError(f"{path}: no single process_results_mc2")
    namespace: dict = {"np": np, "__name__": "_lm_eval_truthfulqa_utils"}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102 - the installed package's own function
    return namespace["process_results_mc2"]


def truthfulqa_mc2(labels: list[int], loglikelihoods: list[float]) -> float:
    """MC2, the normalised probability mass on the true answers: lm-eval's ``process_results_mc2``.
    Where every probability underflows (log-likelihoods below about -745), the same call on the
    log-likelihoods less their maximum (the same ratio) is used instead of its NaN."""
    reference = lm_eval_mc2()
    doc = {"mc2_targets": {"labels": list(labels)}}
    with np.errstate(all="ignore"):
        value = float(reference(doc, [(ll, False) for ll in loglikelihoods])["acc"])
        if not math.isfinite(value):
            top = max(loglikelihoods)
            value = float(reference(doc, [(ll - top, False) for ll in loglikelihoods])["acc"])
    return value


def score(row: dict, output: str) -> dict:
    """MC2 (headline) and MC1 from the choices' log-likelihoods (the output)."""
    lls = choice_loglikelihoods(output)
    if len(lls) != len(row["choices"]):
        raise ValueError(f"{len(lls)} log-likelihoods for {len(row['choices'])} choices")
    mc2 = list(dict.fromkeys(row["mc2_indices"]))  # each distinct choice once (OLMES)
    value = truthfulqa_mc2([row["labels"][i] for i in mc2], [lls[i] for i in mc2])
    mc1 = [lls[i] for i in row["mc1_indices"]]
    best = row["mc1_indices"][mc1.index(max(mc1))]
    return {"score": value, "mc1": float(row["labels"][best] == 1)}


TRUTHFULQA = Benchmark(
    name="truthfulqa", paper_name="TruthfulQA",
    settings=Settings(shots=6, cot=False, kind="choice",
                      metric="MC2: normalised probability mass on the true answers (log-likelihoods)",
                      source="OLMES truthfulqa::tulu (paper Table 24: 6-shot MC2); exemplars: lm-eval "
                             "truthfulqa_mc1.yaml QA prompt (= OLMES Original:TruthfulQA); plain text, "
                             "not OLMES's chat template"),
    packaged=None, packaged_from="none: no PyPI package ships TruthfulQA",
    hub_id="truthfulqa/truthful_qa", hub_config="multiple_choice", hub_split="validation", convert=convert,
    prompt=prompt, score=score, secondary=("mc1",),
    headline="MC2 (6-shot, log-likelihood of each answer; lm-eval's process_results_mc2)",
    scorer="lm-eval's tasks/truthfulqa/utils.py process_results_mc2 (that function, loaded by path), "
           "each distinct mc2 choice once as OLMES; MC1 as OLMES's MC1MC2Accuracy",
    offline="everything, with a backend that has loglikelihood() (hf, vllm; not an OpenAI endpoint), given "
            "the rows: a local copy in the hub's schema (or the hub); none is packaged")
