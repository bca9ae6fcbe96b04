"""End to end: the CLI runs the whole workbook on the smoke params (minutes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tulu_lib.workbook.stages import STAGE_NAMES

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "tulu_lib.cli"]
REPO = Path(__file__).resolve().parents[1]


def test_smoke_run_end_to_end(tmp_path):
    out = tmp_path / "smoke"
    elsewhere = tmp_path / "cwd"  # started outside the repo: nothing may land in either folder
    elsewhere.mkdir()
    sockets_before = set(REPO.glob("kernel-ipc-*"))
    done = subprocess.run([*CLI, "run", "--params", str(REPO / "params/smoke.yaml"), "--out", str(out)],
                          capture_output=True, text=True, timeout=1500, cwd=elsewhere)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"report: {out / 'index.html'}" in done.stdout
    assert set(REPO.glob("kernel-ipc-*")) == sockets_before and not list(elsewhere.iterdir())
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
    # a copied run folder renders the same report elsewhere (relative links only)
    copy = tmp_path / "copied"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    again = subprocess.run([*CLI, "report", "--run", str(copy)], capture_output=True, text=True)
    assert again.returncode == 0 and str(tmp_path / "smoke") not in (copy / "index.html").read_text()
    # a second run with the same command skips every stage
    rerun = subprocess.run([*CLI, "run", "--params", "params/smoke.yaml", "--out", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and rerun.stdout.count("unchanged, skipped") == len(STAGE_NAMES)


def test_a_failing_stage_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path("params/smoke.yaml").read_text().replace(
        'sft: {path: "standin:sft", limit: 64}', 'sft: {path: "standin:sft", mix: {nosuch: 3}}'))
    done = subprocess.run([*CLI, "run", "--params", str(bad), "--out", str(tmp_path / "r"),
                           "--stages", "01_data"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "no rows with source 'nosuch'" in done.stderr
    record = json.loads((tmp_path / "r" / "stages" / "01_data.json").read_text())
    assert record["last_attempt"]["ename"] == "ValueError"
