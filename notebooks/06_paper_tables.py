# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: tulu-repro (.venv)
#     language: python
#     name: tulu-repro
# ---

# %% [markdown]
# # 06 · The paper's tables, regenerated
#
# The hyperparameters of this run, rendered from its params (so they cannot drift from
# what ran), beside the paper's recipes from `params/tulu3-8b.yaml` and
# `params/tulu3-70b.yaml`, and the paper's reported numbers from
# `reports/reference/tulu3_reported.csv`.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%

from tulu_lib.core.params import load_params
from tulu_lib.reporting import paper
from tulu_lib.workbook import stages

stage = stages.open_stage("06_paper_tables", params_file, run_dir, stage_dir)
p = stage.params
recipes = {"this run": p, "paper 8B": load_params("params/tulu3-8b.yaml"),
           "paper 70B": load_params("params/tulu3-70b.yaml")}

# %%
for section, title in (("sft", "SFT hyperparameters (paper §4)"),
                       ("dpo", "Table 20: DPO hyperparameters"),
                       ("rlvr", "Table 21: RLVR hyperparameters")):
    table = paper.hyperparameter_table(recipes, section)
    stage.save_table(table, f"hparams_{section}", caption=title)
    display(table)  # noqa: F821 - IPython builtin

# %% [markdown]
# The paper's Table 6 (8B), as reported:

# %%
reported = paper.reported()
table6 = reported[reported["table"] == "Table 6"].pivot(index="benchmark", columns="model",
                                                         values="score")
stage.save_table(table6.reset_index(), "paper_table6_reported",
                 caption="Table 6 as reported in the paper (8B models)")
table6
