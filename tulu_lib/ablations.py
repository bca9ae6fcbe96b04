"""The paper's ablations as the workbook reports them: score a checkpoint, table, figure, reading.

Every ablation (SFT sum vs mean and mix subsamples, the DPO algorithms and data sweeps, ...)
ends the same way: each variant's checkpoint is scored on ``eval.ablation_benchmarks``
(:func:`score_row`, which keeps where each benchmark's per-item scores are), the variants are
tabled and drawn, and the paper's finding is read against ours (:func:`read_ablation`): the
expected-best variant against each other one, paired on the items both scored
(:func:`tulu_lib.stats.paired_average`: every variant is scored on the same benchmark items,
the first ``limit`` rows of each), with n, the difference and its 95% interval, the test and
the smallest difference detectable, read against the paper's difference where the reference
CSV has it. A table without items files is read by 95% intervals
(:func:`tulu_lib.paper.rank_reading`).

Usage::

    row = score_row(evaluate_checkpoint(checkpoint, p, out_dir))
    save_ablation(stage, Ablation("fig04_sft_subsamples", "Figure 4", "SFT mix", "full mix"), table)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ITEMS = "items_paths"  # score_row's column: benchmark -> that benchmark's items.jsonl


def score_row(results: Sequence[Mapping]) -> dict:
    """One table row from :func:`tulu_lib.evals.evaluate`'s results: each benchmark's score, the
    items scored, the paper's average with its 95% interval (:func:`tulu_lib.evals.average_score`)
    and, under ``items_paths``, each benchmark's ``items_path`` (for the paired reading)."""
    from tulu_lib.evals import average_score

    row = {**{r["benchmark"]: r["score"] for r in results}, "items": sum(r["n"] for r in results),
           **average_score(results)}
    paths = {r["benchmark"]: str(r["items_path"]) for r in results if r.get("items_path")}
    if paths:
        row[ITEMS] = paths
    return row


@dataclass(frozen=True)
class Ablation:
    """One of the paper's ablations as the workbook reports it."""

    name: str  # tables/<name>.csv, figures/<name>.png
    ref: str  # the paper item (tulu_lib.paper.PAPER_ITEMS), whose finding the reading tests
    x: str  # the swept column
    expected_best: str  # the variant the paper found best: a label, or "first"/"last" of the sweep
    compared: tuple[str, ...] = ()  # the variants the reading ranks (default: all)
    paper_rows: Mapping[str, str] = dataclasses.field(default_factory=dict)  # variant -> CSV model
    note: str = ""  # what the stand-in can and cannot show


def cached_row(folder: Path, key: str, compute) -> dict:
    """An ablation variant's table row, kept in ``folder/result.json`` with ``key`` (everything the
    variant depends on): the kept row when the key matches, else ``compute()`` in a fresh
    ``folder``, written whole or not at all (an interrupted variant starts again)."""
    from tulu_lib.workbook import read_json, write_json

    done = folder / "result.json"
    finished = read_json(done, "computing this variant again")  # None when missing
    if finished and finished.get("key") == key and "row" in finished:
        return finished["row"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    row = compute()
    write_json(done, {"key": key, "row": row}, indent=None)
    return row


def paper_item(ref: str):
    """The :data:`tulu_lib.paper.PAPER_ITEMS` entry for ``ref``."""
    from tulu_lib import paper

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
    from tulu_lib import stats

    if (paths := _row_paths(row)) is None:
        return None
    items = {bench: stats.item_scores(path) for bench, path in paths.items()}
    return None if any(v is None for v in items.values()) else items


def paired_reading(rows: Mapping[str, Mapping], expected_best: str, claim: str,
                   paper_effects: Mapping[str, float | None] | None = None) -> str | None:
    """``expected_best`` against each other row, paired on the items both scored.

    ``rows``: label → a :func:`score_row`; ``paper_effects``: label → the paper's
    ``best − label`` difference (pp), where known. The overall verdict is the one most against
    the paper (:func:`tulu_lib.stats.worst_verdict`): "X is best" holds only as far as it holds
    against every other arm. None where a row has no items files (read by intervals then)."""
    from tulu_lib import stats

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


def results_reading(results: Mapping[str, Sequence[Mapping]], expected_best: str, claim: str) -> str:
    """The reading of a two-or-more-way comparison from :func:`tulu_lib.evals.evaluate`'s results
    per label: paired on items (:func:`paired_reading`), else by the averages' 95% intervals."""
    from tulu_lib import paper

    rows = {label: score_row(rs) for label, rs in results.items()}
    line = paired_reading(rows, expected_best, claim)
    if line is not None:
        return line
    return paper.rank_reading({k: (r["average"], r["ci95_low"], r["ci95_high"]) for k, r in rows.items()},
                              expected_best, claim)


def paper_effects(ablation: Ablation, best: str, labels: Sequence[str]) -> dict[str, float | None]:
    """label → the paper's ``best − label`` average (pp) where the reference CSV has both
    (``ablation.paper_rows`` names their rows of ``ablation.ref``), else None."""
    from tulu_lib import paper

    ref = paper.reported().query("table == @ablation.ref and benchmark == 'Avg'").set_index("model")["score"]
    value = {label: float(ref[name]) for label in [best, *labels]
             if (name := ablation.paper_rows.get(label)) is not None and name in ref.index}
    return {label: round(value[best] - value[label], 6) if best in value and label in value else None
            for label in labels}


def read_ablation(ablation: Ablation, table: pd.DataFrame) -> str:
    """The paper's finding on our table: the expected-best variant against each other compared
    one, paired on items (:func:`paired_reading`, against :func:`paper_effects`); a table
    without items files by 95% intervals (:func:`tulu_lib.paper.rank_reading`)."""
    from tulu_lib import paper

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
    from tulu_lib import paper, plots
    from tulu_lib.evals import TASKS

    item = paper_item(ablation.ref)
    table = table.copy()
    if ablation.paper_rows:  # the reported average where the reference CSV has it, else the words
        ref = paper.reported().query("table == @ablation.ref and benchmark == 'Avg'")
        ref = ref.set_index("model")["score"]
        names = [ablation.paper_rows.get(str(v), "") for v in table[ablation.x]]
        table[f"paper ({ablation.ref})"] = [ref.get(name, name) for name in names]
    caption = f"{item.ref} in miniature: {item.title}. Paper: {item.finding} Here: {ablation.note}."
    stage.save_table(table.drop(columns=[ITEMS], errors="ignore"), ablation.name, caption=caption)
    benchmarks = [c for c in table.columns if c in TASKS]
    fig = plots.sweep_scores(table, ablation.x, benchmarks, f"{item.ref} in miniature: {item.title}")
    stage.save_figure(fig, ablation.name, caption=caption)
    line = read_ablation(ablation, table)  # table still has the items paths
    stage.reading(item.ref, line)
    return line
