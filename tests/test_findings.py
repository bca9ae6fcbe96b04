"""The findings table: each of the paper's six small-scale findings read at 95% as reproduced, not
detected or contradicted, from the stages' comparisons; the report shows it first and saves it."""

import json
import math

import pandas as pd
import pytest

from tulu_lib.ablations import arms, memory
from tulu_lib.core import stats
from tulu_lib.reporting import findings, paper


def _binary(n_right_a, n_right_b, n=60):
    """Paired items: the first n_right_a right for a, the first n_right_b right for b (nested)."""
    return ({f"q{i}": float(i < n_right_a) for i in range(n)},
            {f"q{i}": float(i < n_right_b) for i in range(n)})


def test_a_significant_rise_reproduces_and_a_significant_fall_contradicts():
    up = stats.paired_comparison(*_binary(10, 30))  # 20 discordant pairs, all one way: McNemar p < 0.001
    row = findings.finding_row("dpo_constraints", up)
    assert row["reading"] == "reproduced" and row["n"] == 60 and row["effect"] == pytest.approx(100 * 20 / 60)
    assert row["ci_low"] > 0 and row["p"] < 0.001 and row["detectable"] > 0 and row["test"] == "McNemar exact"
    down = stats.paired_comparison(*_binary(30, 10))
    assert findings.finding_row("dpo_constraints", down)["reading"] == "contradicted"
    small = stats.paired_comparison(*_binary(10, 12))  # 2 discordant pairs: p 0.5
    row = findings.finding_row("dpo_constraints", small)
    assert row["reading"] == "not detected" and row["detectable"] > row["effect"]
    # the sample this effect would need: the detectable difference shrinks as 1/sqrt(n)
    assert row["n_needed"] == math.ceil(60 * (row["detectable"] / row["effect"]) ** 2) > 60
    assert findings.n_needed(80, 0.0, 7.5) == math.inf and math.isnan(findings.n_needed(80, 2.0, math.nan))
    assert math.isnan(findings.finding_row("dpo_constraints", up)["n_needed"])  # reproduced: nothing to plan
    # a finding the paper states as a fall reads the same data the other way round
    assert findings.finding_row("dpo_constraints", down, expected_sign=-1)["reading"] == "reproduced"


def test_non_inferiority_needs_the_lower_end_above_minus_the_margin():
    same = stats.paired_comparison(*_binary(30, 30, n=400))  # no discordant pairs: interval [0, 0]
    row = findings.finding_row("dpo_norm_vs_dpo", same, margin=findings.NONINFERIORITY_MARGIN_PP)
    assert row["reading"] == "reproduced" and row["test"].startswith("non-inferiority, margin 5 pp")
    worse = stats.paired_comparison(*_binary(60, 20, n=80))  # 40 of 80 lost: far below −5 pp
    assert findings.finding_row("dpo_norm_vs_dpo", worse, margin=5.0)["reading"] == "contradicted"
    wide = stats.paired_comparison(*_binary(3, 3, n=4))  # four items: the interval spans the margin
    wide = {**wide, "ci_low": -30.0, "ci_high": 30.0}
    assert findings.finding_row("dpo_norm_vs_dpo", wide, margin=5.0)["reading"] == "not detected"


def test_the_table_has_all_six_in_order_and_says_which_were_not_measured():
    rise = stats.two_sample_comparison([0, 0, 1, 0] * 10, [1, 1, 0, 1] * 10)  # 25% -> 75% of 40 replies
    row = findings.finding_row("rlvr_verified", rise)
    table = findings.findings_table({"rlvr_verified": row})
    assert list(table["key"]) == [k for k, _ in findings.FINDINGS]
    assert list(table.columns[1:9]) == ["finding", "n", "effect", "ci_low", "ci_high", "p", "detectable",
                                        "reading"]
    assert table.set_index("key").loc["rlvr_verified", "reading"] == "reproduced"
    missing = table.set_index("key").loc["sft_template"]
    assert missing["n"] == 0 and missing["note"].startswith("not measured")
    assert missing["reading"] == "not detected"
    assert findings.summary_line(table) == "1 reproduced, 5 not detected, 0 contradicted, of 6"
    with pytest.raises(KeyError, match="unknown finding"):
        findings.not_measured("nope", "")


def _items(path, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": k, "score": v}) + "\n" for k, v in scores.items()))
    return str(path)


def test_05_eval_reads_dpo_and_rlvr_on_ifeval_items_each_against_its_start(tmp_path):
    sft, dpo = _binary(10, 30)
    rows = [{"checkpoint": c, "benchmark": "ifeval", "score": 0.0,
             "items_path": _items(tmp_path / c / "i.jsonl", s)} for c, s in (("sft", sft), ("dpo", dpo))]
    rows.append({"checkpoint": "sft", "benchmark": "gsm8k", "score": 1.0, "items_path": None})
    got = {r["key"]: r for r in paper.eval_findings(pd.DataFrame(rows))}
    assert got["dpo_constraints"]["reading"] == "reproduced" and got["dpo_constraints"]["n"] == 60
    assert got["rlvr_held_out"]["note"] == ("not measured: IFEval items of both dpo and rlvr are needed "
                                            "(eval.constraint_benchmark: ifeval)")
    # eval.constraint_benchmark: the findings pair on that benchmark's items instead, and say so
    held = [{**r, "benchmark": "if_short"} for r in rows if r["benchmark"] == "ifeval"]
    held.append({"checkpoint": "rlvr", "benchmark": "if_short", "score": 0.0,
                 "items_path": _items(tmp_path / "rlvr" / "i.jsonl", _binary(30, 5)[1])})
    got = {r["key"]: r for r in paper.eval_findings(pd.DataFrame(held), "if_short")}
    assert got["dpo_constraints"]["reading"] == "reproduced"
    assert got["dpo_constraints"]["note"] == "IF-short prompt-level loose, sft → dpo"
    assert got["rlvr_held_out"]["reading"] == "contradicted" and got["rlvr_held_out"]["n"] == 60
    assert not {r["key"] for r in paper.eval_findings(pd.DataFrame(rows), "if_short")
                if r["n"]} - {"sft_template"}


def test_figure_17_and_table_18_record_their_findings(tmp_path):
    table = pd.DataFrame({"config": ["no cache, concatenated", "cache, concatenated", "no cache, separate",
                                     "cache, separate"], "cuda_max_allocated_mb": [math.nan] * 4,
                          "peak_rss_delta_mb": [1000.0, 900.0, 950.0, 800.0]})
    table["peak_rss_delta_ratio"] = table["peak_rss_delta_mb"] / 1000.0
    row = memory.memory_finding(table)
    assert row["reading"] == "reproduced" and row["effect"] == pytest.approx(-20.0) and math.isnan(row["p"])
    dpo, dpo_norm = _binary(30, 30, n=200)
    ablation = arms.Ablation("t18", "Table 18", "algorithm", "dpo_norm",
                             finding=("dpo_norm_vs_dpo", "dpo", "dpo_norm"))
    paths = {a: json.dumps({"ifeval": _items(tmp_path / a / "i.jsonl", s)})
             for a, s in (("dpo", dpo), ("dpo_norm", dpo_norm))}
    rows = pd.DataFrame([{"algorithm": a, arms.ITEMS: path} for a, path in paths.items()])
    row = arms.noninferiority_finding(ablation, rows)
    assert row["key"] == "dpo_norm_vs_dpo" and row["reading"] == "reproduced" and row["n"] == 200
    assert arms.noninferiority_finding(ablation, rows.iloc[:1])["note"].startswith("not measured")


def test_template_following_is_a_finished_turn_without_turn_markers_paired_base_to_sft(tmp_path):
    def write(stage, outputs):
        path = tmp_path / stage / "ifeval.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"id": f"q{i}", "score": 0.0, "output": o, "finished": f}) + "\n"
                                for i, (o, f) in enumerate(outputs)))
        return str(path)

    base = [("Sure.<|user|>\nmore", True), ("cut off", False)] * 15 + [("Fine.", True)] * 10
    sft = [("Sure.", True)] * 40
    rows = pd.DataFrame([{"checkpoint": "base", "benchmark": "ifeval", "items_path": write("base", base)},
                         {"checkpoint": "sft", "benchmark": "ifeval", "items_path": write("sft", sft)}])
    row = paper.template_finding(rows)
    assert row["n"] == 40 and row["effect"] == pytest.approx(75.0) and row["reading"] == "reproduced"
    assert paper.template_finding(rows[rows["checkpoint"] == "sft"])["note"].startswith("not measured")
