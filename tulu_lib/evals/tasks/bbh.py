"""BBH (BIG-Bench Hard): 3-shot chain of thought in chat format, exact match, micro over 27 subtasks.

Settings: OLMES ``bbh:cot-v1::tulu`` (the Tülu 3 dev suite; paper Table 24):
``oe_eval/configs/task_suites.py`` makes it the 27 ``bbh_<subtask>:cot-v1::tulu`` tasks with
``primary_metric`` "micro" (one mean over all items); ``oe_eval/configs/tasks.py`` gives each
3 shots in chat format, greedy, 512 new tokens, no stop sequence, ``answer_extract_fn``
"answer_regex". The prompt is OLMES ``GenericBBH``'s (``oe_eval/tasks/oe_eval_tasks/bbh.py``):
the few-shot exemplars as separate chat turns, the user turn ``Q: <input>\\nA: Let's think step
by step.`` (no trailing newline, unlike lm-eval's ``doc_to_text``), the subtask's description
before the first one. Descriptions and the 3 chain-of-thought exemplars (Suzgun et al. 2022)
are read from lm-eval's installed ``bbh/cot_fewshot/<subtask>.yaml``.

Scorer: OLMES ``GenericBBH``'s ``answer_regex`` extraction, not lm-eval's ``get-answer`` filter
(``(?<=the answer is )(.*)(?=.)``, first match, case-sensitive exact match): a per-subtask answer
pattern (``(X)`` for multiple choice, True/False, Yes/No, valid/invalid, numbers, Dyck closers,
words), tried after "So the answer is", "answer is", "answer:", "answer", then anywhere (a bare
letter for multiple choice, then case-insensitively), the last match of the first rule that
matches; delimiters (``$…$``, ``(…)``, ``**…**``, quotes, backticks) stripped, a bare letter
made ``(X)``. Then OLMES's ``ExactMatch`` (HF evaluate's ``exact_match``): case-insensitive,
punctuation-insensitive except for ``dyck_languages``. The upstream OLMES file was read through
public ports of it (it is not in the stored copies this was written from); the tests pin the
rules on golden outputs and against lm-eval's filter.

Data: no package ships BBH's rows. The hub dataset (``lukaemon/bbh``) has one config per
subtask, which :meth:`~tulu_lib.evals.spec.Benchmark.load` cannot read in one call; a local
copy holds all 27 (``input``, ``target`` and a ``subtask`` column naming the config).

Usage::

    BBH.prompt({"subtask": "navigate", "input": "..."}, 3)        # 7 chat turns
    BBH.score({"subtask": "navigate", "target": "No"}, "... So the answer is No.")["score"]  # 1.0
"""

from __future__ import annotations

import functools
import re
import string

import yaml

from tulu_lib.evals.sources import lm_eval_tasks
from tulu_lib.evals.spec import Benchmark, Settings, few_shot

MC = "MC"  # the answer is a multiple-choice option, "(A)".."(R)"
# OLMES bbh.py's answer pattern per subtask (its BBH answer regexes)
ANSWER_PATTERNS: dict[str, str] = {
    "boolean_expressions": "[tT]rue|[fF]alse",
    "causal_judgement": "[yY]es|[nN]o",
    "date_understanding": MC,
    "disambiguation_qa": MC,
    "dyck_languages": r"[\]\)\}\> ]+",
    "formal_fallacies": "[iI]nvalid|[vV]alid",
    "geometric_shapes": MC,
    "hyperbaton": MC,
    "logical_deduction_five_objects": MC,
    "logical_deduction_seven_objects": MC,
    "logical_deduction_three_objects": MC,
    "movie_recommendation": MC,
    "multistep_arithmetic_two": r"-?\d+",
    "navigate": "[nN]o|[yY]es",
    "object_counting": r"\d+",
    "penguins_in_a_table": MC,
    "reasoning_about_colored_objects": MC,
    "ruin_names": MC,
    "salient_translation_error_detection": MC,
    "snarks": MC,
    "sports_understanding": "[yY]es|[nN]o",
    "temporal_sequences": MC,
    "tracking_shuffled_objects_five_objects": MC,
    "tracking_shuffled_objects_seven_objects": MC,
    "tracking_shuffled_objects_three_objects": MC,
    "web_of_lies": "[yY]es|[nN]o",
    "word_sorting": "[a-z ]+",
}
SUBTASKS = tuple(ANSWER_PATTERNS)
_MC_PATTERN = r"\([A-Z]\)"
_ANS = "<ANS>"
# where the answer is looked for, in order; the first rule that matches gives its last match
_RULES = (rf"(?i)So the answer is ({_ANS})\.?", rf"(?i)answer is ({_ANS})", rf"(?i)answer:.*?({_ANS})",
          rf"(?i)answer\b.*?({_ANS})", rf"({_ANS})")
_MC_LETTER = r"\b([A-Z])\b"  # multiple choice only: a bare letter
_ANYWHERE = rf"(?i)({_ANS})"
_DELIMITERS = (("$", "$"), (r"\(", r"\)"), ("(", ")"), ("**", "**"), ("***", "***"), (r"\[", r"\]"),
               ("'", "'"), ("`", "`"), ('"', '"'))
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _subtask(row: dict) -> str:
    subtask = row.get("subtask")
    if subtask not in ANSWER_PATTERNS:
        raise ValueError(f"a BBH row needs a 'subtask' field naming one of the 27 lukaemon/bbh configs, "
                         f"got {subtask!r}: a local copy puts the configs' rows in one file with that column")
    return subtask


def convert(row: dict, i: int) -> dict:
    """A row of a local copy (the hub's ``input``, ``target``, plus ``subtask``) -> the row schema."""
    subtask = _subtask(row)
    return {"id": f"bbh/{subtask}/{row.get('index', i)}", "prompt": row["input"], "input": row["input"],
            "target": row["target"], "subtask": subtask}


@functools.cache
def bbh_exemplars(subtask: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The subtask's description and its 3 chain-of-thought exemplars ``(input, target)``, from
    lm-eval's ``bbh/cot_fewshot/<subtask>.yaml``."""
    if subtask not in ANSWER_PATTERNS:
        raise ValueError(f"unknown BBH subtask {subtask!r}")
    config = yaml.safe_load((lm_eval_tasks() / "bbh" / "cot_fewshot" / f"{subtask}.yaml").read_text())
    pairs = tuple((s["input"], s["target"].strip()) for s in config["fewshot_config"]["samples"])
    return config["description"], pairs


def question(text: str) -> str:
    """OLMES GenericBBH's user turn (short prefix, chain of thought)."""
    return f"Q: {text}\nA: Let's think step by step."


def prompt(row: dict, shots: int) -> list[dict]:
    description, pairs = bbh_exemplars(_subtask(row))
    turns = few_shot(list(pairs), shots, question) + [{"role": "user", "content": question(row["input"])}]
    turns[0] = {"role": "user", "content": description + turns[0]["content"]}
    return turns


def bbh_answer(output: str, subtask: str) -> tuple[str, int | None]:
    """OLMES's ``answer_regex`` extraction: the answer in ``output`` and which rule found it
    (an index into the rules: 0 is "So the answer is X"; None: none did, the answer is "")."""
    pattern = ANSWER_PATTERNS[subtask]
    mc = pattern == MC
    answer = _MC_PATTERN if mc else pattern
    rules = (*_RULES, *((_MC_LETTER,) if mc else ()), _ANYWHERE)
    extracted, found_by = "", None
    for k, rule in enumerate(rules):
        found = re.findall(rule.replace(_ANS, answer), output)
        if found:
            extracted, found_by = found[-1], k
            break
    for left, right in _DELIMITERS:
        if re.match(answer, left):
            continue
        extracted = re.sub(f"^{re.escape(left)}(.*){re.escape(right)}$", r"\1", extracted).strip()
    if mc and len(extracted) == 1:
        extracted = f"({extracted})"
    return extracted, found_by


def gold_answer(target: str) -> str:
    """OLMES's gold: the text after "answer is " less its last character where the target holds
    one (a chain-of-thought target), else the target (the hub's test targets)."""
    match = re.search(r"(?<=answer is )(.*)(?=.)", target)
    return match.group(0) if match else target


def normalize(text: str, subtask: str) -> str:
    """HF evaluate's ``exact_match`` normalisation as OLMES's BBH calls it: lower case, punctuation
    removed except for ``dyck_languages`` (whose answers are punctuation)."""
    text = text.lower()
    return text if subtask == "dyck_languages" else text.translate(_NO_PUNCTUATION)


def score(row: dict, output: str) -> dict:
    subtask = _subtask(row)
    extracted, found_by = bbh_answer(output, subtask)
    correct = normalize(extracted, subtask) == normalize(gold_answer(row["target"]), subtask)
    return {"score": float(correct), "subtask": subtask, "extracted": extracted, "found_by": found_by}


BBH = Benchmark(
    name="bbh", paper_name="BBH",
    settings=Settings(shots=3, cot=True, kind="chat",
                      metric="exact match, micro-averaged over the 27 subtasks",
                      source="OLMES bbh:cot-v1::tulu (paper Table 24); descriptions and exemplars: lm-eval "
                             "bbh/cot_fewshot/<subtask>.yaml"),
    packaged=None, packaged_from="none: no PyPI package ships BBH's rows (lm-eval ships its exemplars)",
    hub_id="lukaemon/bbh", hub_split="test", hub_configs=SUBTASKS, convert=convert, spread_by="subtask",
    prompt=prompt, score=score, max_new_tokens=512,
    headline="accuracy, micro over the 27 subtasks (3-shot CoT; OLMES answer_regex extraction, exact match "
             "ignoring case and punctuation)",
    scorer="OLMES bbh answer_regex extraction and ExactMatch (ignoring case, and punctuation except in "
           "dyck_languages)",
    offline="everything, given the rows: the hub's 27 configs, or a local copy with a subtask column")
