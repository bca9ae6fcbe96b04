"""Calibration on named checkpoints: 05_eval scores ``eval.checkpoints`` without training anything.

Local folders stand in for the released hub ids (``allenai/Llama-3.1-Tulu-3-8B-SFT``, ``-DPO``):
the runner executes 05_eval alone, and its Table 6 and calibration table put each named model's
score, with its interval, beside the paper's number for that model.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tulu_lib.core.params import EvalParams
from tulu_lib.reporting import paper

REPO = Path(__file__).resolve().parents[1]


def test_checkpoint_labels_are_checked():
    with pytest.raises(ValueError, match="not checkpoint labels"):
        EvalParams(benchmarks={}, ablation_benchmarks=(), checkpoints={"instruct": "allenai/x"})
    with pytest.raises(ValueError, match="name no model"):
        EvalParams(benchmarks={}, ablation_benchmarks=(), checkpoints={"sft": " "})


def test_the_released_params_name_the_released_checkpoints():
    from tulu_lib.workbook import validate

    p = validate.load(REPO / "params/tulu3-8b-released.yaml")
    assert p.eval.checkpoints == {"base": "meta-llama/Llama-3.1-8B",
                                  "sft": "allenai/Llama-3.1-Tulu-3-8B-SFT",
                                  "dpo": "allenai/Llama-3.1-Tulu-3-8B-DPO",
                                  "rlvr": "allenai/Llama-3.1-Tulu-3-8B"}
    assert {name for _, name in paper.suite.TABLE6_ROWS} - {"safety"} <= set(p.eval.benchmarks)


def test_calibration_reads_the_paper_inside_or_outside_our_interval():
    rows = [{"checkpoint": "sft", "benchmark": "gsm8k", "score": 70.0, "ci95_low": 60.0, "ci95_high": 80.0,
             "n": 50, "metric": "accuracy"},
            {"checkpoint": "dpo", "benchmark": "gsm8k", "score": 50.0, "ci95_low": 40.0, "ci95_high": 60.0,
             "n": 50, "metric": "accuracy"}]
    table = paper.calibration(pd.DataFrame(rows)).set_index("checkpoint")
    assert table.loc["sft", "paper"] == 76.2 and table.loc["sft", "paper inside our 95% CI"]  # Tulu-3-8B-SFT
    assert table.loc["dpo", "paper"] == 84.3 and not table.loc["dpo", "paper inside our 95% CI"]
    assert table.loc["dpo", "ours − paper"] == pytest.approx(50.0 - 84.3)
    line = paper.calibration_reading(table.reset_index())
    assert line.startswith("Calibration on the released checkpoints: 1 of 2 of the paper's")
    assert "GSM8K (dpo) 50.0 vs 84.3" in line


@pytest.mark.slow
def test_05_eval_scores_named_checkpoints_without_training(tmp_path, tiny_path):
    """Two local folders stand in for the released SFT and DPO checkpoints; only 05_eval runs."""
    named = {}
    for label, repo in (("sft", "Llama-3.1-Tulu-3-8B-SFT"), ("dpo", "Llama-3.1-Tulu-3-8B-DPO")):
        named[label] = str(shutil.copytree(tiny_path, tmp_path / "allenai" / repo))
    raw = yaml.safe_load((REPO / "params/smoke.yaml").read_text())
    raw["name"] = "released-stand-ins"
    raw["eval"].update(checkpoints=named, benchmarks={"gsm8k": {"limit": 3}, "math500": {"limit": 2},
                                                      "ifeval": {"limit": 3}})
    params = tmp_path / "released.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "tulu_lib.cli", "run", "--params", str(params), "--out",
                           str(out), "--stages", "05_eval"], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"05_eval"} or all(
        manifest["stages"][s]["status"] != "done" for s in manifest["stages"] if s != "05_eval")
    scores = pd.read_csv(out / "tables" / "eval_scores.csv")
    assert set(scores["checkpoint"]) == {"sft", "dpo"}  # the named models only: no base, nothing trained
    assert not (out / "02_sft").exists()
    calibration = pd.read_csv(out / "tables" / "calibration.csv")
    got = {(r.checkpoint, r.column): r.paper for r in calibration.itertuples()}
    assert got == {("sft", "GSM8K"): 76.2, ("sft", "IFEval"): 72.8, ("dpo", "GSM8K"): 84.3,
                   ("dpo", "IFEval"): 81.1}
    assert calibration["95% CI"].str.fullmatch(r"\[\d+\.\d, \d+\.\d\]").all()
    assert (calibration["n"] == 3).all() and not math.isnan(calibration["ours"].sum())
    assert "Calibration on the released checkpoints" in (out / "index.html").read_text()
