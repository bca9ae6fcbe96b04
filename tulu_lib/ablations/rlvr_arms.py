"""The paper's RLVR ablations (§6, Figure 16) as arms of one comparison each.

An arm is an RLVR run that differs from the stage's own run in one setting: the value model's
initialisation (a reward model vs the policy), the reward (verifiable alone vs plus the reward
model's score), β × warm-up ratio (Figure 16) or the algorithm (PPO vs GRPO). Every arm starts
from the same checkpoint, sees the same training prompts, trains the same steps on the same
number of replies per step (PPO: one reply per prompt, more prompts; GRPO: groups of replies)
and the same seed. Through :func:`tulu_lib.ablations.arms.run_arms` its final checkpoint is scored
on ``eval.ablation_benchmarks`` (the same items for every arm: the reading is paired) and its
recorded training replies give the last-quarter reward, verified and cut-off shares. The arm equal
to the stage's own run is scored, not trained again; an arm that appears in several ablations (PPO
with the RM-initialised value model is in three) trains once: arms are cached by their key.

Usage::

    for name, group in plan(p).items():          # p.rlvr.ppo.reward_model resolved
        table, curves = arms.run_arms(ablation(name, group), group, start=start, p=p, out_dir=d,
                                      main=result, main_dir=run_dir)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import datasets

from tulu_lib.ablations.arms import Ablation, Arm
from tulu_lib.core.params import Params, RLVRParams


def _settings(r: RLVRParams) -> dict:
    """What the table shows of an arm's settings (and what tells two arms apart)."""
    s = {"algorithm": r.algorithm, "beta": r.beta, "warm-up ratio": r.optim.warmup_ratio}
    if r.algorithm == "ppo":
        s.update({"value model": r.ppo.value_model, "RM multiplier": r.ppo.reward_model_multiplier})
    return s


def _arm(label: str, p: Params, rows: datasets.Dataset, base: RLVRParams, **change) -> Arm:
    ppo = {k: change.pop(k) for k in ("value_model", "reward_model_multiplier") if k in change}
    warmup = change.pop("warmup_ratio", None)
    r = dataclasses.replace(base, **change, ppo=dataclasses.replace(base.ppo, **ppo))
    if warmup is not None:
        r = dataclasses.replace(r, optim=dataclasses.replace(r.optim, warmup_ratio=warmup))
    return Arm(label, "rlvr", dataclasses.replace(p, rlvr=r), rows, _settings(r), main=r == p.rlvr)


def plan(p: Params, rows: datasets.Dataset) -> dict[str, list[Arm]]:
    """Ablation name -> its arms on the training prompts ``rows``, for the ablations ``p.rlvr``
    enables (``p.rlvr.ppo.reward_model`` resolved). PPO vs GRPO gives PPO one reply per prompt and
    GRPO ``rlvr.num_generations`` per prompt, at the same replies per step."""
    r, out = p.rlvr, {}
    ppo_base = dataclasses.replace(r, algorithm="ppo")
    if r.ablate_value_init:
        out["value_init"] = [_arm(f"value from {v}", p, rows, ppo_base, value_model=v)
                             for v in ("reward_model", "policy")]
    if r.ablate_reward_model_score:
        m = r.ablate_reward_model_score
        out["rm_score"] = [_arm("verifiable", p, rows, ppo_base, reward_model_multiplier=0.0),
                           _arm(f"verifiable + {m:g} x RM", p, rows, ppo_base, reward_model_multiplier=m)]
    if r.compare_algorithms:
        out["algorithms"] = [_arm(a, p, rows, r, algorithm=a) for a in ("ppo", "grpo")]
    if r.beta_sweep or r.warmup_sweep:
        betas = sorted(set(r.beta_sweep) | {r.beta})
        warmups = sorted(set(r.warmup_sweep) | {r.optim.warmup_ratio})
        out["beta_warmup"] = [_arm(f"beta {b:g}, warm-up {w:g}", p, rows, r, beta=b, warmup_ratio=w)
                              for b in betas for w in warmups]
    return out


ABLATIONS = {
    "value_init": Ablation(
        "rlvr_value_init", "§6 value model", "arm", "value from reward_model",
        note="PPO; the reward model is the one 04_rlvr uses (trained on the run's preference pairs unless "
             "rlvr.ppo.reward_model names one); 'policy' = the starting checkpoint with a fresh value head"),
    "rm_score": Ablation("rlvr_rm_score", "§6 reward model score", "arm", "verifiable",
                         note="PPO; the RM score is added to the verifiable reward at the end of each reply"),
    "beta_warmup": Ablation("fig16_beta_warmup", "Figure 16", "arm", "",
                            note="each (beta, warm-up ratio) from the same start and seed; at beta 0 TRL "
                                 "computes no KL"),
    "algorithms": Ablation("rlvr_ppo_vs_grpo", "§6 PPO vs GRPO", "arm", "ppo",
                           note="the same prompts, steps and replies per step: PPO one reply per prompt, "
                                "GRPO groups"),
}


def ablation(name: str, group: Sequence[Arm]) -> Ablation:
    """The :class:`~tulu_lib.ablations.arms.Ablation` of plan entry ``name``; Figure 16's expected best
    is the recipe's own (β, warm-up) arm."""
    a = ABLATIONS[name]
    if name == "beta_warmup":
        a = dataclasses.replace(a, expected_best=next((x.label for x in group if x.main), group[0].label))
    return a
