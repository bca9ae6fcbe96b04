"""The workbook runner on tiny notebooks: skip, force, resume, failure handling."""

import json

import pytest

from tulu_lib import runner
from tulu_lib.params import load_params
from tulu_lib.workbook import StageSpec

HEADER = '''# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import pandas as pd
from tulu_lib import workbook
stage = workbook.open_stage("{name}", params_file, run_dir, stage_dir)
'''

FIRST = HEADER + '''
(stage.artifacts / "value.txt").write_text(str(stage.params.sft.optim.learning_rate))
stage.save_table(pd.DataFrame({{"x": [1, 2]}}), "first_table", caption="a table")
stage.fingerprint("data", "abc123")
print("first ran")
'''

SECOND = HEADER + '''
value = (stage.upstream("01_data") / "value.txt").read_text()
if stage.params.sft.loss == "mean":
    raise RuntimeError("second stage exploded on purpose")
(stage.artifacts / "copy.txt").write_text(value)
'''


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "nb").mkdir()
    first, second = tmp_path / "nb" / "first.py", tmp_path / "nb" / "second.py"
    first.write_text(FIRST.format(name="01_data"))
    second.write_text(SECOND.format(name="02_sft"))
    return (StageSpec("01_data", "first", ("sft",), (), first),
            StageSpec("02_sft", "second", ("sft", "dpo"), ("01_data",), second))


def _run(tmp_path, specs, overrides=(), **kw):
    params = load_params(runner.REPO_ROOT / "params" / "smoke.yaml", overrides)
    return runner.run(params, tmp_path / "p.yaml", tmp_path / "run", specs=specs, **kw)


def test_run_writes_outputs_manifest_and_index(tmp_path, specs):
    result = _run(tmp_path, specs)
    assert result.ok and result.statuses == {"01_data": "done", "02_sft": "done"}
    run = tmp_path / "run"
    assert (run / "artifacts" / "02_sft" / "copy.txt").read_text() == "0.001"
    assert (run / "tables" / "first_table.csv").exists()
    assert (run / "01_data.ipynb").exists() and (run / "01_data.html").exists()
    man = json.loads((run / "manifest.json").read_text())
    assert man["params_hash"] and man["versions"]["torch"] and man["hardware"]["cpu_count"]
    assert man["data_fingerprints"] == {"01_data/data": "abc123"}
    assert man["stages"]["02_sft"]["status"] == "done"
    assert "first_table" in (run / "index.html").read_text()
    assert not (run / ".staging").exists()


def test_unchanged_stages_are_skipped_and_force_reruns(tmp_path, specs):
    _run(tmp_path, specs)
    assert set(_run(tmp_path, specs).statuses.values()) == {"skipped (cached)"}
    assert set(_run(tmp_path, specs, force=True).statuses.values()) == {"done"}


def test_a_params_change_reruns_only_the_stages_that_read_it(tmp_path, specs):
    _run(tmp_path, specs)
    result = _run(tmp_path, specs, ["dpo.beta=1.0"])
    assert result.statuses == {"01_data": "skipped (cached)", "02_sft": "done"}
    result = _run(tmp_path, specs, ["dpo.beta=1.0", "sft.optim.learning_rate=0.5"])
    assert result.statuses == {"01_data": "done", "02_sft": "done"}  # upstream changed
    assert (tmp_path / "run" / "artifacts" / "02_sft" / "copy.txt").read_text() == "0.5"


def test_ablation_stages_key_only_the_benchmarks_ablations_are_scored_on():
    from tulu_lib.workbook import section_view, stage_spec

    assert "eval.ablation" in stage_spec("03_dpo").sections and "eval" not in stage_spec("03_dpo").sections

    def view(*overrides):
        return section_view(load_params("params/cpu.yaml", list(overrides)).to_dict(), "eval.ablation")

    assert view("eval.benchmarks.mmlu.limit=3") == view()  # a 05_eval-only change
    assert view("eval.benchmarks.gsm8k.limit=3") != view()
    assert view("eval.ablation_benchmarks=[gsm8k]") != view()


def test_failure_keeps_earlier_outputs_and_is_reported(tmp_path, specs):
    _run(tmp_path, specs)
    good = (tmp_path / "run" / "artifacts" / "02_sft" / "copy.txt").read_text()
    result = _run(tmp_path, specs, ["sft.loss=mean"])
    assert not result.ok and result.statuses["02_sft"] == "failed"
    run = tmp_path / "run"
    assert (run / "artifacts" / "02_sft" / "copy.txt").read_text() == good
    record = json.loads((run / "stages" / "02_sft.json").read_text())
    attempt = record["last_attempt"]
    assert attempt["status"] == "failed" and attempt["ename"] == "RuntimeError"
    assert "exploded on purpose" in attempt["evalue"] and attempt["cell"]
    assert (run / "failed" / "02_sft.html").exists()
    assert "failed" in (run / "index.html").read_text()


def test_an_interrupted_run_resumes_at_the_first_unfinished_stage(tmp_path, specs):
    _run(tmp_path, specs)
    run = tmp_path / "run"
    (run / "stages" / "02_sft.json").unlink()  # as if killed during the second stage
    (run / ".staging" / "02_sft").mkdir(parents=True)  # with its half-written staging folder
    result = _run(tmp_path, specs)
    assert result.statuses == {"01_data": "skipped (cached)", "02_sft": "done"}
    assert not (run / ".staging").exists()


def test_deleted_outputs_are_rebuilt(tmp_path, specs):
    _run(tmp_path, specs)
    (tmp_path / "run" / "tables" / "first_table.csv").unlink()
    assert _run(tmp_path, specs).statuses["01_data"] == "done"


def test_notebooks_run_by_hand_chain_through_their_interactive_outputs(tmp_path):
    from tulu_lib.workbook import open_stage

    first = open_stage("01_data", "params/smoke.yaml", run_dir=str(tmp_path))
    (first.artifacts / "sft").mkdir()
    second = open_stage("02_sft", "params/smoke.yaml", run_dir=str(tmp_path))
    assert second.dir == tmp_path / ".interactive" / "02_sft"
    assert second.upstream("01_data") == first.artifacts and second.has_upstream("01_data")
    (tmp_path / "artifacts" / "01_data").mkdir(parents=True)  # a finished run's outputs win
    assert second.upstream("01_data") == tmp_path / "artifacts" / "01_data"
    with pytest.raises(KeyError, match="does not depend on 05_eval"):
        second.upstream("05_eval")
    with pytest.raises(FileNotFoundError, match="run stage 03_dpo first"):
        open_stage("04_rlvr", "params/smoke.yaml", run_dir=str(tmp_path)).upstream("03_dpo")


def test_a_kernel_that_dies_fails_its_stage(tmp_path, specs):
    kill = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"  # out of memory, say
    specs[1].notebook.write_text(HEADER.format(name="02_sft") + kill)
    result = _run(tmp_path, specs)
    assert not result.ok and result.statuses == {"01_data": "done", "02_sft": "failed"}
    assert (tmp_path / "run" / "artifacts" / "01_data" / "value.txt").exists()


def test_each_kernel_keeps_its_sockets_out_of_the_repo(tmp_path, specs, monkeypatch):
    # IPC sockets named relative to the kernel's cwd (the repo) collided between concurrent runs
    monkeypatch.chdir(tmp_path)  # a runner started anywhere
    look = ("import glob, json, os\n(stage.artifacts / 'sockets.json').write_text(json.dumps("
            f"glob.glob(os.path.join({str(runner.REPO_ROOT)!r}, 'kernel-ipc-*'))))\n")
    specs[0].notebook.write_text(HEADER.format(name="01_data") + look)
    assert _run(tmp_path, specs[:1]).ok
    assert json.loads((tmp_path / "run" / "artifacts" / "01_data" / "sockets.json").read_text()) == []


def test_ctrl_c_prints_one_line_and_leaves_no_kernel(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while a stage's kernel runs:
    exit 130, one line on stderr, no traceback, and the kernel (in a session of its own) is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    cli = Path(sys.executable).with_name("tulu-repro")
    proc = subprocess.Popen([str(cli), "run", "--params", "params/smoke.yaml", "--out", str(tmp_path)],
                            cwd=runner.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline, kernels = time.monotonic() + 90, []
        while not kernels and time.monotonic() < deadline and proc.poll() is None:
            kernels = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "ipykernel" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert kernels, "no kernel started"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in err and "ZMQError" not in err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    time.sleep(0.5)
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
