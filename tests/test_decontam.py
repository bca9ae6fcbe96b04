"""Tests for tulu_lib.data.decontam: planted contamination, threshold boundaries, schemas, I/O."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import datasets
import pytest

from tulu_lib.data import decontam
from tulu_lib.data.decontam import (
    BenchmarkIndex,
    decontaminate,
    load_result,
    ngrams,
    normalize,
    user_text,
)


def words(prefix: str, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct pseudo-words; different prefixes never share a word."""
    rng = random.Random(f"{prefix}{seed}")
    return [f"{prefix}{rng.randrange(10**6):06d}w{i}" for i in range(n)]


def sft(i: int, user: str, source: str = "clean", assistant: str = "ok") -> dict:
    return {"id": f"r{i}", "source": source,
            "messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": assistant}]}


def clean_rows(n: int, source: str = "clean", start: int = 0) -> list[dict]:
    vocab = words("t", 400, seed=start)
    rng = random.Random(start)
    return [sft(start + i, " ".join(rng.choices(vocab, k=rng.randint(10, 60))), source)
            for i in range(n)]


def run(train, bench, **kw):
    kw.setdefault("num_proc", 1)
    kw.setdefault("progress", False)
    return decontaminate(train, bench, **kw)


def removed_ids(result) -> set[str]:
    return set(result.removed["id"])


# ------------------------------------------------------------------------------------------
# Normalisation and hashing
# ------------------------------------------------------------------------------------------
def test_normalize():
    assert normalize("  Hello,\tWORLD!!  x+y=3 ") == "hello world x y 3"
    assert normalize("Don't stop_me — ÉCOLE ½") == "don t stop me école ½"
    assert normalize("?!") == ""


def test_ngrams_short_and_long():
    assert ngrams("", 8) == set() and ngrams("one two three", 8) == set()
    text = " ".join(words("a", 20))
    assert len(ngrams(text, 8)) == 13
    assert ngrams(text.upper().replace(" ", " , "), 8) == ngrams(text, 8)
    assert ngrams("a b c d e f g h", 8) != ngrams("h g f e d c b a", 8)
    assert ngrams("a b c d a b c d", 4) == ngrams("a b c d a b c", 4)  # distinct n-grams


def test_ngram_hashes_stable_across_processes():
    text = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox!"
    code = ("from tulu_lib.data.decontam import ngrams; import sys; "
            f"print(sorted(ngrams({text!r}, 8)))")
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert outs == {f"{sorted(ngrams(text, 8))}\n"}


# ------------------------------------------------------------------------------------------
# Schemas
# ------------------------------------------------------------------------------------------
def test_user_text_schemas():
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]
    assert user_text({"messages": msgs}) == "u1\nu2"
    assert user_text({"prompt": "p", "chosen": msgs, "rejected": msgs}) == "u1\nu2"
    assert user_text({"prompt": "p", "chosen": msgs[2:3], "rejected": []}) == "p"
    assert user_text({"prompt": msgs[:2], "chosen": [], "rejected": []}) == "u1"
    assert user_text({"messages": msgs[2:3]}) == ""
    assert user_text({"messages": None, "ground_truth": "4"}) == ""


def test_preference_and_rlvr_rows_and_skipped():
    items = words("b", 12)
    q = " ".join(items)
    bench = {"gsm8k": [("g0", q)]}
    rows = [
        {"prompt": q, "chosen": [{"role": "user", "content": q},
                                 {"role": "assistant", "content": "x"}],
         "rejected": [{"role": "user", "content": q}], "source": "pref"},
        {"messages": [{"role": "user", "content": q}], "ground_truth": "1", "dataset": "gsm"},
        {"messages": [{"role": "assistant", "content": q}], "ground_truth": "1",
         "dataset": "gsm"},
        {"messages": [{"role": "system", "content": "only a system turn"}], "source": "sft"},
    ]
    result = run(rows, bench, unscanned="keep")
    assert sorted(result.removed["id"]) == ["gsm#1", "pref#0"]  # stable ids: source#row
    assert result.skipped == {"count": 2, "examples": ["gsm#2", "sft#3"], "kept": True}
    assert len(result.dataset) == 2  # unscanned="keep": rows without user text are kept
    assert result.stats["rows_skipped"] == 2
    assert set(result.table["source"]) == {"gsm", "pref", "sft"}


# ------------------------------------------------------------------------------------------
# Planted contamination
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def suite():
    vocab = words("b", 3000)
    items = [" ".join(vocab[i * 30:(i + 1) * 30]) for i in range(100)]  # 30 words: 23 8-grams
    return {"gsm8k": [(f"g{i}", t) for i, t in enumerate(items[:50])],
            "mmlu": [(f"m{i}", t) for i, t in enumerate(items[50:])]}


def test_planted_contamination(suite):
    g = [t for _, t in suite["gsm8k"]]
    m = [t for _, t in suite["mmlu"]]
    edited = g[3].split()
    edited[15] = "changed"  # one word: 15 of 23 8-grams survive
    heavy = m[0].split()
    for k in range(0, 30, 2):  # every other word changed: no 8-gram survives
        heavy[k] = f"x{k}"
    noise = " ".join(words("t", 40))
    rows = clean_rows(300) + [
        sft(1000, g[0], "leaky"),  # verbatim
        sft(1001, g[1].upper().replace(" ", ", ") + "?", "leaky"),  # case + punctuation
        sft(1002, f"{noise} {g[2]} {noise}", "leaky"),  # embedded in a longer turn
        sft(1003, " ".join(edited), "leaky"),
        sft(1004, " ".join(heavy), "leaky"),
        sft(1005, f"Question: {m[1]}\nAnswer step by step.", "other"),
    ]
    result = run(rows, suite, rule="ngram_fraction")
    removed = result.removed.set_index("id")
    assert set(removed.index) == {"r1000", "r1001", "r1002", "r1003", "r1005"}
    assert removed.loc["r1000", "match"] == "exact" and removed.loc["r1001", "match"] == "exact"
    assert removed.loc["r1002", "match"] == "ngram" and removed.loc["r1002", "overlap"] == 1.0
    assert removed.loc["r1003", "overlap"] == pytest.approx(15 / 23)
    assert removed.loc["r1005", "item_id"] == "m1"
    table = result.table.set_index(["source", "benchmark"])
    assert table.loc[("leaky", "gsm8k"), "n_items_overlapped"] == 4
    assert table.loc[("leaky", "gsm8k"), "n_train_rows_matched"] == 4
    assert table.loc[("leaky", "gsm8k"), "overlap_pct"] == pytest.approx(8.0)
    assert table.loc[("leaky", "mmlu"), "n_items_overlapped"] == 0
    assert set(result.flagged()[["source", "benchmark"]].itertuples(index=False)) == {
        ("leaky", "gsm8k")}  # other/mmlu: 1 of 50 = 2%, not more than 2%
    assert len(result.dataset) == len(rows) - 5
    assert result.stats["rows_removed"] == 5 and result.stats["rows_out"] == len(rows) - 5


def test_clean_set_not_flagged(suite):
    result = run(clean_rows(200), suite)
    assert result.removed.empty and not result.table.flagged.any()
    assert len(result.dataset) == 200
    assert result.table.n_items_overlapped.sum() == 0
    assert len(result.table) == 2  # one source x two benchmarks


def test_assistant_and_system_turns_do_not_count(suite):
    item = suite["gsm8k"][0][1]
    rows = clean_rows(20) + [
        sft(100, "Please answer.", assistant=item),
        {"id": "r101", "source": "clean", "messages": [
            {"role": "system", "content": item}, {"role": "user", "content": "hi"}]},
    ]
    assert run(rows, suite).removed.empty


def test_exact_match_only():
    """Items shorter than one n-gram match only a row whose whole user text is the item."""
    long_item = " ".join(words("b", 12))
    bench = {"ifeval": [("i0", "Write a haiku!"), ("i1", long_item)]}
    rows = clean_rows(10) + [
        sft(100, "write a HAIKU"),  # exact after normalisation
        sft(101, "Please write a haiku about spring"),  # contains it: not a match
        sft(102, "write haiku a"),
        sft(103, long_item.title() + "."),  # a long item: exact too
    ]
    result = run(rows, bench, rule="ngram_fraction")
    removed = result.removed.set_index("id")
    assert set(removed.index) == {"r100", "r103"}
    assert (removed.match == "exact").all() and (removed.overlap == 1.0).all()
    assert result.table.n_items_overlapped.tolist() == [2]


# ------------------------------------------------------------------------------------------
# Threshold boundaries
# ------------------------------------------------------------------------------------------
def test_overlap_threshold_boundary():
    item = words("b", 17)  # 10 distinct 8-grams
    bench = {"math": [("q", " ".join(item))]}
    rows = [sft(0, " ".join(item[:12])),  # windows 0..4: 5/10 = 50% -> overlaps
            sft(1, " ".join(item[:11])),  # 4/10 -> no
            sft(2, " ".join(item[5:]))]  # windows 5..9: 5/10 -> overlaps
    result = run(rows, bench, rule="ngram_fraction")
    assert removed_ids(result) == {"r0", "r2"}
    assert set(result.removed.overlap) == {0.5}
    assert removed_ids(run(rows, bench, overlap_threshold=0.51, rule="ngram_fraction")) == set()


def flag_case():
    vocab = words("b", 1000)
    items = [(f"q{i}", " ".join(vocab[i * 10:(i + 1) * 10])) for i in range(100)]
    rows = clean_rows(30, "two") + clean_rows(30, "three", start=100)
    rows += [sft(500 + i, items[i][1], "two") for i in range(2)]  # 2 of 100 = 2%
    rows += [sft(600 + i, items[10 + i][1], "three") for i in range(3)]  # 3% > 2%
    return rows, {"mmlu": items}


def test_flag_threshold_boundary():
    rows, bench = flag_case()
    table = run(rows, bench).table.set_index("source")
    assert table.loc["two", "overlap_pct"] == pytest.approx(2.0)
    assert not table.loc["two", "flagged"]
    assert table.loc["three", "flagged"]


def test_removal_modes():
    rows, bench = flag_case()
    overlapping = run(rows, bench, removal="overlapping")
    flagged = run(rows, bench, removal="flagged")
    assert removed_ids(overlapping) == {"r500", "r501", "r600", "r601", "r602"}
    assert removed_ids(flagged) == {"r600", "r601", "r602"}
    assert len(flagged.dataset) == len(rows) - 3
    assert flagged.table.equals(overlapping.table)


def test_matches_brute_force_reference():
    """Random texts over a tiny vocabulary (many partial overlaps, short items) against a
    direct implementation of the rules on token tuples."""
    ngram = 3
    rng = random.Random(7)
    vocab = ["Alpha", "beta,", "ALPHA.", "gamma?", "Delta", "delta!"]  # 4 tokens, 64 3-grams
    items = [(f"q{i}", " ".join(rng.choices(vocab, k=rng.randint(1, 20)))) for i in range(60)]
    rows = [sft(i, " ".join(rng.choices(vocab, k=rng.randint(0, 40)))) for i in range(150)]
    rows += [sft(200 + k, items[k][1].upper() + "!") for k in range(0, 60, 6)]  # exact copies
    result = run(rows, {"b": items}, ngram=ngram, overlap_threshold=0.4, rule="ngram_fraction")

    def grams(tokens):
        return {tuple(tokens[k:k + ngram]) for k in range(len(tokens) - ngram + 1)}

    expected = set()
    for row in rows:
        tokens = normalize(user_text(row)).split()
        for item_id, text in items:
            item = normalize(text).split()
            if len(item) < ngram:
                share = float(tokens == item)
            else:
                share = len(grams(item) & grams(tokens)) / len(grams(item))
            if share >= 0.4:
                expected.add((row["id"], item_id, round(share, 9), tokens == item))
    got = {(r.id, r.item_id, round(r.overlap, 9), r.match == "exact")
           for r in result.removed.itertuples()}
    assert got == expected
    assert sum(e[3] for e in expected) > 3 and sum(0.4 <= e[2] < 1 for e in expected) > 20


# ------------------------------------------------------------------------------------------
# Inputs, parallelism, persistence
# ------------------------------------------------------------------------------------------
def test_empty_and_invalid_inputs_raise(suite):
    with pytest.raises(ValueError, match="empty"):
        run([], suite)
    with pytest.raises(ValueError, match="no benchmarks"):
        BenchmarkIndex.build({})
    with pytest.raises(ValueError, match="'mmlu' has no items"):
        BenchmarkIndex.build({"gsm8k": [("a", "b c")], "mmlu": []})
    with pytest.raises(ValueError, match="removal"):
        run(clean_rows(3), suite, removal="all")
    with pytest.raises(ValueError, match="ngram=8"):
        run(clean_rows(3), BenchmarkIndex.build(suite), ngram=13)


def test_num_proc_2_matches_num_proc_1(suite):
    rows = clean_rows(400)
    for k in range(0, 400, 37):  # spread contamination over several chunks
        rows[k] = sft(k, f"Q: {suite['mmlu'][k % 50][1]}")
    ds = datasets.Dataset.from_list(rows)
    index = BenchmarkIndex.build(suite)
    one, two = run(ds, index, num_proc=1), run(ds, index, num_proc=2)
    assert len(one.removed) == 11
    assert one.removed.equals(two.removed) and one.table.equals(two.table)
    assert one.dataset["id"] == two.dataset["id"]


def test_save_load_round_trip(tmp_path, suite):
    rows = clean_rows(50) + [sft(99, suite["gsm8k"][0][1], "leaky"),
                             sft(97, suite["gsm8k"][1][1] + " Thanks!", "leaky"),
                             {"id": "r98", "source": "x", "messages": []}]
    result = run(rows, suite)
    out = result.save(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == [
        "contamination.csv", "dataset", "removed.csv", "summary.json"]
    back = load_result(out)
    assert back.table.equals(result.table)
    assert back.removed.equals(result.removed)
    assert back.dataset["id"] == result.dataset["id"]
    assert back.skipped == result.skipped and back.stats == result.stats
    assert json.loads((out / "summary.json").read_text())["flagged"][0]["source"] == "leaky"
    with pytest.raises(FileExistsError):
        result.save(out)
    result.save(out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_save_leaves_nothing_and_half_folder_refused(tmp_path, suite, monkeypatch):
    result = run(clean_rows(10), suite)

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(decontam.pd.DataFrame, "to_csv", crash)  # after dataset/ was written
        with pytest.raises(RuntimeError):
            result.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []
    half = tmp_path / "half"
    result.dataset.save_to_disk(str(half / "dataset"))
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_result(half)


# ------------------------------------------------------------------------------------------
# Nothing passes unscanned; the CLI reads --train through the run's loader (#36)
# ------------------------------------------------------------------------------------------
def test_rows_that_cannot_be_scanned_are_dropped_and_named_by_default():
    q = " ".join(words("b", 12))
    rows = [sft(0, "an innocent question about the weather today"),
            {"id": "no-messages", "source": "s"},
            {"id": "robot", "source": "s", "messages": [{"role": "robot", "content": q}]},
            {"id": "null", "source": "s", "messages": [{"role": "user", "content": None}]}]
    result = run(rows, {"gsm8k": [("g0", q)]})
    assert result.dataset["id"] == ["r0"]
    assert result.skipped == {"count": 3, "examples": ["no-messages", "robot", "null"], "kept": False}
    assert (result.stats["rows_unscanned_dropped"], result.stats["rows_removed"]) == (3, 0)
    assert len(run(rows, {"gsm8k": [("g0", q)]}, remove=False).dataset) == 4  # report-only: untouched


def _cli(capsys, *args):
    """``tulu-repro decontaminate``'s exit status, stdout and non-blank stderr lines."""
    from tulu_lib.cli import main

    try:
        code = main(["decontaminate", "--benchmarks", "gsm8k", "--num-proc", "1", *map(str, args)])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip() and "\r" not in line]


def test_cli_reads_train_files_through_the_runs_loader(tmp_path, capsys):
    m = [{"role": "user", "content": "How many legs does a spider have?"},
         {"role": "assistant", "content": "Eight."}]
    lines = [json.dumps({"id": "a", "messages": m, "source": "s"}),
             "{not json",
             json.dumps({"id": "b", "source": "s"}),  # no messages
             json.dumps({"id": "c", "source": "s", "messages": [{"role": "robot", "content": "x"}, *m]}),
             json.dumps({"id": "d", "source": "s", "messages": [{"role": "user", "content": None}, m[1]]}),
             json.dumps({"id": "a", "messages": m, "source": "s"}),  # a repeated id
             "[" * 100_000 + "]" * 100_000,  # nested too deeply for json
             json.dumps({"id": "e", "messages": m, "source": "s"})]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(lines) + "\n")
    code, out, err = _cli(capsys, "--train", train, "--out", tmp_path / "out")
    assert code == 0, err
    assert "kept 2 of 8 rows; removed 0 overlapping; dropped 6 malformed or repeated" in out
    result = load_result(tmp_path / "out")
    assert result.dataset["id"] == ["a", "e"]  # nothing unscanned or malformed is passed on
    data = result.stats["data"]
    assert (data["kind"], data["rows_in"], data["rows_kept"], data["duplicate_ids"]) == ("sft", 8, 2, 1)
    where = {reason: at for reason, at in data["locations"].items()}
    assert where["messages: not a non-empty list of messages"] == [f"{train}:3"]
    assert where["messages: a message with a missing or unknown role"] == [f"{train}:4"]
    assert where["messages: a message with empty content"] == [f"{train}:5"]
    assert where["duplicate id (an earlier row has it)"] == [f"{train}:6"]
    assert f"first at {train}:1" in data["examples"]["duplicate id (an earlier row has it)"][0]
    assert where["line is JSON nested too deeply"] == [f"{train}:7"]
    assert any(at == [f"{train}:2"] for reason, at in where.items() if reason.startswith("line is not JSON"))
    code, out, err = _cli(capsys, "--train", train, "--out", tmp_path / "all", "--duplicate-ids", "keep_all")
    assert code == 0 and load_result(tmp_path / "all").dataset["id"] == ["a", "a", "e"]


@pytest.mark.parametrize("name, content, expect", [
    ("empty.jsonl", b"", "the file is empty"),
    ("wide.jsonl", json.dumps({"id": "a"}).encode("utf-16"), "not UTF-8"),
    ("junk.jsonl", b"nope\n[]\n", "no usable JSON line"),
    ("empty.json", b"", "not a readable json file"),
    ("bad.parquet", b"PAR1 not parquet", "not a readable parquet file"),
    ("missing.jsonl", None, "no such file"),
])
def test_cli_unreadable_train_file_is_one_line_exit_2(tmp_path, capsys, name, content, expect):
    train = tmp_path / name
    if content is not None:
        train.write_bytes(content)
    code, out, err = _cli(capsys, "--train", train, "--out", tmp_path / "out")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --train {train}"), err
    assert expect in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_bad_out_and_numbers_fail_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = _cli(capsys, "--train", "standin:sft", "--out", tmp_path / "file" / "out")
    assert code == 2 and err == [f"error: --out {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, "
                                 "not a folder"]
    (tmp_path / "done").mkdir()
    code, _, err = _cli(capsys, "--train", "standin:sft", "--out", tmp_path / "done")
    assert code == 1 and err == [f"error: --out {tmp_path / 'done'} exists (add --overwrite to replace it)"]
    for flag, value in (("--overlap", "2"), ("--flag", "1"), ("--ngram", "0"), ("--num-proc", "0")):
        code, _, err = _cli(capsys, "--train", "standin:sft", "--out", tmp_path / "x", flag, value)
        assert code == 2 and f"argument {flag}" in err[-1], (flag, err)
