"""Evaluation: prompts with the paper's shots, scoring through the verifiers, resume, not-run reasons."""

import hashlib
import json
import math

import pytest

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.registry import load_benchmark
from tulu_lib.evals.tasks.alpaca_eval import alpaca_judge_messages
from tulu_lib.evals.tasks.gsm8k import gsm8k_exemplars
from tulu_lib.evals.tasks.minerva_math import minerva_exemplars
from tulu_lib.generation.types import Completion


class Scripted:
    """A generator that answers from a function of the prompt, counting calls."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def generate(self, prompts, sampling):
        self.calls += len(prompts)
        return [[Completion(self.answer(p), True, 3)] * sampling.n for p in prompts]


def test_exemplars_come_from_lm_eval():
    assert len(gsm8k_exemplars()) == 8 and len(minerva_exemplars()) == 4
    prompt = suite.TASKS["gsm8k"].prompt({"question": "Q?"}, 8)
    assert len(prompt) == 17 and prompt[-1] == {"role": "user", "content": "Q: Q?\nA:"}
    assert len(suite.TASKS["math500"].prompt({"problem": "P"}, 4)) == 9


def test_gsm8k_scores_resume_and_are_saved_per_item(tmp_path):
    truth = {r["question"]: r["answer"] for r in load_benchmark("gsm8k", limit=6)}
    right_for_half = Scripted(lambda p: f"The answer is {truth[p[-1]['content'][3:-3]]}."
                              if len(p[-1]["content"]) % 2 else "The answer is -1.")
    result = suite.run_benchmark(right_for_half, "gsm8k", BenchmarkParams(limit=6), tmp_path, batch_size=4)
    assert result["n"] == 6 and right_for_half.calls == 6
    assert 0 <= result["ci95_low"] <= result["score"] <= result["ci95_high"] <= 100
    items = [json.loads(line) for line in (tmp_path / "gsm8k" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 6 and {i["score"] for i in items} <= {0.0, 1.0}
    # interrupted after 4 items: a rerun generates only the missing 2
    cut = "\n".join(json.dumps(i) for i in items[:4]) + '\n{"id": "cut'
    (tmp_path / "gsm8k" / "items.jsonl").write_text(cut)
    again = Scripted(right_for_half.answer)
    assert suite.run_benchmark(again, "gsm8k", BenchmarkParams(limit=6), tmp_path)["score"] == result["score"]
    assert again.calls == 2


def test_math_ifeval_and_humaneval_scoring(tmp_path):
    row = load_benchmark("math500", limit=1)[0]
    assert suite.TASKS["math500"].score(row, f"so $\\boxed{{{row['answer']}}}$")["score"] == 1.0
    ifrow = load_benchmark("ifeval", limit=1)[0]  # no commas, highlighted sections, 300+ words
    scored = suite.TASKS["ifeval"].score(ifrow, "short, with a comma")
    assert scored["score"] == 0.0 and scored["inst_strict"] < 1
    human = load_benchmark("humaneval", limit=1)[0]
    good = f"```python\n{human['prompt']}{human['canonical_solution']}```"
    assert suite.TASKS["humaneval"].score(human, good)["score"] == 1.0
    assert suite.TASKS["humaneval"].score(human, "```python\nimport os\nos._exit(3)\n```")["score"] == 0.0


def test_pass_at_k():
    assert suite.pass_at_k(20, 0, 10) == 0.0 and suite.pass_at_k(20, 20, 10) == 1.0
    assert suite.pass_at_k(20, 1, 10) == 0.5 and abs(suite.pass_at_k(5, 1, 1) - 0.2) < 1e-12


def test_unavailable_benchmarks_say_why(tmp_path):
    requested = {"alpaca_eval": BenchmarkParams(), "bbh": BenchmarkParams()}
    table = suite.evaluate(Scripted(lambda p: ""), requested, tmp_path)
    assert all(math.isnan(r["score"]) and r["metric"].startswith("not run: ") for r in table)
    assert suite.paper_average({"a": 50.0, "b": math.nan, "c": 70.0}) == 60.0


def test_ifeval_summary_has_strict_and_instruction_level_too(tmp_path):
    result = suite.run_benchmark(Scripted(lambda p: "short, with a comma"), "ifeval",
                                 BenchmarkParams(limit=3), tmp_path)
    items = [json.loads(line) for line in (tmp_path / "ifeval" / "items.jsonl").read_text().splitlines()]
    for key in ("prompt_strict", "inst_loose", "inst_strict"):
        assert result[key] == 100 * sum(i[key] for i in items) / 3
    assert result["prompt_strict"] <= result["score"] and result["inst_strict"] <= result["inst_loose"]


def test_ifeval_instructions_select_the_items_testing_them_the_same_at_every_stage(tmp_path):
    """``eval.benchmarks.ifeval.instructions``: the items whose instruction_id_list names one of the ids
    (Google's IFEval data: 66 items test no_comma, 39 lowercase), in the data's order, then ``limit``."""
    every = list(suite.TASKS["ifeval"].load(None))
    no_comma = [r["id"] for r in every if "punctuation:no_comma" in r["instruction_id_list"]]
    rows, _ = suite.benchmark_rows(suite.TASKS["ifeval"], instructions=("punctuation:no_comma",))
    assert [r["id"] for r in rows] == no_comma and len(no_comma) == 66
    both, _ = suite.benchmark_rows(suite.TASKS["ifeval"], instructions=(
        "punctuation:no_comma", "change_case:english_lowercase"))
    assert len(both) == len({*no_comma, *(r["id"] for r in every
                                          if "change_case:english_lowercase" in r["instruction_id_list"])})
    first, _ = suite.benchmark_rows(suite.TASKS["ifeval"], limit=5, instructions=("punctuation:no_comma",))
    assert [r["id"] for r in first] == no_comma[:5]
    result = suite.run_benchmark(Scripted(lambda p: "no commas here"), "ifeval",
                                 BenchmarkParams(limit=4, instructions=("punctuation:no_comma",)), tmp_path)
    assert result["n"] == 4 and "only the items testing punctuation:no_comma" in result["metric"]
    with pytest.raises(ValueError, match="no item tests"):
        suite.benchmark_rows(suite.TASKS["ifeval"], instructions=("punctuation:no_commas",))
    with pytest.raises(ValueError, match="instruction_id_list"):
        suite.benchmark_rows(suite.TASKS["gsm8k"], instructions=("punctuation:no_comma",))
    with pytest.raises(ValueError, match="empty list"):
        BenchmarkParams(instructions=())


def test_average_score_skips_benchmarks_not_run_and_combines_intervals():
    rows = [{"score": 50.0, "ci95_low": 40.0, "ci95_high": 60.0},
            {"score": 30.0, "ci95_low": 27.0, "ci95_high": 34.0},
            {"score": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}]
    avg = suite.average_score(rows)
    assert avg["average"] == 40.0
    assert avg["ci95_low"] == 40.0 - math.hypot(10, 3) / 2
    assert avg["ci95_high"] == 40.0 + math.hypot(10, 4) / 2
    assert math.isnan(suite.average_score(rows[2:])["average"])


def test_score_outputs_matches_run_benchmark_and_counts_bad_lines(tmp_path, capsys):
    from tulu_lib import cli

    answer = lambda p: "short, with a comma" if len(p[-1]["content"]) % 2 else "no commas here"  # noqa: E731
    run = suite.run_benchmark(Scripted(answer), "ifeval", BenchmarkParams(limit=4), tmp_path / "run")
    saved = (tmp_path / "run" / "ifeval" / "items.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in saved]
    lines = [json.dumps({"id": i["id"], "output": i["output"]}) for i in items]
    lines += ["not json", json.dumps({"id": "no-such-id", "output": "x"}), json.dumps({"output": "no id"}),
              json.dumps([1, 2])]
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    scored = suite.score_outputs("ifeval", path.read_text().splitlines(), tmp_path / "scored")
    for key in ("score", "n", "prompt_strict", "inst_loose", "inst_strict", "ci95_low"):
        assert scored[key] == run[key]
    assert (scored["malformed"], scored["unknown_ids"], scored["lines"]) == (3, 1, 8)
    assert scored["missing"] == 541 - 4 and "official IFEval checkers" in scored["metric"]
    assert (tmp_path / "scored" / "ifeval" / "summary.json").exists()
    assert cli.main(["score", "--benchmark", "ifeval", "--outputs", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["score"] == run["score"] and printed["malformed"] == 3


def test_score_outputs_humaneval_samples_give_pass_at_10(tmp_path):
    (row,) = load_benchmark("humaneval", limit=1)
    good = f"```python\n{row['prompt']}{row['canonical_solution']}```"
    samples = [good] * 2 + ["```python\npass\n```"] * 18
    lines = [json.dumps({"id": row["id"], "output": good, "outputs": samples})]
    scored = suite.score_outputs("humaneval", lines)
    assert scored["n"] == 1 and scored["score"] == 100.0
    assert abs(scored["pass@10"] - 100 * suite.pass_at_k(20, 2, 10)) < 1e-9 and scored["samples"] == 20


def test_own_chat_template_goes_through_complete_and_cut_offs_are_counted(tmp_path):
    class Texts(Scripted):
        def complete(self, texts, sampling):
            self.texts = list(texts)
            return [[Completion("The answer is 3.", False, 3)] for _ in texts]

    class ChatML:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + \
                "<|im_start|>assistant\n"

    gen = Texts(lambda p: "unused")
    (row,) = suite.evaluate(gen, {"gsm8k": BenchmarkParams(limit=2)}, tmp_path, chat_template=ChatML())
    assert gen.calls == 0 and all(t.startswith("<|im_start|>user\nQ: ") for t in gen.texts)
    assert row["cut_off"] == 2 and "own chat template" in row["metric"]
    (no_complete,) = suite.evaluate(Scripted(lambda p: ""), {"gsm8k": BenchmarkParams(limit=1)},
                                    tmp_path / "x", chat_template=ChatML())
    assert no_complete["metric"].startswith("not run: ")


def _prefers(text):
    """A judge that answers AlpacaEval 2's question for whichever output is ``text``."""
    def answer(messages):
        user = messages[-1]["content"]
        first = user.index('"model_identifier": "m"')
        return "m" if f'"""{text}"""' in user[first:user.index('"model_identifier": "M"')] else "M"
    return Scripted(answer)


def test_alpaca_eval_needs_a_judge_and_asks_it_alpaca_eval_2s_question(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub: the length-controlled rate cannot be fit
    (row,) = suite.evaluate(Scripted(lambda p: "ours"), {"alpaca_eval": BenchmarkParams(limit=2)}, tmp_path)
    assert row["metric"] == "not run: needs a judge endpoint (eval.judge)"
    messages = alpaca_judge_messages("Say hi.", "hello", "hi there")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"instruction": """Say hi."""' in messages[1]["content"]
    assert messages[1]["content"].index('"""hello"""') < messages[1]["content"].index('"""hi there"""')
    assert "m or M" in messages[1]["content"] and "leaderboard" in messages[0]["content"]
    (won,) = suite.evaluate(Scripted(lambda p: "ours"), {"alpaca_eval": BenchmarkParams(limit=4)},
                            tmp_path / "a", judge=_prefers("ours"))
    assert won["score"] == 100.0 and won["win_rate"] == 100.0 and won["n"] == 4
    assert "NOT length-controlled" in won["metric"] and "df_gamed.csv" in won["metric"]
    # whichever order the outputs were shown in, a verdict for the baseline is a loss, a non-answer a draw
    (lost,) = suite.evaluate(Scripted(lambda p: "ours"), {"alpaca_eval": BenchmarkParams(limit=4)},
                             tmp_path / "b", judge=Scripted(lambda m: "m" if m[-1]["content"].index(
                                 '"""ours"""') > m[-1]["content"].index('"model_identifier": "M"') else "M"))
    assert lost["score"] == 0.0
    (draw,) = suite.evaluate(Scripted(lambda p: "ours"), {"alpaca_eval": BenchmarkParams(limit=2)},
                             tmp_path / "c", judge=Scripted(lambda m: "Both"))
    assert draw["score"] == 50.0 and draw["unparsed"] == 100.0


def test_alpaca_eval_length_controlled_win_rate_is_alpaca_evals_glm(tmp_path, monkeypatch):
    """With the hub's instruction-difficulty file (here a local stand-in: 805 difficulties and a
    gamed baseline's rows, in its columns) the headline is alpaca_eval's LC win rate: our verdicts
    favour the longer output, so the length correction pulls the win rate towards 50."""
    import numpy as np
    import pandas as pd
    from alpaca_eval.metrics import glm_winrate

    rng = np.random.default_rng(0)
    gamed = pd.DataFrame({"index": np.tile(np.arange(805), 2), "instruction_difficulty":
                          np.tile(rng.normal(0, 1, 805), 2), "preference": rng.uniform(0, 1, 1610),
                          "std_delta_len": rng.normal(0, 1, 1610), "not_gamed_baseline": False,
                          "model": "gamed"})
    gamed.to_csv(tmp_path / "df_gamed.csv", index=False)
    monkeypatch.setattr(glm_winrate, "hf_hub_download", lambda **kw: str(tmp_path / "df_gamed.csv"))
    def ours(prompt):  # long for two items in three, short for the rest
        return "ours " * (40 if int(hashlib.sha256(prompt[0]["content"].encode()).hexdigest(), 16) % 3 else 1)

    (row,) = suite.evaluate(Scripted(ours), {"alpaca_eval": BenchmarkParams(limit=60)}, tmp_path / "lc",
                            judge=Scripted(_longer))
    assert "NOT" not in row["metric"] and row["score"] != row["win_rate"]
    assert abs(row["score"] - 50) < abs(row["win_rate"] - 50)
    assert row["ci95_low"] < row["score"] < row["ci95_high"]


def _longer(messages):
    """m when output 1 is the longer one."""
    import re

    a, b = re.findall(r'"output": """(.*?)"""', messages[-1]["content"], flags=re.S)
    return "m" if len(a) >= len(b) else "M"


def test_table6_has_every_paper_row_and_says_why_not_run():
    import pandas as pd

    from tulu_lib.reporting import paper

    rows = [{"checkpoint": c, "benchmark": b, "score": s, "ci95_low": s - 5, "ci95_high": s + 5, "n": 10,
             "metric": suite.TASKS[b].headline, **extra}
            for c in ("base", "sft")
            for b, s, extra in (("gsm8k", 10.0, {}), ("humaneval", 20.0, {"pass@10": 40.0, "samples": 20}),
                                ("math500", 5.0, {}))]
    rows.append({"checkpoint": "base", "benchmark": "alpaca_eval", "score": math.nan, "n": 0,
                 "metric": suite.not_run_reason("alpaca_eval")})
    table = paper.table6_comparison(pd.DataFrame(rows)).set_index("benchmark")
    paper_rows = set(paper.reported().query("table == 'Table 6'")["benchmark"])
    assert paper_rows <= set(table.index)
    assert table.loc["HumanEval", "ours: sft"] == 40.0 and "pass@10" in table.loc["HumanEval", "metric"]
    assert table.loc["HumanEval pass@1 (greedy)", "ours: sft"] == 20.0
    assert table.loc["HumanEval+", "note"] == "not run: not in eval.benchmarks of these params"
    assert table.loc["AlpacaEval2", "note"] == "not run: needs a judge endpoint (eval.judge)"
    assert table.loc["MATH", "note"] == "not run: not in eval.benchmarks of these params"
    assert table.loc["MATH-500 (faster subset, not the paper's)", "ours: base"] == 5.0
    assert table.loc["Avg", "ours: base"] == (10.0 + 40.0) / 2
    # like with like: the paper's average over the same two columns (GSM8K 76.2, HumanEval 86.2)
    assert table.loc["Avg", "paper: Tulu-3-8B-SFT"] == pytest.approx((76.2 + 86.2) / 2)
    assert "2 of 12 Table 6 columns" in table.loc["Avg", "metric"]
    printed = table.loc["Avg, all 12 columns (as printed)"]
    assert printed["paper: Tulu-3-8B-SFT"] == 60.6 and math.isnan(printed["ours: sft"])
    assert printed["note"] == "not run: 10 of the columns have no score here"
    assert table.loc["GSM8K", "95% CI: sft"] == "[5.0, 15.0]" and table.loc["MATH", "95% CI: sft"] == ""
    not_run = table.loc[["BBH", "PopQA", "TruthfulQA", "Safety"], "note"]
    assert all(str(n).startswith("not run: ") for n in not_run)
    greedy = paper.table6_comparison(pd.DataFrame([{**r, "pass@10": math.nan} for r in rows]))
    assert "not the paper's pass@10" in greedy.set_index("benchmark").loc["HumanEval", "metric"]


def test_table6_safety_is_the_mean_of_its_six_benchmarks_or_says_which_are_missing():
    import pandas as pd

    from tulu_lib.evals.tasks.safety import SAFETY_PARTS
    from tulu_lib.reporting import paper

    rows = [{"checkpoint": c, "benchmark": b, "score": s, "ci95_low": s - 4, "ci95_high": s + 4, "n": 20,
             "metric": "safe-behaviour rate"}
            for c in ("sft", "dpo")
            for b, s in zip(SAFETY_PARTS, (60.0, 70.0, 80.0, 90.0, 50.0, 30.0), strict=True)
            if not (c == "dpo" and b == "safety_dan")]
    table = paper.table6_comparison(pd.DataFrame(rows)).set_index("benchmark")
    assert table.loc["Safety", "ours: sft"] == pytest.approx(380 / 6)
    assert table.loc["Safety", "paper: Tulu-3-8B-SFT"] == 93.1
    assert math.isnan(table.loc["Safety", "ours: dpo"])  # never the mean of a subset
    assert not any(b in table.index for b in SAFETY_PARTS)  # folded into their column


def test_the_unseen_suite_has_its_own_table_with_why_not_run():
    import pandas as pd

    from tulu_lib.evals.registry import UNSEEN_ROWS
    from tulu_lib.reporting import paper

    rows = [{"checkpoint": c, "benchmark": "gpqa", "score": s, "ci95_low": s - 9, "ci95_high": s + 9, "n": 40,
             "metric": "accuracy"} for c, s in (("sft", 30.0), ("dpo", 35.0))]
    rows.append({"checkpoint": "sft", "benchmark": "href", "score": math.nan, "n": 0,
                 "metric": suite.not_run_reason("href")})
    table = paper.unseen_comparison(pd.DataFrame(rows)).set_index("benchmark")
    assert list(table.index) == [paper_name for paper_name, _ in UNSEEN_ROWS]
    assert table.loc["GPQA", "ours: dpo"] == 35.0 and table.loc["GPQA", "95% CI: dpo"] == "[26.0, 44.0]"
    assert table.loc["GPQA", "n: sft"] == 40
    assert table.loc["HREF", "note"] == "not run: needs a judge endpoint (eval.judge)"
    assert table.loc["MMLU-Pro", "note"] == "not run: not in eval.benchmarks of these params"
    assert "Table 3 (unseen)" in table["paper note"].iloc[0]  # no paper numbers on file: said, not invented
    # and Table 6 does not repeat them
    assert "GPQA (unseen suite)" not in set(paper.table6_comparison(pd.DataFrame(rows))["benchmark"])
