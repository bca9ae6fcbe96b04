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
# # 04 · Reinforcement learning with verifiable rewards (paper §6)
#
# RLVR replaces the reward model with a program: a reply earns α = 10 when a verifier
# confirms it (the last number for GSM8K, the "flex" final answer for MATH, the stated
# constraint for instruction following), 0 otherwise, and −10 when it was cut off before
# its end-of-sequence token. The policy is trained against that reward with a KL penalty
# β to the starting model. `rlvr.algorithm` picks the trainer: the paper's PPO (`tulu_lib.train.ppo`:
# a value model started from a reward model, GAE, four epochs per rollout batch; the 8B/70B
# params) or TRL's GRPO (group-relative advantages, no value model; the `cpu` default), with
# the same reward and β.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import datasets
import pandas as pd

from tulu_lib.generation.backends import generator_for
from tulu_lib.reporting import findings
from tulu_lib.train import rlvr
from tulu_lib.workbook import stages

stage = stages.open_stage("04_rlvr", params_file, run_dir, stage_dir)
p = stage.params
prompts = datasets.load_from_disk(str(stage.upstream("01_data") / "rlvr"))
print(f"run {p.name!r}: {len(prompts):,} RLVR prompts; KL beta {p.rlvr.beta}, alpha {p.rlvr.alpha}")

# %% [markdown]
# ## The prompts and their verifiers
# Every ground truth is checked once by the verifier the reward uses: a reply that *is* the
# reference answer must verify (a malformed ground truth raises, naming the row).

# %%
domains = pd.DataFrame({"dataset": prompts["dataset"], "source": prompts["source"]})
table = domains.value_counts().rename("prompts").reset_index()
stage.save_table(table, "rlvr_prompts", caption="RLVR prompts by verifiable domain and source")
for domain in sorted(set(prompts["dataset"])):
    row = prompts.filter(lambda r, d=domain: r["dataset"] == d)[0]
    print(f"--- {domain}\n{row['messages'][-1]['content'][:400]}")
    print(f"ground truth: {row['ground_truth']}\n")
table

# %% [markdown]
# ## Held-out prompts
# `rlvr.held_out_per_domain` prompts of each domain are kept out of training and scored
# greedily before and after RLVR (accuracy with n and a 95% Wilson interval).

# %%
held_out, train_rows = rlvr.split_held_out(prompts, p.rlvr.held_out_per_domain)
start = (stage.upstream("03_dpo") / "model") if (stage.has_upstream("03_dpo") and
                                                (stage.upstream("03_dpo") / "model").is_dir()) else None
start_model = str(start) if start else p.model.name
print(f"training on {len(train_rows)} prompts, {len(held_out)} held out; starting from "
      f"{'the DPO checkpoint' if start else 'the params model (no DPO checkpoint in this run yet)'}")

# %%
before = pd.DataFrame(rlvr.verifiable_accuracy(
    generator_for(p, start_model),
    held_out, max_new_tokens=p.rlvr.max_new_tokens)).assign(when="before RLVR")
before

# %% [markdown]
# ## Training
# The verifiable reward, β from params, a checkpoint every `rlvr.optim.save_steps` optimizer
# steps (a rerun resumes from the newest). Under PPO with `rlvr.ppo.reward_model` null, the
# value model starts from a reward model trained here on this run's preference pairs (TRL's
# `RewardTrainer`, `dpo.optim`'s settings); the paper started it from Tülu 3's 8B RM.

# %%
from tulu_lib.ablations import arms
from tulu_lib.train import entry

if rlvr.needs_reward_model(p.rlvr) and p.rlvr.ppo.reward_model is None:
    rm = entry.train("reward_model", p, model=start_model, data=stage.upstream("01_data") / "preferences",
                     out=stage.artifacts / "reward_model")
    p = rlvr.with_reward_model(p, rm.checkpoint)  # the run's params from here on name it
result = entry.train("rlvr", p, model=start_model, data=train_rows, out=stage.artifacts / "run")
logs = rlvr.logs_table(result.log_history)
stage.save_table(logs, "rlvr_log", caption=f"RLVR ({p.rlvr.algorithm.upper()}) training log")
stage.metric("rlvr_prompts_dropped", result.stats["prompts_dropped"])
dropped = result.stats["prompts_dropped"]
print(f"{len(logs)} logged steps in {result.seconds:.0f}s; {dropped} of {len(train_rows)} "
      f"prompts dropped as longer than {p.rlvr.optim.max_length - p.rlvr.max_new_tokens} tokens")
run_stats = {k: v for k, v in result.stats.items() if not isinstance(v, dict)}  # + resumed_from, global_step
stage.save_table(pd.DataFrame([run_stats]), "rlvr_stats",
                 caption="RLVR run: optimizer steps, prompts dropped, the checkpoint it resumed from (empty: "
                         "a fresh run)")

# %% [markdown]
# ## Choosing the checkpoint
# The paper saved a checkpoint every 100 steps (40 at 70B) and kept the best on its MATH and
# IFEval evaluations. With `rlvr.select_with: eval` every saved checkpoint is scored on the
# evaluation benchmarks behind `rlvr.select_on` exactly as 05_eval scores them (the same items,
# so the kept checkpoint's scores there are selected, not held out: as in the paper); with
# `held_out`, on the held-out training prompts (cheaper). The best becomes this stage's model
# (ties go to the earliest step). Every checkpoint is also scored on the held-out prompts.

# %%
per_checkpoint = rlvr.score_checkpoints(lambda path: generator_for(p, path), stage.artifacts / "run",
                                        held_out, p.rlvr.max_new_tokens)
selection = rlvr.selection_scores(p, stage.artifacts / "run", per_checkpoint,
                                  cache_root=stage.run_dir / "cache" / "eval")
best_step, best = rlvr.best_checkpoint(selection, p.rlvr.select_on)
stage.metric("rlvr_best_step", best_step)
stage.save_table(selection.drop(columns="checkpoint"), "rlvr_checkpoints",
                 caption=f"Every RLVR checkpoint scored on {' + '.join(p.rlvr.select_on)} (rlvr.select_with: "
                         f"{p.rlvr.select_with}; the benchmark column says what scored it); the best is step "
                         f"{best_step} (the paper: the best on its MATH + IFEval evaluations)")
selection
after = per_checkpoint[per_checkpoint["step"] == best_step].drop(columns=["step", "checkpoint"]).assign(
    when=f"after RLVR (step {best_step})")
scores = pd.concat([before, after])
stage.save_table(scores, "rlvr_held_out", caption="Held-out verifiable accuracy before and after RLVR "
                 "(greedy; n and 95% Wilson interval)")
stage.keep_model(best, move=False)
scores

# %% [markdown]
# ## Figure 19: verifiable reward, KL and response length per domain

# %%
domains = sorted(set(prompts["dataset"]))
by_step = pd.concat([before.assign(step=0), per_checkpoint]).drop(columns=["when", "checkpoint"])
stage.save_table(by_step, "fig19_held_out", caption="Held-out verifiable accuracy by step (0: the start)")
stage.figure("fig19_rlvr_curves", "rlvr_curves", {"logs": "rlvr_log", "held_out": "fig19_held_out"},
             domains=domains, caption="Figure 19 (equivalent): RLVR's verifiable rewards, KL divergence and "
             "response lengths per domain on the training prompts, and the held-out accuracy of every "
             "checkpoint (step 0: the starting model)")

# %% [markdown]
# The reward is α × verified + penalty × cut off before EOS, so a rise can come from replies
# that finish more often, from replies that are right more often, or both. Every training
# reply was recorded; the table compares the replies of the first quarter of steps with those
# of the last quarter (different prompts: a two-sample permutation test, with n and the
# smallest change it could detect), for the reward and for each of its two parts.

# %%
records = rlvr.rollout_records(stage.artifacts / "run")
change = {q: rlvr.reward_change(records, q, seed=p.seed) for q in ("reward", "verified", "truncated")}
change_table = pd.DataFrame([{
    "quantity": q, "units": "reward" if q == "reward" else "% of replies", "first steps": c["steps_a"],
    "last steps": c["steps_b"], "n first": c["n_a"], "n last": c["n_b"], "first": c["mean_a"],
    "last": c["mean_b"], "change": c["diff"], "95% low": c["ci_low"], "95% high": c["ci_high"],
    "p (permutation)": c["p"], "detectable (80% power)": c["mde"]} for q, c in change.items()])
stage.save_table(change_table, "rlvr_reward_change", caption="Training replies of the first vs the last "
                 "quarter of RLVR steps: mean reward, % verified, % cut off before EOS (two-sample "
                 "bootstrap 95% interval, permutation test, detectable change at 80% power)")
held = {"before": rlvr.held_out_average(before), "after": rlvr.held_out_average(after)}
stage.reading("Figure 19", rlvr.reward_reading(change, held))
stage.finding(findings.finding_row("rlvr_verified", change["verified"],
                                   note="% of training replies verified, first vs last quarter of steps"))
change_table

# %% [markdown]
# ## Figure 20: starting from SFT instead of DPO
# The paper: both starts reach the same verifiable reward, but from the (weaker) SFT
# checkpoint the policy drifts further from its reference (larger KL) at the same β.

# %%
if p.rlvr.compare_sft_start and start is not None:
    from_sft = entry.train("rlvr", p, model=stage.upstream("02_sft") / "model", data=train_rows,
                           out=stage.artifacts / "run-from-sft")
    sft_logs = rlvr.logs_table(from_sft.log_history)
    starts = {"from DPO": logs, "from SFT": sft_logs}
    stage.save_table(arms.curves_table(starts), "fig20_curves", caption="RLVR logs from DPO and from SFT")
    stage.figure("fig20_sft_vs_dpo_start", "rlvr_curves", {"logs": "fig20_curves"}, domains=domains, by="run",
                 title=f"Figure 20: RLVR from DPO vs from SFT (beta {p.rlvr.beta})",
                 caption="Figure 20 (equivalent): verifiable reward and KL when RLVR starts from the DPO vs "
                         "the SFT checkpoint at the same beta")
    summary = rlvr.run_summary(starts)
    stage.save_table(summary, "fig20_sft_vs_dpo_start",
                     caption="RLVR from DPO vs from SFT: mean verifiable reward and KL over the last half "
                             "of training. " + rlvr.kl_reading(summary))
    stage.reading("Figure 20", rlvr.kl_reading(summary))
    display(summary)  # noqa: F821
else:
    print("Figure 20 not run: set rlvr.compare_sft_start: true (and run 03_dpo first)")

# %% [markdown]
# ## The paper's RLVR ablations: value model, reward model score, β × warm-up, PPO vs GRPO
# Each ablation is a set of arms that differ from one another in one setting and in nothing
# else: the same start, training prompts, steps, replies per step and seed. The paper found
# that a value model initialised from a general reward model works best, that the verifiable
# reward alone beats the reward model's score added to it, and that too small a β
# over-optimizes (Figure 16, β × warm-up). Every arm's final checkpoint is scored on
# `eval.ablation_benchmarks` — the same items for every arm, so the reading is paired — and its
# training replies give the last quarter's reward and verified and cut-off shares. An arm that
# is the stage's own run is scored, not trained again; one shared by two ablations trains once.

# %%
from tulu_lib.ablations import rlvr_arms

plan = rlvr_arms.plan(p, train_rows)
for name, group in plan.items():
    spec = rlvr_arms.ablation(name, group)
    table, curves = arms.run_and_save(stage, spec, group, start=start_model, p=p,
                                      out_dir=stage.artifacts / "ablations", main=result,
                                      main_dir=stage.artifacts / "run")
    stage.save_table(arms.curves_table(curves), f"{spec.name}_logs", caption=f"{spec.ref}: each arm's log")
    stage.figure(f"{spec.name}_curves", "rlvr_curves", {"logs": f"{spec.name}_logs"}, domains=domains,
                 by="run", title=f"{spec.ref}: training curves of each arm",
                 caption=f"{spec.ref} in miniature: verifiable reward, KL and response length per domain of "
                         "every arm's training replies")
    display(table)  # noqa: F821
if not plan:
    print("RLVR ablations not run: set rlvr.ablate_value_init, rlvr.ablate_reward_model_score, "
          "rlvr.compare_algorithms or rlvr.beta_sweep / rlvr.warmup_sweep")
