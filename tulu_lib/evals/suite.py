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

import contextvars
import dataclasses
import functools
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from tulu_lib.core import assets, hashing, progress
from tulu_lib.core.io import write_json, write_jsonl
from tulu_lib.core.params import BenchmarkParams
from tulu_lib.core.stats import average_score, wilson_interval
from tulu_lib.evals import bounded, registry
from tulu_lib.evals.registry import NOT_RUN, TABLE6_ROWS, not_run_reason
from tulu_lib.evals.spec import Benchmark, DataUnavailable
from tulu_lib.generation.backends import generator_for
from tulu_lib.generation.endpoint import EndpointError
from tulu_lib.generation.types import Completion, Generator, SamplingParams

__all__ = ["NOT_RUN", "TABLE6_ROWS", "TASKS", "average_score", "evaluate",
           "evaluate_model", "generate_items", "item_scores", "model_chat_template", "not_run_reason",
           "output_lines", "paper_average", "pass_at_k", "run_benchmark", "score_outputs", "summarize"]

TASKS: dict[str, Benchmark] = registry.BENCHMARKS  # the registry itself: one registered later runs too

# the per-item scoring budget (seconds) where none is given: evaluate() sets it (eval.score_timeout_s)
_BUDGET: contextvars.ContextVar[float] = contextvars.ContextVar("score_timeout_s",
                                                                 default=bounded.DEFAULT_TIMEOUT_S)
MAX_LINE_CHARS = 8 << 20  # score_outputs: a longer line is counted as oversized, not parsed
FAILED = {"timeout": "timeouts", "error": "scorer_errors"}  # an item's scorer_status -> the summary's count

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


GENERATED = ("output", "finished")  # what an item keeps of the reply; the rest: its scores
STAMP = "scored"  # an item's hash of itself and of the scoring code that scored it (:func:`_stamp`)


def scorer_version(task: Benchmark) -> str:
    """The scoring code of ``task``'s items, as a hash: this module (:func:`score_item`),
    :data:`SCORING_CODE` and the ``tulu_lib`` modules behind its ``score`` function (a judge's under
    a ``partial``), directly or not. A change to any of them re-scores every saved item once.
    Usage: ``scorer_version(TASKS["gsm8k"])``."""
    fn = task.score
    while isinstance(fn, functools.partial):
        fn = fn.func
    return _code_version(getattr(fn, "__module__", None) or type(fn).__name__)


SCORING_CODE = ("tulu_lib.evals.bounded",)  # what runs every scorer, besides score_item in this file


@functools.cache
def _code_version(module: str) -> str:
    modules = [*SCORING_CODE, *([module] if module.startswith("tulu_lib.") else [])]
    files = [Path(__file__), *hashing.module_closure_of(modules)]
    return hashing.section_hash([module, hashing.code_hash(files)])


def _stamp(item: dict, version: str) -> str:
    """The hash of an item (its output and scores, without its stamp) and the scorer's version."""
    return hashing.section_hash({"scorer": version, "item": {k: v for k, v in item.items() if k != STAMP}})


def _stamped(item: dict, version: str) -> dict:
    return {**item, STAMP: _stamp(item, version)}


def _checked(path: Path, saved: dict[str, dict], rows: Sequence[dict], version: str, derive,
             repaired: Counter | None = None) -> dict[str, dict]:
    """The saved items whose stamp holds under the current scorer ``version``; every other one is
    scored again from its stored output (``derive(row, item)``: the item anew, or None where it
    has no output to score: dropped, so it is generated again). The file is rewritten whole when
    anything changed, with one line saying what; ``repaired`` counts ``rescored`` items and the
    ``corrected`` scores among them (a stored score its output does not give)."""
    by_id = {r["id"]: r for r in rows}
    kept, corrected, rescored, dropped = {}, [], 0, 0
    for key, item in saved.items():
        if item.get(STAMP) == _stamp(item, version):
            kept[key] = item
        elif key in by_id and (fresh := derive(by_id[key], item)) is not None:
            kept[key], rescored = _stamped(fresh, version), rescored + 1
            before = {k: v for k, v in item.items() if k != STAMP}
            if json.dumps(fresh, sort_keys=True) != json.dumps(before, sort_keys=True):
                corrected.append(str(key))
        else:
            dropped += 1
    if repaired is not None:
        repaired.update(rescored=rescored, corrected=len(corrected))
    if rescored or dropped:
        named = f" ({', '.join(corrected[:5])}{', ...' if len(corrected) > 5 else ''})" if corrected else ""
        gone = f"; {dropped} with no output to score dropped, generated again" if dropped else ""
        print(f"[evals] {path}: {rescored} saved item(s) scored again (not scored by the current scoring "
              f"code, or changed since): {len(corrected)} stored score(s) differed from their output's, "
              f"corrected{named}{gone}", file=sys.stderr, flush=True)
        write_jsonl(path, kept.values())
    return kept


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
            lls = [float(next(scores)) for _ in continuations]
            outs.append({"output": json.dumps(lls), "finished": True})
        return outs
    sampling = SamplingParams(max_new_tokens=min(max_new_tokens, task.max_new_tokens or max_new_tokens),
                              stop=task.stop)
    if task.kind == "text":
        completions = generator.complete(prompts, sampling)
    else:
        completions = _chat(generator, prompts, sampling, chat_template)
    return [{"output": c.text, "finished": c.finished} for (c,) in completions]


def _rows(task: Benchmark, limit: int | None = None, data: str | None = None) -> list[dict]:
    """The benchmark's rows, or those of the benchmark whose rows it reads (``task.data``), from
    ``data`` (a hub id or local copy; None: the packaged copy, else the hub id)."""
    return list((registry.benchmark(task.data) if task.data else task).load(data, limit=limit))


def benchmark_rows(task: Benchmark, limit: int | None = None, data: str | None = None,
                   instructions: tuple[str, ...] | None = None) -> tuple[list[dict], Counter]:
    """The rows a task scores (a ``limit`` as :meth:`~tulu_lib.evals.spec.Benchmark.load` takes
    it, from ``data`` as :func:`_rows` reads it; with ``instructions``, the first ``limit`` rows
    whose ``instruction_id_list`` names one of them) and the count of rows it cannot score here, by reason."""
    if instructions:
        wanted, rows = set(instructions), _rows(task, None, data)
        if rows and not all(isinstance(r.get("instruction_id_list"), list) for r in rows):
            raise ValueError(f"eval.benchmarks.{task.name}.instructions: {task.name}'s rows have no "
                             "instruction_id_list to select on (IFEval-style tasks only)")
        unknown = wanted - {i for r in rows for i in r["instruction_id_list"]}
        if unknown:
            raise ValueError(f"eval.benchmarks.{task.name}.instructions: no item tests {sorted(unknown)}")
        rows = [r for r in rows if wanted & set(r["instruction_id_list"])][:limit]
    else:
        rows = _rows(task, limit, data)
    skipped = Counter(why for r in rows if (why := task.unscorable and task.unscorable(r)))
    if skipped:
        rows = [r for r in rows if not task.unscorable(r)]
    return rows, skipped


def score_item(task: Benchmark, row: dict, out: dict, timeout_s: float | None = None) -> dict:
    """One saved item: its id, the generator's output record and the task's scores of it
    (:func:`item_scores`: bounded; a timeout or a crash scores 0 and says so)."""
    return {"id": row["id"], **out, **item_scores(task, row, out["output"], timeout_s)}


def item_scores(task: Benchmark, row: dict, output: str, timeout_s: float | None = None) -> dict:
    """``task.score(row, output)`` on the output's last :data:`~tulu_lib.evals.bounded.MAX_SCORED_CHARS`
    characters (``scored_chars`` says so when it was longer), within ``timeout_s`` seconds (None:
    :func:`evaluate`'s ``score_timeout_s``, else :data:`~tulu_lib.evals.bounded.DEFAULT_TIMEOUT_S`)
    in a scoring worker (:mod:`tulu_lib.evals.bounded`). A timeout or an exception scores 0 on the
    headline and every secondary metric, with ``scorer_status`` ``timeout`` or ``error`` (and
    ``scorer_error``): :func:`summarize` counts them. A judge endpoint that fails for good
    (:class:`~tulu_lib.generation.endpoint.EndpointError`) is raised: the run stops, resumable.
    Usage: ``item_scores(TASKS["math"], row, reply)["score"]``."""
    text = bounded.tail(output)
    cut = {"scored_chars": len(text)} if len(text) < len(output) else {}
    outcome = bounded.run(task.score, row, text, timeout_s=_BUDGET.get() if timeout_s is None else timeout_s,
                          label=f"{task.name} {row['id']}", reraise=(EndpointError,))
    value = outcome.value
    if outcome.ok and isinstance(value, dict) and isinstance(value.get("score"), int | float):
        return {**value, **cut}
    error = outcome.error or f"the scorer returned {type(value).__name__}, not a dict with a number 'score'"
    return {"score": 0.0, **dict.fromkeys(task.secondary, 0.0), **cut,
            "scorer_status": "timeout" if outcome.status == "timeout" else "error",
            **({"scorer_error": error} if outcome.status != "timeout" else {})}


def sample_record(task: Benchmark, row: dict, texts: Sequence[str], timeout_s: float | None = None) -> dict:
    """pass@k bookkeeping for one problem: how many samples, how many passed (each scored by
    :func:`item_scores`; those that timed out or crashed fail and are counted)."""
    scored = [item_scores(task, row, t, timeout_s) for t in texts]
    failed = Counter(s.get("scorer_status") for s in scored)
    return {"id": row["id"], "n": len(texts), "passed": sum(s["score"] == 1.0 for s in scored),
            **{FAILED[k]: failed[k] for k in FAILED if failed[k]}}


def generate_items(generator: Generator, task: Benchmark, rows: list[dict], shots: int, items_path: Path,
                   max_new_tokens: int = 512, batch_size: int = 8, chat_template=None,
                   repaired: Counter | None = None) -> dict[str, dict]:
    """Generate and score every row not yet in ``items_path`` (appended as produced: resumable).
    Each item carries its :func:`_stamp`; a saved one whose stamp does not hold (its score edited,
    or scored by other scoring code) is scored again from its saved output (:func:`_checked`)."""
    items_path.parent.mkdir(parents=True, exist_ok=True)
    version = scorer_version(task)
    rescore = lambda row, item: (score_item(task, row, {k: item[k] for k in GENERATED if k in item})  # noqa: E731
                                 if isinstance(item.get("output"), str) else None)
    done = _checked(items_path, _read_items(items_path), rows, version, rescore, repaired)
    todo = [r for r in rows if r["id"] not in done]
    with open(items_path, "a") as fh:
        for start in range(0, len(todo), batch_size):
            progress.report(f"{task.name} items", len(rows) - len(todo) + start, len(rows))
            chunk = todo[start:start + batch_size]
            outs = _outputs(generator, task, chunk, shots, max_new_tokens, chat_template)
            for row, out in zip(chunk, outs, strict=True):
                done[row["id"]] = item = _stamped(score_item(task, row, out), version)
                _append_item(fh, item)
    return done


def summarize(task: Benchmark, rows: list[dict], items: Mapping[str, dict], shots: int | None = None,
              skipped: Counter | None = None, samples: Mapping[str, dict] | None = None,
              note: str = "") -> dict:
    """The benchmark's row of results: headline with n and a 95% interval, the task's secondary
    metrics (percent), how many replies were cut off at the token budget, pass@10 from samples,
    and how many items (and samples) scored 0 because their scorer timed out (``timeouts``) or
    raised (``scorer_errors``), and how many outputs were scored on their tail only
    (``outputs_cut_for_scoring``)."""
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
    statuses = Counter(items[r["id"]].get("scorer_status") for r in rows if r["id"] in items)
    sampled_failures = [s for r in rows if samples and (s := samples.get(r["id"]))]
    for status, key in FAILED.items():
        summary[key] = statuses[status] + sum(s.get(key, 0) for s in sampled_failures)
    summary["outputs_cut_for_scoring"] = sum("scored_chars" in items.get(r["id"], {}) for r in rows)
    if summary["timeouts"] or summary["scorer_errors"]:
        summary["metric"] += (f"; {summary['timeouts']} timed out and {summary['scorer_errors']} crashed "
                              "the scorer, scored 0")
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
    rows, skipped = benchmark_rows(task, bp.limit, bp.data, bp.instructions)
    shots = task.default_shots if bp.shots is None else bp.shots
    folder = out_dir / name
    note = "; ".join(n for n in (
        "the model's own chat template" if chat_template is not None and task.kind == "chat" else "",
        f"only the items testing {', '.join(bp.instructions)}" if bp.instructions else "") if n)
    if not rows:
        return summarize(task, rows, {}, shots, skipped, note=note)
    repaired: Counter = Counter()
    items = generate_items(generator, task, rows, shots, folder / "items.jsonl", max_new_tokens,
                           batch_size, chat_template, repaired)
    samples = None
    if bp.samples:
        samples = _sample_pass_at_k(generator, task, rows, bp.samples, shots, max_new_tokens, folder,
                                    chat_template, repaired)
    # where the per-item scores are, so comparisons can pair on them (tulu_lib.core.stats)
    return {**summarize(task, rows, items, shots, skipped, samples, note=note),
            "items_path": str(folder / "items.jsonl"),
            **({"corrected_on_load": repaired["corrected"]} if repaired["corrected"] else {})}


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
                      chat_template=None, repaired: Counter | None = None) -> dict[str, dict]:
    """The paper's pass@10: ``samples`` completions per problem at T 0.8, top-p 0.95, saved with
    their texts and checked on load as :func:`generate_items` checks items."""
    path, version = folder / "samples.jsonl", scorer_version(task)

    def recount(row: dict, record: dict) -> dict | None:
        texts = record.get("outputs")
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
            return None  # saved before their texts were: sampled again
        return {**sample_record(task, row, texts), "outputs": texts}

    finished = _checked(path, _read_items(path), rows, version, recount, repaired)
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95, n=samples)
    with open(path, "a") as fh:
        for row in (r for r in rows if r["id"] not in finished):
            (outs,) = _chat(generator, [task.prompt(row, shots)], sampling, chat_template)
            texts = [c.text for c in outs]
            finished[row["id"]] = record = _stamped({**sample_record(task, row, texts), "outputs": texts},
                                                    version)
            _append_item(fh, record)
    return finished


def output_lines(fh: TextIO, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of an open text file for :func:`score_outputs`, never holding more than
    ``max_chars + 1`` characters of one: a longer line comes out cut there (without its newline,
    so it is counted as ``oversized``) and the rest of it is read past.
    Usage: ``score_outputs("gsm8k", output_lines(open(path, errors="replace")))``."""
    while line := fh.readline(max_chars + 1):
        if len(line) > max_chars and not line.endswith("\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith("\n"):
                pass
        yield line


def _output_record(line: str) -> dict | str:
    """One line of saved outputs as its record, or why it is not one (``oversized``, ``malformed``)."""
    if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
        return "oversized"
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return "malformed"
    if not isinstance(record, dict) or not isinstance(record.get("id"), str | int):
        return "malformed"
    texts = record.get("outputs")
    if isinstance(record.get("output"), str) or (
            isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        return record
    return "malformed"


def score_outputs(name: str, lines: Iterable[str], out_dir: str | Path | None = None,
                  timeout_s: float | None = None, data: str | None = None) -> dict:
    """Score saved outputs exactly as :func:`run_benchmark` does (same ``task.score`` under the
    same per-item budget, ``timeout_s``; same :func:`summarize`): ``lines`` are JSON objects
    ``{"id": ..., "output": ...}``, HumanEval's may carry ``"outputs": [...]`` (samples: pass@10,
    and pass@1 as c/n where no greedy ``output`` is given). Never fatal, all counted: lines that
    are not such an object (not JSON, nested too deeply, no string ``output``) as ``malformed``,
    lines over :data:`MAX_LINE_CHARS` as ``oversized``, ids the benchmark does not have as
    ``unknown_ids``, repeated ids as ``duplicates`` (the last wins), items whose scorer timed out
    or raised as ``timeouts`` / ``scorer_errors`` (scored 0). ``out_dir`` also gets
    ``<name>/items.jsonl`` and ``<name>/summary.json``, each written whole. ``data``: the
    benchmark's rows from a hub id or local copy (as ``eval.benchmarks.<name>.data``). A
    log-likelihood task (``choice``) cannot be scored from text: it raises ``ValueError``."""
    if name not in TASKS:
        raise KeyError(f"unknown benchmark {name!r}; scorable: {', '.join(TASKS)}")
    task = TASKS[name]
    if task.judge_score is not None:
        raise ValueError(f"{name} is scored by a judge model, not from outputs alone: "
                         "run it through 05_eval with eval.judge configured")
    if task.kind == "choice":
        raise ValueError(f"{name} is scored by the log-likelihoods of its choices, which need the model: "
                         "run it through 05_eval (a backend with loglikelihood(): hf or vllm)")
    note = "scored from saved outputs"
    all_rows = _rows(task, data=data)
    by_id = {r["id"]: r for r in all_rows}
    counts, skipped = Counter(), Counter()
    outputs: dict[str, dict] = {}
    for line in lines:
        if not line.strip():
            continue
        counts["lines"] += 1
        record = _output_record(line)
        if isinstance(record, str):
            counts[record] += 1
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
            samples[row["id"]] = sample_record(task, row, record["outputs"], timeout_s)
        if isinstance(record.get("output"), str):
            out = {"output": record["output"]}
            if isinstance(record.get("finished"), bool):
                out["finished"] = record["finished"]
            items[row["id"]] = score_item(task, row, out, timeout_s)
        else:
            s = samples[row["id"]]
            items[row["id"]] = {"id": row["id"], "score": s["passed"] / s["n"]}
            note = "pass@1 estimated as c/n from the samples where no greedy output was given"
    summary = summarize(task, rows, items, skipped=skipped, samples=samples or None, note=note)
    summary.update({k: counts[k] for k in ("lines", "malformed", "oversized", "unknown_ids", "duplicates")},
                   missing=len(all_rows) - len(rows) - sum(skipped.values()))
    if out_dir is not None:
        folder = Path(out_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "items.jsonl", (items[r["id"]] for r in rows))
        summary["items_path"] = str(folder / "items.jsonl")
        write_json(folder / "summary.json", _json_safe(summary))
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
             judge: Generator | None = None, score_timeout_s: float | None = None,
             safety_classifier: Generator | None = None) -> list[dict]:
    """One row per requested benchmark: a score, or the reason it was not run.

    ``chat_template``: None (chat prompts go through the generator's own template: the Tülu one
    for this project's models) or a tokenizer whose template renders them instead, continued as
    raw text through the generator's ``complete`` (see :func:`model_chat_template`); keep its
    ``out_dir`` apart from the Tülu-template one. ``judge``: a generator that answers the
    AlpacaEval pairwise question (e.g. ``OpenAIGenerator``); without one AlpacaEval is not run.
    ``safety_classifier``: a generator serving the safety suite's classifier (WildGuard); without
    one the safety benchmarks are not run (each benchmark's ``judge_role`` says which it needs).
    ``score_timeout_s``: each item's scoring budget (``eval.score_timeout_s``; None: the default,
    :data:`~tulu_lib.evals.bounded.DEFAULT_TIMEOUT_S`), see :func:`item_scores`."""
    token = _BUDGET.set(bounded.DEFAULT_TIMEOUT_S if score_timeout_s is None else score_timeout_s)
    try:
        graders = {"judge": judge, "safety_classifier": safety_classifier}
        return _evaluate(generator, requested, Path(out_dir), max_new_tokens, batch_size, chat_template,
                         graders)
    finally:
        _BUDGET.reset(token)


def _evaluate(generator: Generator, requested: dict[str, BenchmarkParams], out_dir: Path,
              max_new_tokens: int, batch_size: int, chat_template,
              graders: Mapping[str, Generator | None]) -> list[dict]:
    table = []
    for name, bp in requested.items():
        task = TASKS.get(name)
        grader = None if task is None or task.judge_score is None else graders.get(task.judge_role)
        if task is None or (task.judge_score is not None and grader is None):
            reason = not_run_reason(name) if task is None else task.not_run_without_judge
            table.append({"benchmark": name, "metric": reason, "n": 0, "score": math.nan})
            continue
        if task.judge_score is not None:
            task = dataclasses.replace(task, score=functools.partial(task.judge_score, grader))
        method, why = NEEDS.get(task.kind, (None, ""))
        if chat_template is not None and task.kind == "chat":
            method, why = "complete", "the model's own chat template is rendered as text"
        if method and not hasattr(generator, method):
            table.append({"benchmark": name, "n": 0, "score": math.nan, "metric":
                          f"not run: the {type(generator).__name__} backend has no {method}(): {why}"})
        else:
            try:
                table.append(run_benchmark(generator, name, bp, out_dir, max_new_tokens, batch_size,
                                           chat_template, task))
            except DataUnavailable as exc:
                table.append({"benchmark": name, "n": 0, "score": math.nan,
                              "metric": f"not run: its data is unreachable: {exc}"})
    return table


def evaluate_model(model: str, p, cache_root: str | Path, *,
                   benchmarks: dict[str, BenchmarkParams] | None = None, max_new_tokens: int | None = None,
                   chat_template=None, judge: Generator | None = None, tag: str = "",
                   safety_classifier: Generator | None = None) -> list[dict]:
    """:func:`evaluate` the model ``model`` on ``benchmarks`` (default: ``p.eval.benchmarks``) as
    ``p.eval`` says, its items kept under ``cache_root/<key>``; the key
    (:func:`tulu_lib.core.hashing.eval_key`) covers the model's files, the eval params and ``tag``
    (another prompt format, say), so a rerun with the same key resumes and reuses every item."""
    key = hashing.eval_key(assets.fingerprint(model), p.to_dict()["eval"], tag)
    return evaluate(generator_for(p, model), p.eval.benchmarks if benchmarks is None else benchmarks,
                    Path(cache_root) / key, max_new_tokens=max_new_tokens or p.eval.max_new_tokens,
                    batch_size=p.eval.batch_size, chat_template=chat_template, judge=judge,
                    safety_classifier=safety_classifier,
                    score_timeout_s=p.eval.score_timeout_s)


def paper_average(scores: dict[str, float]) -> float:
    """The paper's average: the unweighted mean of the benchmark scores (in percent)."""
    values = [v for v in scores.values() if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan
