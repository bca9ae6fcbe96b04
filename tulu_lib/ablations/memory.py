"""Figure 17 in miniature: the peak memory of a DPO training step with and without the reference
log-prob cache, chosen and rejected replies forwarded together or separately.

Each of the four configurations (:data:`MEMORY_CONFIGS`) is measured in a fresh subprocess
(``python -m tulu_lib.ablations.memory --memory-child SPEC``, glibc's default allocator: no
:data:`tulu_lib.core.allocator.HEAP_ENV`) on the same pairs — the longest
available at ``max_length`` — and the same model: on CPU the peak RSS over the steps above the
pre-load baseline, on a GPU also ``torch.cuda.max_memory_allocated``. :func:`memory_reading` reads
the paper's finding (each lever lowers the peak) on the ratios to no cache + concatenated.

Usage::

    table = measure_memory(model_path, data="standin:preferences", max_length=512, batch_size=2)
    save_memory(stage, table, "SmolLM2-135M, max_length 512, batch 2, two steps")
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import pandas as pd

from tulu_lib.ablations import arms
from tulu_lib.core import allocator
from tulu_lib.core.assets import load_tokenizer
from tulu_lib.core.chat_template import num_tokens
from tulu_lib.core.params import DPOParams, OptimParams, SourceParams
from tulu_lib.data import loader
from tulu_lib.reporting import findings
from tulu_lib.train import dpo

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

    tokenizer = load_tokenizer(model)
    scored, full = [], 0
    for row in loader.load_preferences(SourceParams(path=source), seed=0).dataset:
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
    env = {**allocator.without(os.environ), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TQDM_DISABLE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [sys.executable, "-m", "tulu_lib.ablations.memory", "--memory-child", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line.removeprefix(_MARK))
    raise RuntimeError(f"memory measurement child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def measure_step_memory(cache: bool, separate_forward: bool, *, model: str, data: str = "standin:preferences",
                        max_length: int = 512, batch_size: int = 2, steps: int = 2, dtype: str = "float32",
                        workdir: str | Path | None = None, build_cache: bool = True) -> dict:
    """Peak memory of ``steps`` dpo_norm steps in one configuration, measured in a fresh subprocess.

    On CPU: the peak RSS during the steps (``VmHWM``, reset just before ``train()``) minus the
    RSS before any model was loaded — weights (safetensors map lazily, so they count once a
    forward touches them), optimizer state, gradients, activations. On a GPU also
    ``torch.cuda.max_memory_allocated`` over the same steps. With ``cache`` the reference
    log-probs are first written to ``<workdir>/cache`` in their own subprocess, so the measured
    run loads no reference model (``build_cache=False``: an earlier configuration in the same
    ``workdir`` wrote it). ``model`` must be a local folder (``assets.model_path``).
    """
    if workdir is None:  # the child's checkpoint and cache: removed after
        with tempfile.TemporaryDirectory(prefix="dpo-memory-") as tmp:
            return measure_step_memory(cache, separate_forward, model=model, data=data, max_length=max_length,
                                       batch_size=batch_size, steps=steps, dtype=dtype, workdir=tmp)
    workdir = Path(workdir)
    spec = {"cache": cache, "separate_forward": separate_forward, "model": model, "data": data,
            "max_length": max_length, "batch_size": batch_size, "steps": steps, "dtype": dtype,
            "workdir": str(workdir)}
    if cache and build_cache:
        _run_child({**spec, "build_cache_only": True})
    return {"cache": cache, "separate_forward": separate_forward, **_run_child(spec)}


def measure_memory(model: str, workdir: str | Path | None = None, **kwargs) -> pd.DataFrame:
    """Figure 17: the four configurations, with each peak's ratio to the baseline (no cache, concatenated)."""
    if workdir is None:  # every configuration's checkpoint and cache: removed after
        with tempfile.TemporaryDirectory(prefix="dpo-memory-") as tmp:
            return measure_memory(model, tmp, **kwargs)
    workdir = Path(workdir)
    first_cached = next(i for i, (_, cache, _) in enumerate(MEMORY_CONFIGS) if cache)
    rows = [{"config": label, **measure_step_memory(cache, separate, model=model, workdir=workdir,
                                                    build_cache=i == first_cached, **kwargs)}
            for i, (label, cache, separate) in enumerate(MEMORY_CONFIGS)]  # one reference pass, shared
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
    finding = arms.paper_item("Figure 17").finding
    return (f"{verdict}. Paper: {finding} Ours ({measure}, one measurement each, "
            f"as a share of no cache + concatenated): {shown}.")


def save_memory(stage, table: pd.DataFrame, setting: str) -> str:
    """Save Figure 17's table and bar chart and record its reading; ``setting`` names the model,
    max_length and batch for the caption."""

    value, ratio, measure = _memory_measure(table)
    item = arms.paper_item("Figure 17")
    caption = (f"Figure 17 in miniature: peak memory of a dpo_norm training step with/without the reference "
               f"log-prob cache, chosen/rejected concatenated or separate; ratios to no cache + concatenated "
               f"({measure}; {setting}). Paper: {item.finding}")
    stage.save_table(table, "fig17_dpo_memory", caption=caption)
    stage.figure("fig17_dpo_memory", "memory_bars", {"table": "fig17_dpo_memory"}, caption=caption,
                 value=value, ratio=ratio, ylabel="peak memory (MiB)",
                 title=f"Figure 17 in miniature: DPO step memory ({table['device'].iloc[0]})")
    line = memory_reading(table)
    stage.reading(item.ref, line)
    stage.finding(memory_finding(table))
    return line


def memory_finding(table: pd.DataFrame) -> dict:
    """Finding e: both levers together against neither (the effect: the peak's change, percent),
    reproduced when each lever lowers the peak, contradicted when none does."""
    _, ratio, measure = _memory_measure(table)
    r = table.set_index("config")[ratio]
    lower = [r[c] < 1 for c in ("cache, concatenated", "no cache, separate", "cache, separate")]
    reading = "reproduced" if all(lower) else "contradicted" if not any(lower) else "not detected"
    return findings.measured_row("dpo_memory", reading, n=len(table), effect=100 * (r["cache, separate"] - 1),
                                 test=f"{measure}, one measurement per setting (no sampling interval)",
                                 note="effect: peak change with both levers, % of no cache + concatenated")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Figure 17 measurement child (see measure_step_memory)")
    parser.add_argument("--memory-child", required=True, help="the configuration, as JSON")
    args = parser.parse_args(argv)
    print(_MARK + json.dumps(_memory_child(json.loads(args.memory_child))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
