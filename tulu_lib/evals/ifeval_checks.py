"""Instruction-constraint checkers shared by the IF RLVR reward and the IFEval metric.

The 25 functions below are the verifiable instruction constraints of Tülu 3's RLVR data
(``allenai/RLVR-GSM-MATH-IF-Mixed-Constraints``, ``dataset == "ifeval"``). Their names and
keyword arguments are those of the dataset's ``ground_truth`` JSON, and their semantics follow
open-instruct's ``open_instruct/if_functions.py`` (the ``IFEvalVerifierOld`` reward). The IFEval
benchmark (Google's ``instruction_id_list`` + ``kwargs`` rows) is scored by
:func:`follow_instructions`, which translates each IFEval instruction onto the SAME function, so
the training reward and the eval metric are one definition.

Where open-instruct would crash, accept a degenerate answer (an empty title, an empty second
response) or make an IFEval instruction unscorable with IFEval's own kwargs (a lower-cased first
word, the ``***`` divider, ``less than`` relations, fenced JSON), the function says so in its
docstring; everything else matches open-instruct, not Google's checkers (e.g. forbidden words are
case-insensitive substrings, letters are counted case-sensitively, no nltk tokenizer is used).

Usage::

    check_constraint("verify_keyword_frequency", text, {"word": "cat", "N": 2})
    follow_instructions(text, ["punctuation:no_comma"], [{}], prompt, loose=True)  # -> [True]
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import langdetect
from langdetect.lang_detect_exception import LangDetectException

langdetect.DetectorFactory.seed = 0  # langdetect is randomised; a fixed seed makes it repeatable

__all__ = [
    "IFEVAL_INSTRUCTIONS",
    "IF_FUNCTIONS",
    "QUANTIFIERS",
    "ConstraintError",
    "check_constraint",
    "follow_instructions",
]


class ConstraintError(ValueError):
    """A constraint spec (function name, IFEval instruction id or kwargs) is malformed."""


QUANTIFIERS = ("at least", "at most", "around", "less than")
"""Count relations: the dataset's three, plus IFEval's ``less than``."""


def _compare(count: int, n: int, quantifier: str | None, tolerance: int) -> bool:
    """``count`` against ``n``; ``None`` means exactly, ``around`` means within ``tolerance``."""
    if quantifier is None:
        return count == n
    if quantifier == "at least":
        return count >= n
    if quantifier == "at most":
        return count <= n
    if quantifier == "less than":
        return count < n
    return abs(count - n) <= tolerance  # "around": _as_quantifier admits nothing else


def _ten_percent(n: int) -> int:
    return max(round(n * 0.1), 1)


# --- keywords ---------------------------------------------------------------------------------

def verify_keywords(text: str, keyword_list: list[str]) -> bool:
    """Every keyword occurs in the text (case-insensitive substring)."""
    lower = text.lower()
    return all(k.lower() in lower for k in keyword_list)


def verify_keyword_frequency(text: str, word: str, N: int, quantifier: str | None = None) -> bool:
    """``word`` occurs as a whole word (case-insensitive) exactly ``N`` times.

    For single words this is open-instruct's count of ``\\b\\w+\\b`` tokens equal to ``word``; a
    multi-word phrase is counted as a whole phrase. ``quantifier`` (IFEval's ``relation``) turns
    the exact count into a bound.
    """
    pattern = r"(?<!\w)" + re.escape(word.strip()) + r"(?!\w)"
    count = len(re.findall(pattern, text, flags=re.IGNORECASE))
    return _compare(count, N, quantifier, _ten_percent(N))


def validate_forbidden_words(text: str, forbidden_words: list[str]) -> bool:
    """None of the words occurs in the text (case-insensitive substring, as open-instruct)."""
    lower = text.lower()
    return not any(w.lower() in lower for w in forbidden_words)


def verify_letter_frequency(text: str, letter: str, N: int, quantifier: str | None = None) -> bool:
    """``letter`` occurs exactly ``N`` times, counted case-sensitively (open-instruct).

    ``quantifier`` (IFEval's ``let_relation``) turns the exact count into a bound.
    """
    return _compare(text.count(letter), N, quantifier, _ten_percent(N))


# --- language ---------------------------------------------------------------------------------

def validate_response_language(text: str, language: str) -> bool:
    """langdetect (seed 0) detects ``language`` (ISO 639-1, e.g. ``en``).

    A regional result matches its base code (langdetect says ``zh-cn``, IFEval asks for ``zh``).
    Text with no detectable features fails (open-instruct crashes; IFEval counts it as followed).
    """
    try:
        detected = langdetect.detect(text)
    except LangDetectException:
        return False
    return detected == language or detected.split("-")[0] == language


# --- length -----------------------------------------------------------------------------------

def verify_paragraph_count(text: str, N: int, divider: str = "* * *") -> bool:
    """Exactly ``N`` non-empty paragraphs separated by the markdown divider ``* * *``.

    As open-instruct: lines are stripped and any empty piece fails. IFEval's prompts use the
    ``***`` divider, which :func:`follow_instructions` passes as ``divider``.
    """
    cleaned = "\n".join(line.strip() for line in text.splitlines()).strip()
    pieces = cleaned.split(divider)
    return all(p.strip() for p in pieces) and len(pieces) == N


def validate_word_constraint(text: str, N: int, quantifier: str) -> bool:
    """Whitespace-separated word count against ``N`` (``around``: within 10%, at least 1)."""
    return _compare(len(text.split()), N, quantifier, _ten_percent(N))


_SENTENCE_END = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=[.?!])\s+")
"""Open-instruct's sentence splitter: break on whitespace after ``.``, ``?`` or ``!``, except after
an abbreviation like ``e.g.`` or ``Mr.`` (no nltk punkt data is needed)."""


def verify_sentence_constraint(text: str, N: int, quantifier: str) -> bool:
    """Sentence count (:data:`_SENTENCE_END` pieces of the stripped text) against ``N`` (``around``: ±1)."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    return _compare(len(sentences), N, quantifier, 1)


def validate_paragraphs(text: str, N: int, first_word: str, i: int) -> bool:
    """``N`` paragraphs split on ``\\n\\n``; paragraph ``i`` (1-based) starts with ``first_word``.

    As open-instruct, but the text is stripped first, an ``i`` beyond the paragraphs fails instead
    of raising, and the first word is compared case-insensitively (IFEval lower-cases it).
    """
    paragraphs = text.strip().split("\n\n")
    if len(paragraphs) != N or i > len(paragraphs):
        return False
    return paragraphs[i - 1].strip().lower().startswith(first_word.strip().lower())


# --- detectable content -----------------------------------------------------------------------

def verify_postscript(text: str, postscript_marker: str) -> bool:
    """The marker (e.g. ``P.S.``) occurs and some text follows it."""
    marker = postscript_marker.strip()
    at = text.find(marker)
    return at >= 0 and len(text[at:].strip()) > len(marker)


def validate_placeholders(text: str, N: int) -> bool:
    """At least ``N`` square-bracket placeholders such as ``[address]``."""
    return len(re.findall(r"\[.*?\]", text)) >= N


# --- detectable format ------------------------------------------------------------------------

def verify_bullet_points(text: str, N: int) -> bool:
    """Exactly ``N`` markdown bullet lines (``* item`` or ``- item``).

    A line starting with ``**`` (bold text) is not a bullet: IFEval's rule, where open-instruct
    would count every bold heading.
    """
    stars = re.findall(r"^\s*\*[^*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == N


def validate_title(text: str) -> bool:
    """A title in double angular brackets, like ``<<poem of joy>>`` (an empty one does not count)."""
    return any(t.strip() for t in re.findall(r"<<(.*?)>>", text))


def validate_choice(text: str, options: list[str]) -> bool:
    """The text contains one of the options verbatim."""
    return any(option in text for option in options)


def validate_highlighted_sections(text: str, N: int) -> bool:
    """At least ``N`` non-empty ``*highlighted*`` (or ``**bold**``) spans on one line.

    Counted as IFEval does; open-instruct's ``\\*(.*?)\\*`` would count ``**bold**`` as two empty
    highlights.
    """
    single = [h for h in re.findall(r"\*[^\n*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", text) if h[2:-2].strip()]
    return len(single) + len(double) >= N


def validate_sections(text: str, N: int, section_splitter: str) -> bool:
    """At least ``N`` numbered section headers like ``Section 1`` / ``SECTION 2`` (any case)."""
    pattern = r"\s?" + re.escape(section_splitter.strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, text, flags=re.IGNORECASE)) - 1 >= N


def validate_json_format(text: str) -> bool:
    """The whole text parses as JSON, allowing a markdown ```json fence (IFEval's prompt offers one)."""
    body = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if body.startswith(fence):
            body = body[len(fence):]
            break
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


# --- combination ------------------------------------------------------------------------------

def validate_repeat_prompt(text: str, original_prompt: str) -> bool:
    """The text starts with the request repeated verbatim (case-sensitive; outer whitespace ignored)."""
    return text.lstrip().startswith(original_prompt.strip())


def validate_two_responses(text: str) -> bool:
    """Two different, non-empty responses separated by exactly one ``******``."""
    if text.count("******") != 1:
        return False
    first, second = (part.strip() for part in text.split("******"))
    return bool(first) and bool(second) and first != second


# --- change case ------------------------------------------------------------------------------

def validate_uppercase(text: str) -> bool:
    """No lower-case letters (the text equals its upper-cased self)."""
    return text == text.upper()


def validate_lowercase(text: str) -> bool:
    """No capital letters (the text equals its lower-cased self)."""
    return text == text.lower()


def validate_frequency_capital_words(text: str, N: int, quantifier: str) -> bool:
    """Count of all-capital words (``\\b[A-Z]+\\b``) against ``N`` (``around``: within 10%, at least 1)."""
    return _compare(len(re.findall(r"\b[A-Z]+\b", text)), N, quantifier, _ten_percent(N))


# --- start / end, punctuation -----------------------------------------------------------------

def validate_end(text: str, end_phrase: str) -> bool:
    """The text ends with ``end_phrase`` (case-sensitive).

    Trailing whitespace is ignored, and so is one closing ``"``, so that the phrase can end a
    quoted response (IFEval rows may combine this with ``startend:quotation``).
    """
    body = text.rstrip()
    return body.endswith(end_phrase) or body.removesuffix('"').rstrip().endswith(end_phrase)


def validate_quotation(text: str) -> bool:
    """The text (stripped) is wrapped in double quotation marks."""
    body = text.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


def validate_no_commas(text: str) -> bool:
    """No comma anywhere."""
    return "," not in text


IF_FUNCTIONS: dict[str, Callable[..., bool]] = {
    f.__name__: f
    for f in (
        verify_keywords, verify_keyword_frequency, validate_forbidden_words,
        verify_letter_frequency, validate_response_language, verify_paragraph_count,
        validate_word_constraint, verify_sentence_constraint, validate_paragraphs,
        verify_postscript, validate_placeholders, verify_bullet_points, validate_title,
        validate_choice, validate_highlighted_sections, validate_sections, validate_json_format,
        validate_repeat_prompt, validate_two_responses, validate_uppercase, validate_lowercase,
        validate_frequency_capital_words, validate_end, validate_quotation, validate_no_commas,
    )
}
"""The 25 RLVR constraint functions by their dataset ``func_name``."""


# --- argument checking ------------------------------------------------------------------------

def _as_count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _as_index(value: Any) -> int:
    value = _as_count(value)
    if value < 1:
        raise ValueError(f"expected a 1-based index, got {value!r}")
    return value


def _as_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _as_letter(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"expected a single character, got {value!r}")
    return value


def _as_words(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise ValueError(f"expected a non-empty list of strings, got {value!r}")
    return list(value)


def _as_options(value: Any) -> list[str]:
    """A list of options, or a string holding a Python/JSON list or tuple, else comma-separated."""
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = [part.strip() for part in value.split(",") if part.strip()]
        value = parsed
    return _as_words(value)


def _as_quantifier(value: Any) -> str:
    if value not in QUANTIFIERS:
        raise ValueError(f"expected one of {', '.join(map(repr, QUANTIFIERS))}, got {value!r}")
    return value


_KWARG_TYPES: dict[str, Callable[[Any], Any]] = {
    "N": _as_count, "i": _as_index, "quantifier": _as_quantifier,
    "keyword_list": _as_words, "forbidden_words": _as_words, "options": _as_options,
    "word": _as_text, "letter": _as_letter, "language": _as_text, "first_word": _as_text,
    "postscript_marker": _as_text, "section_splitter": _as_text, "original_prompt": _as_text,
    "end_phrase": _as_text, "divider": _as_text,
}


def _bind(func_name: str, kwargs: Mapping[str, Any]) -> tuple[Callable[..., bool], dict[str, Any]]:
    """The function and its checked kwargs; JSON nulls mean "unused" and are dropped."""
    func = IF_FUNCTIONS.get(func_name)
    if func is None:
        raise ConstraintError(f"unknown func_name {func_name!r}")
    params = list(inspect.signature(func).parameters.values())[1:]  # skip `text`
    given = {k: v for k, v in kwargs.items() if v is not None}
    unexpected = sorted(set(given) - {p.name for p in params})
    if unexpected:
        raise ConstraintError(f"func {func_name!r} got unexpected kwarg(s) {unexpected}")
    bound = {}
    for p in params:
        if p.name not in given:
            if p.default is inspect.Parameter.empty:
                raise ConstraintError(f"func {func_name!r} is missing required kwarg {p.name!r}")
            continue
        try:
            bound[p.name] = _KWARG_TYPES[p.name](given[p.name])
        except ValueError as e:
            raise ConstraintError(f"func {func_name!r} kwarg {p.name!r}: {e}") from None
    return func, bound


def check_constraint(func_name: str, response: str, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``response`` satisfies the named constraint; a blank response never does.

    Raises :class:`ConstraintError` for an unknown ``func_name``, a missing required kwarg, an
    unexpected non-null kwarg or a badly typed value.
    """
    func, bound = _bind(func_name, kwargs)
    return bool(response.strip()) and func(response, **bound)


# --- the IFEval benchmark ---------------------------------------------------------------------

_IFEVAL_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

IFEVAL_INSTRUCTIONS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "keywords:existence": ("verify_keywords", {"keywords": "keyword_list"}, {}),
    "keywords:frequency": (
        "verify_keyword_frequency", {"keyword": "word", "frequency": "N", "relation": "quantifier"}, {}),
    "keywords:forbidden_words": ("validate_forbidden_words", {"forbidden_words": "forbidden_words"}, {}),
    "keywords:letter_frequency": (
        "verify_letter_frequency",
        {"letter": "letter", "let_frequency": "N", "let_relation": "quantifier"}, {}),
    "language:response_language": ("validate_response_language", {"language": "language"}, {}),
    "length_constraints:number_sentences": (
        "verify_sentence_constraint", {"num_sentences": "N", "relation": "quantifier"}, {}),
    "length_constraints:number_paragraphs": (
        "verify_paragraph_count", {"num_paragraphs": "N"}, {"divider": "***"}),
    "length_constraints:number_words": (
        "validate_word_constraint", {"num_words": "N", "relation": "quantifier"}, {}),
    "length_constraints:nth_paragraph_first_word": (
        "validate_paragraphs",
        {"num_paragraphs": "N", "nth_paragraph": "i", "first_word": "first_word"}, {}),
    "detectable_content:number_placeholders": ("validate_placeholders", {"num_placeholders": "N"}, {}),
    "detectable_content:postscript": ("verify_postscript", {"postscript_marker": "postscript_marker"}, {}),
    "detectable_format:number_bullet_lists": ("verify_bullet_points", {"num_bullets": "N"}, {}),
    "detectable_format:constrained_response": ("validate_choice", {}, {"options": list(_IFEVAL_OPTIONS)}),
    "detectable_format:number_highlighted_sections": (
        "validate_highlighted_sections", {"num_highlights": "N"}, {}),
    "detectable_format:multiple_sections": (
        "validate_sections", {"section_spliter": "section_splitter", "num_sections": "N"}, {}),
    "detectable_format:json_format": ("validate_json_format", {}, {}),
    "detectable_format:title": ("validate_title", {}, {}),
    "combination:two_responses": ("validate_two_responses", {}, {}),
    "combination:repeat_prompt": ("validate_repeat_prompt", {"prompt_to_repeat": "original_prompt"}, {}),
    "change_case:english_capital": ("validate_uppercase", {}, {}),
    "change_case:english_lowercase": ("validate_lowercase", {}, {}),
    "change_case:capital_word_frequency": (
        "validate_frequency_capital_words",
        {"capital_frequency": "N", "capital_relation": "quantifier"}, {}),
    "startend:end_checker": ("validate_end", {"end_phrase": "end_phrase"}, {}),
    "startend:quotation": ("validate_quotation", {}, {}),
    "punctuation:no_comma": ("validate_no_commas", {}, {}),
}
"""IFEval instruction id -> (our function, IFEval kwarg name -> our kwarg name, fixed kwargs)."""


def _translate(instruction_id: str, ifeval_kwargs: Mapping[str, Any] | None, prompt: str) -> tuple[str, dict]:
    if instruction_id not in IFEVAL_INSTRUCTIONS:
        raise ConstraintError(
            f"unknown IFEval instruction id {instruction_id!r}; known: {sorted(IFEVAL_INSTRUCTIONS)}")
    func_name, renames, fixed = IFEVAL_INSTRUCTIONS[instruction_id]
    given = {k: v for k, v in (ifeval_kwargs or {}).items() if v is not None}
    unexpected = sorted(set(given) - set(renames))
    if unexpected:
        raise ConstraintError(f"IFEval instruction {instruction_id!r} got unexpected kwarg(s) {unexpected}")
    kwargs = {renames[k]: v for k, v in given.items()} | fixed
    if func_name == "validate_repeat_prompt":
        kwargs.setdefault("original_prompt", prompt)
    return func_name, kwargs


def _loose_variants(response: str) -> list[str]:
    """IFEval's loose responses: as is, minus first line, last line or both; each also without ``*``."""
    lines = response.split("\n")
    cut = [response] + ["\n".join(part).strip() for part in (lines[1:], lines[:-1], lines[1:-1])]
    return cut + [r.replace("*", "") for r in cut]


def follow_instructions(
    response: str,
    instruction_id_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any] | None],
    prompt: str,
    *,
    loose: bool = False,
) -> list[bool]:
    """IFEval per-instruction results for one row, scored by the RLVR checkers.

    ``kwargs_list`` holds IFEval's kwargs per instruction (None values mean unused); ``prompt`` is
    the row's prompt, used for ``combination:repeat_prompt`` when ``prompt_to_repeat`` is absent.
    ``loose=True`` passes an instruction if any of IFEval's loose variants of the response does
    (lm-eval ``test_instruction_following_loose``). Unknown ids or bad kwargs raise
    :class:`ConstraintError`.
    """
    if len(instruction_id_list) != len(kwargs_list):
        raise ConstraintError(
            f"{len(instruction_id_list)} instruction ids but {len(kwargs_list)} kwargs dicts")
    variants = _loose_variants(response) if loose else [response]
    results = []
    for instruction_id, ifeval_kwargs in zip(instruction_id_list, kwargs_list, strict=True):
        func_name, kwargs = _translate(instruction_id, ifeval_kwargs, prompt)
        try:
            results.append(any(check_constraint(func_name, r, kwargs) for r in variants))
        except ConstraintError as e:
            raise ConstraintError(f"IFEval instruction {instruction_id!r}: {e}") from None
    return results


# --- the release's functions, quirks included ---------------------------------------------------
# Each ``_oi_*`` mirrors the function of the same name in open-instruct 9b39f557
# ``open_instruct/if_functions.py`` (``IF_FUNCTIONS_MAP``), behaviour for behaviour: no blank-reply
# check, no argument coercion, the release's exceptions and return values (a tuple from
# ``validate_placeholders``). Used by ``rewards.verify(..., rules="open_instruct")``.

def _oi_verify_keywords(text, keyword_list):
    """if_functions.py:verify_keywords — every keyword is a case-insensitive substring."""
    return all(k.lower() in text.lower() for k in keyword_list)


def _oi_verify_keyword_frequency(text, word, N):
    """if_functions.py:verify_keyword_frequency — exactly N ``\\b\\w+\\b`` words equal ``word``
    (lower-cased); no quantifier argument."""
    return sum(w == word.lower() for w in re.findall(r"\b\w+\b", text.lower())) == N


def _oi_validate_forbidden_words(text, forbidden_words):
    """if_functions.py:validate_forbidden_words — no word is a case-insensitive substring."""
    return not [w for w in forbidden_words if w.lower() in text.lower()]


def _oi_verify_letter_frequency(text, letter, N):
    """if_functions.py:verify_letter_frequency — case-sensitive count == N; ValueError unless
    ``letter`` is one character."""
    if len(letter) != 1:
        raise ValueError("Letter parameter must be a single character")
    return text.count(letter) == N


def _oi_validate_response_language(text, language):
    """if_functions.py:validate_response_language — ``langdetect.detect(text) == language``
    (raises on text without letters, as the release does)."""
    return langdetect.detect(text) == language


def _oi_verify_paragraph_count(text, N):
    """if_functions.py:verify_paragraph_count — lines stripped, split on ``* * *``, every part
    non-blank and exactly N parts."""
    cleaned = "\n".join(line.strip() for line in text.splitlines()).strip()
    parts = cleaned.split("* * *")
    return all(p.strip() for p in parts) and len(parts) == N


def _oi_validate_word_constraint(text, N, quantifier):
    """if_functions.py:validate_word_constraint — whitespace words; around = within
    max(round(N/10), 1); an unknown quantifier is False."""
    count = len(text.strip().split())
    tolerance = max(round(N * 0.1), 1)
    return {"at least": count >= N, "at most": count <= N,
            "around": abs(count - N) <= tolerance}.get(quantifier, False)


def _oi_verify_sentence_constraint(text, N, quantifier):
    """if_functions.py:verify_sentence_constraint — split after ``.``/``?`` + one whitespace
    (``!`` does not end a sentence); around = within 1."""
    count = len(re.split(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s", text))
    return {"at least": count >= N, "around": abs(count - N) <= 1,
            "at most": count <= N}.get(quantifier, False)


def _oi_validate_paragraphs(text, N, first_word, i):
    """if_functions.py:validate_paragraphs — exactly N ``\\n\\n`` parts and part ``i - 1``
    (Python indexing: i=0 is the last part) starts with ``first_word`` (case-sensitive)."""
    paragraphs = text.split("\n\n")
    return len(paragraphs) == N and paragraphs[i - 1].strip().startswith(first_word)


def _oi_verify_postscript(text, postscript_marker):
    """if_functions.py:verify_postscript — the marker occurs and something follows it."""
    if postscript_marker not in text:
        return False
    return len(text[text.find(postscript_marker):].strip()) > len(postscript_marker)


def _oi_validate_placeholders(text, N):
    """if_functions.py:validate_placeholders — returns the tuple ``(enough, placeholders)``;
    a non-empty tuple is truthy, so the release rewards every reply."""
    placeholders = re.findall(r"\[(.*?)\]", text)
    return len(placeholders) >= N, placeholders


def _oi_verify_bullet_points(text, N):
    """if_functions.py:verify_bullet_points — exactly N lines starting (after strip) with * or -."""
    return sum(line.strip().startswith(("*", "-")) for line in text.split("\n")) == N


def _oi_validate_title(text):
    """if_functions.py:validate_title — some ``<<...>>`` (an empty one counts)."""
    return bool(re.findall(r"<<(.*?)>>", text))


def _oi_validate_choice(text, options):
    """if_functions.py:validate_choice — the REPLY is a substring of some option (not the
    option of the reply): "My answer is yes." passes, "Yes. My answer is yes." fails."""
    return any(text in option for option in options)


def _oi_validate_highlighted_sections(text, N):
    """if_functions.py:validate_highlighted_sections — at least N ``\\*(.*?)\\*`` matches."""
    return len(re.findall(r"\*(.*?)\*", text)) >= N


def _oi_validate_sections(text, N, section_splitter):
    """if_functions.py:validate_sections — split on the splitter, a leading empty part dropped,
    exactly N parts."""
    sections = text.split(section_splitter)
    if sections[0] == "":
        sections.pop(0)
    return len(sections) == N


def _oi_validate_json_format(text):
    """if_functions.py:validate_json_format — ``json.loads`` succeeds (no fences stripped)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _oi_validate_repeat_prompt(text, original_prompt):
    """if_functions.py:validate_repeat_prompt — the reply starts with the prompt."""
    return text.startswith(original_prompt)


def _oi_validate_two_responses(text):
    """if_functions.py:validate_two_responses — one ``******`` and the stripped halves differ."""
    if text.count("******") != 1:
        return False
    first, second = text.split("******")
    return first.strip() != second.strip()


def _oi_validate_uppercase(text):
    """if_functions.py:validate_uppercase — ``text == text.upper()``."""
    return text == text.upper()


def _oi_validate_lowercase(text):
    """if_functions.py:validate_lowercase — ``text == text.lower()``."""
    return text == text.lower()


def _oi_validate_frequency_capital_words(text, N, quantifier):
    """if_functions.py:validate_frequency_capital_words — ``\\b[A-Z]+\\b`` words; around means
    exactly N."""
    count = len(re.findall(r"\b[A-Z]+\b", text))
    return {"at least": count >= N, "around": count == N,
            "at most": count <= N}.get(quantifier, False)


def _oi_validate_end(text, end_phrase):
    """if_functions.py:validate_end — ``text.endswith(end_phrase)``."""
    return text.endswith(end_phrase)


def _oi_validate_quotation(text):
    """if_functions.py:validate_quotation — starts and ends with ``"`` (a lone ``"`` passes)."""
    return text.startswith('"') and text.endswith('"')


def _oi_validate_no_commas(text):
    """if_functions.py:validate_no_commas — no ``,``."""
    return "," not in text


RELEASE_IF_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name.removeprefix("_oi_"): f for name, f in list(globals().items()) if name.startswith("_oi_")
}
"""open-instruct's ``IF_FUNCTIONS_MAP`` (9b39f557): the same 25 names, the release's behaviour."""


def check_constraint_release(func_name: str, response: str, kwargs: Mapping[str, Any]) -> Any:
    """The release's result for one constraint (ground_truth_utils.py:verify_ifeval_sample).

    None-valued kwargs are dropped and the rest passed as they are; the raw return value comes
    back (a tuple from ``validate_placeholders``). An unknown ``func_name`` or kwargs the function
    does not take (the release: KeyError / TypeError) raise :class:`ConstraintError`; an exception
    raised while checking the reply itself propagates as in the release.
    """
    func = RELEASE_IF_FUNCTIONS.get(func_name)
    if func is None:
        raise ConstraintError(f"unknown constraint {func_name!r}; known: {sorted(RELEASE_IF_FUNCTIONS)}")
    given = {k: v for k, v in kwargs.items() if v is not None}
    try:
        inspect.signature(func).bind(response, **given)
    except TypeError as e:
        raise ConstraintError(f"{func_name}: {e}") from None
    return func(response, **given)
