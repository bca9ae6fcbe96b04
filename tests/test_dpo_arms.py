"""DPO ablations as arms: sweep data (Figures 8–11), on-policy synthesis, sweep spec, Table 18, readings;
and the one ablation mechanism (train, cache, score, read) end to end."""

import dataclasses
import json
import math
from pathlib import Path

import datasets
import pandas as pd
import pytest

from tulu_lib.ablations import arms, dpo_arms
from tulu_lib.core.params import OnPolicySweep, ParamsError, load_params
from tulu_lib.data import loader
from tulu_lib.evals import suite
from tulu_lib.generation.types import Completion
from tulu_lib.train import dpo
from tulu_lib.workbook.stages import Stage

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"


def _msg(role, text):
    return [{"role": role, "content": text}]


def _pair(i, prompt, source="s", chosen=None):
    return {"id": f"p{i}", "prompt": _msg("user", prompt), "chosen": _msg("assistant", chosen or f"good {i}"),
            "rejected": _msg("assistant", f"bad {i}"), "source": source}


@pytest.fixture
def pairs():
    """12 pairs over 10 unique prompts (p1/p11 and p2/p12 repeat a prompt, up to case and spaces)."""
    rows = [_pair(i, f"Question number {i}?") for i in range(10)]
    rows += [_pair(11, "question  NUMBER 1?"), _pair(12, "Question number 2?")]
    return datasets.Dataset.from_list(rows)


# --------------------------------------------------------------------- sweep data


def test_unique_prompt_subsets_are_nested_with_one_pair_per_prompt(pairs):
    subsets = dpo_arms.unique_prompt_subsets(pairs, [3, 6, 10], seed=5)
    ids = {n: s["id"] for n, s in subsets.items()}
    assert [len(s) for s in subsets.values()] == [3, 6, 10]
    assert ids[6][:3] == ids[3] and ids[10][:6] == ids[6]  # nested: one shuffle, first N
    for s in subsets.values():
        assert len({loader.prompt_key(p) for p in s["prompt"]}) == len(s)
    assert dpo_arms.unique_prompt_subsets(pairs, [6], seed=5)[6]["id"] == ids[6]  # same seed, same set
    with pytest.raises(ValueError, match="10 unique prompts"):
        dpo_arms.unique_prompt_subsets(pairs, [11], seed=5)


def test_duplicated_prompt_sets_repeat_each_pair_exactly(pairs):
    sets = dpo_arms.duplicated_prompt_sets(pairs, prompts=4, copies=[1, 3], seed=0)
    base = {i.split("#")[0] for i in sets[1]["id"]}
    assert len(sets[1]) == 4 and len(sets[3]) == 12
    for c, s in sets.items():
        assert len(set(s["id"])) == len(s)  # each copy its own id
        assert {i.split("#")[0] for i in s["id"]} == base  # the same unique prompts in every variant
        counts = pd.Series([i.split("#")[0] for i in s["id"]]).value_counts()
        assert (counts == c).all()
        assert len({loader.prompt_key(p) for p in s["prompt"]}) == 4


def test_reused_prompts_are_tagged_and_split_source_for_source():
    sft = datasets.Dataset.from_list([
        {"id": "a", "source": "x", "messages": _msg("user", "Alpha?") + _msg("assistant", "A.")},
        {"id": "b", "source": "x", "messages": [{"role": "system", "content": "be brief"},
                                                *_msg("user", "beta?"), *_msg("assistant", "B."),
                                                *_msg("user", "And gamma?"), *_msg("assistant", "G.")]}])
    pool = datasets.Dataset.from_list([
        _pair(0, "alpha?", "math"),                                 # reused (case)
        _pair(1, "Beta?", "chat"),                                  # reused (system turn ignored)
        {**_pair(2, "", "chat"), "prompt": _msg("user", "beta?") + _msg("assistant", "B.")
         + _msg("user", "and gamma?")},                             # reused: a later user turn
        _pair(3, "delta?", "math"), _pair(4, "epsilon?", "chat"),   # new
        _pair(5, "zeta?", "code"), _pair(6, "Gamma?", "math")])     # new (gamma alone is not a prompt)
    assert dpo_arms.tag_reused(pool, sft) == [True, True, True, False, False, False, False]

    arms = dpo_arms.reuse_split(pool, sft, pairs=2, seed=1)
    assert len(arms["reused"]) == len(arms["new"]) == 2
    assert all(dpo_arms.tag_reused(arms["reused"], sft))
    assert not any(dpo_arms.tag_reused(arms["new"], sft))
    assert sorted(arms["reused"]["source"]) == sorted(arms["new"]["source"])
    # only one new "chat" pair and one new "math" pair: at most 2 matched of the 3 reused
    assert len(dpo_arms.reuse_split(pool, sft, pairs=3, seed=1)["new"]) == 2
    with pytest.raises(ValueError, match="occurs in the SFT data"):
        dpo_arms.reuse_split(pool.select([3, 4, 5]), sft, pairs=2, seed=1)


class StubGenerator:
    """Known completions per prompt text; records the sampling it was asked for."""

    def __init__(self, replies: dict[str, list[tuple[str, bool]]]):
        self.replies, self.sampling = replies, None

    def generate(self, prompts, sampling):
        self.sampling = sampling
        return [[Completion(text, done, len(text.split())) for text, done in self.replies[p[-1]["content"]]]
                for p in prompts]


def _rlvr(i, question, answer, dataset="gsm8k"):
    return {"id": f"r{i}", "messages": _msg("user", question), "ground_truth": answer, "dataset": dataset,
            "source": dataset}


def test_on_policy_synthesis_pairs_a_verified_with_a_failed_completion():
    rows = datasets.Dataset.from_list([
        _rlvr(0, "2+5?", "7"), _rlvr(1, "1+1?", "2"), _rlvr(2, "3+3?", "6"), _rlvr(3, "4+4?", "8"),
        _rlvr(4, "Reply in lowercase.", json.dumps({"func_name": "validate_lowercase"}), "ifeval")])
    generator = StubGenerator({
        "2+5?": [("so 7", False), ("it is 7", True), ("it is 3", True), ("", True)],  # a pair; one empty
        "1+1?": [("2", True), ("that is 2", True), ("two: 2", True), ("2.", True)],  # all verified
        "3+3?": [("5", True), ("7", True), ("nine", True), ("", True)],  # all failed
        "4+4?": [("", True), ("", False), ("", True), ("", True)],  # all empty
        "Reply in lowercase.": [("all lower", True), ("Not Lower", True), ("UPPER", True), ("ok", True)]})
    spec = OnPolicySweep(prompts=10, samples=4, max_new_tokens=32, temperature=0.7)
    out = dpo_arms.synthesize_on_policy(generator, rows, spec, seed=3)

    s = generator.sampling
    assert (s.n, s.max_new_tokens, s.temperature, s.seed) == (4, 32, 0.7, 3)
    assert out.counts["prompts"] == 5 and out.counts["completions"] == 20 and out.counts["pairs"] == 2
    assert out.counts["prompts without a verified and a failed completion"] == 3
    assert (out.counts["verified"], out.counts["failed"], out.counts["empty"]) == (8, 6, 6)
    by_id = {r["id"]: r for r in out.pairs}
    assert set(by_id) == {"on_policy/r0", "on_policy/r4"}
    gsm = by_id["on_policy/r0"]
    assert gsm["chosen"][0]["content"] == "it is 7"  # the verified completion that finished
    assert gsm["rejected"][0]["content"] == "it is 3" and gsm["prompt"] == _msg("user", "2+5?")
    assert gsm["source"] == "on_policy_gsm8k"
    assert by_id["on_policy/r4"]["chosen"][0]["content"] in ("all lower", "ok")
    assert by_id["on_policy/r4"]["rejected"][0]["content"] in ("Not Lower", "UPPER")
    assert len(out.judged) == 20 and out.judged["verified"].isna().sum() == 6

    nothing = dpo_arms.synthesize_on_policy(generator, rows.select([1, 2]), spec, seed=3)
    assert nothing.pairs is None and nothing.counts["pairs"] == 0

    variants = dpo_arms.on_policy_variants(out.pairs, datasets.Dataset.from_list(
        [_pair(i, f"q{i}") for i in range(5)]), seed=0)
    assert variants["initial"] is None
    assert [len(variants[k]) for k in ("off-policy", "on-policy", "off+on-policy")] == [2, 2, 4]


# -------------------------------------------------------------------------- params


def test_sweep_spec_defaults_off_and_validates_with_clear_errors(tmp_path):
    p = load_params(SMOKE, ["dpo.sweeps={}"])
    assert p.dpo.sweeps.enabled == () and p.dpo.sweeps.epochs == 1.0 and p.dpo.measure_memory is False
    on = load_params(SMOKE, ["dpo.sweeps={unique_prompts: [4, 8], on_policy: {prompts: 3}}"]).dpo.sweeps
    assert on.enabled == ("unique_prompts", "on_policy") and on.on_policy == OnPolicySweep(prompts=3)
    assert dpo_arms.sweep_params(load_params(SMOKE).dpo).optim.max_steps == -1

    cases = {
        "dpo.sweeps.unique_prompts=[8, 4]": "dpo.sweeps: unique_prompts must be positive integers in",
        "dpo.sweeps.unique_prompts=[0, 4]": "unique_prompts must be positive",
        "dpo.sweeps.duplicated_prompts={prompts: 4}": "duplicated_prompts.copies: missing required key",
        "dpo.sweeps.duplicated_prompts={prompts: 4, copies: []}": "copies must list at least one value",
        "dpo.sweeps.on_policy={prompts: 4, samples: 1}": "samples must be >= 2",
        "dpo.sweeps.on_policy={prompts: 4, temperature: 0}": "temperature must be > 0",
        "dpo.sweeps.reused_vs_new={pairs: 0}": "dpo.sweeps.reused_vs_new: pairs must be >= 1",
        "dpo.sweeps.reused_vs_new=true": "dpo.sweeps.reused_vs_new: expected a mapping",
        "dpo.sweeps.uniqe_prompts=[4]": "did you mean 'unique_prompts'",
        "dpo.sweeps.epochs=0": "epochs must be > 0",
        "dpo.measure_memory=1": "dpo.measure_memory: expected bool",
    }
    for override, message in cases.items():
        with pytest.raises(ParamsError) as info:
            load_params(SMOKE, [override])
        assert message in str(info.value) and str(SMOKE) in str(info.value), (override, str(info.value))


# ------------------------------------------------------------------ scores, readings


def _score(avg, low, high):
    return {"average": avg, "ci95_low": low, "ci95_high": high}


def test_score_rows_and_readings_follow_the_intervals():
    results = [{"benchmark": "gsm8k", "n": 10, "score": 40.0, "ci95_low": 30.0, "ci95_high": 54.0},
               {"benchmark": "ifeval", "n": 20, "score": 20.0, "ci95_low": 14.0, "ci95_high": 28.0}]
    row = arms.score_row(results)
    assert row["gsm8k"] == 40.0 and row["items"] == 30 and row["average"] == 30.0
    assert row["ci95_low"] == pytest.approx(30 - math.sqrt(10**2 + 6**2) / 2)

    a, b, c = _score(60, 55, 65), _score(40, 35, 45), _score(50, 44, 58)
    algorithms = pd.DataFrame([{"algorithm": k, **v} for k, v in (("dpo", c), ("dpo_norm", b), ("simpo", a))])
    line = arms.read_ablation(dpo_arms.ABLATIONS["table18_dpo_algorithms"], algorithms)
    assert line.startswith("Does not agree. Paper: Length-normalized DPO performs best overall.")
    assert "algorithm simpo 60.0 [55.0, 65.0], algorithm dpo 50.0" in line
    ordered = pd.DataFrame([{"unique prompts": n, **v} for n, v in ((4, b), (8, c), (16, a))])
    line = arms.read_ablation(dpo_arms.ABLATIONS["fig08_unique_prompts"], ordered)
    assert line.startswith("Same direction, not significant") and "unique prompts 16 60.0" in line
    arms_ = {"initial": a, "off-policy": b, "on-policy": _score(50, 46, 54), "off+on-policy": c}
    table = pd.DataFrame([{"responses": k, **v} for k, v in arms_.items()])
    line = arms.read_ablation(dpo_arms.ABLATIONS["fig11_on_policy"], table)
    assert line.startswith("Agrees.") and "initial" not in line and "off+on" not in line


def test_bad_pairs_are_dropped_and_counted_before_training():
    good = _pair(0, "q?")
    bad = [_pair(1, "q1?", chosen="bad 1"), {**_pair(2, "q2?"), "rejected": _msg("assistant", " ")},
           {**_pair(3, "q3?"), "chosen": _msg("user", "x") + _msg("assistant", "y"), "prompt": None}]
    kept, dropped = dpo.drop_bad_pairs(datasets.Dataset.from_list([good]))
    assert len(kept) == 1 and dropped == {}
    kept, dropped = dpo.drop_bad_pairs(datasets.Dataset.from_list([good, *bad]))
    assert kept["id"] == ["p0"] and sum(dropped.values()) == 3
    assert dropped["chosen and rejected are identical"] == 1


# ------------------------------------------------------------------- end to end


def test_a_tiny_sweep_trains_evaluates_and_reports(tiny_path, tmp_path, monkeypatch):
    p = load_params(SMOKE, ["eval.benchmarks={gsm8k: {limit: 2}, ifeval: {limit: 2}, mmlu: {limit: 2}}",
                            "rlvr.select_with=held_out",
                            "eval.ablation_benchmarks=[gsm8k, ifeval]", "eval.max_new_tokens=8",
                            "dpo.optim.per_device_batch_size=2", "dpo.optim.max_length=96"])
    prefs = datasets.Dataset.from_list([_pair(i, f"What is {i} plus {i}?") for i in range(8)])
    variants = dpo_arms.unique_prompt_subsets(prefs, [2, 4], seed=0)
    fig08 = dpo_arms.ABLATIONS["fig08_unique_prompts"]
    run = dict(start=tiny_path, p=p, out_dir=tmp_path / "fig08")
    table, curves = arms.run_arms(fig08, dpo_arms.sweep_arms(p, variants), **run)
    assert table["unique prompts"].tolist() == [2, 4] and table["steps"].tolist() == [1, 2]
    assert table["pairs"].tolist() == [2, 4] and set(table.columns) >= {"gsm8k", "ifeval", "average"}
    assert "mmlu" not in table.columns  # only the ablation benchmarks
    assert ((table["ci95_low"] <= table["average"]) & (table["average"] <= table["ci95_high"])).all()
    folders = sorted((tmp_path / "fig08").iterdir())
    assert len(folders) == 2 and all((f / "result.json").is_file() for f in folders)
    assert not list((tmp_path / "fig08").glob("*/train/final"))  # weights deleted once evaluated
    assert set(curves) == {"2", "4"} and all("loss" in log for log in curves.values())

    monkeypatch.setattr(arms.entry, "train", None)  # a rerun trains nothing: it reads result.json
    again, _ = arms.run_arms(fig08, dpo_arms.sweep_arms(p, variants), **run)
    pd.testing.assert_frame_equal(again, table)
    changed = dataclasses.replace(p, eval=dataclasses.replace(p.eval, max_new_tokens=4))
    with pytest.raises(TypeError):  # another key: it would train again
        arms.run_arms(fig08, dpo_arms.sweep_arms(changed, variants), **{**run, "p": changed})

    stage = Stage("03_dpo", p, tmp_path / "run", tmp_path / "stage")
    line = arms.save_ablation(stage, fig08, table)
    assert "Paper: More unique prompts give better DPO models." in line
    saved = pd.read_csv(tmp_path / "stage" / "tables" / "fig08_unique_prompts.csv")
    assert saved["unique prompts"].tolist() == [2, 4]
    assert (tmp_path / "stage" / "figures" / "fig08_unique_prompts.png").is_file()
    outputs = json.loads((tmp_path / "stage" / "stage_outputs.json").read_text())
    assert outputs["tables"]["fig08_unique_prompts"].startswith("Figure 8 in miniature")
    assert outputs["readings"]["Figure 8"] == line


def test_the_stage_run_is_scored_not_trained_again(tiny_path, tmp_path, monkeypatch):
    """Table 18: the recipe's loss is the stage's own run (``main``): scored from its checkpoint, kept."""
    from tulu_lib.train.common import TrainResult

    p = load_params(SMOKE, ["eval.benchmarks={gsm8k: {limit: 2}}", "eval.ablation_benchmarks=[gsm8k]",
                            "rlvr.select_with=held_out",
                            "eval.max_new_tokens=4", "dpo.ablate_losses=[simpo]", "dpo.optim.max_length=96"])
    prefs = datasets.Dataset.from_list([_pair(i, f"What is {i}?") for i in range(4)])
    group = dpo_arms.algorithm_arms(p, prefs)
    assert [(a.label, a.main, a.settings["trl loss"]) for a in group] == [
        ("dpo_norm", True, "sigmoid_norm"), ("simpo", False, "sigmoid_norm")]
    assert group[1].settings["gamma/beta"] == p.dpo.gamma_beta_ratio
    assert group[0].settings["gamma/beta"] is None
    main = TrainResult(Path(tiny_path), [{"loss": 0.5, "step": 3}], {}, 1.0)
    trained = []
    monkeypatch.setattr(arms.entry, "train", lambda stage, q, **kw: trained.append(q.dpo.loss) or main)
    table, _ = arms.run_arms(dpo_arms.ABLATIONS["table18_dpo_algorithms"], group, start=tiny_path, p=p,
                             out_dir=tmp_path / "t18", main=main, eval_cache=tmp_path / "cache")
    assert trained == ["simpo"] and table["algorithm"].tolist() == ["dpo_norm", "simpo"]
    assert table["final loss"].tolist() == [0.5, 0.5] and Path(tiny_path).is_dir()  # main's weights kept
    # the stage's checkpoint is scored into the run's eval cache, a trained arm's into its own folder
    paths = [Path(row["gsm8k"]) for row in table[arms.ITEMS]]
    assert paths[0].is_relative_to(tmp_path / "cache") and paths[1].is_relative_to(tmp_path / "t18")
    # ...so 05_eval's call for the same checkpoint and eval params reuses every item: nothing generated
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def generate(self, prompts, sampling):
            calls.append(len(prompts))
            return self.inner.generate(prompts, sampling)

    real = suite.generator_for
    monkeypatch.setattr(suite, "generator_for", lambda q, model: Counting(real(q, model)))
    [again] = suite.evaluate_model(tiny_path, p, tmp_path / "cache", benchmarks=p.eval.ablation())
    assert calls == [] and Path(again["items_path"]) == paths[0]
    assert again["score"] == table["gsm8k"].iloc[0]


def test_paper_numbers_join_the_figure_10_table(tmp_path):
    p = load_params(SMOKE)
    row = {"average": 1.0, "ci95_low": 0.0, "ci95_high": 2.0, "gsm8k": 1.0}
    table = pd.DataFrame([{"prompts": "reused", **row}, {"prompts": "new", **row}])
    stage = Stage("03_dpo", p, tmp_path / "run", tmp_path / "stage")
    arms.save_ablation(stage, dpo_arms.ABLATIONS["fig10_reused_vs_new"], table)
    saved = pd.read_csv(tmp_path / "stage" / "tables" / "fig10_reused_vs_new.csv")
    assert saved["paper (Figure 10)"].tolist() == [59.8, 61.0]
