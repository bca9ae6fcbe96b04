"""Parity of our scores with the reference implementations, on fixed outputs.

IFEval against lm-eval's official checkers; MATH against OLMES's flex rules (hand-computed);
GSM8K against lm-eval's ``gsm8k-cot`` filters and exact match (read from its yaml); DROP
against lm-eval's ``process_results``; MMLU against the strict format the prompt asks for.
Where we knowingly differ, the test says so and pins the difference."""

import itertools
import json
import re
import sys
import types

import pytest
import yaml

from tulu_lib.evals import sources, suite
from tulu_lib.evals.reference import drop_utils, lm_eval_ifeval
from tulu_lib.evals.registry import DATASETS, load_benchmark
from tulu_lib.evals.tasks.drop import drop_metrics
from tulu_lib.evals.tasks.minerva_math import MATH_SUBJECTS, math_flex_candidates
from tulu_lib.evals.tasks.mmlu import mmlu_letter

# ------------------------------------------------------------------ IFEval

# (instruction, kwargs, response, prompt-level strict, prompt-level loose): hand-computed from
# lm-eval's instructions.py
IFEVAL_CASES = [
    ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"},
     "Sure thing.\nis there anything else i can help with?", 1, 1),      # end phrase: any case
    ("keywords:letter_frequency", {"letter": "A", "let_frequency": 4, "let_relation": "at least"},
     "A banana", 1, 1),                                                   # letters counted lower-cased
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"},
     "Concatenate the cat.", 1, 1),                                       # substring counting
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Hello.\n\np.s. see you", 1, 1),                                     # p.s. matches P.S.
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n***\nSecond part.\n***", 1, 1),                        # a trailing *** is no paragraph
    ("punctuation:no_comma", {}, "a, b", 0, 0),
    ("change_case:english_lowercase", {}, "Title Line\nall lower here", 0, 1),  # loose drops line 1
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "Mr. Smith went home. He slept.", 1, 1),                             # punkt: "Mr." is no sentence end
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", 1, 1),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "one two three", 1, 1),
    ("detectable_format:title", {}, "<<My Title>> text", 1, 1),
    ("punctuation:no_comma", {}, "   ", 0, 0),                            # an empty reply follows nothing
]


def _ifeval_row(instruction, kwargs):
    return {"prompt": "Write something.", "instruction_id_list": [instruction],
            "kwargs": [json.dumps(kwargs)]}


@pytest.mark.parametrize(("instruction", "kwargs", "response", "strict", "loose"), IFEVAL_CASES)
def test_ifeval_is_lm_evals_official_scoring(instruction, kwargs, response, strict, loose):
    scored = suite.TASKS["ifeval"].score(_ifeval_row(instruction, kwargs), response)
    assert (scored["prompt_strict"], scored["score"]) == (strict, loose)
    reference = lm_eval_ifeval().process_results(
        {"key": 1, "instruction_id_list": [instruction], "prompt": "Write something.", "kwargs": [kwargs]},
        [response])
    assert scored == {"score": reference["prompt_level_loose_acc"],
                      "prompt_strict": reference["prompt_level_strict_acc"],
                      "inst_loose": sum(reference["inst_level_loose_acc"]) / 1,
                      "inst_strict": sum(reference["inst_level_strict_acc"]) / 1}


def test_ifeval_does_not_use_the_rlvr_checkers(monkeypatch):
    from tulu_lib.evals import ifeval_checks

    def boom(*a, **k):
        raise AssertionError("evals' IFEval must not call tulu_lib.evals.ifeval_checks")

    monkeypatch.setattr(ifeval_checks, "follow_instructions", boom)
    monkeypatch.setattr(ifeval_checks, "check_constraint", boom, raising=False)
    assert suite.TASKS["ifeval"].score(_ifeval_row("punctuation:no_comma", {}), "no commas")["score"] == 1
    assert "official IFEval checkers" in suite.TASKS["ifeval"].headline


def test_lm_eval_ifeval_import_leaves_no_stand_in_packages():
    lm_eval_ifeval()
    assert not [m for m in sys.modules if m == "lm_eval.tasks" or m.startswith("lm_eval.tasks.")]


# ------------------------------------------------------------------ MATH (OLMES flex)

@pytest.mark.parametrize(("output", "gold", "score", "rule"), [
    ("so $\\boxed{x^2+1}$", "1+x^2", 1, "math_verify"),                  # symbolic, not string
    ("Final Answer: The final answer is $\\sqrt{3}/2$. I hope it is correct.", "\\frac{\\sqrt{3}}{2}", 1,
     "math_verify"),
    ("$\\boxed{\\frac12}$", "\\frac{1}{2}", 1, "minerva"),                # Minerva's \frac12 rule
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", 1, "hendrycks"),           # strip_string: dfrac -> frac
    ("\\boxed{0.5}", "\\frac{1}{2}", 1, "hendrycks"),                   # strip_string's own 0.5 case
    ("\\boxed{0.25}", "\\frac{1}{4}", 1, "math_verify"),
    ("\\boxed{10\\%}", "10", 1, "hendrycks"),
    ("Final Answer: The final answer is 4. I hope it is correct. Or rather \\boxed{5}", "5", 1, "minerva"),
    ("Final Answer: The final answer is 4. I hope it is correct. Or rather \\boxed{5}", "6", 0, None),
    ("It is $3$, or maybe $5$", "5", 1, "minerva"),                        # the last $...$
    ("It is $3$, or maybe $5$", "3", 0, None),                             # only the last one counts
    ("\\boxed{2}, though $7$ also", "7", 0, None),                          # $...$ only without a box
    ("7", "7", 1, "minerva"),                                              # last resort: the whole reply,
    ("The answer is 7", "7", 0, None),                                     # normalised: rarely a match
])
def test_math_flex(output, gold, score, rule):
    scored = suite.TASKS["math"].score({"answer": gold}, output)
    assert (scored["score"], scored["matched_by"]) == (score, rule)


def test_math_flex_candidates_follow_olmes_order():
    both = "Final Answer: The final answer is $4$. I hope it is correct. \\boxed{5}"
    assert math_flex_candidates(both) == ["4", "5"]       # Minerva form first, then the box
    assert math_flex_candidates("no answer here") == ["noanswerhere"]
    assert math_flex_candidates("$\\boxed{3}$") == ["3"]


def test_math_and_math500_share_the_flex_scorer_and_math500_is_labelled():
    assert suite.TASKS["math"].score is suite.TASKS["math500"].score
    assert "faster subset, not the paper's" in suite.TASKS["math500"].headline
    assert suite.TASKS["math"].macro_by == "subject"


def test_full_math_is_the_5000_problem_test_in_7_subjects():
    from collections import Counter


    rows = load_benchmark("math")
    assert len(rows) == 5000 and len(set(rows["id"])) == 5000
    assert Counter(rows["subject"]).keys() == set(MATH_SUBJECTS)
    assert DATASETS["math"].paper_name == "MATH"
    assert DATASETS["math500"].paper_name == "MATH-500 (faster subset, not the paper's)"
    spread = load_benchmark("math", limit=14)
    assert Counter(spread["subject"]) == dict.fromkeys(MATH_SUBJECTS, 2)


# ------------------------------------------------------------------ GSM8K


def _lm_eval_gsm8k_cot(response: str, answer: str) -> bool:
    """lm-eval's gsm8k-cot "flexible-extract" filter and exact_match, from its yaml."""
    config = yaml.safe_load((sources.lm_eval_tasks() / "gsm8k" / "gsm8k-cot.yaml").read_text())
    (flex,) = [f for f in config["filter_list"] if f["name"] == "flexible-extract"]
    regex = flex["filter"][0]
    matches = re.findall(regex["regex_pattern"], response)
    if matches:
        match = matches[regex["group_select"]]
        if isinstance(match, tuple):
            match = [m for m in match if m][0]
    else:
        match = "[invalid]"
    (metric,) = config["metric_list"]
    pred, gold = match.strip(), answer
    for pattern in metric["regexes_to_ignore"]:
        pred, gold = re.sub(pattern, "", pred), re.sub(pattern, "", gold)
    return pred.lower() == gold.lower()


@pytest.mark.parametrize(("output", "gold"), [
    ("She sells 16 - 3 - 4 = 9 eggs at $2 each, 9 * 2 = 18. The answer is 18.", "18"),
    ("So she makes $18 every day. The answer is $18.", "18"),
    ("It costs 1,000 dollars. The answer is 1,000.", "1000"),
    ("The answer is -5.", "-5"),
    ("The answer is 18. Next, 3 more.", "18"),         # both take the last number: wrong
    ("I do not know.", "18"),
])
def test_gsm8k_agrees_with_lm_eval_flexible_extract(output, gold):
    assert suite.TASKS["gsm8k"].score({"answer": gold}, output)["score"] == _lm_eval_gsm8k_cot(output, gold)


def test_gsm8k_known_difference_numbers_are_compared_as_numbers():
    """Ours compares the last number as a number (the RLVR verifier); lm-eval compares strings,
    so "18.00" against "18" fails there. Pinned."""
    output = "Each costs $6, so 3 * 6 = 18.00. The answer is 18.00"
    assert suite.TASKS["gsm8k"].score({"answer": "18"}, output)["score"] == 1.0
    assert not _lm_eval_gsm8k_cot(output, "18")


# ------------------------------------------------------------------ DROP


def _brute_force_assignment(cost):
    """scipy.optimize.linear_sum_assignment (not installed) for the tiny DROP matrices."""
    import numpy as np

    rows, cols = cost.shape
    if rows <= cols:
        best = min(itertools.permutations(range(cols), rows),
                   key=lambda p: sum(cost[i, p[i]] for i in range(rows)))
        return np.arange(rows), np.array(best)
    best = min(itertools.permutations(range(rows), cols),
               key=lambda p: sum(cost[p[j], j] for j in range(cols)))
    order = np.argsort(best)
    return np.array(best)[order], np.arange(cols)[order]


@pytest.mark.parametrize(("prediction", "answers"), [
    ("2", [["2"]]), ("The Eagles", [["Eagles"]]), ("Kaeding", [["Nate Kaeding"]]),
    ("Spain", [["Spain", "Italy"]]), ("3", [["4"]]), ("4 touchdowns", [["4"]]),
    ("1477", [["1507"], ["1477"]]), ("", [["Germany"]]), ("24-yard", [["24"]]),
])
def test_drop_agrees_with_lm_eval_process_results(prediction, answers, monkeypatch):
    optimize = types.ModuleType("scipy.optimize")
    optimize.linear_sum_assignment = _brute_force_assignment
    monkeypatch.setitem(sys.modules, "scipy", types.ModuleType("scipy"))
    monkeypatch.setitem(sys.modules, "scipy.optimize", optimize)
    reference = drop_utils().process_results({"answers": [tuple(a) for a in answers]}, [prediction])
    assert drop_metrics(prediction, answers) == {"f1": reference["f1"], "em": reference["em"]}


# ------------------------------------------------------------------ MMLU

_STRICT = re.compile(r"Therefore, the answer is \(([A-D])\)")


@pytest.mark.parametrize("output", [
    "Cells make ATP in mitochondria. Therefore, the answer is (B).",
    "First (A) looks right, but no. Therefore, the answer is (C)",
    "Therefore, the answer is (D).",
])
def test_mmlu_replies_in_the_asked_format_score_as_the_strict_pattern(output):
    assert mmlu_letter(output) == _STRICT.findall(output)[-1]


def test_mmlu_looser_replies_still_count_as_in_olmes():
    """The asked format is "Therefore, the answer is (X)"; OLMES's backups (ported) also read "The
    answer is C", "Answer: B" and a "(X)", where the strict pattern finds nothing. Pinned."""
    for output, letter in (("The answer is C", "C"), ("**Answer: B**", "B"), ("I pick (D)", "D")):
        assert not _STRICT.findall(output) and mmlu_letter(output) == letter


def test_mmlu_mc_is_the_argmax_of_the_loglikelihoods():
    row = load_benchmark("mmlu", limit=1)[0]

    class LL:
        def loglikelihood(self, requests):
            return [-1.0, -0.5, -3.0, -2.0] * (len(requests) // 4)

    (out,) = suite._outputs(LL(), suite.TASKS["mmlu_mc"], [row], 5, 1)
    assert json.loads(out["output"]) == [-1.0, -0.5, -3.0, -2.0]
    scored = suite.TASKS["mmlu_mc"].score(row, out["output"])
    assert scored["letter"] == "B" and scored["score"] == float(row["answer"] == 1)
