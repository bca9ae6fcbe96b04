"""Evaluation: prompts with the paper's shots, scoring through the verifiers, resume, not-run reasons."""

import json
import math

from tulu_lib import evals
from tulu_lib.generate import Completion
from tulu_lib.params import BenchmarkParams


class Scripted:
    """A generator that answers from a function of the prompt, counting calls."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def generate(self, prompts, sampling):
        self.calls += len(prompts)
        return [[Completion(self.answer(p), True, 3)] * sampling.n for p in prompts]


def test_exemplars_come_from_lm_eval():
    assert len(evals.gsm8k_exemplars()) == 8 and len(evals.minerva_exemplars()) == 4
    prompt = evals.TASKS["gsm8k"].prompt({"question": "Q?"}, 8)
    assert len(prompt) == 17 and prompt[-1] == {"role": "user", "content": "Q: Q?\nA:"}
    assert len(evals.TASKS["math500"].prompt({"problem": "P"}, 4)) == 9


def test_gsm8k_scores_resume_and_are_saved_per_item(tmp_path):
    from tulu_lib.benchmarks import load_benchmark

    truth = {r["question"]: r["answer"] for r in load_benchmark("gsm8k", limit=6)}
    right_for_half = Scripted(lambda p: f"The answer is {truth[p[-1]['content'][3:-3]]}."
                              if len(p[-1]["content"]) % 2 else "The answer is -1.")
    result = evals.run_benchmark(right_for_half, "gsm8k", BenchmarkParams(limit=6), tmp_path, batch_size=4)
    assert result["n"] == 6 and right_for_half.calls == 6
    assert 0 <= result["ci95_low"] <= result["score"] <= result["ci95_high"] <= 100
    items = [json.loads(line) for line in (tmp_path / "gsm8k" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 6 and {i["score"] for i in items} <= {0.0, 1.0}
    # interrupted after 4 items: a rerun generates only the missing 2
    cut = "\n".join(json.dumps(i) for i in items[:4]) + '\n{"id": "cut'
    (tmp_path / "gsm8k" / "items.jsonl").write_text(cut)
    again = Scripted(right_for_half.answer)
    assert evals.run_benchmark(again, "gsm8k", BenchmarkParams(limit=6), tmp_path)["score"] == result["score"]
    assert again.calls == 2


def test_math_ifeval_and_humaneval_scoring(tmp_path):
    from tulu_lib.benchmarks import load_benchmark

    row = load_benchmark("math500", limit=1)[0]
    assert evals.TASKS["math500"].score(row, f"so $\\boxed{{{row['answer']}}}$")["score"] == 1.0
    ifrow = load_benchmark("ifeval", limit=1)[0]  # no commas, highlighted sections, 300+ words
    scored = evals.TASKS["ifeval"].score(ifrow, "short, with a comma")
    assert scored["score"] == 0.0 and scored["inst_strict"] < 1
    human = load_benchmark("humaneval", limit=1)[0]
    good = f"```python\n{human['prompt']}{human['canonical_solution']}```"
    assert evals.TASKS["humaneval"].score(human, good)["score"] == 1.0
    assert evals.TASKS["humaneval"].score(human, "```python\nimport os\nos._exit(3)\n```")["score"] == 0.0


def test_pass_at_k():
    assert evals.pass_at_k(20, 0, 10) == 0.0 and evals.pass_at_k(20, 20, 10) == 1.0
    assert evals.pass_at_k(20, 1, 10) == 0.5 and abs(evals.pass_at_k(5, 1, 1) - 0.2) < 1e-12


def test_unavailable_benchmarks_say_why(tmp_path):
    requested = {"alpaca_eval": BenchmarkParams(), "bbh": BenchmarkParams()}
    table = evals.evaluate(Scripted(lambda p: ""), requested, tmp_path)
    assert all(math.isnan(r["score"]) and r["metric"].startswith("not run: ") for r in table)
    assert evals.paper_average({"a": 50.0, "b": math.nan, "c": 70.0}) == 60.0


def test_ifeval_summary_has_strict_and_instruction_level_too(tmp_path):
    result = evals.run_benchmark(Scripted(lambda p: "short, with a comma"), "ifeval",
                                 BenchmarkParams(limit=3), tmp_path)
    items = [json.loads(line) for line in (tmp_path / "ifeval" / "items.jsonl").read_text().splitlines()]
    for key in ("prompt_strict", "inst_loose", "inst_strict"):
        assert result[key] == 100 * sum(i[key] for i in items) / 3
    assert result["prompt_strict"] <= result["score"] and result["inst_strict"] <= result["inst_loose"]


def test_average_score_skips_benchmarks_not_run_and_combines_intervals():
    rows = [{"score": 50.0, "ci95_low": 40.0, "ci95_high": 60.0},
            {"score": 30.0, "ci95_low": 27.0, "ci95_high": 34.0},
            {"score": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}]
    avg = evals.average_score(rows)
    assert avg["average"] == 40.0
    assert avg["ci95_low"] == 40.0 - math.hypot(10, 3) / 2
    assert avg["ci95_high"] == 40.0 + math.hypot(10, 4) / 2
    assert math.isnan(evals.average_score(rows[2:])["average"])
