"""The paper's findings a small run can test, one row each: reproduced, not detected or contradicted.

Six findings (:data:`FINDINGS`) that a 135M model can plausibly show, each read from a comparison
of :mod:`tulu_lib.core.stats` (``diff``, ``ci_low``, ``ci_high``, ``p``, ``mde``, ``n``; percent or
percentage points) at 95%: ``reproduced`` when the effect is significant in the paper's direction
(or, for a non-inferiority finding, when the interval's lower end clears the margin),
``contradicted`` when it is significant against it, else ``not detected`` with the smallest
difference the sample could detect. A finding the run did not measure keeps its row, n 0, and
says why. Stages record rows with ``Stage.finding``; the report collects them into
``tables/findings.csv`` and shows the table first.

Usage::

    row = finding_row("rlvr_verified", change["verified"])     # a two-sample or paired comparison
    table = findings_table({row["key"]: row})                  # all six, in order
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from tulu_lib.core import stats

# (key, the paper's finding, as the run tests it)
FINDINGS = (
    ("rlvr_verified", "a. RLVR raises the training reward through verified replies (Figure 19)"),
    ("rlvr_held_out", "b. RLVR raises the targeted domain's held-out score, by the evaluation's checkers "
                      "(§6, Figure 19)"),
    ("dpo_constraints", "c. DPO raises constraint accuracy over its SFT start, by the evaluation's checkers "
                        "(Figures 13-14)"),
    ("sft_template", "d. SFT raises template-following over the start model (§4)"),
    ("dpo_memory", "e. The reference cache and separate passes lower DPO's peak memory (Figure 17)"),
    ("dpo_norm_vs_dpo", "f. dpo_norm scores at least as well as dpo at its release beta (Table 18)"),
)
COLUMNS = ("finding", "n", "effect", "ci_low", "ci_high", "p", "detectable", "reading", "n_needed", "test",
           "note")
READINGS = ("reproduced", "not detected", "contradicted")
# Table 18's non-inferiority margin (pp), fixed before any run: dpo_norm is "at least as good" when
# the lower end of its paired difference against dpo stays above minus this
NONINFERIORITY_MARGIN_PP = 5.0


def _label(key: str) -> str:
    labels = dict(FINDINGS)
    if key not in labels:
        raise KeyError(f"unknown finding {key!r}; known: {', '.join(labels)}")
    return labels[key]


def finding_row(key: str, comparison: Mapping, *, expected_sign: int = 1,
                margin: float | None = None, note: str = "") -> dict:
    """One finding from a comparison of :mod:`tulu_lib.core.stats` (``b − a``; the paper expects
    ``expected_sign``). ``margin`` (pp): a non-inferiority reading instead (the paper's claim
    holds when ``ci_low > −margin``, in the expected direction)."""
    n = int(comparison.get("n") or 0)
    if not n or comparison.get("diff") is None or math.isnan(comparison["diff"]):
        return not_measured(key, note or "no items in common")
    sign = 1 if expected_sign >= 0 else -1
    diff, low, high = (sign * comparison[k] for k in ("diff", "ci_low", "ci_high"))
    low, high = min(low, high), max(low, high)
    significant = stats.significant(comparison)
    if margin is not None:
        reading = "reproduced" if low > -margin else "contradicted" if high < -margin else "not detected"
        test = f"non-inferiority, margin {margin:g} pp; {comparison.get('test', '')}".rstrip("; ")
    else:
        reading = ("reproduced" if significant and diff > 0 else "contradicted" if significant
                   else "not detected")
        test = str(comparison.get("test", ""))
    detectable = float(comparison.get("mde", math.nan))
    plan = reading == "not detected" and margin is None
    return {"key": key, "finding": _label(key), "n": n, "effect": diff, "ci_low": low, "ci_high": high,
            "p": float(comparison["p"]), "detectable": detectable,
            "n_needed": n_needed(n, diff, detectable) if plan else math.nan,
            "reading": reading, "test": test, "note": note}


def n_needed(n: int, effect: float, detectable: float) -> float:
    """The sample at which an effect this size would be detectable (80% power, 95%), from the smallest
    detectable difference at ``n``, which shrinks as 1/sqrt(n): ``n (detectable / effect)^2``, rounded
    up; inf for an effect of 0 or against the paper, NaN without a detectable difference. An
    extrapolation that assumes the observed effect is the true one: a planning number, not a promise."""
    if math.isnan(detectable) or math.isnan(effect):
        return math.nan
    return math.inf if effect <= 0 else float(math.ceil(n * (detectable / effect) ** 2))


def measured_row(key: str, reading: str, *, n: int, effect: float, test: str, note: str = "") -> dict:
    """A finding read from a measurement without a sampling interval (Figure 17's peak memory: the
    same program measured once per setting), its reading given (one of :data:`READINGS`)."""
    if reading not in READINGS:
        raise ValueError(f"reading {reading!r} is not one of {READINGS}")
    return {"key": key, "finding": _label(key), "n": n, "effect": effect, "ci_low": math.nan,
            "ci_high": math.nan, "p": math.nan, "detectable": math.nan, "n_needed": math.nan,
            "reading": reading, "test": test, "note": note}


def not_measured(key: str, why: str) -> dict:
    """The row of a finding this run did not test, and why."""
    return {"key": key, "finding": _label(key), "n": 0, "effect": math.nan, "ci_low": math.nan,
            "ci_high": math.nan, "p": math.nan, "detectable": math.nan, "n_needed": math.nan,
            "reading": "not detected", "test": "", "note": f"not measured: {why}"}


def findings_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """All six findings in order (``rows``: key -> :func:`finding_row`); those absent are rows of
    :func:`not_measured` ("this run's params do not measure it")."""
    out = [dict(rows[key]) if key in rows else not_measured(key, "this run's params do not measure it")
           for key, _ in FINDINGS]
    return pd.DataFrame(out, columns=["key", *COLUMNS])


def summary_line(table: pd.DataFrame) -> str:
    """``k reproduced, m not detected, j contradicted, of 6``."""
    counts = table["reading"].value_counts()
    return ", ".join(f"{int(counts.get(r, 0))} {r}" for r in READINGS) + f", of {len(table)}"
