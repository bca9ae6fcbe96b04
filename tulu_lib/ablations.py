"""The paper's ablations as the workbook reports them: score a checkpoint, table, figure, reading.

Every ablation (SFT sum vs mean and mix subsamples, the DPO algorithms and data sweeps, ...)
ends the same way: each variant's checkpoint is scored on ``eval.ablation_benchmarks``
(:func:`score_row`), the variants are tabled and drawn, and the paper's finding is read
against ours by 95% intervals (:func:`read_ablation`, :func:`tulu_lib.paper.rank_reading`).

Usage::

    row = score_row(evaluate_checkpoint(checkpoint, p, out_dir))
    save_ablation(stage, Ablation("fig04_sft_subsamples", "Figure 4", "SFT mix", "full mix"), table)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


def score_row(results: Sequence[Mapping]) -> dict:
    """One table row from :func:`tulu_lib.evals.evaluate`'s results: each benchmark's score, the
    items scored, and the paper's average with its 95% interval (:func:`tulu_lib.evals.average_score`)."""
    from tulu_lib.evals import average_score

    return {**{r["benchmark"]: r["score"] for r in results}, "items": sum(r["n"] for r in results),
            **average_score(results)}


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


def paper_item(ref: str):
    """The :data:`tulu_lib.paper.PAPER_ITEMS` entry for ``ref``."""
    from tulu_lib import paper

    return next(item for item in paper.PAPER_ITEMS if item.ref == ref)


def read_ablation(ablation: Ablation, table: pd.DataFrame) -> str:
    """:func:`tulu_lib.paper.rank_reading` of the paper's finding on our table (average, 95% CI)."""
    from tulu_lib import paper

    labels = table[ablation.x].astype(str).tolist()
    best = {"first": labels[0], "last": labels[-1]}.get(ablation.expected_best, ablation.expected_best)
    scores = {f"{ablation.x} {label}": (r["average"], r["ci95_low"], r["ci95_high"])
              for label, r in zip(labels, table.to_dict("records"), strict=True)
              if not ablation.compared or label in ablation.compared}
    return paper.rank_reading(scores, f"{ablation.x} {best}", paper_item(ablation.ref).finding)


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
    stage.save_table(table, ablation.name, caption=caption)
    benchmarks = [c for c in table.columns if c in TASKS]
    fig = plots.sweep_scores(table, ablation.x, benchmarks, f"{item.ref} in miniature: {item.title}")
    stage.save_figure(fig, ablation.name, caption=caption)
    line = read_ablation(ablation, table)
    stage.reading(item.ref, line)
    return line
