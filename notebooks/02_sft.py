# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: tulu-repro (.venv)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Supervised finetuning (paper §4)
#
# SFT trains the base model on the SFT mixture with the **Tülu chat template**: only the
# assistant replies (and their end-of-sequence token) carry loss. This notebook loads the
# starting model and the cleaned SFT data from `01_data` and shows exactly which tokens
# are trained.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import datasets
import pandas as pd

from tulu_lib import assets, chat_template, workbook

stage = workbook.open_stage("02_sft", params_file, run_dir, stage_dir)
p = stage.params
sft_data = datasets.load_from_disk(str(stage.upstream("01_data") / "sft"))
print(f"run {p.name!r}: {len(sft_data):,} SFT conversations; model {p.model.name}")

# %% [markdown]
# ## The starting model
# At paper scale this is Llama 3.1 base. The embedded default is SmolLM2-135M-*Instruct*
# (no base checkpoint is available offline), so its starting scores are not a base
# model's.

# %%
model, tokenizer = assets.load_model(p.model.name, dtype=p.model.dtype)
n_params = sum(t.numel() for t in model.parameters())
stage.metric("model_parameters", n_params)
print(f"{p.model.name}: {n_params / 1e6:.2f}M parameters, {model.config.num_hidden_layers} layers,"
      f" vocab {model.config.vocab_size:,}; stands in for {p.model.stands_in_for or '-'}")

# %% [markdown]
# ## The Tülu template and the loss mask
# The conversation as the model sees it, then the trained tokens only.

# %%
example = sft_data[0]["messages"]
print(chat_template.render(tokenizer, example)[:1200])
ids, labels = chat_template.tokenize_conversation(tokenizer, example)
trained = [t for t, lab in zip(ids, labels, strict=True) if lab != chat_template.IGNORE_INDEX]
print("\n--- tokens that carry loss:\n", tokenizer.decode(trained)[:800])

# %% [markdown]
# Across the SFT data: tokens per conversation, the share that carries loss, and how many
# conversations exceed `sft.optim.max_length` (truncated or dropped per `sft.truncation`).

# %%
rows = []
for row in sft_data:
    ids, labels = chat_template.tokenize_conversation(tokenizer, row["messages"])
    trained = sum(lab != chat_template.IGNORE_INDEX for lab in labels)
    rows.append({"source": row["source"], "tokens": len(ids), "trained tokens": trained})
tokens = pd.DataFrame(rows)
summary = tokens.groupby("source").agg(
    conversations=("tokens", "size"), mean_tokens=("tokens", "mean"),
    trained_share=("trained tokens", lambda s: s.sum()),
    over_max_length=("tokens", lambda s: int((s > p.sft.optim.max_length).sum())))
summary["trained_share"] = summary["trained_share"] / tokens.groupby("source")["tokens"].sum()
stage.save_table(summary.reset_index(), "sft_token_stats",
                 caption=f"SFT data under the Tülu template (max_length {p.sft.optim.max_length})")
summary

# %% [markdown]
# ## Training
# TRL's `SFTTrainer` with the paper's **sum loss** ("batch aggregation"): the token losses
# of the whole optimizer batch are summed, so every token counts the same however the batch
# is split into micro-batches and accumulation steps. With `launch.num_processes` > 1 the
# trainer runs under `accelerate launch` (DeepSpeed ZeRO-3 in the 8B/70B params) rather
# than in this kernel.

# %%
from tulu_lib import ablations, evals, plots, sft

data_dir = stage.upstream("01_data") / "sft"
runs = {p.sft.loss: sft.run_sft(params_file, data_dir, stage.artifacts / f"run-{p.sft.loss}")}
main = runs[p.sft.loss]
print({k: v for k, v in main.stats.items() if not isinstance(v, dict)})
stage.save_table(pd.DataFrame([{"loss": k, **{s: v for s, v in r.stats.items() if not isinstance(v, dict)}}
                               for k, r in runs.items()]), "sft_stats",
                 caption="SFT run: steps, tokens, throughput, and over-length conversations "
                         f"({p.sft.truncation}d at max_length {p.sft.optim.max_length})")

# %% [markdown]
# ## Sum vs mean loss (the paper's batch-aggregation finding, in miniature)
# With `sft.ablate_loss`, the other aggregation trains from the same start, data and seed,
# and both checkpoints are evaluated on the verifiable benchmarks.

# %%
if p.sft.ablate_loss:
    other = "mean" if p.sft.loss == "sum" else "sum"
    runs[other] = sft.run_sft(params_file, data_dir, stage.artifacts / f"run-{other}", [f"sft.loss={other}"])
    logs = {f"{k} loss": pd.DataFrame(r.log_history) for k, r in runs.items()}
    fig = plots.training_curves(logs, ["loss"], "SFT training loss: sum vs mean aggregation")
    stage.save_figure(fig, "sft_sum_vs_mean_loss",
                      caption="SFT batch aggregation (paper §4): training loss with sum vs mean loss "
                              "(different units: sum is per batch, mean per token)")
    results = {k: evals.evaluate_checkpoint(r.checkpoint, p, stage.artifacts / f"eval-{k}")
               for k, r in runs.items()}
    comparison = pd.DataFrame([{"sft loss": k, **res} for k, rs in results.items() for res in rs])
    stage.save_table(comparison.drop(columns="items_path", errors="ignore"), "sft_sum_vs_mean",
                     caption="SFT sum vs mean loss, evaluated (small scale). The paper reports that "
                             "sum loss trains better than the token mean (§4, batch aggregation).")
    stage.reading("§4 batch aggregation", ablations.results_reading(  # paired on the items both scored
        results, "sum", "the sum loss trains better than the per-batch token mean."))
    display(comparison.pivot(index="benchmark", columns="sft loss", values="score"))  # noqa: F821
else:
    print("sum vs mean ablation not run: set sft.ablate_loss: true")

# %% [markdown]
# ## SFT mix ablations (Figure 4 and the paper's source removals, in miniature)
# The paper trained on stratified subsamples of the final mix (Figure 4: the full mix is
# best) and on the mix without one source at a time. With `sft.ablate_subsample` and
# `sft.ablate_sources`, each variant trains from the same start and seed for as many passes
# over its rows as the full mix, and is scored like the full-mix checkpoint.

# %%
import shutil

from tulu_lib import ablations

variants = sft.mix_variants(sft_data, p.sft, p.seed)
if any(variants.values()):
    full = {"SFT mix": "full mix", "rows": len(sft_data), **ablations.score_row(
        results[p.sft.loss] if p.sft.ablate_loss else
        evals.evaluate_checkpoint(main.checkpoint, p, stage.artifacts / f"eval-{p.sft.loss}"))}
    for name, group in variants.items():
        if not group:
            continue
        rows = [full]
        for i, (label, (mix_rows, steps)) in enumerate(group.items()):
            folder = stage.artifacts / name / str(i)
            mix_rows.save_to_disk(str(folder / "data"))
            r = sft.run_sft(params_file, folder / "data", folder / "train",
                            [f"sft.optim.max_steps={steps}"] if steps else [])
            rows.append({"SFT mix": label, "rows": len(mix_rows), "steps": r.stats["steps"],
                         **ablations.score_row(evals.evaluate_checkpoint(r.checkpoint, p, folder / "eval"))})
            shutil.rmtree(folder / "train")  # the scores are kept; the weights are not needed again
        ablations.save_ablation(stage, sft.MIX_ABLATIONS[name], pd.DataFrame(rows))
else:
    print("mix ablations not run: set sft.ablate_subsample (e.g. [0.25, 0.5]) or sft.ablate_sources")

# %%
shutil.rmtree(stage.artifacts / "model", ignore_errors=True)  # an attempt killed after the rename left it
main.checkpoint.rename(stage.artifacts / "model")
print("SFT checkpoint:", stage.artifacts / "model")
