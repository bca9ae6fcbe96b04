"""Golden tests for tulu_lib.evals.verifiers: GSM8K and MATH verifiers, the reward scalar, error cases.

Every expected value is worked out by hand from the rule in the docstring of the function under
test (last number for GSM8K; last box / final-answer line / last $...$ + Minerva normalization for
MATH). The IF constraints are covered in test_ifeval_checks.py.
"""

from __future__ import annotations

import json
import sys

import pytest

from tulu_lib.evals import verifiers
from tulu_lib.evals.verifiers import (
    VerificationError,
    extract_gsm8k_answer,
    extract_math_answer,
    math_verify_equivalent,
    normalize_final_answer,
    reward,
    verify,
)

GSM8K_CASES = [
    ("Natalia sold 48 + 24 = 72 clips.", "72", True),
    ("The answer is 72", "72", True),
    ("#### 72", "72", True),
    ("She earned $1,234.", "1234", True),
    ("Total: 1,234,567 people", "1234567", True),
    ("It costs $18.00.", "18", True),
    ("The final answer is 18.0", "18", True),
    ("So the answer is 18.", "18", True),
    ("The temperature dropped to -5 degrees.", "-5", True),
    ("The change is \u22127.", "-7", True),  # unicode minus sign
    ("x = (-3)", "-3", True),
    ("The loss is -12", "12", False),  # the sign matters
    ("It takes 10-15 minutes, so 15", "15", True),
    ("It takes 10-15 minutes", "-15", False),  # a hyphen between numbers is no minus sign
    ("First 3, then 5, finally 8", "8", True),
    ("First 3, then 5, finally 8", "5", False),  # only the last number counts
    ("The answer is 72. Check: 72 = 8 * 9", "72", False),  # last number is 9
    ("He pays 0.5 dollars", "0.5", True),
    ("1/2 of 10 is 5", "5", True),
    ("No numbers here.", "5", False),
    ("", "0", False),
    ("The answer is 72 apples.", "27", False),
    ("The answer is 7,200", "7200", True),
    ("The answer is 7200", "7,200", True),  # ground-truth commas are separators too
    ("It is 3,4 units", "4", True),  # "3,4" is not a thousands group
    ("It is 3,4 units", "34", False),
    ("The answer is 1,000,000.50", "1000000.5", True),
    ("Answer: 12.5%", "12.5", True),
    ("Answer: 12.50", "12.5", True),
    ("Answer: 12.51", "12.5", False),
    ("Answer: 100.", "100", True),
    ("He has 5 apples and 0 oranges", "5", False),
    ("The answer is \\boxed{42}.", "42", True),
    ("Step 1: 6 * 7 = 42\nStep 2", "42", False),  # last number is 2
    ("x - 5 = 3, so x = 8", "8", True),
    ("It is 2,50 euros", "250", False),  # not a thousands group: last number 50
]


@pytest.mark.parametrize(("response", "ground_truth", "expected"), GSM8K_CASES)
def test_gsm8k_verifier(response, ground_truth, expected):
    assert verify("gsm8k", response, ground_truth) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("She has 1,234 apples.", "1234"), ("between 10-15", "15"), ("v = .5", ".5"), ("none", None)],
)
def test_extract_gsm8k_answer(text, expected):
    assert extract_gsm8k_answer(text) == expected


MATH_CASES = [
    (r"Thus $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}", True),
    (r"$\boxed{\dfrac{1}{2}}$", r"\frac{1}{2}", True),
    (r"\boxed{\tfrac{3}{4}}", r"\frac34", True),
    (r"\boxed{1/2}", r"\frac{1}{2}", True),
    (r"\boxed{0.5}", r"\frac{1}{2}", True),  # decimal == fraction
    (r"$\boxed{\dfrac{7}{2}}$", "3.5", True),
    (r"\boxed{0.33}", r"\frac{1}{3}", False),  # a rounded decimal is not the fraction
    (r"\boxed{\frac12}", r"\frac{1}{2}", True),
    (r"\boxed{\frac{4}{8}}", r"\frac{1}{2}", True),  # plain rationals compare by value
    (r"First \boxed{2}, corrected: \boxed{3}", "3", True),  # the last box wins
    (r"First \boxed{2}, corrected: \boxed{3}", "2", False),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}", True),  # nested braces
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{2}}{2}", False),
    (r"\boxed{\sqrt2}", r"\sqrt{2}", True),
    (r"\boxed{3\sqrt{2}}", r"3\sqrt2", True),
    (r"\boxed{2\!\sqrt{3}}", r"2\sqrt{3}", True),  # \! negative space
    (r"\boxed{2\,\sqrt{3}}", r"2 \sqrt{3}", True),  # \, thin space
    (r"\boxed{1,\!000}", "1000", True),
    (r"\boxed{10{,}000}", "10000", True),
    (r"\boxed{1,234}", "1234", True),
    (r"\boxed{(1,2)}", "(1,2)", True),  # a tuple keeps its comma
    (r"\boxed{(1,2)}", "12", False),
    (r"\boxed{5\text{ cm}}", "5", True),  # units
    (r"\boxed{12 \text{ inches}}", "12", True),
    (r"\boxed{90^\circ}", "90", True),
    (r"\boxed{25\%}", "25", True),
    (r"\boxed{\$18.00}", "18", True),
    (r"\boxed{x = 5}", "5", True),  # "x =" prefix
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)", True),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3,\frac{\pi}{2})", True),
    (r"\boxed{-\frac{2}{3}}", r"-\frac{2}{3}", True),
    (r"\boxed{\frac{2}{3}}", r"-\frac{2}{3}", False),
    (r"\boxed{\text{(B)}}", r"\text{(B)}", True),
    (r"\boxed{\infty}", r"\infty", True),
    (r"\boxed{[2,5)}", "[2,5)", True),
    (r"\boxed{4}", "5", False),
    (r"\fbox{4}", "4", True),
    (r"The final answer is $\boxed{5}$ apples.", "5", True),
    ("Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.", r"\frac{2}{3}", True),
    ("So the final answer is 42.", "42", True),  # answer in text, not in math
    ("So the final answer is 42.", "24", False),
    ("We get $x = 1$ and finally $y = 7$.", "7", True),  # between the last two $
    ("We get $x = 1$ and finally $y = 7$.", "1", False),
    ("12", "12", True),  # a bare answer: the whole response
    ("The answer is 12", "12", False),  # no box, no final-answer line, no math: no answer
]


@pytest.mark.parametrize(("response", "ground_truth", "expected"), MATH_CASES)
def test_math_verifier(response, ground_truth, expected):
    assert verify("MATH", response, ground_truth) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{\frac{1}{2}} and \boxed{3}", "3"),
        (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt{2}}{2}"),
        (r"\boxed 5$", "5"),
        ("Final Answer: The final answer is $-7$. I hope it is correct.", "$-7$"),
        ("$$x = 9$$", "x = 9"),
        ("   ", None),
    ],
)
def test_extract_math_answer(text, expected):
    assert extract_math_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        ("0.5", r"\frac{1}{2}"),
        ("18.00", "18"),
        ("x = 5", "5"),
        (r"5\text{ cm}^2", "5"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"\rightarrow", r"\rightarrow"),  # \right is removed only as a command
        (r"\sigma", r"\sigma"),  # "gm" is a unit only as a word
        ("a triangle", "triangle"),
        ("a + b", "a+b"),
        ("1,234,567", "1234567"),
    ],
)
def test_normalize_final_answer(raw, expected):
    assert normalize_final_answer(raw) == expected


def test_math_verify_second_opinion():
    assert math_verify_equivalent(r"The answer is $\boxed{0.5}$", r"\frac{1}{2}") is True
    assert math_verify_equivalent(r"The answer is $\boxed{3}$", r"\frac{1}{2}") is False


def test_math_verify_missing_package_gives_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)
    assert math_verify_equivalent(r"\boxed{1}", "1") is None


@pytest.mark.parametrize("alias", ["gsm8k", "GSM8K", "Gsm8k "])
def test_dataset_aliases_gsm8k(alias):
    assert verify(alias, "72", "72")


@pytest.mark.parametrize("alias", ["MATH", "math", "Math"])
def test_dataset_aliases_math(alias):
    assert verify(alias, r"\boxed{2}", "2")


@pytest.mark.parametrize("alias", ["ifeval", "IFEval", "IFEVAL"])
def test_dataset_aliases_ifeval(alias):
    assert verify(alias, "no commas", json.dumps({"func_name": "validate_no_commas"}))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 10.0),
        ({"finished": True}, 10.0),
        ({"finished": False}, -10.0),
        ({"alpha": 1.0}, 1.0),
        ({"finished": False, "non_eos_penalty": -3.0}, -3.0),
    ],
)
def test_reward_correct(kwargs, expected):
    assert reward("gsm8k", "so 72", "72", **kwargs) == expected


def test_reward_wrong_is_zero_and_unfinished_wrong_is_penalty():
    assert reward("MATH", r"\boxed{3}", "4") == 0.0
    assert reward("MATH", r"\boxed{3", "4", finished=False) == -10.0


@pytest.mark.parametrize(
    ("dataset", "ground_truth", "needles"),
    [
        ("code", "x", ["code", "unknown dataset"]),
        ("gsm8k", "seventy-two", ["gsm8k", "not a number"]),
        ("MATH", "  ", ["MATH", "it is empty"]),
        ("ifeval", "{not json", ["ifeval", "not valid JSON"]),
        ("ifeval", '["validate_no_commas"]', ["ifeval", "func_name"]),
        ("ifeval", '{"func_name": "validate_everything"}', ["ifeval", "validate_everything", "unknown"]),
        ("ifeval", '{"func_name": "verify_keyword_frequency", "word": "cat", "N": null}',
         ["verify_keyword_frequency", "missing required kwarg 'N'"]),
        ("ifeval", '{"func_name": "validate_lowercase", "N": 3}',
         ["validate_lowercase", "unexpected", "'N'"]),
        ("ifeval", '{"func_name": "validate_word_constraint", "N": 5, "quantifier": "roughly"}',
         ["validate_word_constraint", "quantifier", "roughly"]),
        ("ifeval", '{"func_name": "verify_letter_frequency", "letter": "ab", "N": 2}',
         ["verify_letter_frequency", "letter", "single character"]),
        ("ifeval", '{"func_name": "validate_placeholders", "N": "three"}', ["validate_placeholders", "'N'"]),
    ],
)
def test_malformed_rows_raise(dataset, ground_truth, needles):
    with pytest.raises(VerificationError) as info:
        verify(dataset, "some response 1", ground_truth, row_id="row-17")
    message = str(info.value)
    for needle in [*needles, "row-17"]:
        assert needle in message


def test_malformed_row_raises_even_when_unfinished():
    with pytest.raises(VerificationError):
        reward("gsm8k", "1", "n/a", finished=False)


def test_error_type_is_a_value_error():
    assert issubclass(verifiers.VerificationError, ValueError)
