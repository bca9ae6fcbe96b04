"""Paired comparisons (tulu_lib.core.stats) and the readings built on them (Table 6, ablations)."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from tulu_lib.ablations import arms, dpo_arms, sft_arms
from tulu_lib.core import stats
from tulu_lib.reporting import paper


def _binary(a_right: int, b_right: int, both: int, neither: int) -> tuple[dict, dict]:
    """Items where only a / only b / both / neither got it right."""
    a, b, i = {}, {}, 0
    for n, (x, y) in ((a_right, (1, 0)), (b_right, (0, 1)), (both, (1, 1)), (neither, (0, 0))):
        for _ in range(n):
            a[f"q{i}"], b[f"q{i}"] = x, y
            i += 1
    return a, b


# ------------------------------------------------------------------ McNemar


def test_mcnemar_exact_p_is_the_hand_computed_binomial():
    # 10 discordant pairs, 9 for b and 1 for a: p = 2 (C(10,0) + C(10,1)) / 2^10
    assert stats.mcnemar_exact_p(9, 1) == pytest.approx(2 * (math.comb(10, 0) + math.comb(10, 1)) / 2 ** 10)
    assert stats.mcnemar_exact_p(9, 1) == pytest.approx(0.021484375)
    assert stats.mcnemar_exact_p(1, 9) == stats.mcnemar_exact_p(9, 1)
    assert stats.mcnemar_exact_p(6, 0) == pytest.approx(2 / 64) and stats.mcnemar_exact_p(5, 0) > 0.05
    assert stats.mcnemar_exact_p(0, 0) == 1.0 and stats.mcnemar_exact_p(3, 3) == 1.0
    m, k = 301, 120  # the recurrence is exact for large m too
    assert stats.mcnemar_exact_p(181, 120) == pytest.approx(
        min(1, 2 * sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m))


def test_paired_comparison_of_binary_items_is_mcnemar_on_the_shared_ids():
    a, b = _binary(1, 9, 30, 10)
    b["only-in-b"] = 1
    c = stats.paired_comparison(a, b)
    assert c["test"] == "McNemar exact" and c["n"] == 50 and (c["b_only"], c["a_only"]) == (9, 1)
    assert c["p"] == pytest.approx(0.021484375)
    assert c["diff"] == pytest.approx(100 * 8 / 50) and c["mean_a"] == pytest.approx(62.0)
    assert 0 < c["ci_low"] < c["diff"] < c["ci_high"]  # p < 0.05 <=> the exact interval excludes 0
    # Clopper-Pearson for 9 of 10 (beta quantiles 0.5550, 0.9975), mapped to the difference
    assert c["ci_low"] == pytest.approx(100 * 10 / 50 * (2 * 0.554984 - 1), abs=1e-3)
    assert c["mde"] == pytest.approx(100 * stats.Z_MDE * math.sqrt(10 / 50 / 50))
    assert stats.Z_MDE == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    same = stats.paired_comparison(*_binary(0, 0, 20, 20))  # no discordant pair: the floor 6/n
    assert same["p"] == 1.0 and same["diff"] == 0 and same["mde"] == pytest.approx(100 * 6 / 40)


def test_mcnemar_interval_agrees_with_its_p_value():
    for wins, losses in ((6, 0), (5, 0), (20, 9), (20, 8), (40, 25), (3, 3)):
        c = stats.paired_comparison(*_binary(losses, wins, 10, 10))
        assert (c["p"] < 0.05) == (c["ci_low"] > 0), (wins, losses)


def test_mde_shrinks_with_n():
    small = stats.paired_comparison(*_binary(5, 10, 30, 15))
    large = stats.paired_comparison(*_binary(50, 100, 300, 150))
    assert large["mde"] == pytest.approx(small["mde"] / math.sqrt(10))
    rng = np.random.default_rng(0)
    mdes = []
    for n in (50, 200, 800):
        a = {i: float(rng.random()) for i in range(n)}
        b = {i: float(np.clip(a[i] + rng.normal(0, 0.2), 0, 1)) for i in a}
        mdes.append(stats.paired_comparison(a, b, resamples=500)["mde"])
    assert mdes[0] > mdes[1] > mdes[2]


# ------------------------------------------------------------------ bootstrap


def test_paired_bootstrap_covers_the_true_difference_and_excludes_zero_on_a_clear_effect():
    rng = np.random.default_rng(1)
    a = {i: float(rng.uniform(0.2, 0.8)) for i in range(400)}
    b = {i: a[i] + 0.05 + float(rng.normal(0, 0.05)) for i in a}  # F1-like scores, b better by 5 pp
    c = stats.paired_comparison(a, b)
    assert c["test"] == stats.BOOTSTRAP and c["n"] == 400
    assert c["ci_low"] < 5.0 < c["ci_high"] and c["ci_low"] > 0 and c["p"] < 0.001
    assert c["mde"] == pytest.approx(100 * stats.Z_MDE * np.std([b[i] - a[i] for i in a], ddof=1) / 20)
    assert stats.verdict(c, +1) == "Agrees" and stats.verdict(c, -1) == "Does not agree"
    noise = {i: a[i] + float(rng.normal(0, 0.05)) for i in a}  # no true difference
    n = stats.paired_comparison(a, noise)
    assert n["ci_low"] < 0 < n["ci_high"] and n["p"] > 0.05
    assert stats.paired_comparison(a, b, seed=3)["ci_low"] != c["ci_low"]
    assert stats.paired_comparison(a, b)["ci_low"] == c["ci_low"]  # seeded: reproducible


def test_paired_average_pairs_within_benchmarks_and_averages_unweighted():
    g_a, g_b = _binary(2, 12, 40, 46)  # gsm8k: +10 pp over 100 items
    rng = np.random.default_rng(2)
    d_a = {i: float(rng.uniform(0, 1)) for i in range(50)}
    d_b = {i: min(1.0, d_a[i] + 0.02) for i in d_a}  # drop F1: about +2 pp over 50 items
    per = {"gsm8k": (g_a, g_b), "drop": (d_a, d_b), "empty": ({"x": 1}, {"y": 0})}
    c = stats.paired_average(per, paper_effect=4.1)
    assert c["test"] == stats.BOOTSTRAP and c["benchmarks"] == 2 and c["n"] == 150
    drop_diff = 100 * np.mean([d_b[i] - d_a[i] for i in d_a])
    assert c["diff"] == pytest.approx((10 + drop_diff) / 2)  # each benchmark counts once
    assert c["per_benchmark"]["gsm8k"] == (100, pytest.approx(10.0))
    assert c["ci_low"] < c["diff"] < c["ci_high"] and c["paper_effect"] == 4.1
    sd = np.std([d_b[i] - d_a[i] for i in d_a], ddof=1)
    assert c["mde"] == pytest.approx(100 * max(stats.Z_MDE * math.sqrt(0.14 / 100 + sd ** 2 / 50),
                                               math.sqrt((6 / 100) ** 2 + (stats.Z_MDE / 50) ** 2)) / 2)
    flat = stats.paired_average({"gsm8k": _binary(0, 0, 50, 50), "drop": (d_a, d_a)})  # no difference
    assert flat["mde"] == pytest.approx(100 * math.sqrt((6 / 100) ** 2 + (stats.Z_MDE / 50) ** 2) / 2)
    one = stats.paired_average({"gsm8k": (g_a, g_b)})  # one benchmark: its own test
    assert one["test"] == "McNemar exact" and one["per_benchmark"] == {"gsm8k": (100, pytest.approx(10.0))}
    assert stats.paired_average({"empty": ({"x": 1}, {"y": 0})})["n"] == 0


def test_sign_flip_test_is_mcnemar_on_binary_items_and_honest_with_few_discordant_pairs():
    rng = np.random.default_rng(0)
    for wins, losses in ((9, 1), (6, 0), (5, 0), (7, 7), (12, 3)):  # exact enumeration (<= 16 flips)
        d = np.array([1.0] * wins + [-1.0] * losses + [0.0] * 20) / 50
        assert stats.sign_flip_p(d, rng) == pytest.approx(stats.mcnemar_exact_p(wins, losses))
    d = np.array([1.0] * 30 + [-1.0] * 14) / 100  # Monte Carlo beyond 16
    assert stats.sign_flip_p(d, rng) == pytest.approx(stats.mcnemar_exact_p(30, 14), abs=0.005)
    # 2 discordant pairs per benchmark, all for b, in 2 benchmarks: 4 of 4, p = 2/16, not significant
    # (a percentile bootstrap alone would call it: it rarely resamples no discordant pair at all)
    a, b = _binary(0, 2, 28, 30)
    c = stats.paired_average({"gsm8k": (a, b), "ifeval": (a, b)})
    assert c["p"] == pytest.approx(0.125) and not stats.significant(c)
    assert stats.verdict(c, +1) == "Same direction, not significant"


# ------------------------------------------------------------------ verdicts


def _c(diff, low, high, p, mde, n=100):
    return {"n": n, "benchmarks": 1, "diff": diff, "ci_low": low, "ci_high": high, "p": p, "mde": mde,
            "mean_a": 50.0, "mean_b": 50.0 + diff, "test": stats.BOOTSTRAP}


@pytest.mark.parametrize("comparison, sign, effect, expected", [
    (_c(5, 1, 9, 0.01, 4), +1, 3.0, "Agrees"),
    (_c(5, 1, 9, 0.01, 4), +1, None, "Agrees"),
    (_c(-5, -9, -1, 0.01, 4), +1, 3.0, "Does not agree"),
    (_c(-5, -9, -1, 0.01, 4), -1, None, "Agrees"),
    (_c(2, -1, 5, 0.2, 3), +1, 4.0, "Same direction, not significant"),
    (_c(-2, -5, 1, 0.2, 3), +1, 4.0, "Other direction, not significant"),
    (_c(0, -3, 3, 1.0, 3), +1, 4.0, "No difference"),
    (_c(2, -1, 5, 0.2, 3), +1, None, "Same direction, not significant"),  # unknown effect: never inconclusive
    (_c(2, -4, 8, 0.5, 8.2), +1, 4.1, "Inconclusive (could detect only ≥ 8.2 pp; paper's effect 4.1 pp)"),
    (_c(-2, -8, 4, 0.5, 8.2), +1, -0.4, "Inconclusive (could detect only ≥ 8.2 pp; paper's effect 0.4 pp)"),
    (_c(math.nan, math.nan, math.nan, math.nan, math.nan, n=0), +1, 3.0, "Untested (no items in common)"),
])
def test_verdict_branches(comparison, sign, effect, expected):
    assert stats.verdict(comparison, sign, effect) == expected


def test_verdict_uses_the_comparisons_paper_effect_and_lines_read_well():
    c = {**_c(2.1, -0.5, 4.7, 0.11, 3.9, n=240), "benchmarks": 3, "paper_effect": 4.2}
    assert stats.verdict(c, +1) == "Same direction, not significant"
    assert stats.verdict(c, +1, None) == "Same direction, not significant"
    line = stats.comparison_line("sft → dpo", c, +1)
    assert line == ("sft → dpo: 50.0 → 52.1, +2.1 pp [-0.5, 4.7], paired bootstrap CI, sign-flip test p 0.11 "
                    "over 240 items in 3 benchmarks, detectable ≥ 3.9 pp: same direction, not significant "
                    "(paper: +4.2 pp)")
    c["paper_effect"] = 1.0
    assert stats.comparison_line("x", c).endswith(
        "detectable ≥ 3.9 pp: inconclusive (could detect only ≥ 3.9 pp; paper's effect 1.0 pp)")
    heads = ["Agrees", "Inconclusive (x)", "Same direction, not significant"]
    assert stats.worst_verdict(heads) == "Inconclusive"
    assert stats.worst_verdict(["Agrees", "Does not agree"]) == "Does not agree"


def test_item_scores_reads_items_files(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "score": 1.0}\n{"id": "b", "score": 0}\n{"id": "c", "sco')
    assert stats.item_scores(path) == {"a": 1.0, "b": 0.0}
    assert stats.item_scores(tmp_path / "none.jsonl") is None and stats.item_scores(math.nan) is None
    assert stats.item_scores(None) is None


# ------------------------------------------------------------------ readings on items


def _write_items(path, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"q{i}", "score": s}) + "\n" for i, s in enumerate(scores)))
    return str(path)


def test_table6_reading_pairs_each_step_on_items(tmp_path):
    n = 60
    right = {"base": 6, "sft": 30, "dpo": 32, "rlvr": 10}  # correct answers of 60, nested
    rows = []
    for stage, k in right.items():
        for bench in ("gsm8k", "ifeval"):
            if stage == "rlvr" and bench == "ifeval":
                continue  # rlvr ran only gsm8k: dpo → rlvr pairs on gsm8k alone
            path = _write_items(tmp_path / stage / bench / "items.jsonl", [1] * k + [0] * (n - k))
            rows.append({"checkpoint": stage, "benchmark": bench, "score": 100 * k / n, "ci95_low": 0,
                         "ci95_high": 100, "n": n, "metric": "accuracy", "items_path": path})
    rows.append({"checkpoint": "sft", "benchmark": "mmlu", "score": math.nan, "n": 0, "metric": "not run"})
    text = paper.table6_reading(pd.DataFrame(rows))
    assert text.startswith("Paper: each stage raised the 8B average (SFT 60.6 → DPO 64.7 → final 65.1")
    parts = re.split(r"; (?=[a-z]+ → )", text.split("power): ", 1)[1].rstrip("."))
    steps = dict(part.split(": ", 1) for part in parts)
    base_sft = steps["base → sft (gsm8k, ifeval)"]
    assert base_sft.startswith("10.0 → 50.0, +40.0 pp [") and "paired bootstrap" in base_sft
    assert "120 items in 2 benchmarks" in base_sft
    assert base_sft.endswith(": agrees")  # no paper row for base: no effect, no "(paper: ...)"
    # the paper's change over the same columns as ours (like with like), not its 12-column average
    same = "; the paper's change over the same {} of 12 columns"
    sft_dpo = steps["sft → dpo (gsm8k, ifeval" + same.format(2) + ")"]
    # GSM8K 84.3 − 76.2 and IFEval 81.1 − 72.8, averaged: 8.2 pp, above what 120 items detect (7.1)
    assert "+3.3 pp" in sft_dpo and "detectable ≥ 7.1 pp" in sft_dpo
    assert sft_dpo.endswith("same direction, not significant (paper: +8.2 pp)")
    dpo_rlvr = steps["dpo → rlvr (gsm8k" + same.format(1) + ")"]
    assert "McNemar exact p < 0.001 over 60 items," in dpo_rlvr
    assert dpo_rlvr.endswith("does not agree (paper: +3.3 pp)")  # GSM8K 87.6 − 84.3
    assert paper.table6_paper_effect("sft", "dpo") == pytest.approx(4.1)  # the printed averages
    assert paper.table6_paper_effect("sft", "dpo", ["GSM8K", "IFEval"]) == pytest.approx(8.2)
    assert paper.table6_paper_effect("base", "sft") is None


def _write_outputs(path, scores, outputs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"q{i}", "score": s, "output": o}) + "\n"
                            for i, (s, o) in enumerate(zip(scores, outputs, strict=True))))
    return str(path)


def test_table6_reading_counts_outputs_that_moved(tmp_path):
    # same scores, 3 of 20 outputs changed on gsm8k; mmlu_mc has no outputs (log-likelihood)
    said = [f"answer {i}" for i in range(20)]
    moved = said[:17] + ["other"] * 3
    rows = []
    for stage, outputs in (("sft", said), ("dpo", moved)):
        gsm = _write_outputs(tmp_path / stage / "gsm8k.jsonl", [1] * 5 + [0] * 15, outputs)
        mc = _write_items(tmp_path / stage / "mmlu.jsonl", [1] * 10 + [0] * 10)
        rows += [{"checkpoint": stage, "benchmark": b, "score": s, "ci95_low": 0, "ci95_high": 100,
                  "n": 20, "metric": "accuracy", "items_path": path}
                 for b, s, path in (("gsm8k", 25.0, gsm), ("mmlu_mc", 50.0, mc))]
    text = paper.table6_reading(pd.DataFrame(rows))
    assert "+0.0 pp [0.0, 0.0]" in text
    assert text.endswith("(outputs differ on 3 of 20 generated items).")
    assert stats.changed_outputs([(rows[0]["items_path"], rows[2]["items_path"])]) == \
        " (outputs differ on 3 of 20 generated items)"
    assert stats.changed_outputs([(rows[1]["items_path"], rows[3]["items_path"])]) == ""  # no outputs
    assert stats.changed_outputs([(None, "/no/such/file")]) == ""


def test_table6_reading_without_items_files_keeps_the_interval_reading():
    rows = pd.DataFrame([{"checkpoint": c, "benchmark": "gsm8k", "score": s, "ci95_low": s - 5,
                          "ci95_high": s + 5, "n": 20, "metric": "accuracy", "items_path": "/no/such/file"}
                         for c, s in (("base", 10), ("sft", 30))])
    assert "base → sft: Agrees" in paper.table6_reading(rows)


def _ablation_table(tmp_path, x, variants: dict[str, int], n: int = 80) -> pd.DataFrame:
    rows = []
    for label, k in variants.items():
        paths = {bench: _write_items(tmp_path / label / bench / "items.jsonl", [1] * k + [0] * (n - k))
                 for bench in ("gsm8k", "ifeval")}
        score = 100 * k / n
        rows.append({x: label, "gsm8k": score, "ifeval": score, "items": 2 * n, "average": score,
                     "ci95_low": score - 5, "ci95_high": score + 5, arms.ITEMS: paths})
    return pd.DataFrame(rows)


def test_read_ablation_pairs_the_expected_best_with_each_arm(tmp_path):
    table = _ablation_table(tmp_path, "algorithm", {"dpo": 30, "dpo_norm": 60, "simpo": 20})
    line = arms.read_ablation(dpo_arms.ABLATIONS["table18_dpo_algorithms"], table)
    assert line.startswith("Agrees. Paper: Length-normalized DPO performs best overall.")
    assert "algorithm dpo → algorithm dpo_norm: 37.5 → 75.0, +37.5 pp [" in line
    assert "algorithm simpo → algorithm dpo_norm: 25.0 → 75.0" in line and "160 items in 2 benchmarks" in line
    assert "(paper:" not in line  # Table 18's numbers are not in the reference CSV

    table = _ablation_table(tmp_path / "f10", "prompts", {"reused": 40, "new": 41})
    line = arms.read_ablation(dpo_arms.ABLATIONS["fig10_reused_vs_new"], table)
    assert line.startswith("Inconclusive. Paper: New prompts 61.0 vs reused 59.8")
    assert "prompts reused → prompts new: 50.0 → 51.2, +1.2 pp" in line
    assert "paper's effect 1.2 pp)" in line  # 61.0 − 59.8
    assert arms.paper_effects(dpo_arms.ABLATIONS["fig11_on_policy"], "on-policy",
                                   ["off-policy"]) == {"off-policy": pytest.approx(0.7)}

    table = _ablation_table(tmp_path / "f11", "responses",
                            {"initial": 70, "off-policy": 60, "on-policy": 20, "off+on-policy": 50})
    line = arms.read_ablation(dpo_arms.ABLATIONS["fig11_on_policy"], table)
    assert line.startswith("Does not agree.") and "initial" not in line and "off+on" not in line


def test_read_ablation_keeps_the_interval_reading_without_items(tmp_path):
    table = _ablation_table(tmp_path, "algorithm", {"dpo": 30, "dpo_norm": 60})
    table[arms.ITEMS] = [{"gsm8k": str(tmp_path / "gone.jsonl")}] * 2
    line = arms.read_ablation(dpo_arms.ABLATIONS["table18_dpo_algorithms"], table)
    assert line.startswith("Agrees.") and "algorithm dpo_norm 75.0 [70.0, 80.0]" in line


def test_score_row_keeps_items_paths_and_the_loss_reading_pairs(tmp_path):
    def results(k):
        path = _write_items(tmp_path / f"k{k}" / "gsm8k" / "items.jsonl", [1] * k + [0] * (50 - k))
        return [{"benchmark": "gsm8k", "n": 50, "score": 2 * k, "ci95_low": 0, "ci95_high": 100,
                 "items_path": path},
                {"benchmark": "alpaca_eval", "n": 0, "score": math.nan, "metric": "not run"}]
    row = arms.score_row(results(10))
    assert row[arms.ITEMS] == {"gsm8k": str(tmp_path / "k10" / "gsm8k" / "items.jsonl")}
    table = pd.DataFrame([{"sft loss": loss, **arms.score_row(results(k))}
                          for loss, k in (("sum", 30), ("mean", 10))])
    line = arms.read_ablation(sft_arms.LOSS, table)
    assert line.startswith("Agrees. Paper: A token-mean loss weights tokens unequally")
    assert "sft loss mean → sft loss sum: 20.0 → 60.0, +40.0 pp" in line and "McNemar exact" in line


def test_two_sample_comparison_permutation_p_interval_and_mde():
    a, b = [0.0] * 30 + [1.0] * 10, [0.0] * 20 + [1.0] * 20  # 25% vs 50%, n 40 each
    c = stats.two_sample_comparison(a, b)
    assert (c["n"], c["n_a"], c["n_b"], c["diff"]) == (80, 40, 40, 25.0)
    # MDE = z (2.8016) * sqrt(.25*.75/39*... ) with sample variances (ddof 1): var_a = 0.25*0.75*40/39
    var_a, var_b = 0.25 * 0.75 * 40 / 39, 0.25 * 40 / 39
    assert c["mde"] == pytest.approx(100 * stats.Z_MDE * math.sqrt(var_a / 40 + var_b / 40), rel=1e-9)
    assert 0.01 < c["p"] < 0.05 and c["ci_low"] > 0  # Fisher's exact two-sided p is 0.035 here
    same = stats.two_sample_comparison(a, a)
    assert same["diff"] == 0 and same["p"] == 1.0 and same["mde"] > 0
    assert stats.two_sample_comparison([1.0], b)["n"] == 0  # too few to test


def test_read_ablation_counts_outputs_that_moved(tmp_path):
    rows = []
    for label, outputs in (("reused", ["a"] * 40), ("new", ["a"] * 38 + ["b"] * 2)):
        paths = {"gsm8k": _write_outputs(tmp_path / label / "gsm8k.jsonl", [1] * 20 + [0] * 20, outputs)}
        rows.append({"prompts": label, "gsm8k": 50.0, "items": 40, "average": 50.0, "ci95_low": 45,
                     "ci95_high": 55, arms.ITEMS: paths})
    line = arms.read_ablation(dpo_arms.ABLATIONS["fig10_reused_vs_new"], pd.DataFrame(rows))
    assert "prompts reused → prompts new: 50.0 → 50.0, +0.0 pp" in line
    assert "(outputs differ on 2 of 40 generated items)" in line
