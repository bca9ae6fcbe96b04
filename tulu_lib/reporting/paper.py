"""The paper's side of every comparison: reported numbers and recipe tables.

``reported()`` reads ``reports/reference/tulu3_reported.csv`` (copied from the paper's
tables, with the table each number came from); ``hyperparameter_table`` renders a
section of several params files side by side, so the hyperparameter tables in a report
come from the params that ran rather than from prose.

Usage::

    paper.reported().query("table == 'Table 6'")
    paper.hyperparameter_table({"this run": p, "paper 8B": p8b}, "dpo")
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tulu_lib.core import stats
from tulu_lib.core.params import Params
from tulu_lib.evals import suite
from tulu_lib.evals.registry import BENCHMARKS, COMPOSITES, UNSEEN_ROWS
from tulu_lib.evals.suite import average_score
from tulu_lib.reporting import findings
from tulu_lib.train import rlvr
from tulu_lib.train.launch import stage_params

REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference" / "tulu3_reported.csv"
PUBLISHED = REFERENCE.with_name("smollm2_published.csv")  # the embedded model's own card


def reported() -> pd.DataFrame:
    return pd.read_csv(REFERENCE)


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = ", ".join(map(str, value)) if isinstance(value, list) else value


GRPO_ONLY = ("num_generations", "loss_type")  # RLVR keys PPO does not read (it has ppo.num_generations)


# Table 21 as the paper prints it (8B / 70B), beside what each params file (the release) sets
TABLE21 = {
    "algorithm": "PPO", "alpha": "10", "beta": "0.05 (8B) / 0.07 (70B)", "non_eos_penalty": "-10",
    "optim.learning_rate": "3e-7 (8B) / 1e-7 (70B)", "optim.warmup_ratio": "0 (8B) / 0.07 (70B)",
    "optim.lr_scheduler": "linear", "temperature": "1.0", "max_new_tokens": "2048 (response length)",
    "ppo.ppo_epochs": "4", "ppo.gamma": "1", "ppo.lam": "0.95", "ppo.cliprange": "0.2", "ppo.vf_coef": "0.1",
    "ppo.whiten_advantages": "yes (advantage whitening)", "ppo.value_model": "a general reward model",
    "optim.save_steps": "every 100 steps (40 at 70B), best on MATH + IFEval",
}


def _rlvr_rows(params: Params, flat: dict) -> None:
    """Table 21's RLVR rows as the algorithm reads them: the KL estimator, the value model's
    initialisation and the release's schedule (rollouts, optimizer steps, warm-up), and the other
    algorithm's keys marked unused."""
    r = params.rlvr
    unused = f"— ({r.algorithm.upper()}: unused)"
    for key in flat:
        if (r.algorithm == "grpo" and key.startswith("ppo.")) or (r.algorithm == "ppo" and key in GRPO_ONLY):
            flat[key] = unused
    if r.algorithm == "ppo":
        flat["KL estimator"] = "k1 = log π − log π_ref per token, −β·k1 in the reward (the release's)"
        flat["value model initialised from"] = (r.ppo.reward_model or "a reward model trained in 04_rlvr"
                                                if r.ppo.value_model == "reward_model" else "the policy")
    else:
        flat["KL estimator"] = "k3 in the loss, β × mean over tokens (TRL GRPO)"
        flat["value model initialised from"] = "— (GRPO: no value model)"
    release = rlvr.schedule(r, params.launch)
    steps = "— (optim.epochs / max_steps)"
    flat["replies per rollout (per-device batch x accumulation x processes)"] = \
        r.optim.per_device_batch_size * r.optim.gradient_accumulation_steps \
        * params.launch.num_machines * params.launch.num_processes
    flat["rollouts (total_episodes // replies per rollout)"] = release.rollouts if release else steps
    flat["optimizer steps (rollouts x epochs per rollout)"] = release.optimizer_steps if release else steps
    flat["warm-up steps (int(steps x warmup_ratio))"] = release.warmup_steps if release else steps


_DATA_OF = {"sft": "sft", "dpo": "preferences", "rlvr": "rlvr"}
SMALL_SCALE = "small-scale choice"  # where "this run" differs from "paper 8B"


def hyperparameter_table(recipes: dict[str, Params], section: str) -> pd.DataFrame:
    """One row per hyperparameter of ``section`` and of its data (``data.*``: which rows it trains
    on), one column per recipe as that stage trains it (its launch settings applied:
    :func:`tulu_lib.train.launch.stage_params`; RLVR as its algorithm reads them,
    :func:`_rlvr_rows`); with both "this run" and "paper 8B", a column marking each
    :data:`SMALL_SCALE` where they differ; for RLVR the paper's Table 21 as printed beside them."""
    columns = {}
    for label, params in recipes.items():
        params = stage_params(params, section)
        flat: dict = {}
        _flatten("", params.to_dict()[section], flat)
        _flatten("data", params.to_dict()["data"][_DATA_OF[section]], flat)
        if section == "rlvr":
            _rlvr_rows(params, flat)
        columns[label] = flat
    table = pd.DataFrame(columns)
    if {"this run", "paper 8B"} <= set(table.columns):
        differs = [not (pd.isna(a) and pd.isna(b)) and a != b
                   for a, b in zip(table["this run"], table["paper 8B"], strict=True)]
        table["this run vs paper 8B"] = [SMALL_SCALE if d else "" for d in differs]
    if section == "rlvr":
        table["paper's Table 21 (as printed)"] = [TABLE21.get(key, "") for key in table.index]
    table.index.name = "hyperparameter"
    return table.reset_index()


PAPER_COLUMNS = {"sft": "Tulu-3-8B-SFT", "dpo": "Tulu-3-8B-DPO", "rlvr": "Tulu-3-8B"}
UNSEEN_TABLE = "Table 3 (unseen)"  # the paper's unseen-suite numbers in reports/reference, when on file


HUMANEVAL_PASS10 = "pass@10 from {samples} samples (T 0.8, top-p 0.95), sandboxed: the paper's metric"
HUMANEVAL_PASS1 = "pass@1 (greedy), not the paper's pass@10"


def _per_stage(scores: pd.DataFrame, stages: list[str], name: str, key: str = "score") -> dict:
    """stage -> ``key`` of the benchmark's row (NaN where it has none)."""
    sel = scores[scores["benchmark"] == name]
    out = {}
    for stage in stages:
        at = sel[sel["checkpoint"] == stage]
        value = at.iloc[0][key] if len(at) and key in at.columns else math.nan
        out[stage] = math.nan if value is None or pd.isna(value) else float(value)
    return out


def _intervals(scores: pd.DataFrame, stages: list[str], name: str) -> dict:
    """stage -> (95% CI low, high) of the benchmark's row, where it has one."""
    sel = scores[scores["benchmark"] == name]
    if "ci95_low" not in sel.columns:
        return {}
    at = {s: sel[sel["checkpoint"] == s] for s in stages}
    return {s: (float(r.iloc[0]["ci95_low"]), float(r.iloc[0]["ci95_high"]))
            for s, r in at.items() if len(r) and not pd.isna(r.iloc[0]["ci95_low"])}


def _metric_and_note(scores: pd.DataFrame, name: str) -> tuple[str, str]:
    """(what our number measures, why there is none: ``not run: <reason>``)."""
    sel = scores[scores["benchmark"] == name]
    if sel.empty:
        return "", suite.not_run_reason(name)
    ran = sel.dropna(subset=["score"])
    if ran.empty:
        return "", str(sel.iloc[0]["metric"])
    return str(ran.iloc[0]["metric"]), ""


def _ci_text(interval: dict, stage: str) -> str:
    low, high = interval.get(stage, (math.nan, math.nan))
    return "" if math.isnan(low) else f"[{low:.1f}, {high:.1f}]"


def unseen_comparison(scores: pd.DataFrame) -> pd.DataFrame:
    """The paper's unseen suite (:data:`~tulu_lib.evals.registry.UNSEEN_ROWS`), ours per checkpoint
    with n and its 95% interval, and the paper's number where ``reports/reference`` has one (table
    ``Table 3 (unseen)``); a benchmark with no score says why (``not run: <reason>``)."""
    stages = [c for c in ("base", "sft", "dpo", "rlvr") if c in set(scores["checkpoint"])]
    ref = reported()
    ref = ref[ref["table"] == UNSEEN_TABLE].pivot(index="benchmark", columns="model", values="score")
    rows = []
    for paper_name, name in UNSEEN_ROWS:
        values, interval = _per_stage(scores, stages, name), _intervals(scores, stages, name)
        counts = _per_stage(scores, stages, name, "n")
        metric, note = _metric_and_note(scores, name)
        row = {"benchmark": paper_name}
        for s in stages:
            row[f"ours: {s}"] = values[s]
            row[f"95% CI: {s}"] = _ci_text(interval, s)
            row[f"n: {s}"] = counts[s]
        for s in stages:
            model = PAPER_COLUMNS.get(s)
            if model is not None:
                row[f"paper: {model}"] = (ref.loc[paper_name, model] if paper_name in ref.index
                                          and model in ref.columns else math.nan)
        rows.append({**row, "metric": metric, "note": note})
    table = pd.DataFrame(rows)
    if ref.empty:
        table["paper note"] = ("no unseen-suite number on file: add the paper's Table 3 rows to "
                               "reports/reference/tulu3_reported.csv as table 'Table 3 (unseen)'")
    return table


def table6_comparison(scores: pd.DataFrame) -> pd.DataFrame:
    """Every row of the paper's Table 6, in its order, ours per checkpoint (percent) beside the
    paper's 8B numbers, the deltas between our stages, what our number measures (``metric``) and,
    for a row with no score, why (``note``: ``not run: <reason>``, also for benchmarks these params
    did not ask for). HumanEval is the paper's pass@10 where the params sampled (``samples``), with
    pass@1 (greedy) on its own row beside it; otherwise pass@1, labelled as not the paper's.
    ``Avg`` is the mean of the Table 6 rows that ran for a checkpoint. Benchmarks that are not
    Table 6 columns (MATH-500, 5-shot MMLU, IFBench) follow, under their own labels."""

    stages = [c for c in ("base", "sft", "dpo", "rlvr") if c in set(scores["checkpoint"])]
    ref = reported()
    ref = ref[ref["table"] == "Table 6"].pivot(index="benchmark", columns="model", values="score")
    paper_cols = [PAPER_COLUMNS[s] for s in stages if s in PAPER_COLUMNS]

    def ours(name: str, key: str = "score") -> dict:
        return _per_stage(scores, stages, name, key)

    def interval(name: str) -> dict:
        return _intervals(scores, stages, name)

    def info(name: str) -> tuple[str, str]:
        return _metric_and_note(scores, name)

    rows = []

    def add(label: str, values: dict, metric: str, note: str, paper_label: str | None,
            interval: dict | None = None) -> None:
        row = {"benchmark": label, **{f"ours: {s}": values.get(s, math.nan) for s in stages}}
        for s in stages:
            row[f"95% CI: {s}"] = _ci_text(interval or {}, s)
        for before, after in zip(stages, stages[1:], strict=False):
            row[f"Δ {after} − {before}"] = values.get(after, math.nan) - values.get(before, math.nan)
        for col in paper_cols:
            row[f"paper: {col}"] = (ref.loc[paper_label, col] if paper_label in ref.index
                                    and col in ref.columns else math.nan)
        rows.append({**row, "metric": metric, "note": note})

    # a composite column (Safety: the mean of its six benchmarks) becomes one row per checkpoint
    for name, (parts, combine) in COMPOSITES.items():
        if scores["benchmark"].isin(parts).any():
            combined = [{"checkpoint": s, **combine(scores[scores["checkpoint"] == s].to_dict("records"))}
                        for s in stages]
            scores = pd.concat([scores[scores["benchmark"] != name], pd.DataFrame(combined)],
                               ignore_index=True)
    table6 = {}
    for paper_name, name in suite.TABLE6_ROWS:
        metric, note = info(name)
        values = ours(name)
        if name in ("humaneval", "humanevalplus") and not note:
            pass10 = ours(name, "pass@10")
            if any(not math.isnan(v) for v in pass10.values()):
                samples = scores.loc[scores["benchmark"] == name, "samples"].dropna() \
                    if "samples" in scores.columns else pd.Series(dtype=float)
                shown = int(samples.min()) if len(samples) else "n"
                add(paper_name, pass10, HUMANEVAL_PASS10.format(samples=shown), "", paper_name)
                table6[paper_name] = pass10
                add(f"{paper_name} pass@1 (greedy)", values, "pass@1 (greedy), beside the paper's pass@10",
                    "", None, interval(name))
                continue
            metric = f"{HUMANEVAL_PASS1}; {metric}"
        add(paper_name, values, metric, note, paper_name, interval(name))
        table6[paper_name] = values
    # like with like: ours and the paper's averaged over the same columns, those every stage ran
    common = [k for k, v in table6.items() if all(not math.isnan(x) for x in v.values())]
    avg = {s: sum(table6[k][s] for k in common) / len(common) if common else math.nan for s in stages}
    add("Avg", avg, f"mean over the {len(common)} of {len(suite.TABLE6_ROWS)} Table 6 columns every "
        f"checkpoint ran ({', '.join(common) or 'none'}); the paper's beside it over the same columns",
        "" if common else "not run: no column ran for every checkpoint", None)
    for col in paper_cols:
        rows[-1][f"paper: {col}"] = (float(ref.loc[common, col].mean()) if common and col in ref.columns
                                     and all(k in ref.index for k in common) else math.nan)
    add(f"Avg, all {len(suite.TABLE6_ROWS)} columns (as printed)",
        avg if len(common) == len(suite.TABLE6_ROWS) else {},
        "the paper's printed average; ours only where every column ran",
        "" if len(common) == len(suite.TABLE6_ROWS) else
        f"not run: {len(suite.TABLE6_ROWS) - len(common)} of the columns have no score here", "Avg")
    listed = ({name for _, name in (*suite.TABLE6_ROWS, *UNSEEN_ROWS)}  # the unseen suite: its own table
              | {p for parts, _ in COMPOSITES.values() for p in parts})
    for name in dict.fromkeys(scores["benchmark"]):
        if name in listed:
            continue
        metric, note = info(name)
        label = BENCHMARKS[name].paper_name if name in BENCHMARKS else name
        add(label, ours(name), metric, note or "not a column of Table 6", None)
    return pd.DataFrame(rows)


def eval_findings(scores: pd.DataFrame, constraint_benchmark: str = "ifeval") -> list[dict]:
    """Findings b, c and d (:mod:`tulu_lib.reporting.findings`) from 05_eval's items: the constraint
    benchmark (``eval.constraint_benchmark``: IFEval, or the held-out ``if_short``) scored by its
    evaluation checkers, paired per item — DPO against its SFT start (c), RLVR against its DPO start
    (b) — and template-following (:func:`template_finding`)."""
    name = BENCHMARKS[constraint_benchmark].paper_name.split(" (")[0] if constraint_benchmark in BENCHMARKS \
        else constraint_benchmark
    items = {r.checkpoint: stats.item_scores(r.items_path) for r in scores.itertuples()
             if r.benchmark == constraint_benchmark and isinstance(getattr(r, "items_path", None), str)}
    out = []
    for key, before, after in (("dpo_constraints", "sft", "dpo"), ("rlvr_held_out", "dpo", "rlvr")):
        if items.get(before) is None or items.get(after) is None:
            out.append(findings.not_measured(key, f"{name} items of both {before} and {after} are needed "
                                                  f"(eval.constraint_benchmark: {constraint_benchmark})"))
        else:
            out.append(findings.finding_row(key, stats.paired_comparison(items[before], items[after]),
                                            note=f"{name} prompt-level loose, {before} → {after}"))
    return [*out, template_finding(scores)]


_TURN_MARKER = re.compile(r"<\|(?:user|assistant|system)\|>")


def template_finding(scores: pd.DataFrame) -> dict:
    """Finding d: SFT against the start model, both prompted with the Tülu template, on every item
    of the chat benchmarks without stop strings that both answered: a reply follows the template
    when it ends its turn (EOS within the token budget) and writes no turn marker of its own
    (``<|user|>``, ``<|assistant|>``, ``<|system|>``); paired per item."""
    chat = {n for n, t in suite.TASKS.items() if t.kind == "chat" and not t.stop}
    per: dict[str, dict[str, float]] = {"base": {}, "sft": {}}
    for r in scores.itertuples():
        path = getattr(r, "items_path", None)
        if r.checkpoint in per and r.benchmark in chat and isinstance(path, str):
            finished = stats.item_values(path, "finished") or {}
            for item_id, v in (stats.item_values(path, "output") or {}).items():
                per[r.checkpoint][f"{r.benchmark}/{item_id}"] = float(
                    bool(finished.get(item_id)) and isinstance(v, str) and not _TURN_MARKER.search(v))
    if not per["base"] or not per["sft"]:
        return findings.not_measured("sft_template", "the start model's and SFT's replies are both needed "
                                     "(eval.evaluate_base)")
    return findings.finding_row("sft_template", stats.paired_comparison(per["base"], per["sft"]),
                                note="share of replies that end their turn and write no turn marker, "
                                     f"base → sft, on {', '.join(sorted(chat & set(scores['benchmark'])))}")


def calibration(scores: pd.DataFrame) -> pd.DataFrame:
    """Named checkpoints (``eval.checkpoints``: the released Tülu 3 models) against the paper's
    Table 6 numbers for the same models: per (checkpoint, column), ours with n and its 95%
    interval, the paper's, their difference and whether the paper's number lies inside our
    interval. Only checkpoints with a paper column (:data:`PAPER_COLUMNS`) and columns that ran."""
    table6 = table6_comparison(scores).set_index("benchmark")
    out = []
    for stage, model in PAPER_COLUMNS.items():
        if f"ours: {stage}" not in table6.columns or f"paper: {model}" not in table6.columns:
            continue
        for column, name in suite.TABLE6_ROWS:
            ours, reported_ = table6.loc[column, f"ours: {stage}"], table6.loc[column, f"paper: {model}"]
            if pd.isna(ours) or pd.isna(reported_):
                continue
            ci = table6.loc[column, f"95% CI: {stage}"]
            low, high = (float(x) for x in ci.strip("[]").split(", ")) if ci else (math.nan, math.nan)
            sel = scores[(scores["checkpoint"] == stage) & (scores["benchmark"] == name)]
            out.append({"checkpoint": stage, "paper model": model, "column": column,
                        "n": int(sel.iloc[0]["n"]) if len(sel) else 0, "ours": ours, "95% CI": ci,
                        "paper": reported_, "ours − paper": ours - reported_,
                        "paper inside our 95% CI": bool(low <= reported_ <= high) if ci else None,
                        "metric": table6.loc[column, "metric"]})
    return pd.DataFrame(out)


def calibration_reading(table: pd.DataFrame) -> str:
    """One line: how many of the paper's numbers fall inside our intervals, and the largest gaps."""
    if table.empty:
        return "Not comparable: no named checkpoint with a paper column scored a Table 6 column."
    inside = table["paper inside our 95% CI"].fillna(False).astype(bool)
    worst = table.assign(gap=table["ours − paper"].abs()).sort_values("gap", ascending=False).head(3)
    shown = ", ".join(f"{r.column} ({r.checkpoint}) {r.ours:.1f} vs {r.paper:.1f}"
                      for r in worst.itertuples())
    return (f"Calibration on the released checkpoints: {int(inside.sum())} of {len(table)} of the paper's "
            f"Table 6 numbers lie inside our 95% interval; the largest gaps: {shown}. A gap beyond the "
            "interval is a difference of harness (prompt, template, extraction, sampling), not of model.")


def rank_reading(scores: dict[str, tuple[float, float, float]], expected_best: str, claim: str) -> str:
    """A one-line reading of ours against the paper's ``claim`` that ``expected_best`` scores highest.

    ``scores``: label → (score, 95% CI low, 95% CI high). "Agrees" needs ``expected_best``
    first with its interval clear of every other; overlapping intervals say so plainly.
    For results with per-item scores, compare paired instead (:mod:`tulu_lib.core.stats`,
    :func:`table6_reading`, :func:`tulu_lib.ablations.common.read_ablation`); this is for those
    without items (RLVR training-reward spans, held-out accuracy per domain).
    """
    if expected_best not in scores or len(scores) < 2:
        return f"Not comparable: need {expected_best!r} and at least one other result."
    # the expected best first among equals: a tie is "same direction", never "does not agree"
    ranked = sorted(scores, key=lambda k: (scores[k][0], k == expected_best), reverse=True)
    top, low = ranked[0], scores[ranked[0]][1]
    shown = ", ".join(f"{k} {scores[k][0]:.1f} [{scores[k][1]:.1f}, {scores[k][2]:.1f}]" for k in ranked)
    others = [k for k in scores if k != expected_best]
    if any(math.isnan(v) for value in scores.values() for v in value[1:]):
        verdict = f"Untested: {top} ranks first, but there is no 95% interval at this size"
    elif top == expected_best:
        clear = all(low > scores[k][2] for k in others)
        tied = any(scores[k][0] == scores[top][0] for k in others)
        verdict = ("Agrees" if clear else "No difference at this size" if tied else
                   "Same direction, not significant at this size (95% intervals overlap)")
    else:
        clear = scores[top][1] > scores[expected_best][2]
        verdict = ("Does not agree" if clear else
                   f"Inconclusive: {top} ranks first, but the 95% intervals overlap")
    return f"{verdict}. Paper: {claim} Ours (small scale): {shown}."


TABLE6_STEPS = ("base", "sft", "dpo", "rlvr")


def table6_paper_effect(before: str, after: str, columns: list[str] | None = None) -> float | None:
    """The paper's Table 6 average change (pp) between the 8B checkpoints of two of our stages
    (:data:`PAPER_COLUMNS`), over ``columns`` (Table 6 column names; None: its printed average over
    all twelve); None where the paper has no such row (the base model) or no column is given."""
    if before not in PAPER_COLUMNS or after not in PAPER_COLUMNS or columns == []:
        return None
    ref = reported().query("table == 'Table 6'").pivot(index="benchmark", columns="model", values="score")
    models = PAPER_COLUMNS[before], PAPER_COLUMNS[after]
    rows = ["Avg"] if columns is None else columns
    if not all(m in ref.columns for m in models) or not all(r in ref.index for r in rows):
        return None
    return round(float((ref.loc[rows, models[1]] - ref.loc[rows, models[0]]).mean()), 6)


def table6_reading(scores: pd.DataFrame) -> str:
    """Each stage against the one before on the paper's average, paired on items.

    ``scores``: 05_eval's rows (checkpoint, benchmark, score, ..., ``items_path``). For each
    consecutive pair of stages, :func:`tulu_lib.core.stats.paired_average` over the benchmarks both
    ran, on the items both scored (from each row's ``items_path``), read by
    :func:`tulu_lib.core.stats.verdict` against the paper's Table 6 average change between the
    corresponding 8B checkpoints (:func:`table6_paper_effect`; none for base → sft), with how many
    generated items' outputs differ between the two (:func:`tulu_lib.core.stats.changed_outputs`: a
    difference of zero can mean the training did not move the model). Without any
    items files (rows from elsewhere), the averages' 95% intervals are compared instead
    (:func:`rank_reading`).
    """

    ran = scores.dropna(subset=["score"])
    stages = [s for s in TABLE6_STEPS if s in set(ran["checkpoint"])]
    if len(stages) < 2:
        return "Not comparable: fewer than two checkpoints share a benchmark that ran."
    items: dict[str, dict[str, dict]] = {s: {} for s in stages}  # stage -> benchmark -> id -> score
    paths: dict[str, dict[str, str]] = {s: {} for s in stages}  # stage -> benchmark -> items_path
    if "items_path" in ran.columns:
        for r in ran.itertuples():
            if r.checkpoint in items and (got := stats.item_scores(r.items_path)) is not None:
                items[r.checkpoint][r.benchmark] = got
                paths[r.checkpoint][r.benchmark] = r.items_path
    if not any(items.values()):
        return _table6_interval_reading(ran, stages)
    ref = reported().query("table == 'Table 6' and benchmark == 'Avg'").set_index("model")["score"]
    shown_paper = " → ".join(f"{s.upper() if s != 'rlvr' else 'final'} {ref[PAPER_COLUMNS[s]]:.1f}"
                             for s in ("sft", "dpo", "rlvr") if PAPER_COLUMNS[s] in ref.index)
    steps = []
    for before, after in zip(stages, stages[1:], strict=False):
        shared = [b for b in items[before] if b in items[after]]
        columns = [c for c, b in suite.TABLE6_ROWS if b in shared]
        effect = table6_paper_effect(before, after, columns)
        if not shared:
            steps.append(f"{before} → {after}: untested (no benchmark with items from both)")
            continue
        comparison = stats.paired_average({b: (items[before][b], items[after][b]) for b in shared},
                                          paper_effect=effect)
        over = (f"; the paper's change over the same {len(columns)} of {len(suite.TABLE6_ROWS)} columns"
                if effect is not None else "")
        steps.append(stats.comparison_line(f"{before} → {after} ({', '.join(shared)}{over})", comparison, +1)
                     + stats.changed_outputs([(paths[before][b], paths[after][b]) for b in shared]))
    return (f"Paper: each stage raised the 8B average ({shown_paper}, over all "
            f"{len(suite.TABLE6_ROWS)} Table 6 benchmarks). "
            "Ours (small scale), each step paired on the items both checkpoints scored (mean of the "
            "per-benchmark differences, 95% CI, smallest difference detectable at 95% with 80% power): "
            + "; ".join(steps) + ".")


def _table6_interval_reading(ran: pd.DataFrame, stages: list[str]) -> str:
    """The reading without items: averages over the benchmarks every stage ran, by 95% intervals."""

    common = set.intersection(*(set(ran.loc[ran["checkpoint"] == s, "benchmark"]) for s in stages))
    if not common:
        return "Not comparable: fewer than two checkpoints share a benchmark that ran."
    avg = {}
    for s in stages:
        a = average_score(ran[(ran["checkpoint"] == s) & ran["benchmark"].isin(common)].to_dict("records"))
        avg[s] = (a["average"], a["ci95_low"], a["ci95_high"])
    steps = [f"{before} → {after}: " + rank_reading({after: avg[after], before: avg[before]}, after, "")
             .split(".")[0] for before, after in zip(stages, stages[1:], strict=False)]
    shown = " → ".join(f"{s} {avg[s][0]:.1f}" for s in stages)
    return (f"Paper: each stage raised the 8B average. Ours (small scale, mean of {len(common)} "
            f"benchmarks): {shown}; " + "; ".join(steps) + ".")


def published_check(scores: pd.DataFrame, model: str) -> pd.DataFrame:
    """The start model as it ships against the numbers published for it (``PUBLISHED``).

    ``scores``: 05_eval's rows for the ``base`` checkpoint (there: with the model's own chat
    template and ``eval.card_max_new_tokens``). IFEval is compared as the card reports it (the
    mean of prompt- and instruction-level strict accuracy); GSM8K as accuracy. ``cut off``: how
    many replies reached the token budget before they ended.
    """
    card = pd.read_csv(PUBLISHED)
    card = card[card["model"] == model]
    ours = scores.set_index("benchmark")
    rows = []
    for r in card.itertuples():
        if r.benchmark not in ours.index or pd.isna(ours.loc[r.benchmark, "score"]):
            continue
        o = ours.loc[r.benchmark]
        value = (o["prompt_strict"] + o["inst_strict"]) / 2 if r.benchmark == "ifeval" else o["score"]
        cut = o.get("cut_off")
        rows.append({"benchmark": r.benchmark, "published": r.published, "ours": value, "n": int(o["n"]),
                     "ours headline": o["score"],
                     "headline 95% CI": f"[{o['ci95_low']:.1f}, {o['ci95_high']:.1f}]",
                     "cut off": "" if cut is None or pd.isna(cut) else f"{int(cut)} of {int(o['n'])}",
                     "published settings": r.settings, "ours settings": o["metric"]})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PaperItem:
    """A table or figure of the paper, what the paper found, and where the workbook reproduces it."""

    ref: str  # "Figure 2", "Table 20"
    title: str
    notebook: str
    switch: str  # the params that produce (or enable) it
    output: str  # the main file under the run folder
    finding: str = ""  # the paper's result, in one line
    also: tuple[str, ...] = ()  # companion outputs shown with it


PAPER_ITEMS: tuple[PaperItem, ...] = (
    PaperItem("Figure 2", "SFT mix composition (by source, by length)", "01_data", "data.sft",
              "figures/fig02_sft_mix.png", "The final SFT mix by source and by prompt + completion length."),
    PaperItem("§2.3", "Decontamination: training source x benchmark overlap", "01_data",
              "decontamination.*", "tables/contamination.csv",
              "8-gram overlap of at least half an eval item marks it; a source matching over 2% of a "
              "benchmark is decontaminated.", ("tables/decontamination_removed.csv",)),
    PaperItem("SFT §4", "SFT hyperparameters", "06_paper_tables", "sft.*", "tables/hparams_sft.csv",
              "lr 5e-6 (8B) / 2e-6 (70B), linear, warmup 0.03, 2 epochs, batch 128, max length 4096."),
    PaperItem("§4 batch aggregation", "SFT sum vs mean loss: curves and scores", "02_sft",
              "sft.ablate_loss", "tables/sft_sum_vs_mean.csv",
              "A token-mean loss weights tokens unequally across micro-batches; the sum loss trains better.",
              ("figures/sft_sum_vs_mean_loss.png",)),
    PaperItem("Figure 4", "SFT on stratified subsamples of the mix", "02_sft", "sft.ablate_subsample",
              "figures/fig04_sft_subsamples.png", "The full SFT mix performs best overall.",
              ("tables/fig04_sft_subsamples.csv",)),
    PaperItem("§4 mix ablations", "SFT without one source at a time", "02_sft", "sft.ablate_sources",
              "figures/sft_source_removal.png",
              "Removing a source (WildChat, safety, persona, math data) lowers the average or its skill.",
              ("tables/sft_source_removal.csv",)),
    PaperItem("Figure 8", "DPO: number of unique prompts", "03_dpo", "dpo.sweeps.unique_prompts",
              "figures/fig08_unique_prompts.png",
              "More unique prompts give better DPO models.", ("tables/fig08_unique_prompts.csv",)),
    PaperItem("Figure 9", "DPO: duplicated prompts", "03_dpo", "dpo.sweeps.duplicated_prompts",
              "figures/fig09_duplicated_prompts.png",
              "Same unique prompts (64k), duplicated: more pairs per prompt help less than new prompts.",
              ("tables/fig09_duplicated_prompts.csv",)),
    PaperItem("Figure 10", "DPO: prompts reused from SFT vs new prompts", "03_dpo",
              "dpo.sweeps.reused_vs_new", "figures/fig10_reused_vs_new.png",
              "New prompts 61.0 vs reused 59.8 average; reused prompts still help.",
              ("tables/fig10_reused_vs_new.csv",)),
    PaperItem("Figure 11", "DPO: on-policy vs off-policy responses", "03_dpo", "dpo.sweeps.on_policy",
              "figures/fig11_on_policy.png",
              "On-policy 60.7 vs off-policy 60.0 average; both together 61.2.",
              ("tables/fig11_on_policy.csv", "tables/fig11_on_policy_synthesis.csv")),
    PaperItem("§5.2.1", "Synthetic preference pipeline: persona prompts, model pool, LLM judge, binarization",
              "03_dpo", "synthesis.*", "tables/synthesis_counts.csv",
              "Pairs from a pool of models plus the policy (on-policy), rated 1-5 by GPT-4o on four aspects; "
              "chosen = highest mean rating, rejected = a random lower-rated response.",
              ("figures/synthesis_ratings.png", "figures/synthesis_margins.png", "tables/synthesis_pairs.csv",
               "tables/synthesis_judge_agreement.csv")),
    PaperItem("Table 18", "DPO algorithms compared from one SFT checkpoint", "03_dpo",
              "dpo.ablate_losses", "tables/table18_dpo_algorithms.csv",
              "Length-normalized DPO performs best overall.",
              ("figures/table18_dpo_algorithms.png", "figures/dpo_training.png")),
    PaperItem("Figure 17", "DPO peak memory: reference cache, separate chosen/rejected passes", "03_dpo",
              "dpo.measure_memory", "figures/fig17_dpo_memory.png",
              "Caching reference log-probs and separate forward passes lower peak GPU memory.",
              ("tables/fig17_dpo_memory.csv",)),
    PaperItem("Table 20", "DPO hyperparameters", "06_paper_tables", "dpo.*", "tables/hparams_dpo.csv",
              "dpo_norm, beta 5, lr 5e-7 (8B) / 2e-7 (70B), warmup 0.1, 1 epoch, batch 128, "
              "max length 2048."),
    PaperItem("Table 21", "RLVR hyperparameters", "06_paper_tables", "rlvr.*", "tables/hparams_rlvr.csv",
              "PPO, alpha 10, beta 0.05 (8B) / 0.07 (70B), non-EOS penalty -10, lr 3e-7 (8B) / 1e-7 (70B)."),
    PaperItem("Figure 19", "RLVR reward, KL and response length per domain", "04_rlvr", "rlvr.*",
              "figures/fig19_rlvr_curves.png",
              "RLVR raises the verifiable reward on all three training sets and can raise test scores.",
              ("tables/rlvr_reward_change.csv", "tables/rlvr_held_out.csv", "tables/rlvr_checkpoints.csv")),
    PaperItem("Figure 20", "RLVR from the SFT vs the DPO checkpoint", "04_rlvr", "rlvr.compare_sft_start",
              "figures/fig20_sft_vs_dpo_start.png",
              "Both starts reach similar verifiable reward; from SFT the KL is larger at the same beta.",
              ("tables/fig20_sft_vs_dpo_start.csv",)),
    PaperItem("Figure 16", "RLVR: the KL coefficient beta x warm-up", "04_rlvr",
              "rlvr.beta_sweep, rlvr.warmup_sweep", "figures/fig16_beta_warmup.png",
              "Too small a beta over-optimizes the verifiable reward and lowers the average score.",
              ("tables/fig16_beta_warmup.csv", "figures/fig16_beta_warmup_curves.png")),
    PaperItem("§6 value model", "RLVR (PPO): value model from a reward model vs from the policy", "04_rlvr",
              "rlvr.ablate_value_init", "figures/rlvr_value_init.png",
              "Initialising the value model from a general reward model works best.",
              ("tables/rlvr_value_init.csv", "figures/rlvr_value_init_curves.png")),
    PaperItem("§6 reward model score", "RLVR (PPO): verifiable reward alone vs plus the RM score", "04_rlvr",
              "rlvr.ablate_reward_model_score", "figures/rlvr_rm_score.png",
              "The verifiable reward alone does better than the reward model's score added to it.",
              ("tables/rlvr_rm_score.csv", "figures/rlvr_rm_score_curves.png")),
    PaperItem("§6 PPO vs GRPO", "RLVR: PPO vs GRPO on the same prompts and replies", "04_rlvr",
              "rlvr.compare_algorithms", "figures/rlvr_ppo_vs_grpo.png",
              "The paper trained with PPO only (no GRPO result): the comparison is ours.",
              ("tables/rlvr_ppo_vs_grpo.csv", "figures/rlvr_ppo_vs_grpo_curves.png")),
    PaperItem("Table 6", "8B results, ours per stage beside the paper", "05_eval", "eval.benchmarks",
              "tables/table6_comparison.csv",
              "Tülu 3 8B average: SFT 60.6 → DPO 64.7 → final 65.1 (from Llama 3.1 8B base)."),
    PaperItem("Table 3 (unseen)", "The unseen evaluation suite, ours per stage", "05_eval",
              "eval.benchmarks", "tables/unseen_comparison.csv",
              "Tülu 3 generalises to benchmarks held out from development (AGIEval, MMLU-Pro, GPQA, ...)."),
    PaperItem("Calibration", "The released Tülu 3 checkpoints under this harness, beside Table 6", "05_eval",
              "eval.checkpoints", "tables/calibration.csv",
              "Table 6's numbers for Tülu-3-8B-SFT, -DPO and Tülu-3-8B, from the paper's OLMES harness."),
)


def item_status(run_dir: Path, item: PaperItem) -> str:
    return "produced" if (run_dir / item.output).exists() else \
        f"not produced in this run: it comes from {item.notebook} ({item.switch})"


README = Path(__file__).resolve().parents[2] / "README.md"
README_MARKERS = ("<!-- paper-index:start -->", "<!-- paper-index:end -->")


def readme_index() -> str:
    """The README's paper index, generated from :data:`PAPER_ITEMS`: one markdown row per item
    (paper item, what, notebook, params switch, output files), in :data:`PAPER_ITEMS`' order.

    Usage::

        python -m tulu_lib.reporting.paper --write-readme   # rewrite the block between README_MARKERS
    """
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| paper | what | notebook | params | output |", "|---|---|---|---|---|"]
    for item in PAPER_ITEMS:
        outputs = ", ".join(f"`{cell(o)}`" for o in (item.output, *item.also))
        rows.append(f"| {cell(item.ref)} | {cell(item.title)} | `{item.notebook}` | `{cell(item.switch)}` "
                    f"| {outputs} |")
    return "\n".join(rows) + "\n"


def readme_with_index(text: str) -> str:
    """``text`` (a README) with the block between :data:`README_MARKERS` replaced by
    :func:`readme_index`; ValueError when the markers are missing or out of order."""
    start, end = README_MARKERS
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"the README needs the lines {start} and {end} around the paper index")
    return f"{head}{start}\n{readme_index()}{end}{rest.split(end, 1)[1]}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-readme"]:
        sys.exit("usage: python -m tulu_lib.reporting.paper --write-readme")
    old = README.read_text(encoding="utf-8")
    new = readme_with_index(old)
    if new != old:
        README.write_text(new, encoding="utf-8")
    print(f"{README}: paper index {'rewritten' if new != old else 'already up to date'}")
