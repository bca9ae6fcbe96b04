"""The RLVR ablations: which arms each one trains, that arms shared by two ablations train once,
and that a finished arm is not trained again."""

import dataclasses
import json

import pytest

from tulu_lib.ablations import arms, rlvr_arms
from tulu_lib.core.params import load_params
from tulu_lib.train import rlvr

ALL = ["rlvr.ablate_value_init=true", "rlvr.ablate_reward_model_score=0.5", "rlvr.compare_algorithms=true",
       "rlvr.beta_sweep=[0.0]", "rlvr.warmup_sweep=[0.1]"]


def _plan(overrides, algorithm="grpo", rows=None):
    p = load_params("params/smoke.yaml", [*overrides, f"rlvr.algorithm={algorithm}"])
    p = rlvr.with_reward_model(p, "/models/rm")
    return p, rlvr_arms.plan(p, rows)


def _main(group):
    return next((a.label for a in group if a.main), None)


def test_each_ablation_varies_one_setting_and_nothing_else():
    p, plan = _plan(ALL)
    assert set(plan) == {"value_init", "rm_score", "algorithms", "beta_warmup"}
    s = {name: [a.settings for a in group] for name, group in plan.items()}
    assert [x["value model"] for x in s["value_init"]] == ["reward_model", "policy"]
    assert [x["RM multiplier"] for x in s["rm_score"]] == [0.0, 0.5]
    assert all(x["algorithm"] == "ppo" for name in ("value_init", "rm_score") for x in s[name])
    assert [x["algorithm"] for x in s["algorithms"]] == ["ppo", "grpo"]
    # Figure 16: every beta crossed with every warm-up ratio, the recipe's own among them
    grid = {(x["beta"], x["warm-up ratio"]) for x in s["beta_warmup"]}
    assert grid == {(b, w) for b in (0.0, p.rlvr.beta) for w in (p.rlvr.optim.warmup_ratio, 0.1)}
    # apart from the ablated setting, every arm trains like the stage: steps, batch, replies, prompts
    for group in plan.values():
        for arm in group:
            r = arm.params.rlvr
            assert arm.stage == "rlvr" and r.optim.max_steps == p.rlvr.optim.max_steps
            assert r.optim.per_device_batch_size == p.rlvr.optim.per_device_batch_size
            assert r.max_new_tokens == p.rlvr.max_new_tokens and r.ppo.reward_model == "/models/rm"
            assert arm.params.sft == p.sft and arm.params.seed == p.seed
    # PPO vs GRPO: GRPO groups rlvr.num_generations replies; PPO one reply per prompt
    ppo_arm, grpo_arm = plan["algorithms"]
    assert grpo_arm.params.rlvr.num_generations == p.rlvr.num_generations
    assert ppo_arm.params.rlvr.ppo.num_generations == 1
    # the stage's own run is an arm of Figure 16 and of PPO vs GRPO: scored, never retrained
    assert _main(plan["beta_warmup"]) == f"beta {p.rlvr.beta:g}, warm-up {p.rlvr.optim.warmup_ratio:g}"
    assert _main(plan["algorithms"]) == "grpo" and _main(plan["value_init"]) is None
    assert rlvr_arms.ablation("beta_warmup", plan["beta_warmup"]).expected_best == _main(plan["beta_warmup"])


def test_the_rm_initialised_ppo_arm_is_one_arm_in_three_ablations(letter_rows):
    p, plan = _plan(ALL, rows=letter_rows(4, at_least=3))
    same = [plan["value_init"][0], plan["rm_score"][0], plan["algorithms"][0]]
    assert len({arms.arm_key(a, "tiny-llama", p) for a in same}) == 1
    assert arms.arm_key(plan["value_init"][1], "tiny-llama", p) != arms.arm_key(same[0], "tiny-llama", p)
    # under PPO the stage's own run is that arm
    p, plan = _plan(ALL, algorithm="ppo")
    assert _main(plan["value_init"]) == "value from reward_model"


def test_nothing_planned_unless_asked_and_bad_values_are_refused():
    _, plan = _plan(["rlvr.beta_sweep=[]", "rlvr.ablate_value_init=false", "rlvr.compare_algorithms=false"])
    assert plan == {}
    with pytest.raises(Exception, match="warmup_sweep"):
        load_params("params/smoke.yaml", ["rlvr.warmup_sweep=[1.5]"])
    with pytest.raises(Exception, match="multiplier"):
        load_params("params/smoke.yaml", ["rlvr.ablate_reward_model_score=-1"])


def test_arms_train_score_and_are_kept(tmp_path, letter_rows, monkeypatch):
    """Two tiny GRPO arms (beta 0.05 and 0) train through train.entry, are scored on the same items,
    and a rerun reuses their rows without training."""
    p = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=1", "rlvr.max_new_tokens=8",
                                          "rlvr.beta_sweep=[0.0]", "rlvr.non_eos_penalty=null",
                                          "eval.max_new_tokens=8"])
    rows = letter_rows(4, at_least=3)
    # both arms train here (none is scored as the stage's own run)
    group = [dataclasses.replace(a, main=False) for a in rlvr_arms.plan(p, rows)["beta_warmup"]]
    spec = rlvr_arms.ablation("beta_warmup", group)
    table, curves = arms.run_arms(spec, group, start="tiny-llama", p=p, out_dir=tmp_path)
    assert table["arm"].tolist() == [a.label for a in group]
    assert (table["steps"] == 1).all() and set(curves) == set(table["arm"])
    assert {"reward (last quarter)", "% verified (last quarter)", "average"} <= set(table.columns)
    items = [json.loads(x) if isinstance(x, str) else x for x in table[arms.ITEMS]]
    assert all(set(i) == set(p.eval.ablation_benchmarks) for i in items)
    assert not list(tmp_path.glob("*/train/final"))  # weights deleted once scored

    def no_training(*a, **k):
        raise AssertionError("a finished arm was trained again")

    monkeypatch.setattr(arms.entry, "train", no_training)
    again, _ = arms.run_arms(spec, group, start="tiny-llama", p=p, out_dir=tmp_path)
    assert again.drop(columns=[arms.ITEMS]).equals(table.drop(columns=[arms.ITEMS]))
    read = arms.read_ablation(spec, table)
    assert "paired" in read and "n" in read
