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
# # 05 · Evaluation (paper §7)
#
# The Tülu 3 development suite scores every checkpoint of this run — the starting model,
# SFT, DPO and RLVR — with the paper's settings (Table 24): GSM8K 8-shot CoT, MATH 4-shot
# Minerva with OLMES's flex answer (`math`: the full 5,000-problem test, macro over 7
# subjects; `math500`: MATH-500, a faster subset, not the paper's), IFEval prompt-level loose
# by lm-eval's official checkers, MMLU 0-shot CoT (macro over subjects; `mmlu_mc` adds the
# classic 5-shot multiple choice), DROP 3-shot F1, HumanEval pass@1 and, where the params
# sample, the paper's pass@10 (each benchmark's settings and scorer, and whose:
# `docs/evaluation.md`). Every row of the paper's Table 6 appears below, scored or as
# `not run: <reason>`, never left out silently. Every item's output is saved, so an interrupted
# evaluation resumes and scores can be recomputed without generating again.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import pandas as pd

from tulu_lib.evals import suite
from tulu_lib.generation.backends import generator_for
from tulu_lib.generation.endpoint import OpenAIGenerator
from tulu_lib.reporting import paper
from tulu_lib.workbook import stages

stage = stages.open_stage("05_eval", params_file, run_dir, stage_dir)
p = stage.params
named = dict(p.eval.checkpoints)  # eval.checkpoints: named models (the released Tülu 3 ones), no training
checkpoints = named or ({"base": p.model.name} if p.eval.evaluate_base else {})
for label, upstream in (("sft", "02_sft"), ("dpo", "03_dpo"), ("rlvr", "04_rlvr")):
    if not named and stage.has_upstream(upstream) and (stage.upstream(upstream) / "model").is_dir():
        checkpoints[label] = str(stage.upstream(upstream) / "model")
print("checkpoints to evaluate:", ", ".join(f"{k} ({v})" if named else k for k, v in checkpoints.items()))
missing = [s for s in ("sft", "dpo", "rlvr") if s not in checkpoints]
if missing and not named:
    print("no checkpoint from:", ", ".join(missing), "(those stages have not trained a model yet)")

# %%
# AlpacaEval runs only with a judge endpoint (eval.judge: {base_url, model}; key from $OPENAI_API_KEY);
# every verdict is cached, so an interrupted or repeated evaluation asks the judge nothing twice
judge = OpenAIGenerator(**p.eval.judge, cache_dir=stage.artifacts / "judge-cache") if p.eval.judge else None
# the safety suite's classifier (eval.safety_classifier; the paper's WildGuard), served like any model
classifier = generator_for(p, p.eval.safety_classifier) if p.eval.safety_classifier else None
rows = []
for label, model in checkpoints.items():
    print(f"--- {label}: {model}")
    rows += [{"checkpoint": label, **result}
             for result in suite.evaluate_model(model, p, stage.run_dir / "cache" / "eval", judge=judge,
                                                safety_classifier=classifier)]
scores = pd.DataFrame(rows)
stage.save_table(scores.drop(columns="items_path", errors="ignore"), "eval_scores",
                 caption="Scores per checkpoint and benchmark "
                 "(percent; n items and 95% Wilson interval)")
scores

# %% [markdown]
# ## Table 6, small scale beside the paper
# Our checkpoints (a much smaller model on stand-in data) next to the paper's 8B numbers;
# the last columns are the change between consecutive stages of this run. Findings b and c pair
# each stage with its start on the items of `eval.constraint_benchmark`, scored by the evaluation's
# checkers: IFEval by default; at the `cpu` scale `if_short`, 120 short constrained tasks RLVR never
# trains on (a small-scale design: IFEval's essay prompts run past 128 tokens, hiding end-of-reply
# constraints from a 135M model), with IFEval's numbers beside it in the table.

# %%
table = paper.table6_comparison(scores)
stage.save_table(table, "table6_comparison",
                 caption="Table 6: ours (small-scale reproduction, different base model) vs the paper (8B)")
stage.reading("Table 6", paper.table6_reading(scores))
for row in paper.eval_findings(scores, p.eval.constraint_benchmark):  # DPO and RLVR, each against its start
    stage.finding(row)
table

# %% [markdown]
# ## The unseen suite (paper Table 3)
# The benchmarks the paper held out from development (OLMES `tulu_3_unseen`, plus IFEval-OOD and
# HREF), each with n and its 95% interval, or why it did not run (most need the hub or a local
# copy, HREF a judge).

# %%
unseen = paper.unseen_comparison(scores)
stage.save_table(unseen, "unseen_comparison", caption="The unseen suite: ours per checkpoint "
                 "(percent, n, 95% interval) beside the paper's where on file")
unseen

# %% [markdown]
# ## Calibration on named checkpoints
# With `eval.checkpoints` naming the released Tülu 3 models (`params/tulu3-8b-released.yaml`),
# the harness is checked before anything is trained: each released model's score beside the
# paper's number for it, with our 95% interval. A paper number outside the interval is a
# difference of harness, not of model (open-instruct issues #688, #751 report such gaps).

# %%
if named:
    calibration = paper.calibration(scores)
    stage.save_table(calibration, "calibration", caption="Named checkpoints vs the paper's Table 6 numbers "
                     "for the same models (ours with n and 95% interval)")
    stage.reading("Calibration", paper.calibration_reading(calibration))
    display(calibration)  # noqa: F821
else:
    print("no eval.checkpoints named: this run's own stages are evaluated (see Table 6 above)")

# %% [markdown]
# ## The start model against its published numbers
# Before trusting the stage deltas, the harness is checked on the start model as it ships,
# where numbers are published for it. Here the model is prompted as its card was measured:
# with its OWN chat template (SmolLM2's ChatML with its default system prompt, read from the
# GGUF's tokenizer metadata; the stages above all use the Tülu template) and a token budget
# that lets replies finish (`eval.card_max_new_tokens`); the table says how many replies were
# still cut off. The embedded SmolLM2 is built from a 4-bit (Q4_1) GGUF, dequantized, so its
# weights are close to, not equal to, the card's bf16 weights; the card's GSM8K is 5-shot
# (ours: the paper's 8-shot CoT); and our n is small (see the CI).

# %%
card_benchmarks = {b: bp for b, bp in p.eval.benchmarks.items() if b in p.eval.card_benchmarks}
card_rows = []
if card_benchmarks:
    card_rows = suite.evaluate_model(p.model.name, p, stage.run_dir / "cache" / "eval", tag="card",
                                     benchmarks=card_benchmarks, max_new_tokens=p.eval.card_max_new_tokens,
                                     chat_template=suite.model_chat_template(p.model.name))
check = paper.published_check(pd.DataFrame(card_rows), p.model.name) if card_rows else pd.DataFrame()
if len(check):
    stage.save_table(check, "embedded_model_check", caption="The start model as shipped vs its model card, "
                     "with its own chat template (differences: Q4_1-dequantized weights, shots, small n; "
                     "'cut off': replies that hit eval.card_max_new_tokens)")
    display(check)  # noqa: F821
else:
    print(f"no published numbers on file for {p.model.name} (reports/reference/smollm2_published.csv)")
