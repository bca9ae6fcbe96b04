"""Resuming where a kill left off: a stage's staging folder and its checkpoints, and the per-item
eval files (``items.jsonl``). The runner-level kill tests are in test_runner.py."""

import json

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
