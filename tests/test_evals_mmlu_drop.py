"""MMLU (0-shot CoT and 5-shot MC), DROP F1: extraction, metric, prompts, MC scoring, resume."""

import json
import math

import pytest

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import sources, suite
from tulu_lib.evals.registry import load_benchmark
from tulu_lib.evals.tasks.drop import drop_fewshot, drop_metrics, drop_prompt
from tulu_lib.evals.tasks.mmlu import mmlu_dev, mmlu_letter, mmlu_mc_prompt
from tulu_lib.generation.types import Completion


# each letter is what OLMES 85f251a's GenericMMLU_OneTurnCoT._extract_answer returns (run on these replies)
@pytest.mark.parametrize(("reply", "letter"), [
    ("Mitochondria make ATP. Therefore, the answer is (B).", "B"),
    ("The answer is C", "C"),
    ("so the answer is: D", "D"),
    ("Therefore, the answer is **(A)**", "A"),
    ("First the answer is (A)? No: the answer is (C).", "A"),  # the first backup match, not the last
    ("**Answer: B**", "B"),
    ("Answer:(D)", "D"),
    ("I pick (D) because (E) is not offered", "D"),
    ("B", "B"),
    ("(C).", "C"),
    ("The Answer Is (a)", "A"),  # case-insensitive backups, upper-cased
    ("The answer is a matter of debate.", "A"),  # OLMES's quirk, kept
    ("The answer is Actually unclear", None),
    ("Therefore, the answer is (E)", None),
    ("", None),
    ("(A) is wrong. Therefore, the answer is (C). Or (B)", "C"),
    ("a and b are wrong; c is correct", "C"),
    ("Option B\nor maybe D", "B"),
    ("Therefore, the answer is (B). Therefore, the answer is (D)", "D"),  # the last in the asked format
    ("therefore the answer is b", "B"),
])
def test_mmlu_letter_extraction(reply, letter):
    assert mmlu_letter(reply) == letter


@pytest.mark.parametrize(("prediction", "answers", "f1", "em"), [
    ("2", [["2"]], 1.0, 1.0),
    ("2.0", [["2"]], 1.0, 1.0),                          # numbers compared as floats
    ("The Eagles", [["Eagles"]], 1.0, 1.0),              # articles dropped
    ("Nate Kaeding.", [["Nate Kaeding"]], 1.0, 1.0),     # punctuation dropped
    ("Kaeding", [["Nate Kaeding"]], 0.67, 0.0),          # P 1, R 1/2
    ("Spain", [["Spain", "Italy"]], 0.5, 0.0),           # one of two gold spans
    ("3", [["4"]], 0.0, 0.0),                            # numbers must match
    ("4 touchdowns", [["4"]], 0.67, 0.0),                # P 1/2, R 1
    ("24-yard", [["24"]], 0.67, 0.0),                    # hyphens split tokens
    ("1477", [["1507"], ["1477"]], 1.0, 1.0),            # best of several gold answers
    ("the Twelve Articles", [["Twelve Articles"], ["twelve articles"]], 1.0, 1.0),
    ("", [["Germany"]], 0.0, 0.0),
])
def test_drop_f1(prediction, answers, f1, em):
    assert drop_metrics(prediction, answers) == {"f1": f1, "em": em}


def test_mmlu_mc_prompt_has_the_subjects_five_dev_exemplars():
    row = load_benchmark("mmlu", limit=2)[1]
    context, continuations = mmlu_mc_prompt(row, 5)
    assert continuations == [" A", " B", " C", " D"]
    assert context.startswith(f"The following are multiple choice questions (with answers) about "
                              f"{row['subject'].replace('_', ' ')}.\n\n")
    dev = mmlu_dev(row["subject"])
    assert len(dev) == 5 and context.count("\nAnswer:") == 6 and context.endswith("\nAnswer:")
    assert all(f"{ex['question'].strip()}\nA. " in context for ex in dev)
    assert row["question"] not in {ex["question"] for ex in dev}
    assert suite.TASKS["mmlu"].prompt(row, 0)[0]["content"].count("\n (D) ") == 1  # OLMES: " (A)" labels


def test_drop_prompt_has_three_exemplars_none_of_them_evaluated():
    rows = load_benchmark("drop")
    description, exemplars = drop_fewshot()
    prompt = drop_prompt(rows[0], 3)
    assert prompt.startswith(description) and prompt.count("Passage: ") == 4
    assert prompt.endswith(f"Question: {rows[0]['question']}\nAnswer:")
    passages = set(rows["passage"])
    assert len(exemplars) == 5 and not any(p in passages for p, _, _ in exemplars)
    # 5 shots rebuild the packaged OLMES request context exactly
    assert drop_prompt(rows[0], 5) == next(sources.olmo_requests("drop"))["request"]["context"]


def test_mmlu_limit_spreads_over_subjects():
    rows = load_benchmark("mmlu", limit=57)
    assert len(set(rows["subject"])) == 57


def test_macro_average_and_its_interval():
    task = suite.TASKS["mmlu"]
    rows = [{"subject": "a"}] * 4 + [{"subject": "b"}]
    out = suite._score_with_interval(task, rows, [1.0, 1.0, 1.0, 0.0, 0.0])
    assert out["score"] == 37.5 and out["micro"] == 60.0 and out["groups"] == 2
    assert 0 < out["ci95_low"] < 37.5 < out["ci95_high"] < 100
    even = suite._score_with_interval(task, [{"subject": "a"}, {"subject": "b"}] * 2, [1.0, 0.0, 1.0, 0.0])
    plain = suite._score_with_interval(suite.TASKS["gsm8k"], [{}] * 4, [1.0, 0.0, 1.0, 0.0])
    assert even["score"] == plain["score"] == 50.0 and even["ci95_low"] == pytest.approx(plain["ci95_low"])


class Letters:
    """Log-likelihoods that favour one letter per context (``pick``), counting requests."""

    def __init__(self, pick):
        self.pick, self.requests = pick, 0

    def loglikelihood(self, requests):
        self.requests += len(requests)
        return [0.0 if cont.strip() == self.pick(ctx) else -1.0 for ctx, cont in requests]


def test_mc_scoring_takes_the_likeliest_letter(tmp_path):
    rows = list(load_benchmark("mmlu", limit=8))
    gold = {mmlu_mc_prompt(r, 5)[0]: "ABCD"[r["answer"]] for r in rows}
    result = suite.run_benchmark(Letters(gold.get), "mmlu_mc", BenchmarkParams(limit=8), tmp_path)
    assert result["score"] == 100.0 and result["n"] == 8 and result["shots"] == 5
    always_a = suite.run_benchmark(Letters(lambda ctx: "A"), "mmlu_mc", BenchmarkParams(limit=8),
                                   tmp_path / "a")
    assert always_a["micro"] == 100 * sum(r["answer"] == 0 for r in rows) / 8


def test_hand_built_model_picks_its_letter(tiny_path):
    """tiny-llama with an output layer that always prefers the token " B": MC answers B."""
    import torch

    from tulu_lib.generation.backends import make_generator

    gen = make_generator("hf", "tiny-llama")
    b_token = gen.tokenizer(" B", add_special_tokens=False)["input_ids"][-1]
    head = torch.nn.Linear(gen.model.config.hidden_size, gen.model.config.vocab_size, bias=True)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    head.bias.data[b_token] = 10.0
    gen.model.lm_head = head
    row = load_benchmark("mmlu", limit=1)[0]
    context, continuations = mmlu_mc_prompt(row, 5)
    scores = gen.loglikelihood([(context, c) for c in continuations])
    assert scores.index(max(scores)) == 1


class Counting:
    """Wraps a generator and counts what it is asked."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def generate(self, prompts, sampling):
        self.calls += len(prompts)
        return self.inner.generate(prompts, sampling)

    def complete(self, texts, sampling):
        self.calls += len(texts)
        return self.inner.complete(texts, sampling)

    def loglikelihood(self, requests):
        self.calls += len(requests)
        return self.inner.loglikelihood(requests)


def test_evaluate_new_benchmarks_on_tiny_llama_with_resume(tmp_path):
    from tulu_lib.generation.backends import make_generator

    requested = {name: BenchmarkParams(limit=2) for name in ("mmlu", "mmlu_mc", "drop")}
    gen = Counting(make_generator("hf", "tiny-llama"))
    table = suite.evaluate(gen, requested, tmp_path, max_new_tokens=8)
    assert gen.calls == 2 + 8 + 2
    for row in table:
        assert row["n"] == 2 and 0 <= row["ci95_low"] <= row["score"] <= row["ci95_high"] <= 100
        lines = (tmp_path / row["benchmark"] / "items.jsonl").read_text().splitlines()
        items = [json.loads(x) for x in lines]
        assert len(items) == 2 and all({"id", "output", "score"} <= set(i) for i in items)
    assert {r["shots"] for r in table} == {0, 5, 3}
    again = Counting(gen.inner)
    assert suite.evaluate(again, requested, tmp_path, max_new_tokens=8) == table and again.calls == 0


def test_backends_without_raw_text_or_logprobs_report_not_run(tmp_path):
    class ChatOnly:
        def generate(self, prompts, sampling):
            return [[Completion("x", True, 1)] for _ in prompts]

    requested = {"drop": BenchmarkParams(limit=1), "mmlu_mc": BenchmarkParams(limit=1)}
    table = suite.evaluate(ChatOnly(), requested, tmp_path)
    assert [r["metric"].split(":")[0] for r in table] == ["not run", "not run"]
    assert "complete()" in table[0]["metric"] and "loglikelihood()" in table[1]["metric"]
    assert all(math.isnan(r["score"]) for r in table)


def test_mmlu_cot_prompt_is_olmes_0shot_cot_tulu3():
    """OLMES 85f251a ``mmlu_{sub}:0shot_cot::tulu3``: description + ``make_mcq_prompt(question, choices,
    answer_prefix="", label_format=" (A)")`` + final_description, as one user turn (base_task.py)."""
    from tulu_lib.evals.tasks.mmlu import cot_prompt

    row = {"question": "What do mitochondria make?", "choices": ["ATP", "DNA", "RNA", "Fat"], "answer": 0}
    asked = ('Answer the following multiple-choice question by giving the correct answer letter in '
             'parentheses. Provide CONCISE reasoning for the answer, and make sure to finish the response '
             'with "Therefore, the answer is (ANSWER_LETTER)" where (ANSWER_LETTER) is one of (A), (B), '
             '(C), (D).\n\n')
    final = ('\nAnswer the above question and REMEMBER to finish your response with the exact phrase '
             '"Therefore, the answer is (ANSWER_LETTER)" where (ANSWER_LETTER) is one of (A), (B), (C), (D).')
    query = "Question: What do mitochondria make?\n (A) ATP\n (B) DNA\n (C) RNA\n (D) Fat\n"
    assert cot_prompt(row, 0) == [{"role": "user", "content": asked + query + final}]
    with pytest.raises(ValueError, match="0-shot"):
        cot_prompt(row, 5)
