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
# # 01 · Data: the training mixtures and the evaluation suite (paper §2–3)
#
# Tülu 3 trains on three kinds of data: an **SFT mixture** of conversations
# (`allenai/tulu-3-sft-mixture`, 939k rows), a **preference mixture** of
# prompt/chosen/rejected triples, and **RLVR prompts** whose answers a program can verify
# (GSM8K, MATH, instruction constraints). This notebook loads the three sets named in the
# params — the hub datasets on a cluster, the offline stand-ins here — cleans them
# (malformed rows are counted and dropped, never silently), draws the mix (the paper's
# Figure 2), and loads every evaluation benchmark the project reports.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_dir = None
stage_dir = None

# %%
import pandas as pd

from tulu_lib.core import assets, chat_template, hashing
from tulu_lib.data import decontam, loader
from tulu_lib.evals import registry
from tulu_lib.workbook import stages

stage = stages.open_stage("01_data", params_file, run_dir, stage_dir)
p = stage.params
print(f"run {p.name!r} — {p.scale}")

# %% [markdown]
# ## The training data
# Each loader returns rows in the schema of the paper's released dataset. The report
# below says how many rows each source had, how many were kept, and why any were dropped.

# %%
loaded = {kind: loader.load(kind, getattr(p.data, kind), seed=p.seed)
          for kind in ("sft", "preferences", "rlvr")}
for result in loaded.values():
    print(result.report.summary(), "\n")

report = pd.DataFrame([{"data": kind, "path": r.report.path, "rows read": r.report.rows_in,
                        "rows kept (after cleaning)": r.report.rows_kept,
                        "rows used (after mix/limit)": len(r.dataset),
                        "dropped": sum(r.report.dropped.values()),
                        "fingerprint": r.fingerprint} for kind, r in loaded.items()])
stage.save_table(report, "data_summary", caption="Training data: rows read, kept and used")
report

# %% [markdown]
# One example of each kind, as stored:

# %%
for kind, result in loaded.items():
    row = result.dataset[0]
    print(f"--- {kind} ({row['source']})")
    print({k: (v if len(str(v)) < 400 else str(v)[:400] + " …") for k, v in row.items()})

# %% [markdown]
# ## The SFT mix (Figure 2 equivalent)
# Examples per source and prompt+completion length in tokens, with the model's tokenizer
# and the Tülu chat template.

# %%
tokenizer = assets.load_tokenizer(p.model.name)
sft = loaded["sft"].dataset
lengths = pd.DataFrame({
    "source": sft["source"],
    "tokens": [chat_template.num_tokens(tokenizer, m) for m in sft["messages"]]})
stage.save_table(loader.length_histogram(lengths), "sft_lengths",
                 caption="SFT mix: examples per source and length bin (tokens, Tülu template)")
stage.figure("fig02_sft_mix", "mix_composition", {"hist": "sft_lengths"},
             title=f"SFT mix ({p.data.sft.path})",
             caption="Figure 2 (equivalent): the SFT mix by source and by length in tokens")
mix_table = lengths.groupby("source")["tokens"].describe()[["count", "mean", "50%", "max"]]
stage.reading("Figure 2", f"{len(lengths):,} conversations from {len(mix_table)} sources (the paper's mix: "
              f"939,343 rows); median length {lengths['tokens'].median():.0f} tokens "
              f"({p.model.name} tokenizer).")
stage.save_table(mix_table.reset_index(), "sft_mix_by_source",
                 caption="SFT mix: examples and token lengths per source")
mix_table

# %% [markdown]
# ## The evaluation suite
# The benchmarks the project reports, as loaded here (packaged copies when offline).

# %%
suite = []
for name in p.decontamination.benchmarks:
    spec = registry.benchmark(name)
    ds = registry.load_benchmark(name)
    suite.append({"benchmark": name, "paper column": spec.paper_name, "items": len(ds),
                  "offline source": spec.packaged_from, "hub id": spec.hub_id})
    stage.fingerprint(f"benchmark/{name}", hashing.rows_fingerprint(ds))
suite = pd.DataFrame(suite)
stage.save_table(suite, "benchmarks",
                 caption="Evaluation benchmarks and where their data came from")
suite

# %% [markdown]
# ## Decontamination (paper §2.3)
# Every training set is checked against every benchmark above with the paper's rules:
# 8-grams of the user turns after normalisation (lower case, punctuation and whitespace
# collapsed); an evaluation item *overlaps* a training row when at least 50% of its 8-grams
# occur in the row; a training source is *flagged* for a benchmark when more than 2% of the
# benchmark's items overlap it. Overlapping rows are removed (`decontamination.removal`),
# and the later stages train on what is left.

# %%
dc = p.decontamination
index = decontam.BenchmarkIndex.build(registry.benchmark_texts(dc.benchmarks), ngram=dc.ngram)
tables, removed = [], []
for kind, result in loaded.items():
    clean = decontam.decontaminate(result.dataset, index, ngram=dc.ngram,
                                   overlap_threshold=dc.overlap_threshold,
                                   flag_threshold=dc.flag_threshold, removal=dc.removal,
                                   rule=dc.rule, remove=dc.remove, num_proc=dc.num_proc)
    clean.dataset.save_to_disk(str(stage.artifacts / kind))
    stage.fingerprint(kind, hashing.rows_fingerprint(clean.dataset))
    tables.append(clean.table.assign(data=kind))
    removed.append(clean.removed.assign(data=kind))
    print(f"{kind}: kept {len(clean.dataset):,} of {len(result.dataset):,} rows "
          f"({clean.stats['rows_per_s']:,.0f} rows/s)")
contamination = pd.concat(tables, ignore_index=True)
removed = pd.concat(removed, ignore_index=True)
stage.save_table(contamination, "contamination",
                 caption="Decontamination: overlap of each training source with each benchmark "
                         "(percent of the benchmark's items; flagged above 2%)")
stage.save_table(removed, "decontamination_removed",
                 caption="Training rows removed by decontamination, with the benchmark item each matched")
stage.metric("rows_removed_by_decontamination", int(removed["id"].nunique()))
flagged = contamination[contamination["flagged"]]
pairs = ", ".join(f"{r.source} × {r.benchmark} {r.overlap_pct:.1f}%" for r in flagged.itertuples())
stage.reading("§2.3", f"{removed['id'].nunique():,} training rows removed; flagged (source, benchmark) "
              f"pairs: {pairs or 'none'}.")
contamination.pivot_table(index=["data", "source"], columns="benchmark", values="overlap_pct")
