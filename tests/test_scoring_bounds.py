"""Scoring is bounded and total: a pathological reply times out and scores 0 (counted), a scorer
that raises scores 0 (counted), in any thread; bad lines of saved outputs are counted; bad
``tulu-repro score`` arguments are one line and exit 2 (issue 36, item 5)."""

import json
import math
import os
import threading
import time

import pytest

from tulu_lib import cli
from tulu_lib.core.params import BenchmarkParams, ParamsError
from tulu_lib.evals import bounded, suite, verifiers
from tulu_lib.evals.registry import load_benchmark
from tulu_lib.generation.types import Completion

BUDGET = 1.0  # seconds; a pathological item must come back within 3x this, on a loaded 2-core machine


def nested_frac(depth: int) -> str:
    s = "x"
    for _ in range(depth):
        s = r"\frac{" + s + "}{2}"
    return s


NESTED_40KB = "$" + nested_frac(4000) + "$"  # math-verify raised TimeoutException after ~23 s on this


@pytest.fixture(scope="module")
def math_rows():
    return list(load_benchmark("math500", limit=3))


@pytest.fixture(scope="module", autouse=True)
def warm_worker(math_rows):
    """Start a scoring worker and load the MATH scorer once, so timings below are the items' own."""
    suite.item_scores(suite.TASKS["math500"], math_rows[0], "warm up")


def test_a_40kb_nested_frac_times_out_within_budget_and_is_counted(math_rows):
    task = suite.TASKS["math500"]
    start = time.monotonic()
    scores = suite.item_scores(task, math_rows[0], NESTED_40KB, timeout_s=BUDGET)
    elapsed = time.monotonic() - start
    assert elapsed < 3 * BUDGET, elapsed
    assert scores == {"score": 0.0, "scored_chars": bounded.MAX_SCORED_CHARS, "scorer_status": "timeout"}
    # the others score as before, and the summary counts the timeout
    items = {math_rows[0]["id"]: {"id": math_rows[0]["id"], **scores}}
    replies = (rf"so $\boxed{{{math_rows[1]['answer']}}}$", "no answer")
    for row, reply in zip(math_rows[1:], replies, strict=True):
        items[row["id"]] = suite.score_item(task, row, {"output": reply}, timeout_s=BUDGET)
    summary = suite.summarize(task, math_rows, items)
    assert (summary["n"], summary["timeouts"], summary["scorer_errors"]) == (3, 1, 0)
    assert summary["score"] == pytest.approx(100 / 3)
    assert summary["outputs_cut_for_scoring"] == 1 and "1 timed out" in summary["metric"]


def test_a_huge_output_is_scored_on_its_tail_in_bounded_time(math_rows):
    row = math_rows[1]
    huge = "Let me think again. " * 100_000 + rf"The answer is $\boxed{{{row['answer']}}}$."  # 2 MB
    start = time.monotonic()
    scores = suite.item_scores(suite.TASKS["math500"], row, huge, timeout_s=BUDGET)
    assert time.monotonic() - start < 3 * BUDGET
    assert scores["score"] == 1.0 and scores["scored_chars"] == bounded.MAX_SCORED_CHARS


def test_a_scorer_that_raises_scores_zero_and_is_counted():
    (row,) = load_benchmark("gsm8k", limit=1)
    broken = {**row, "answer": "not a number"}  # the GSM8K scorer raises VerificationError on it
    scores = suite.item_scores(suite.TASKS["gsm8k"], broken, "so 42", timeout_s=BUDGET)
    assert scores["score"] == 0.0 and scores["scorer_status"] == "error"
    assert "VerificationError" in scores["scorer_error"] and "not a number" in scores["scorer_error"]
    items = {row["id"]: {"id": row["id"], "finished": True, **scores}}
    summary = suite.summarize(suite.TASKS["gsm8k"], [row], items)
    assert (summary["score"], summary["timeouts"], summary["scorer_errors"]) == (0.0, 0, 1)


def test_ifeval_secondary_metrics_are_zero_for_a_failed_item():
    task = suite.TASKS["ifeval"]
    (row,) = load_benchmark("ifeval", limit=1)
    scores = suite.item_scores(task, {**row, "kwargs": ["{not json"]}, "reply", timeout_s=BUDGET)
    assert scores["scorer_status"] == "error"
    metrics = ("score", *task.secondary)
    assert {k: scores[k] for k in metrics} == dict.fromkeys(metrics, 0.0)


def test_evaluate_uses_its_budget_and_counts_timeouts(math_rows, tmp_path):
    class Scripted:
        def generate(self, prompts, sampling):
            return [[Completion(NESTED_40KB if i == 0 else r"$\boxed{1}$", True, 3)]
                    for i in range(len(prompts))]

    start = time.monotonic()
    (row,) = suite.evaluate(Scripted(), {"math500": BenchmarkParams(limit=2)}, tmp_path,
                            score_timeout_s=BUDGET)
    assert time.monotonic() - start < 10 * BUDGET
    assert row["timeouts"] == 1 and row["n"] == 2
    saved = [json.loads(line) for line in (tmp_path / "math500" / "items.jsonl").read_text().splitlines()]
    assert [item.get("scorer_status") for item in saved] == ["timeout", None]


def test_rlvr_verifier_on_a_2000_deep_frac_is_fast_and_bounded_in_any_thread():
    reply = r"$\boxed{" + nested_frac(2000) + "}$"
    start = time.monotonic()
    assert verifiers.verify("MATH", reply, "1/2") is False  # was 5.9 s (a quadratic regex); now linear
    assert time.monotonic() - start < 1.0
    # the release's rules (sympy) on it run past any budget: bounded, even outside the main thread
    before = bounded.counts()["timeouts"]
    got = {}

    def verify_in_thread():
        t0 = time.monotonic()
        got["outcome"] = verifiers.verify_outcome("MATH", reply, "1/2", rules="open_instruct",
                                                  timeout_s=BUDGET)
        before_reward = bounded.counts()["timeouts"]
        got["reward"] = verifiers.reward("MATH", reply, "1/2", rules="open_instruct", timeout_s=BUDGET)
        got["reward_status"] = "timeout" if bounded.counts()["timeouts"] > before_reward else "ok"
        got["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=verify_in_thread)
    thread.start()
    thread.join(60)
    # on a loaded machine sympy runs past the budget (a timeout); warm, it may answer in time: either
    # way the reply is not verified, the call ends within the budget and every timeout is counted
    assert got["outcome"].status in ("timeout", "ok") and got["reward"] == 0.0
    assert got["seconds"] < 2 * 3 * BUDGET
    timeouts = (got["outcome"].status == "timeout") + (got["reward_status"] == "timeout")
    assert bounded.counts()["timeouts"] == before + timeouts


def test_a_malformed_ground_truth_still_raises():
    with pytest.raises(verifiers.VerificationError, match="not a number"):
        verifiers.verify("gsm8k", "42", "forty-two", timeout_s=BUDGET)


def test_math_verify_timeout_exception_is_no_opinion(monkeypatch):
    import math_verify
    from math_verify.errors import TimeoutException

    def stuck(*args, **kwargs):
        raise TimeoutException("Operation timed out!")  # a BaseException: escaped `except Exception`
    monkeypatch.setattr(math_verify, "parse", stuck)
    assert verifiers.math_verify_equivalent(r"$\frac{1}{2}$", "0.5") is None


def test_a_crashed_worker_is_an_error_and_the_next_call_works():
    outcome = bounded.run(os._exit, 3, timeout_s=BUDGET)
    assert outcome.status == "error" and "exit code 3" in outcome.error
    assert bounded.run(len, "four", timeout_s=BUDGET * 30).value == 4  # a fresh worker


def test_score_outputs_counts_nested_oversized_and_malformed_lines(tmp_path):
    (row,) = load_benchmark("gsm8k", limit=1)
    good = json.dumps({"id": row["id"], "output": f"so {row['answer']}"})
    path = tmp_path / "outputs.jsonl"
    with open(path, "w") as fh:
        fh.write(good + "\n")
        fh.write("[" * 200_000 + "]" * 200_000 + "\n")  # deeper than the JSON parser goes
        fh.write(json.dumps({"id": {"nested": [1]}, "output": "x"}) + "\n")  # an id that is not one
        fh.write(json.dumps({"id": "gsm8k/x", "output": "y" * (suite.MAX_LINE_CHARS + 10)}) + "\n")
        fh.write("\x00\x01 not json\n")
        fh.write(good + "\n")
    with open(path, encoding="utf-8", errors="replace") as fh:
        summary = suite.score_outputs("gsm8k", suite.output_lines(fh))
    counted = (summary["lines"], summary["malformed"], summary["oversized"], summary["duplicates"])
    assert counted == (6, 3, 1, 1)
    assert summary["n"] == 1 and summary["score"] == 100.0


def test_output_lines_never_holds_more_than_its_limit(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text("a" * 50 + "\n" + "b" * 5 + "\n" + "c" * 30)
    with open(path) as fh:
        assert [len(line) for line in suite.output_lines(fh, max_chars=10)] == [11, 6, 11]


def test_cli_score_bad_paths_are_one_line_with_exit_2(tmp_path, capsys):
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("")
    cases = {
        ("--outputs", str(tmp_path)): "is a folder",
        ("--outputs", str(tmp_path / "missing.jsonl")): "No such file",
        ("--outputs", str(outputs), "--out", str(outputs / "sub")): "is a file, not a folder",
        ("--outputs", str(outputs), "--out", str(outputs)): "is a file, not a folder",
        ("--outputs", str(outputs), "--timeout-s", "0"): "--timeout-s 0 is not allowed",
    }
    for args, needle in cases.items():
        assert cli.main(["score", "--benchmark", "gsm8k", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, (args, err)
    assert cli.main(["score", "--benchmark", "nope", "--outputs", str(outputs)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_score_a_pathological_file_exits_0_and_counts(math_rows, tmp_path, capsys):
    path = tmp_path / "outputs.jsonl"
    path.write_text(json.dumps({"id": math_rows[0]["id"], "output": NESTED_40KB}) + "\n"
                    + "{" * 100_000 + "\n")
    start = time.monotonic()
    code = cli.main(["score", "--benchmark", "math500", "--outputs", str(path), "--out", str(tmp_path / "s"),
                     "--timeout-s", str(BUDGET)])
    assert code == 0 and time.monotonic() - start < 30
    printed = json.loads(capsys.readouterr().out)
    assert (printed["timeouts"], printed["malformed"], printed["score"]) == (1, 1, 0.0)
    saved = json.loads((tmp_path / "s" / "math500" / "summary.json").read_text())
    assert saved["timeouts"] == 1 and not math.isnan(saved["score"])


def test_eval_score_timeout_s_is_a_checked_param():
    from tulu_lib.workbook import validate

    assert validate.load("params/cpu.yaml", []).eval.score_timeout_s == bounded.DEFAULT_TIMEOUT_S
    for bad in ("0", "-1", ".inf"):
        with pytest.raises(ParamsError, match="score_timeout_s"):
            validate.load("params/cpu.yaml", [f"eval.score_timeout_s={bad}"])
