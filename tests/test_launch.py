"""tulu_lib.train.launch, ``tulu-repro launch`` and scripts/slurm: the accelerate command line on one or
several machines, the release's per-stage launch settings, and their failures."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tulu_lib import cli
from tulu_lib.core.params import ParamsError, load_params
from tulu_lib.train import launch

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"
P8, P70 = REPO / "params" / "tulu3-8b.yaml", REPO / "params" / "tulu3-70b.yaml"


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def _written(tmp_path, path: Path, stage: str, overrides=()) -> Path:
    """The params file ``stage`` launches with: the file and overrides, its launch settings applied."""
    p = launch.stage_params(load_params(path, list(overrides)), stage)
    return launch.write_params(p, tmp_path / f"{path.stem}-{stage}-{p.hash()}")


@pytest.fixture
def no_rendezvous_env(monkeypatch):
    for name in ("MACHINE_RANK", "MAIN_PROCESS_IP", "SLURM_STEP_NUM_NODES", launch.SRUN_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_and_several(tmp_path):
    one = launch.command("sft", _written(tmp_path, SMOKE, "sft"), "out")
    assert "--multi_gpu" not in one and _flag(one, "--num_processes") == "1"
    assert _flag(one, "--num_machines") == "1" and "--machine_rank" not in one
    assert one[one.index("-m", 3) + 1:one.index("-m", 3) + 3] == ["tulu_lib.train.worker", "sft"]
    written = _written(tmp_path, SMOKE, "dpo", ["launch.num_processes=2"])
    two = launch.command("dpo", written, "out", model="m")
    assert "--multi_gpu" in two and _flag(two, "--num_processes") == "2"
    assert two[-6:] == ["--params", str(written), "--out", "out", "--model", "m"]


def test_several_machines_take_rank_and_address_from_params_or_environment(tmp_path, no_rendezvous_env):
    over = ["launch.num_machines=2", "launch.num_processes=4"]
    written = _written(tmp_path, SMOKE, "sft", over)
    with pytest.raises(ValueError, match="sft runs on 2 machines: set MACHINE_RANK and MAIN_PROCESS_IP"):
        launch.command("sft", written, "out")
    no_rendezvous_env.setenv("MACHINE_RANK", "1")
    no_rendezvous_env.setenv("MAIN_PROCESS_IP", "node0")
    cmd = launch.command("sft", written, "out")
    assert (_flag(cmd, "--num_machines"), _flag(cmd, "--num_processes")) == ("2", "8")  # 8 = all machines
    assert (_flag(cmd, "--machine_rank"), _flag(cmd, "--main_process_ip")) == ("1", "node0")
    assert _flag(cmd, "--main_process_port") == "29500" and "--same_network" in cmd and "--multi_gpu" in cmd
    pins = ["launch.machine_rank=0", "launch.main_process_ip=10.0.0.1", "launch.main_process_port=29400"]
    pinned = launch.command("sft", _written(tmp_path, SMOKE, "sft", [*over, *pins]), "out")
    assert (_flag(pinned, "--machine_rank"), _flag(pinned, "--main_process_ip"),
            _flag(pinned, "--main_process_port")) == ("0", "10.0.0.1", "29400")
    no_rendezvous_env.setenv("MACHINE_RANK", "2")
    with pytest.raises(ValueError, match=r"machine rank '2' must be an integer in \[0, 2\)"):
        launch.command("sft", written, "out")


def test_accelerate_parses_the_multi_machine_command(tmp_path, no_rendezvous_env):
    from accelerate.commands.launch import launch_command_parser

    no_rendezvous_env.setenv("MACHINE_RANK", "7")
    no_rendezvous_env.setenv("MAIN_PROCESS_IP", "node0")
    written = _written(tmp_path, P8, "sft")
    cmd = launch.command("sft", written, "out", data="d")
    start = cmd.index("accelerate.commands.launch") + 1
    args = launch_command_parser().parse_args(cmd[start:])
    assert (args.num_machines, args.num_processes, args.machine_rank) == (8, 64, 7)
    assert (args.main_process_ip, args.main_process_port, args.same_network) == ("node0", 29400, True)
    assert args.module and args.training_script == "tulu_lib.train.worker"
    assert args.training_script_args == ["sft", "--params", str(written), "--out", "out", "--data", "d"]


def test_paper_recipes_launch_each_stage_as_the_release_did(no_rendezvous_env):
    """docs/tulu3.md at allenai/open-instruct 9b39f557: nodes x GPUs, per-device batch x accumulation,
    seed and DeepSpeed config of each stage (see the comments in the params files)."""
    no3, off3 = "params/deepspeed/zero3_no_offload.json", "params/deepspeed/zero3_offload.json"
    release = {  # (params, stage): (machines, per machine, batch, accumulation, seed, deepspeed)
        (P8, "sft"): (8, 8, 1, 2, 123, no3), (P8, "dpo"): (1, 8, 1, 16, 42, no3),
        (P8, "rlvr"): (1, 7, 2, 16, 3, no3),
        (P70, "sft"): (8, 8, 1, 2, 456, no3), (P70, "dpo"): (8, 8, 1, 2, 42, off3),
        (P70, "rlvr"): (5, 8, 1, 16, 8, no3),
    }
    for (path, stage), want in release.items():
        p = launch.stage_params(load_params(path), stage)
        o = getattr(p, stage).optim
        got = (p.launch.num_machines, p.launch.num_processes, o.per_device_batch_size,
               o.gradient_accumulation_steps, p.seed, p.launch.deepspeed)
        assert got == want, (path.name, stage)
        if stage != "rlvr":  # the release's SFT and DPO effective batch: 128
            assert o.per_device_batch_size * o.gradient_accumulation_steps * p.launch.num_machines \
                * p.launch.num_processes == 128
    for path in (P8, P70):
        assert load_params(path).launch.mixed_precision == "bf16"
        assert load_params(path).launch.main_process_port == 29400  # docs/tulu3.md line 28


def test_the_launched_stage_reads_its_launch_settings_from_the_one_params_file(tmp_path, no_rendezvous_env):
    written = _written(tmp_path, P8, "dpo", ["dpo.optim.max_steps=5"])
    child = load_params(written)  # what every launched process reads (tulu_lib.train.worker)
    assert child.seed == 42 and child.dpo.optim.max_steps == 5 and child.launch.num_processes == 8
    assert child.dpo.optim.gradient_accumulation_steps == 16
    assert child.launch.deepspeed == "params/deepspeed/zero3_no_offload.json"
    assert launch.stage_params(child, "dpo") == child  # applying the launch settings again changes nothing
    assert child.hash() == launch.stage_params(load_params(P8, ["dpo.optim.max_steps=5"]), "dpo").hash()
    # an override of the stage's own launch settings wins over the file
    assert load_params(_written(tmp_path, P8, "dpo", ["launch.dpo.seed=7"])).seed == 7
    # the reward model trains with the dpo section's launch settings (the same pairs, dpo.optim)
    assert launch.stage_params(load_params(P8), "reward_model").seed == 42


def test_srun_starts_one_task_per_machine(tmp_path):
    written = _written(tmp_path, P70, "sft")
    cmd = launch.srun_command("sft", written, "out", data="d")
    assert cmd[:5] == ["srun", "--nodes=8", "--ntasks=8", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    script = cmd[cmd.index("-c") + 1]
    assert "MACHINE_RANK=$SLURM_PROCID" in script and "SLURM_STEP_NODELIST" in script
    assert cmd[-8:] == ["tulu_lib.train.launch", "sft", "--params", str(written), "--out", "out",
                        "--data", "d"]


def test_a_node_refuses_a_slurm_step_of_the_wrong_size(no_rendezvous_env, capsys):
    no_rendezvous_env.setenv("MACHINE_RANK", "0")
    no_rendezvous_env.setenv("MAIN_PROCESS_IP", "node0")
    no_rendezvous_env.setenv("SLURM_STEP_NUM_NODES", "2")
    assert launch.main(["sft", "--params", str(P8), "--out", "out"]) == 2  # returns instead of exec
    err = capsys.readouterr().err
    assert "sft runs on 8 machine(s)" in err and "this Slurm step has 2 node(s): sbatch --nodes=8" in err


def test_launch_params_are_validated_in_one_line():
    def error(*overrides):
        with pytest.raises(ParamsError) as info:
            load_params(SMOKE, list(overrides))
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "launch: num_machines must be >= 1, got 0" in error("launch.num_machines=0")
    assert "machine_rank must be in [0, 2)" in error("launch.num_machines=2", "launch.machine_rank=2")
    assert "main_process_port must be in 1..65535, got 70000" in error("launch.main_process_port=70000")
    assert "main_process_port must be in 1..65535, got 0" in error("launch.main_process_port=0")
    assert "launch.sft: num_machines must be >= 1, got 0" in error("launch.sft.num_machines=0")
    assert "launch.dpo.sead: unknown key (did you mean 'seed'?)" in error("launch.dpo.sead=1")
    assert "launch.rlvr.deepspeed" in error("launch.rlvr.deepspeed=params/deepspeed/nope.json")
    assert "gpu_memory_gb must be > 0" in error("launch.gpu_memory_gb=0")
    assert "launch.gpu" in error("launch.gpu=V100")
    with pytest.raises(ValueError, match=r"machine_rank must be in \[0, 1\)"):  # the stage has fewer machines
        load_params(P8, ["launch.num_machines=8", "launch.machine_rank=3"]).launch.stage("dpo")


def test_unknown_stage_and_bad_overrides_fail_before_launching(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        launch.command("ppo", _written(tmp_path, SMOKE, "sft"), "out")
    assert cli.main(["launch", "sft", "--params", str(SMOKE), "--out", "x",
                     "--set", "launch.num_processes=0"]) == cli.EXIT_BAD_PARAMS


def test_a_failing_stage_raises_with_its_output(tmp_path, capsys):
    code = cli.main(["launch", "sft", "--params", str(SMOKE), "--out", str(tmp_path / "out"),
                     "--data", str(tmp_path / "missing"), "--set", "launch.sft.own_process=true"])
    assert code == 1
    err = capsys.readouterr().err
    assert "exited" in err and "missing" in err  # the child's own error, not just an exit status


def test_a_stage_that_exits_0_without_its_result_raises_and_a_stale_result_does_not_pass(
        tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    launch.result_file("rlvr", out).write_text('{"checkpoint": "an earlier run\'s"}')
    monkeypatch.setattr(launch, "command", lambda *a, **k: [sys.executable, "-c", "print('trained')"])
    with pytest.raises(RuntimeError, match="exited 0 without a readable .*rlvr_result.json"):
        launch.launch("rlvr", _written(tmp_path, SMOKE, "rlvr"), out)
    assert not launch.result_file("rlvr", out).exists()


def test_a_launched_stage_returns_freed_tensors_to_the_os_unless_told_otherwise(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    show = ("import os; print('threshold', os.environ.get('MALLOC_MMAP_THRESHOLD_'), "
            "'mmap_max', os.environ.get('MALLOC_MMAP_MAX_'))")
    monkeypatch.setattr(launch, "command", lambda *a, **k: [sys.executable, "-c", show])
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")  # a notebook kernel's kept heap is not inherited
    written = _written(tmp_path, SMOKE, "rlvr")
    with pytest.raises(RuntimeError):  # no result written
        launch.launch("rlvr", written, out)
    assert "threshold 1048576 mmap_max None" in capsys.readouterr().out
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4096")
    with pytest.raises(RuntimeError):
        launch.launch("rlvr", written, out)
    assert "threshold 4096" in capsys.readouterr().out


# ------------------------------------------------------------ Slurm, on this machine

FAKE_SRUN = r"""#!/usr/bin/env bash
# srun stand-in: N local tasks with the variables Slurm gives each task
n=1
while [ $# -gt 0 ]; do
  case $1 in --nodes=*|--ntasks=*) n=${1#*=}; shift ;; --*) shift ;; *) break ;; esac
done
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_NODEID=$i SLURM_PROCID=$i SLURM_STEP_NUM_NODES=$n SLURM_STEP_NODELIST=localhost "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""


def _fake_slurm(tmp_path: Path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "scontrol").write_text("#!/usr/bin/env bash\necho 127.0.0.1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_scripts_are_valid_bash():
    for script in (REPO / "scripts" / "slurm").glob("*.sbatch"):
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert "#SBATCH --ntasks-per-node=1" in script.read_text()


def test_train_stage_script_checks_the_plan_and_the_node_count(tmp_path, no_rendezvous_env):
    _fake_slurm(tmp_path, no_rendezvous_env)
    env = {**os.environ, "SLURM_SUBMIT_DIR": str(REPO), "SLURM_JOB_NODELIST": "n[0-1]",
           "SLURM_JOB_NUM_NODES": "2", "TULU_PYTHON": sys.executable}
    script = str(REPO / "scripts" / "slurm" / "train_stage.sbatch")
    squeezed = subprocess.run(["bash", script, "sft", str(P70), str(tmp_path / "out"),
                               "--set", "launch.sft.num_machines=1"], env=env, capture_output=True, text=True)
    assert squeezed.returncode == 2 and "error: sft: needs" in squeezed.stderr  # the pre-flight plan
    wrong = subprocess.run(["bash", script, "sft", str(P8), str(tmp_path / "out")], env=env,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "this Slurm step has 2 node(s): sbatch --nodes=8" in wrong.stderr


@pytest.mark.slow
def test_two_machines_on_localhost_match_one_process(tmp_path, no_rendezvous_env):
    """With a stand-in srun, 2 "machines" x 1 process (gloo, static rendezvous at 127.0.0.1) x batch 2
    train like 1 process x batch 4: started by scripts/slurm/train_stage.sbatch, and by launch()
    itself under TULU_REPRO_SRUN=1 (what scripts/slurm/workbook.sbatch sets)."""
    from tulu_lib.core.params import SourceParams
    from tulu_lib.data.loader import load_sft

    _fake_slurm(tmp_path, no_rendezvous_env)
    no_rendezvous_env.setenv("OMP_NUM_THREADS", "1")
    data = tmp_path / "rows"
    load_sft(SourceParams(path="standin:sft", limit=24), seed=0).dataset.save_to_disk(str(data))
    common = ["sft.optim.max_steps=3", "sft.optim.max_length=128", "sft.optim.save_steps=100"]
    env = {**os.environ, "SLURM_SUBMIT_DIR": str(REPO), "SLURM_JOB_NODELIST": "localhost",
           "SLURM_JOB_NUM_NODES": "2", "TULU_PYTHON": sys.executable}
    sets = [a for o in [*common, "sft.optim.per_device_batch_size=2", "launch.sft.num_machines=2",
                        f"launch.main_process_port={_free_port()}"] for a in ("--set", o)]
    run = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "train_stage.sbatch"), "sft", str(SMOKE),
                          str(tmp_path / "two"), "--data", str(data), *sets], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "sft_result.json").read_text())
    from tulu_lib.train import entry

    one = entry.train("sft", load_params(SMOKE, [*common, "sft.optim.per_device_batch_size=4"]),
                      model="tiny-llama", data=data, out=tmp_path / "one")
    assert two["stats"]["effective_batch"] == one.stats["effective_batch"] == 4

    def losses(history):
        return [e["loss"] for e in history if "loss" in e]

    assert len(losses(one.log_history)) == 3
    assert losses(two["log_history"]) == pytest.approx(losses(one.log_history), rel=1e-4)

    no_rendezvous_env.setenv(launch.SRUN_ENV, "1")
    sets[-1] = f"launch.main_process_port={_free_port()}"
    srun_params = load_params(SMOKE, [v for f, v in zip(sets, sets[1:], strict=False) if f == "--set"])
    written = launch.write_params(launch.stage_params(srun_params, "sft"), tmp_path / "srun")
    by_srun = launch.launch("sft", written, tmp_path / "srun", data=str(data), cwd=REPO)
    assert losses(by_srun["log_history"]) == pytest.approx(losses(one.log_history), rel=1e-4)


def test_rlvr_in_its_own_process_trains_as_in_the_kernel(tmp_path, letter_rows):
    """launch.rlvr.own_process: the same tiny GRPO run (2 steps, same seed) under accelerate launch
    logs the same losses and rewards as in this process, and writes its params, prompts and result."""
    from tulu_lib.train import entry

    over = ["rlvr.optim.max_steps=2", "rlvr.max_new_tokens=8", "rlvr.non_eos_penalty=null",
            "rlvr.optim.save_steps=1"]
    rows = letter_rows(4, at_least=3)
    here = entry.train("rlvr", load_params(SMOKE, over), model="tiny-llama", data=rows, out=tmp_path / "here")
    p = load_params(SMOKE, [*over, "launch.rlvr.own_process=true"])
    assert p.launch.stage("rlvr").launched and not p.launch.stage("sft").launched
    own = entry.train("rlvr", p, model="tiny-llama", data=rows, out=tmp_path / "own")
    assert (tmp_path / "own" / "launch" / "params.yaml").is_file()
    assert launch.result_file("rlvr", tmp_path / "own").is_file() and own.checkpoint.is_dir()
    logged = [[h[k] for h in r.log_history if "loss" in h for k in ("reward", "grad_norm", "kl")]
              for r in (here, own)]
    assert len(logged[0]) == 6 and logged[0] == pytest.approx(logged[1], rel=1e-4)
    assert own.stats == here.stats and "prompts_dropped" in own.stats
