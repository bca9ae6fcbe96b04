"""The workbook runner on tiny notebooks: skip, force, resume, failure handling."""

import json

import pytest

from tulu_lib.core.params import load_params
from tulu_lib.workbook import runner
from tulu_lib.workbook.stages import StageSpec

HEADER = '''# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import pandas as pd
from tulu_lib.workbook import stages
stage = stages.open_stage("{name}", params_file, run_dir, stage_dir)
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


@pytest.fixture(autouse=True, scope="module")
def steady_code_hash():
    """A stage key hashes all of tulu_lib, which others may be editing while these tests run:
    here each notebook's code hash is taken once (a notebook's own changes still count)."""
    seen: dict[bytes, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "code_hash", lambda spec, real=runner.code_hash:
                   seen.setdefault(spec.notebook.read_bytes(), real(spec)))
        yield


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
    from tulu_lib.core.hashing import section_view
    from tulu_lib.workbook.stages import stage_spec

    assert "eval.ablation" in stage_spec("03_dpo").sections and "eval" not in stage_spec("03_dpo").sections

    def view(*overrides):
        return section_view(load_params("params/cpu.yaml", list(overrides)).to_dict(), "eval.ablation")

    # cpu.yaml scores its ablation arms on IFEval only: other benchmarks' limits are 05_eval-only changes
    assert view("eval.benchmarks.mmlu.limit=3") == view() == view("eval.benchmarks.gsm8k.limit=3")
    assert view("eval.benchmarks.ifeval.limit=3") != view()
    assert view("eval.ablation_benchmarks=[if_short]") != view()


def test_rlvr_keys_the_benchmarks_its_checkpoint_is_chosen_on():
    from tulu_lib.core.hashing import section_view
    from tulu_lib.workbook.stages import stage_spec

    assert "eval.selection" in stage_spec("04_rlvr").sections

    def view(*overrides):
        return section_view(load_params("params/tulu3-8b.yaml", list(overrides)).to_dict(), "eval.selection")

    assert view("eval.benchmarks.math.limit=3") != view()  # 8B chooses on the paper's MATH ...
    assert view("eval.benchmarks.math500.limit=3") == view()  # ... not on MATH-500 ...
    assert view("eval.benchmarks.ifeval.limit=3") != view()  # ... and on IFEval
    assert view("eval.benchmarks.gsm8k.limit=3") == view()
    assert view("rlvr.select_with=held_out") is None  # then no evaluation setting changes 04_rlvr


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
    from tulu_lib.workbook.stages import open_stage

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


def test_kernels_start_with_the_heap_allocator_settings_unless_set(tmp_path, specs, monkeypatch):
    # glibc reads them at start-up, so they are the kernel's from its first line; a value the
    # user exported is kept
    from tulu_lib.core import allocator

    for key in allocator.HEAP_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    look = ("import json, os\n(stage.artifacts / 'env.json').write_text(json.dumps("
            "{k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}))\n")
    specs[0].notebook.write_text(HEADER.format(name="01_data") + look)
    assert _run(tmp_path, specs[:1]).ok
    seen = json.loads((tmp_path / "run" / "artifacts" / "01_data" / "env.json").read_text())
    assert seen == {**allocator.HEAP_ENV, "MALLOC_TRIM_THRESHOLD_": "12345"}


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
    # started with SIGINT ignored, as a script's background job is (and as an earlier test in this
    # process can leave it): the CLI must still stop on it
    proc = subprocess.Popen([str(cli), "run", "--params", "params/smoke.yaml", "--out", str(tmp_path)],
                            cwd=runner.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline, kernels = time.monotonic() + 90, []
        while not kernels and time.monotonic() < deadline and proc.poll() is None:
            children = psutil.Process(proc.pid).children(recursive=True)
            kernels = [p for p in children if "ipykernel" in _cmdline(p)]
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


def _cmdline(process) -> str:
    """A child's command line, or "" for one that has exited (a zombie has none)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


# ---------------------------------------------------------------- resume, verified outputs, one status

DIE_ONCE = HEADER + '''
import os, signal
from pathlib import Path
with open(stage.artifacts / "attempts.txt", "a") as fh:
    fh.write("attempt\\n")
marker = Path(os.environ["TULU_TEST_DIE_ONCE"])
if not marker.exists():
    marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of the kernel, mid-stage
'''


@pytest.mark.parametrize("rerun, attempts", [({}, 2), ({"overrides": ["sft.loss=mean"]}, 1),
                                             ({"force": True}, 1)], ids=["same key", "key changed", "force"])
def test_a_killed_stage_continues_in_its_staging_folder_only_under_the_same_key(
        tmp_path, monkeypatch, capsys, rerun, attempts):
    monkeypatch.setenv("TULU_TEST_DIE_ONCE", str(tmp_path / "died"))
    notebook = tmp_path / "die_once.py"
    notebook.write_text(DIE_ONCE.format(name="01_data"))
    specs = (StageSpec("01_data", "dies once", ("sft",), (), notebook),)
    assert _run(tmp_path, specs).statuses == {"01_data": "failed"}
    staging = tmp_path / "run" / ".staging" / "01_data"
    assert (staging / "KEY").is_file() and (staging / "artifacts" / "attempts.txt").exists()
    assert "the next run resumes in" in capsys.readouterr().err
    overrides = rerun.pop("overrides", ())
    assert _run(tmp_path, specs, overrides, **rerun).statuses == {"01_data": "done"}
    assert ("resuming its unfinished attempt" in capsys.readouterr().out) == (attempts == 2)
    lines = (tmp_path / "run" / "artifacts" / "01_data" / "attempts.txt").read_text().splitlines()
    assert len(lines) == attempts and not (tmp_path / "run" / ".staging").exists()


def test_changed_outputs_rerun_the_stage_and_say_which_file(tmp_path, specs, capsys):
    _run(tmp_path, specs)
    copy = tmp_path / "run" / "artifacts" / "02_sft" / "copy.txt"
    copy.write_text(copy.read_text()[:-1])  # truncated
    capsys.readouterr()
    result = _run(tmp_path, specs)
    assert result.statuses == {"01_data": "skipped (cached)", "02_sft": "done"}
    assert "02_sft: artifacts/02_sft/copy.txt changed since it was recorded: running it again" \
        in capsys.readouterr().out
    assert copy.read_text() == "0.001"


def test_corrupt_records_and_manifest_are_reported_then_rebuilt(tmp_path, specs, capsys):
    from tulu_lib.cli import main

    _run(tmp_path, specs)
    run = tmp_path / "run"
    (run / "stages" / "01_data.json").write_text("[]")
    (run / "stages" / "02_sft.json").write_text('{"stage": "02_sft", "key": "ab')
    (run / "manifest.json").write_text("")
    capsys.readouterr()
    assert main(["report", "--run", str(run)]) == 0  # read-only: reported and ignored
    err = capsys.readouterr().err
    assert err.count("is unreadable") == 3 and "Traceback" not in err
    assert "not run" in (run / "index.html").read_text()
    result = _run(tmp_path, specs)
    assert result.statuses == {"01_data": "done", "02_sft": "done"}
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" is unreadable")[0] for line in err] == [
        f"[tulu-repro] {run / 'stages' / name}.json" for name in ("01_data", "02_sft")]
    assert all(json.loads((run / "stages" / f"{n}.json").read_text())["status"] == "done"
               for n in ("01_data", "02_sft"))
    assert json.loads((run / "manifest.json").read_text())["stages"]["02_sft"]["status"] == "done"


CHAIN = HEADER + '''
import os
from pathlib import Path
if (Path(os.environ["TULU_TEST_FAIL"]) / "{name}").exists():
    raise RuntimeError("{name} failed on purpose")
(stage.artifacts / "out.txt").write_text(str(stage.params.to_dict()["{section}"]))
stage.save_table(pd.DataFrame({{"x": [1]}}), "table_{section}", caption="{name} results")
'''
CHAIN_STAGES = (("01_data", "sft", ()), ("02_sft", "dpo", ("01_data",)),
                ("03_dpo", "rlvr", ("01_data", "02_sft")))


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    """Three chained stages, finished once; each test gets a copy of the run folder."""
    root = tmp_path_factory.mktemp("chain")
    specs = []
    for name, section, upstream in CHAIN_STAGES:
        (root / f"{name}.py").write_text(CHAIN.format(name=name, section=section))
        specs.append(StageSpec(name, name, (section,), upstream, root / f"{name}.py"))
    (root / "fail").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TULU_TEST_FAIL", str(root / "fail"))
        assert _run(root, tuple(specs)).ok
    return root, tuple(specs)


@pytest.fixture
def chain(chain_run, tmp_path, monkeypatch):
    import shutil

    root, specs = chain_run
    shutil.copytree(root / "run", tmp_path / "run")
    (tmp_path / "fail").mkdir()
    monkeypatch.setenv("TULU_TEST_FAIL", str(tmp_path / "fail"))
    return specs


def _one_status(tmp_path, result, out: str) -> dict[str, str]:
    """Each stage's status as its record, the manifest and index.html give it (asserted equal), and
    as the console did: the run's statuses, and a line for each stage it did not select."""
    import re

    run = tmp_path / "run"
    records = {p.stem: json.loads(p.read_text())["status"] for p in (run / "stages").glob("*.json")}
    manifest = {k: v["status"] for k, v in json.loads((run / "manifest.json").read_text())["stages"].items()}
    index = {name: re.sub("<[^>]+>", "", text).split(":")[0] for name, text in re.findall(
        r"<tr><td>(\d\d_\w+)</td><td>[^<]*</td><td>(.*?)</td>", (run / "index.html").read_text())}
    assert records == manifest == {k: v for k, v in index.items() if v != "not run"}
    for name, status in records.items():
        if name in result.statuses:
            assert result.statuses[name].replace("skipped (cached)", "done") == status
        elif status != "done":
            assert f"[-] {name}: {status}" in out
    return records


def _shown(tmp_path) -> set[str]:
    """The stages whose results index.html shows."""
    page = (tmp_path / "run" / "index.html").read_text()
    return {name for name, _, _ in CHAIN_STAGES if f"{name} results" in page}


def test_downstream_of_a_failure_is_not_run_everywhere(tmp_path, chain, capsys):
    (tmp_path / "fail" / "02_sft").touch()
    result = _run(tmp_path, chain, ["dpo.beta=1.0"])  # 02_sft reruns, and fails
    statuses = _one_status(tmp_path, result, capsys.readouterr().out)
    assert statuses == {"01_data": "done", "02_sft": "failed", "03_dpo": "not run (upstream 02_sft failed)"}
    assert _shown(tmp_path) == {"01_data"}  # 03_dpo's old results are not shown


def test_a_failure_downstream_of_unselected_stages_shows_everywhere(tmp_path, chain, capsys):
    (tmp_path / "fail" / "02_sft").touch()
    result = _run(tmp_path, chain, stages=("02_sft",), force=True)
    statuses = _one_status(tmp_path, result, capsys.readouterr().out)
    assert statuses == {"01_data": "done", "02_sft": "failed", "03_dpo": "not run (upstream 02_sft failed)"}
    assert _shown(tmp_path) == {"01_data"}


def test_a_failed_forced_stage_is_run_again_by_the_plain_command(tmp_path, chain, capsys):
    (tmp_path / "fail" / "03_dpo").touch()
    assert _run(tmp_path, chain, stages=("03_dpo",), force=True).statuses == {"03_dpo": "failed"}
    result = _run(tmp_path, chain)  # not "unchanged, skipped": run again (and fails again)
    assert result.statuses == {"01_data": "skipped (cached)", "02_sft": "skipped (cached)",
                               "03_dpo": "failed"}
    _one_status(tmp_path, result, capsys.readouterr().out)
    (tmp_path / "fail" / "03_dpo").unlink()
    assert _run(tmp_path, chain).statuses["03_dpo"] == "done"
    assert _shown(tmp_path) == {"01_data", "02_sft", "03_dpo"}


def test_results_built_on_a_changed_upstream_are_out_of_date_until_rerun(tmp_path, chain, capsys):
    result = _run(tmp_path, chain, ["sft.optim.learning_rate=0.5"], stages=("01_data",))
    statuses = _one_status(tmp_path, result, capsys.readouterr().out)
    assert statuses == {"01_data": "done", "02_sft": "out of date (upstream 01_data changed)",
                        "03_dpo": "out of date (upstream 01_data changed)"}
    assert _shown(tmp_path) == {"01_data"}
    result = _run(tmp_path, chain, ["sft.optim.learning_rate=0.5"], stages=("03_dpo",))
    assert result.statuses == {"03_dpo": "not run (upstream 02_sft out of date)"}
    _one_status(tmp_path, result, capsys.readouterr().out)
    result = _run(tmp_path, chain, ["sft.optim.learning_rate=0.5"])
    assert result.statuses == {"01_data": "skipped (cached)", "02_sft": "done", "03_dpo": "done"}
    _one_status(tmp_path, result, capsys.readouterr().out)
    assert _shown(tmp_path) == {"01_data", "02_sft", "03_dpo"}


SFT_ROWS = HEADER + '''
from tulu_lib.data import loader
rows = loader.load_sft(stage.params.data.sft, seed=stage.params.seed).dataset
rows.save_to_disk(str(stage.artifacts / "sft"))
'''
KILL_AFTER_FIRST_CHECKPOINT = '''
# %%
import os, signal
from pathlib import Path
from transformers import Trainer
_save_checkpoint = Trainer._save_checkpoint
def _save_then_die(self, *args, **kwargs):  # kill -9 of the kernel once the first checkpoint is saved
    _save_checkpoint(self, *args, **kwargs)
    if not Path({marker!r}).exists():
        Path({marker!r}).touch()
        os.kill(os.getpid(), signal.SIGKILL)
Trainer._save_checkpoint = _save_then_die
'''


@pytest.mark.slow
def test_a_killed_sft_resumes_from_its_newest_complete_checkpoint(tmp_path, capsys):
    """02_sft (its notebook, on the smoke params without ablations: 8 steps, a checkpoint every 4)
    killed after its first checkpoint; the rerun resumes from it, past a later half-written one,
    and ends with the weights of an uninterrupted run."""
    import shutil

    import pandas as pd
    import torch
    from safetensors.torch import load_file

    source = (runner.REPO_ROOT / "notebooks" / "02_sft.py").read_text()
    anchor = "\n# %%\nimport datasets\n"
    assert anchor in source
    (tmp_path / "sft.py").write_text(source.replace(
        anchor, KILL_AFTER_FIRST_CHECKPOINT.format(marker=str(tmp_path / "killed")) + anchor, 1))
    (tmp_path / "rows.py").write_text(SFT_ROWS.format(name="01_data"))
    specs = (StageSpec("01_data", "SFT rows", ("data",), (), tmp_path / "rows.py"),
             StageSpec("02_sft", "SFT", ("sft",), ("01_data",), tmp_path / "sft.py"))
    small = ["sft.ablate_loss=false", "sft.ablate_subsample=[]", "sft.ablate_sources=[]"]

    def run(folder):
        params = load_params(runner.REPO_ROOT / "params" / "smoke.yaml", small)
        return runner.run(params, tmp_path / "p.yaml", tmp_path / folder, specs=specs)

    assert run("resumed").statuses == {"01_data": "done", "02_sft": "failed"}
    train = tmp_path / "resumed" / ".staging" / "02_sft" / "artifacts" / "run-sum"
    assert [p.name for p in train.glob("checkpoint-*")] == ["checkpoint-4"]
    (train / "checkpoint-6").mkdir()  # a later checkpoint cut mid-write: weights, no trainer state
    shutil.copy(train / "checkpoint-4" / "model.safetensors", train / "checkpoint-6")
    capsys.readouterr()
    assert run("resumed").statuses == {"01_data": "skipped (cached)", "02_sft": "done"}
    out = capsys.readouterr().out
    assert "resuming its unfinished attempt" in out
    assert f"dropped a half-written checkpoint: {train / 'checkpoint-6'}" in out
    stats = pd.read_csv(tmp_path / "resumed" / "tables" / "sft_stats.csv").iloc[0]
    assert stats["resumed_from"] == str(train / "checkpoint-4") and stats["steps"] == 8
    state = tmp_path / "resumed" / "artifacts" / "02_sft" / "run-sum" / "checkpoint-8" / "trainer_state.json"
    assert json.loads(state.read_text())["global_step"] == 8
    assert run("whole").ok  # uninterrupted: the marker is there, nothing is killed
    resumed, whole = (load_file(tmp_path / folder / "artifacts" / "02_sft" / "model" / "model.safetensors")
                      for folder in ("resumed", "whole"))
    assert resumed.keys() == whole.keys() and all(torch.allclose(resumed[k], whole[k]) for k in whole)


DRAWN = HEADER + """
with open({counter!r}, "a") as fh:  # one line per execution of this notebook
    fh.write("ran\\n")
stage.save_table(pd.DataFrame({{"x": ["a", "b"], "average": [1.0, 2.0], "ci95_low": [0.5, 1.5],
                                "ci95_high": [1.5, 2.5]}}), "scores", caption="scores")
stage.figure("scores", "sweep_scores", {{"table": "scores"}}, caption="a figure", x="x", benchmarks=[],
             title="before")
"""


def test_a_change_to_the_drawing_code_redraws_the_figures_and_retrains_nothing(tmp_path, monkeypatch, capsys):
    from tulu_lib.reporting import plots

    counter = tmp_path / "executions.txt"
    notebook = tmp_path / "drawn.py"
    notebook.write_text(DRAWN.format(name="01_data", counter=str(counter)))
    specs = (StageSpec("01_data", "drawn", ("sft",), (), notebook),)
    _run(tmp_path, specs)
    figure = tmp_path / "run" / "figures" / "scores.png"
    record = json.loads((tmp_path / "run" / "stages" / "01_data.json").read_text())
    assert record["figure_specs"]["scores"]["tables"] == {"table": "scores"} and figure.is_file()
    assert not any(k.startswith("figures/") for k in record["output_files"])  # drawn, not an input
    before = figure.read_bytes()

    def restyled(table, x, benchmarks, title):  # "a change of style": another title
        return plots.sweep_scores(table, x, benchmarks, "after: " + title)

    monkeypatch.setitem(plots.PLOTS, "sweep_scores", restyled)
    monkeypatch.setattr(runner, "drawing_hash", lambda: "a new style")
    result = _run(tmp_path, specs)
    assert result.statuses == {"01_data": "skipped (cached)"}
    assert counter.read_text().count("ran") == 1  # the notebook did not run again
    assert figure.read_bytes() != before and "1 figure(s) redrawn" in capsys.readouterr().out
    assert _run(tmp_path, specs).statuses == {"01_data": "skipped (cached)"}  # recorded: not redrawn twice
    assert "redrawn" not in capsys.readouterr().out
    figure.unlink()  # a lost figure is drawn again by `tulu-repro report`, from the tables alone
    from tulu_lib import cli

    assert cli.main(["report", "--run", str(tmp_path / "run")]) == 0 and figure.is_file()


def test_editing_a_file_a_stage_reads_reruns_it(tmp_path, specs):
    """06_paper_tables reads the paper's recipes and the reference CSVs: its key covers them."""
    from tulu_lib.workbook.stages import REPO_ROOT, stage_spec

    reads = {p.relative_to(REPO_ROOT).as_posix() for p in stage_spec("06_paper_tables").read_paths({})}
    assert {"params/tulu3-8b.yaml", "params/tulu3-70b.yaml", "reports/reference/tulu3_reported.csv"} <= reads
    reference = tmp_path / "reference.csv"
    reference.write_text("model,score\nx,1\n")
    first, second = specs
    specs = (first, StageSpec(second.name, second.title, second.sections, second.upstream, second.source,
                              reads=(str(reference),)))
    _run(tmp_path, specs)
    assert _run(tmp_path, specs).statuses == {"01_data": "skipped (cached)", "02_sft": "skipped (cached)"}
    reference.write_text("model,score\nx,2\n")
    assert _run(tmp_path, specs).statuses == {"01_data": "skipped (cached)", "02_sft": "done"}
    record = json.loads((tmp_path / "run" / "stages" / "02_sft.json").read_text())
    assert record["reads"] == {str(reference): record["reads"][str(reference)]}


def test_a_local_file_named_in_the_params_is_read_and_keyed(tmp_path):
    from tulu_lib.workbook.stages import stage_spec

    data = tmp_path / "sft.jsonl"
    data.write_text("{}\n")
    sections = {"data": {"sft": {"path": str(data)}, "rlvr": {"path": "standin:rlvr"}},
                "model": {"name": "tiny-llama"}}
    paths = stage_spec("01_data").read_paths(sections)
    assert paths == [data]


def test_the_code_hash_covers_the_modules_a_stage_imports():
    from tulu_lib.core.hashing import PACKAGE, module_closure
    from tulu_lib.workbook.stages import stage_spec

    def closure(stage):
        return {p.relative_to(PACKAGE).as_posix() for p in module_closure(stage_spec(stage).notebook,
                                                                           exclude=runner.DRAWING)}

    data, rlvr = closure("01_data"), closure("04_rlvr")
    assert "data/decontam.py" in data and "train/ppo.py" not in data  # 01_data never imports a trainer
    assert {"train/ppo.py", "train/grpo.py", "ablations/rlvr_arms.py"} <= rlvr
    assert "reporting/plots.py" not in data | rlvr  # drawing: figures are redrawn, nothing retrains
