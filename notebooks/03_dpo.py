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
# # 03 · Preference tuning with DPO (paper §5)
#
# Tülu 3 tunes the SFT model on preference pairs with **length-normalized DPO**
# (`dpo_norm`, Table 20: β = 5). Length normalisation matters because chosen replies tend
# to be longer than rejected ones; this notebook loads the cleaned preference data from
# `01_data` and measures that length gap.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import datasets
import pandas as pd

from tulu_lib.core import assets
from tulu_lib.workbook import stages

stage = stages.open_stage("03_dpo", params_file, run_dir, stage_dir)
p = stage.params
prefs = datasets.load_from_disk(str(stage.upstream("01_data") / "preferences"))
print(f"run {p.name!r}: {len(prefs):,} preference pairs; loss {p.dpo.loss}, beta {p.dpo.beta}")

# %%
tokenizer = assets.load_tokenizer(p.model.name)
lengths = pd.DataFrame({
    "source": prefs["source"],
    "chosen tokens": [len(tokenizer(c[-1]["content"])["input_ids"]) for c in prefs["chosen"]],
    "rejected tokens": [len(tokenizer(r[-1]["content"])["input_ids"]) for r in prefs["rejected"]]})
gap = lengths.groupby("source").mean()
gap["chosen longer (share of pairs)"] = (
    (lengths["chosen tokens"] > lengths["rejected tokens"]).groupby(lengths["source"]).mean())
stage.save_table(gap.reset_index(), "preference_lengths",
                 caption="Preference pairs: mean reply length (tokens) of chosen vs rejected")
gap

# %% [markdown]
# ## Synthetic preference data (paper §5.2.1; the axes of Figures 10 and 11)
# Tülu 3 made its preference pairs with a pipeline: prompts — new persona-driven ones
# (`tulu_lib.data.synthesis`: a persona asks for a math problem, a coding problem, or an instruction
# with a verifiable constraint), or prompts reused from the SFT mix (`synthesis.prompt_source`) —
# answered by a pool of models, with the SFT model itself in the pool for on-policy responses
# (`synthesis.on_policy`), each response rated 1–5 by an LLM judge (GPT-4o in the paper) on
# helpfulness, instruction following, honesty and truthfulness, then binarized: chosen = the
# highest mean rating, rejected = a random lower-rated response; prompts whose rated responses
# all tie give no pair. With `synthesis.enabled` this section runs that pipeline
# (`tulu_lib.data.preferences`) with the params' pool and judge; an unparseable judge answer is
# resampled `synthesis.judge_retries` times, then counted and skipped. With
# `synthesis.judge_mode: expected` (the `cpu` default) the judge writes nothing: each aspect's
# rating is the mean of 1–5 under its next-token probabilities after "Rating:", fractional and
# never unparseable — a 135M judge asked to write its ratings copies the prompt's example
# (joint) or answers 1 (per aspect) for every response, so every prompt would tie and give no
# pair. The paper's GPT-4o wrote its ratings (`joint` / `per_aspect` here). With
# `synthesis.constraint_pairs: N` the SFT model also answers N short constrained tasks (`if_short`);
# each reply that breaks its constraint becomes the rejected side of a pair whose chosen side is
# the same reply made to keep it (checked by the verifier: verifiable on-policy pairs, a small-scale
# design). The pairs it keeps are
# **appended to the `data.preferences` pairs from 01_data**, and DPO below trains on both
# (the sweeps further down use 01_data's pairs only). Every step's counts are in the table.

# %%
import dataclasses

from tulu_lib.data import preferences

sft_model = stage.upstream("02_sft") / "model"
train_pairs_dir = stage.upstream("01_data") / "preferences"
synth = None
if p.synthesis.enabled:
    sft_rows = (datasets.load_from_disk(str(stage.upstream("01_data") / "sft"))
                if p.synthesis.prompt_source == "reused" else None)
    synth = preferences.run(p.synthesis, policy=str(sft_model), seed=p.seed, dtype=p.model.dtype,
                            sft=sft_rows, engine=dataclasses.asdict(p.eval.vllm),
                            cache_dir=stage.artifacts / "synthesis")
    preferences.save(synth, stage.artifacts / "synthesis")  # pairs + provenance, prompts, RLVR rows, counts
    synthesis_counts = synth.counts_table()
    stage.save_table(synthesis_counts, "synthesis_counts",
                     caption="Synthetic preference pipeline (paper §5.2.1): what each step generated, "
                             "parsed, kept and dropped (and why)")
    display(synthesis_counts)  # noqa: F821
else:
    print("synthesis off: set synthesis.enabled with a pool and a judge_model to add synthetic pairs")

# %% [markdown]
# ### The judge's ratings, the chosen-vs-rejected margin and length
# The distribution of each aspect's rating per pool model, then per pair the margin between the
# chosen and the rejected mean rating and the two replies' lengths: an LLM judge that prefers
# longer replies puts most points above the diagonal, the length bias that length-normalised
# DPO is meant to soften.

# %%
if synth is not None:
    stage.save_table(synth.responses.drop(columns=["text"]), "synthesis_ratings",
                     caption="Synthetic preference pipeline: every response with its pool model, on-policy "
                             "flag, length, the judge's 1-5 ratings (empty: unparseable) and the verifier's "
                             "verdict (precise-IF prompts)")
    stage.figure("synthesis_ratings", "rating_distributions", {"responses": "synthesis_ratings"},
                 aspects=list(preferences.ASPECTS),
                 title=f"Judge ratings by pool model (judge: {p.synthesis.judge_model})",
                 caption="Synthetic preferences: the LLM judge's 1-5 ratings per aspect and pool model (the "
                         "paper's aspects: helpfulness, instruction following, honesty, truthfulness)")
    synthesis_pairs = synth.pairs_table()
    stage.save_table(synthesis_pairs, "synthesis_pairs",
                     caption="Synthetic pairs: provenance (models of chosen and rejected, on-policy), mean "
                             "ratings, margin and reply lengths")
    stage.figure("synthesis_margins", "preference_margins", {"pairs": "synthesis_pairs"},
                 title="Synthetic pairs: rating margin and length bias",
                 caption="Synthetic pairs: chosen − rejected mean rating, and chosen vs rejected reply "
                         "length (tokens; above the diagonal = chosen longer)")
    bias = preferences.length_bias(synthesis_pairs)
    print(f"{bias['pairs']} pairs; chosen longer in {100 * bias['chosen_longer']:.0f}% of them, "
          f"{bias['mean_token_difference']:+.1f} tokens on average" if bias["pairs"] else "no pairs")
    display(synthesis_pairs)  # noqa: F821

# %% [markdown]
# ### How far to trust the judge
# The judge here is the params' `synthesis.judge_model` — at the `cpu` scale the 135M start
# model, at `smoke` a random tiny model. **A 135M judge is weak**: written ratings mostly fail
# to parse or bunch on one value; expected ratings spread over a few tenths of a point, and the
# pairs' order may be little better than chance. The paper's judge was GPT-4o. Where a prompt
# carries a verifiable constraint (precise IF), the verifiers (`rewards.verify`) give a ground
# truth to measure the judge against, on the same responses: its instruction-following rating
# (≥ `synthesis.agreement_threshold` = "follows") against the verdict, and, with no threshold,
# the chance that a verified response out-rates a failed one (AUC; 0.5 = chance).

# %%
if synth is not None:
    agreement = {k: v for k, v in synth.agreement.items() if k != "paired"}
    stage.save_table(pd.DataFrame([agreement]), "synthesis_judge_agreement",
                     caption="LLM judge vs verifiable judge on precise-IF responses: n, agreement, Cohen's "
                             "kappa, pass rates (McNemar exact test on the same responses)")
    stage.metric("synthesis_pairs", len(synth.pairs))
    print(preferences.agreement_line(synth.agreement))
    if synth.pairs:
        combined = preferences.append_pairs(datasets.load_from_disk(str(train_pairs_dir)), synth)
        train_pairs_dir = stage.save_dataset(combined, "preferences_with_synthesis")
        print(f"DPO trains on {len(prefs)} pairs from data.preferences + {len(synth.pairs)} synthetic "
              f"= {len(combined)}")
    else:
        print("no synthetic pair kept: DPO trains on the data.preferences pairs only")

# %% [markdown]
# ## Training from the SFT checkpoint
# TRL's `DPOTrainer` with the params' loss (`dpo_norm` in the paper's recipe). The reference
# model's log-probs are computed once and cached on disk, keyed by the reference checkpoint,
# the data, the template and max_length; every later run and ablation reuses them. Before
# training, bad pairs (identical chosen and rejected, empty replies, prompts that differ) are
# dropped and counted (`bad_pairs_dropped`; 01_data already dropped those of the source), and
# pairs longer than `max_length` are counted (`pairs_truncated`: cut from the end;
# `prompt_fills_max_length`: dropped by TRL, no reply token left).

# %%
from tulu_lib.ablations import arms, dpo_arms, memory
from tulu_lib.train import dpo, entry

# 01_data's pairs, plus the synthetic ones when synthesis is on; several processes: accelerate launch
result = entry.train("dpo", p, model=sft_model, data=train_pairs_dir,
                     out=stage.artifacts / f"run-{p.dpo.loss}")
stats = pd.DataFrame([{k: v for k, v in result.stats.items() if not isinstance(v, dict)}
                      | {"reference": result.stats["reference"]["mode"],
                         "reference forward passes": result.stats["reference"]["forward_passes"],
                         "seconds": round(result.seconds, 1)}])
stage.save_table(stats, "dpo_runs", caption="DPO run: loss, pairs, bad pairs dropped, truncation "
                 "and reference-cache use")
stats

# %% [markdown]
# ## Table 18 in miniature: DPO algorithms
# The paper tuned an early Tülu 3 SFT model on UltraFeedback with DPO, length-normalized DPO,
# SimPO and PPO and found **length-normalized DPO best overall**; it became the recipe
# (Table 20). Here each algorithm of `dpo.ablate_losses` is an arm (`tulu_lib.ablations.dpo_arms`)
# trained from the same SFT checkpoint, data and seed — the recipe's own loss is this stage's run —
# and scored on `eval.ablation_benchmarks` (the verifiable benchmarks); the reading compares
# `dpo_norm` with each other algorithm, paired on the items both scored. Each loss runs at its own
# β (and SimPO's γ/β) from `dpo.per_loss`, as the release ran them. (No PPO here; SimPO is TRL's
# `sigmoid_norm` with its margin, see `tulu_lib/train/dpo.py`.)

# %%
curves = {p.dpo.loss: pd.DataFrame(result.log_history)}  # the stage's run; Table 18's arms when set
if p.dpo.ablate_losses:
    table18 = dpo_arms.algorithm_arms(p, datasets.load_from_disk(str(train_pairs_dir)))
    algorithms, curves = arms.run_and_save(stage, dpo_arms.ABLATIONS["table18_dpo_algorithms"], table18,
                                           start=str(sft_model), p=p, out_dir=stage.artifacts / "ablations",
                                           main=result)
    display(algorithms)  # noqa: F821
else:
    print("Table 18 not run: set dpo.ablate_losses, e.g. [dpo, dpo_norm, simpo]")
stage.save_table(arms.curves_table(curves), "dpo_training_curves", caption="DPO training logs per algorithm")
stage.figure("dpo_training", "training_curves", {"logs": "dpo_training_curves"},
             caption="DPO training curves per algorithm (paper Table 18 compares dpo, dpo_norm, simpo; "
                     "dpo_norm was best at 8B)", keys=["loss", "rewards/accuracies", "rewards/margins"],
             title="DPO training (Table 18 in miniature when dpo.ablate_losses is set)")

# %% [markdown]
# ## Figure 17: memory of a DPO step
# The paper cut peak GPU memory by caching the reference model's log-probs over the
# preference data (no reference model in memory while training) and by forwarding chosen and
# rejected replies separately rather than as one concatenated batch. With
# `dpo.measure_memory` the four combinations are measured here, each in a fresh process, on
# this run's model, preference pairs (the longest available, at `dpo.optim.max_length`) and
# batch size: the peak process memory (RSS) over two steps on CPU, and
# `torch.cuda.max_memory_allocated` on a GPU. On CPU, weights loaded lazily and allocator
# caching blur the picture; the GPU number is the paper's measure.

# %%
if p.dpo.measure_memory:
    peaks = memory.measure_memory(assets.model_path(p.model.name),
                                       data=str(stage.upstream("01_data") / "preferences"),
                                       max_length=p.dpo.optim.max_length,
                                       batch_size=p.dpo.optim.per_device_batch_size, dtype=p.model.dtype)
    memory.save_memory(stage, peaks, f"{p.model.name}, max_length {p.dpo.optim.max_length}, "
                                     f"batch {p.dpo.optim.per_device_batch_size}, two steps")
    display(peaks)  # noqa: F821
else:
    print("Figure 17 not measured: set dpo.measure_memory: true")

# %% [markdown]
# ## Data ablations (Figures 8–11)
# The paper's preference-data findings, each a sweep under `dpo.sweeps`: every variant trains
# from the same SFT checkpoint with the same loss, optimiser and seed, for
# `dpo.sweeps.epochs` over its own pairs (a bigger set trains more steps), and is evaluated on
# `eval.ablation_benchmarks`. Each figure shows the average with its 95% interval, and a
# one-line reading says whether ours agrees with the paper, does not, or cannot tell at this
# size (overlapping intervals). What the stand-in data can and cannot show is in each caption.
# Sweeps draw only from pairs whose prompt leaves room for a reply within `max_length` (TRL
# drops the others), so a variant's size is what it trains on.

# %%
sweeps, max_length = p.dpo.sweeps, p.dpo.optim.max_length
sweep_run = dict(start=str(sft_model), p=p, out_dir=stage.artifacts / "sweeps")  # every sweep's arms
sweep_prefs = dpo.fits_max_length(prefs, tokenizer, max_length)
print("sweeps enabled:", ", ".join(sweeps.enabled) or "none (set dpo.sweeps)")
print(f"{len(sweep_prefs)} of {len(prefs)} pairs have a prompt shorter than max_length {max_length}")

# %% [markdown]
# ### Figure 8: unique prompts
# Paper: more unique prompts → better DPO (about +4 average from 5% to 100% of the prompts).
# Here: nested subsets of this run's pairs, one pair per prompt, N from `sweeps.unique_prompts`.

# %%
if sweeps.unique_prompts:
    variants = dpo_arms.unique_prompt_subsets(sweep_prefs, sweeps.unique_prompts, p.seed)
    fig08, _ = arms.run_and_save(stage, dpo_arms.ABLATIONS["fig08_unique_prompts"],
                                 dpo_arms.sweep_arms(p, variants), **sweep_run)
    display(fig08)  # noqa: F821

# %% [markdown]
# ### Figure 9: duplicated prompts
# Paper: with the unique prompts fixed (64k), adding pairs for the same prompts (up to 383k)
# gave no gain. The stand-in has one pair per prompt, so a copy here repeats the same pair:
# this tests whether repeating pairs helps, not whether new responses to a seen prompt do.

# %%
if sweeps.duplicated_prompts:
    spec = sweeps.duplicated_prompts
    variants = dpo_arms.duplicated_prompt_sets(sweep_prefs, spec.prompts, spec.copies, p.seed)
    fig09, _ = arms.run_and_save(stage, dpo_arms.ABLATIONS["fig09_duplicated_prompts"],
                                 dpo_arms.sweep_arms(p, variants), **sweep_run)
    display(fig09)  # noqa: F821

# %% [markdown]
# ### Figure 10: reused SFT prompts vs new prompts
# Paper: pairs for prompts new to the model beat pairs for prompts reused from the SFT mix
# (61.0 vs 59.8). A prompt counts as reused when this run's SFT data (`01_data/sft`) has the
# same user turns. This run's own preference sample rarely shares prompts with its SFT
# sample, so both arms come from the whole preference source of `data.preferences`
# (decontaminated with `decontamination`'s rules), matched source for source.

# %%
if sweeps.reused_vs_new:
    sft_data = datasets.load_from_disk(str(stage.upstream("01_data") / "sft"))
    own = sum(dpo_arms.tag_reused(prefs, sft_data))
    print(f"this run's preference pairs: {own} of {len(prefs)} have a prompt of its SFT data")
    pool = dpo.fits_max_length(dpo_arms.preference_pool(p), tokenizer, max_length)
    variants = dpo_arms.reuse_split(pool, sft_data, sweeps.reused_vs_new.pairs, p.seed)
    fig10, _ = arms.run_and_save(stage, dpo_arms.ABLATIONS["fig10_reused_vs_new"],
                                 dpo_arms.sweep_arms(p, variants), **sweep_run)
    display(fig10)  # noqa: F821

# %% [markdown]
# ### Figure 11: on-policy vs off-policy pairs
# Paper: adding on-policy responses (from the SFT model itself) to the synthetic preference
# pipeline helps (off-policy 60.0, on-policy 60.7, both 61.2, SFT 58.2). The paper's judge was
# an LLM rating responses 1–5; ours is a **verifiable judge**: the SFT model samples
# `sweeps.on_policy.samples` completions per RLVR prompt (`01_data/rlvr`), `rewards.verify`
# checks each, chosen = a verified completion, rejected = a failed one. Prompts where all
# completions pass or all fail give no pair and are counted. The off-policy arm is the same
# number of this run's stand-in pairs (other prompts, responses not from this model).

# %%
if sweeps.on_policy:
    from tulu_lib.generation.backends import generator_for

    rlvr = datasets.load_from_disk(str(stage.upstream("01_data") / "rlvr"))
    rlvr = dpo.fits_max_length(rlvr, tokenizer, max_length, column="messages")
    generator = generator_for(p, str(sft_model))
    synthesis = dpo_arms.synthesize_on_policy(generator, rlvr, sweeps.on_policy, p.seed)
    del generator
    counts = pd.DataFrame([synthesis.counts])
    stage.save_table(counts, "fig11_on_policy_synthesis",
                     caption="Figure 11 pipeline: on-policy completions of the SFT model judged by the "
                             "verifiers (prompts, completions verified/failed/empty, pairs kept and dropped)")
    display(counts)  # noqa: F821
    display(synthesis.judged.groupby("dataset")["verified"].agg(["size", "sum"]))  # noqa: F821
    if synthesis.pairs is None:
        print("Figure 11 not trained: no prompt had both a verified and a failed completion "
              "(raise sweeps.on_policy.prompts or samples)")
    else:
        variants = dpo_arms.on_policy_variants(synthesis.pairs, sweep_prefs, p.seed)
        fig11, _ = arms.run_and_save(stage, dpo_arms.ABLATIONS["fig11_on_policy"],
                                     dpo_arms.sweep_arms(p, variants), **sweep_run)
        display(fig11)  # noqa: F821

# %%
print("DPO checkpoint:", stage.keep_model(result.checkpoint))
