"""``verifiers.verify(..., rules="open_instruct")``: the release's verifiers, quirks included.

Every expected value is derived from open-instruct 9b39f557 (2024-12-03) source, cited per case as
file:line. ``rules="corrected"`` (the default, tests/test_rewards.py) is checked to differ where the
release is quirky and to agree where it is not.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tulu_lib.core.params import load_params
from tulu_lib.evals import verifiers
from tulu_lib.evals.verifiers import VerificationError, disagreements, verify
from tulu_lib.train import rlvr


def oi(dataset, response, truth):
    return verify(dataset, response, truth, rules="open_instruct")


def if_truth(func_name, **kwargs):
    return json.dumps({"func_name": func_name, **kwargs})


# --- GSM8K: ground_truth_utils.py:verify_gsm8k_sample (L12-L24) ---------------------------------

@pytest.mark.parametrize(("response", "truth", "expected"), [
    # L19 r"[-+]?\d*\.\d+|\d+": the sign belongs only to the decimal alternative -> "18"
    ("So the temperature is -18 degrees.", "18", True),
    ("So the temperature is -18 degrees.", "-18", False),
    ("The change is -1.5.", "-1.5", True),  # a decimal keeps its sign
    # L24 string comparison (lower-cased, not numeric): "18.00" != "18"
    ("She pays $18.00.", "18", False),
    ("She pays $18.", "18", True),
    # L18 r"(\d),(\d)" -> r"\1\2", non-overlapping matches: "1,2,3" -> "12,3" -> last "3";
    # any digit,digit is joined, not only thousands: "1,234,567" and "3,5" -> "35"
    ("Items 1,2,3", "123", False),
    ("Items 1,2,3", "3", True),
    ("Total: 1,234,567 people", "1234567", True),
    ("Pick 3,5", "35", True),
    ("Total: 1,234 people", "1234", True),
    # L13 the text after the last "<|assistant|>\n"; L20-L23 no number -> the whole reply
    ("<|assistant|>\nThe answer is 7", "7", True),
    ("none", "NONE", True),
])
def test_gsm8k_release(response, truth, expected):
    assert oi("gsm8k", response, truth) is expected


def test_gsm8k_corrected_differs_on_the_quirks():
    assert verify("gsm8k", "So the temperature is -18 degrees.", "18") is False
    assert verify("gsm8k", "She pays $18.00.", "18") is True
    assert verify("gsm8k", "Pick 3,5", "35") is False and verify("gsm8k", "Pick 3,5", "5") is True


# --- MATH: ground_truth_utils.py:verify_math_sample (L27-L66) + math_utils.py -------------------

def test_math_any_candidate_may_match_and_only_the_second_is_right():
    # L33-L40 boxed (not normalized) first, L42-L44 the Minerva answer second; L56-L64 ANY match.
    reply = ("First guess $\\boxed{3}$, but that is wrong.\n"
             "Final Answer: The final answer is $5$. I hope it is correct.")
    assert verifiers.oi_math_candidates(reply) == ["3", "5"]
    assert oi("MATH", reply, "5") is True
    assert oi("MATH", reply, "3") is True
    assert verify("MATH", reply, "5") is False  # corrected: the last box only


def test_math_dollar_fallback_only_without_box_or_minerva():
    # L46-L51: the normalized text between the last two "$", only when no other candidate
    assert verifiers.oi_math_candidates("so $x = 4$ and $y = 7$") == ["7"]
    assert verifiers.oi_math_candidates("$\\boxed{2}$ and $9$") == ["2"]
    # L53-L54: nothing at all -> the whole reply, normalized (spaces removed, math_utils.py L70-L81)
    assert verifiers.oi_math_candidates("just 12") == ["just12"]


def test_math_symbolic_equivalence_by_sympy():
    # math_utils.py:is_equiv L184-L224: parse_latex both, simplify(a - b) == 0
    assert oi("MATH", "$\\boxed{x^2+1}$", "1+x^2") is True
    assert verify("MATH", "$\\boxed{x^2+1}$", "1+x^2") is False  # corrected: strings
    assert oi("MATH", "$\\boxed{\\sqrt{3}/2}$", "\\frac{\\sqrt{3}}{2}") is True
    assert oi("MATH", "$\\boxed{18.00}$", "18") is True  # 18.0 - 18 simplifies to 0
    assert oi("MATH", "$\\boxed{x^2+2}$", "1+x^2") is False


def test_hendrycks_is_equiv_quirks():
    # math_utils.py:fix_a_slash_b L259-L272: int("\\sqrt{3}") raises ValueError, which only
    # hendrycks_is_equiv's bare except (L364-L377) catches -> raw strings compared -> False
    assert verifiers.oi_hendrycks_is_equiv("\\sqrt{3}/2", "\\frac{\\sqrt{3}}{2}") is False
    assert verifiers.oi_hendrycks_is_equiv("3/4", "\\frac{3}{4}") is True
    assert verifiers.oi_hendrycks_is_equiv("\\dfrac12", "\\frac{1}{2}") is True
    assert verifiers.oi_hendrycks_is_equiv("0.5", "\\frac{1}{2}") is True
    assert verifiers.oi_is_equiv("x+", "x") is True  # parse_latex is not strict: "x+" parses as x
    assert verifiers.oi_is_equiv("\\frac{", "1") is False  # a parse error is "not equivalent"


def test_minerva_normalization_is_plain_substring_edits():
    # math_utils.py:normalize_final_answer L130-L170 with REMOVED_EXPRESSIONS ("ft" cuts \left)
    assert verifiers.oi_normalize_final_answer("\\left( 1, 2 \\right)") == "\\le(1,2\\right)"
    assert verifiers.oi_normalize_final_answer("x = 10 units") == "10"
    assert verifiers.oi_normalize_final_answer("1,000") == "1000"
    assert verifiers.oi_normalize_final_answer("\\frac12") == "\\frac{1}{2}"


def test_boxed_quirks():
    # math_utils.py:last_boxed_only_string L14-L41 + remove_boxed L44-L55
    assert verifiers.oi_math_candidates("\\boxed 5$ or \\boxed{6}") == ["5"]  # "\boxed " wins
    assert verifiers.oi_math_candidates("\\fbox{5}") == ["\\fbox{5}"]  # remove_boxed asserts
    assert verifiers.oi_math_candidates("\\boxed{\\frac{1}{2}}") == ["\\frac{1}{2}"]


# --- IF: ground_truth_utils.py:verify_ifeval_sample (L94-L114) + if_functions.py ----------------

def test_validate_placeholders_always_rewards():
    # if_functions.py:validate_placeholders L302-L327 returns (has_enough, placeholders): truthy
    truth = if_truth("validate_placeholders", N=3, quantifier=None)
    assert oi("ifeval", "No placeholders here.", truth) is True
    assert verify("ifeval", "No placeholders here.", truth) is False
    assert verify("ifeval", "[a] [b] [c]", truth) is True


def test_validate_choice_tests_the_reply_inside_the_option():
    # if_functions.py:validate_choice L367-L371: `text in option`
    truth = if_truth("validate_choice", options=["My answer is yes.", "My answer is no."])
    assert oi("ifeval", "yes", truth) is True  # a fragment of an option passes
    assert oi("ifeval", "My answer is yes.", truth) is True
    assert oi("ifeval", "My answer is yes. Because it is.", truth) is False
    assert verify("ifeval", "yes", truth) is False


def test_none_kwargs_dropped_reply_stripped_and_release_semantics():
    # L105-L114: func_name popped, None kwargs dropped; L95 the reply is stripped
    assert oi("ifeval", "Done. Is there anything else?  \n",
              if_truth("validate_end", end_phrase="anything else?", N=None)) is True
    # if_functions.py:validate_frequency_capital_words L450-L459: "around" means exactly N
    truth = if_truth("validate_frequency_capital_words", N=3, quantifier="around")
    assert oi("ifeval", "ONE TWO", truth) is False
    # if_functions.py:verify_sentence_constraint L232: "!" does not end a sentence
    truth = if_truth("verify_sentence_constraint", N=1, quantifier="at most")
    assert oi("ifeval", "Hi! There! Friend!", truth) is True
    # L98-L101: no func_name -> False; an unknown one -> KeyError in the release
    assert oi("ifeval", "x", json.dumps({"N": 1})) is False
    with pytest.raises(VerificationError, match="unknown constraint"):
        oi("ifeval", "x", if_truth("no_such_check"))
    with pytest.raises(VerificationError, match="unexpected keyword"):
        oi("ifeval", "x", if_truth("validate_title", N=3))
    # if_functions.py:verify_letter_frequency L111-L112 raises: the step would crash; we score 0
    assert oi("ifeval", "aa", if_truth("verify_letter_frequency", letter="ab", N=2)) is False


def test_every_release_function_is_reachable():
    from tulu_lib.evals import ifeval_checks

    assert sorted(ifeval_checks.RELEASE_IF_FUNCTIONS) == sorted(ifeval_checks.IF_FUNCTIONS)


# --- disagreements, params, RLVR pass-through and EOS ids ---------------------------------------

def test_disagreements_lists_rows_the_rule_sets_decide_differently():
    rows = [
        ("gsm8k", "It is -18.", "18"),  # release True, corrected False
        ("gsm8k", "It is 18.", "18"),  # both True
        {"dataset": "ifeval", "response": "none", "ground_truth": if_truth("validate_placeholders", N=1)},
        ("MATH", "$\\boxed{\\frac12}$", "\\frac{1}{2}"),  # both True
        ("ifeval", "x", "{bad json"),  # both raise: no disagreement
    ]
    found = disagreements(rows)
    assert [(d["index"], d["open_instruct"], d["corrected"]) for d in found] == [
        (0, True, False), (2, True, False)]


def test_verify_rejects_unknown_rules():
    with pytest.raises(ValueError, match="rules"):
        verify("gsm8k", "1", "1", rules="paper")


def test_params_verifier_rules():
    assert load_params("params/cpu.yaml").rlvr.verifier_rules == "corrected"
    assert load_params("params/tulu3-8b.yaml").rlvr.verifier_rules == "open_instruct"
    assert load_params("params/tulu3-70b.yaml").rlvr.verifier_rules == "open_instruct"
    with pytest.raises(ValueError, match="verifier_rules"):
        load_params("params/cpu.yaml", ["rlvr.verifier_rules=paper"])


def test_rlvr_reward_functions_use_the_params_rules():
    params = load_params("params/tulu3-8b.yaml").rlvr
    gsm = rlvr.reward_functions(params, [2])[0]
    assert gsm.domain == "gsm8k" and gsm.rules == "open_instruct"
    out = gsm(prompts=[None], completions=["It is -18."], completion_ids=[[5, 2]],
              dataset=["gsm8k"], ground_truth=["18"])
    assert out == [params.alpha]  # the release drops the sign
    cpu = rlvr.reward_functions(load_params("params/cpu.yaml").rlvr, [2])[0]
    assert cpu(prompts=[None], completions=["It is -18."], completion_ids=[[5, 2]],
               dataset=["gsm8k"], ground_truth=["18"]) == [0.0]


def test_eos_ids_are_every_id_generation_stops_at():
    tok = SimpleNamespace(eos_token_id=128001)
    llama = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[128001, 128008, 128009]))
    assert rlvr.eos_token_ids(llama, tok) == [128001, 128008, 128009]
    single = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=7))
    assert rlvr.eos_token_ids(single, tok) == [7, 128001]
    assert rlvr.eos_token_ids(SimpleNamespace(generation_config=None), tok) == [128001]
    params = load_params("params/cpu.yaml").rlvr
    gsm = rlvr.reward_functions(params, rlvr.eos_token_ids(llama, tok))[0]
    ids = [[5, 128009], [5, 128001], [5, 6]]  # <|eot_id|>, <|end_of_text|>, cut off
    out = gsm(prompts=[None] * 3, completions=["7", "7", "7"], completion_ids=ids,
              dataset=["gsm8k"] * 3, ground_truth=["7"] * 3)
    assert out == [params.alpha, params.alpha, params.non_eos_penalty]
