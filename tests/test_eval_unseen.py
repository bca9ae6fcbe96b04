"""The Tülu 3 unseen suite (OLMES ``tulu_3_unseen``): AGIEval English, GPQA, MMLU-Pro and DeepMind
Mathematics as OLMES's ``::tulu3`` tasks prompt and score them, and how each suite averages.

Tiny local copies in each source's schema (no network, no model), the prompts against OLMES's
template text (quoted from allenai/olmes ``oe_eval/configs/tasks.py``), golden answer extractions
from OLMES's regexes (``oe_eval/tasks/oe_eval_tasks/{agi_eval,gpqa,mmlu_pro,deepmind_math}.py``),
and an end-to-end ``suite.run_benchmark`` per benchmark with a scripted generator."""

import json

import pytest

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.spec import DataUnavailable
from tulu_lib.evals.tasks.agieval import AGIEVAL, agieval_answer, strip_choice_prefix
from tulu_lib.evals.tasks.deepmind_math import DEEPMIND_MATH, clean_prediction, deepmind_math_answer
from tulu_lib.evals.tasks.gpqa import GPQA, gpqa_answer
from tulu_lib.evals.tasks.mmlu import mmlu_letter
from tulu_lib.evals.tasks.mmlu_pro import MMLU_PRO, mmlu_pro_answer
from tulu_lib.generation.types import Completion

# allenai/olmes oe_eval/configs/tasks.py, the ``::tulu3`` tasks' chat_overrides.context_kwargs
_COT = ('Answer the following multiple-choice question by giving the correct answer letter in parentheses. '
        'Provide CONCISE reasoning for the answer, and make sure to finish the response with "Therefore, the '
        'answer is (ANSWER_LETTER)" where (ANSWER_LETTER) is one of ')
_REMIND = ('Answer the above question and REMEMBER to finish your response with the exact phrase "Therefore, '
           'the answer is (ANSWER_LETTER)" where (ANSWER_LETTER) is one of ')
# "gpqa:0shot_cot::tulu3": description, final_description
OLMES_GPQA = (_COT + "(A), (B), (C), (D).\n\n", "\n\n" + _REMIND + "(A), (B), (C), (D).")
# f"agi_eval_{task_type}:0shot_cot::tulu3"
_ETC = "(A), (B), (C), (D), (E), etc."
OLMES_AGIEVAL = (_COT + _ETC + "\n\n", "\n\n" + _REMIND + _ETC)
# f"mmlu_pro_{cat}:0shot_cot::tulu3": ONE newline before the final description
OLMES_MMLU_PRO = (_COT + _ETC + "\n\n", "\n" + _REMIND + _ETC)
# f"deepmind_math_{category}:0shot_cot::tulu3" (note OLMES's two spaces in "biggest  e.g.")
OLMES_DEEPMIND = (
    "Solve the following math problem efficiently:\n",
    '\n\nShow your work and conclude with the exact phrasing "Therefore, the final answer is '
    '[answer]. I hope it is correct." where [answer] is just the final number or expression that '
    'solves the problem. E.g., if the answer is 6, conclude with "Therefore, the final answer is 6. '
    'I hope it is correct."\nNote the formatting for the following answer types:\n- If the answer is '
    'a list (e.g., when there are two solutions to an equation), unless otherwise specified, present '
    'the solutions in a list separated by commas ordering them from the smallest to biggest  e.g.: '
    '2, 10\n- Powers should be written with **, for instance x to the power of 2 should be written '
    'as x**2\n- Use * for multiplication, e.g.: 2*x')


class Scripted:
    """A generator that answers from a function of the prompt's last user turn."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def generate(self, prompts, sampling):
        self.calls += len(prompts)
        return [[Completion(self.answer(p[-1]["content"]), True, 3)] * sampling.n for p in prompts]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _run(task, generator, path, tmp_path):
    return suite.run_benchmark(generator, task.name, BenchmarkParams(data=path), tmp_path / "out", task=task)


# ------------------------------------------------------------------ AGIEval English

def _agieval_row(subset, question, label, passage="", options=("(A)one", "(B)two", "(C)three", "(D)four")):
    """A row of AGIEval's data/v1/<subset>.jsonl (as OLMES reads it), with its subset."""
    return {"passage": passage, "question": question, "options": list(options), "label": label,
            "answer": None, "other": None, "subset": subset}


def test_agieval_prompt_is_olmes_tulu3():
    row = AGIEVAL.convert(_agieval_row("lsat-rc", "Q?", "B", passage="P1.\n\nP2 (A)x",
                                       options=["(A)first", "(B) second", "C. third", "Dogs"]), 0)
    # OLMES _strip_choice_prefix: "(A)", "C." and also a bare leading A-E ("Dogs" -> "ogs")
    assert row["choices"] == ["first", "second", "third", "ogs"] and row["answer"] == "B"
    assert strip_choice_prefix(" E.? five") == "? five"
    # "Passage: ...\nQuestion: ...\n (A) ..." (prompt_style no_answer_prefix: no "\nAnswer:"),
    # then _clean_text: "(A)x" -> "(A) x", runs of newlines -> one
    query = "Passage: P1.\nP2 (A) x\nQuestion: Q?\n (A) first\n (B) second\n (C) third\n (D) ogs"
    content = OLMES_AGIEVAL[0] + query + OLMES_AGIEVAL[1]
    assert AGIEVAL.prompt(row, 0) == [{"role": "user", "content": content}]
    no_passage = AGIEVAL.convert(_agieval_row("sat-math", "1+1?", "B"), 1)
    start = OLMES_AGIEVAL[0] + "Question: 1+1?\n (A) one"
    assert AGIEVAL.prompt(no_passage, 0)[0]["content"].startswith(start)
    with pytest.raises(ValueError, match="0-shot"):
        AGIEVAL.prompt(row, 3)


@pytest.mark.parametrize(("output", "expected"), [
    ("So... Therefore, the answer is (E).", ("E", 1.0)),          # answer_format_regex [A-F]: the last one
    ("Therefore, the answer is (B). Therefore, the answer is (A)", ("A", 1.0)),
    ("(A) fails, so the answer is (C).", ("C", 0.5)),  # "(X)" in the last "the answer is ...."
    ("(A) is wrong. The answer is B.", ("A", 0.0)),    # the lookbehind is case-sensitive: last "(X)"
    ("Every option fails", ("E", 0.0)),                # last capital A-E anywhere, even in a word
    ("no letter here", ("", 0.0)),
])
def test_agieval_extraction_is_olmes(output, expected):
    assert agieval_answer(output) == expected


def test_agieval_extraction_differs_from_mmlu_letter():
    """mmlu's own extraction takes "The answer is B"; OLMES agi_eval's, the last "(X)"."""
    assert mmlu_letter("(A) is wrong. The answer is B.") == "B"
    assert agieval_answer("(A) is wrong. The answer is B.")[0] == "A"


def test_agieval_macro_averages_its_subsets_and_skips_others(tmp_path):
    rows = [_agieval_row("lsat-ar", "Q1?", "A", passage="P."),
            _agieval_row("lsat-ar", "Q2?", "B", passage="P."),
            _agieval_row("sat-math", "Q3?", "D"),
            _agieval_row("sat-en-without-passage", "Q4?", "C")]  # not in agi_eval_english:0shot_cot::tulu3
    replies = {"Q1?": "Therefore, the answer is (A).", "Q2?": "Therefore, the answer is (C).",
               "Q3?": "hence the answer is (D)."}
    gen = Scripted(lambda text: next(r for q, r in replies.items() if f"Question: {q}\n" in text))
    result = _run(AGIEVAL, gen, _jsonl(tmp_path / "agieval.jsonl", rows), tmp_path)
    # lsat-ar 1/2, sat-math 1/1: macro (50 + 100) / 2, not the micro 2/3
    assert result["n"] == 3 and result["skipped"] == 1 and gen.calls == 3
    assert result["score"] == 75.0 and result["micro"] == pytest.approx(200 / 3) and result["groups"] == 2


# ------------------------------------------------------------------ GPQA

def _gpqa_row(i):
    """A row of Idavidrein/gpqa (gpqa_main), the columns OLMES reads."""
    return {"Question": f"Question {i}?", "Correct Answer": "right", "Incorrect Answer 1": "w1",
            "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3", "Explanation": "", "Record ID": f"rec{i}",
            "Canary String": ""}


def test_gpqa_choices_are_shuffled_as_olmes_and_prompted_as_tulu3():
    # random.Random(111 + index).shuffle([incorrect 1, 2, 3, correct]) (OLMES answer_shuffling_seed 111)
    shuffled = {0: ["w1", "w3", "right", "w2"], 1: ["w1", "w2", "w3", "right"],
                2: ["right", "w2", "w3", "w1"], 3: ["right", "w1", "w3", "w2"]}
    for i, order in shuffled.items():
        row = GPQA.convert(_gpqa_row(i), i)
        assert row["choices"] == order and row["answer"] == "ABCD"[order.index("right")]
    row = GPQA.convert(_gpqa_row(0), 0)
    query = "Question: Question 0?\nChoices:\n (A) w1\n (B) w3\n (C) right\n (D) w2\n"
    assert GPQA.prompt(row, 0) == [{"role": "user", "content": OLMES_GPQA[0] + query + OLMES_GPQA[1]}]
    # OLMES _preprocess of each choice: strip, " [title]" -> ". ", "[...]" dropped, double spaces single
    odd = GPQA.convert({**_gpqa_row(1), "Correct Answer": "  right [note] answer [title]  "}, 1)
    assert odd["choices"][3] == "right answer. " and odd["answer"] == "D"


@pytest.mark.parametrize(("output", "expected"), [
    ("Therefore, the answer is (B).", ("B", 1.0)),
    ("(A) is tempting, but the answer is (C), not (D).", ("D", 0.5)),  # no exact phrase: the last "(X)"
    ("The correct answer is: B", ("B", 0.5)),
    ("I would pick B over A", ("A", 0.0)),                              # the last stand-alone A-D
    ("none", ("", 0.0)),
])
def test_gpqa_extraction_is_olmes(output, expected):
    assert gpqa_answer(output) == expected


def test_gpqa_extraction_differs_from_mmlu_letter():
    """mmlu's own extraction takes "the answer is (C)"; OLMES gpqa's, the last "(X)" after it."""
    assert mmlu_letter("the answer is (C), not (D).") == "C"
    assert gpqa_answer("the answer is (C), not (D).")[0] == "D"


def test_gpqa_scores_the_shuffled_letter(tmp_path):
    path = _jsonl(tmp_path / "gpqa_main.jsonl", [_gpqa_row(i) for i in range(4)])
    result = _run(GPQA, Scripted(lambda text: "Therefore, the answer is (A)."), path, tmp_path)
    assert result["n"] == 4 and result["score"] == 50.0  # "right" is (A) for indices 2 and 3 only


# ------------------------------------------------------------------ MMLU-Pro

def _mmlu_pro_row(qid, category, answer, n_options=10):
    """A row of TIGER-Lab/MMLU-Pro (test)."""
    options = [f"opt{k}" for k in range(n_options)]
    return {"question_id": qid, "question": f"Q{qid}?", "options": options, "answer": answer,
            "answer_index": "ABCDEFGHIJ".index(answer), "cot_content": "", "category": category, "src": "x"}


def test_mmlu_pro_prompt_is_olmes_tulu3():
    row = MMLU_PRO.convert(_mmlu_pro_row(7, "law", "C", n_options=3), 0)
    assert row["id"] == "mmlu_pro/7"
    # answer_prefix None: "Question: ...\n (A) ...\n" per option, then the final description after "\n"
    query = "Question: Q7?\n (A) opt0\n (B) opt1\n (C) opt2\n"
    content = OLMES_MMLU_PRO[0] + query + OLMES_MMLU_PRO[1]
    assert MMLU_PRO.prompt(row, 0) == [{"role": "user", "content": content}]
    ten = MMLU_PRO.prompt(MMLU_PRO.convert(_mmlu_pro_row(8, "law", "J"), 0), 0)[0]["content"]
    assert " (J) opt9\n\nAnswer the above" in ten


@pytest.mark.parametrize(("output", "expected"), [
    ("Therefore, the answer is (J).", ("J", 1.0)),
    # the FIRST "answer is X", the letter in any case
    ("the answer is a tricky one. Therefore the answer is (C)", ("A", 0.5)),
    ("answer is (E) ... answer is (F)", ("E", 0.5)),
    ("Answer: G", ("G", 0.5)),
    ("I pick H", ("H", 0.0)),                                                 # the last stand-alone A-J
    ("none", ("", 0.0)),
])
def test_mmlu_pro_extraction_is_olmes(output, expected):
    assert mmlu_pro_answer(output) == expected


def test_mmlu_pro_extraction_differs_from_mmlu_letter():
    """mmlu's own extraction takes the last "answer is (X)"; OLMES mmlu_pro's, the first (and "a" as A)."""
    text = "the answer is a tricky one. Therefore the answer is (C)"
    assert mmlu_letter(text) == "C" and mmlu_pro_answer(text)[0] == "A"


def test_mmlu_pro_macro_averages_categories(tmp_path):
    rows = [_mmlu_pro_row(1, "law", "B"), _mmlu_pro_row(2, "law", "C"),
            _mmlu_pro_row(3, "computer science", "J")]
    replies = {"Q1?": "Therefore, the answer is (B).", "Q2?": "Therefore, the answer is (D).",
               "Q3?": "Therefore, the answer is (J)."}
    gen = Scripted(lambda text: next(r for q, r in replies.items() if f"Question: {q}\n" in text))
    result = _run(MMLU_PRO, gen, _jsonl(tmp_path / "mmlu_pro.jsonl", rows), tmp_path)
    assert result["n"] == 3 and result["score"] == 75.0 and result["micro"] == pytest.approx(200 / 3)


# ------------------------------------------------------------------ DeepMind Mathematics

def _dm_row(category, question, answer):
    """A row of OLMES's deepmind_math_sample100/<category>/test.jsonl.gz (the hub's b'...\\n' strings)."""
    return {"question": f"b'{question}\\n'", "answer": f"b'{answer}\\n'", "category": category}


def _final(answer):
    return f"Therefore, the final answer is {answer}. I hope it is correct."


def test_deepmind_math_prompt_is_olmes_tulu3():
    row = DEEPMIND_MATH.convert(_dm_row("algebra__linear_1d", "Solve 2*x = 4 for x.", "2"), 0)
    assert (row["question"], row["answer"]) == ("Solve 2*x = 4 for x.", "2")  # b'...\n' unwrapped
    content = OLMES_DEEPMIND[0] + "Solve 2*x = 4 for x." + OLMES_DEEPMIND[1]
    assert DEEPMIND_MATH.prompt(row, 0) == [{"role": "user", "content": content}]


@pytest.mark.parametrize(("output", "expected"), [
    ("Therefore, the final answer is -3284, 50. I hope it is correct.", ("-3284, 50", 1.0)),
    ("so THEREFORE, THE FINAL ANSWER IS 7. I HOPE IT IS CORRECT. Therefore, the final answer is 8. I hope it "
     "is correct.", ("8", 1.0)),                                               # (?i), the last one
    ("so the final answer is $x**2$.\nDone", ("x**2", 0.5)),                   # first line after the prefix
    ("The answer is 5", ("5", 0.5)),
    ("42", ("", 0.5)),                                                         # no prefix: nothing
])
def test_deepmind_math_extraction_is_olmes(output, expected):
    assert deepmind_math_answer(output) == expected


def test_deepmind_math_clean_prediction_is_olmes():
    assert clean_prediction("13. I hope it is correct") == "13"
    assert clean_prediction("\\(x**2\\)") == "x**2" and clean_prediction("**7**") == "7"
    # OLMES's "<|eot_id|>" is a regex: every "<" and ">" goes, so a "</s>" after it leaves "/s"
    assert clean_prediction("x < 3") == "x  3" and clean_prediction("7</s>") == "7/s"


@pytest.mark.parametrize(("answer", "reply", "right"), [
    ("True", "yes", 1.0), ("False", "no", 1.0), ("True", "no", 0.0),
    ("5*i**2*(i + 3)*(i + 81732)", "5*i**4 + 408675*i**3 + 1225980*i**2", 1.0),  # sympy equal
    ("0.5", "1/2", 1.0), ("-3284, 50", "-3284,50", 1.0), ("-3284, 50", "50, -3284", 0.0),  # tuples: ordered
    ("2*x", "2*y", 0.0),                                                      # free symbols differ
    ("-1b4", "-1B4", 1.0),                                                    # equal ignoring case
])
def test_deepmind_math_equivalence_is_olmes(answer, reply, right):
    assert DEEPMIND_MATH.score({"answer": answer}, _final(reply))["score"] == right


def test_deepmind_math_parse_sees_no_builtins():
    """Ours, not OLMES's: parse_expr evals its input, so a reply needing builtins, strings, attribute
    access or dunders is not parsed (scored 0, counted as a parse error)."""
    for reply in ("__import__('os').getcwd()", "().__class__", "open(0)", "exec(chr(49))"):
        scored = DEEPMIND_MATH.score({"answer": "7"}, _final(reply))
        assert scored["score"] == 0.0 and scored["answer_parse_error"] == 1.0
    # the arithmetic builtins OLMES's parse has are kept
    assert DEEPMIND_MATH.score({"answer": "3"}, _final("abs(-3)"))["score"] == 1.0


def test_deepmind_math_macro_averages_categories(tmp_path):
    rows = [_dm_row("algebra__linear_1d", "Solve 2*x = 26 for x.", "13"),
            _dm_row("algebra__linear_1d", "Solve 3*y = 9 for y.", "3"),
            _dm_row("comparison__pair", "Is 26280 < 26517?", "True")]
    replies = {"26 for": "13", "9 for": "4", "26280": "yes"}
    gen = Scripted(lambda text: next(_final(r) for q, r in replies.items() if q in text))
    result = _run(DEEPMIND_MATH, gen, _jsonl(tmp_path / "deepmind.jsonl", rows), tmp_path)
    assert result["n"] == 3 and result["score"] == 75.0 and result["micro"] == pytest.approx(200 / 3)


def test_without_a_local_copy_the_benchmarks_say_what_to_give():
    for task in (AGIEVAL, DEEPMIND_MATH):
        assert task.packaged is None and "local copy" in task.packaged_from
        with pytest.raises(DataUnavailable, match=f"eval.benchmarks.{task.name}.data"):
            task.load(limit=1)
