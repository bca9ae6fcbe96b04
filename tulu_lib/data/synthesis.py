"""Persona-driven prompt synthesis (paper §3.1 and Appendix: math, code, precise instruction following).

Tülu 3 made new prompts by conditioning an LLM on a persona ("A retired civil engineer who
...") and asking for a problem that persona would pose, one template per skill. This module
does the same through any :class:`~tulu_lib.generation.backends.Generator` (hf, vllm, openai):

* :func:`load_personas` — the packaged list (``resources/personas.txt``, written for this
  project) or a hub persona set (``proj-persona/PersonaHub``, config ``persona``, column
  ``persona``);
* :data:`TEMPLATES` — one prompt-writing template per domain (``math``, ``code``,
  ``precise_if``), in the paper's style: the persona, the rules, and a fixed answer prefix
  ("Math problem:", "Coding problem:", "User instruction:");
* :data:`CONSTRAINTS` — every IFEval instruction that :mod:`tulu_lib.evals.ifeval_checks` implements
  (25), each with its instruction text and a seeded draw of its arguments. A precise-IF prompt
  is the persona's instruction with one constraint sentence appended verbatim, and carries the
  constraint as ``ground_truth`` in the RLVR row format (``{"func_name": ..., **kwargs}``, what
  ``standin:rlvr``'s ``if_constraints`` rows and :func:`tulu_lib.evals.verifiers.verify` use), so the
  same rows feed RLVR (:func:`rlvr_rows`). The constraint is appended by code rather than left
  to the writer model so that the ground truth is exactly what the prompt asks;
* :func:`parse_prompt` / :func:`synthesize_prompts` — the writer's output cut to the prompt
  (prefix stripped, any solution cut off) and dropped, counted by reason, when empty, too
  short, too long, a refusal or a duplicate; a request the backend failed (an empty completion
  list) is counted as failed;
* :func:`respond` — prompts to SFT rows (``id, messages, source``) through any generator.

The preference pipeline over these prompts is :mod:`tulu_lib.data.preferences`.

Usage::

    personas = load_personas("builtin", n=16, seed=123)
    synth = synthesize_prompts(writer, personas, ["math", "code", "precise_if"], per_domain=8,
                               sampling=SamplingParams(max_new_tokens=128, temperature=0.7), seed=123)
    synth.prompts[0]["messages"], synth.counts          # counts: generated, parsed, dropped: <why>
    rlvr = rlvr_rows(synth.prompts)                     # precise-IF prompts as RLVR rows
    tulu-repro synthesize --params params/cpu.yaml --out synth/   # prompts + preference pairs
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tulu_lib.data import loader
from tulu_lib.data.loader import clean_rows
from tulu_lib.evals.ifeval_checks import IFEVAL_INSTRUCTIONS
from tulu_lib.generation.types import Generator, SamplingParams

DOMAINS = ("math", "code", "precise_if")
PERSONAS_FILE = Path(__file__).with_name("resources") / "personas.txt"
HUB_PERSONA_CONFIG = "persona"  # proj-persona/PersonaHub's config of bare personas

# ------------------------------------------------------------------------------ personas


def builtin_personas() -> list[str]:
    """The packaged personas (one a line, ``#`` comments skipped)."""
    lines = PERSONAS_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def load_personas(source: str = "builtin", n: int | None = None, seed: int = 0, *,
                  config: str | None = HUB_PERSONA_CONFIG, split: str = "train") -> list[str]:
    """``n`` personas (all when None) in a seeded order, without repeats.

    ``source``: ``builtin`` (the packaged list), a local ``.txt`` file (one persona a line) or a
    hub id loaded with ``datasets.load_dataset(source, config)`` whose ``persona`` column (or
    PersonaHub's ``input persona``) holds the personas. Without network the hub case is a
    RuntimeError naming the id and the offline alternative.
    """
    if source == "builtin":
        personas = builtin_personas()
    elif source.endswith(".txt") and Path(source).expanduser().is_file():
        text = Path(source).expanduser().read_text(encoding="utf-8")
        personas = [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]
    else:
        personas = _hub_personas(source, config, split, n, seed)
    personas = list(dict.fromkeys(personas))  # drop repeats, keep order
    random.Random(seed).shuffle(personas)
    if not personas:
        raise ValueError(f"personas from {source!r}: none found")
    return personas if n is None else personas[:n]


def _hub_personas(source: str, config: str | None, split: str, n: int | None, seed: int) -> list[str]:
    import datasets

    try:
        ds = datasets.load_dataset(source, config, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, missing config: one clear message
        raise RuntimeError(
            f"personas: could not load {source!r} (config {config!r}, split {split!r}) from the hub: "
            f"{type(exc).__name__}: {str(exc)[:200]}. Offline (HF_HUB_OFFLINE=1) only a cached copy "
            "loads; use synthesis.personas: builtin (the packaged list) or a local .txt file") from None
    column = next((c for c in ("persona", "input persona") if c in ds.column_names), None)
    if column is None:
        raise ValueError(f"personas: {source!r} has no 'persona' column; columns: {ds.column_names}")
    if n is not None and len(ds) > 4 * n:  # draw a sample instead of reading 200k rows
        ds = ds.shuffle(seed=seed).select(range(4 * n))
    return [str(p).strip() for p in ds[column] if str(p).strip()]


# ------------------------------------------------------------------------------ templates

PREFIXES = {"math": "Math problem:", "code": "Coding problem:", "precise_if": "User instruction:"}

TEMPLATES = {
    "math": (
        "Create a math problem related to the following persona:\n\n{persona}\n\n"
        "Note:\n"
        "1. The problem should be challenging and call for real mathematical skill and knowledge.\n"
        "2. Make full use of the persona's description, so that the problem is unique and specific "
        "to this persona.\n"
        "3. Your response should always start with \"Math problem:\". Do not include a solution.\n"
        "4. The problem should have no more than 2 sub-problems."),
    "code": (
        "Create a coding problem related to the following persona:\n\n{persona}\n\n"
        "Note:\n"
        "1. The problem should ask for a Python function or a short program, and say clearly what "
        "its input and output are.\n"
        "2. Make full use of the persona's description, so that the problem is unique and specific "
        "to this persona.\n"
        "3. Your response should always start with \"Coding problem:\". Do not include a solution."),
    "precise_if": (
        "Create an instruction that the following persona might ask an AI assistant to do:\n\n{persona}\n\n"
        "An example of such an instruction: {example}\n\n"
        "Note:\n"
        "1. The example is not tied to any persona; write one that is unique and specific to the "
        "given persona.\n"
        "2. The instruction will be followed by this requirement, so it must make sense with it: "
        "{constraint}\n"
        "3. Your output should always start with \"User instruction:\". Do not answer the instruction."),
}

IF_EXAMPLES = (
    "Write a short note to my neighbours about the street party on Saturday.",
    "Explain to a new colleague how our team reviews expense reports.",
    "Describe the best way to store fresh herbs for a week.",
    "Draft a message asking my landlord to fix the heating.",
    "Summarise the pros and cons of working four days a week.",
    "Give me advice on preparing for a job interview at a museum.",
)


def writer_messages(domain: str, persona: str, constraint_text: str = "", example: str = "") -> list[dict]:
    """The chat prompt asking the writer model for one ``domain`` prompt by ``persona``."""
    if domain not in TEMPLATES:
        raise ValueError(f"unknown synthesis domain {domain!r}; choose from {', '.join(DOMAINS)}")
    text = TEMPLATES[domain].format(persona=persona, constraint=constraint_text, example=example)
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------- verifiable constraints


@dataclass(frozen=True)
class IFConstraint:
    """One IFEval instruction as a precise-IF constraint.

    ``draw(rng, request)`` gives the verifier's kwargs (``request``: the instruction it is
    appended to, for ``combination:repeat_prompt``); ``text(kwargs)`` the sentence the prompt
    carries; ``examples(kwargs)`` a reply that follows it and one that does not (the tests check
    every constraint's ground truth both ways with :func:`tulu_lib.evals.verifiers.verify`).
    """

    instruction_id: str
    text: Callable[[dict], str]
    draw: Callable[[random.Random, str], dict]
    examples: Callable[[dict], tuple[str, str]]

    @property
    def func_name(self) -> str:
        return IFEVAL_INSTRUCTIONS[self.instruction_id][0]

    def ground_truth(self, kwargs: Mapping) -> str:
        """The RLVR row's ``ground_truth``: ``{"func_name": ..., **kwargs}`` as JSON."""
        return json.dumps({"func_name": self.func_name, **kwargs})


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def _sentences(n: int) -> str:
    return " ".join(f"This is sentence number {k + 1}." for k in range(n))


_END_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.",
                "Any other questions?", "That is all you need to know.")
_KEYWORDS = ("budget", "schedule", "river", "harvest", "signal", "lantern", "compass", "ledger", "orchard",
             "timeline", "network", "journey")
_FIRST_WORDS = ("first", "however", "today", "overall", "finally", "imagine")
_LANGUAGES = {  # ISO 639-1 code -> (name, a sentence langdetect reads as it)
    "de": ("German", "Das ist eine kurze Antwort auf deine Frage, und ich hoffe, sie hilft dir weiter."),
    "fr": ("French", "Voici une courte réponse à votre question, et j'espère qu'elle vous aidera."),
    "es": ("Spanish", "Esta es una respuesta corta a tu pregunta, y espero que te ayude mucho."),
    "it": ("Italian", "Questa è una breve risposta alla tua domanda e spero che ti sia utile."),
}
_ENGLISH = "This is a short answer to your question and I hope it helps."
_CHOICES = ["My answer is yes.", "My answer is no.", "My answer is maybe."]


def _words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def _paragraphs(n: int, first: str | None = None, at: int = 0, sep: str = "\n\n") -> str:
    paras = [f"paragraph {k + 1} says something useful." for k in range(n)]
    if first is not None:
        paras[at] = f"{first} {paras[at]}"
    return sep.join(paras)


def _count_rule(quantifier: str, n: int, unit: str) -> str:
    return f"{quantifier} {n} {unit}"


CONSTRAINTS: tuple[IFConstraint, ...] = (
    IFConstraint("keywords:existence",
                 lambda k: f"Include the keywords {_quoted(k['keyword_list'])} in the response.",
                 lambda r, q: {"keyword_list": r.sample(_KEYWORDS, 2)},
                 lambda k: (f"We talked about the {' and the '.join(k['keyword_list'])}.",
                            "Nothing relevant.")),
    IFConstraint("keywords:frequency",
                 lambda k: f"In your response, the word '{k['word']}' should appear "
                           f"{_count_rule(k['quantifier'], k['N'], 'times')}.",
                 lambda r, q: {"word": r.choice(_KEYWORDS), "N": r.randint(2, 4), "quantifier": "at least"},
                 lambda k: (" ".join([k["word"]] * k["N"]) + ".", "Nothing relevant here.")),
    IFConstraint("keywords:forbidden_words",
                 lambda k: f"Do not include the words {_quoted(k['forbidden_words'])} in the response.",
                 lambda r, q: {"forbidden_words": r.sample(_KEYWORDS, 2)},
                 lambda k: ("A plain reply.", f"A reply about the {k['forbidden_words'][0]}.")),
    IFConstraint("keywords:letter_frequency",
                 lambda k: f"In your response, the letter '{k['letter']}' should appear "
                           f"{_count_rule(k['quantifier'], k['N'], 'times')}.",
                 lambda r, q: {"letter": r.choice("aeiou"), "N": r.randint(5, 12), "quantifier": "at least"},
                 lambda k: (k["letter"] * k["N"], "xyz 123")),
    IFConstraint("language:response_language",
                 lambda k: f"Your ENTIRE response should be in {_LANGUAGES[k['language']][0]}, "
                           "no other language is allowed.",
                 lambda r, q: {"language": r.choice(sorted(_LANGUAGES))},
                 lambda k: (_LANGUAGES[k["language"]][1], _ENGLISH)),
    IFConstraint("length_constraints:number_sentences",
                 lambda k: f"Your response should contain "
                           f"{_count_rule(k['quantifier'], k['N'], 'sentences')}.",
                 lambda r, q: {"N": r.randint(2, 6), "quantifier": r.choice(["at least", "at most"])},
                 lambda k: (_sentences(k["N"]),
                            _sentences(k["N"] - 1 if k["quantifier"] == "at least" else k["N"] + 2))),
    IFConstraint("length_constraints:number_paragraphs",
                 lambda k: f"There should be {k['N']} paragraphs. Paragraphs are separated with the "
                           "markdown divider: * * *",
                 lambda r, q: {"N": r.randint(2, 5)},
                 lambda k: (_paragraphs(k["N"], sep="\n* * *\n"), _paragraphs(1))),
    IFConstraint("length_constraints:number_words",
                 lambda k: f"Answer with {_count_rule(k['quantifier'], k['N'], 'words')}.",
                 lambda r, q: {"N": r.choice([50, 80, 100, 150, 200]),
                               "quantifier": r.choice(["at least", "at most"])},
                 lambda k: (_words(k["N"] if k["quantifier"] == "at least" else k["N"] // 2),
                            _words(k["N"] // 2 if k["quantifier"] == "at least" else 2 * k["N"]))),
    IFConstraint("length_constraints:nth_paragraph_first_word",
                 lambda k: f"There should be {k['N']} paragraphs. Paragraphs and only paragraphs are "
                           f"separated from each other by two new lines. Paragraph {k['i']} must start with "
                           f"the word '{k['first_word']}'.",
                 lambda r, q: (lambda n: {"N": n, "i": r.randint(1, n),
                                          "first_word": r.choice(_FIRST_WORDS)})(r.randint(2, 4)),
                 lambda k: (_paragraphs(k["N"], k["first_word"], k["i"] - 1),
                            _paragraphs(k["N"], "nothing", k["i"] - 1))),
    IFConstraint("detectable_content:number_placeholders",
                 lambda k: f"The response must contain at least {k['N']} placeholders represented by square "
                           "brackets, such as [address].",
                 lambda r, q: {"N": r.randint(1, 4)},
                 lambda k: (" ".join(f"[field {j}]" for j in range(k["N"])), "No placeholders at all.")),
    IFConstraint("detectable_content:postscript",
                 lambda k: f"At the end of your response, please explicitly add a postscript starting with "
                           f"{k['postscript_marker']}",
                 lambda r, q: {"postscript_marker": r.choice(["P.S.", "P.P.S"])},
                 lambda k: (f"The answer.\n\n{k['postscript_marker']} One more thing.", "The answer only.")),
    IFConstraint("detectable_format:number_bullet_lists",
                 lambda k: f"Your answer must contain exactly {k['N']} bullet points. Use markdown bullet "
                           "points such as:\n* This is point 1.\n* This is point 2",
                 lambda r, q: {"N": r.randint(2, 5)},
                 lambda k: ("\n".join(f"* point {j}" for j in range(k["N"])),
                            "\n".join(f"* point {j}" for j in range(k["N"] + 1)))),
    IFConstraint("detectable_format:constrained_response",
                 lambda k: f"Answer with one of the following options: {_quoted(k['options'])}",
                 lambda r, q: {"options": list(_CHOICES)},
                 lambda k: (k["options"][0], "Perhaps, who knows.")),
    IFConstraint("detectable_format:number_highlighted_sections",
                 lambda k: f"Highlight at least {k['N']} sections in your answer with markdown, i.e. "
                           "*highlighted section*.",
                 lambda r, q: {"N": r.randint(1, 4)},
                 lambda k: ("\n".join(f"*part {j}*" for j in range(k["N"])), "Nothing highlighted.")),
    IFConstraint("detectable_format:multiple_sections",
                 lambda k: f"Your response must have {k['N']} sections. Mark the beginning of each section "
                           f"with {k['section_splitter']} X, such as:\n{k['section_splitter']} 1\n"
                           f"[content of section 1]\n{k['section_splitter']} 2\n[content of section 2]",
                 lambda r, q: {"N": r.randint(2, 4), "section_splitter": r.choice(["Section", "SECTION"])},
                 lambda k: ("\n".join(f"{k['section_splitter']} {j + 1}\ncontent" for j in range(k["N"])),
                            "\n".join(f"{k['section_splitter']} {j + 1}\ncontent" for j in range(k["N"] - 1))
                            or "content")),
    IFConstraint("detectable_format:json_format",
                 lambda k: "Entire output should be wrapped in JSON format. You can use markdown ticks "
                           "such as ```.",
                 lambda r, q: {},
                 lambda k: ('{"answer": "yes"}', "plain text, not JSON")),
    IFConstraint("detectable_format:title",
                 lambda k: "Your answer must contain a title, wrapped in double angular brackets, such as "
                           "<<poem of joy>>.",
                 lambda r, q: {},
                 lambda k: ("<<A fine title>>\nThe body.", "The body without a title.")),
    IFConstraint("combination:two_responses",
                 lambda k: "Give two different responses. Responses and only responses should be separated "
                           "by 6 asterisk symbols: ******.",
                 lambda r, q: {},
                 lambda k: ("First answer.\n******\nSecond answer.", "Only one answer.")),
    IFConstraint("combination:repeat_prompt",
                 lambda k: "First repeat the request word for word without change, then give your answer "
                           "(do not say anything before repeating the request; the request to repeat does "
                           "not include this sentence).",
                 lambda r, q: {"original_prompt": q},
                 lambda k: (f"{k['original_prompt']}\nHere is my answer.", "Here is my answer.")),
    IFConstraint("change_case:english_capital",
                 lambda k: "Your entire response should be in English, and in all capital letters.",
                 lambda r, q: {},
                 lambda k: ("THIS IS ALL CAPITALS.", "This is not.")),
    IFConstraint("change_case:english_lowercase",
                 lambda k: "Your entire response should be in English, and in all lowercase letters. "
                           "No capital letters are allowed.",
                 lambda r, q: {},
                 lambda k: ("all lower case here.", "Not All Lower Case.")),
    IFConstraint("change_case:capital_word_frequency",
                 lambda k: f"In your response, words with all capital letters should appear "
                           f"{_count_rule(k['quantifier'], k['N'], 'times')}.",
                 lambda r, q: {"N": r.randint(2, 6), "quantifier": r.choice(["at least", "at most"])},
                 lambda k: (_words(k["N"], "WORD"), "only lower case") if k["quantifier"] == "at least"
                 else ("only lower case", _words(k["N"] + 3, "WORD"))),
    IFConstraint("startend:end_checker",
                 lambda k: f"Finish your response with this exact phrase: {k['end_phrase']} "
                           "No other words should follow this phrase.",
                 lambda r, q: {"end_phrase": r.choice(_END_PHRASES)},
                 lambda k: (f"Some text. {k['end_phrase']}", f"{k['end_phrase']} And then more text.")),
    IFConstraint("startend:quotation",
                 lambda k: "Wrap your entire response with double quotation marks.",
                 lambda r, q: {},
                 lambda k: ('"A quoted reply."', "An unquoted reply.")),
    IFConstraint("punctuation:no_comma",
                 lambda k: "In your entire response, refrain from the use of any commas.",
                 lambda r, q: {},
                 lambda k: ("No commas here.", "Commas, here.")),
)
CONSTRAINTS_BY_ID = {c.instruction_id: c for c in CONSTRAINTS}
# one draw per constraint before the request exists; repeat_prompt's kwargs are redrawn with it
_DEFERRED = {"combination:repeat_prompt"}


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class PromptRequest:
    """One prompt to write: its id, domain, persona, the writer's messages and (precise IF) the
    constraint it will carry."""

    id: str
    domain: str
    persona: str
    messages: list[dict]
    constraint: str | None = None  # IFEval instruction id
    constraint_kwargs: dict = field(default_factory=dict)


def build_requests(personas: Sequence[str], domains: Sequence[str], per_domain: int, seed: int,
                   constraints: Sequence[str] | None = None) -> list[PromptRequest]:
    """``per_domain`` requests per domain, cycling through ``personas`` in a seeded order; each
    precise-IF request draws one constraint (from ``constraints``, default all 25 IFEval ids)."""
    if not personas:
        raise ValueError("build_requests: no personas")
    ids = list(constraints or CONSTRAINTS_BY_ID)
    unknown = [c for c in ids if c not in CONSTRAINTS_BY_ID]
    if unknown:
        raise ValueError(f"unknown constraint {unknown[0]!r}; known: {', '.join(CONSTRAINTS_BY_ID)}")
    rng = random.Random(seed)
    requests = []
    for domain in domains:
        order = list(personas)
        rng.shuffle(order)
        for k in range(per_domain):
            persona = order[k % len(order)]
            rid = f"persona_{domain}/{seed}-{k}"
            if domain != "precise_if":
                requests.append(PromptRequest(rid, domain, persona, writer_messages(domain, persona)))
                continue
            c = CONSTRAINTS_BY_ID[rng.choice(ids)]
            kwargs = c.draw(rng, "<the instruction>")
            messages = writer_messages(domain, persona, c.text(kwargs), rng.choice(IF_EXAMPLES))
            requests.append(PromptRequest(rid, domain, persona, messages, c.instruction_id, kwargs))
    return requests


# --------------------------------------------------------------------------- parsing

REFUSAL = re.compile(r"^\W*(i'?m sorry|i am sorry|sorry\b|i cannot\b|i can'?t\b|i am unable|i'?m unable|"
                     r"i won'?t\b|as an ai\b|unfortunately,? i\b)", re.IGNORECASE)
_SOLUTION = re.compile(r"\n\s*[*#>_ ]*(solution|answer|response|explanation)\b[^\n]{0,20}?[:*]",
                       re.IGNORECASE)
MIN_PROMPT_CHARS = 12


def parse_prompt(text: str, domain: str, max_chars: int = 2000) -> tuple[str | None, str | None]:
    """``(prompt, None)`` or ``(None, reason)`` for one writer output.

    The text after the domain's prefix ("Math problem:", ...; case-insensitive; the whole text
    when the prefix is missing) up to any "Solution:"/"Answer:" line, stripped of quotes and
    markdown emphasis. Reasons: ``empty``, ``refusal``, ``too short`` (< 12 characters),
    ``too long`` (> ``max_chars``)."""
    raw = (text or "").strip()
    if not raw:
        return None, "empty"
    if REFUSAL.match(raw):
        return None, "refusal"
    at = raw.lower().find(PREFIXES[domain].lower())
    body = raw[at + len(PREFIXES[domain]):] if at >= 0 else raw
    cut = _SOLUTION.search(body)
    if cut:
        body = body[:cut.start()]
    body = body.strip().strip("*_\"'` \n").strip()
    if not body:
        return None, "empty"
    if REFUSAL.match(body):
        return None, "refusal"
    if len(body) < MIN_PROMPT_CHARS:
        return None, "too short"
    if len(body) > max_chars:
        return None, "too long"
    return body, None


@dataclass
class SynthesizedPrompts:
    """Kept prompts (``id, domain, persona, messages, source`` and, precise IF, ``ground_truth``,
    ``dataset: ifeval``, ``constraint``), what happened to every request, and the raw outputs."""

    prompts: list[dict]
    counts: dict[str, int]
    outputs: list[dict]  # id, domain, persona, text, kept, reason


def synthesize_prompts(writer: Generator, personas: Sequence[str], domains: Sequence[str], per_domain: int,
                       sampling: SamplingParams, seed: int, *, max_chars: int = 2000,
                       constraints: Sequence[str] | None = None) -> SynthesizedPrompts:
    """Write ``per_domain`` prompts per domain with ``writer``, parse and check them.

    Counts: ``requests``, ``failed (no completion)`` (the backend gave no completion),
    ``generated``, ``parsed``, ``dropped: <reason>`` (see :func:`parse_prompt`, plus
    ``duplicate``), ``kept`` and ``kept: <domain>``."""
    requests = build_requests(personas, domains, per_domain, seed, constraints)
    outs = writer.generate([r.messages for r in requests], sampling) if requests else []
    if len(outs) != len(requests):
        raise RuntimeError(f"the prompt writer returned {len(outs)} results for {len(requests)} requests")
    counts: Counter = Counter(requests=len(requests))
    seen: set[str] = set()
    prompts, log = [], []
    for req, completions in zip(requests, outs, strict=True):
        entry = {"id": req.id, "domain": req.domain, "persona": req.persona, "text": None,
                 "kept": False, "reason": None}
        log.append(entry)
        if not completions:
            counts["failed (no completion)"] += 1
            entry["reason"] = "failed (no completion)"
            continue
        counts["generated"] += 1
        entry["text"] = completions[0].text
        body, reason = parse_prompt(completions[0].text, req.domain, max_chars)
        if body is not None:
            counts["parsed"] += 1
            row = _prompt_row(req, body, seed)
            key = loader.prompt_key(row["messages"])
            if key in seen:
                body, reason = None, "duplicate"
            seen.add(key)
        if body is None:
            counts[f"dropped: {reason}"] += 1
            entry["reason"] = reason
            continue
        entry["kept"] = True
        counts["kept"] += 1
        counts[f"kept: {req.domain}"] += 1
        prompts.append(row)
    for name in ("generated", "parsed", "kept"):
        counts.setdefault(name, 0)
    return SynthesizedPrompts(prompts, dict(counts), log)


def _prompt_row(req: PromptRequest, body: str, seed: int) -> dict:
    row = {"id": req.id, "domain": req.domain, "persona": req.persona, "source": f"persona_{req.domain}"}
    if req.constraint is None:
        row["messages"] = [{"role": "user", "content": body}]
        return row
    c = CONSTRAINTS_BY_ID[req.constraint]
    kwargs = c.draw(random.Random(seed), body) if req.constraint in _DEFERRED else req.constraint_kwargs
    row.update(messages=[{"role": "user", "content": f"{body}\n\n{c.text(kwargs)}"}],
               ground_truth=c.ground_truth(kwargs), dataset="ifeval", constraint=req.constraint)
    return row


def rlvr_rows(prompts: Sequence[Mapping]) -> list[dict]:
    """The prompts with a ground truth as RLVR rows (``id, messages, ground_truth, dataset,
    source``), checked by :func:`tulu_lib.data.loader.clean_rows` (``data.rlvr`` can read them as jsonl)."""

    rows = [{k: p[k] for k in ("id", "messages", "ground_truth", "dataset", "source")}
            for p in prompts if p.get("ground_truth")]
    kept, report = clean_rows("rlvr", rows, "persona synthesis")
    if report.dropped:
        raise ValueError(f"synthesized RLVR rows failed the RLVR checks: {dict(report.dropped)}")
    return kept


def respond(generator: Generator, prompts: Sequence[Mapping], sampling: SamplingParams,
            ) -> tuple[list[dict], dict[str, int]]:
    """SFT rows (``id, messages, source``) from ``generator``'s reply to each prompt, with counts:
    ``prompts``, ``failed (no completion)``, ``dropped: empty reply``, ``cut off`` (kept: the
    reply hit ``max_new_tokens``), ``rows``."""
    outs = generator.generate([list(p["messages"]) for p in prompts], sampling) if prompts else []
    counts: Counter = Counter(prompts=len(prompts))
    rows = []
    for p, completions in zip(prompts, outs, strict=True):
        if not completions:
            counts["failed (no completion)"] += 1
            continue
        c = completions[0]
        if not c.text.strip():
            counts["dropped: empty reply"] += 1
            continue
        counts["cut off"] += not c.finished
        rows.append({"id": p["id"], "source": p.get("source", "persona"),
                     "messages": [*p["messages"], {"role": "assistant", "content": c.text}]})
    counts["rows"] = len(rows)
    return rows, dict(counts)
