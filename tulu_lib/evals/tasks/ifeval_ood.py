"""IFEval-OOD (the Tülu 3 unseen suite's precise instruction following): 0-shot in chat format,
prompt-level loose accuracy, scored with IFBench's checkers.

What it is in the release: OLMES task ``ifeval_ood::tulu`` (class ``OODIFEval``, "for Tulu3
project": chat, the dataset's ``train`` split, IFEval's four metrics; OLMES lists it in its
``ifbench::tulu`` suite, not in ``tulu_3_unseen``). Its prompts are ``valpy/ifeval_ood3``
(``train``; AI2's decontamination config names it ``if_ood``), IFEval's schema (``key``,
``prompt``, ``instruction_id_list``, ``kwargs``) with constraints unseen in IFEval. It is the
precursor of IFBench (Pyatkin et al. 2025, ``allenai/IFBench_test``: 58 such constraints on 300
WildChat prompts; OLMES's later ``IFBench`` task has ``OODIFEval``'s class docstring and metrics),
and olmo-eval's ``ifeval_ood`` now mirrors ``ifeval_ood::tulu`` on IFBench data
(``allenai/IFBench_test2``, ``max_gen_toks`` 2048, primary ``prompt_level_loose_acc``): those
settings are used here.

Scorer: IFBench's 58 checkers (:mod:`tulu_lib.evals.ifbench_checks`), imported, with
:mod:`tulu_lib.evals.tasks.ifbench`'s scoring. A prompt carrying a constraint id that is not one
of IFBench's (the Tülu-3-era ids may differ; the dataset could not be read offline to check) or
whose checker's resource is missing is skipped and counted with the id named, never scored.

Usage::

    IFEVAL_OOD.load("valpy/ifeval_ood3")           # or a local .jsonl in IFEval's schema
"""

from __future__ import annotations

from tulu_lib.evals.ifbench_checks import IFBENCH_INSTRUCTIONS, unscorable_reason
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks.ifbench import score, warm_up
from tulu_lib.evals.tasks.ifeval import convert, prompt

__all__ = ["IFEVAL_OOD", "convert", "prompt", "score", "unscorable", "warm_up"]


def unscorable(row: dict) -> str | None:
    """Why this prompt cannot be scored here: a constraint IFBench has no checker for, or one
    whose resource is not installed."""
    unknown = [iid for iid in dict.fromkeys(row["instruction_id_list"]) if iid not in IFBENCH_INSTRUCTIONS]
    if unknown:
        return f"constraint {unknown[0]!r} is not one of IFBench's 58 checkers"
    return unscorable_reason(row["instruction_id_list"])


IFEVAL_OOD = Benchmark(
    name="ifeval_ood", paper_name="IFEval-OOD (unseen suite)",
    settings=Settings(shots=0, cot=False, kind="chat", metric="prompt-level loose accuracy",
                      source="OLMES ifeval_ood::tulu (OODIFEval); max_gen_toks 2048 and the primary metric "
                             "as olmo-eval's mirror of it"),
    packaged=None, packaged_from="none: no installed package ships IFEval-OOD",
    hub_id="valpy/ifeval_ood3", hub_split="train", convert=convert,
    prompt=prompt, score=score, secondary=("prompt_strict", "inst_loose", "inst_strict"),
    max_new_tokens=2048, unscorable=unscorable,
    headline="prompt-level loose accuracy (IFBench's checkers, tulu_lib.evals.ifbench_checks)",
    scorer="ours: tulu_lib.evals.ifbench_checks (IFBench's 58 constraints, following allenai/IFBench)",
    offline="the prompts whose constraints are IFBench's and whose checkers' resources are installed "
            "(others skipped and counted); needs the hub or a local copy (no package ships it)")
