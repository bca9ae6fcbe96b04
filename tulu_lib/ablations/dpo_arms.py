"""The paper's DPO ablations (§5) as arms: the algorithms (Table 18) and the preference data
(Figures 8–11). Figure 17 (memory) is :mod:`tulu_lib.ablations.memory`.

Table 18 (:func:`algorithm_arms`): each loss of ``dpo.ablate_losses`` from the same SFT checkpoint,
data and seed, at its own β. Each data sweep builds preference sets that differ in one thing and
trains each from the same SFT checkpoint with the same loss, optimiser and seed
(``dpo.sweeps.epochs`` over its own pairs, so a bigger set trains more steps, as in the paper;
:func:`sweep_arms`):

* Figure 8 (:func:`unique_prompt_subsets`) — nested subsets with N unique prompts: one seeded
  shuffle, one pair per prompt, the first N.
* Figure 9 (:func:`duplicated_prompt_sets`) — the same unique prompts, each repeated c times.
  The paper duplicated a prompt with *different* response pairs; the stand-in has one pair per
  prompt, so a copy here is the same pair again: the sweep can show whether repeating pairs
  helps, not whether new responses to a seen prompt do.
* Figure 10 (:func:`reuse_split`) — pairs whose prompt the SFT data contains ("reused") vs pairs
  from the same sources whose prompt it lacks ("new"), the same count per source in both arms.
  They are drawn from the whole preference source named in params (:func:`preference_pool`,
  decontaminated with the params' rules), since the run's own preference sample rarely shares
  prompts with its SFT sample.
* Figure 11 (:func:`synthesize_on_policy`) — on-policy pairs: k completions by the SFT model for
  prompts with a verifiable answer, judged by :func:`tulu_lib.evals.verifiers.verify` (chosen = a
  verified completion, rejected = a failed one; prompts without both are dropped and counted). The
  paper judged with an LLM (GPT-4o) on a 1–5 scale; ours is a verifiable judge. Compared with the
  same number of off-policy stand-in pairs (other prompts: model-pool answers and rule-made
  rejections), their union, and the SFT model itself ("initial").

Every arm runs through :func:`tulu_lib.ablations.arms.run_arms` and is read by
:func:`~tulu_lib.ablations.arms.save_ablation` against :data:`ABLATIONS`.

Usage::

    variants = unique_prompt_subsets(prefs, [50, 100, 200], seed=123)
    fig08 = ABLATIONS["fig08_unique_prompts"]
    table, _ = arms.run_arms(fig08, sweep_arms(p, variants), start=sft_model, p=p, out_dir=folder)
    arms.save_ablation(stage, fig08, table)   # table, figure, reading
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasets
import pandas as pd

from tulu_lib.ablations.arms import Ablation, Arm
from tulu_lib.core.params import DPOParams, OnPolicySweep, Params
from tulu_lib.data import decontam, loader
from tulu_lib.evals import registry, verifiers
from tulu_lib.generation.types import Generator, SamplingParams
from tulu_lib.train.dpo import TRL_LOSS

# ---------------------------------------------------------------------- sweep data


def _unique_prompt_order(pairs: datasets.Dataset, seed: int) -> list[int]:
    """Row indices in one seeded shuffle, keeping the first pair of each prompt."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    seen: set[str] = set()
    keep = []
    for i, prompt in zip(order, (pairs[i]["prompt"] for i in order), strict=True):
        key = loader.prompt_key(prompt)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def unique_prompt_subsets(pairs: datasets.Dataset, sizes: Sequence[int], seed: int,
                          ) -> dict[int, datasets.Dataset]:
    """Figure 8: for each N, the first N unique prompts of one seeded shuffle (nested subsets)."""
    order = _unique_prompt_order(pairs, seed)
    if max(sizes) > len(order):
        raise ValueError(f"unique_prompts asks for {max(sizes)} prompts; the preference data has "
                         f"{len(order)} unique prompts")
    return {n: pairs.select(order[:n]) for n in sizes}


def duplicated_prompt_sets(pairs: datasets.Dataset, prompts: int, copies: Sequence[int], seed: int,
                           ) -> dict[int, datasets.Dataset]:
    """Figure 9: the same ``prompts`` unique prompts, each pair repeated c times (ids ``<id>#<k>``)."""
    (base,) = unique_prompt_subsets(pairs, [prompts], seed).values()
    rows = base.to_list()
    return {c: datasets.Dataset.from_list([{**r, "id": f"{r['id']}#{k}"} for k in range(c) for r in rows])
            for c in copies}


def preference_pool(p: Params) -> datasets.Dataset:
    """The whole preference source of ``p.data.preferences`` (no mix, no limit), decontaminated
    against ``p.decontamination.benchmarks`` with the same rules as the 01_data stage."""

    spec = dataclasses.replace(p.data.preferences, limit=None, mix={})
    pool = loader.load_preferences(spec, seed=p.seed).dataset
    dc = p.decontamination
    index = decontam.BenchmarkIndex.build(registry.benchmark_texts(dc.benchmarks), ngram=dc.ngram)
    return decontam.decontaminate(pool, index, ngram=dc.ngram, overlap_threshold=dc.overlap_threshold,
                                  flag_threshold=dc.flag_threshold, removal=dc.removal,
                                  rule=dc.rule, num_proc=dc.num_proc, progress=False).dataset


def tag_reused(pairs: datasets.Dataset, sft: datasets.Dataset) -> list[bool]:
    """Per pair: does some SFT conversation have the same prompt (the user turns before a reply)?"""
    seen = {loader.prompt_key(m[:i + 1]) for m in sft["messages"]
            for i, turn in enumerate(m) if turn["role"] == "user"}
    return [loader.prompt_key(prompt) in seen for prompt in pairs["prompt"]]


def reuse_split(pool: datasets.Dataset, sft: datasets.Dataset, pairs: int, seed: int,
                ) -> dict[str, datasets.Dataset]:
    """Figure 10: ``{"reused": ..., "new": ...}``, up to ``pairs`` each, source for source.

    Reused pairs are taken in a seeded order; each is kept only while a new pair of the same
    ``source`` is left to match it, so both arms have the same count per source.
    """
    reused = tag_reused(pool, sft)
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    new_by_source: dict[str, list[int]] = {}
    for i in order:
        if not reused[i]:
            new_by_source.setdefault(pool[i]["source"], []).append(i)
    arms: dict[str, list[int]] = {"reused": [], "new": []}
    for i in (i for i in order if reused[i]):
        left = new_by_source.get(pool[i]["source"])
        if left:
            arms["reused"].append(i)
            arms["new"].append(left.pop(0))
            if len(arms["reused"]) == pairs:
                break
    if not arms["reused"]:
        raise ValueError(f"no preference prompt of the pool ({len(pool)} pairs) occurs in the SFT data "
                         f"({len(sft)} conversations) with a new prompt of the same source to match it")
    if len(arms["reused"]) < pairs:
        print(f"[dpo_sweeps] reused_vs_new: only {len(arms['reused'])} matched pairs per arm "
              f"(asked for {pairs}; {sum(reused)} pool pairs have an SFT prompt)")
    return {arm: pool.select(rows) for arm, rows in arms.items()}


@dataclass
class OnPolicyPairs:
    """Synthesized pairs, what happened to every prompt, and every judged completion."""

    pairs: datasets.Dataset | None  # None when no prompt had both a verified and a failed completion
    counts: dict[str, int]
    judged: pd.DataFrame  # id, dataset, sample, verified (None: empty), finished, tokens, text


def synthesize_on_policy(generator: Generator, prompts: datasets.Dataset, spec: OnPolicySweep, seed: int,
                         ) -> OnPolicyPairs:
    """Figure 11's pipeline with a verifiable judge: ``spec.samples`` completions for each of
    ``spec.prompts`` RLVR rows (``messages, ground_truth, dataset``), verified; chosen = a
    verified completion (one that ended if any did), rejected = a failed one, both picked by a
    seeded draw. Empty completions are neither; pairs then pass the preference data checks."""
    rows = prompts.shuffle(seed=seed).select(range(min(spec.prompts, len(prompts))))
    sampling = SamplingParams(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                              n=spec.samples, seed=seed)
    outputs = generator.generate([r["messages"] for r in rows], sampling)
    rng = random.Random(seed)
    counts = Counter(prompts=len(rows))
    judged, candidates = [], []
    for row, completions in zip(rows, outputs, strict=True):
        verdicts = [verifiers.verify(row["dataset"], c.text, row["ground_truth"]) if c.text.strip() else None
                    for c in completions]
        judged += [{"id": row["id"], "dataset": row["dataset"], "sample": k, "verified": v,
                    "finished": c.finished, "tokens": c.num_tokens, "text": c.text}
                   for k, (c, v) in enumerate(zip(completions, verdicts, strict=True))]
        verified = [c for c, v in zip(completions, verdicts, strict=True) if v]
        failed = [c.text for c, v in zip(completions, verdicts, strict=True) if v is False]
        counts.update(completions=len(completions), verified=len(verified), failed=len(failed),
                      empty=verdicts.count(None))
        if not verified or not failed:
            counts["prompts without a verified and a failed completion"] += 1
            continue
        chosen = rng.choice([c for c in verified if c.finished] or verified).text
        candidates.append({"id": f"on_policy/{row['id']}", "source": f"on_policy_{row['dataset']}",
                           "prompt": row["messages"], "chosen": [{"role": "assistant", "content": chosen}],
                           "rejected": [{"role": "assistant", "content": rng.choice(failed)}]})
    kept, report = loader.clean_rows("preferences", candidates, "on-policy synthesis")
    counts.update({f"pairs dropped: {reason}": n for reason, n in report.dropped.items()})
    counts["pairs"] = len(kept)
    return OnPolicyPairs(datasets.Dataset.from_list(kept) if kept else None, dict(counts),
                         pd.DataFrame(judged))


def on_policy_variants(on_policy: datasets.Dataset, off_policy: datasets.Dataset, seed: int,
                       ) -> dict[str, datasets.Dataset | None]:
    """Figure 11's arms: the SFT model (``None``: not trained), as many off-policy pairs as there
    are on-policy ones, the on-policy pairs, and both together."""
    n = len(on_policy)
    if n > len(off_policy):
        raise ValueError(f"{n} on-policy pairs but only {len(off_policy)} off-policy pairs to match them")
    columns = ["id", "prompt", "chosen", "rejected", "source"]
    off = off_policy.shuffle(seed=seed).select(range(n)).select_columns(columns)
    on = on_policy.select_columns(columns).cast(off.features)
    return {"initial": None, "off-policy": off, "on-policy": on,
            "off+on-policy": datasets.concatenate_datasets([off, on])}


# ------------------------------------------------------------------- train, evaluate


def sweep_params(dpo: DPOParams) -> DPOParams:
    """``dpo`` training ``sweeps.epochs`` over each variant's pairs (``max_steps`` off)."""
    optim = dataclasses.replace(dpo.optim, epochs=dpo.sweeps.epochs, max_steps=-1)
    return dataclasses.replace(dpo, optim=optim)


def algorithm_arms(p: Params, pairs: datasets.Dataset) -> list[Arm]:
    """Table 18: the recipe's loss (the stage's own run) and each of ``dpo.ablate_losses``, on the
    same pairs from the same SFT checkpoint, each at its own β (and SimPO's γ/β) from ``dpo.per_loss``."""
    out = []
    for loss in dict.fromkeys((p.dpo.loss, *p.dpo.ablate_losses)):
        q = dataclasses.replace(p, dpo=dataclasses.replace(p.dpo, loss=loss))
        settled = q.dpo.settled()
        settings = {"trl loss": TRL_LOSS[loss], "beta": settled.beta,
                    "gamma/beta": settled.gamma_beta_ratio if loss == "simpo" else None}
        out.append(Arm(loss, "dpo", q, pairs, settings, main=loss == p.dpo.loss))
    return out


def sweep_arms(p: Params, variants: Mapping) -> list[Arm]:
    """A data sweep's arms: each variant's pairs (``None``: the SFT model scored as it is) trained
    for ``dpo.sweeps.epochs`` over its own pairs (:func:`sweep_params`)."""
    q = dataclasses.replace(p, dpo=sweep_params(p.dpo))
    untrained = {"pairs": 0, "unique prompts": 0, "steps": 0, "final loss": None}
    return [Arm(label, "dpo", q, pairs) if pairs is not None else Arm(label, None, q, settings=untrained)
            for label, pairs in variants.items()]


# ---------------------------------------------------------------- reading, reporting


ABLATIONS = {a.name: a for a in (
    Ablation("fig08_unique_prompts", "Figure 8", "unique prompts", "last",
             note="nested subsets of the run's preference pairs, one pair per prompt, one epoch each"),
    Ablation("fig09_duplicated_prompts", "Figure 9", "copies per prompt", "first",
             note="the same unique prompts, each pair repeated: the stand-in has one pair per prompt, "
                  "so a copy is the same pair again (the paper's copies had new responses)"),
    Ablation("fig10_reused_vs_new", "Figure 10", "prompts", "new",
             paper_rows={"reused": "DPO w. reused prompts", "new": "DPO w. new prompts"},
             note="pairs from the whole preference source, matched per source; reused = the prompt "
                  "is in this run's SFT data"),
    Ablation("fig11_on_policy", "Figure 11", "responses", "on-policy", ("on-policy", "off-policy"),
             paper_rows={v: v for v in ("initial", "off-policy", "on-policy", "off+on-policy")},
             note="on-policy pairs from the SFT model's samples judged by the verifiers (the paper: "
                  "an LLM judge); off-policy = as many stand-in pairs for other prompts"),
    Ablation("table18_dpo_algorithms", "Table 18", "algorithm", "dpo_norm",
             paper_rows={"dpo_norm": "best overall"}, finding=("dpo_norm_vs_dpo", "dpo", "dpo_norm"),
             note="the run's preference pairs; no PPO; the paper's Table 18 numbers are not in the "
                  "reference CSV, only its finding"),
)}
