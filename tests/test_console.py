"""What a run shows while it works: the progress record, the console line, TensorBoard curves."""

import io
import json
import os
import time
from pathlib import Path

import pytest

from tulu_lib.core import progress
from tulu_lib.core.params import SourceParams, load_params
from tulu_lib.data.loader import load_sft
from tulu_lib.workbook.console import StageProgress, describe

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params/smoke.yaml"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_no_op_without_the_runner_and_a_record_with_it(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.report("GRPO step", 1, 4)  # nowhere to write: nothing happens
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))
    progress.report("GRPO step", 9, 24, reward=-3.1, note="not a number")
    record = progress.read(path)
    assert (record["what"], record["done"], record["total"], record["metrics"]) == ("GRPO step", 9, 24,
                                                                                    {"reward": -3.1})
    progress.report("GRPO step", 10, 24)  # within half a second of the last: not written
    assert progress.read(path)["done"] == 9
    progress.report("GRPO step", 24, 24)  # the last step always is
    assert progress.read(path)["done"] == 24
    assert progress.read(tmp_path / "none.json") is None


def test_the_console_line_says_what_how_far_and_how_long():
    line = describe("[4/6] 04_rlvr", {"what": "GRPO step", "done": 9, "total": 24,
                                      "metrics": {"reward": -3.1}}, 252, expected_s=612)
    assert line == "[4/6] 04_rlvr · GRPO step 9/24 · reward -3.1 · 4:12 elapsed, ~6 min left"
    assert describe("[1/6] 01_data", None, 3725, None) == "[1/6] 01_data · 1:02:05 elapsed"
    assert describe("[2/6] 02_sft", None, 700, expected_s=600).endswith("past the last run's 10:00")


@pytest.mark.parametrize("terminal", [False, True])
def test_a_running_stage_is_shown_redrawn_on_a_terminal_and_as_plain_lines_elsewhere(tmp_path, terminal):
    stream = _Terminal() if terminal else io.StringIO()
    path = tmp_path / "progress.json"
    with StageProgress("[2/6] 02_sft", path, expected_s=None, stream=stream, interval=0.05, plain_every=0):
        assert os.environ[progress.ENV] == str(path)  # what the kernel inherits
        progress.report("SFT step", 1, 8, loss=2.5)
        time.sleep(0.3)
        progress._last.clear()
        progress.report("SFT step", 8, 8, loss=1.25)
        time.sleep(0.3)
    assert progress.ENV not in os.environ and not path.exists()
    text = stream.getvalue()
    assert "02_sft · SFT step 1/8 · loss 2.5" in text and "SFT step 8/8 · loss 1.25" in text
    if terminal:
        assert "\r" in text and "\n" not in text
    else:  # CI, Slurm logs: one plain line per change, no control characters
        assert "\r" not in text and text.count("SFT step 8/8") == 1


def test_every_trainer_run_writes_its_loss_curve_for_tensorboard_and_reports_its_steps(tmp_path, monkeypatch):
    """entry.train's SFT: the event file's loss series is the trainer's own log history, step by
    step, in <TULU_TENSORBOARD_DIR>/<output folder under the stage dir>; the progress record ends at n/n."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tulu_lib.train import entry

    data = tmp_path / "rows"
    load_sft(SourceParams(path="standin:sft", limit=8), seed=0).dataset.save_to_disk(str(data))
    p = load_params(SMOKE, ["sft.optim.max_steps=3", "sft.optim.max_length=128", "sft.optim.save_steps=100"])
    assert p.logging.report_to == ("tensorboard",)
    stage = tmp_path / "staging" / "artifacts"
    monkeypatch.setenv(progress.TENSORBOARD_DIR_ENV, str(tmp_path / "logs" / "tensorboard" / "02_sft"))
    monkeypatch.setenv(progress.STAGE_DIR_ENV, str(stage))
    monkeypatch.setenv(progress.ENV, str(tmp_path / "progress.json"))
    result = entry.train("sft", p, model="tiny-llama", data=data, out=stage / "run")
    acc = EventAccumulator(str(tmp_path / "logs" / "tensorboard" / "02_sft" / "run"))
    acc.Reload()
    logged = [(e["step"], e["loss"]) for e in result.log_history if "loss" in e]
    assert len(logged) == 3
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(s, pytest.approx(v, rel=1e-6))
                                                                      for s, v in logged]
    last = progress.read(tmp_path / "progress.json")
    assert (last["what"], last["done"], last["total"]) == ("SFT step", 3, 3)
    # an ablation arm's curves are named by its label; report_to [] writes none
    entry.train("sft", p, model="tiny-llama", data=data, out=stage / "arms" / "abc123" / "train",
                curves="sft_loss/mean")
    assert list((tmp_path / "logs" / "tensorboard" / "02_sft" / "sft_loss" / "mean").glob("events.*"))
    quiet = load_params(SMOKE, ["sft.optim.max_steps=1", "sft.optim.max_length=128", "logging.report_to=[]"])
    entry.train("sft", quiet, model="tiny-llama", data=data, out=stage / "quiet")
    assert not (tmp_path / "logs" / "tensorboard" / "02_sft" / "quiet").exists()
    assert json.loads(json.dumps(result.stats))  # the result is unchanged in kind


def test_a_reporter_that_is_not_installed_is_one_clear_error(tmp_path):
    from tulu_lib.train import common

    p = load_params(SMOKE, ["logging.report_to=[mlflow]"])
    try:
        import mlflow  # noqa: F401
        pytest.skip("mlflow is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="logging.report_to names mlflow, which is not installed"):
        with common.reporting(p.logging, p.name, tmp_path):
            pass
