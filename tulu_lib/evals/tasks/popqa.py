"""PopQA: 15-shot in chat format (the exemplars as turns), a hit when a gold alias is in the reply.

Settings: OLMES ``popqa::tulu`` (the Tülu 3 dev suite; paper Table 24: 15-shot, exact match), i.e.
OLMES ``oe_eval/tasks/oe_eval_tasks/popqa.py`` with ``oe_eval/configs/tasks.py``'s ``popqa::tulu``
(``use_chat_format``, ``fewshot_as_multiturn``): each exemplar a user turn ``Q: {question} A:``
and an assistant turn ``{obj}``, then ``Q: {question} A:``; greedy, at most 15 new tokens, stop at
a blank line; the whole test split (no limit). Its exemplars are fixed: the first 15 of the 16 in
OLMES ``oe_eval/tasks/fewshot_sources.py`` ``FEWSHOT_SOURCES["popqa"]`` (test items, one per
relation, copied below; as in OLMES they are also scored as items). Mallen et al.'s own
``run_model.py`` (AlexTMallen/adaptive-retrieval) samples exemplars of the other relations per
question and scores the reply's first line; OLMES's fixed exemplars and whole reply are used here.

Scorer: ours, :func:`popqa_match`, as no installed package ships PopQA's (lm-eval 0.4.13 has no
PopQA task): a hit when any alias in ``possible_answers`` occurs in the reply as is, lower-cased or
``str.capitalize``-d — OLMES ``PopQA.process_results`` and ``run_model.py``'s rule, pinned in tests.

Usage::

    POPQA.prompt(row, 15)                                     # 31 chat turns
    popqa_match("He was a Politician.", ["politician"])       # True
"""

from __future__ import annotations

import json

from tulu_lib.evals.spec import Benchmark, Settings, few_shot

# OLMES oe_eval/tasks/fewshot_sources.py, FEWSHOT_SOURCES["popqa"] (unchanged from its first release,
# Nov 2024): (id, question, obj) of its first 15 entries, which PopQA.fewshot_examples returns for
# k=15 (``self._fewshot_docs[:k]``); the 16th (1202712, Kingdom of Italy) is never shown at 15 shots.
POPQA_EXEMPLARS: tuple[tuple[int, str, str], ...] = (
    (5985932, "What is Thomas Widdrington's occupation?", "politician"),
    (724502, "In what city was Glover Morrill Allen born?", "Walpole"),
    (2285098, "What genre is The Arab?", "adventure film"),
    (2007997, "Who is the father of Qasim ibn Muhammad ibn Abi Bakr?", "Muhammad ibn Abi Bakr"),
    (3785558, "In what country is Cora?", "United States of America"),
    (4202904, "Who was the producer of Genre?", "Don Hertzfeldt"),
    (6081578, "Who was the director of Up in the Air?", "Howard Bretherton"),
    (2180840, "What is Lima the capital of?", "Peru"),
    (6036329, "Who was the screenwriter for Trivandrum Lodge?", "Anoop Menon"),
    (867482, "Who was the composer of 1983?", "Gopi Sundar"),
    (1378543, "What color is chalk?", "white"),
    (5801967, "What is the religion of Spring Arbor University?", "Free Methodist Church"),
    (4339770, "What sport does Harry Clay play?", "association football"),
    (6418858, "Who is the author of B\u00b2FH paper?", "William Alfred Fowler"),
    (2238655, "Who is the mother of Terry Fox?", "Betty Fox"),
)


def _aliases(raw) -> list[str]:
    """``possible_answers``: the hub stores the JSON text of a list; a local copy may hold the list."""
    values = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    return [str(v) for v in values]


def convert(row: dict, i: int) -> dict:
    return {"id": f"popqa/{row.get('id', i)}", "prompt": row["question"], "question": row["question"],
            "answer": str(row["obj"]), "aliases": _aliases(row["possible_answers"]),
            "prop": str(row.get("prop") or "")}


def popqa_user(question: str) -> str:
    """OLMES ``PopQA.doc_to_text``: ``Q: {question} A:``."""
    return f"Q: {question} A:"


def prompt(row: dict, shots: int) -> list[dict]:
    """The first ``shots`` fixed exemplars as user/assistant turns, then the question."""
    if shots > len(POPQA_EXEMPLARS):
        raise ValueError(f"PopQA has {len(POPQA_EXEMPLARS)} fixed exemplars (OLMES), {shots} asked")
    pairs = [(q, a) for _, q, a in POPQA_EXEMPLARS]
    return few_shot(pairs, shots, popqa_user) + [{"role": "user", "content": popqa_user(row["question"])}]


def popqa_match(output: str, aliases: list[str]) -> bool:
    """PopQA's hit: some alias is a substring of the reply as is, lower-cased, or capitalised
    (``str.capitalize``: first letter upper, the rest lower). The reply is not normalised."""
    return any(a in output or a.lower() in output or a.capitalize() in output for a in aliases)


def score(row: dict, output: str) -> dict:
    return {"score": float(popqa_match(output, row["aliases"]))}


POPQA = Benchmark(
    name="popqa", paper_name="PopQA",
    settings=Settings(shots=15, cot=False, kind="chat",
                      metric="exact match: a gold alias in the reply (as is, lower-cased or capitalised)",
                      source="OLMES popqa::tulu (paper Table 24: 15-shot EM); exemplars: OLMES "
                             "fewshot_sources.py FEWSHOT_SOURCES['popqa'][:15], as chat turns"),
    packaged=None, packaged_from="none: no PyPI package ships PopQA",
    hub_id="akariasai/PopQA", hub_split="test", convert=convert,
    prompt=prompt, score=score, stop=("\n\n",), max_new_tokens=15,
    headline="exact match (15-shot, chat; a gold alias in the reply)",
    scorer="ours (no installed package has PopQA): OLMES PopQA.process_results' rule, an alias in the "
           "reply as is, lower-cased or capitalised",
    offline="everything, given the rows: a local copy in the hub's schema (or the hub); none is packaged")
