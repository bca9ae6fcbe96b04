"""DeepMind Mathematics (unseen suite): 0-shot chain of thought in chat format, the answer after
"Therefore, the final answer is", equal to the gold as a string or by sympy; macro over its 56
categories, 100 problems each.

Settings: OLMES ``deepmind_math:0shot_cot::tulu3`` (suite ``tulu_3_unseen``; allenai/olmes
``oe_eval/configs/task_suites.py``: the ``deepmind_math_<category>:0shot_cot::tulu3`` tasks of
``DEEPMIND_MATH_CATEGORIES``, ``primary_metric: macro``; each in ``oe_eval/configs/tasks.py``:
``limit`` 100, ``cot_style: plain``, the description "Solve the following math problem
efficiently:" and the final description quoted below, ``max_gen_toks`` 2048, no stop sequences,
``answer_format_regex`` ``(?i)Therefore, the final answer is (.*?). I hope it is correct.``).
Prompt and scorer follow ``oe_eval/tasks/oe_eval_tasks/deepmind_math.py`` (``GenericTask``):
the ``b'…\\n'`` wrapping of the hub's strings removed; ``process_results``: the last formatted
answer, else the first line after "the final answer is" / "answer is", then ``clean_prediction``
(its ``<|eot_id|>`` regex drops every "<" and ">", kept); correct when equal ignoring case, True/False
as yes/no, or ``sympy.parse_expr`` equal (``check_equal``: same free symbols, equal at a random point,
``Expr.equals``). Two differences, pinned in ``tests/test_eval_unseen.py``: the random point is
seeded (OLMES: unseeded numpy), and ``parse_expr`` (an ``eval``) sees no Python builtins, no
strings, attribute access or ``__`` names, and none of sympy's printing/plotting/test functions
(such replies score 0 here; they are not answers). Data: OLMES's fixed sample
``oe_eval/data/deepmind_math_sample100/<category>/test.jsonl.gz`` (100 per category,
``random.Random(1234).sample`` of ``deepmind/math_dataset``'s test split; 5,600 in all); no PyPI
package ships it. A local copy is those files in one ``.jsonl``, each row with its ``category``.

Usage::

    DEEPMIND_MATH.load("deepmind_math_sample100.jsonl", limit=56)
    deepmind_math_prediction("... Therefore, the final answer is 2*x. I hope it is correct.")  # "2*x"
"""

from __future__ import annotations

import functools
import re

from tulu_lib.evals.spec import Benchmark, Settings

DEEPMIND_DESCRIPTION = "Solve the following math problem efficiently:\n"
DEEPMIND_FINAL = (
    "\n\nShow your work and conclude with the exact phrasing \"Therefore, the final answer is [answer]. "
    "I hope it is correct.\" where [answer] is just the final number or expression that solves the "
    "problem. E.g., if the answer is 6, conclude with \"Therefore, the final answer is 6. I hope it is "
    "correct.\"\nNote the formatting for the following answer types:\n- If the answer is a list (e.g., "
    "when there are two solutions to an equation), unless otherwise specified, present the solutions in "
    "a list separated by commas ordering them from the smallest to biggest  e.g.: 2, 10\n- Powers should "
    "be written with **, for instance x to the power of 2 should be written as x**2\n- Use * for "
    "multiplication, e.g.: 2*x")
ANSWER_FORMAT = re.compile(r"(?i)Therefore, the final answer is (.*?). I hope it is correct.")
_PREFIXES = ("the final answer is", "answer is")  # extract_answer_legacy's prefix_regexes
_SPECIAL_TOKENS = ("<end_of_turn>", "<|eot_id|>", "<s>", "</s>")  # used as regexes, as OLMES does
_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("**", "**"), ("***", "***"), ("\\[", "\\]"))


def unwrap(text: str) -> str:
    """The hub's ``b'…\\n'`` wrapping removed (OLMES ``_process_doc``)."""
    return re.sub(r"\\n'$", "", re.sub(r"^b'", "", text))


def convert(row: dict, i: int) -> dict:
    category, question = row["category"], unwrap(row["question"])
    return {"id": f"deepmind_math/{category}/{row.get('index', i)}", "prompt": question.strip(),
            "question": question, "category": category, "answer": unwrap(row["answer"])}


def prompt(row: dict, shots: int) -> list[dict]:
    if shots:
        raise ValueError("deepmind_math:0shot_cot::tulu3 is 0-shot")
    return [{"role": "user", "content": DEEPMIND_DESCRIPTION + row["question"].strip() + DEEPMIND_FINAL}]


def clean_prediction(prediction: str) -> str:
    """OLMES ``clean_prediction``: "I hope it is correct" and special tokens dropped (the tokens
    are regexes: ``<|eot_id|>`` removes every "<", ">" and "eot_id", so a later "</s>" leaves
    "/s"), a trailing period and surrounding ``$``, ``\\(…\\)``, ``**``, ``\\[…\\]`` stripped."""
    res = re.sub(r"\s*\.?\s*I hope it is correct.*", "", prediction)
    for token in _SPECIAL_TOKENS:
        res = re.sub(token, "", res).strip()
    res = re.sub(r"\.\s*$", "", res).strip()
    for left, right in _DELIMITERS:
        res = re.sub(f"^{re.escape(left)}(.*){re.escape(right)}$", r"\1", res).strip()
    return res


def deepmind_math_answer(output: str) -> tuple[str, float]:
    """OLMES ``process_results``' prediction: the last "Therefore, the final answer is X. I hope it
    is correct." (format score 1); else (0.5) the first line after the first "the final answer is",
    else after "answer is" (a trailing period dropped), else "" — cleaned by :func:`clean_prediction`."""
    found = ANSWER_FORMAT.findall(output)
    if found:
        return clean_prediction(found[-1]), 1.0
    prediction = ""
    for prefix in _PREFIXES:
        match = re.search(prefix, output)
        if match:
            prediction = re.findall("^(.*)", output[match.end():].strip())[0]
            break
    return clean_prediction(prediction.removesuffix(".")), 0.5


def deepmind_math_prediction(output: str) -> str:
    return deepmind_math_answer(output)[0]


_UNSAFE_TEXT = re.compile(r"""__|['"`\\;:]|\.\s*[A-Za-z_]|\blambda\b""")
_UNSAFE_NAMES = re.compile(r"^(plot|preview|init_|print_|pprint|pager_print|textplot|interactive_traversal|"
                           r"var$|lambdify|test$|doctest$|python$|source$)")


@functools.cache
def _namespace() -> dict:
    """sympy's names as ``parse_expr`` gives them, less its side-effecting functions, with the
    builtins OLMES's default adds for arithmetic only (``max``/``min`` as sympy's)."""
    import sympy

    names: dict = {}
    exec("from sympy import *", names)  # sympy's own namespace, as parse_expr builds it
    names = {k: v for k, v in names.items() if not _UNSAFE_NAMES.match(k) and k != "__builtins__"}
    return {**names, "abs": abs, "divmod": divmod, "pow": pow, "round": round, "sum": sum,
            "max": sympy.Max, "min": sympy.Min, "__builtins__": {}}


def safe_parse(text: str):
    """``sympy.parse_expr`` of a reply's answer without Python builtins, strings, attribute access
    or dunder names (it ``eval``s its input); ValueError for text that needs any of them."""
    from sympy.parsing.sympy_parser import parse_expr

    if _UNSAFE_TEXT.search(text):
        raise ValueError(f"not parsed (unsafe for eval): {text[:60]!r}")
    return parse_expr(text, global_dict=dict(_namespace()))


def sympy_equal(answer: str, prediction: str) -> bool:
    """OLMES ``check_equal`` of the parsed answer and prediction (the random point seeded)."""
    import numpy as np
    import sympy

    gold, pred = safe_parse(answer), safe_parse(prediction)
    if not isinstance(gold, sympy.Expr) or not isinstance(pred, sympy.Expr):
        return bool(gold == pred)
    if gold.free_symbols != pred.free_symbols:
        return False
    point = np.random.default_rng(0).random(len(gold.free_symbols))
    gold_num, pred_num = gold, pred
    for symbol, value in zip(gold.free_symbols, point, strict=True):
        gold_num = gold_num.subs(symbol, sympy.Float(value))
        pred_num = pred_num.subs(symbol, sympy.Float(value))
    if not np.allclose(float(gold_num), float(pred_num)):
        return False
    return bool(gold.equals(pred))


def score(row: dict, output: str) -> dict:
    prediction, fmt = deepmind_math_answer(output)
    answer, parse_error = row["answer"], 0.0
    if answer.lower() == prediction.lower():
        correct = True
    elif answer.lower() in ("true", "false"):
        p, a = prediction.lower(), answer.lower()
        correct = p == a or (p == "yes" and a == "true") or (p == "no" and a == "false")
    else:
        try:
            correct = sympy_equal(answer, prediction)
        except Exception:  # noqa: BLE001 - OLMES scores any parse or sympy error 0 and counts it
            correct, parse_error = False, 1.0
    return {"score": float(correct), "prediction": prediction, "answer_format_correct": fmt,
            "answer_parse_error": parse_error}


def warm_up() -> None:
    """Import sympy and build the parse namespace before a scoring worker's first item."""
    _namespace()
    safe_parse("x + 1")


DEEPMIND_MATH = Benchmark(
    name="deepmind_math", paper_name="DeepMind Mathematics (unseen suite)",
    settings=Settings(shots=0, cot=True, kind="chat",
                      metric="exact match (string or sympy), macro over the 56 categories",
                      source="OLMES deepmind_math:0shot_cot::tulu3 (tulu_3_unseen)"),
    packaged=None,
    packaged_from="none: no PyPI package ships it; OLMES's own sample (oe_eval/data/deepmind_math_sample100, "
                  "100 per category of deepmind/math_dataset test, 5,600): give a local copy, one .jsonl "
                  "with a 'category' field",
    hub_id="deepmind/math_dataset", hub_split="test", convert=convert, spread_by="category",
    prompt=prompt, score=score, macro_by="category",
    headline="accuracy, macro over the 56 categories (0-shot CoT, 'the final answer is X'; string or sympy)",
    scorer="ours, following OLMES deepmind_math.py process_results (sympy parse without builtins; pinned "
           "in tests)",
    offline="everything, given a local copy (no packaged one)")
