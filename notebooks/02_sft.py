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

from tulu_lib.core import assets, chat_template
from tulu_lib.workbook import stages

stage = stages.open_stage("02_sft", params_file, run_dir, stage_dir)
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
# The release truncates; a truncated conversation has no end-of-turn token to learn from, so at
# `cpu`'s 256 tokens (about half the stand-in conversations are longer) `cpu` drops them instead:
# a small-scale choice made so that SFT teaches the template's end of turn (finding d in 05_eval).

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
# is split into micro-batches and accumulation steps. `tulu_lib.train.entry.train` trains here,
# or, with `launch.num_processes` > 1 (DeepSpeed ZeRO-3 in the 8B/70B params) or
# `launch.sft.own_process`, under `accelerate launch` with these params written once.

# %%
from tulu_lib.ablations import arms, sft_arms
from tulu_lib.train import entry

result = entry.train("sft", p, model=p.model.name, data=stage.upstream("01_data") / "sft",
                     out=stage.artifacts / f"run-{p.sft.loss}")
stats = {k: v for k, v in result.stats.items() if not isinstance(v, dict)}
print(stats)
stage.save_table(pd.DataFrame([{"loss": p.sft.loss, **stats}]), "sft_stats",
                 caption="SFT run: steps, tokens, throughput, and over-length conversations "
                         f"({p.sft.truncation}d at max_length {p.sft.optim.max_length})")
arm_run = dict(start=p.model.name, p=p, out_dir=stage.artifacts / "ablations", main=result)  # every arm

# %% [markdown]
# ## Sum vs mean loss (the paper's batch-aggregation finding, in miniature)
# With `sft.ablate_loss`, the other aggregation trains from the same start, data and seed
# (an arm of `tulu_lib.ablations.sft_arms`), and both checkpoints are scored on the verifiable
# benchmarks; the reading is paired on the items both scored.

# %%
if p.sft.ablate_loss:
    table, curves = arms.run_and_save(stage, sft_arms.LOSS, sft_arms.loss_arms(p, sft_data), **arm_run)
    stage.save_table(arms.curves_table(curves, "{} loss"), "sft_sum_vs_mean_curves",
                     caption="SFT training logs of the sum and mean loss arms")
    stage.figure("sft_sum_vs_mean_loss", "training_curves", {"logs": "sft_sum_vs_mean_curves"},
                 caption="SFT batch aggregation (paper §4): training loss with sum vs mean loss "
                         "(different units: sum is per batch, mean per token)",
                 keys=["loss"], title="SFT training loss: sum vs mean aggregation")
    display(table)  # noqa: F821
else:
    print("sum vs mean ablation not run: set sft.ablate_loss: true")

# %% [markdown]
# ## SFT mix ablations (Figure 4 and the paper's source removals, in miniature)
# The paper trained on stratified subsamples of the final mix (Figure 4: the full mix is
# best) and on the mix without one source at a time. With `sft.ablate_subsample` and
# `sft.ablate_sources`, each arm trains from the same start and seed for as many passes
# over its rows as the full mix, and is scored like the full-mix checkpoint (this stage's run).

# %%
mixes = sft_arms.mix_arms(p, sft_data)
for name, group in mixes.items():
    table, _ = arms.run_and_save(stage, sft_arms.MIX[name], group, **arm_run)
    display(table)  # noqa: F821
if not mixes:
    print("mix ablations not run: set sft.ablate_subsample (e.g. [0.25, 0.5]) or sft.ablate_sources")

# %%
print("SFT checkpoint:", stage.keep_model(result.checkpoint))
