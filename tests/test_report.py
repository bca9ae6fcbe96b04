"""The report rebuilds from saved results alone (fixture run folder), and the paper index
in the README lists every table and figure the workbook reproduces."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tulu_lib.cli import main
from tulu_lib.core.params import load_params
from tulu_lib.reporting import paper
from tulu_lib.workbook import report


def _fixture_run(root: Path) -> Path:
    run = root / "run"
    (run / "stages").mkdir(parents=True)
    (run / "tables").mkdir()
    (run / "figures").mkdir()
    params = load_params("params/cpu.yaml")
    (run / "manifest.json").write_text(json.dumps({
        "run": "cpu", "scale": params.scale, "params_file": "params/cpu.yaml", "params_hash": params.hash(),
        "params": params.to_dict(), "git": {"commit": "abc", "dirty": False},
        "hardware": {"cpu_count": 2, "memory_gb": 24, "gpus": []}}))
    pd.DataFrame({"hyperparameter": ["loss"], "this run": ["sum"]}).to_csv(run / "tables" / "hparams_sft.csv",
                                                                           index=False)
    (run / "figures" / "fig02_sft_mix.png").write_bytes(b"\x89PNG")
    (run / "stages" / "01_data.json").write_text(json.dumps({
        "status": "done", "elapsed_s": 12, "started": 1, "figures": {"fig02_sft_mix": "Figure 2: mix"},
        "tables": {}, "readings": {"Figure 2": "Ours has 5 sources."}}))
    (run / "stages" / "06_paper_tables.json").write_text(json.dumps({
        "status": "done", "elapsed_s": 3, "started": 2, "tables": {"hparams_sft": "SFT hyperparameters"},
        "figures": {}}))
    (run / "stages" / "02_sft.json").write_text(json.dumps({
        "started": 0, "last_attempt": {"started": 5, "status": "failed", "error": "boom", "cell": 4,
                                       "notebook": "failed/02_sft.html"}}))
    return run


def test_report_from_a_fixture_run_uses_relative_links_only(tmp_path):
    run = _fixture_run(tmp_path)
    assert main(["report", "--run", str(run)]) == 0
    page = (run / "index.html").read_text()
    assert "Figure 2: mix" in page and "figures/fig02_sft_mix.png" in page
    assert "SFT hyperparameters" in page and "failed</span>: boom (cell 4)" in page
    assert "Small-scale reproduction" in page
    assert str(tmp_path) not in page
    assert "not produced in this run: it comes from 04_rlvr" in page  # Figure 19 missing
    # each paper item: the paper's finding, ours inline (embedded: one shareable file), our reading
    assert "<b>Ours:</b> Ours has 5 sources." in page and "data:image/png;base64,iVBORw" in page
    assert "Not run here: set <code>dpo.measure_memory</code>" in page


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 1
    assert "a tulu-repro run" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()


def test_readme_paper_index_lists_every_item():
    readme = Path("README.md").read_text()
    index = readme.split("## Paper index", 1)[1].split("\n## ", 1)[0]
    for item in paper.PAPER_ITEMS:
        assert f"| {item.ref} " in index and item.output in index and item.notebook in index, item.ref


def test_hyperparameter_table_renders_params_side_by_side():
    table = paper.hyperparameter_table({"8B": load_params("params/tulu3-8b.yaml"),
                                        "70B": load_params("params/tulu3-70b.yaml")}, "dpo")
    row = table.set_index("hyperparameter").loc["optim.learning_rate"]
    assert (row["8B"], row["70B"]) == (5e-7, 2e-7)


def test_table21_shows_the_papers_ppo_in_its_columns_and_what_ran_in_ours():
    rlvr = paper.hyperparameter_table({"this run": load_params("params/cpu.yaml"),
                                       "paper 8B": load_params("params/tulu3-8b.yaml")}, "rlvr")
    rlvr = rlvr.set_index("hyperparameter")
    paper8b, ours = rlvr["paper 8B"], rlvr["this run"]
    assert paper8b["algorithm"] == "ppo" and ours["algorithm"] == "grpo"
    assert (paper8b["ppo.gamma"], paper8b["ppo.lam"], paper8b["ppo.cliprange"], paper8b["ppo.vf_coef"],
            paper8b["ppo.ppo_epochs"]) == (1.0, 0.95, 0.2, 0.1, 4)
    assert paper8b["KL estimator"].startswith("k1") and ours["KL estimator"].startswith("k3")
    assert paper8b["value model initialised from"] == "allenai/Llama-3.1-Tulu-3-8B-RM"
    assert paper8b["num_generations"] == "— (PPO: unused)" and ours["ppo.gamma"] == "— (GRPO: unused)"
    # what the small run changed is marked, the data it trains on included; what it kept is not
    marked = rlvr["this run vs paper 8B"]
    assert marked["optim.learning_rate"] == marked["data.mix.if_short"] == paper.SMALL_SCALE
    assert ours["data.mix.if_short"] == 96 and marked["beta"] == "" and ours["beta"] == paper8b["beta"]


def test_reported_numbers_are_the_papers():
    ref = paper.reported()
    assert ref.query("model == 'Tulu-3-8B' and benchmark == 'GSM8K'")["score"].item() == 87.6
    assert report  # the module imports without a run


@pytest.mark.parametrize("scores, verdict", [
    ({"sum": (40, 35, 45), "mean": (20, 15, 25)}, "Agrees."),
    ({"sum": (40, 30, 50), "mean": (35, 25, 45)}, "Same direction, not significant"),
    ({"sum": (20, 15, 25), "mean": (40, 35, 45)}, "Does not agree."),
    ({"sum": (35, 25, 45), "mean": (40, 30, 50)}, "Inconclusive: mean ranks first"),
    ({"sum": (35, 25, 45)}, "Not comparable"),
    ({"mean": (35, 25, 45), "sum": (35, 25, 45)}, "No difference at this size"),
    ({"mean": (40, float("nan"), float("nan")), "sum": (35, 25, 45)}, "Untested: mean ranks first"),
])
def test_rank_reading(scores, verdict):
    text = paper.rank_reading(scores, "sum", "Sum loss trains better.")
    assert text.startswith(verdict)
    if len(scores) == 2:
        assert "Paper: Sum loss trains better." in text and f"sum {scores['sum'][0]:.1f} [" in text


def _scores(rows):
    return pd.DataFrame([{"checkpoint": c, "benchmark": b, "score": s, "ci95_low": s - 5, "ci95_high": s + 5,
                          "n": 20, "metric": "accuracy", "prompt_strict": s - 10, "inst_strict": s}
                         for c, b, s in rows])


def test_table6_reading_compares_each_stage_on_shared_benchmarks():
    scores = _scores([("base", "gsm8k", 10), ("base", "ifeval", 20), ("sft", "gsm8k", 30),
                      ("sft", "ifeval", 40), ("dpo", "gsm8k", 31), ("dpo", "ifeval", 41),
                      ("rlvr", "gsm8k", 20)])
    text = paper.table6_reading(scores)
    assert "mean of 1 benchmarks): base 10.0 → sft 30.0 → dpo 31.0 → rlvr 20.0" in text  # gsm8k only
    assert "base → sft: Agrees" in text and "dpo → rlvr: Does not agree" in text
    assert "sft → dpo: Same direction" in text
    assert paper.table6_reading(scores[scores["checkpoint"] == "base"]).startswith("Not comparable")


def test_published_check_reads_the_model_card_numbers():
    check = paper.published_check(_scores([("base", "ifeval", 30), ("base", "gsm8k", 2)]),
                                  "smollm2-135m-instruct").set_index("benchmark")
    assert check.loc["ifeval", "published"] == 29.9 and check.loc["ifeval", "ours"] == 25  # (20 + 30) / 2
    assert check.loc["gsm8k", "published"] == 1.4 and check.loc["gsm8k", "ours"] == 2
    assert paper.published_check(_scores([("base", "gsm8k", 2)]), "tiny-llama").empty


def test_results_built_on_a_failed_or_changed_upstream_are_not_shown(tmp_path):
    run = _fixture_run(tmp_path)  # 02_sft failed after it had been done
    pd.DataFrame({"loss": ["dpo_norm"], "score": [1.0]}).to_csv(run / "tables" / "table18_dpo_algorithms.csv",
                                                               index=False)
    (run / "stages" / "03_dpo.json").write_text(json.dumps({
        "status": "done", "started": 1, "upstream": {"02_sft": [None, None]},
        "tables": {"table18_dpo_algorithms": "DPO algorithms, old results"}, "figures": {}}))
    (run / "stages" / "04_rlvr.json").write_text(json.dumps({
        "status": "done", "started": 2, "upstream": {"01_data": ["an older key", "an older hash"]},
        "tables": {}, "figures": {}}))
    page = report.write_index(run).read_text()
    assert "DPO algorithms, old results" not in page
    assert "<span class=muted>not run (upstream 02_sft failed)</span>" in page
    assert "<span class=muted>out of date (upstream 01_data changed)</span>" in page
    assert "not shown: 03_dpo not run (upstream 02_sft failed)" in page


def test_table21_shows_the_releases_schedule_beside_the_paper_as_printed():
    rlvr = paper.hyperparameter_table({"paper 8B": load_params("params/tulu3-8b.yaml"),
                                       "paper 70B": load_params("params/tulu3-70b.yaml")}, "rlvr")
    rlvr = rlvr.set_index("hyperparameter")
    warmup = rlvr.loc["optim.warmup_ratio"]
    assert (warmup["paper 8B"], warmup["paper 70B"]) == (0.0, 0.1)  # the release's launch commands
    assert warmup["paper's Table 21 (as printed)"] == "0 (8B) / 0.07 (70B)"
    derived = [k for k in rlvr.index if k.startswith(("rollouts", "optimizer steps", "warm-up steps"))]
    assert [tuple(rlvr.loc[k, ["paper 8B", "paper 70B"]]) for k in derived] == [
        (44642, 625), (178568, 2500), (0, 250)]
    # as each stage trains: launch.rlvr's per-device batch and accumulation (the release's)
    assert (rlvr.loc["optim.per_device_batch_size", "paper 8B"],
            rlvr.loc["optim.gradient_accumulation_steps", "paper 8B"]) == (2, 16)


def test_the_report_opens_with_the_findings_table_and_saves_it(tmp_path):
    from tulu_lib.reporting import findings

    run = _fixture_run(tmp_path)
    record = json.loads((run / "stages" / "01_data.json").read_text())
    row = findings.not_measured("sft_template", "a test")
    measured = findings.measured_row("dpo_memory", "reproduced", n=4, effect=-20.0, test="peak RSS")
    record["findings"] = {"dpo_memory": {**measured, "p": None}}  # NaN is stored as null
    (run / "stages" / "01_data.json").write_text(json.dumps(record))
    assert main(["report", "--run", str(run)]) == 0
    page = (run / "index.html").read_text()
    assert page.index("The paper's findings in this run") < page.index("<h2>Run</h2>")
    assert "1 reproduced, 5 not detected, 0 contradicted, of 6" in page
    saved = pd.read_csv(run / "tables" / "findings.csv")
    assert list(saved.columns[:8]) == ["finding", "n", "effect", "ci_low", "ci_high", "p", "detectable",
                                       "reading"]
    assert len(saved) == 6 and saved["reading"].tolist().count("reproduced") == 1
    assert row["finding"] in set(saved["finding"])
