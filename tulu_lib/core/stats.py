"""Paired A-versus-B comparisons on the same benchmark items, and how to read them.

Two checkpoints scored on the same items are compared item by item, never by whether two
independent intervals overlap: pairing removes the between-item variance both share, so it
detects smaller differences at the same n. Every comparison states its n and the smallest
difference it could have detected (``mde``), so that "not significant" can be told apart
from "too small to tell" (:func:`verdict`).

All means, differences, intervals and MDEs are in percentage points (scores in [0, 1] × 100);
differences are ``b − a``.

* :func:`paired_comparison` — one benchmark. Binary scores (every value 0 or 1): McNemar's
  exact test, i.e. the exact two-sided binomial test of the discordant pairs against 1/2,
  ``p = min(1, 2 · Σ_{k ≤ min(w, l)} C(m, k) / 2^m)`` with ``w`` items only b got right,
  ``l`` items only a got right and ``m = w + l``; its 95% interval is the Clopper–Pearson
  interval of ``w / m``, mapped to the difference ``(m / n)(2π − 1)`` (conditional on ``m``; it
  excludes 0 exactly when ``p < 0.05``). Other scores (DROP's F1): a paired bootstrap of the mean
  item difference (10,000 resamples of the items, percentile interval) with the p-value of the
  paired sign-flip (randomization) test: ``p = P(|D*| ≥ |D|)`` with ``D*`` the statistic after
  flipping the sign of each item difference at random (exact over all flips of up to 16 nonzero
  differences, else 10,000 random flips, ``(count + 1) / (R + 1)``). For binary scores this
  test *is* McNemar's exact test; unlike a bootstrap p it stays honest with few discordant pairs.
* :func:`paired_average` — the paper's average (the unweighted mean over benchmarks): the
  mean of the per-benchmark mean differences, paired at the item level within each benchmark,
  bootstrapped by resampling the items within each benchmark (the interval), with the sign-flip
  p of that same statistic (each item's difference weighted ``1 / (B · n_b)``).
* :func:`two_sample_comparison` — independent samples (RLVR's training replies early vs late):
  two-sample bootstrap interval, permutation test, MDE from the two variances.
* A comparison is significant when ``p < 0.05`` and the 95% interval excludes 0.
* MDE (two-sided α 0.05, power 0.8, ``z = z_{0.975} + z_{0.8} ≈ 2.80``): for paired proportions
  ``z · sqrt(p_disc / n)`` with ``p_disc = m / n`` the discordant share (Connor's approximation
  for McNemar's test); for continuous scores ``z · sd_diff / sqrt(n)``; for an average over B
  benchmarks ``z · sqrt(Σ_b v_b / n_b) / B`` with ``v_b`` the benchmark's ``p_disc`` (binary) or
  ``sd_diff²``. Floors, so that identical scores never claim an MDE of 0: binary ``6 / n``, what
  the exact test could ever detect (6 discordant pairs, all one way, are the fewest with
  p < 0.05: 2/2⁶ = 0.031); continuous ``z / n``, the MDE had one item differed by a whole point
  (sd_diff ≥ 1/sqrt(n)); for the average ``sqrt(Σ_b f_b²) / B`` over those per-benchmark floors.

Item means are micro averages over the shared items; a macro-averaged benchmark (MMLU's
per-subject mean) can differ slightly from its table score.

Usage::

    c = paired_comparison(items_a, items_b, paper_effect=4.1)   # ids -> score in [0, 1]
    verdict(c, +1)                                              # "Agrees", "Inconclusive (...)", ...
    comparison_line("sft → dpo", c, +1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved at small n and at 0 or 1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


ALPHA = 0.05
POWER = 0.8
Z_MDE = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)  # ≈ 2.8016
MIN_DISCORDANT = 6  # fewest one-way discordant pairs an exact two-sided test at 0.05 can reject on
RESAMPLES = 10_000
BOOTSTRAP = "paired bootstrap CI, sign-flip test"  # the test name of a non-McNemar comparison
_CHUNK_CELLS = 2_000_000  # bootstrap indices drawn per chunk (memory bound)

# the verdict heads, from the most against the paper's finding to the most for it
VERDICTS = ("Does not agree", "Other direction, not significant", "Inconclusive", "Untested",
            "No difference", "Same direction, not significant", "Agrees")


def item_values(path, field: str) -> dict[str, object] | None:
    """id → the value of ``field`` from an ``items.jsonl`` (:func:`tulu_lib.evals.suite.run_benchmark`'s
    per-item file, its ``items_path``), for the items that have it; None where there is no such
    file (no path, NaN, missing). A line cut by an interruption is skipped, as
    :func:`tulu_lib.evals.suite._read_items` does; a later line for the same id wins."""
    if path is None or (isinstance(path, float) and math.isnan(path)) or not str(path):
        return None
    path = Path(str(path))
    if not path.is_file():
        return None
    values = {}
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and "id" in item and field in item:
            values[item["id"]] = item[field]
    return values


def item_scores(path) -> dict[str, float] | None:
    """id → score from an ``items.jsonl`` (:func:`item_values` of its numeric ``score``s)."""
    values = item_values(path, "score")
    return None if values is None else {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}


def changed_outputs(pairs) -> str:
    """`` (outputs differ on k of m generated items)`` for ``pairs`` of ``items.jsonl`` paths (one
    (a, b) pair per benchmark), counted on the items with an output in both; "" where none has
    one (log-likelihood benchmarks, rows without files). It says how far two checkpoints'
    generations moved apart, which a paired difference of zero does not.

    Usage: ``comparison_line(...) + changed_outputs([(sft_gsm8k_items, dpo_gsm8k_items)])``."""
    changed = generated = 0
    for path_a, path_b in pairs:
        a, b = item_values(path_a, "output") or {}, item_values(path_b, "output") or {}
        shared = [k for k in a if k in b]
        changed += sum(a[k] != b[k] for k in shared)
        generated += len(shared)
    return f" (outputs differ on {changed} of {generated} generated items)" if generated else ""


def _shared(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> tuple[np.ndarray, np.ndarray]:
    ids = [k for k in a if k in b]
    return (np.asarray([float(a[k]) for k in ids], dtype=float),
            np.asarray([float(b[k]) for k in ids], dtype=float))


def _is_binary(*arrays: np.ndarray) -> bool:
    return all(bool(np.isin(x, (0.0, 1.0)).all()) for x in arrays)


def _binom_cdf_fn(m: int):
    """p ↦ P(X ≤ k) for X ~ Binomial(m, p), k given: log binomial coefficients computed once."""
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, m + 1)))])
    log_comb = log_fact[m] - log_fact - log_fact[::-1]
    k_all = np.arange(m + 1)

    def cdf(k: int, p: float) -> float:
        if p <= 0.0:
            return 1.0
        if p >= 1.0:
            return 1.0 if k >= m else 0.0
        terms = log_comb[:k + 1] + k_all[:k + 1] * math.log(p) + (m - k_all[:k + 1]) * math.log1p(-p)
        return min(1.0, float(np.exp(terms).sum()))

    return cdf


def _bisect(f, lo: float = 0.0, hi: float = 1.0, iters: int = 60) -> float:
    """The root of a function decreasing from f(lo) > 0 to f(hi) < 0."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def clopper_pearson(x: int, m: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a binomial share x / m, by bisection on the CDF."""
    if m == 0:
        return 0.0, 1.0
    tail, cdf = (1 - level) / 2, _binom_cdf_fn(m)
    low = 0.0 if x == 0 else _bisect(lambda p: tail - (1 - cdf(x - 1, p)))  # P(X ≥ x) = tail
    high = 1.0 if x == m else _bisect(lambda p: cdf(x, p) - tail)  # P(X ≤ x) = tail
    return low, high


def mcnemar_exact_p(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``wins`` of ``wins + losses``
    discordant pairs against 1/2 (exact integer arithmetic)."""
    m = wins + losses
    if m == 0:
        return 1.0
    term = total = 1  # C(m, 0); then C(m, k + 1) = C(m, k) (m − k) / (k + 1), exactly
    for k in range(min(wins, losses)):
        term = term * (m - k) // (k + 1)
        total += term
    return min(1.0, 2 * total / 2 ** m)


def _bootstrap_means(d: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """``resamples`` means of ``d`` resampled with replacement (in chunks, to bound memory)."""
    n = len(d)
    out = np.empty(resamples)
    step = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        out[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def _percentile_interval(boot: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


EXACT_FLIPS = 16  # up to this many nonzero differences the sign-flip test enumerates every flip


def sign_flip_p(weighted: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES) -> float:
    """Two-sided paired randomization p of ``D = Σ weighted``: the share of sign flips of the
    item differences with ``|D*| ≥ |D|`` (exact for few nonzero differences, else Monte Carlo
    with the ``(count + 1) / (R + 1)`` correction)."""
    w = weighted[weighted != 0]
    k = len(w)
    if k == 0:
        return 1.0
    observed = abs(float(w.sum())) - 1e-12 * max(1.0, float(np.abs(w).sum()))
    if k <= EXACT_FLIPS:
        signs = 1 - 2 * ((np.arange(2 ** k)[:, None] >> np.arange(k)) & 1)
        return float((np.abs(signs @ w) >= observed).mean())
    count, step = 0, max(1, _CHUNK_CELLS // k)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        signs = 1 - 2 * rng.integers(0, 2, size=(stop - start, k))
        count += int((np.abs(signs @ w) >= observed).sum())
    return min(1.0, (count + 1) / (resamples + 1))


def _untested(n_benchmarks: int = 0, paper_effect: float | None = None) -> dict:
    return {"test": "none", "n": 0, "benchmarks": n_benchmarks, "mean_a": math.nan, "mean_b": math.nan,
            "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "mde": math.nan,
            "paper_effect": paper_effect}


def paired_comparison(a: Mapping[Hashable, float], b: Mapping[Hashable, float], *,
                      binary: bool | None = None, paper_effect: float | None = None, seed: int = 0,
                      resamples: int = RESAMPLES) -> dict:
    """Compare b with a on the item ids both have (scores in [0, 1]).

    ``binary``: None detects it (every score 0 or 1). Returns ``test`` ("McNemar exact" or
    :data:`BOOTSTRAP`), ``n``, ``mean_a``, ``mean_b``, ``diff`` (b − a), its 95% interval
    ``ci_low``/``ci_high``, ``p``, ``mde`` (all in percentage points but n and p), and for binary
    scores ``b_only``/``a_only`` (the discordant pairs each way); ``paper_effect`` is carried for
    :func:`verdict`. See the module docstring for the formulas.
    """
    xa, xb = _shared(a, b)
    n = len(xa)
    if n == 0:
        return _untested(1, paper_effect)
    binary = _is_binary(xa, xb) if binary is None else binary
    d = xb - xa
    out = {"n": n, "benchmarks": 1, "mean_a": 100 * float(xa.mean()), "mean_b": 100 * float(xb.mean()),
           "diff": 100 * float(d.mean()), "paper_effect": paper_effect}
    floor = (MIN_DISCORDANT if binary else Z_MDE) / n
    if binary:
        wins, losses = int((d > 0).sum()), int((d < 0).sum())
        m = wins + losses
        if m:
            lo, hi = clopper_pearson(wins, m)
            ci = (m / n * (2 * lo - 1), m / n * (2 * hi - 1))
        else:
            ci = (0.0, 0.0)
        out.update(test="McNemar exact", b_only=wins, a_only=losses, p=mcnemar_exact_p(wins, losses),
                   ci_low=100 * ci[0], ci_high=100 * ci[1],
                   mde=100 * max(Z_MDE * math.sqrt(m / n / n), floor))
    else:
        rng = np.random.default_rng(seed)
        low, high = _percentile_interval(_bootstrap_means(d, rng, resamples))
        sd = float(d.std(ddof=1)) if n > 1 else 0.0
        out.update(test=BOOTSTRAP, p=sign_flip_p(d / n, rng, resamples), ci_low=100 * low, ci_high=100 * high,
                   mde=100 * max(Z_MDE * sd / math.sqrt(n), floor))
    return out


def paired_average(per_benchmark: Mapping[str, tuple[Mapping[Hashable, float], Mapping[Hashable, float]]],
                   *, paper_effect: float | None = None, seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """The paper's average (unweighted over benchmarks) of b against a, paired on items.

    ``per_benchmark``: benchmark → (a's items, b's items), ids → score in [0, 1]. Benchmarks
    with no shared item are left out. The difference is the mean over benchmarks of the mean
    item difference; its interval and p come from resampling items within each benchmark; the
    MDE is ``z · sqrt(Σ_b v_b / n_b) / B`` (module docstring). With one benchmark this is
    :func:`paired_comparison` (McNemar exact when binary). Adds ``per_benchmark``: benchmark →
    (n, diff).
    """
    pairs = {name: _shared(a, b) for name, (a, b) in per_benchmark.items()}
    pairs = {name: (xa, xb) for name, (xa, xb) in pairs.items() if len(xa)}
    if not pairs:
        return _untested(0, paper_effect)
    if len(pairs) == 1:
        name = next(iter(pairs))
        a, b = per_benchmark[name]
        out = paired_comparison(a, b, paper_effect=paper_effect, seed=seed, resamples=resamples)
        return {**out, "per_benchmark": {name: (out["n"], out["diff"])}}
    rng = np.random.default_rng(seed)
    big_b = len(pairs)
    boot = np.zeros(resamples)
    var_sum = floor_sq = 0.0
    per, weighted = {}, []
    for name, (xa, xb) in pairs.items():
        d, n = xb - xa, len(xa)
        boot += _bootstrap_means(d, rng, resamples) / big_b
        weighted.append(d / (n * big_b))
        if _is_binary(xa, xb):
            var_sum += float((d != 0).mean()) / n  # p_disc / n
            floor_sq += (MIN_DISCORDANT / n) ** 2
        else:
            var_sum += (float(d.std(ddof=1)) ** 2 if n > 1 else 0.0) / n
            floor_sq += (Z_MDE / n) ** 2
        per[name] = (n, 100 * float(d.mean()))
    low, high = _percentile_interval(boot)
    p = sign_flip_p(np.concatenate(weighted), rng, resamples)
    mean = lambda i: 100 * sum(float(x[i].mean()) for x in pairs.values()) / big_b  # noqa: E731
    return {"test": BOOTSTRAP, "n": sum(len(xa) for xa, _ in pairs.values()), "benchmarks": big_b,
            "mean_a": mean(0), "mean_b": mean(1), "diff": sum(v for _, v in per.values()) / big_b,
            "ci_low": 100 * low, "ci_high": 100 * high, "p": p,
            "mde": 100 * max(Z_MDE * math.sqrt(var_sum), math.sqrt(floor_sq)) / big_b,
            "paper_effect": paper_effect, "per_benchmark": per}


TWO_SAMPLE = "two-sample bootstrap CI, permutation test"


def two_sample_comparison(a, b, *, scale: float = 100.0, seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """Compare the mean of independent samples ``b`` with ``a`` (different items: no pairing).

    The difference ``mean(b) − mean(a)`` (× ``scale``: 100 turns fractions into pp) with a 95%
    percentile interval from resampling each sample, the two-sided permutation p (labels
    shuffled, ``(count + 1) / (R + 1)``) and the MDE ``z · sqrt(s_a²/n_a + s_b²/n_b)`` (floor
    ``z · sqrt(1/n_a² + 1/n_b²)``, as if one value of each sample differed by 1). Same keys
    as :func:`paired_comparison`, with ``n`` = n_a + n_b and ``n_a``, ``n_b``.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xa) < 2 or len(xb) < 2:
        return {**_untested(1), "test": TWO_SAMPLE, "n_a": len(xa), "n_b": len(xb)}
    rng = np.random.default_rng(seed)
    boot = _bootstrap_means(xb, rng, resamples) - _bootstrap_means(xa, rng, resamples)
    low, high = _percentile_interval(boot)
    diff, pooled = float(xb.mean() - xa.mean()), np.concatenate([xa, xb])
    count, step = 0, max(1, _CHUNK_CELLS // len(pooled))
    for start in range(0, resamples, step):
        rows = min(resamples, start + step) - start
        shuffled = rng.permuted(np.broadcast_to(pooled, (rows, len(pooled))), axis=1)
        stat = shuffled[:, len(xa):].mean(axis=1) - shuffled[:, :len(xa)].mean(axis=1)
        count += int((np.abs(stat) >= abs(diff) - 1e-12).sum())
    spread = math.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
    floor = Z_MDE * math.sqrt(1 / len(xa) ** 2 + 1 / len(xb) ** 2)
    return {"test": TWO_SAMPLE, "n": len(xa) + len(xb), "n_a": len(xa), "n_b": len(xb), "benchmarks": 1,
            "mean_a": scale * float(xa.mean()), "mean_b": scale * float(xb.mean()), "diff": scale * diff,
            "ci_low": scale * low, "ci_high": scale * high, "p": min(1.0, (count + 1) / (resamples + 1)),
            "mde": scale * max(Z_MDE * spread, floor), "paper_effect": None}


def significant(comparison: Mapping) -> bool:
    """p < 0.05 with the 95% interval clear of 0 (for McNemar the two always agree; a bootstrap
    interval can clear 0 where the sign-flip test does not reject: then it is not significant)."""
    c = comparison
    return (c.get("n", 0) > 0 and c["p"] < ALPHA
            and (c["ci_low"] > 0 or c["ci_high"] < 0))


_UNSET = object()


def verdict(comparison: Mapping, expected_sign: int = 1, paper_effect: float | None | object = _UNSET) -> str:
    """Our reading of a comparison against the paper's finding that ``b − a`` has ``expected_sign``.

    ``paper_effect`` (pp; default: the comparison's own; None: unknown) is the paper's
    difference for the same pair. In order:

    * ``Untested (no items in common)`` — n is 0;
    * ``Agrees`` / ``Does not agree`` — significant (:func:`significant`) in / against the
      paper's direction;
    * ``Inconclusive (could detect only ≥ X pp; paper's effect Y pp)`` — not significant, and
      the MDE is larger than the paper's effect: this size could not have seen it;
    * ``Same direction, not significant`` / ``Other direction, not significant`` /
      ``No difference`` — not significant although the MDE is within the paper's effect
      (or the paper's effect is unknown: then a comparison is never called inconclusive).
    """
    if paper_effect is _UNSET:
        paper_effect = comparison.get("paper_effect")
    if not comparison.get("n"):
        return "Untested (no items in common)"
    signed = comparison["diff"] * (1 if expected_sign >= 0 else -1)
    if significant(comparison):
        return "Agrees" if signed > 0 else "Does not agree"
    if paper_effect is not None and not math.isnan(paper_effect) and comparison["mde"] > abs(paper_effect):
        return (f"Inconclusive (could detect only ≥ {comparison['mde']:.1f} pp; "
                f"paper's effect {abs(paper_effect):.1f} pp)")
    if signed > 0:
        return "Same direction, not significant"
    return "Other direction, not significant" if signed < 0 else "No difference"


def verdict_head(text: str) -> str:
    """``Inconclusive (could detect ...)`` → ``Inconclusive``."""
    return text.split(" (", 1)[0]


def worst_verdict(verdicts) -> str:
    """The verdict head most against the paper of several (a claim that X beats every other arm
    holds only as far as it holds against each)."""
    heads = [verdict_head(v) for v in verdicts]
    return min(heads, key=VERDICTS.index) if heads else "Untested"


def comparison_line(label: str, comparison: Mapping, expected_sign: int = 1,
                    paper_effect: float | None | object = _UNSET) -> str:
    """One readable clause, e.g. ``sft → dpo: 45.1 → 47.2, +2.1 pp [-0.5, 4.7], paired bootstrap
    CI, sign-flip test p 0.11 over 240 items in 3 benchmarks, detectable ≥ 3.9 pp: same
    direction, not significant (paper: +4.1 pp)``."""
    c = comparison
    if paper_effect is _UNSET:
        paper_effect = c.get("paper_effect")
    text = verdict(c, expected_sign, paper_effect)
    if not c.get("n"):
        return f"{label}: {text[0].lower()}{text[1:]}"
    where = f"{c['n']} items" + (f" in {c['benchmarks']} benchmarks" if c.get("benchmarks", 1) > 1 else "")
    p = f"p {c['p']:.2g}" if c["p"] >= 0.001 else "p < 0.001"
    shown = (f"{label}: {c['mean_a']:.1f} → {c['mean_b']:.1f}, {c['diff']:+.1f} pp "
             f"[{c['ci_low']:.1f}, {c['ci_high']:.1f}], {c['test']} {p} over {where}, "
             f"detectable ≥ {c['mde']:.1f} pp: {text[0].lower()}{text[1:]}")
    if paper_effect is not None and not math.isnan(paper_effect) and not text.startswith("Inconclusive"):
        shown += f" (paper: {paper_effect:+.1f} pp)"
    return shown


def average_score(results: Sequence[Mapping]) -> dict[str, float]:
    """The paper's average (unweighted mean of benchmark scores, percent) with a 95% interval.

    ``results``: rows of :func:`tulu_lib.evals.suite.evaluate` (those not run: skipped). The interval combines
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
