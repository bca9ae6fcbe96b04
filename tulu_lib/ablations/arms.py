"""The one ablation mechanism: an ablation is a declared set of :class:`Arm` s that differ from
one another in one setting; :func:`run_arms` trains each through :func:`tulu_lib.train.entry.train`
(so a launched arm and one in the kernel train alike), keeps its row under the one key of
:func:`tulu_lib.core.hashing.arm_key` (a rerun with the same key reuses it, an interrupted arm starts
again), scores its checkpoint on ``eval.ablation_benchmarks`` and deletes its weights;
:func:`save_ablation` tables, draws and reads the result.

Scoring: :func:`score_row` keeps each benchmark's score and where its per-item scores are, so the
reading (:func:`read_ablation`) compares the expected-best arm with each other one paired on the
items both scored (:func:`tulu_lib.core.stats.paired_average`: every arm is scored on the same items,
the first ``limit`` rows of each benchmark), with n, the difference and its 95% interval, the test and
the smallest difference detectable, against the paper's difference where the reference CSV has it. A
table without items files is read by 95% intervals (:func:`tulu_lib.reporting.paper.rank_reading`).

The arms of each of the paper's ablations are declared in :mod:`~tulu_lib.ablations.sft_arms`,
:mod:`~tulu_lib.ablations.dpo_arms` and :mod:`~tulu_lib.ablations.rlvr_arms`.

Usage::

    arms = [Arm("sum", "sft", p, rows, main=True), Arm("mean", "sft", replace(p, sft=...), rows)]
    table, curves = run_arms(ablation, arms, start=p.model.name, p=p, out_dir=folder, main=result)
    save_ablation(stage, ablation, table)      # tables/<name>.csv, figures/<name>.png, the reading
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from tulu_lib.core import hashing, stats
from tulu_lib.core.assets import fingerprint
from tulu_lib.core.io import read_json, write_json
from tulu_lib.core.params import Params
from tulu_lib.data import loader
from tulu_lib.evals.suite import TASKS, average_score, evaluate_model
from tulu_lib.reporting import findings, paper
from tulu_lib.train import entry, rlvr
from tulu_lib.train.common import TrainResult

ITEMS = "items_paths"  # score_row's column: benchmark -> that benchmark's items.jsonl


def score_row(results: Sequence[Mapping]) -> dict:
    """One table row from :func:`tulu_lib.evals.suite.evaluate`'s results: each benchmark's score, the
    items scored, the paper's average with its 95% interval (:func:`tulu_lib.evals.suite.average_score`)
    and, under ``items_paths``, each benchmark's ``items_path`` (for the paired reading)."""

    row = {**{r["benchmark"]: r["score"] for r in results}, "items": sum(r["n"] for r in results),
           **average_score(results)}
    paths = {r["benchmark"]: str(r["items_path"]) for r in results if r.get("items_path")}
    if paths:
        row[ITEMS] = paths
    return row


@dataclass(frozen=True)
class Arm:
    """One arm of an ablation: what it trains (``stage``, an entry stage; None: the start checkpoint
    scored as it is) with which ``params`` on which ``data``; ``settings`` are what the table shows
    of the setting it differs in. ``main``: the stage's own run, scored from its result rather than
    trained again."""

    label: Any
    stage: str | None
    params: Params
    data: datasets.Dataset | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    main: bool = False


@dataclass(frozen=True)
class Ablation:
    """One of the paper's ablations as the workbook reports it."""

    name: str  # tables/<name>.csv, figures/<name>.png
    ref: str  # the paper item (tulu_lib.reporting.paper.PAPER_ITEMS), whose finding the reading tests
    x: str  # the swept column
    expected_best: str  # the variant the paper found best: a label, or "first"/"last" of the sweep
    compared: tuple[str, ...] = ()  # the variants the reading ranks (default: all)
    paper_rows: Mapping[str, str] = dataclasses.field(default_factory=dict)  # variant -> CSV model
    note: str = ""  # what the stand-in can and cannot show
    # a finding of tulu_lib.reporting.findings this ablation tests, non-inferiority of one arm
    # against another: (finding key, the baseline arm, the arm the paper found at least as good)
    finding: tuple[str, str, str] | None = None


def cached_row(folder: Path, key: str, compute) -> dict:
    """An arm's table row, kept in ``folder/result.json`` with ``key`` (everything the arm depends
    on): the kept row when the key matches, else ``compute()`` in a fresh ``folder``, written whole
    or not at all (an interrupted arm starts again)."""
    done = folder / "result.json"
    finished = read_json(done, "computing this arm again")  # None when missing
    if finished and finished.get("key") == key and "row" in finished:
        return finished["row"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    row = compute()
    write_json(done, {"key": key, "row": row}, indent=None)
    return row


def arm_key(arm: Arm, start: str, p: Params) -> str:
    """The arm's cache key (:func:`tulu_lib.core.hashing.arm_key`): its stage's params section, the
    seed, the model, the ablation scoring, the start checkpoint and its rows."""
    section = {"sft": "sft", "dpo": "dpo", "rlvr": "rlvr", None: None}[arm.stage]
    return hashing.arm_key(
        stage=arm.stage, section=dataclasses.asdict(getattr(arm.params, section)) if section else None,
        launch=dataclasses.asdict(arm.params.launch), seed=arm.params.seed, model=dataclasses.asdict(p.model),
        scoring=hashing.scoring_view(p.to_dict()), start=fingerprint(start),
        rows=hashing.rows_fingerprint(arm.data) if arm.data is not None else None)


def _train_summary(stage: str | None, result: TrainResult | None, run_dir: Path | None,
                   data: datasets.Dataset | None, seed: int) -> dict:
    """What the table shows of an arm's training: steps, and per stage its data and end state."""
    if result is None:
        return {}
    logs = pd.DataFrame(result.log_history)
    losses = logs["loss"].dropna() if "loss" in logs else pd.Series(dtype=float)
    steps = int(logs["step"].max()) if "step" in logs and len(logs) else 0
    if stage == "sft":
        return {"rows": len(data), "steps": steps}
    if stage == "dpo":
        return {"pairs": len(data), "unique prompts": len({loader.prompt_key(q) for q in data["prompt"]}),
                "steps": steps, "final loss": float(losses.iloc[-1]) if len(losses) else None}
    table = rlvr.logs_table(result.log_history)
    out = {"steps": int(table["step"].max()) if len(table) else 0, "seconds": round(result.seconds),
           "final KL": rlvr.final_kl(table)}
    records = rlvr.rollout_records(run_dir)
    if not records.empty:
        for quantity, name in (("reward", "reward (last quarter)"), ("verified", "% verified (last quarter)"),
                               ("truncated", "% cut off (last quarter)")):
            out[name] = rlvr.reward_change(records, quantity, seed=seed)["mean_b"]
    return out


def _drop_weights(run_dir: Path) -> None:
    """An arm's checkpoints and final weights, once scored (its logs and rollout records stay)."""
    for folder in [*run_dir.glob("checkpoint-*"), run_dir / "final"]:
        shutil.rmtree(folder, ignore_errors=True)


def run_arms(ablation: Ablation, arms: Sequence[Arm], *, start: str, p: Params, out_dir: str | Path,
             main: TrainResult | None = None, main_dir: str | Path | None = None,
             eval_cache: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Train (or reuse) and score each arm: the ablation's table, one row per arm (``ablation.x`` =
    its label, its settings, :func:`_train_summary`, :func:`score_row` of its checkpoint), and label ->
    its training log (for curves). ``main``/``main_dir``: the stage's own run and its folder, scored
    for the arm marked ``main``. Arms live in ``out_dir/<arm key>/``; an arm shared by two
    ablations (same key) trains once. ``eval_cache``: where the items of the checkpoints that outlive
    their arm (the stage's own run, an untrained start) are kept, the run's ``cache/eval``, so that
    05_eval reuses them (:func:`tulu_lib.evals.suite.evaluate_model`'s key: the same weights, the same
    eval params); a trained arm's items stay in its folder, as its weights are deleted."""
    out_dir = Path(out_dir)
    rows, curves = [], {}
    for arm in arms:
        key = arm_key(arm, start, p)
        folder = out_dir / key

        def compute(arm=arm, folder=folder) -> dict:
            result, run_dir, checkpoint = None, None, start
            if arm.main:
                if main is None:
                    raise ValueError(f"{ablation.name}: arm {arm.label!r} is the stage's own run; pass main=")
                result, run_dir, checkpoint = main, Path(main_dir or main.checkpoint.parent), main.checkpoint
            elif arm.stage is not None:
                run_dir = folder / "train"
                result = entry.train(arm.stage, arm.params, model=start, data=arm.data, out=run_dir,
                                     curves=f"{ablation.name}/{arm.label}")
                checkpoint = result.checkpoint
            if result is not None:
                pd.DataFrame(result.log_history).to_csv(folder / "log.csv", index=False)
            kept = eval_cache is not None and (arm.main or arm.stage is None)
            scores = evaluate_model(str(checkpoint), p, eval_cache if kept else folder / "eval",
                                    benchmarks=p.eval.ablation())
            row = {**arm.settings, **_train_summary(arm.stage, result, run_dir, arm.data, p.seed),
                   **score_row(scores)}
            if run_dir is not None and not arm.main:
                _drop_weights(run_dir)
            return row

        row = cached_row(folder, key, compute)
        rows.append({ablation.x: arm.label, **row})
        log = folder / "log.csv"
        curves[str(arm.label)] = pd.read_csv(log) if log.is_file() else pd.DataFrame()
    return pd.DataFrame(rows), curves


def paper_item(ref: str):
    """The :data:`tulu_lib.reporting.paper.PAPER_ITEMS` entry for ``ref``."""

    return next(item for item in paper.PAPER_ITEMS if item.ref == ref)


def _row_paths(row: Mapping) -> dict[str, str] | None:
    """benchmark -> items_path of a table row with ``items_paths`` (a dict, or its JSON); None
    where the row has none."""
    paths = row.get(ITEMS)
    if isinstance(paths, str):
        try:
            paths = json.loads(paths)
        except json.JSONDecodeError:
            return None
    return dict(paths) if isinstance(paths, Mapping) and paths else None


def _row_items(row: Mapping) -> dict[str, dict] | None:
    """benchmark -> id -> score for a table row with ``items_paths`` (:func:`_row_paths`); None
    where the row has none or a file is gone."""

    if (paths := _row_paths(row)) is None:
        return None
    items = {bench: stats.item_scores(path) for bench, path in paths.items()}
    return None if any(v is None for v in items.values()) else items


def paired_reading(rows: Mapping[str, Mapping], expected_best: str, claim: str,
                   paper_effects: Mapping[str, float | None] | None = None) -> str | None:
    """``expected_best`` against each other row, paired on the items both scored.

    ``rows``: label → a :func:`score_row`; ``paper_effects``: label → the paper's
    ``best − label`` difference (pp), where known. The overall verdict is the one most against
    the paper (:func:`tulu_lib.core.stats.worst_verdict`): "X is best" holds only as far as it holds
    against every other arm. None where a row has no items files (read by intervals then)."""

    items = {label: _row_items(r) for label, r in rows.items()}
    if expected_best not in rows or len(rows) < 2:
        return f"Not comparable: need {expected_best!r} and at least one other result."
    if any(v is None for v in items.values()):
        return None
    best, parts, verdicts = items[expected_best], [], []
    for label, other in items.items():
        if label == expected_best:
            continue
        shared = [b for b in best if b in other]
        effect = (paper_effects or {}).get(label)
        c = stats.paired_average({b: (other[b], best[b]) for b in shared}, paper_effect=effect)
        verdicts.append(stats.verdict(c, +1))
        a, b = _row_paths(rows[label]), _row_paths(rows[expected_best])
        parts.append(stats.comparison_line(f"{label} → {expected_best}", c, +1)
                     + stats.changed_outputs([(a[bench], b[bench]) for bench in shared]))
    head = stats.worst_verdict(verdicts)
    return (f"{head}. Paper: {claim} Ours (small scale), {expected_best} against each other arm, "
            "paired on the items both scored (mean of the per-benchmark differences, 95% CI, smallest "
            "difference detectable at 95% with 80% power): " + "; ".join(parts) + ".")


def paper_effects(ablation: Ablation, best: str, labels: Sequence[str]) -> dict[str, float | None]:
    """label → the paper's ``best − label`` average (pp) where the reference CSV has both
    (``ablation.paper_rows`` names their rows of ``ablation.ref``), else None."""

    ref = paper.reported().query("table == @ablation.ref and benchmark == 'Avg'").set_index("model")["score"]
    value = {label: float(ref[name]) for label in [best, *labels]
             if (name := ablation.paper_rows.get(label)) is not None and name in ref.index}
    return {label: round(value[best] - value[label], 6) if best in value and label in value else None
            for label in labels}


def read_ablation(ablation: Ablation, table: pd.DataFrame) -> str:
    """The paper's finding on our table: the expected-best variant against each other compared
    one, paired on items (:func:`paired_reading`, against :func:`paper_effects`); a table
    without items files by 95% intervals (:func:`tulu_lib.reporting.paper.rank_reading`)."""

    labels = table[ablation.x].astype(str).tolist()
    best = {"first": labels[0], "last": labels[-1]}.get(ablation.expected_best, ablation.expected_best)
    records = {label: r for label, r in zip(labels, table.to_dict("records"), strict=True)
               if not ablation.compared or label in ablation.compared}
    claim = paper_item(ablation.ref).finding
    effects = paper_effects(ablation, best, [k for k in records if k != best])
    line = paired_reading({f"{ablation.x} {k}": r for k, r in records.items()}, f"{ablation.x} {best}",
                          claim, {f"{ablation.x} {k}": v for k, v in effects.items()})
    if line is not None:
        return line
    scores = {f"{ablation.x} {label}": (r["average"], r["ci95_low"], r["ci95_high"])
              for label, r in records.items()}
    return paper.rank_reading(scores, f"{ablation.x} {best}", claim)


def save_ablation(stage, ablation: Ablation, table: pd.DataFrame) -> str:
    """Save ``tables/<name>.csv`` (with the paper's numbers where the reference CSV has them) and
    ``figures/<name>.png``, captioned with the paper's item and finding; record the reading."""

    item = paper_item(ablation.ref)
    table = table.copy()
    if ablation.paper_rows:  # the reported average where the reference CSV has it, else the words
        ref = paper.reported().query("table == @ablation.ref and benchmark == 'Avg'")
        ref = ref.set_index("model")["score"]
        names = [ablation.paper_rows.get(str(v), "") for v in table[ablation.x]]
        table[f"paper ({ablation.ref})"] = [ref.get(name, name) for name in names]
    caption = f"{item.ref} in miniature: {item.title}. Paper: {item.finding} Here: {ablation.note}."
    stage.save_table(table.drop(columns=[ITEMS], errors="ignore"), ablation.name, caption=caption)
    stage.figure(ablation.name, "sweep_scores", {"table": ablation.name}, caption=caption, x=ablation.x,
                 benchmarks=[c for c in table.columns if c in TASKS],
                 title=f"{item.ref} in miniature: {item.title}")
    line = read_ablation(ablation, table)  # table still has the items paths
    stage.reading(item.ref, line)
    if ablation.finding:
        stage.finding(noninferiority_finding(ablation, table))
    return line


def noninferiority_finding(ablation: Ablation, table: pd.DataFrame) -> dict:
    """``ablation.finding``: its arm against the baseline arm, paired on the items both scored (the
    mean of per-benchmark differences), read for non-inferiority at
    :data:`~tulu_lib.reporting.findings.NONINFERIORITY_MARGIN_PP`."""
    key, baseline, arm = ablation.finding
    rows = {str(r[ablation.x]): r for r in table.to_dict("records")}
    if baseline not in rows or arm not in rows:
        return findings.not_measured(key, f"{ablation.x} needs both {baseline} and {arm}")
    a, b = _row_items(rows[baseline]), _row_items(rows[arm])
    if a is None or b is None:
        return findings.not_measured(key, "an arm's items are missing")
    comparison = stats.paired_average({bench: (a[bench], b[bench]) for bench in b if bench in a})
    return findings.finding_row(key, comparison, margin=findings.NONINFERIORITY_MARGIN_PP,
                                note=f"{arm} − {baseline} on {', '.join(sorted(b))}")


def curves_table(curves: Mapping[str, pd.DataFrame], label: str = "{}") -> pd.DataFrame:
    """Runs' logs (label -> log table) as one table with a ``run`` column (``label`` formats each)."""
    return pd.concat([log.assign(run=label.format(k)) for k, log in curves.items()], ignore_index=True)


def run_and_save(stage, ablation: Ablation, arms: Sequence[Arm], **run) -> tuple[pd.DataFrame, dict]:
    """:func:`run_arms` (``run``: its keyword arguments; ``eval_cache``: the run's ``cache/eval``),
    then :func:`save_ablation`; the table as shown (no items paths) and each arm's training log."""
    table, curves = run_arms(ablation, arms, **{"eval_cache": stage.run_dir / "cache" / "eval", **run})
    save_ablation(stage, ablation, table)
    return table.drop(columns=[ITEMS], errors="ignore"), curves
