"""Decontamination with the paper's rules: planted contamination found with exact counts,
thresholds at their boundaries, clean data untouched, bad input handled."""

import pytest

from tulu_lib.data import decontam
from tulu_lib.evals.registry import load_benchmark

WORDS = [f"w{i}" for i in range(2000)]


def _row(i, user, source="chat", assistant="ok"):
    return {"id": f"r{i}", "source": source,
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture(scope="module")
def gsm():
    return [(r["id"], r["prompt"]) for r in load_benchmark("gsm8k", limit=40)]


def _clean_rows(n):
    return [_row(i, f"Please tell me about topic {i} and its history in detail.") for i in range(n)]


def test_planted_contamination_is_found_with_exact_counts(gsm):
    items = [text for _, text in gsm]
    rows = _clean_rows(50)
    planted = [
        *[items[i] for i in range(5)],                                        # verbatim
        items[5].upper(), items[6].replace(".", " !").replace(",", ""), "  " + items[7] + "  ",  # case/punct
        *[" ".join(w if k != 3 else "CHANGED" for k, w in enumerate(items[i].split())) for i in (8, 9)],
        "Here is a question I found: " + items[10] + " Please solve it step by step.",  # embedded
        "Some context first.\n\n" + items[11],
    ]
    rows += [_row(100 + k, text, source="planted") for k, text in enumerate(planted)]
    heavy = " ".join(f"x{k}" if k % 2 else w for k, w in enumerate(items[12].split()))  # most 8-grams broken
    rows += [_row(200, heavy, source="planted"), _row(201, "hello", assistant=items[13])]  # assistant only
    result = decontam.decontaminate(rows, {"gsm8k": gsm}, num_proc=1, progress=False)
    removed = set(result.removed["id"])
    assert removed == {f"r{100 + k}" for k in range(len(planted))}
    assert len(result.dataset) == len(rows) - 12
    row = result.table.set_index(["source", "benchmark"]).loc[("planted", "gsm8k")]
    assert row["n_items_overlapped"] == 12 and row["flagged"]  # 12 of 40 items > 2%
    assert not result.table.set_index("source").loc["chat", "flagged"]
    assert set(result.removed.loc[result.removed["id"] == "r100", "match"]) == {"exact"}


def test_the_overlap_threshold_at_its_boundary():
    item = " ".join(WORDS[:107])  # 100 distinct 8-grams
    half = " ".join(WORDS[:57])   # the first 50 of them
    under = " ".join(WORDS[:56])  # 49 of them
    rows = [_row(0, half), _row(1, under)]
    result = decontam.decontaminate(rows, {"b": [("item", item)]}, num_proc=1, progress=False,
                                    rule="ngram_fraction")
    assert set(result.removed["id"]) == {"r0"}
    assert result.removed["overlap"].item() == pytest.approx(0.5)


def test_the_flag_threshold_at_its_boundary():
    bench = [(f"i{k}", " ".join(WORDS[10 * k:10 * k + 10])) for k in range(100)]

    def flagged(n_overlapping):
        rows = [_row(k, bench[k][1]) for k in range(n_overlapping)] + _clean_rows(5)
        result = decontam.decontaminate(rows, {"b": bench}, num_proc=1, progress=False)
        return bool(result.table.set_index("source").loc["chat", "flagged"])

    assert flagged(2) is False  # exactly 2% is not more than 2%
    assert flagged(3) is True


def test_clean_data_is_untouched_and_short_items_match_only_exactly(gsm):
    rows = _clean_rows(30) + [_row(99, "An essay on inflation and its causes over the decades."),
                              _row(98, "Inflation")]
    result = decontam.decontaminate(rows, {"gsm8k": gsm, "tiny": [("t", "Inflation")]},
                                    num_proc=1, progress=False, rule="ngram_fraction")
    assert set(result.removed["id"]) == {"r98"}
    flags = result.table.set_index("benchmark")["flagged"]
    assert not flags["gsm8k"] and flags["tiny"]  # 1 of tiny's 1 item overlaps: > 2%


def test_removal_flagged_only_drops_rows_of_flagged_sources():
    bench = [(f"i{k}", " ".join(WORDS[10 * k:10 * k + 10])) for k in range(100)]
    rows = [_row(k, bench[k][1], source="many") for k in range(5)] + [_row(50, bench[50][1], source="one")]
    strict = decontam.decontaminate(rows, {"b": bench}, num_proc=1, progress=False)
    lenient = decontam.decontaminate(rows, {"b": bench}, removal="flagged", num_proc=1, progress=False)
    assert len(strict.dataset) == 0
    assert list(lenient.dataset["id"]) == ["r50"]  # 'one' overlaps 1% of items: not flagged


def test_bad_input_parallel_runs_and_atomic_results(tmp_path, gsm):
    rows = _clean_rows(20) + [{"id": "sys", "source": "x", "messages": [{"role": "system", "content": "hi"}]}]
    rows += [_row(300, gsm[0][1])]
    one = decontam.decontaminate(rows, {"gsm8k": gsm}, num_proc=1, progress=False)
    two = decontam.decontaminate(rows, {"gsm8k": gsm}, num_proc=2, progress=False)
    assert list(one.dataset["id"]) == list(two.dataset["id"]) and one.skipped["count"] == 1
    with pytest.raises(ValueError):
        decontam.decontaminate([], {"gsm8k": gsm}, num_proc=1, progress=False)
    with pytest.raises(ValueError):
        decontam.decontaminate(rows, {"gsm8k": []}, num_proc=1, progress=False)
    out = one.save(tmp_path / "out")
    again = decontam.load_result(out)
    assert list(again.dataset["id"]) == list(one.dataset["id"]) and len(again.removed) == 1
    (out / "summary.json").unlink()  # as if the save had been cut short
    with pytest.raises(Exception, match="summary.json"):
        decontam.load_result(out)


def test_the_offline_standins_are_clean_after_decontamination():
    """The SFT stand-in's only overlaps are real: MATH near-duplicates of MATH-500 and MATH
    problems that MMLU contains verbatim; decontamination removes exactly those."""
    import datasets

    from tulu_lib.data import standins
    from tulu_lib.evals import registry

    sft = datasets.Dataset.from_list(standins.build("sft"))
    index = decontam.BenchmarkIndex.build(registry.benchmark_texts(list(registry.PACKAGED)))
    result = decontam.decontaminate(sft, index, num_proc=1, progress=False, rule="ngram_fraction")
    assert set(result.removed["source"]) == {"math"}
    full_math = {"math"} if "math" in registry.PACKAGED else set()  # the 5,000-problem MATH
    assert set(result.removed["benchmark"]) == {"math500", "mmlu"} | full_math
    assert decontam.decontaminate(result.dataset, index, num_proc=1, progress=False,
                                  rule="ngram_fraction").removed.empty


def test_cli_decontaminates_a_local_file_with_an_eval_item_planted(tmp_path, gsm, capsys):
    import json

    import pandas as pd

    from tulu_lib.cli import main

    rows = _clean_rows(20) + [_row(500, gsm[3][1])]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["decontaminate", "--train", str(path), "--benchmarks", "gsm8k", "ifeval",
                 "--out", str(out), "--num-proc", "1"]) == 0
    assert "kept 20 of 21 rows; removed 1" in capsys.readouterr().out
    removed = pd.read_csv(out / "removed.csv")
    assert list(removed["id"]) == ["r500"] and removed["item_id"].item() == gsm[3][0]
    assert (out / "summary.json").exists() and (out / "dataset").is_dir()
    # an existing result is not overwritten by accident; unknown benchmarks fail before work
    assert main(["decontaminate", "--train", str(path), "--out", str(out)]) == 1
    assert main(["decontaminate", "--train", str(path), "--benchmarks", "gsm9k", "--out",
                 str(tmp_path / "x")]) == 1
    assert "unknown benchmark 'gsm9k'" in capsys.readouterr().err
