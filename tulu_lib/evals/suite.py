"""Evaluation: run the registered benchmarks (:mod:`tulu_lib.evals.registry`) on a generator,
save every item, resume, and summarise each with n and a 95% interval.

Each benchmark (one module of :mod:`tulu_lib.evals.tasks`) says how its rows become prompts
with the paper's settings (its Table 24) and how a reply is scored, with the reference
implementations where they are installed; ``docs/evaluation.md`` lists them all. Here they are
generated through any :mod:`tulu_lib.generation.backends` backend, by the method the
benchmark's ``kind`` needs (``chat``: ``generate``; ``text``: ``complete``; ``choice``:
``loglikelihood``). lm-eval's harness itself (its task runner and ``LM`` model API) is not used:
its tasks load hub datasets, while here one generator serves training, RLVR scoring and
evaluation, and per-item outputs must be saved and resumed. Every item's output and score is
appended to ``<out>/<benchmark>/items.jsonl`` as it is produced; a rerun skips items already
there, and :func:`score_outputs` (``tulu-repro score``) scores saved outputs with the same
functions. Every score keeps its n and a 95% interval (macro averages over subjects at their
effective n), and how many replies were cut off at the token budget; HumanEval's pass@10 comes
from samples (:func:`pass_at_k`).

Usage::

    table = evaluate(generator, {"gsm8k": BenchmarkParams(limit=50)}, out_dir)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tulu_lib.core import assets, hashing
from tulu_lib.core.io import write_jsonl
from tulu_lib.core.params import BenchmarkParams
from tulu_lib.core.stats import wilson_interval
from tulu_lib.evals import registry
from tulu_lib.evals.registry import NOT_RUN, TABLE6_ROWS, not_run_reason
from tulu_lib.evals.spec import LETTERS, NEEDS_JUDGE, Benchmark
from tulu_lib.generation.backends import generator_for
from tulu_lib.generation.types import Completion, Generator, SamplingParams

__all__ = ["NOT_RUN", "TABLE6_ROWS", "TASKS", "average_score", "evaluate", "evaluate_checkpoint",
           "evaluate_model", "generate_items", "model_chat_template", "not_run_reason", "paper_average",
           "pass_at_k", "run_benchmark", "score_outputs", "summarize"]

TASKS: dict[str, Benchmark] = registry.BENCHMARKS  # the registry itself: one registered later runs too

NEEDS = {"text": ("complete", "DROP is prompted in plain text, not chat (paper Table 24)"),
         "choice": ("loglikelihood", "multiple-choice scoring needs log-probabilities")}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


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


def _outputs(generator: Generator, task: Benchmark, rows: list[dict], shots: int, max_new_tokens: int,
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


def _rows(task: Benchmark, limit: int | None = None) -> list[dict]:
    """The benchmark's rows, or those of the benchmark whose rows it reads (``data``)."""
    return list((registry.benchmark(task.data) if task.data else task).load(limit=limit))


def benchmark_rows(task: Benchmark, limit: int | None = None) -> tuple[list[dict], Counter]:
    """The rows a task scores (a ``limit`` as :meth:`~tulu_lib.evals.spec.Benchmark.load` takes
    it) and the count of rows it cannot score here, by reason."""
    rows = _rows(task, limit)
    skipped = Counter(why for r in rows if (why := task.unscorable and task.unscorable(r)))
    if skipped:
        rows = [r for r in rows if not task.unscorable(r)]
    return rows, skipped


def score_item(task: Benchmark, row: dict, out: dict) -> dict:
    """One saved item: its id, the generator's output record and the task's scores of it."""
    return {"id": row["id"], **out, **task.score(row, out["output"])}


def sample_record(task: Benchmark, row: dict, texts: Sequence[str]) -> dict:
    """pass@k bookkeeping for one problem: how many samples, how many passed."""
    passed = sum(task.score(row, t)["score"] == 1.0 for t in texts)
    return {"id": row["id"], "n": len(texts), "passed": int(passed)}


def generate_items(generator: Generator, task: Benchmark, rows: list[dict], shots: int, items_path: Path,
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


def summarize(task: Benchmark, rows: list[dict], items: Mapping[str, dict], shots: int | None = None,
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


def _aggregated(task: Benchmark, rows: list[dict], items: Mapping[str, dict], summary: dict) -> dict:
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
                  task: Benchmark | None = None) -> dict:
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
    # where the per-item scores are, so comparisons can pair on them (tulu_lib.core.stats)
    return {**summarize(task, rows, items, shots, skipped, samples, note=note),
            "items_path": str(folder / "items.jsonl")}


def _score_with_interval(task: Benchmark, rows: list[dict], scores: list[float]) -> dict:
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
    if task.judge_score is not None:
        raise ValueError(f"{name} is scored by a judge model, not from outputs alone: "
                         "run it through 05_eval with eval.judge configured")
    if task.kind == "choice":
        note = "outputs are the chosen letters"
    else:
        note = "scored from saved outputs"
    all_rows = _rows(task)
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
        if task is None or (task.judge_score is not None and judge is None):
            reason = not_run_reason(name) if task is None else NEEDS_JUDGE
            table.append({"benchmark": name, "metric": reason, "n": 0, "score": math.nan})
            continue
        if task.judge_score is not None:
            task = dataclasses.replace(task, score=functools.partial(task.judge_score, judge))
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


def evaluate_model(model: str, p, cache_root: str | Path, *,
                   benchmarks: dict[str, BenchmarkParams] | None = None, max_new_tokens: int | None = None,
                   chat_template=None, judge: Generator | None = None, tag: str = "") -> list[dict]:
    """:func:`evaluate` the model ``model`` on ``benchmarks`` (default: ``p.eval.benchmarks``) as
    ``p.eval`` says, its items kept under ``cache_root/<key>``; the key
    (:func:`tulu_lib.core.hashing.eval_key`) covers the model's files, the eval params and ``tag``
    (another prompt format, say), so a rerun with the same key resumes and reuses every item."""
    key = hashing.eval_key(assets.fingerprint(model), p.to_dict()["eval"], tag)
    return evaluate(generator_for(p, model), p.eval.benchmarks if benchmarks is None else benchmarks,
                    Path(cache_root) / key, max_new_tokens=max_new_tokens or p.eval.max_new_tokens,
                    batch_size=p.eval.batch_size, chat_template=chat_template, judge=judge)


def paper_average(scores: dict[str, float]) -> float:
    """The paper's average: the unweighted mean of the benchmark scores (in percent)."""
    values = [v for v in scores.values() if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan
