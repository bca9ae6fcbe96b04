"""tulu_lib.launch and ``tulu-repro launch``: the accelerate command line and its failures."""

from pathlib import Path

import pytest

from tulu_lib import cli, launch

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_one_process_and_several():
    one = launch.command("sft", SMOKE, "out")
    assert "--multi_gpu" not in one and _flag(one, "--num_processes") == "1"
    assert one[one.index("-m", 3) + 1] == "tulu_lib.sft"  # the stage module after accelerate's own -m
    two = launch.command("dpo", SMOKE, "out", ["--set", "launch.num_processes=2", "--model", "m"])
    assert "--multi_gpu" in two and _flag(two, "--num_processes") == "2"
    assert two[-4:] == ["--set", "launch.num_processes=2", "--model", "m"]


def test_paper_recipe_launches_eight_bf16_processes_with_zero3():
    cmd = launch.command("sft", REPO / "params" / "tulu3-8b.yaml", "out")
    assert _flag(cmd, "--num_processes") == "8" and _flag(cmd, "--mixed_precision") == "bf16"
    from tulu_lib.params import load_params

    assert load_params(REPO / "params" / "tulu3-8b.yaml").launch.deepspeed == "params/deepspeed/zero3.json"


def test_unknown_stage_and_bad_overrides_fail_before_launching():
    with pytest.raises(ValueError, match="unknown stage"):
        launch.command("ppo", SMOKE, "out")
    assert cli.main(["launch", "sft", "--params", str(SMOKE), "--out", "x",
                     "--set", "launch.num_processes=0"]) == cli.EXIT_BAD_PARAMS


def test_a_failing_stage_raises_with_its_output(tmp_path, capsys):
    code = cli.main(["launch", "sft", "--params", str(SMOKE), "--out", str(tmp_path / "out"),
                     "--data", str(tmp_path / "missing")])
    assert code == 1
    err = capsys.readouterr().err
    assert "exited" in err and "missing" in err  # the child's own error, not just an exit status
