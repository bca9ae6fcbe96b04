"""RLVR: per-domain verifiable rewards as TRL calls them, and GRPO really training."""

import json
import math
from pathlib import Path

import pytest
from datasets import Dataset

from tulu_lib.core import stats
from tulu_lib.core.params import load_params
from tulu_lib.train import grpo, rlvr

EOS = 2


def _call(fn, completions, ids, domains, truths, logged=None):
    return fn(prompts=[None] * len(completions), completions=completions, completion_ids=ids,
              dataset=domains, ground_truth=truths, id=[f"r{i}" for i in range(len(completions))],
              log_metric=(lambda k, v: logged.__setitem__(k, v)) if logged is not None else None)


def test_domain_rewards_alpha_zero_and_non_eos_penalty():
    params = load_params("params/smoke.yaml").rlvr
    gsm, math_fn, ifeval = rlvr.reward_functions(params, [EOS])
    completions = [[{"role": "assistant", "content": "so the answer is 42"}],
                   [{"role": "assistant", "content": "so the answer is 41"}],
                   [{"role": "assistant", "content": "so the answer is 42"}],
                   [{"role": "assistant", "content": "The answer is $\\boxed{\\frac{1}{2}}$"}],
                   [{"role": "assistant", "content": "no commas here"}]]
    ids = [[5, 6, EOS], [5, EOS], [5, 6, 7], [9, EOS], [1, EOS]]
    domains = ["gsm8k", "gsm8k", "gsm8k", "MATH", "ifeval"]
    truths = ["42", "42", "42", "0.5", json.dumps({"func_name": "validate_no_commas"})]
    logged = {}
    assert _call(gsm, completions, ids, domains, truths, logged) == [10.0, 0.0, -10.0, None, None]
    assert logged == {"gsm8k/response_length": 8 / 3, "gsm8k/truncated_fraction": 1 / 3,
                      "gsm8k/verified_fraction": 1 / 3}
    assert _call(math_fn, completions, ids, domains, truths) == [None, None, None, 10.0, None]
    assert _call(ifeval, completions, ids, domains, truths) == [None, None, None, None, 10.0]
    assert gsm.__name__ == "gsm8k"


def test_a_malformed_ground_truth_raises_naming_the_row():
    (_, _, ifeval) = rlvr.reward_functions(load_params("params/smoke.yaml").rlvr, [EOS])
    with pytest.raises(Exception, match="r0"):
        _call(ifeval, ["x"], [[EOS]], ["ifeval"], [json.dumps({"func_name": "no_such_check"})])


def test_grpo_config_carries_the_kl_coefficient():
    # the 8B recipe's bf16 needs a GPU; everything else is built as on the cluster
    params = load_params("params/tulu3-8b.yaml", ["rlvr.optim.bf16=false"])
    config = grpo.grpo_config(params.rlvr, "/tmp/unused", seed=123)
    assert config.beta == 0.05 and config.num_generations == 4 and config.max_completion_length == 2048
    assert config.learning_rate == 3e-7 and config.warmup_steps == 0.0
    assert grpo.grpo_config(params.rlvr, "/tmp/unused", seed=1, beta=0.2).beta == 0.2
    assert config.gradient_checkpointing is True and config.bf16 is False
    assert (config.vllm_tensor_parallel_size, config.vllm_gpu_memory_utilization) == (1, 0.3)
    assert not config.vllm_importance_sampling_correction  # the release's loss has no importance weights
    p70 = load_params("params/tulu3-70b.yaml", ["rlvr.optim.bf16=false"]).rlvr
    assert grpo.grpo_config(p70, "/tmp/unused", seed=8).vllm_tensor_parallel_size == 8


def test_wilson_interval():
    low, high = stats.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert stats.wilson_interval(0, 10)[0] == 0.0 and math.isnan(stats.wilson_interval(0, 0)[0])


def test_grpo_trains_the_tiny_model_and_changes_weights(tmp_path, tiny_path, letter_rows):
    import torch
    from transformers import AutoModelForCausalLM

    # A random model never emits EOS, so under the non-EOS rule every reward is the penalty and
    # every advantage 0 (no update, correctly). With the rule off, "at least 9 e's" in 16 random
    # tokens passes about half the time: rewards vary within each group and GRPO must learn.
    params = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=2", "rlvr.max_new_tokens=16",
                                               "rlvr.non_eos_penalty=null", "rlvr.optim.save_steps=1",
                                               "rlvr.loss_type=dr_grpo"])
    rows = letter_rows(8, at_least=9)
    result = grpo.train_grpo("tiny-llama", rows, params.rlvr, tmp_path, seed=0)
    before = AutoModelForCausalLM.from_pretrained(tiny_path).state_dict()
    after = AutoModelForCausalLM.from_pretrained(result.checkpoint).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    logged = [h for h in result.log_history if "kl" in h]
    assert logged and all(math.isfinite(h["kl"]) for h in logged)
    # every row is ifeval, so the per-domain KL is the overall one
    assert all(h["ifeval/kl"] == pytest.approx(h["kl"], rel=1e-4, abs=1e-9) for h in logged)
    assert not any("gsm8k/kl" in h for h in logged)
    assert any(h["reward_std"] > 0 for h in logged) and any(h["grad_norm"] > 0 for h in logged)
    # a checkpoint per step, each a loadable model; the final one holds the final weights
    assert [step for step, _ in rlvr.checkpoints(tmp_path)] == [1, 2]
    last = AutoModelForCausalLM.from_pretrained(rlvr.checkpoints(tmp_path)[-1][1]).state_dict()
    assert all(torch.equal(last[k], after[k]) for k in after)


def test_an_interrupted_rlvr_run_resumes_from_its_last_checkpoint(tmp_path, tiny_path, letter_rows):
    import shutil

    import torch
    from safetensors.torch import load_file

    params = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=3", "rlvr.max_new_tokens=8",
                                               "rlvr.non_eos_penalty=null", "rlvr.optim.save_steps=1"])
    rows = letter_rows(12, at_least=4)
    straight = grpo.train_grpo("tiny-llama", rows, params.rlvr, tmp_path / "a", seed=0)
    grpo.train_grpo("tiny-llama", rows, params.rlvr, tmp_path / "b", seed=0)
    for name in ("checkpoint-2", "checkpoint-3", "final"):  # interrupted after the first save
        shutil.rmtree(tmp_path / "b" / name)
    resumed = grpo.train_grpo("tiny-llama", rows, params.rlvr, tmp_path / "b", seed=0)
    steps = [h["step"] for h in resumed.log_history if "reward" in h]
    assert steps[-1] == 3 and 1 not in steps[len(steps) - 2:]  # went on from step 1, not from 0
    a, b = (load_file(str(r.checkpoint / "model.safetensors")) for r in (straight, resumed))
    start = load_file(str(Path(tiny_path) / "model.safetensors"))
    assert any(not torch.equal(a[k], start[k]) for k in a)  # training moved the weights ...
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # ... and the resumed run ends the same


def test_config_loss_type_comes_from_params():
    params = load_params("params/smoke.yaml", ["rlvr.loss_type=grpo"])
    assert grpo.grpo_config(params.rlvr, "/tmp/unused", seed=1).loss_type == "grpo"


class _ByCheckpoint:
    """A generator whose replies depend on the checkpoint: correct on the domains it 'knows'."""

    def __init__(self, knows: set[str]):
        self.knows = knows

    def generate(self, conversations, sampling):
        from tulu_lib.generation.types import Completion

        replies = {"gsm8k": "The answer is 4.", "MATH": "So $\\boxed{4}$."}
        return [[Completion(replies[m[-1]["content"]] if m[-1]["content"] in self.knows else "no idea",
                            True, 4)] for m in conversations]


def test_best_checkpoint_is_chosen_on_held_out_domains(tmp_path):
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        for name, text in (("config.json", "{}"), ("model.safetensors", "w"), ("trainer_state.json", "{}")):
            (tmp_path / f"checkpoint-{step}" / name).write_text(text)
    (tmp_path / "checkpoint-8").mkdir()  # an interrupted save: no weights or state, not a checkpoint
    (tmp_path / "checkpoint-8" / "model.safetensors").write_text("w")
    rows = Dataset.from_list([{"messages": [{"role": "user", "content": d}], "ground_truth": "4",
                               "dataset": d} for d in ("gsm8k", "MATH")])
    knows = {"checkpoint-2": set(), "checkpoint-4": {"gsm8k"}, "checkpoint-6": {"MATH"}}
    table = rlvr.score_checkpoints(lambda path: _ByCheckpoint(knows[path.rsplit("/", 1)[1]]), tmp_path, rows)
    assert sorted(table["step"].unique()) == [2, 4, 6] and len(table) == 6
    assert rlvr.best_checkpoint(table, ["MATH"]) == (6, tmp_path / "checkpoint-6")
    assert rlvr.best_checkpoint(table, ["gsm8k"])[0] == 4
    assert rlvr.best_checkpoint(table, ["gsm8k", "MATH"])[0] == 4  # a tie goes to the earliest step
    with pytest.raises(ValueError, match="ifeval"):
        rlvr.best_checkpoint(table, ["ifeval"])


def test_every_scored_reply_is_recorded_with_its_step_and_a_resume_drops_later_steps(tmp_path):
    from types import SimpleNamespace

    record = tmp_path / rlvr.ROLLOUTS.format(rank=0)
    (gsm, *_) = rlvr.reward_functions(load_params("params/smoke.yaml").rlvr, [EOS], record)
    for step in (0, 1, 2):
        gsm(prompts=[None] * 3, completions=["the answer is 42", "the answer is 7", "the answer"],
            completion_ids=[[5, EOS], [5, EOS], [5, 6]], dataset=["gsm8k", "gsm8k", "MATH"],
            ground_truth=["42", "42", "1"], trainer_state=SimpleNamespace(global_step=step))
    with open(record, "a") as f:
        f.write('{"step": 2, "domain": "gsm8k", "rew')  # a line cut off mid-write
    rlvr._keep_records_until(tmp_path, 2)  # resumed from checkpoint-2: step 2 is generated again
    records = rlvr.rollout_records(tmp_path)
    assert records["step"].tolist() == [0, 0, 1, 1] and set(records["domain"]) == {"gsm8k"}  # MATH: other fn
    assert records["reward"].tolist() == [10.0, 0.0, 10.0, 0.0]
    assert records["verified"].tolist() == [1.0, 0.0, 1.0, 0.0] and records["truncated"].sum() == 0


def test_reward_change_compares_the_first_and_last_quarter_of_replies():
    import pandas as pd

    # 8 steps x 8 replies; the first two steps all cut off (-10), the last two all verified (+10)
    rows = [{"step": s, "domain": "gsm8k", "reward": r, "verified": float(r == 10),
             "truncated": float(r == -10)}
            for s in range(8) for r in ([-10.0] * 8 if s < 2 else [10.0] * 8 if s >= 6 else [0.0] * 8)]
    records = pd.DataFrame(rows)
    c = rlvr.reward_change(records, "reward")
    assert (c["n_a"], c["n_b"], c["steps_a"], c["steps_b"]) == (16, 16, "0-1", "6-7")
    assert (c["mean_a"], c["mean_b"], c["diff"]) == (-10.0, 10.0, 20.0) and c["p"] < 0.001
    v = rlvr.reward_change(records, "verified")
    assert (v["mean_a"], v["mean_b"]) == (0.0, 100.0)  # in percent
    flat = rlvr.reward_change(records.assign(reward=0.0), "reward")
    assert flat["diff"] == 0.0 and flat["p"] == 1.0
    t = rlvr.reward_change(records, "truncated")
    line = rlvr.reward_reading({"reward": c, "verified": v, "truncated": t},
                               {"before": (1.0, 0.0, 2.0), "after": (2.0, 1.0, 3.0)})
    assert line.startswith("Agrees.") and "16 vs 16 replies" in line and "cut off 100.0 → 0.0%" in line


def test_prompts_over_the_prompt_budget_are_dropped_and_counted():
    from tulu_lib.core.assets import load_tokenizer, model_path

    tokenizer = load_tokenizer(model_path("tiny-llama"))
    rows = Dataset.from_list([{"messages": [{"role": "user", "content": "word " * n}], "ground_truth": "1",
                               "dataset": "gsm8k"} for n in (3, 40, 400)])
    budget = len(tokenizer.apply_chat_template(rows[1]["messages"], add_generation_prompt=True,
                                               tokenize=True, return_dict=False))
    kept, dropped = rlvr.fit_prompts(rows, tokenizer, budget)
    assert dropped == 1 and [len(m[0]["content"]) for m in kept["messages"]] == [15, 200]
    with pytest.raises(ValueError, match="rlvr.optim.max_length"):
        rlvr.fit_prompts(rows, tokenizer, 2)


def test_the_reply_budget_must_leave_room_for_a_prompt():
    with pytest.raises(ValueError, match="max_new_tokens"):
        load_params("params/smoke.yaml", ["rlvr.max_new_tokens=256", "rlvr.optim.max_length=256"])


def _release_lr(k: int, lr: float, steps: int, warmup: int) -> float:
    """transformers' linear schedule with warm-up, which the release calls (get_scheduler)."""
    return lr * k / max(1, warmup) if k < warmup else lr * max(0.0, (steps - k) / max(1, steps - warmup))


@pytest.mark.parametrize("path, episodes, world, local_rollout, lr, warmup_ratio, rollouts, steps, warmup", [
    # docs/tulu3.md at 9b39f557: --total_episodes, --actor_num_gpus_per_node, --local_rollout_batch_size
    # (= --local_mini_batch_size), --learning_rate, --warmup_ratio (8B: the default 0.0); num_epochs 4
    ("params/tulu3-8b.yaml", 10_000_000, 7, 32, 3e-7, 0.0, 44_642, 178_568, 0),
    ("params/tulu3-70b.yaml", 400_000, 40, 16, 1e-7, 0.1, 625, 2_500, 250),
])
def test_rlvr_trains_the_releases_schedule(path, episodes, world, local_rollout, lr, warmup_ratio, rollouts,
                                           steps, warmup):
    """ppo_vllm_thread_ray_gtrl.py: num_training_steps = total_episodes // (rollout_batch_size x 1)
    (line 326, rollout_batch_size = local_rollout_batch_size x world_size, line 324); the scheduler
    over num_training_steps x num_train_epochs (1) x num_epochs (4) with int(steps x warmup_ratio)
    warm-up steps (lines 609-612). Our PPO config trains that many optimizer steps on that schedule."""
    import torch
    from transformers import get_scheduler

    from tulu_lib.train import launch, ppo

    release_rollouts = episodes // (local_rollout * world * 1)
    release_steps = release_rollouts * 1 * 4
    release_warmup = int(release_steps * warmup_ratio)
    assert (release_rollouts, release_steps, release_warmup) == (rollouts, steps, warmup)

    q = launch.stage_params(load_params(path, ["rlvr.optim.bf16=false", "launch.deepspeed=null"]), "rlvr")
    s = rlvr.schedule(q.rlvr, q.launch)
    assert (s.episodes, s.replies_per_rollout, s.rollouts, s.optimizer_steps, s.warmup_steps) == \
        (episodes, local_rollout * world, rollouts, steps, warmup)
    config = ppo.ppo_config(q.rlvr, q.rlvr.ppo, "/tmp/unused", seed=q.seed, launch=q.launch)
    assert (config.max_steps, config.num_iterations, config.learning_rate) == (steps, 4, lr)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = get_scheduler(config.lr_scheduler_type, optimizer,
                              num_warmup_steps=config.get_warmup_steps(config.max_steps),
                              num_training_steps=config.max_steps)
    for k in (0, 1, warmup // 2, warmup, warmup + 1, steps // 2, steps - 1, steps):  # the LR at step k
        ours = config.learning_rate * scheduler.lr_lambdas[0](k)
        assert ours == pytest.approx(_release_lr(k, lr, steps, warmup), rel=1e-9, abs=1e-20), k


def test_a_schedule_shorter_than_one_rollout_is_refused():
    with pytest.raises(ValueError, match="fewer than one rollout's replies"):
        rlvr.release_schedule(7, 8, 4, 0.0)
    assert rlvr.schedule(load_params("params/smoke.yaml").rlvr) is None  # epochs / max_steps decide


class _SolvesMath:
    """A generator that answers every MATH-500 problem with its gold answer when it 'knows' MATH, and
    writes nothing useful otherwise (IFEval's constraints then mostly fail)."""

    def __init__(self, knows_math: bool, rows):
        self.knows_math, self.rows = knows_math, rows
        self.calls = 0

    def generate(self, conversations, sampling):
        from tulu_lib.generation.types import Completion

        self.calls += 1
        out = []
        for m in conversations:
            gold = next((r["answer"] for r in self.rows if r["problem"] in m[-1]["content"]), None)
            text = f"The final answer is $\\boxed{{{gold}}}$." if self.knows_math and gold else "no idea"
            out.append([Completion(text, True, 8)])
        return out


def test_checkpoints_chosen_on_the_evaluation_benchmarks_as_05_eval_scores_them(tmp_path, monkeypatch):
    """rlvr.select_with: eval scores every checkpoint on the benchmarks behind select_on (MATH ->
    MATH-500 here) through 05_eval's own evaluate_model: the same scores, and its item cache, which
    05_eval then reuses for the kept checkpoint without generating again."""
    import shutil

    from tulu_lib.core import assets
    from tulu_lib.evals import suite

    p = load_params("params/smoke.yaml", ["eval.benchmarks={math500: {limit: 3}, ifeval: {limit: 2}}",
                                          "eval.ablation_benchmarks=[math500, ifeval]", "eval.backend=hf"])
    assert p.rlvr.select_with == "eval" and p.rlvr.select_on == ("MATH", "ifeval")
    run, cache = tmp_path / "run", tmp_path / "cache"
    for step in (2, 4):
        folder = run / f"checkpoint-{step}"
        shutil.copytree(assets.model_path("tiny-llama"), folder)
        (folder / "trainer_state.json").write_text("{}")
        config = json.loads((folder / "config.json").read_text())  # two checkpoints, two identities
        (folder / "config.json").write_text(json.dumps({**config, "trained_steps": step}))
    rows, _ = suite.benchmark_rows(suite.TASKS["math500"], 3)
    made = {}

    def fake(params, model):
        made[model] = _SolvesMath(model.endswith("checkpoint-4"), rows)
        return made[model]

    monkeypatch.setattr(suite, "generator_for", fake)
    table = rlvr.selection_scores(p, run, held_out_scores=None, cache_root=cache)
    assert table[["step", "domain", "benchmark", "n"]].values.tolist() == [
        [2, "MATH", "math500", 3], [2, "ifeval", "ifeval", 2],
        [4, "MATH", "math500", 3], [4, "ifeval", "ifeval", 2]]
    math_scores = table[table["domain"] == "MATH"]["accuracy"].tolist()
    assert math_scores == [0.0, 1.0]
    assert rlvr.best_checkpoint(table, p.rlvr.select_on) == (4, run / "checkpoint-4")
    # 05_eval's call on the kept checkpoint: the same numbers, from the cache (no generation)
    again = {r["benchmark"]: r for r in suite.evaluate_model(str(run / "checkpoint-4"), p, cache)}
    assert made[str(run / "checkpoint-4")].calls == 0
    assert again["math500"]["score"] == 100.0 and again["math500"]["n"] == 3
    # select_with: held_out keeps the held-out table, labelled
    import pandas as pd

    held = pd.DataFrame([{"step": 2, "checkpoint": "c", "domain": "MATH", "n": 2, "accuracy": 0.5,
                          "ci95_low": 0.1, "ci95_high": 0.9}])
    p_held = load_params("params/smoke.yaml", ["rlvr.select_with=held_out"])
    chosen_from = rlvr.selection_scores(p_held, run, held, cache)
    assert chosen_from["benchmark"].tolist() == ["held-out training prompts"]
