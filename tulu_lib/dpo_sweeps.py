"""The paper's DPO ablations in miniature: data (Figures 8–11), algorithms (Table 18), memory (Figure 17).

Each data sweep builds preference sets that differ in one thing, trains each from the same SFT
checkpoint with the same loss, optimiser and seed (``dpo.sweeps.epochs`` over its own pairs, so
a bigger set trains more steps, as in the paper), evaluates each on ``eval.ablation_benchmarks``
(the verifiable ones), and reads the result against the paper's finding, paired on the items
every variant scored (:func:`tulu_lib.ablations.read_ablation`):

* Figure 8 (:func:`unique_prompt_subsets`) — nested subsets with N unique prompts: one seeded
  shuffle, one pair per prompt, the first N.
* Figure 9 (:func:`duplicated_prompt_sets`) — the same unique prompts, each repeated c times.
  The paper duplicated a prompt with *different* response pairs; the stand-in has one pair per
  prompt, so a copy here is the same pair again: the sweep can show whether repeating pairs
  helps, not whether new responses to a seen prompt do.
* Figure 10 (:func:`reuse_split`) — pairs whose prompt the SFT data contains ("reused") vs pairs
  from the same sources whose prompt it lacks ("new"), the same count per source in both arms.
  They are drawn from the whole preference source named in params (:func:`preference_pool`,
  decontaminated with the params' rules), since the run's own preference sample rarely shares
  prompts with its SFT sample.
* Figure 11 (:func:`synthesize_on_policy`) — on-policy pairs: k completions by the SFT model for
  prompts with a verifiable answer, judged by :func:`tulu_lib.rewards.verify` (chosen = a verified
  completion, rejected = a failed one; prompts without both are dropped and counted). The paper
  judged with an LLM (GPT-4o) on a 1–5 scale; ours is a verifiable judge. Compared with the same
  number of off-policy stand-in pairs (other prompts: model-pool answers and rule-made
  rejections), their union, and the SFT model itself ("initial").

Table 18: each algorithm's checkpoint scored the same way, read with
``ABLATIONS["table18_dpo_algorithms"]``. Figure 17 (:func:`measure_memory`, :func:`save_memory`):
peak memory of a DPO training step with/without the reference cache, chosen/rejected forwarded
together or separately, each configuration in a fresh subprocess
(``python -m tulu_lib.dpo_sweeps --memory-child SPEC``).

Usage::

    subsets = unique_prompt_subsets(prefs, [50, 100, 200], seed=123)
    table = run_sweep(subsets, p, sft_model, out_dir, x="unique prompts")
    ablations.save_ablation(stage, ABLATIONS["fig08_unique_prompts"], table)   # table, figure, reading
    rows = measure_memory(model_path, data="standin:preferences", max_length=512, batch_size=2)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from tulu_lib import data, rewards
from tulu_lib.ablations import Ablation, cached_row, paper_item, score_row
from tulu_lib.generate import Generator, SamplingParams
from tulu_lib.params import DPOParams, OnPolicySweep, Params

# ---------------------------------------------------------------------- sweep data


def prompt_key(messages: Sequence[Mapping]) -> str:
    """A prompt's user turns, lower-cased with whitespace collapsed (system turns ignored)."""
    return " ".join(" ".join(m["content"] for m in messages if m["role"] == "user").split()).lower()


def _unique_prompt_order(pairs: datasets.Dataset, seed: int) -> list[int]:
    """Row indices in one seeded shuffle, keeping the first pair of each prompt."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    seen: set[str] = set()
    keep = []
    for i, prompt in zip(order, (pairs[i]["prompt"] for i in order), strict=True):
        key = prompt_key(prompt)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def unique_prompt_subsets(pairs: datasets.Dataset, sizes: Sequence[int], seed: int,
                          ) -> dict[int, datasets.Dataset]:
    """Figure 8: for each N, the first N unique prompts of one seeded shuffle (nested subsets)."""
    order = _unique_prompt_order(pairs, seed)
    if max(sizes) > len(order):
        raise ValueError(f"unique_prompts asks for {max(sizes)} prompts; the preference data has "
                         f"{len(order)} unique prompts")
    return {n: pairs.select(order[:n]) for n in sizes}


def duplicated_prompt_sets(pairs: datasets.Dataset, prompts: int, copies: Sequence[int], seed: int,
                           ) -> dict[int, datasets.Dataset]:
    """Figure 9: the same ``prompts`` unique prompts, each pair repeated c times (ids ``<id>#<k>``)."""
    (base,) = unique_prompt_subsets(pairs, [prompts], seed).values()
    rows = base.to_list()
    return {c: datasets.Dataset.from_list([{**r, "id": f"{r['id']}#{k}"} for k in range(c) for r in rows])
            for c in copies}


def preference_pool(p: Params) -> datasets.Dataset:
    """The whole preference source of ``p.data.preferences`` (no mix, no limit), decontaminated
    against ``p.decontamination.benchmarks`` with the same rules as the 01_data stage."""
    from tulu_lib import benchmarks, decontam

    spec = dataclasses.replace(p.data.preferences, limit=None, mix={})
    pool = data.load_preferences(spec, seed=p.seed).dataset
    dc = p.decontamination
    index = decontam.BenchmarkIndex.build(benchmarks.benchmark_texts(dc.benchmarks), ngram=dc.ngram)
    return decontam.decontaminate(pool, index, ngram=dc.ngram, overlap_threshold=dc.overlap_threshold,
                                  flag_threshold=dc.flag_threshold, removal=dc.removal,
                                  rule=dc.rule, num_proc=dc.num_proc, progress=False).dataset


def tag_reused(pairs: datasets.Dataset, sft: datasets.Dataset) -> list[bool]:
    """Per pair: does some SFT conversation have the same prompt (the user turns before a reply)?"""
    seen = {prompt_key(m[:i + 1]) for m in sft["messages"]
            for i, turn in enumerate(m) if turn["role"] == "user"}
    return [prompt_key(prompt) in seen for prompt in pairs["prompt"]]


def reuse_split(pool: datasets.Dataset, sft: datasets.Dataset, pairs: int, seed: int,
                ) -> dict[str, datasets.Dataset]:
    """Figure 10: ``{"reused": ..., "new": ...}``, up to ``pairs`` each, source for source.

    Reused pairs are taken in a seeded order; each is kept only while a new pair of the same
    ``source`` is left to match it, so both arms have the same count per source.
    """
    reused = tag_reused(pool, sft)
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    new_by_source: dict[str, list[int]] = {}
    for i in order:
        if not reused[i]:
            new_by_source.setdefault(pool[i]["source"], []).append(i)
    arms: dict[str, list[int]] = {"reused": [], "new": []}
    for i in (i for i in order if reused[i]):
        left = new_by_source.get(pool[i]["source"])
        if left:
            arms["reused"].append(i)
            arms["new"].append(left.pop(0))
            if len(arms["reused"]) == pairs:
                break
    if not arms["reused"]:
        raise ValueError(f"no preference prompt of the pool ({len(pool)} pairs) occurs in the SFT data "
                         f"({len(sft)} conversations) with a new prompt of the same source to match it")
    if len(arms["reused"]) < pairs:
        print(f"[dpo_sweeps] reused_vs_new: only {len(arms['reused'])} matched pairs per arm "
              f"(asked for {pairs}; {sum(reused)} pool pairs have an SFT prompt)")
    return {arm: pool.select(rows) for arm, rows in arms.items()}


@dataclass
class OnPolicyPairs:
    """Synthesized pairs, what happened to every prompt, and every judged completion."""

    pairs: datasets.Dataset | None  # None when no prompt had both a verified and a failed completion
    counts: dict[str, int]
    judged: pd.DataFrame  # id, dataset, sample, verified (None: empty), finished, tokens, text


def synthesize_on_policy(generator: Generator, prompts: datasets.Dataset, spec: OnPolicySweep, seed: int,
                         ) -> OnPolicyPairs:
    """Figure 11's pipeline with a verifiable judge: ``spec.samples`` completions for each of
    ``spec.prompts`` RLVR rows (``messages, ground_truth, dataset``), verified; chosen = a
    verified completion (one that ended if any did), rejected = a failed one, both picked by a
    seeded draw. Empty completions are neither; pairs then pass the preference data checks."""
    rows = prompts.shuffle(seed=seed).select(range(min(spec.prompts, len(prompts))))
    sampling = SamplingParams(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                              n=spec.samples, seed=seed)
    outputs = generator.generate([r["messages"] for r in rows], sampling)
    rng = random.Random(seed)
    counts = Counter(prompts=len(rows))
    judged, candidates = [], []
    for row, completions in zip(rows, outputs, strict=True):
        verdicts = [rewards.verify(row["dataset"], c.text, row["ground_truth"]) if c.text.strip() else None
                    for c in completions]
        judged += [{"id": row["id"], "dataset": row["dataset"], "sample": k, "verified": v,
                    "finished": c.finished, "tokens": c.num_tokens, "text": c.text}
                   for k, (c, v) in enumerate(zip(completions, verdicts, strict=True))]
        verified = [c for c, v in zip(completions, verdicts, strict=True) if v]
        failed = [c.text for c, v in zip(completions, verdicts, strict=True) if v is False]
        counts.update(completions=len(completions), verified=len(verified), failed=len(failed),
                      empty=verdicts.count(None))
        if not verified or not failed:
            counts["prompts without a verified and a failed completion"] += 1
            continue
        chosen = rng.choice([c for c in verified if c.finished] or verified).text
        candidates.append({"id": f"on_policy/{row['id']}", "source": f"on_policy_{row['dataset']}",
                           "prompt": row["messages"], "chosen": [{"role": "assistant", "content": chosen}],
                           "rejected": [{"role": "assistant", "content": rng.choice(failed)}]})
    kept, report = data.clean_rows("preferences", candidates, "on-policy synthesis")
    counts.update({f"pairs dropped: {reason}": n for reason, n in report.dropped.items()})
    counts["pairs"] = len(kept)
    return OnPolicyPairs(datasets.Dataset.from_list(kept) if kept else None, dict(counts),
                         pd.DataFrame(judged))


def on_policy_variants(on_policy: datasets.Dataset, off_policy: datasets.Dataset, seed: int,
                       ) -> dict[str, datasets.Dataset | None]:
    """Figure 11's arms: the SFT model (``None``: not trained), as many off-policy pairs as there
    are on-policy ones, the on-policy pairs, and both together."""
    n = len(on_policy)
    if n > len(off_policy):
        raise ValueError(f"{n} on-policy pairs but only {len(off_policy)} off-policy pairs to match them")
    columns = ["id", "prompt", "chosen", "rejected", "source"]
    off = off_policy.shuffle(seed=seed).select(range(n)).select_columns(columns)
    on = on_policy.select_columns(columns).cast(off.features)
    return {"initial": None, "off-policy": off, "on-policy": on,
            "off+on-policy": datasets.concatenate_datasets([off, on])}


# ------------------------------------------------------------------- train, evaluate


def sweep_params(dpo: DPOParams) -> DPOParams:
    """``dpo`` training ``sweeps.epochs`` over each variant's pairs (``max_steps`` off)."""
    optim = dataclasses.replace(dpo.optim, epochs=dpo.sweeps.epochs, max_steps=-1)
    return dataclasses.replace(dpo, optim=optim)


def run_sweep(variants: Mapping, p: Params, model: str | Path, out_dir: str | Path, *, x: str,
              ) -> pd.DataFrame:
    """Train each variant's pairs from ``model`` (``None``: evaluate ``model`` as it is), evaluate,
    one row per variant. A finished variant's row is kept in ``<out_dir>/<variant>/result.json``
    with a key of everything it depends on (rerunning with the same key skips it; another key
    starts it afresh), and its trained weights are deleted once evaluated."""
    from tulu_lib.params import section_hash

    out_dir = Path(out_dir)
    params = sweep_params(p.dpo)
    rows = []
    for value, pairs in variants.items():
        folder = out_dir / str(value).replace("/", "_")
        key = section_hash([str(model), params, p.eval.ablation(), p.eval.max_new_tokens, p.model, p.seed,
                            None if pairs is None else data.fingerprint(pairs)])
        rows.append(cached_row(folder, key, functools.partial(_train_variant, value, pairs, p, params,
                                                              model, folder, x)))
    return pd.DataFrame(rows)


def _train_variant(value, pairs, p: Params, params: DPOParams, model, folder: Path, x: str) -> dict:
    from tulu_lib.dpo import train_dpo
    from tulu_lib.evals import evaluate_checkpoint

    row: dict = {x: value, "pairs": 0, "unique prompts": 0, "steps": 0, "final loss": None}
    checkpoint = model
    if pairs is not None:
        result = train_dpo(str(model), pairs, params, folder / "train", seed=p.seed, dtype=p.model.dtype,
                           launch=p.launch)
        checkpoint = result.checkpoint
        row.update({"pairs": len(pairs), "unique prompts": len({prompt_key(q) for q in pairs["prompt"]}),
                    "steps": result.stats["global_step"], "final loss": result.stats["final_loss"]})
    row.update(score_row(evaluate_checkpoint(checkpoint, p, folder / "eval")))
    if pairs is not None:
        shutil.rmtree(folder / "train")
    return row


# ---------------------------------------------------------------- reading, reporting


ABLATIONS = {a.name: a for a in (
    Ablation("fig08_unique_prompts", "Figure 8", "unique prompts", "last",
             note="nested subsets of the run's preference pairs, one pair per prompt, one epoch each"),
    Ablation("fig09_duplicated_prompts", "Figure 9", "copies per prompt", "first",
             note="the same unique prompts, each pair repeated: the stand-in has one pair per prompt, "
                  "so a copy is the same pair again (the paper's copies had new responses)"),
    Ablation("fig10_reused_vs_new", "Figure 10", "prompts", "new",
             paper_rows={"reused": "DPO w. reused prompts", "new": "DPO w. new prompts"},
             note="pairs from the whole preference source, matched per source; reused = the prompt "
                  "is in this run's SFT data"),
    Ablation("fig11_on_policy", "Figure 11", "responses", "on-policy", ("on-policy", "off-policy"),
             paper_rows={v: v for v in ("initial", "off-policy", "on-policy", "off+on-policy")},
             note="on-policy pairs from the SFT model's samples judged by the verifiers (the paper: "
                  "an LLM judge); off-policy = as many stand-in pairs for other prompts"),
    Ablation("table18_dpo_algorithms", "Table 18", "algorithm", "dpo_norm",
             paper_rows={"dpo_norm": "best overall"},
             note="the run's preference pairs; no PPO; the paper's Table 18 numbers are not in the "
                  "reference CSV, only its finding"),
)}


# ------------------------------------------------------------------------ Figure 17


MEMORY_CONFIGS = (  # (label, cache_reference, separate_forward); the first is the baseline
    ("no cache, concatenated", False, False),
    ("no cache, separate", False, True),
    ("cache, concatenated", True, False),
    ("cache, separate", True, True),
)
_MARK = "MEMORY_RESULT "
_MB = 2**20


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS


def memory_pairs(source: str, model: str, n: int, max_length: int) -> tuple[datasets.Dataset, int]:
    """``n`` pairs of ``source`` (a SourceParams path) with prompt < max_length/2 whose shorter reply
    is longest: the first ``n`` that fill ``max_length`` on both sides, else the longest found.
    Returns the pairs and how many of them fill ``max_length``."""
    from tulu_lib.assets import load_tokenizer
    from tulu_lib.chat_template import num_tokens
    from tulu_lib.params import SourceParams

    tokenizer = load_tokenizer(model)
    scored, full = [], 0
    for row in data.load_preferences(SourceParams(path=source), seed=0).dataset:
        if num_tokens(tokenizer, row["prompt"], add_generation_prompt=True) < max_length // 2:
            replies = (num_tokens(tokenizer, row["prompt"] + row[side]) for side in ("chosen", "rejected"))
            shorter = min(max_length, *replies)
            scored.append((shorter, row))
            full += shorter == max_length
            if full == n:
                break
    if len(scored) < n:
        raise ValueError(f"{source}: only {len(scored)} pairs have a prompt under {max_length // 2} tokens")
    best = sorted(scored, key=lambda s: -s[0])[:n]
    return datasets.Dataset.from_list([r for _, r in best]), sum(s == max_length for s, _ in best)


def _memory_child(spec: dict) -> dict:
    """One configuration, measured in this (fresh) process."""
    import torch

    from tulu_lib import dpo
    from tulu_lib.params import OptimParams

    work = Path(spec["workdir"])
    n = spec["batch_size"] * spec["steps"]
    rows, full = memory_pairs(spec["data"], spec["model"], n, spec["max_length"])
    optim = OptimParams(learning_rate=5e-7, max_steps=spec["steps"], per_device_batch_size=spec["batch_size"],
                        max_length=spec["max_length"], save_steps=10**6)
    params = DPOParams(optim=optim, loss="dpo_norm", beta=5.0, cache_reference=spec["cache"])
    cuda = torch.cuda.is_available()
    baseline = _rss()
    trainer = dpo.build_trainer(spec["model"], rows, params, work / "out", seed=0, dtype=spec["dtype"],
                                ref_cache_root=work / "cache", separate_forward=spec["separate_forward"])
    if spec.get("build_cache_only"):
        return {"cache_dir": trainer.reference_info["cache_dir"]}
    if spec["cache"] and not trainer.reference_info["cache_hit"]:
        raise RuntimeError("the reference cache should have been built beforehand")
    models = [trainer.model] + ([trainer.ref_model] if trainer.ref_model is not None else [])
    weights = sum(t.numel() * t.element_size() for m in models for t in m.parameters())
    cuda_resident = torch.cuda.memory_allocated() if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    _reset_peak_rss()
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    peak = _peak_rss()
    return {"weights_mb": weights / _MB, "peak_rss_delta_mb": (peak - baseline) / _MB,
            "cuda_resident_mb": cuda_resident / _MB if cuda else None,
            "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / _MB if cuda else None,
            "seconds_per_step": seconds / spec["steps"], "pairs_at_max_length": full,
            "reference_forward_passes": trainer.reference_forwards.calls,
            "reference_model_in_memory": trainer.ref_model is not None,
            "device": torch.cuda.get_device_name() if cuda else "cpu"}


def _run_child(spec: dict) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    proc = subprocess.run([sys.executable, "-m", "tulu_lib.dpo_sweeps", "--memory-child", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line.removeprefix(_MARK))
    raise RuntimeError(f"memory measurement child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def measure_step_memory(cache: bool, separate_forward: bool, *, model: str, data: str = "standin:preferences",
                        max_length: int = 512, batch_size: int = 2, steps: int = 2, dtype: str = "float32",
                        workdir: str | Path | None = None) -> dict:
    """Peak memory of ``steps`` dpo_norm steps in one configuration, measured in a fresh subprocess.

    On CPU: the peak RSS during the steps (``VmHWM``, reset just before ``train()``) minus the
    RSS before any model was loaded — weights (safetensors map lazily, so they count once a
    forward touches them), optimizer state, gradients, activations. On a GPU also
    ``torch.cuda.max_memory_allocated`` over the same steps. With ``cache`` the reference
    log-probs are first written to ``<workdir>/cache`` in their own subprocess, so the measured
    run loads no reference model. ``model`` must be a local folder (``assets.model_path``).
    """
    if workdir is None:  # the child's checkpoint and cache: removed after
        with tempfile.TemporaryDirectory(prefix="dpo-memory-") as tmp:
            return measure_step_memory(cache, separate_forward, model=model, data=data, max_length=max_length,
                                       batch_size=batch_size, steps=steps, dtype=dtype, workdir=tmp)
    workdir = Path(workdir)
    spec = {"cache": cache, "separate_forward": separate_forward, "model": model, "data": data,
            "max_length": max_length, "batch_size": batch_size, "steps": steps, "dtype": dtype,
            "workdir": str(workdir)}
    if cache:
        _run_child({**spec, "build_cache_only": True})
    return {"cache": cache, "separate_forward": separate_forward, **_run_child(spec)}


def measure_memory(model: str, workdir: str | Path | None = None, **kwargs) -> pd.DataFrame:
    """Figure 17: the four configurations, with each peak's ratio to the baseline (no cache, concatenated)."""
    if workdir is None:  # every configuration's checkpoint and cache: removed after
        with tempfile.TemporaryDirectory(prefix="dpo-memory-") as tmp:
            return measure_memory(model, tmp, **kwargs)
    workdir = Path(workdir)
    rows = [{"config": label, **measure_step_memory(cache, separate, model=model, workdir=workdir, **kwargs)}
            for label, cache, separate in MEMORY_CONFIGS]
    for row in rows:
        for key in ("peak_rss_delta_mb", "cuda_max_allocated_mb"):
            base = rows[0][key]
            row[f"{key.removesuffix('_mb')}_ratio"] = row[key] / base if base else None
    return pd.DataFrame(rows)


def _memory_measure(table: pd.DataFrame) -> tuple[str, str, str]:
    """Figure 17's peak: GPU max allocated where measured, else CPU peak RSS (column, ratio, words)."""
    if table["cuda_max_allocated_mb"].notna().all():
        return "cuda_max_allocated_mb", "cuda_max_allocated_ratio", "GPU max allocated"
    return "peak_rss_delta_mb", "peak_rss_delta_ratio", "CPU peak RSS above the pre-load baseline"


def memory_reading(table: pd.DataFrame) -> str:
    """Figure 17's finding on :func:`measure_memory`'s table: does each lever lower the peak?"""
    _, ratio, measure = _memory_measure(table)
    r = table.set_index("config")[ratio]
    levers = {"the reference cache": r["cache, concatenated"], "separate passes": r["no cache, separate"],
              "both": r["cache, separate"]}
    lower = [v < 1 for v in levers.values()]
    verdict = "Agrees" if all(lower) else "Does not agree" if not any(lower) else "Partly agrees"
    shown = ", ".join(f"{k} {v:.2f}×" for k, v in levers.items())
    return (f"{verdict}. Paper: {paper_item('Figure 17').finding} Ours ({measure}, one measurement each, "
            f"as a share of no cache + concatenated): {shown}.")


def save_memory(stage, table: pd.DataFrame, setting: str) -> str:
    """Save Figure 17's table and bar chart and record its reading; ``setting`` names the model,
    max_length and batch for the caption."""
    from tulu_lib import plots

    value, ratio, measure = _memory_measure(table)
    item = paper_item("Figure 17")
    caption = (f"Figure 17 in miniature: peak memory of a dpo_norm training step with/without the reference "
               f"log-prob cache, chosen/rejected concatenated or separate; ratios to no cache + concatenated "
               f"({measure}; {setting}). Paper: {item.finding}")
    stage.save_table(table, "fig17_dpo_memory", caption=caption)
    fig = plots.memory_bars(table, value, ratio, "peak memory (MiB)",
                            f"Figure 17 in miniature: DPO step memory ({table['device'].iloc[0]})")
    stage.save_figure(fig, "fig17_dpo_memory", caption=caption)
    line = memory_reading(table)
    stage.reading(item.ref, line)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figure 17 measurement child (see measure_step_memory)")
    parser.add_argument("--memory-child", required=True, help="the configuration, as JSON")
    args = parser.parse_args(argv)
    print(_MARK + json.dumps(_memory_child(json.loads(args.memory_child))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
