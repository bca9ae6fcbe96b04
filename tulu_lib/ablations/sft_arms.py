"""The paper's SFT ablations (§4) as arms: the loss aggregation (sum vs mean), Figure 4's
stratified subsamples of the mix, and the mix without one source at a time.

Every arm trains from the start model with ``sft``'s optimiser and seed; the recipe's own run
(the stage's, ``main``) is scored, not trained again. A mix arm trains as many passes over its
rows as the full mix: with ``max_steps`` set, ``max_steps × len(arm rows) / len(rows)`` steps
(with epochs, as is).

Usage::

    arms.run_arms(LOSS, loss_arms(p, rows), start=p.model.name, p=p, out_dir=d, main=result)
    for name, group in mix_arms(p, rows).items(): arms.run_arms(MIX[name], group, ...)
"""

from __future__ import annotations

import dataclasses

import datasets

from tulu_lib.ablations.arms import Ablation, Arm
from tulu_lib.core.params import Params
from tulu_lib.data import loader

LOSS = Ablation("sft_sum_vs_mean", "§4 batch aggregation", "sft loss", "sum",
                note="the run's SFT rows, the same start, steps and seed; only the loss aggregation differs")
MIX = {a.name: a for a in (
    Ablation("fig04_sft_subsamples", "Figure 4", "SFT mix", "full mix",
             note="stratified subsamples of the run's SFT rows (the same share of every source), "
                  "each trained for as many passes over its rows as the full mix"),
    Ablation("sft_source_removal", "§4 mix ablations", "SFT mix", "full mix",
             note="the run's SFT rows without one source at a time, trained for as many passes"),
)}


def _with(p: Params, **sft) -> Params:
    return dataclasses.replace(p, sft=dataclasses.replace(p.sft, **sft))


def loss_arms(p: Params, rows: datasets.Dataset) -> list[Arm]:
    """The recipe's loss (its own run) and the other aggregation, on the same rows."""
    other = "mean" if p.sft.loss == "sum" else "sum"
    return [Arm(p.sft.loss, "sft", p, rows, main=True), Arm(other, "sft", _with(p, loss=other), rows)]


def mix_arms(p: Params, rows: datasets.Dataset) -> dict[str, list[Arm]]:
    """Ablation name -> its arms (the full mix, the stage's own run, first), for the mix ablations
    ``sft.ablate_subsample`` and ``sft.ablate_sources`` ask for."""
    full, sources = list(rows), sorted(set(rows["source"]))
    missing = [s for s in p.sft.ablate_sources if s not in sources]
    if missing:
        raise ValueError(f"sft.ablate_sources: no rows with source {missing}; sources here: {sources}")

    def arm(label: str, kept: list[dict]) -> Arm:
        steps = p.sft.optim.max_steps
        optim = p.sft.optim if steps <= 0 else dataclasses.replace(
            p.sft.optim, max_steps=max(1, round(steps * len(kept) / len(full))))
        return Arm(label, "sft", _with(p, optim=optim), datasets.Dataset.from_list(kept))

    main = Arm("full mix", "sft", p, rows, main=True)
    groups = {
        "fig04_sft_subsamples": [arm(f"{f:.0%} of each source",
                                     loader.mix(full, dict.fromkeys(sources, f), p.seed))
                                 for f in p.sft.ablate_subsample],
        "sft_source_removal": [arm(f"without {s}", [r for r in full if r["source"] != s])
                               for s in p.sft.ablate_sources],
    }
    return {name: [main, *group] for name, group in groups.items() if group}
