"""RLVR throughput: seconds per step and peak memory, GRPO vs PPO, CPU vs GPU (fp32, bf16), side by side.

Each variant is one algorithm (:func:`tulu_lib.train.grpo.train_grpo` for GRPO,
:func:`tulu_lib.train.ppo.train_ppo`
for PPO, its value model started from the policy) at a params file's RLVR settings (default: the
``cpu`` default's 8 replies of up to 128 tokens per step: GRPO 2 prompts x 4, PPO 8 prompts x 1,
4 PPO epochs), on one device, in a fresh subprocess (the CPU one
with ``CUDA_VISIBLE_DEVICES=""``), on synthetic GSM-style prompts. The first step is warm-up and
is not counted. ``--random-init`` builds the model from its ``config.json`` with random weights
(for machines without the real weights): such a model never stops early, so every reply runs to
the full length, a fixed and worst-case workload. Ratios are against the first variant.
Beside the step time, each block TRL times (``trl.extras.profiling``: rollout generation through
vLLM or transformers, the log-prob passes, the loss, the weight sync) gets a ``phase:<name>``
column, its seconds per timed step; the blocks nest (``_prepare_inputs`` holds the generation and
the reference/old-policy log-prob passes), so they do not add up to the step.

Usage::

    .venv/bin/python scripts/bench_rlvr.py [--model smollm2-135m-instruct] [--steps 4] \
        [--algorithms grpo ppo] [--set rlvr.optim.gradient_accumulation_steps=2] [--out rlvr.csv]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_MARK = "BENCH_RESULT "
VARIANTS = {"cpu-fp32": ("cpu", False), "cuda-fp32": ("cuda", False), "cuda-bf16": ("cuda", True)}


def _child(spec: dict) -> dict:
    import resource

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from tulu_lib.core.params import load_params
    from tulu_lib.data import standins
    from tulu_lib.train import grpo, ppo

    overrides = [f"rlvr.optim.max_steps={spec['steps']}", "rlvr.optim.save_steps=1000000",
                 "rlvr.optim.logging_steps=1", f"rlvr.optim.bf16={str(spec['bf16']).lower()}",
                 f"rlvr.algorithm={spec['algorithm']}", "rlvr.ppo.value_model=policy", *spec["set"]]
    params = load_params(spec["params"], overrides).rlvr
    group = params.num_generations if params.algorithm == "grpo" else params.ppo.num_generations
    prompts = params.optim.per_device_batch_size // group * spec["steps"]
    rng = random.Random(0)
    problems = [standins.gsm_problem(rng) for _ in range(prompts)]
    rows = Dataset.from_list([{"messages": [{"role": "user", "content": q}], "ground_truth": str(a),
                               "dataset": "gsm8k"} for q, a in problems])

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    import trl.extras.profiling as trl_profiling

    phases: list[tuple[int, str, float]] = []  # (steps ended before it, block, seconds)

    def record(context, duration: float) -> None:
        phases.append((len(clock.ends), context.name.rsplit(".", 1)[-1] if "generate" not in context.name
                       else context.name.split(".", 1)[-1], duration))

    trl_profiling.ProfilingContext._log_metrics = record
    clock, cuda = Clock(), torch.cuda.is_available()
    common = dict(seed=0, callbacks=[clock], resume=False)
    if params.algorithm == "ppo":
        result = ppo.train_ppo(spec["model"], rows, params, params.ppo, spec["out"], **common)
    else:
        result = grpo.train_grpo(spec["model"], rows, params, spec["out"], **common)
    steps = [b - a for a, b in itertools.pairwise(clock.ends)]  # step 1 (warm-up) is not counted
    lengths = [h["completions/mean_length"] for h in result.log_history if "completions/mean_length" in h]
    replies = params.optim.per_device_batch_size * params.optim.gradient_accumulation_steps
    mean_length = sum(lengths) / len(lengths) if lengths else None  # over the logged steps, warm-up too
    per_step = sum(steps) / len(steps)
    timed = {}
    for ended, name, seconds in phases:
        if ended >= 1:  # after the warm-up step
            timed[f"phase:{name}"] = timed.get(f"phase:{name}", 0.0) + seconds / len(steps)
    return {"device": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)",
            "seconds_per_step": per_step, "steps_timed": len(steps),
            "mean_reply_tokens": mean_length,
            "reply_tokens_per_second": mean_length * replies / per_step if mean_length else None,
            "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **timed}


def _random_copy(model: str, out: Path) -> str:
    """The model's architecture and tokenizer with seeded random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tulu_lib.core.assets import model_path

    path = model_path(model)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params" / "cpu.yaml"))
    parser.add_argument("--steps", type=int, default=4, help="steps per variant (the first is warm-up)")
    parser.add_argument("--algorithms", nargs="+", choices=["grpo", "ppo"], default=["grpo", "ppo"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="default: cpu-fp32, plus the cuda ones when a GPU is present")
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override for every variant (e.g. rlvr.optim.per_device_batch_size=4)")
    parser.add_argument("--out", help="write the table as CSV here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(_MARK + json.dumps(_child(json.loads(args.child))), flush=True)
        return 0
    import torch

    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is warm-up)")
    variants = args.variants or [v for v in VARIANTS if v == "cpu-fp32" or torch.cuda.is_available()]
    with tempfile.TemporaryDirectory(prefix="bench-rlvr-") as tmp:  # checkpoints: GBs per variant
        table = _bench(args, variants, Path(tmp))
    print(f"RLVR steps, {args.model}{' (random init)' if args.random_init else ''}, {Path(args.params).name}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


def _bench(args, variants: list[str], work: Path):
    """Each variant × algorithm in its own process; their runs go under ``work``."""
    import pandas as pd

    model = _random_copy(args.model, work / "model") if args.random_init else args.model
    rows = []
    for name, algorithm in itertools.product(variants, args.algorithms):
        device, bf16 = VARIANTS[name]
        spec = {"model": model, "params": args.params, "steps": args.steps, "bf16": bf16, "set": args.set,
                "algorithm": algorithm, "out": str(work / f"{name}-{algorithm}")}
        env = {**os.environ, "TQDM_DISABLE": "1", **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                              capture_output=True, text=True)
        found = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
        if not found:
            raise RuntimeError(f"{name} {algorithm} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        rows.append({"variant": name, "algorithm": algorithm, **json.loads(found[-1].removeprefix(_MARK))})
        print(f"{name} {algorithm}: {rows[-1]['seconds_per_step']:.2f} s/step", flush=True)
    table = pd.DataFrame(rows)
    table["speedup_vs_first"] = table["seconds_per_step"].iloc[0] / table["seconds_per_step"]
    return table


if __name__ == "__main__":
    sys.exit(main())
