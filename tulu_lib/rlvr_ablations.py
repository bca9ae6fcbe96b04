"""The paper's RLVR ablations (§6, Figure 16) as arms of one comparison each.

An arm is an RLVR run that differs from the stage's own run in one setting: the value model's
initialisation (a reward model vs the policy), the reward (verifiable alone vs plus the reward
model's score), β × warm-up ratio (Figure 16) or the algorithm (PPO vs GRPO). Every arm starts
from the same checkpoint, sees the same training prompts, trains the same steps on the same
number of replies per step (PPO: one reply per prompt, more prompts; GRPO: groups of replies)
and the same seed. Its final checkpoint is scored on ``eval.ablation_benchmarks`` — the same
items for every arm, so :func:`tulu_lib.ablations.save_ablation` reads the paper's finding
paired on items — and its recorded training replies give the last-quarter reward, verified and
cut-off shares. An arm that appears in several ablations (PPO with the RM-initialised value
model is in three) trains once: arms are cached by a key of everything they depend on.

Usage::

    plan = rlvr_ablations.plan(p, settings)            # ablation name -> its arms
    arms = plan["value_init"]
    table, curves = rlvr_ablations.run_arms(arms, start, rows, p, out_dir, main=(arm, result, run_dir))
    ablations.save_ablation(stage, rlvr_ablations.ablation("value_init", arms, p, settings), table)
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tulu_lib import ablations, rlvr, rlvr_train
from tulu_lib.ablations import Ablation
from tulu_lib.params import Params, PPOParams, RLVRParams, section_hash


@dataclass(frozen=True)
class Arm:
    """One RLVR run of an ablation: its label in the table and the settings it trains with."""

    label: str
    rlvr: RLVRParams
    ppo: PPOParams

    @property
    def settings(self) -> dict:
        """What the table shows of the arm's settings (and what tells two arms apart)."""
        s = {"algorithm": self.rlvr.algorithm, "beta": self.rlvr.beta,
             "warm-up ratio": self.rlvr.optim.warmup_ratio}
        if self.rlvr.algorithm == "ppo":
            s.update({"value model": self.ppo.value_model, "RM multiplier": self.ppo.reward_model_multiplier})
        return s


def _arm(label: str, base: RLVRParams, settings: PPOParams, **change) -> Arm:
    ppo_change = {k: change.pop(k) for k in ("value_model", "reward_model_multiplier") if k in change}
    warmup = change.pop("warmup_ratio", None)
    r = dataclasses.replace(base, **change)
    if warmup is not None:
        r = dataclasses.replace(r, optim=dataclasses.replace(r.optim, warmup_ratio=warmup))
    return Arm(label, r, dataclasses.replace(settings, **ppo_change))


def plan(p: Params, settings: PPOParams) -> dict[str, list[Arm]]:
    """Ablation name -> its arms, for the ablations ``p.rlvr`` enables; the stage's own run is the
    arm whose settings equal ``p.rlvr`` (``settings``: its PPO settings, the reward model resolved).
    PPO vs GRPO gives PPO one reply per prompt and GRPO ``rlvr.num_generations`` per prompt, at the
    same replies per step."""
    r, out = p.rlvr, {}
    ppo_base = dataclasses.replace(r, algorithm="ppo")
    if r.ablate_value_init:
        out["value_init"] = [_arm(f"value from {v}", ppo_base, settings, value_model=v)
                             for v in ("reward_model", "policy")]
    if r.ablate_reward_model_score:
        m = r.ablate_reward_model_score
        out["rm_score"] = [_arm("verifiable", ppo_base, settings, reward_model_multiplier=0.0),
                           _arm(f"verifiable + {m:g} x RM", ppo_base, settings, reward_model_multiplier=m)]
    if r.compare_algorithms:
        out["algorithms"] = [_arm(a, r, settings, algorithm=a) for a in ("ppo", "grpo")]
    if r.beta_sweep or r.warmup_sweep:
        betas = sorted(set(r.beta_sweep) | {r.beta})
        warmups = sorted(set(r.warmup_sweep) | {r.optim.warmup_ratio})
        out["beta_warmup"] = [_arm(f"beta {b:g}, warm-up {w:g}", r, settings, beta=b, warmup_ratio=w)
                              for b in betas for w in warmups]
    return out


def main_label(arms: Sequence[Arm], p: Params, settings: PPOParams) -> str | None:
    """The label of the arm that is the stage's own run, or None."""
    own = Arm("", p.rlvr, settings).settings
    return next((a.label for a in arms if a.settings == own), None)


def _key(arm: Arm, start: str, rows, p: Params) -> str:
    from tulu_lib import data

    ppo = arm.ppo if arm.rlvr.algorithm == "ppo" else None
    return section_hash([start, arm.rlvr, ppo, p.eval.ablation(), p.eval.max_new_tokens, p.model, p.seed,
                         data.fingerprint(rows)])


def _reply_shares(run_dir: Path, seed: int) -> dict:
    """Last-quarter mean reward, % verified and % cut off of a run's recorded training replies."""
    records = rlvr.rollout_records(run_dir)
    if records.empty:
        return {}
    out = {}
    for quantity, name in (("reward", "reward (last quarter)"), ("verified", "% verified (last quarter)"),
                           ("truncated", "% cut off (last quarter)")):
        out[name] = rlvr.reward_change(records, quantity, seed=seed)["mean_b"]
    return out


def run_arms(arms: Sequence[Arm], start: str, rows, p: Params, out_dir: str | Path,
             main: tuple[Arm, rlvr.RLVRResult, Path] | None = None) -> tuple[pd.DataFrame, dict]:
    """Train (or reuse) and score each arm: one table row per arm (its settings, steps, seconds,
    final KL, last-quarter reward shares, :func:`tulu_lib.ablations.score_row` of its final
    checkpoint) and label -> its log table (for curves). ``main``: the stage's own run (arm,
    result, run folder), evaluated instead of trained again. Arms are cached under
    ``out_dir/<key>/`` (:func:`tulu_lib.ablations.cached_row`); trained weights are deleted once
    scored (the rollout records and logs stay)."""
    from tulu_lib.evals import evaluate_checkpoint

    out_dir = Path(out_dir)
    rows_out, curves = [], {}
    for arm in arms:
        key = _key(arm, start, rows, p)
        folder = out_dir / key
        is_main = main is not None and arm.settings == main[0].settings

        def compute(arm=arm, folder=folder, is_main=is_main) -> dict:
            if is_main:
                result, run_dir = main[1], main[2]
            else:
                run_dir = folder / "train"
                result = rlvr_train.train(start, rows, p, run_dir, arm.rlvr, arm.ppo)
            logs = rlvr_train.logs_table(result)
            logs.to_csv(folder / "log.csv", index=False)
            row = {**arm.settings, "steps": int(logs["step"].max()) if len(logs) else 0,
                   "seconds": round(result.seconds), "final KL": rlvr.final_kl(logs),
                   **_reply_shares(run_dir, p.seed)}
            row.update(ablations.score_row(evaluate_checkpoint(result.checkpoint, p, folder / "eval")))
            if not is_main:
                for _, path in rlvr.checkpoints(run_dir):
                    shutil.rmtree(path)
                shutil.rmtree(result.checkpoint, ignore_errors=True)
            return row

        row = ablations.cached_row(folder, key, compute)
        rows_out.append({"arm": arm.label, **row})
        log_file = folder / "log.csv"
        curves[arm.label] = pd.read_csv(log_file) if log_file.is_file() else pd.DataFrame()
    return pd.DataFrame(rows_out), curves


ABLATIONS = {a.name: a for a in (
    Ablation("rlvr_value_init", "§6 value model", "arm", "value from reward_model",
             note="PPO; the reward model is the one 04_rlvr uses (trained on the run's preference pairs "
                  "unless rlvr.ppo.reward_model names one); 'policy' = the starting checkpoint with a fresh "
                  "value head"),
    Ablation("rlvr_rm_score", "§6 reward model score", "arm", "verifiable",
             note="PPO; the RM score is added to the verifiable reward at the end of each reply"),
    Ablation("fig16_beta_warmup", "Figure 16", "arm", "",
             note="each (beta, warm-up ratio) from the same start and seed; at beta 0 TRL computes no KL"),
    Ablation("rlvr_ppo_vs_grpo", "§6 PPO vs GRPO", "arm", "ppo",
             note="the same prompts, steps and replies per step: PPO one reply per prompt, GRPO groups"),
)}

NAMES = {"value_init": "rlvr_value_init", "rm_score": "rlvr_rm_score", "beta_warmup": "fig16_beta_warmup",
         "algorithms": "rlvr_ppo_vs_grpo"}


def ablation(name: str, arms: Sequence[Arm], p: Params, settings: PPOParams) -> Ablation:
    """The :class:`~tulu_lib.ablations.Ablation` of plan entry ``name``; Figure 16's expected best
    is the recipe's own (β, warm-up) arm."""
    a = ABLATIONS[NAMES[name]]
    if name == "beta_warmup":
        a = dataclasses.replace(a, expected_best=main_label(arms, p, settings) or arms[0].label)
    return a

