import json
from collections import Counter

import pytest

from tulu_lib.core.params import SourceParams
from tulu_lib.data import loader, standins
from tulu_lib.evals.registry import PACKAGED, load_benchmark

M = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("kind", ["sft", "preferences", "rlvr"])
def test_offline_standins_load_clean_with_sources(kind):
    loaded = loader.load(kind, SourceParams(path=f"standin:{kind}"), seed=0)
    assert len(loaded.dataset) > 1000
    assert loaded.report.rows_kept == loaded.report.rows_in  # the stand-ins have no bad rows
    assert "source" in loaded.dataset.column_names and len(set(loaded.dataset["source"])) >= 3
    assert loaded.fingerprint == loader.load(kind, SourceParams(path=f"standin:{kind}")).fingerprint


def test_rlvr_standin_covers_the_three_verifiable_domains():
    ds = loader.load_rlvr(SourceParams(path="standin:rlvr")).dataset
    assert set(ds["dataset"]) == {"gsm8k", "MATH", "ifeval"}
    row = ds.filter(lambda r: r["dataset"] == "ifeval")[0]
    assert "func_name" in json.loads(row["ground_truth"])


def test_sft_standin_math_is_disjoint_from_math500():
    math500 = {p.strip() for p in load_benchmark("math500")["prompt"]}
    sft = standins.build_sft()
    math_rows = [r for r in sft if r["source"] == "math"]
    assert len(math_rows) == 4500
    assert not math500 & {r["messages"][0]["content"].strip() for r in math_rows}


def test_local_jsonl_in_the_hub_schemas(tmp_path):
    sft = _jsonl(tmp_path / "sft.jsonl", [{"id": "a", "messages": M, "source": "x"}])
    assert loader.load_sft(SourceParams(path=sft)).dataset[0]["messages"] == M
    # allenai/llama-3.1-tulu-3-8b-preference-mixture: prompt is a string, chosen/rejected
    # are whole conversations
    pref = _jsonl(tmp_path / "pref.jsonl", [{
        "id": "p1", "source": "s", "prompt": "hi",
        "chosen": M, "rejected": [M[0], {"role": "assistant", "content": "go away"}]}])
    row = loader.load_preferences(SourceParams(path=pref)).dataset[0]
    assert row["prompt"] == M[:1] and row["chosen"] == M[1:]
    assert row["rejected"][0]["content"] == "go away"
    # allenai/RLVR-GSM-MATH-IF-Mixed-Constraints
    rlvr = _jsonl(tmp_path / "rlvr.jsonl", [{"messages": M[:1], "ground_truth": "72",
                                             "dataset": "gsm8k"}])
    row = loader.load_rlvr(SourceParams(path=rlvr)).dataset[0]
    assert (row["dataset"], row["ground_truth"], row["source"]) == ("gsm8k", "72", "gsm8k")


def test_parquet_and_saved_folders_load_the_same(tmp_path):
    loaded = loader.load_sft(SourceParams(path="standin:sft", limit=10), seed=1)
    loaded.dataset.to_parquet(str(tmp_path / "sft.parquet"))
    loaded.dataset.save_to_disk(str(tmp_path / "saved"))
    for path in (str(tmp_path / "sft.parquet"), str(tmp_path / "saved")):
        again = loader.load_sft(SourceParams(path=path))
        assert again.fingerprint == loaded.fingerprint


def test_bad_rows_are_counted_shown_and_dropped(tmp_path):
    rows = [
        {"id": "ok", "messages": M},
        {"id": "no-messages"},
        {"id": "bad-role", "messages": [{"role": "robot", "content": "x"}, M[1]]},
        {"id": "empty", "messages": [{"role": "user", "content": "  "}, M[1]]},
        {"id": "no-assistant", "messages": M[:1]},
    ]
    loaded = loader.load_sft(SourceParams(path=_jsonl(tmp_path / "s.jsonl", rows)))
    report = loaded.report
    assert (report.rows_in, report.rows_kept, len(loaded.dataset)) == (5, 1, 1)
    assert sum(report.dropped.values()) == 4
    assert "no assistant turn" in report.summary() and "empty content" in report.summary()


def test_bad_preference_pairs(tmp_path):
    other = [{"role": "user", "content": "different"}, M[1]]
    rows = [
        {"prompt": M[:1], "chosen": M[1:], "rejected": M[1:]},  # identical
        {"chosen": M, "rejected": other},  # different prompts
        {"prompt": M[:1], "chosen": [{"role": "assistant", "content": ""}], "rejected": M[1:]},
        {"prompt": "not this", "chosen": M, "rejected": [M[0], {"role": "assistant", "content": "no"}]},
    ]
    path = _jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(ValueError, match="no usable rows"):
        loader.load_preferences(SourceParams(path=path))
    _, report = loader.clean_rows("preferences", rows, path)
    assert set(report.dropped) == {
        "chosen and rejected are identical", "chosen and rejected answer different prompts",
        "chosen: a message with empty content",
        "prompt: does not match the conversation's last user turn"}


def test_rlvr_rows_need_a_known_domain_and_a_ground_truth():
    rows = [{"messages": M[:1], "ground_truth": "1", "dataset": "gsm8k"},
            {"messages": M[:1], "ground_truth": "1", "dataset": "poetry"},
            {"messages": M[:1], "ground_truth": "", "dataset": "MATH"},
            {"messages": M[:1], "ground_truth": "{not json", "dataset": "ifeval"}]
    kept, report = loader.clean_rows("rlvr", rows, "mem")
    assert len(kept) == 1 and sum(report.dropped.values()) == 3


def test_mix_counts_fractions_and_errors():
    rows = [{"source": "a", "i": i} for i in range(10)] + [{"source": "b", "i": i} for i in range(4)]
    mixed = loader.mix(rows, {"a": 3, "b": 0.5}, seed=0)
    assert Counter(r["source"] for r in mixed) == {"a": 3, "b": 2}
    assert loader.mix(rows, {"a": 3, "b": 0.5}, seed=0) == mixed  # seeded
    assert Counter(r["source"] for r in loader.mix(rows, {"b": 1}, seed=0)) == {"b": 1}
    assert Counter(r["source"] for r in loader.mix(rows, {"b": 1.0}, seed=0)) == {"b": 4}
    with pytest.raises(ValueError, match="no rows with source 'c'"):
        loader.mix(rows, {"c": 1}, seed=0)
    with pytest.raises(ValueError, match="asks for 11 rows but has 10"):
        loader.mix(rows, {"a": 11}, seed=0)


def test_wrong_standin_kind_is_an_error():
    with pytest.raises(ValueError, match="needs 'standin:sft'"):
        loader.load_sft(SourceParams(path="standin:rlvr"))


EXPECTED_SIZES = {"gsm8k": 1319, "math500": 500, "humaneval": 164, "ifeval": 541,
                  "mmlu": 14042, "drop": 1000, "ifbench": 300, "alpaca_eval": 805, "math": 5000}


@pytest.mark.parametrize("name", sorted(PACKAGED))
def test_packaged_benchmarks(name):
    ds = load_benchmark(name)
    assert len(ds) == EXPECTED_SIZES[name]
    assert {"id", "prompt"} <= set(ds.column_names)
    assert len(set(ds["id"])) == len(ds) and all(p.strip() for p in ds["prompt"])


HUB_ROWS = {
    "gsm8k": {"question": "Q?", "answer": "So 1,000.\n#### 1,000"},
    "math500": {"problem": "P?", "solution": "x = \\boxed{\\frac{1}{2}}", "answer": "1/2",
                "subject": "Algebra", "level": 2, "unique_id": "test/algebra/1.json"},
    "humaneval": {"task_id": "HumanEval/0", "prompt": "def f():\n", "canonical_solution": "  return 1",
                  "test": "def check(c): assert c() == 1", "entry_point": "f"},
    "ifeval": {"key": 1000, "prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"],
               "kwargs": [{"num_words": None}]},
    "mmlu": {"question": "Q?", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 2},
    "drop": {"section_id": "s", "query_id": "q1", "passage": "P.", "question": "Q?",
             "answers_spans": {"spans": ["x"], "types": ["span"]}},
    "alpaca_eval": {"instruction": "I", "output": "O", "generator": "gpt4", "dataset": "d"},
}


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_benchmarks_from_a_local_copy_in_the_hub_schema(name, tmp_path):
    ds = load_benchmark(name, path=_jsonl(tmp_path / f"{name}.jsonl", [HUB_ROWS[name]]))
    assert len(ds) == 1 and ds[0]["prompt"]
    if name == "gsm8k":
        assert ds[0]["answer"] == "1000"
    if name == "math500":
        assert ds[0]["answer"] == "\\frac{1}{2}"
    if name == "ifeval":
        assert ds[0]["kwargs"] == ["{}"]


def test_standin_constraints_are_verifiable_by_the_reward_checkers():
    from tulu_lib.evals.verifiers import verify

    prefs = [r for r in standins.build_preferences() if r["source"] == "if_verified"]
    assert len(prefs) > 600
    for row in prefs:
        prompt = row["prompt"][0]["content"]
        (template, func, kwargs, _), = [c for c in standins.CONSTRAINTS
                                        if prompt.endswith(c[0].format(**c[2]))]
        truth = json.dumps({"func_name": func, **kwargs})
        assert verify("ifeval", row["chosen"][0]["content"], truth)
        assert not verify("ifeval", row["rejected"][0]["content"], truth)


def test_every_rlvr_standin_ground_truth_verifies_against_itself():
    from tulu_lib.evals.verifiers import verify

    for row in standins.build_rlvr():
        truth = row["ground_truth"]
        if row["dataset"] == "gsm8k":
            assert verify("gsm8k", f"So the answer is {truth}.", truth)
        elif row["dataset"] == "MATH":
            assert verify("MATH", f"The answer is $\\boxed{{{truth}}}$.", truth), truth
        else:
            verify("ifeval", "any reply", truth)  # well-formed: does not raise


def test_if_short_prompts_are_unique_and_their_constraint_is_what_the_verifier_checks():
    """The cpu default's targeted RLVR domain: every prompt once, each constraint's own wording at its
    end; a reply made to keep it (the constraint's ``satisfy``) verifies, the plain reply mostly not."""
    from tulu_lib.evals.verifiers import verify

    rows = [r for r in standins.build_rlvr() if r["source"] == "if_short"]
    prompts = [r["messages"][0]["content"] for r in rows]
    assert len(rows) == 480 and len(set(prompts)) == 480 and {r["dataset"] for r in rows} == {"ifeval"}
    plain, kept_plain = "Bees make honey, and they live in hives.", 0
    for row, prompt in zip(rows, prompts, strict=True):
        (template, func, kwargs, satisfy), = [c for c in standins.CONSTRAINTS
                                              if prompt.endswith(c[0].format(**c[2]))]
        assert json.loads(row["ground_truth"]) == {"func_name": func, **kwargs}
        assert verify("ifeval", satisfy(plain, kwargs), row["ground_truth"])
        kept_plain += verify("ifeval", plain, row["ground_truth"])
    assert kept_plain == 0  # it has capitals and lowercase, a comma, no end phrase, no quotes, no P.S.
    # appended after the other sources' shuffle: their 6,248 rows keep the order they had before
    every = standins.build_rlvr()
    assert every[-480:] == rows and len(every) == 6248 + 480


def test_if_short_benchmark_holds_out_prompts_rlvr_never_trains_on_and_scores_with_ifevals_checkers():
    """The ``if_short`` benchmark: 20 prompts per constraint, none of them one of the 480 the RLVR
    stand-in trains on; each carries IFEval's id for its constraint, so lm-eval's checkers score it: a
    reply the stand-in's ``satisfy`` made passes, the plain reply fails."""
    from tulu_lib.evals.tasks.if_short import IF_SHORT

    trained = {r["messages"][0]["content"] for r in standins.build_rlvr() if r["source"] == "if_short"}
    rows = list(load_benchmark("if_short"))
    prompts = {r["prompt"] for r in rows}
    assert len(rows) == len(prompts) == 120 and not trained & prompts
    assert Counter(r["instruction_id_list"][0] for r in rows) == {
        "change_case:english_lowercase": 20, "change_case:english_capital": 20, "punctuation:no_comma": 20,
        "startend:end_checker": 20, "startend:quotation": 20, "detectable_content:postscript": 20}
    plain = "Bees make honey, and they live in hives."
    for row in rows:
        (template, _, kwargs, satisfy), = [c for c in standins.CONSTRAINTS
                                           if row["prompt"].endswith(c[0].format(**c[2]))]
        assert json.loads(row["kwargs"][0]) == kwargs
        assert IF_SHORT.score(row, satisfy(plain, kwargs))["score"] == 1.0, row["prompt"]
        assert IF_SHORT.score(row, plain)["score"] == 0.0, row["prompt"]


def test_bad_jsonl_lines_are_counted_with_file_and_line_and_dropped(tmp_path):
    good = json.dumps({"id": "a", "messages": M, "source": "x"}).encode()
    path = tmp_path / "sft.jsonl"
    path.write_bytes(b"\n".join([good, b"", b"{not json", b"caf\xe9 " + good, b"[1, 2]",
                                 good.replace(b'"a"', b'"b"')]) + b"\n")
    loaded = loader.load_sft(SourceParams(path=str(path)))
    report = loaded.report
    assert len(loaded.dataset) == report.rows_kept == 2 and report.rows_in == 6
    assert report.dropped["blank line"] == 1
    reasons = {reason: report.examples[reason][0] for reason in report.dropped}
    assert f"{path}:3" in next(v for k, v in reasons.items() if k.startswith("line is not JSON"))
    assert f"{path}:4" in reasons["line is not UTF-8 (byte 0xe9)"]
    assert f"{path}:5" in reasons["line is a JSON list, not an object"]
    assert f"{path}:2" in reasons["blank line"] and f"{path}:4" in report.summary()


def test_jsonl_with_nothing_usable_or_in_utf16_is_an_error_naming_it(tmp_path):
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n\n[]\n")
    with pytest.raises(ValueError, match=f"{junk}: no usable JSON line"):
        loader.load_sft(SourceParams(path=str(junk)))
    wide = tmp_path / "wide.jsonl"
    wide.write_text(json.dumps({"id": "a", "messages": M, "source": "x"}) + "\n", encoding="utf-16")
    with pytest.raises(ValueError, match=f"{wide}: not UTF-8"):
        loader.load_sft(SourceParams(path=str(wide)))


# --- one loader for every training file: rows named by file:line, duplicate ids (#36)


def test_bad_rows_are_dropped_with_their_reason_and_file_line(tmp_path):
    path = tmp_path / "sft.jsonl"
    _jsonl(path, [{"id": "a", "messages": M}, {"id": "b"},
                  {"id": "c", "messages": [{"role": "robot", "content": "x"}, *M]},
                  {"id": "d", "messages": [{"role": "user", "content": None}, M[1]]}])
    loaded = loader.load_sft(SourceParams(path=str(path)))
    assert loaded.dataset["id"] == ["a"]
    assert loaded.report.locations == {"messages: not a non-empty list of messages": [f"{path}:2"],
                                       "messages: a message with a missing or unknown role": [f"{path}:3"],
                                       "messages: a message with empty content": [f"{path}:4"]}
    no_messages = "messages: not a non-empty list of messages"
    assert loaded.report.examples[no_messages] == [f'{path}:2: {{"id": "b"}}']
    # not a .jsonl: the row number in the file
    rows, report = loader.clean_rows("sft", [{"messages": M}, {"id": "x"}], "hub/set")
    assert len(rows) == 1 and report.locations == {no_messages: ["hub/set row 2"]}


def test_duplicate_ids_keep_the_first_and_name_both_lines_or_are_all_kept(tmp_path):
    path = tmp_path / "sft.jsonl"
    other = [M[0], {"role": "assistant", "content": "hi again"}]
    _jsonl(path, [{"id": "a", "messages": M}, {"id": "b", "messages": M}, {"id": "a", "messages": other},
                  {"id": "a", "messages": other}])
    loaded = loader.load_sft(SourceParams(path=str(path)))
    report = loaded.report
    assert loaded.dataset["id"] == ["a", "b"] and loaded.dataset[0]["messages"] == M  # the first one
    assert (report.rows_in, report.rows_kept, report.duplicate_ids) == (4, 2, 2)
    assert report.locations[loader.DUPLICATE_REASON] == [f"{path}:3", f"{path}:4"]
    assert report.examples[loader.DUPLICATE_REASON][0] == f"{path}:3: id 'a' (first at {path}:1)"
    kept = loader.load_sft(SourceParams(path=str(path), duplicate_ids="keep_all"))
    assert kept.dataset["id"] == ["a", "b", "a", "a"] and kept.report.duplicate_ids == 2
    assert not kept.report.dropped and "kept 2 rows whose id an earlier row has" in kept.report.summary()
    assert kept.fingerprint != loaded.fingerprint


def test_hostile_files_are_one_line_errors_or_counted_lines(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"^{empty}: the file is empty$"):
        loader.read("sft", SourceParams(path=str(empty)))
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 50_000 + "]" * 50_000 + "\n" + json.dumps({"id": "a", "messages": M}) + "\n")
    rows, report = loader.read("sft", SourceParams(path=str(deep)))
    assert len(rows) == 1 and report.locations == {"line is JSON nested too deeply": [f"{deep}:1"]}
    for name, content in (("e.json", b""), ("b.json", b'[{"a": 1}, '), ("b.parquet", b"PAR1 junk"),
                          ("b.csv", b'a,b\n1,"2\n')):
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=f"^{bad}: not a readable {bad.suffix[1:]} file") as info:
            loader.read("sft", SourceParams(path=str(bad)))
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="no such file"):
        loader.read("sft", SourceParams(path=str(tmp_path / "missing.jsonl")))


def test_the_kind_is_told_from_the_rows():
    pref = {"prompt": "hi", "chosen": M, "rejected": [M[0], {"role": "assistant", "content": "no"}]}
    assert loader.detect_kind([{"messages": M}, {"id": 1}], "x") == "sft"
    assert loader.detect_kind([pref, {"messages": M}, pref], "x") == "preferences"
    assert loader.detect_kind([{"messages": M[:1], "ground_truth": "4", "dataset": "gsm8k"}], "x") == "rlvr"
    with pytest.raises(ValueError, match="cannot tell"):
        loader.detect_kind([{"text": "hi"}], "x")
    rows, report = loader.read("auto", SourceParams(path="standin:rlvr"))
    assert report.kind == "rlvr" and len(rows) == report.rows_kept > 1000
