"""The RLVR ablations: which arms each one trains, that arms shared by two ablations train once,
and that a finished arm is not trained again."""

import dataclasses
import json

import pytest

from tulu_lib import ablations, rlvr_ablations, rlvr_train
from tulu_lib.params import load_params

ALL = ["rlvr.ablate_value_init=true", "rlvr.ablate_reward_model_score=0.5", "rlvr.compare_algorithms=true",
       "rlvr.beta_sweep=[0.0]", "rlvr.warmup_sweep=[0.1]"]


def _plan(overrides, algorithm="grpo"):
    p = load_params("params/smoke.yaml", [*overrides, f"rlvr.algorithm={algorithm}"])
    settings = dataclasses.replace(p.rlvr.ppo, reward_model="/models/rm")
    return p, settings, rlvr_ablations.plan(p, settings)


def test_each_ablation_varies_one_setting_and_nothing_else():
    p, settings, plan = _plan(ALL)
    assert set(plan) == {"value_init", "rm_score", "algorithms", "beta_warmup"}
    s = {name: [a.settings for a in arms] for name, arms in plan.items()}
    assert [x["value model"] for x in s["value_init"]] == ["reward_model", "policy"]
    assert [x["RM multiplier"] for x in s["rm_score"]] == [0.0, 0.5]
    assert all(x["algorithm"] == "ppo" for name in ("value_init", "rm_score") for x in s[name])
    assert [x["algorithm"] for x in s["algorithms"]] == ["ppo", "grpo"]
    # Figure 16: every beta crossed with every warm-up ratio, the recipe's own among them
    grid = {(x["beta"], x["warm-up ratio"]) for x in s["beta_warmup"]}
    assert grid == {(b, w) for b in (0.0, p.rlvr.beta) for w in (p.rlvr.optim.warmup_ratio, 0.1)}
    # apart from the ablated setting, every arm trains like the stage: steps, batch, replies, prompts
    for arms in plan.values():
        for arm in arms:
            assert arm.rlvr.optim.max_steps == p.rlvr.optim.max_steps
            assert arm.rlvr.optim.per_device_batch_size == p.rlvr.optim.per_device_batch_size
            assert arm.rlvr.max_new_tokens == p.rlvr.max_new_tokens and arm.ppo.reward_model == "/models/rm"
    # PPO vs GRPO: GRPO groups rlvr.num_generations replies; PPO one reply per prompt
    ppo_arm, grpo_arm = plan["algorithms"]
    assert grpo_arm.rlvr.num_generations == p.rlvr.num_generations and ppo_arm.ppo.num_generations == 1
    # the stage's own run is an arm of Figure 16 and of PPO vs GRPO: scored, never retrained
    assert rlvr_ablations.main_label(plan["beta_warmup"], p, settings) == \
        f"beta {p.rlvr.beta:g}, warm-up {p.rlvr.optim.warmup_ratio:g}"
    assert rlvr_ablations.main_label(plan["algorithms"], p, settings) == "grpo"
    assert rlvr_ablations.ablation("beta_warmup", plan["beta_warmup"], p, settings).expected_best == \
        rlvr_ablations.main_label(plan["beta_warmup"], p, settings)


def test_the_rm_initialised_ppo_arm_is_one_arm_in_three_ablations():
    p, settings, plan = _plan(ALL)
    same = [plan["value_init"][0], plan["rm_score"][0], plan["algorithms"][0]]
    assert len({rlvr_ablations._key(a, "start", [], p) for a in same}) == 1
    # under PPO the stage's own run is that arm
    p, settings, plan = _plan(ALL, algorithm="ppo")
    assert rlvr_ablations.main_label(plan["value_init"], p, settings) == "value from reward_model"


def test_nothing_planned_unless_asked_and_bad_values_are_refused():
    _, _, plan = _plan(["rlvr.beta_sweep=[]", "rlvr.ablate_value_init=false",
                        "rlvr.compare_algorithms=false"])
    assert plan == {}
    with pytest.raises(Exception, match="warmup_sweep"):
        load_params("params/smoke.yaml", ["rlvr.warmup_sweep=[1.5]"])
    with pytest.raises(Exception, match="multiplier"):
        load_params("params/smoke.yaml", ["rlvr.ablate_reward_model_score=-1"])


def test_arms_train_score_and_are_kept(tmp_path, letter_rows, monkeypatch):
    """Two tiny GRPO arms (beta 0.05 and 0) train, are scored on the same items, and a rerun
    reuses their rows without training."""
    p = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=1", "rlvr.max_new_tokens=8",
                                          "rlvr.beta_sweep=[0.0]", "rlvr.non_eos_penalty=null",
                                          "eval.max_new_tokens=8"])
    settings = p.rlvr.ppo
    arms = rlvr_ablations.plan(p, settings)["beta_warmup"]
    rows = letter_rows(4, at_least=3)
    table, curves = rlvr_ablations.run_arms(arms, "tiny-llama", rows, p, tmp_path)
    assert table["arm"].tolist() == [a.label for a in arms]
    assert (table["steps"] == 1).all() and set(curves) == set(table["arm"])
    assert {"reward (last quarter)", "% verified (last quarter)", "average"} <= set(table.columns)
    items = [json.loads(x) if isinstance(x, str) else x for x in table[ablations.ITEMS]]
    assert all(set(i) == set(p.eval.ablation_benchmarks) for i in items)
    assert not list(tmp_path.glob("*/train/final"))  # weights deleted once scored

    def no_training(*a, **k):
        raise AssertionError("a finished arm was trained again")

    monkeypatch.setattr(rlvr_train, "train", no_training)
    again, _ = rlvr_ablations.run_arms(arms, "tiny-llama", rows, p, tmp_path)
    assert again.drop(columns=[ablations.ITEMS]).equals(table.drop(columns=[ablations.ITEMS]))
    read = ablations.read_ablation(rlvr_ablations.ablation("beta_warmup", arms, p, settings), table)
    assert "paired" in read and "n" in read
