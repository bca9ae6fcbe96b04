"""Figures for the workbook, in one style: titles, labelled axes with units, legends.

Every figure is drawn from tables a stage saved (``tables/*.csv``): :data:`PLOTS` names the
drawing functions, :func:`draw` calls one on tables and JSON-able arguments, so a run's figures
can be drawn again from its tables alone (``tulu-repro report``) after a change here, without
training anything. Colours are fixed per training stage and per data source so that the same
thing has the same colour in every figure of a report.

Usage::

    fig = draw("sweep_scores", {"table": table}, {"x": "prompts", "benchmarks": ["gsm8k"], "title": ""})
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

STAGE_COLOURS = {"base": "#7f7f7f", "sft": "#1f77b4", "dpo": "#ff7f0e", "rlvr": "#2ca02c",
                 "paper": "#9467bd"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]


def colour_for(name: str, names: list[str]) -> str:
    """A training stage's colour wherever a label names one ("dpo", "from SFT"), else the palette's."""
    stage = next((w for w in name.lower().split() if w in STAGE_COLOURS), None)
    return STAGE_COLOURS[stage] if stage else PALETTE[sorted(names).index(name) % len(PALETTE)]


def mix_composition(hist: pd.DataFrame, title: str = "SFT mix") -> plt.Figure:
    """Examples per source and prompt+completion length (tokens) per source.

    ``hist`` is :func:`tulu_lib.data.loader.length_histogram`'s table: ``source``, ``tokens_from``,
    ``tokens_to``, ``examples`` (one row per source and length bin).
    """
    sources = sorted(hist["source"].unique())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    counts = hist.groupby("source")["examples"].sum().reindex(sources)
    left.barh(sources, counts.values, color=[colour_for(s, sources) for s in sources])
    left.set_xlabel("examples (count)")
    left.set_ylabel("source")
    left.set_title(f"{title}: examples by source")
    for y, n in enumerate(counts.values):
        left.text(n, y, f" {n:,}", va="center", fontsize=9)
    for s in sources:
        sub = hist[hist["source"] == s].sort_values("tokens_from")
        right.bar(sub["tokens_from"], sub["examples"], width=sub["tokens_to"] - sub["tokens_from"],
                  align="edge", alpha=0.55, label=s, color=colour_for(s, sources))
    right.set_xlabel("prompt + completion length (tokens)")
    right.set_ylabel("examples (count)")
    right.set_title(f"{title}: length by source")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _runs(logs: pd.DataFrame, by: str | None, label: str) -> dict[str, pd.DataFrame]:
    """A long log table's runs: label -> its rows (in order of appearance), or the one run ``label``."""
    if by is None or by not in logs:
        return {label: logs}
    return {str(k): g for k, g in logs.groupby(by, sort=False)}


def rlvr_curves(logs: pd.DataFrame, domains: list[str],
                title: str = "RLVR training curves per verifiable domain",
                held_out: pd.DataFrame | None = None, by: str | None = None) -> plt.Figure:
    """Figure 19 layout: rows = verifiable reward, KL, response length (and held-out accuracy);
    a column per domain.

    ``logs`` is TRL's log history as a table, one line per value of its ``by`` column (a run
    label, e.g. "from DPO"; without ``by``, one run); ``held_out`` (optional) has one row per (step,
    domain) with ``accuracy``, ``ci95_low``, ``ci95_high`` — step 0 is the starting model — and
    adds the test-score row.
    """
    logs = _runs(logs, by, "RLVR")
    rows = [("rewards/{d}/mean", "verifiable reward"), ("{d}/kl", "KL to reference"),
            ("{d}/response_length", "response length (tokens)")]
    n_rows = len(rows) + (held_out is not None)
    fig, axes = plt.subplots(n_rows, len(domains), figsize=(3.6 * len(domains), 2.5 * n_rows),
                             squeeze=False, sharex=True)
    labels = sorted(logs)
    for c, domain in enumerate(domains):
        axes[0, c].set_title(domain)
        for r, (key, ylabel) in enumerate(rows):
            ax = axes[r, c]
            for label in labels:
                df = logs[label]
                column = key.format(d=domain)
                if column in df:
                    sub = df[["step", column]].dropna()
                    ax.plot(sub["step"], sub[column], marker=".", label=label,
                            color=colour_for(label, labels))
            if c == 0:
                ax.set_ylabel(ylabel)
        if held_out is not None:
            ax = axes[-1, c]
            sub = held_out[held_out["domain"] == domain].sort_values("step")
            low, high = sub["accuracy"] - sub["ci95_low"], sub["ci95_high"] - sub["accuracy"]
            ax.errorbar(sub["step"], 100 * sub["accuracy"], yerr=[100 * low, 100 * high],
                        marker="o", capsize=3, color="black")
            if c == 0:
                ax.set_ylabel("held-out accuracy (%, 95% CI)")
        axes[-1, c].set_xlabel("training step")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(logs: pd.DataFrame, keys: list[str], title: str, by: str = "run") -> plt.Figure:
    """One panel per logged quantity, one line per run (``by``: e.g. sum vs mean loss)."""
    logs = _runs(logs, by, "run")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), squeeze=False)
    labels = sorted(logs)
    for ax, key in zip(axes[0], keys, strict=True):
        for label in labels:
            df = logs[label]
            if key in df:
                sub = df[["step", key]].dropna()
                ax.plot(sub["step"], sub[key], marker=".", label=label, color=colour_for(label, labels))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(key)
        ax.set_title(key)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_scores(table: pd.DataFrame, x: str, benchmarks: list[str], title: str) -> plt.Figure:
    """An ablation's scores against its swept variable: the average with its 95% interval
    (``average``, ``ci95_low``, ``ci95_high``) and each benchmark's score, in percent.

    Numeric ``x`` (e.g. unique prompts) is drawn as lines, labels (e.g. reused/new) as bars.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    numeric = pd.api.types.is_numeric_dtype(table[x])
    pos = table[x] if numeric else range(len(table))
    err = [table["average"] - table["ci95_low"], table["ci95_high"] - table["average"]]
    if numeric:
        ax.errorbar(pos, table["average"], yerr=err, marker="o", capsize=4, lw=2, color="black",
                    label="average (95% CI)", zorder=3)
    else:
        ax.bar(pos, table["average"], yerr=err, capsize=4, color="#c7c7c7", label="average (95% CI)")
    ax.set_xticks(list(pos), [str(v) for v in table[x]])
    for b in benchmarks:
        ax.plot(pos, table[b], marker=".", ls="--" if numeric else "none", alpha=0.7, label=b,
                color=colour_for(b, benchmarks))
    ax.set_xlabel(x)
    ax.set_ylabel("score (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def memory_bars(table: pd.DataFrame, value: str, ratio: str, ylabel: str, title: str) -> plt.Figure:
    """Figure 17 layout: one bar per configuration (``config``), annotated with its ratio to the first."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(table))]
    bars = ax.bar(range(len(table)), table[value], color=colours)
    for bar, r in zip(bars, table[ratio], strict=True):
        ax.annotate(f"{r:.2f}×", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(table)), table["config"], rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def rating_distributions(responses: pd.DataFrame, aspects: list[str], title: str) -> plt.Figure:
    """The judge's 1–5 ratings: one panel per aspect, one colour per pool model; a bar per rating,
    or (fractional ratings, ``judge_mode: expected``) a histogram in 0.1-point bins."""
    fig, axes = plt.subplots(1, len(aspects), figsize=(3.4 * len(aspects), 3.2), squeeze=False, sharey=True)
    rated = responses.dropna(subset=aspects)
    models = sorted(rated["model"].unique()) if len(rated) else []
    width = 0.8 / max(len(models), 1)
    whole = bool(len(rated)) and bool((rated[aspects].astype(float) % 1 == 0).all().all())
    for ax, aspect in zip(axes[0], aspects, strict=True):
        for k, model in enumerate(models):
            values = rated.loc[rated["model"] == model, aspect].astype(float)
            if not whole:
                ax.hist(values, bins=[1 + 0.1 * b for b in range(41)], histtype="step", lw=1.5, label=model,
                        color=colour_for(model, models))
                continue
            counts = values.astype(int).value_counts()
            heights = [counts.get(r, 0) for r in range(1, 6)]
            ax.bar([r - 0.4 + width * (k + 0.5) for r in range(1, 6)], heights, width, label=model,
                   color=colour_for(model, models))
        ax.set_xticks(range(1, 6))
        ax.set_xlabel(f"{aspect.replace('_', ' ')} (1-5)")
        ax.set_title(aspect.replace("_", " "))
    axes[0, 0].set_ylabel("responses (count)")
    if models:
        axes[0, 0].legend(fontsize=8)
    else:
        axes[0, 0].text(0.5, 0.5, "no parsed rating", ha="center", transform=axes[0, 0].transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def preference_margins(pairs: pd.DataFrame, title: str) -> plt.Figure:
    """Chosen vs rejected: the mean-rating margin per pair, and reply lengths (length bias)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if len(pairs):
        whole = bool((pairs["margin"] * 4 % 1 == 0).all())  # joint/per_aspect means move in quarter points
        left.hist(pairs["margin"], bins=[0.125 + 0.25 * k for k in range(17)] if whole else 20,
                  color=STAGE_COLOURS["dpo"])
        right.scatter(pairs["rejected_tokens"], pairs["chosen_tokens"], s=18, color=STAGE_COLOURS["dpo"])
        top = max(pairs["chosen_tokens"].max(), pairs["rejected_tokens"].max(), 1)
        right.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="equal length")
        right.legend(fontsize=8)
    else:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no pairs", ha="center", transform=ax.transAxes)
    left.set_xlabel("chosen − rejected mean rating (points)")
    left.set_ylabel("pairs (count)")
    left.set_title("rating margin")
    right.set_xlabel("rejected reply (tokens)")
    right.set_ylabel("chosen reply (tokens)")
    right.set_title("length: above the line = chosen longer")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


PLOTS = {f.__name__: f for f in (mix_composition, rlvr_curves, training_curves, sweep_scores, memory_bars,
                                   rating_distributions, preference_margins)}


def draw(plot: str, tables: dict[str, pd.DataFrame], args: dict) -> plt.Figure:
    """The figure :data:`PLOTS` ``[plot]`` draws from ``tables`` (its table arguments) and ``args``."""
    if plot not in PLOTS:
        raise KeyError(f"unknown plot {plot!r}; plots: {', '.join(PLOTS)}")
    return PLOTS[plot](**tables, **args)
