"""IFBench checkers (tulu_lib.evals.ifbench_checks) and the ``ifbench`` eval task.

Each case's expected result is worked out by hand from upstream allenai/IFBench's
instructions.py at commit 1d62c1d (the semantics the module follows)."""

import json
import math

import pytest

from tests.test_evals import Scripted
from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import ifbench_checks as ib
from tulu_lib.evals import suite
from tulu_lib.evals.registry import load_benchmark

REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."
KEYWORDS5 = {"keyword1": "sun", "keyword2": "moon", "keyword3": "star", "keyword4": "sky", "keyword5": "sea"}
FIVE_KEYWORDS = "Sun moon moon star star star " + "sky " * 5 + "sea " * 7

# (instruction id, kwargs, a response that follows it, one that does not)
CASES = [
    # -- the 11 checkers where if-verifiable 0.1.2 differs from upstream's current code --
    # whole words, case-sensitive: "Emmanuel" is not "Emma"
    ("count:person_names", {"N": 2}, "Emma met Liam.", "Emmanuel met Liam and emma."),
    # word trigrams: (the,cat,sat) and (cat,sat,on) of 4 trigrams are in the reference = 50%
    ("ratio:overlap", {"reference_text": "the cat sat on the mat", "percentage": 50},
     "the cat sat on a rug", "the dog sat on a rug"),
    # 3 sentences of 4 characters; the failing one repeats a word
    ("ratio:sentence_words", {}, "Cat. Dog. Pig.", "Cat. Dog. Cat."),
    # demonstrative + interrogative + indefinite pronouns count: this, what, everyone
    ("count:pronouns", {"N": 3}, "This is what everyone wants.", "The cat wants food."),
    # whole word, case-insensitive, in the 2nd sentence
    ("sentence:keyword", {"word": "cat", "N": 2}, "Hello there. The CAT sleeps.",
     "Hello there. The category sleeps."),
    # whole-word counts 1, 2, 3, 5, 7 ("sunshine" is not "sun"; a second "SUN" is)
    ("count:keywords_multiple", KEYWORDS5, FIVE_KEYWORDS + "sunshine", FIVE_KEYWORDS + "SUN"),
    # punctuation tokens are not words: [I, too, BLUE, skies], the 3rd is BLUE
    ("words:keywords_specific_position", {"keyword": "blue", "n": 2, "m": 3},
     "Hi there. I, too, BLUE skies.", "Hi there. I too love blue skies."),
    # words [I, very, much, like, it, VERY, much]: 2nd and 2nd-to-last ("." is not a word)
    ("words:words_position", {"keyword": "very"}, "I very much like it, VERY much.",
     "I really like it very much."),
    # whitespace words 1..3 inclusive, stripped, case-insensitive
    ("repeat:repeat_span", {"prompt_to_repeat": "one two three four five", "n_start": 1, "n_end": 3},
     " Two three FOUR \n", "two three"),
    # tokens starting with a non-letter are skipped; a one-letter word must be upper-case
    ("format:title_case", {}, "The Cat Is A Friend, 3rd Place", "The Cat Is a Friend"),
    # adjacent quotes (whitespace removed) or a closing quote at the end fail
    ("format:quote_unquote", {}, 'He said "hello" meaning hi.', 'He said "hello"'),
    # -- others --
    ("count:numbers", {"N": 2}, "Pay 1,000 dollars in 3.5 days.", "Pay 1 or 2 or 3."),
    ("count:word_count_range", {"min_words": 3, "max_words": 4}, "one two, three!", "one two"),
    ("count:conjunctions", {"small_n": 2}, "cats and dogs And birds", "cats and dogs and birds"),
    ("count:punctuation", {}, "a. b, c! d? e; f: g?!", "a. b, c! d? e f: g?!"),
    ("ratio:stop_words", {"percentage": 50}, "the big cat", "the cat and the dog"),
    ("words:alphabet", {}, "All bears can dance.", "All cats dance."),
    ("words:palindrome", {}, "level " * 10, "level " * 9),
    ("words:repeats", {"small_n": 2}, "a a b", "Cat cat CAT."),
    ("format:no_whitespace", {}, "abc,def", "abc def"),
    ("format:options", {"options": "yes/no/maybe"}, "Yes.", "Yes, definitely."),
    ("format:options", {"options": "a), b), c), d)"}, "b)", "b"),
    ("format:parentheses", {}, "(([[{x}]]))", "(((x)))"),
    ("format:line_indent", {}, "a\n b\n\n  c", "a\n b\n c"),
    ("format:sub-bullets", {}, "* item\n- sub", "* item\n* other\n- sub"),
    ("sentence:increment", {"small_n": 1}, "One. One two. One two three.", "One. One two three."),
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", "14, 21, 28, 35, 42"),
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a poem about cats."},
     "Compose a poem about cats.", "Write a poem about cats."),
    ("repeat:repeat_simple", {}, REPEAT_SIMPLE.lower(), "Sure! " + REPEAT_SIMPLE),
]


@pytest.mark.parametrize(("iid", "kwargs", "good", "bad"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_checker_passes_and_fails_by_hand(iid, kwargs, good, bad):
    assert ib.check_instruction(iid, good, kwargs) is True
    assert ib.check_instruction(iid, bad, kwargs) is False


def test_hand_cases_cover_the_tricky_checkers_and_at_least_20_ids():
    covered = {c[0] for c in CASES}
    assert len(covered) >= 20
    assert {"count:person_names", "ratio:overlap", "ratio:sentence_words", "count:pronouns",
            "sentence:keyword", "count:keywords_multiple", "words:keywords_specific_position",
            "words:words_position", "repeat:repeat_span", "format:title_case",
            "format:quote_unquote"} <= covered


def test_blank_responses_fail_and_loose_drops_a_first_line():
    assert ib.follow_instructions("  \n", ["format:sub-bullets"], [{}]) == [False]
    answer = "Sure, here it is:\n" + REPEAT_SIMPLE
    assert ib.follow_instructions(answer, ["repeat:repeat_simple"], [{}], loose=False) == [False]
    assert ib.follow_instructions(answer, ["repeat:repeat_simple"], [{}], loose=True) == [True]


def test_bad_kwargs_and_unknown_ids_raise():
    with pytest.raises(ib.ConstraintError):
        ib.check_instruction("count:numbers", "1 2", {})
    with pytest.raises(ib.ConstraintError):
        ib.check_instruction("count:numbers", "1 2", {"N": 2, "word": "x"})
    with pytest.raises(ib.ConstraintError):
        ib.check_instruction("no:such_id", "text", {})


def test_unavailable_ids_raise_never_score():
    missing = ib.unavailable()
    if not missing:
        pytest.skip("every optional resource is installed")
    iid = next(iter(missing))
    with pytest.raises(ib.InstructionUnavailable):
        ib.follow_instructions("Hello 🙂. Go now.", [iid], [{}], loose=True)
    assert ib.unscorable_reason([iid, "count:numbers"]).startswith(iid)
    assert ib.unscorable_reason(["count:numbers"]) is None


def test_tokenisers_are_nltks():
    assert ib.sentences("Mr. Smith went home. He slept.") == ["Mr. Smith went home.", "He slept."]
    assert ib.word_tokens("Don't go, Mr. Smith.") == ["Do", "n't", "go", ",", "Mr.", "Smith", "."]


@pytest.fixture(scope="module")
def packaged():
    return list(load_benchmark("ifbench"))


def test_every_packaged_id_is_registered_or_listed_unavailable(packaged):
    ids = {iid for row in packaged for iid in row["instruction_id_list"]}
    assert len(packaged) == 300 and len(ids) == 58
    assert ids == set(ib.IFBENCH_INSTRUCTIONS)
    assert set(ib.unavailable()) <= set(ib.IFBENCH_INSTRUCTIONS)


def test_all_packaged_kwargs_are_accepted(packaged):
    for row in packaged:
        for iid, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            kwargs = json.loads(kw)
            if iid in ib.unavailable():
                with pytest.raises(ib.InstructionUnavailable):
                    ib.check_instruction(iid, "A dummy reply. Another one!", kwargs)
                continue
            for reply in ("A dummy reply. Another one!", row["prompt"], "x"):
                assert ib.follow_instructions(reply, [iid], [kwargs], loose=True)[0] in (True, False)


def test_repeat_span_kwargs_are_word_indices_in_the_packaged_prompts(packaged):
    spans = [(row, json.loads(kw)) for row in packaged
             for iid, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True)
             if iid == "repeat:repeat_span"]
    assert spans and all("word indices" in row["prompt"] for row, _ in spans)
    row, kw = next((r, k) for r, k in spans if k["n_start"] == 3 and k["n_end"] == 6)
    assert ib.check_instruction("repeat:repeat_span", "code and theory behind", kw)


def test_ifbench_runs_end_to_end(tmp_path):
    result = suite.run_benchmark(Scripted(lambda p: "A short reply, and nothing more."), "ifbench",
                                 BenchmarkParams(limit=5), tmp_path)
    items = [json.loads(line) for line in (tmp_path / "ifbench" / "items.jsonl").read_text().splitlines()]
    assert result["n"] + result["skipped"] == 5 and len(items) == result["n"]
    assert result["metric"].startswith("prompt-level loose accuracy")
    for item in items:
        assert {"id", "output", "finished", "score", "prompt_strict", "inst_loose",
                "inst_strict"} <= set(item)
    for key in ("score", "ci95_low", "ci95_high", "prompt_strict", "inst_loose", "inst_strict"):
        assert not math.isnan(result[key])
    assert result["prompt_strict"] <= result["score"] and "ifbench" not in suite.NOT_RUN


def test_ifbench_skips_and_counts_unscorable_prompts(tmp_path, monkeypatch):
    monkeypatch.setattr(ib, "unavailable", lambda: {"count:keywords_multiple": "needs a thing"})
    generator = Scripted(lambda p: "and but or")
    result = suite.run_benchmark(generator, "ifbench", BenchmarkParams(limit=7), tmp_path)
    assert result["skipped"] == 5 and result["n"] == 2 and generator.calls == 2
    assert "5 prompts skipped" in result["metric"]
    assert "count:keywords_multiple needs a thing" in result["metric"]
    empty = suite.run_benchmark(generator, "ifbench", BenchmarkParams(limit=3), tmp_path / "none")
    assert empty["n"] == 0 and empty["skipped"] == 3 and math.isnan(empty["score"])


@pytest.mark.parametrize(("iid", "good", "bad"), [
    ("format:emoji", "Hello 🙂. Bye 🙂.", "Hello. Bye 🙂."),
    ("words:odd_even_syllables", "cat table cat table", "cat dog"),  # syllables 1 2 1 2 vs 1 1
])
def test_optional_checkers_when_their_resource_is_installed(iid, good, bad):
    if iid in ib.unavailable():
        pytest.skip(ib.unavailable()[iid])
    assert ib.check_instruction(iid, good, {}) is True
    assert ib.check_instruction(iid, bad, {}) is False
