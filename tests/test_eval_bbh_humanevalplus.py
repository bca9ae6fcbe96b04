"""BBH and HumanEval+: prompts, OLMES's BBH answer extraction, the micro average, EvalPlus's tests.

Local copies in the hubs' schemas are written under tmp_path (no network). BBH's extraction is
OLMES ``bbh.py``'s ``answer_regex`` (per-subtask answer patterns after "So the answer is" and
looser prefixes, last match; exact match ignoring case and punctuation); the golden cases below
are worked out from those rules, and lm-eval's ``get-answer`` filter (its regex read from
``bbh/cot_fewshot/_cot_fewshot_template_yaml``) is run on the same outputs, agreeing on the
exemplars' own answers and differing where pinned."""

import ast
import json
import re
import string

import numpy as np
import pytest
import yaml

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.sources import lm_eval_tasks
from tulu_lib.evals.tasks import humaneval
from tulu_lib.evals.tasks.bbh import BBH, SUBTASKS, bbh_answer, bbh_exemplars
from tulu_lib.evals.tasks.humanevalplus import HUMANEVALPLUS, JUDGE_HELPERS, judge_tests
from tulu_lib.generation.types import Completion

COT_FEWSHOT = lm_eval_tasks() / "bbh" / "cot_fewshot"


class Scripted:
    """A generator that answers from a function of the prompt (and of the sample's index)."""

    def __init__(self, answer):
        self.answer = answer

    def generate(self, prompts, sampling):
        return [[Completion(self.answer(p, k), True, 3) for k in range(sampling.n)] for p in prompts]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ------------------------------------------------------------------ BBH


def _lm_eval_get_answer(output: str) -> str:
    """lm-eval's bbh cot_fewshot ``get-answer`` filter: its regex (from the yaml), first match, stripped."""
    template = yaml.safe_load((COT_FEWSHOT / "_cot_fewshot_template_yaml").read_text())
    (step, take_first) = template["filter_list"][0]["filter"]
    assert step["function"] == "regex" and take_first["function"] == "take_first"
    found = re.findall(step["regex_pattern"], output)
    return found[0].strip() if found else "[invalid]"


def _hf_exact_match():
    """HF evaluate's ``exact_match`` as lm-eval ships it (api/metrics.py, read by path: importing
    it needs sacrebleu); OLMES's ExactMatch is the same code."""
    path = lm_eval_tasks().parent / "api" / "metrics.py"
    fn = next(n for n in ast.parse(path.read_text()).body
              if isinstance(n, ast.FunctionDef) and n.name == "exact_match_hf_evaluate")
    namespace = {"np": np, "re": re, "string": string}
    exec(compile(ast.Module([fn], []), str(path), "exec"), namespace)
    return namespace["exact_match_hf_evaluate"]


def test_subtasks_are_lm_evals_27_and_the_prompt_is_olmes_chat_format():
    yamls = [p.stem for p in COT_FEWSHOT.glob("*.yaml") if not p.stem.startswith("_")]
    assert sorted(SUBTASKS) == sorted(yamls)
    config = yaml.safe_load((COT_FEWSHOT / "navigate.yaml").read_text())
    samples = config["fewshot_config"]["samples"]
    turns = BBH.prompt({"subtask": "navigate", "input": "Take 1 step. Take 1 step back."}, 3)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 3 + ["user"]

    def question(text):
        return f"Q: {text}\nA: Let's think step by step."

    assert turns[0]["content"] == config["description"] + question(samples[0]["input"])
    assert [turns[k]["content"] for k in (1, 3, 5)] == [s["target"] for s in samples]
    assert turns[2]["content"] == question(samples[1]["input"])
    assert turns[-1]["content"] == "Q: Take 1 step. Take 1 step back.\nA: Let's think step by step."
    assert all(s["target"].endswith(".") and "So the answer is" in s["target"] for s in samples)
    zero = BBH.prompt({"subtask": "navigate", "input": "X"}, 0)  # the description stays on the first turn
    assert zero == [{"role": "user", "content": config["description"] + "Q: X\nA: Let's think step by step."}]
    assert (BBH.settings.shots, BBH.settings.kind, BBH.max_new_tokens, BBH.stop) == (3, "chat", 512, ())


# (subtask, model output, OLMES's extracted answer, the rule that found it: 0 "So the answer is X",
# 1 "answer is X", 2 "answer: … X", 3 "answer … X", 4 X anywhere (case-sensitive), then for
# multiple choice 5 a bare letter, and last any case anywhere)
EXTRACTION = [
    ("boolean_expressions", "Z = not True = False. So the answer is False.", "False", 0),
    ("date_understanding", "That is 12/14/1937. So the answer is (D).", "(D)", 0),
    ("date_understanding", "so the answer is (d).", "(d)", 0),  # any case; gold (D) still matches
    ("web_of_lies", "So the answer is Yes. Wait: Fidel lies. So the answer is No.", "No", 0),  # the last
    ("dyck_languages", "We close them. So the answer is ] ) }.", "] ) }", 0),
    ("multistep_arithmetic_two", "(-3 + 5) * -7 - 23 = -37. So the answer is -37.", "-37", 0),
    ("object_counting", "1 + 2 + 4 = 7. So the answer is 7.", "7", 0),
    ("word_sorting", "So the answer is apple banana cherry.", "apple banana cherry", 0),
    ("word_sorting", "So the answer is o'brien zeta.", "o", 0),  # OLMES's [a-z ]+ stops at the apostrophe
    ("formal_fallacies", "Answer: the argument is invalid", "invalid", 2),
    ("sports_understanding", "My answer is **yes**.", "yes", 3),
    ("geometric_shapes", "It has 8 sides, an octagon (B) not (C); final (B)", "(B)", 4),
    ("date_understanding", "The best choice is D", "(D)", 5),
    ("date_understanding", "pick (d)", "(d)", 6),
    ("navigate", "I am not sure.", "no", 4),  # OLMES's looser rules: the "no" inside "not"
    ("object_counting", "I cannot count them.", "", None),
]


@pytest.mark.parametrize(("subtask", "output", "extracted", "rule"), EXTRACTION)
def test_bbh_extraction_is_olmes_answer_regex(subtask, output, extracted, rule):
    assert bbh_answer(output, subtask) == (extracted, rule)


def test_bbh_scoring_ignores_case_and_punctuation_except_for_dyck():
    row = {"subtask": "date_understanding", "target": "(D)"}
    assert BBH.score(row, "so the answer is (d).") == {"score": 1.0, "subtask": "date_understanding",
                                                        "extracted": "(d)", "found_by": 0}

    def scored(subtask, target, output):
        return BBH.score({"subtask": subtask, "target": target}, output)["score"]

    assert scored("boolean_expressions", "True", "So the answer is true.") == 1.0
    assert scored("navigate", "No", "I am not sure.") == 1.0  # as OLMES scores it
    assert scored("object_counting", "7", "I cannot count them.") == 0.0
    # dyck_languages keeps punctuation: the closers are the answer
    assert scored("dyck_languages", "] ) }", "So the answer is ] ) }.") == 1.0
    assert scored("dyck_languages", "] ) }", "So the answer is ] ).") == 0.0
    # the normalisation is HF evaluate's exact_match as lm-eval ships it (OLMES calls the same)
    exact_match = _hf_exact_match()
    for subtask, output, extracted, _ in EXTRACTION:
        gold = {"date_understanding": "(D)", "navigate": "No"}.get(subtask, extracted)
        ours = BBH.score({"subtask": subtask, "target": gold}, output)["score"]
        reference = exact_match([extracted], [gold], ignore_case=True,
                                ignore_punctuation=subtask != "dyck_languages")["exact_match"]
        assert ours == reference


def test_bbh_agrees_with_lm_eval_on_the_exemplars_and_differs_where_pinned():
    # every subtask's 3 exemplars end "So the answer is X.": both extract X, both score it right
    for subtask in SUBTASKS:
        for _, target in bbh_exemplars(subtask)[1]:
            gold = _lm_eval_get_answer(target)
            assert bbh_answer(target, subtask)[0] == gold, (subtask, target[-60:])
            assert BBH.score({"subtask": subtask, "target": gold}, target)["score"] == 1.0
    # where they differ, OLMES's extraction (ours) is the release's
    assert _lm_eval_get_answer("So the answer is (B)") == "(B"  # no final period: lm-eval drops a character
    assert bbh_answer("So the answer is (B)", "snarks")[0] == "(B)"
    twice = "So the answer is Yes. Wait: Fidel lies. So the answer is No."
    assert _lm_eval_get_answer(twice) == "Yes. Wait: Fidel lies. So the answer is No"  # the first, to the end
    assert bbh_answer(twice, "web_of_lies")[0] == "No"
    assert _lm_eval_get_answer("The best choice is D") == "[invalid]"
    assert bbh_answer("The best choice is D", "snarks")[0] == "(D)"


def test_bbh_is_the_micro_average_over_items_of_unequal_subtasks(tmp_path):
    rows = [{"subtask": "boolean_expressions", "input": f"{e} is", "target": t}
            for e, t in (("True and True", "True"), ("not True", "False"), ("True or False", "True"))]
    rows += [{"subtask": "web_of_lies", "input": f"Question {k}: does Bob tell the truth?", "target": "No"}
             for k in range(2)]
    data = _write_jsonl(tmp_path / "bbh.jsonl", rows)
    truth = {f"Q: {r['input']}\nA: Let's think step by step.": r["target"] for r in rows}

    def answer(messages, k):  # right on 2 of the 3 boolean expressions and on both web-of-lies items
        question = messages[-1]["content"]
        return "So the answer is True." if "not True" in question else f"So the answer is {truth[question]}."

    result = suite.run_benchmark(Scripted(answer), "bbh", BenchmarkParams(data=data), tmp_path, task=BBH)
    assert result["n"] == 5 and result["score"] == 80.0  # 4 of 5 items; the subtask mean would be 83.3
    assert "macro" not in result["metric"] and "micro" not in result
    items = [json.loads(line) for line in (tmp_path / "bbh" / "items.jsonl").read_text().splitlines()]
    by_subtask = {s: [i["score"] for i in items if i["subtask"] == s]
                  for s in ("boolean_expressions", "web_of_lies")}
    assert by_subtask == {"boolean_expressions": [1.0, 0.0, 1.0], "web_of_lies": [1.0, 1.0]}
    assert items[0]["id"] == "bbh/boolean_expressions/0"
    limited = BBH.load(data, limit=2)  # a limit takes subtasks round-robin
    assert limited["subtask"] == ["boolean_expressions", "web_of_lies"]


def test_bbh_local_copy_needs_a_subtask_column(tmp_path):
    data = _write_jsonl(tmp_path / "one_config.jsonl", [{"input": "x", "target": "(A)"}])
    with pytest.raises(ValueError, match="subtask"):
        BBH.load(data)


# ------------------------------------------------------------------ HumanEval+

# EvalPlus's test preamble as the hub's ``test`` field holds it (numpy helpers), then check()
EVALPLUS_PREAMBLE = '''

import numpy as np

def is_floats(x) -> bool:
    # check if it is float; List[float]; Tuple[float]
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def assertion(out, exp, atol):
    exact_match = out == exp

    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        np.testing.assert_allclose(out, exp, atol=atol)
    else:
        assert exact_match


'''
CHECK = '''def check(candidate):
    inputs = {inputs!r}
    results = {results!r}
    for i, (inp, exp) in enumerate(zip(inputs, results)):
        assertion(candidate(*inp), exp, 0)
'''

TRUNCATE = {"task_id": "HumanEval/2", "entry_point": "truncate_number",
            "prompt": 'def truncate_number(number: float) -> float:\n'
                      '    """ Return the decimal part of number.\n'
                      '    >>> truncate_number(3.5)\n    0.5\n    """\n',
            "canonical_solution": "    return number % 1.0\n",
            # 123.456 % 1.0 is 0.45600000000000307: equal within the float tolerance only
            "test": EVALPLUS_PREAMBLE + CHECK.format(inputs=[[3.5], [1.33], [123.456], [1e-09]],
                                                     results=[0.5, 0.33, 0.456, 1e-09])}
ADD_ABS = {"task_id": "HumanEval/900", "entry_point": "add_abs",
           "prompt": 'def add_abs(a: int, b: int) -> int:\n    """ Return |a| + |b|.\n    >>> add_abs(1, 2)\n'
                     '    3\n    """\n',
           "canonical_solution": "    return abs(a) + abs(b)\n",
           # the base tests' inputs, then EvalPlus's extended ones (negative numbers)
           "test": EVALPLUS_PREAMBLE + CHECK.format(inputs=[[1, 2], [5, 7], [-3, 4], [0, -9]],
                                                    results=[3, 12, 7, 9])}
ADD_ABS_BASE_TEST = "\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n" \
                    "    assert candidate(5, 7) == 12\n"
WRONG_ADD_ABS = "```python\ndef add_abs(a: int, b: int) -> int:\n    return a + b\n```"


def _code(row):
    return f"```python\n{row['prompt']}{row['canonical_solution']}```"


def test_judge_helpers_decide_as_evalplus_numpy_assertion():
    ours, reference = {}, {}
    exec(JUDGE_HELPERS, ours)
    exec(EVALPLUS_PREAMBLE, reference)
    nan, inf = float("nan"), float("inf")
    cases = [(0.5, 0.5, 0), (0.45600000000000307, 0.456, 0), (0.4561, 0.456, 0),
             ([1.0, 2.0000001], [1.0, 2.0], 0), ([1.0], [1.0, 2.0], 0), ((1.0, 2.0), [1.0, 2.0], 0),
             (2.0, [2.0, 2.0000001], 0), ([[1.0]], [[1.0000001]], 1e-6), ("a", 0.5, 0), (None, 0.5, 0),
             (nan, nan, 0), (inf, inf, 0), (inf, -inf, 0), (1, 1.0, 0), (3, 3.0000001, 0), (3, 3.00001, 0),
             (0.5, 0.6, 0.2), ("abc", "abc", 0), ("abc", "abd", 0), ([], [], 0), ([1, 2], [1, 2], 0),
             ([1, 2], [2, 1], 0), (True, 1.0, 0), (1e-09, 1e-09, 0), (2e-09, 1e-09, 0)]
    for out, exp, atol in cases:
        verdicts = []
        for helpers in (ours, reference):
            try:
                helpers["assertion"](out, exp, atol)
                verdicts.append(True)
            except Exception:  # noqa: BLE001 - numpy raises TypeError as well as AssertionError
                verdicts.append(False)
        assert verdicts[0] == verdicts[1], (out, exp, atol, verdicts)


def test_evalplus_tests_run_in_the_judge_with_the_standard_library():
    tests, why = judge_tests(ADD_ABS["test"])
    assert why == ""
    assert tests.startswith("def check(candidate):\n    inputs = [[1, 2], [5, 7], [-3, 4], [0, -9]]")
    assert "numpy" not in tests and "def assertion(out, exp, atol):" in tests
    # numpy anywhere else: skipped and counted, never scored
    numpy_check = "def check(candidate):\n    assert np.isclose(candidate(1), 1)\n"
    _, why = judge_tests(EVALPLUS_PREAMBLE + numpy_check)
    assert "numpy" in why
    row = HUMANEVALPLUS.convert(ADD_ABS, 0)
    assert HUMANEVALPLUS.unscorable(row) is None and row["id"] == "HumanEval/900"
    assert HUMANEVALPLUS.prompt(row, 0) == humaneval.prompt(row, 0)


def test_a_wrong_solution_passes_the_base_test_and_fails_evalplus_extended_one():
    base = {**humaneval.convert(ADD_ABS, 0), "test": ADD_ABS_BASE_TEST}
    assert humaneval.score(base, WRONG_ADD_ABS)["score"] == 1.0
    plus = HUMANEVALPLUS.convert(ADD_ABS, 0)
    assert HUMANEVALPLUS.score(plus, WRONG_ADD_ABS)["score"] == 0.0
    assert HUMANEVALPLUS.score(plus, _code(ADD_ABS))["score"] == 1.0
    # the tests' helpers are the judge's: a reply's own assertion() cannot pass them
    cheat = WRONG_ADD_ABS.replace("```python\n", "```python\ndef assertion(out, exp, atol):\n    pass\n\n")
    assert HUMANEVALPLUS.score(plus, cheat)["score"] == 0.0


def test_humanevalplus_end_to_end_pass_at_1_and_pass_at_10(tmp_path):
    data = _write_jsonl(tmp_path / "humanevalplus.jsonl", [TRUNCATE, ADD_ABS])

    def answer(messages, k):  # truncate_number: always right; add_abs: right in 1 sample of 20
        if "truncate_number" in messages[-1]["content"]:
            return _code(TRUNCATE)
        return _code(ADD_ABS) if k == 1 else WRONG_ADD_ABS

    result = suite.run_benchmark(Scripted(answer), "humanevalplus", BenchmarkParams(data=data, samples=20),
                                 tmp_path, task=HUMANEVALPLUS)
    assert result["n"] == 2 and result["score"] == 50.0  # greedy (sample 0): only truncate_number passes
    assert result["samples"] == 20
    assert result["pass@10"] == 100 * (1.0 + suite.pass_at_k(20, 1, 10)) / 2 == 75.0
    assert result["timeouts"] == 0 and result["scorer_errors"] == 0


def test_bbh_from_the_hub_reads_each_subtask_config(monkeypatch):
    """lukaemon/bbh has one config per subtask: the hub path reads all 27 and names each row's."""
    from tulu_lib.evals import spec

    asked = []

    def hub(path, split, config):
        asked.append((path, split, config))
        return [{"input": f"{config} q{k}", "target": "True"} for k in range(2)]

    monkeypatch.setattr(spec, "read_rows", hub)
    rows = BBH.load("lukaemon/bbh")
    assert asked == [("lukaemon/bbh", "test", s) for s in SUBTASKS] and len(rows) == 2 * len(SUBTASKS)
    assert rows[1]["id"] == f"bbh/{SUBTASKS[0]}/1" and rows[2]["subtask"] == SUBTASKS[1]
