"""Golden tests for the 25 IF constraint checkers and the IFEval benchmark adapter.

Each RLVR function gets a passing and a failing response through ``verify("ifeval", ...)`` with a
ground truth laid out like the dataset's (every key present, JSON null when unused). The adapter
is exercised on IFEval-style rows (Google kwarg names, None for unused keys), strict and loose.
"""

from __future__ import annotations

import json

import pytest

from tulu_lib.evals import ifeval_checks
from tulu_lib.evals.ifeval_checks import (
    IF_FUNCTIONS,
    IFEVAL_INSTRUCTIONS,
    ConstraintError,
    check_constraint,
    follow_instructions,
)
from tulu_lib.evals.verifiers import verify

DATASET_KEYS = (
    "N", "quantifier", "end_phrase", "keyword_list", "word", "forbidden_words", "letter", "i",
    "first_word", "postscript_marker", "options", "section_splitter", "original_prompt",
)


def ground_truth(func_name: str, **kwargs) -> str:
    """A ground-truth JSON string shaped like the dataset's rows."""
    return json.dumps({"func_name": func_name, **dict.fromkeys(DATASET_KEYS), **kwargs})


OPTIONS = "('My answer is yes.', 'My answer is no.', 'My answer is maybe.')"
END = "Is there anything else I can help with?"

# (func_name, kwargs, passing response, failing response)
CASES = [
    ("verify_keywords", {"keyword_list": ["Paris", "tower"]},
     "The Eiffel Tower stands in paris.", "The tower is in Lyon."),
    ("verify_keyword_frequency", {"word": "cat", "N": 2},
     "A cat met another cat.", "A cat met a caterpillar."),  # whole words only
    ("validate_forbidden_words", {"forbidden_words": ["bad", "ugly"]},
     "A fine day.", "It was a BAD day."),
    ("verify_letter_frequency", {"letter": "z", "N": 3},
     "zebra zoo zone", "Zebra zoo zone"),  # counted case-sensitively
    ("validate_response_language", {"language": "fr"},
     "Ceci est une phrase en français sur le temps qu'il fait.",
     "This is a short English sentence about the weather today."),
    ("verify_paragraph_count", {"N": 3},
     "One.\n* * *\nTwo.\n* * *\nThree.", "One.\n* * *\n* * *\nThree."),  # empty paragraph
    ("validate_word_constraint", {"N": 5, "quantifier": "at most"},
     "Short and sweet.", "This sentence has way more than five words."),
    ("verify_sentence_constraint", {"N": 3, "quantifier": "at least"},
     "One. Two! Three?", "Dr. Smith arrived. He left."),  # "Dr." does not end a sentence
    ("validate_paragraphs", {"N": 2, "i": 2, "first_word": "Moreover"},
     "Intro here.\n\nMoreover, more.", "Intro here.\n\nFurthermore, more."),
    ("verify_postscript", {"postscript_marker": "P.S."},
     "Hello.\n\nP.S. See you soon.", "Hello.\nP.S."),  # a bare marker is no postscript
    ("validate_placeholders", {"N": 2},
     "Dear [name], we ship to [address].", "Dear [name]."),
    ("verify_bullet_points", {"N": 2},
     "**Plan**\n* one\n* two", "* one\n* two\n- three"),
    ("validate_title", {}, "<<Ode to Joy>>\nText", "<< >>\nText"),
    ("validate_choice", {"options": OPTIONS}, "My answer is yes.", "Yes, definitely."),
    ("validate_highlighted_sections", {"N": 2},
     "*first* and **second**", "**only one bold**"),
    ("validate_sections", {"N": 2, "section_splitter": "Section"},
     "SECTION 1\nIntro\nSECTION 2\nBody", "Section 1\nEverything in one"),
    ("validate_json_format", {}, '```json\n{"a": 1}\n```', "a: 1"),
    ("validate_repeat_prompt", {"original_prompt": "Write a haiku about rain."},
     "Write a haiku about rain. Drops drum on the roof.", "Here is a haiku about rain."),
    ("validate_two_responses", {}, "Answer one.\n******\nAnswer two.", "Same.\n******\nSame."),
    ("validate_uppercase", {}, "HELLO THERE, 123!", "Hello THERE"),
    ("validate_lowercase", {}, "hello there, 123!", "hello There"),
    ("validate_frequency_capital_words", {"N": 2, "quantifier": "at least"},
     "NASA and the ESA agree.", "Nasa and Esa agree."),
    ("validate_end", {"end_phrase": END}, f"Done. {END}\n", f"{END} Bye."),
    ("validate_quotation", {}, '"Wrapped."', 'Not "wrapped".'),
    ("validate_no_commas", {}, "No commas here.", "Yes, commas."),
]


def test_cases_cover_all_25_functions():
    assert sorted(c[0] for c in CASES) == sorted(IF_FUNCTIONS)
    assert len(IF_FUNCTIONS) == 25


@pytest.mark.parametrize(("func_name", "kwargs", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_constraint_pass_and_fail(func_name, kwargs, good, bad):
    gt = ground_truth(func_name, **kwargs)
    assert verify("ifeval", good, gt) is True
    assert verify("ifeval", bad, gt) is False


@pytest.mark.parametrize(
    ("func_name", "kwargs", "response", "expected"),
    [
        ("validate_word_constraint", {"N": 10, "quantifier": "around"}, " ".join(["w"] * 11), True),
        ("validate_word_constraint", {"N": 10, "quantifier": "around"}, " ".join(["w"] * 12), False),
        ("validate_word_constraint", {"N": 3, "quantifier": "at least"}, "one two three", True),
        ("verify_sentence_constraint", {"N": 3, "quantifier": "around"}, "A. B. C. D.", True),
        ("verify_sentence_constraint", {"N": 2, "quantifier": "at most"}, "A. B. C.", False),
        ("validate_frequency_capital_words", {"N": 1, "quantifier": "at most"}, "NASA ESA", False),
        ("verify_keyword_frequency", {"word": "New York", "N": 2}, "new york, New York!", True),
        ("validate_choice", {"options": ["a)", "b)"]}, "I pick b)", True),
        ("validate_choice", {"options": "Option A, Option B"}, "I pick Option B.", True),
        ("validate_paragraphs", {"N": 2, "i": 3, "first_word": "X"}, "A\n\nB", False),  # i > N
        ("validate_end", {"end_phrase": END}, f'"All done. {END}"', True),  # quoted response
        ("validate_lowercase", {}, "   ", False),  # a blank response follows nothing
        ("validate_response_language", {"language": "en"}, "12345 !!!", False),  # undetectable
        ("validate_response_language", {"language": "zh"}, "这是一个关于天气的中文句子。", True),
    ],
)
def test_constraint_details(func_name, kwargs, response, expected):
    assert check_constraint(func_name, response, kwargs) is expected


def test_language_detection_is_deterministic():
    text = "Bonjour, je suis content."
    results = {check_constraint("validate_response_language", text, {"language": "fr"}) for _ in range(5)}
    assert len(results) == 1


# --- the IFEval benchmark adapter -------------------------------------------------------------

IFEVAL_KWARG_KEYS = (
    "num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat",
    "num_bullets", "section_spliter", "num_sections", "capital_relation", "capital_frequency",
    "keywords", "num_paragraphs", "language", "let_relation", "letter", "let_frequency",
    "end_phrase", "forbidden_words", "keyword", "frequency", "num_sentences",
    "postscript_marker", "first_word", "nth_paragraph",
)


def hf_kwargs(**given):
    """IFEval kwargs as the HF dataset stores them: every key, None when unused."""
    return {**dict.fromkeys(IFEVAL_KWARG_KEYS), **given}


def test_every_ifeval_instruction_maps_to_one_function():
    assert len(IFEVAL_INSTRUCTIONS) == 25
    assert sorted(v[0] for v in IFEVAL_INSTRUCTIONS.values()) == sorted(IF_FUNCTIONS)


SUMMARY_PROMPT = (
    'Write a 300+ word summary of the wikipedia page "https://en.wikipedia.org/wiki/'
    'Raymond_III,_Count_of_Tripoli". Do not use any commas and highlight at least 3 sections '
    "that has titles in markdown format, for example *highlighted section part 1*, "
    "*highlighted section part 2*, *highlighted section part 3*."
)
SUMMARY_IDS = ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
               "length_constraints:number_words"]
SUMMARY_KWARGS = [hf_kwargs(), hf_kwargs(num_highlights=3), hf_kwargs(relation="at least", num_words=300)]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("*Early life* *Regency* *Legacy* " + "Raymond ruled Tripoli " * 100, [True, True, True]),
        ("*Early life*, *Regency*. " + "Raymond ruled Tripoli " * 20, [False, False, False]),
    ],
)
def test_adapter_summary_row(response, expected):
    for loose in (False, True):
        results = follow_instructions(response, SUMMARY_IDS, SUMMARY_KWARGS, SUMMARY_PROMPT, loose=loose)
        assert results == expected


LIMERICK_PROMPT = ("Write a limerick about a Zelda fan named Rodney. Make sure to include these items: "
                   "Zelda, Hyrule, Link, Ganon. Wrap your entire response with double quotation marks.")
LIMERICK = ('"There once was a fan named Rodney\nWho roamed all of Hyrule with Link\n'
            'He fought Ganon for Zelda\nAnd never once fell down\nThen rested with a drink"')


@pytest.mark.parametrize(
    ("response", "strict", "loose"),
    [
        (LIMERICK, [True, True], [True, True]),
        ("Sure! Here is the limerick:\n" + LIMERICK, [False, True], [True, True]),  # preamble line
        (LIMERICK.replace("Ganon", "the villain"), [True, False], [True, False]),
    ],
)
def test_adapter_strict_vs_loose(response, strict, loose):
    ids = ["startend:quotation", "keywords:existence"]
    kwargs = [hf_kwargs(), hf_kwargs(keywords=["Zelda", "Hyrule", "Link", "Ganon"])]
    assert follow_instructions(response, ids, kwargs, LIMERICK_PROMPT) == strict
    assert follow_instructions(response, ids, kwargs, LIMERICK_PROMPT, loose=True) == loose


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "response", "strict", "loose"),
    [
        ("startend:end_checker", hf_kwargs(end_phrase="Any other questions?"),
         "Here you go. Any other questions?\n(generated)", False, True),  # loose drops the last line
        ("detectable_format:title", hf_kwargs(), "**<<My Title>>**\nBody", True, True),
        ("length_constraints:number_paragraphs", hf_kwargs(num_paragraphs=3),
         "Para one.\n***\nPara two.\n***\nPara three.", True, True),
        ("length_constraints:number_paragraphs", hf_kwargs(num_paragraphs=3),
         "Para one.\n* * *\nPara two.\n* * *\nPara three.", False, False),  # IFEval's divider is ***
        ("keywords:frequency", hf_kwargs(keyword="lettuce", frequency=2, relation="less than"),
         "I like lettuce.", True, True),
        ("keywords:frequency", hf_kwargs(keyword="lettuce", frequency=2, relation="less than"),
         "Lettuce, lettuce.", False, False),
        ("keywords:letter_frequency", hf_kwargs(letter="q", let_frequency=2, let_relation="at least"),
         "quick quiet", True, True),
        ("detectable_format:constrained_response", hf_kwargs(),
         "I think so. My answer is maybe.", True, True),
        ("length_constraints:nth_paragraph_first_word",
         hf_kwargs(num_paragraphs=2, nth_paragraph=2, first_word="president"),
         "Intro.\n\nPresident Lincoln spoke.", True, True),  # IFEval lower-cases the first word
        ("detectable_format:multiple_sections", hf_kwargs(section_spliter="SECTION", num_sections=2),
         "SECTION 1\nA\nSECTION 2\nB", True, True),
        ("change_case:capital_word_frequency", hf_kwargs(capital_frequency=3, capital_relation="less than"),
         "ONLY TWO capitals", True, True),
        ("detectable_format:number_bullet_lists", hf_kwargs(num_bullets=2),
         "Intro:\n* a\n* b", True, True),
        ("detectable_format:json_format", hf_kwargs(), 'Here:\n{"a": 1}', False, True),
        ("combination:repeat_prompt", hf_kwargs(prompt_to_repeat="Tell me a joke."),
         "Tell me a joke. Why did the chicken cross the road?", True, True),
    ],
)
def test_adapter_rows(instruction_id, kwargs, response, strict, loose):
    prompt = "(prompt)"
    assert follow_instructions(response, [instruction_id], [kwargs], prompt) == [strict]
    assert follow_instructions(response, [instruction_id], [kwargs], prompt, loose=True) == [loose]


def test_adapter_repeat_prompt_falls_back_to_prompt():
    prompt = "Tell me a joke."
    response = "Tell me a joke. Knock knock."
    assert follow_instructions(response, ["combination:repeat_prompt"], [None], prompt) == [True]


@pytest.mark.parametrize(
    ("ids", "kwargs", "needle"),
    [
        (["keywords:key_sentences"], [{}], "unknown IFEval instruction id 'keywords:key_sentences'"),
        (["punctuation:no_comma"], [{}, {}], "1 instruction ids but 2 kwargs"),
        (["punctuation:no_comma"], [{"num_words": 3}], "unexpected kwarg(s) ['num_words']"),
        (["length_constraints:number_words"], [hf_kwargs(num_words=3, relation="more than")], "more than"),
        (["detectable_content:number_placeholders"], [hf_kwargs()], "missing required kwarg 'N'"),
    ],
)
def test_adapter_errors(ids, kwargs, needle):
    with pytest.raises(ConstraintError) as info:
        follow_instructions("text", ids, kwargs, "prompt")
    assert needle in str(info.value)


def test_check_constraint_unknown_function():
    with pytest.raises(ConstraintError, match="unknown func_name 'nope'"):
        ifeval_checks.check_constraint("nope", "text", {})
