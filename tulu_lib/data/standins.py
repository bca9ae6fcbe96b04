"""Offline stand-ins for the paper's training mixtures, built from packaged files.

There is no Tülu SFT, preference or RLVR mixture offline, so these small sets stand in
for them (see docs/design.md, "Data"). Each row keeps a ``source`` column naming where
it came from. None may contain an item of a reported benchmark: MATH rows use the 4,500
MATH problems outside MATH-500 (the usual train/test split), code rows come from MBPP
(HumanEval is the benchmark), chat rows from Arena-Hard v2 (not a reported benchmark),
and the decontamination stage checks all of it against every benchmark.

Usage::

    rows = build("sft")   # list of dicts in the allenai/tulu-3-sft-mixture schema
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from tulu_lib.evals.sources import eval_framework_path, jsonl_rows, olmo_docs, question_key
from tulu_lib.evals.tasks import if_short
from tulu_lib.evals.tasks.minerva_math import MATH_SUBJECTS, boxed_answer

SEED = 20241122  # fixed: stand-ins are data, not a run parameter
MATH_SUFFIX = "\nPresent the answer in LaTex format: \\boxed{Your answer}"

# Verifiable constraints (open-instruct's IFEval-style functions, in if_short's order) and how to
# satisfy them: (sentence, verifier function, kwargs, satisfy(reply, kwargs))
SATISFY: dict[str, Callable[[str, dict], str]] = {
    "validate_lowercase": lambda r, k: r.lower(),
    "validate_uppercase": lambda r, k: r.upper(),
    "validate_no_commas": lambda r, k: r.replace(",", ""),
    "validate_end": lambda r, k: r.rstrip() + "\n" + k["end_phrase"],
    "validate_quotation": lambda r, k: f'"{r}"',
    "verify_postscript": lambda r, k: r.rstrip() + f"\n\n{k['postscript_marker']} I hope this helps.",
}
CONSTRAINTS: list[tuple[str, str, dict, Callable[[str, dict], str]]] = [
    (template, func, kwargs, SATISFY[func]) for template, func, kwargs, _ in if_short.CONSTRAINTS]


def _arena_hard() -> list[dict]:
    """Arena-Hard v2 prompts with o3-mini's and gemini-2.0-flash's answers."""
    folder = eval_framework_path("arena_hard", "data", "arena-hard-v2.0")
    answers = {}
    for model in ("o3-mini-2025-01-31", "gemini-2.0-flash-001"):
        for row in jsonl_rows(folder / "model_answer" / f"{model}.jsonl"):
            answers.setdefault(row["uid"], {})[model] = _answer_text(row["messages"][-1])
    rows = []
    for q in jsonl_rows(folder / "question.jsonl"):
        pair = answers.get(q["uid"], {})
        if len(pair) == 2 and all(pair.values()):
            rows.append({"uid": q["uid"], "prompt": q["prompt"], "strong": pair["o3-mini-2025-01-31"],
                         "weak": pair["gemini-2.0-flash-001"]})
    random.Random(SEED).shuffle(rows)
    return rows


def _answer_text(message: dict) -> str:
    content = message["content"]
    return content["answer"] if isinstance(content, dict) else str(content)


def _math_train() -> list[dict]:
    """The 4,500 MATH test problems outside MATH-500, with the last-\\boxed{} answer."""
    held_out = {question_key(d["problem"]) for d in olmo_docs("minerva_math_500")}
    rows = [d for s in MATH_SUBJECTS for d in olmo_docs(f"minerva_math_{s}")
            if question_key(d["problem"]) not in held_out]
    random.Random(SEED).shuffle(rows)
    return rows


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _constrained(rng: random.Random, prompt: str) -> tuple[str, str, dict, Callable]:
    template, func, kwargs, satisfy = rng.choice(CONSTRAINTS)
    return f"{prompt}\n\n{template.format(**kwargs)}", func, kwargs, satisfy


def build_sft() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for d in _math_train():
        rows.append({"id": f"math_train/{d['index']}-{d['type']}", "source": "math",
                     "messages": [_user(d["problem"]), _assistant(d["solution"])]})
    for d in olmo_docs("codex_mbpp"):
        tests = "\n".join(d["test_list"])
        rows.append({"id": f"mbpp/{d['task_id']}", "source": "code", "messages": [
            _user(f"{d['text']}\nYour code should pass these tests:\n{tests}"),
            _assistant(f"```python\n{d['code'].strip()}\n```")]})
    arena = _arena_hard()
    half = len(arena) // 2
    for d in arena[:half]:
        rows.append({"id": f"arena_hard/{d['uid']}", "source": "chat",
                     "messages": [_user(d["prompt"]), _assistant(d["strong"])]})
    for d in arena[half:]:
        prompt, _, kwargs, satisfy = _constrained(rng, d["prompt"])
        rows.append({"id": f"precise_if/{d['uid']}", "source": "precise_if",
                     "messages": [_user(prompt), _assistant(satisfy(d["strong"], kwargs))]})
    return rows


_BOXED_NUMBER = re.compile(r"\\boxed\{(-?\d+)\}")


def build_preferences() -> list[dict]:
    """Pairs: (strong, weak) model answers; constraint kept vs broken; right vs wrong answer."""
    rng = random.Random(SEED + 1)
    rows = []
    for d in _arena_hard():
        rows.append({"id": f"arena_hard/{d['uid']}", "source": "chat_model_pool",
                     "prompt": [_user(d["prompt"])], "chosen": [_assistant(d["strong"])],
                     "rejected": [_assistant(d["weak"])]})
        prompt, _, kwargs, satisfy = _constrained(rng, d["prompt"])
        kept = satisfy(d["strong"], kwargs)
        if kept != d["strong"]:  # the answer broke the constraint: a verifiable pair
            rows.append({"id": f"if_verified/{d['uid']}", "source": "if_verified",
                         "prompt": [_user(prompt)], "chosen": [_assistant(kept)],
                         "rejected": [_assistant(d["strong"])]})
    for d in _math_train():
        match = _BOXED_NUMBER.search(d["solution"])
        if not match:
            continue
        wrong = int(match.group(1)) + rng.choice([-2, -1, 1, 2, 10])
        rejected = _BOXED_NUMBER.sub(f"\\\\boxed{{{wrong}}}", d["solution"])
        rows.append({"id": f"math_pairs/{d['index']}-{d['type']}", "source": "math_wrong_answer",
                     "prompt": [_user(d["problem"])], "chosen": [_assistant(d["solution"])],
                     "rejected": [_assistant(rejected)]})
    return rows


_NAMES = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas"]
_ITEMS = ["apples", "stickers", "marbles", "books", "pencils", "cookies", "stamps", "shells"]


def gsm_problem(rng: random.Random) -> tuple[str, int]:
    """A grade-school word problem with an integer answer (one of five templates)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.randrange(5)
    if kind == 0:
        a, b, c = rng.randint(10, 90), rng.randint(2, 40), rng.randint(1, 9)
        return (f"{name} has {a} {item}. {name} buys {b} more and then gives {c} to a friend. "
                f"How many {item} does {name} have now?", a + b - c)
    if kind == 1:
        a, price = rng.randint(2, 12), rng.randint(2, 15)
        return (f"{name} buys {a} packs of {item}. Each pack costs ${price}. "
                f"How many dollars does {name} spend?", a * price)
    if kind == 2:
        k, a = rng.randint(2, 9), rng.randint(2, 20)
        return (f"{name} shares {k * a} {item} equally among {k} friends. "
                f"How many {item} does each friend get?", a)
    if kind == 3:
        hours, wage, days = rng.randint(2, 9), rng.randint(8, 30), rng.randint(2, 7)
        return (f"{name} works {hours} hours a day and earns ${wage} per hour. "
                f"How many dollars does {name} earn in {days} days?", hours * wage * days)
    a, b, c = rng.randint(100, 500), rng.randint(10, 60), rng.randint(10, 60)
    return (f"A shop had {a} {item}. It sold {b} in the morning and {c} in the afternoon. "
            f"How many {item} are left?", a - b - c)


def build_rlvr() -> list[dict]:
    """Prompts with verifiable answers in the allenai/RLVR-GSM-MATH-IF-Mixed-Constraints schema."""
    rng = random.Random(SEED + 2)
    rows = []
    for i in range(1000):
        question, answer = gsm_problem(rng)
        rows.append({"id": f"gsm_synth/{i}", "source": "gsm_synthetic", "dataset": "gsm8k",
                     "messages": [_user(question)], "ground_truth": str(answer)})
    for d in _math_train():
        rows.append({"id": f"math_train/{d['index']}-{d['type']}", "source": "math_train",
                     "dataset": "MATH", "messages": [_user(d["problem"] + MATH_SUFFIX)],
                     "ground_truth": boxed_answer(d["solution"])})
    for d in _arena_hard():
        prompt, func, kwargs, _ = _constrained(rng, d["prompt"])
        rows.append({"id": f"if_constraints/{d['uid']}", "source": "if_constraints",
                     "dataset": "ifeval", "messages": [_user(prompt)],
                     "ground_truth": json.dumps({"func_name": func, **kwargs})})
    rng.shuffle(rows)
    return rows + if_short_rows()  # after the shuffle: the other sources keep their order


def if_short_rows() -> list[dict]:
    """``if_short``: a short writing task with one of :data:`CONSTRAINTS` appended, in the RLVR
    schema (dataset ``ifeval``): the cpu default's targeted domain (docs/design.md, "Data"). Replies
    that keep a constraint fit a 135M model's token budget (Arena-Hard's prompts ask for pages).
    The combinations are :func:`~tulu_lib.evals.tasks.if_short.training_combinations`; the
    ``if_short`` benchmark holds out others."""
    rows = []
    for i, (task, topic, c) in enumerate(if_short.training_combinations()):  # no repeats
        _, func, kwargs, _ = CONSTRAINTS[c]
        rows.append({"id": f"if_short/{i}", "source": "if_short", "dataset": "ifeval",
                     "messages": [_user(if_short.text(task, topic, c))],
                     "ground_truth": json.dumps({"func_name": func, **kwargs})})
    return rows


BUILDERS = {"sft": build_sft, "preferences": build_preferences, "rlvr": build_rlvr}

# What each stand-in replaces, for the docs and the report.
STANDS_IN_FOR = {
    "sft": "allenai/tulu-3-sft-mixture (939,343 rows)",
    "preferences": "allenai/llama-3.1-tulu-3-8b-preference-mixture (271,409 rows)",
    "rlvr": "allenai/RLVR-GSM-MATH-IF-Mixed-Constraints (29,946 rows)",
}


def build(kind: str) -> list[dict]:
    if kind not in BUILDERS:
        raise KeyError(f"unknown stand-in {kind!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[kind]()
