"""End to end: the CLI runs the whole workbook on the smoke params (minutes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tulu_lib.workbook.stages import STAGE_NAMES

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "tulu_lib.cli"]
REPO = Path(__file__).resolve().parents[1]


def _steps(stage: Path, pattern: str, tag: str) -> list[int]:
    """The steps of ``tag`` in the TensorBoard event files of the one folder ``pattern`` names."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [folder] = stage.glob(pattern)
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_smoke_run_end_to_end(smoke_run, tmp_path):
    out, done = smoke_run.out, smoke_run.done  # started outside the repo: nothing may land in either folder
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"report: {out / 'index.html'}" in done.stdout
    assert set(REPO.glob("kernel-ipc-*")) == smoke_run.sockets_before and not list(smoke_run.cwd.iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s: manifest["stages"][s]["status"] for s in STAGE_NAMES} == dict.fromkeys(STAGE_NAMES, "done")
    assert manifest["params"]["name"] == "smoke" and manifest["git"]["commit"] is not None
    assert {"01_data/sft", "01_data/preferences", "01_data/rlvr"} <= set(manifest["data_fingerprints"])
    index = (out / "index.html").read_text()
    assert "fig02_sft_mix" in index and "Table 20" in index
    # every ablation smoke enables is drawn and read against the paper (Figures 8-11, 16, 19, 20, ...)
    assert index.count("<b>Ours:</b>") >= 14 and "data:image/png;base64," in index
    for table in ("fig16_beta_warmup", "rlvr_value_init", "rlvr_ppo_vs_grpo"):  # PPO in the workbook
        assert (out / "tables" / f"{table}.csv").exists() and f"{table}_curves" in index
    for name in STAGE_NAMES:
        assert (out / f"{name}.html").exists()
    # training curves in TensorBoard: each stage's main run, one point per logged step (smoke: 8, 4, 4)
    curves = out / "logs" / "tensorboard"
    assert _steps(curves / "02_sft", "run-*", "train/loss") == list(range(1, 9))
    assert _steps(curves / "03_dpo", "run-*", "train/loss") == list(range(1, 5))
    assert _steps(curves / "04_rlvr", "run", "train/reward") == list(range(1, 5))
    # every trained ablation arm, by its ablation and label (an arm two ablations share trains once)
    assert {p.name for p in (curves / "04_rlvr").iterdir()} >= {"fig16_beta_warmup", "rlvr_value_init",
                                                                 "reward_model"}
    # the console showed what each stage was doing while it ran
    assert "SFT step" in done.stdout or "DPO step" in done.stdout
    # a copied run folder renders the same report elsewhere (relative links only)
    copy = tmp_path / "copied"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    again = subprocess.run([*CLI, "report", "--run", str(copy)], capture_output=True, text=True)
    assert again.returncode == 0 and str(out) not in (copy / "index.html").read_text()
    # a second run with the same command skips every stage
    rerun = subprocess.run([*CLI, "run", "--params", "params/smoke.yaml", "--out", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and rerun.stdout.count("unchanged, skipped") == len(STAGE_NAMES)


def test_a_failing_stage_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path("params/smoke.yaml").read_text().replace(
        'sft: {path: "standin:sft", limit: 64}', 'sft: {path: "standin:sft", mix: {code: 100000}}'))
    done = subprocess.run([*CLI, "run", "--params", str(bad), "--out", str(tmp_path / "r"),
                           "--stages", "01_data"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "'code' asks for 100000 rows but has" in done.stderr  # validate cannot count rows; 01_data does
    record = json.loads((tmp_path / "r" / "stages" / "01_data.json").read_text())
    assert record["last_attempt"]["ename"] == "ValueError"


def test_the_8b_recipe_in_miniature_runs_on_zero3(tmp_path):
    """params/tulu3-8b-miniature.yaml: the 8B recipe's engine through `tulu-repro run`. Every training
    stage (SFT, DPO, the reward model, PPO with its value model) under accelerate launch, 2 processes,
    the release's ZeRO-3 config: loaded partitioned on both, DeepSpeed checkpoints, colocated vLLM."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (scripts/setup.sh installs it)")
    out = tmp_path / "mini"
    # ipykernel does not capture its output's file descriptor under pytest (PYTEST_CURRENT_TEST, which
    # the kernels would inherit), and vLLM's engine start in 04_rlvr's kernel needs sys.stdout.fileno()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    # the training stages: evaluation is the same code at every scale (test_calibration runs 05_eval)
    training = ["01_data", "02_sft", "03_dpo", "04_rlvr"]
    done = subprocess.run([*CLI, "run", "--params", str(REPO / "params/tulu3-8b-miniature.yaml"), "--out",
                           str(out), "--stages", *training], capture_output=True, text=True, timeout=1500,
                          cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s: manifest["stages"][s]["status"] for s in training} == dict.fromkeys(training, "done")
    art = out / "artifacts"
    results = {"sft": art / "02_sft/run-sum/sft_result.json",
               "dpo": art / "03_dpo/run-dpo_norm/dpo_result.json",
               "reward_model": art / "04_rlvr/reward_model/reward_model_result.json",
               "rlvr": art / "04_rlvr/run/rlvr_result.json"}
    for stage, path in results.items():
        stats = json.loads(path.read_text())["stats"]
        params = (path.parent / "launch/params.yaml").read_text()
        assert "zero3_no_offload.json" in params and "num_processes: 2" in params, stage
        for loaded in ([stats["loaded"]["policy"], stats["loaded"]["value"]] if stage == "rlvr"
                       else [stats["loaded"]]):
            assert loaded["partitioned"] == loaded["parameters"] and len(loaded["held"]) == 2, stage
            assert max(loaded["held"]) < loaded["elements"], stage  # no process held the whole model
    assert list((art / "02_sft/run-sum").glob("checkpoint-*/global_step*"))  # DeepSpeed's checkpoints
    log = (out / "tables" / "rlvr_log.csv").read_text().splitlines()[0].split(",")
    assert {"value_loss", "policy_loss", "kl"} <= set(log)  # PPO: policy, reference and value model
    assert "sampling/logp_difference_mean" in log  # rollouts from colocated vLLM
