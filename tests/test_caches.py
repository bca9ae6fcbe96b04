"""Every cache is checked before use (issue #36, item 2): a stage's outputs hashed in full, DPO's
reference log-probs and the model cache against the content hash recorded when written, saved eval
items against the scoring code and their own outputs. Each test corrupts the thing and asserts the
corruption is caught and the result equals the uncorrupted one."""

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_evals import Scripted
from tulu_lib.core import assets, hashing
from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.registry import load_benchmark

MIB = 1 << 20


def _flip(path: Path, offset: int) -> None:
    """Flip one byte at ``offset``, keeping the file's size and modification time."""
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def _big_file(path: Path, size: int = 80 * MIB) -> Path:
    """A sparse file of ``size`` bytes with a little content at its start, middle and end."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset in (0, size // 2, size - 4096):
            fh.seek(offset)
            fh.write(os.urandom(4096))
    return path


# ------------------------------------------------------------------ stage outputs


def test_a_byte_flipped_in_the_middle_of_a_large_output_is_found(tmp_path, monkeypatch):
    big = _big_file(tmp_path / "model.safetensors")
    digests = hashing.output_digests(tmp_path, ["model.safetensors"])
    sizes = hashing.file_sizes(tmp_path, digests)
    assert sizes == {"model.safetensors": 80 * MIB}
    assert hashing.changed_output(tmp_path, digests, sizes) is None
    _flip(big, 40 * MIB + 123)  # far from the first and last MiB
    assert hashing.changed_output(tmp_path, digests, sizes) == "model.safetensors changed"

    hashed = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda fh, d: hashed.append(fh.name) or real(fh, d))
    monkeypatch.setattr(hashing, "SETTLED_NS", 0)  # as if the flip were seconds old
    _flip(big, 40 * MIB + 123)  # back as it was
    for _ in range(3):  # unchanged since: hashed once per process
        assert hashing.changed_output(tmp_path, digests, sizes) is None
    assert hashed == [str(big)]
    with open(big, "r+b") as fh:  # one byte cut off: the size says so, nothing is hashed
        fh.truncate(80 * MIB - 1)
    assert hashing.changed_output(tmp_path, digests, sizes) == "model.safetensors changed"
    assert hashed == [str(big)]

    small = tmp_path / "table.csv"  # a small file hashes as it always did: its records stay valid
    small.write_bytes(b"x,y\n1,2\n")
    assert hashing.file_digest(small) == hashlib.sha256(b"8x,y\n1,2\n").hexdigest()[:16]


def test_a_file_rewritten_right_after_it_was_hashed_is_hashed_again(tmp_path, monkeypatch):
    """Where file times tick coarsely (whole seconds here; a few ms on kernels before 6.13), a
    same-size write just after a hash leaves every stat field as it was: a file is not remembered
    until its change time has settled (git's "racy clean" case)."""
    from types import SimpleNamespace

    real = Path.stat

    def coarse(self, *args, **kwargs):
        st = real(self, *args, **kwargs)
        return SimpleNamespace(st_dev=st.st_dev, st_ino=st.st_ino, st_size=st.st_size, st_mode=st.st_mode,
                               st_mtime_ns=st.st_mtime_ns // 10**9 * 10**9,
                               st_ctime_ns=st.st_ctime_ns // 10**9 * 10**9)

    monkeypatch.setattr(Path, "stat", coarse)
    path = tmp_path / "x"
    for i in range(20):
        path.write_bytes(b"%02d" % i)
        assert hashing.file_digest(path) == hashlib.sha256(b"2%02d" % i).hexdigest()[:16]


def test_a_skipped_stage_whose_large_output_changed_in_the_middle_runs_again(tmp_path, capsys):
    from tulu_lib.core.params import load_params
    from tulu_lib.workbook import runner
    from tulu_lib.workbook.stages import StageSpec

    notebook = tmp_path / "big.py"
    notebook.write_text('''# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import os
from tulu_lib.workbook import stages
stage = stages.open_stage("02_sft", params_file, run_dir, stage_dir)
with open(stage.artifacts / "model.safetensors", "wb") as fh:
    fh.truncate(80 << 20)
    fh.seek(40 << 20)
    fh.write(b"weights")
''')
    specs = (StageSpec("02_sft", "a large output", ("sft",), (), notebook),)
    params = load_params(runner.REPO_ROOT / "params" / "smoke.yaml")
    go = lambda: runner.run(params, tmp_path / "p.yaml", tmp_path / "run", specs=specs)  # noqa: E731
    assert go().statuses == {"02_sft": "done"}
    record = json.loads((tmp_path / "run" / "stages" / "02_sft.json").read_text())
    assert record["output_sizes"]["artifacts/02_sft/model.safetensors"] == 80 * MIB
    _flip(tmp_path / "run" / "artifacts" / "02_sft" / "model.safetensors", 40 * MIB + 2)
    capsys.readouterr()
    assert go().statuses == {"02_sft": "done"}
    assert "artifacts/02_sft/model.safetensors changed since it was recorded: running it again" \
        in capsys.readouterr().out


# ------------------------------------------------------------------ DPO reference log-probs


def test_an_altered_reference_value_is_found_and_computed_again(tiny_path, tmp_path, capsys):
    from tulu_lib.core.params import DPOParams, OptimParams, SourceParams
    from tulu_lib.data.loader import load_preferences
    from tulu_lib.train import dpo

    rows = load_preferences(SourceParams(path="standin:preferences", limit=4), seed=0).dataset
    params = DPOParams(optim=OptimParams(learning_rate=1e-2, max_steps=1, per_device_batch_size=2,
                                         max_length=96, save_steps=100), loss="dpo_norm", beta=0.5)
    build = lambda: dpo.build_trainer(tiny_path, rows, params, tmp_path / "out", seed=0,  # noqa: E731
                                      ref_cache_root=tmp_path / "cache")
    good = build()
    folder = Path(good.reference_info["cache_dir"])
    key, ids = dpo.CacheKey(**good.reference_info["key"]), good.train_dataset["id"]
    store = dpo.ReferenceCache(tmp_path / "cache", tiny_path)
    values = good.train_dataset[dpo.REF_COLUMNS[0]]
    meta = json.loads((folder / dpo.COMPLETE_FILE).read_text())
    assert meta["sha256"] == hashing.file_digest(folder / dpo.CACHE_FILE)
    assert store.read(key, ids)[0] == values  # as written: used

    table = pq.read_table(folder / dpo.CACHE_FILE)
    altered = table.to_pydict()
    altered[dpo.REF_COLUMNS[0]][0] += 5.0  # still a valid file: same ids, rows, finite values
    pq.write_table(pa.table(altered, schema=table.schema), folder / dpo.CACHE_FILE)
    capsys.readouterr()
    assert store.read(key, ids) is None
    assert "altered after it was written" in capsys.readouterr().out
    rebuilt = build()
    assert rebuilt.reference_info["cache_hit"] is False
    assert rebuilt.train_dataset[dpo.REF_COLUMNS[0]] == values  # as computed before the alteration
    assert store.read(key, ids)[0] == values  # the rebuilt folder is good again


# ------------------------------------------------------------------ the model cache


def _write_tiny(out: Path) -> None:
    """A tiny checkpoint, the same bytes every time: a config and one tensor file."""
    import torch
    from safetensors.torch import save_file

    (out / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    save_file({"w": torch.arange(4096, dtype=torch.float32)}, str(out / "model.safetensors"))


def test_a_bit_flipped_in_the_model_cache_is_found_and_rebuilt(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    monkeypatch.setenv("TULU_REPRO_CACHE", str(tmp_path))
    builds = []
    monkeypatch.setitem(assets._BUILDERS, "tiny-llama", lambda out: builds.append(out) or _write_tiny(out))
    folder = Path(assets.model_path("tiny-llama"))
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    record = json.loads((folder / assets.BUILD_RECORD).read_text())
    assert record["files"]["model.safetensors"] == [len(original), hashing.file_digest(weights)]
    assert assets.model_path("tiny-llama") == str(folder) and len(builds) == 1  # unchanged: used

    _flip(weights, len(original) // 2)
    capsys.readouterr()
    assert assets.model_path("tiny-llama") == str(folder) and len(builds) == 2
    assert "model.safetensors no longer has the content it was built with: rebuilding it" \
        in capsys.readouterr().err
    assert weights.read_bytes() == original
    assert load_file(str(weights))["w"].sum().item() == sum(range(4096))

    (folder / assets.BUILD_RECORD).unlink()  # a folder built before records were kept
    assert assets.model_path("tiny-llama") == str(folder) and len(builds) == 3
    assert "built before they were recorded" in capsys.readouterr().err
    assert assets.build_problem(folder) is None and not list(tmp_path.glob("models/.tiny-llama*"))


# ------------------------------------------------------------------ saved evaluation items




def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def half_right():
    truth = {r["question"]: r["answer"] for r in load_benchmark("gsm8k", limit=4)}
    return lambda p: (f"The answer is {truth[p[-1]['content'][3:-3]]}." if len(p[-1]["content"]) % 2
                      else "The answer is -1.")


def test_an_edited_item_score_is_scored_again_from_its_output(tmp_path, half_right, capsys):
    first = suite.run_benchmark(Scripted(half_right), "gsm8k", BenchmarkParams(limit=4), tmp_path)
    path = tmp_path / "gsm8k" / "items.jsonl"
    items = _lines(path)
    wrong = next(i for i in items if i["score"] == 0.0)
    wrong["score"] = 1.0  # a stored score its output does not give
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    capsys.readouterr()
    again = Scripted(half_right)
    second = suite.run_benchmark(again, "gsm8k", BenchmarkParams(limit=4), tmp_path)
    assert again.calls == 0 and second["score"] == first["score"] and second["corrected_on_load"] == 1
    assert capsys.readouterr().err.strip() == (
        f"[evals] {path}: 1 saved item(s) scored again (not scored by the current scoring code, or "
        f"changed since): 1 stored score(s) differed from their output's, corrected ({wrong['id']})")
    assert {i["id"]: i["score"] for i in _lines(path)}[wrong["id"]] == 0.0
    third = suite.run_benchmark(Scripted(half_right), "gsm8k", BenchmarkParams(limit=4), tmp_path)
    assert "corrected_on_load" not in third and not capsys.readouterr().err  # the file is right now


def test_a_scorer_fix_rescores_saved_items_without_generating_them(tmp_path, half_right, capsys):
    import dataclasses

    task = suite.TASKS["gsm8k"]
    first = suite.run_benchmark(Scripted(half_right), "gsm8k", BenchmarkParams(limit=4), tmp_path)
    wrong = sum(i["score"] == 0.0 for i in _lines(tmp_path / "gsm8k" / "items.jsonl"))
    assert 0 < wrong < 4 and first["score"] == 100 * (4 - wrong) / 4
    lenient = dataclasses.replace(task, score=lambda row, output: {"score": 1.0})  # other scoring code
    assert suite.scorer_version(lenient) != suite.scorer_version(task)
    again = Scripted(half_right)
    fixed = suite.run_benchmark(again, "gsm8k", BenchmarkParams(limit=4), tmp_path, task=lenient)
    assert again.calls == 0 and fixed["score"] == 100.0 and fixed["corrected_on_load"] == wrong
    back = suite.run_benchmark(Scripted(half_right), "gsm8k", BenchmarkParams(limit=4), tmp_path)
    assert back["score"] == first["score"] and back["corrected_on_load"] == wrong


def test_pass_at_k_samples_are_checked_against_their_saved_texts(tmp_path, half_right, capsys):
    bp = BenchmarkParams(limit=4, samples=10)
    first = suite.run_benchmark(Scripted(half_right), "gsm8k", bp, tmp_path)
    path = tmp_path / "gsm8k" / "samples.jsonl"
    records = _lines(path)
    assert all(len(r["outputs"]) == 10 for r in records)
    passed = {r["id"]: r["passed"] for r in records}
    records[0]["passed"] = 10 - records[0]["passed"]  # an edited count
    del records[1]["outputs"]  # a record without its texts cannot be checked: sampled again
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    again = Scripted(half_right)
    second = suite.run_benchmark(again, "gsm8k", bp, tmp_path)
    assert again.calls == 1 and second["pass@10"] == first["pass@10"]
    assert second["corrected_on_load"] == 1
    assert {r["id"]: r["passed"] for r in _lines(path)} == passed
