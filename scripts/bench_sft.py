"""Benchmark SFT throughput and peak memory: padded vs packed, and this project's SFT vs TRL's defaults.

Every configuration trains the same model on the same stand-in SFT rows (the mix, with
its length spread) with the same batch, accumulation, max_length and steps, each in a
process of its own so that its peak RSS is its own. Throughput counts non-padding tokens
from the end of the first (warm-up) optimizer step to the end of the last; the
configurations run in interleaved rounds and each one's best round is shown (the CPUs
are shared, so a slow round says more about the neighbours than the code).

* ``padded`` / ``packed`` — :func:`tulu_lib.train.sft.train_sft`, ``sft.packing`` off / on;
* ``trl-bfd`` — the project's trainer with TRL's own ``packing=True`` (bfd, padding-free:
  a micro-batch becomes one long row; its micro-batches hold packed rows, not conversations);
* ``trl-default`` — plain ``SFTTrainer`` + ``SFTConfig`` defaults (bf16 autocast, gradient
  checkpointing, fused LM head, global token-mean loss, loss on every token) on the raw rows.

Usage::

    .venv/bin/python scripts/bench_sft.py [--params params/cpu.yaml] [--model tiny-llama] [--steps 8]
                                          [--repeats 2] [--layers 4] [--set sft.optim.max_length=1024]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = ("padded", "packed", "trl-bfd", "trl-default")


def child(spec: dict) -> dict:
    """Train one configuration; its throughput and peak RSS."""
    import dataclasses
    import tempfile

    from transformers import TrainerCallback

    from tulu_lib.core.assets import load_model
    from tulu_lib.core.params import load_params
    from tulu_lib.data.loader import load_sft
    from tulu_lib.train import sft

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    p = load_params(spec["params"], spec["overrides"] + ["sft.optim.save_steps=100000"])
    params = dataclasses.replace(p.sft, packing=spec["config"] == "packed")
    rows = load_sft(p.data.sft, seed=p.seed).dataset
    clock, out = Clock(), tempfile.mkdtemp(prefix="bench-sft-")
    if spec["config"] in ("padded", "packed"):
        sft.train_sft(spec["model"], rows, params, out, seed=p.seed, callbacks=[clock])
    else:
        from trl import SFTConfig, SFTTrainer

        model, tokenizer = load_model(spec["model"])
        o = params.optim
        if spec["config"] == "trl-bfd":
            data, _ = sft.tokenize_sft(rows, tokenizer, o.max_length, params.truncation)
            config = dataclasses.replace(sft.sft_config(params, out, p.seed), packing=True,
                                         include_num_input_tokens_seen="all")  # one row, no padding
            trainer = sft.TuluSFTTrainer(model=model, args=config, processing_class=tokenizer,
                                         train_dataset=data, callbacks=[clock], loss=params.loss)
        else:
            config = SFTConfig(out, use_cpu=True, report_to=[], seed=p.seed, save_strategy="no",
                               learning_rate=o.learning_rate, max_steps=o.max_steps, max_length=o.max_length,
                               per_device_train_batch_size=o.per_device_batch_size,
                               gradient_accumulation_steps=o.gradient_accumulation_steps,
                               include_num_input_tokens_seen="non_padding")
            trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer,
                                 train_dataset=rows.select_columns(["messages"]), callbacks=[clock])
        trainer.train()
    (t0, n0), (t1, n1) = clock.marks[0], clock.marks[-1]
    return {"config": spec["config"], "tokens": n1 - n0, "seconds": t1 - t0,
            "tokens_per_second": (n1 - n0) / (t1 - t0),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def random_copy(name: str, layers: int) -> str:
    """A seeded random model of ``name``'s architecture with ``layers`` layers, in a temporary folder."""
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tulu_lib.core.assets import load_tokenizer, model_path

    config = AutoConfig.from_pretrained(model_path(name))
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    out = tempfile.mkdtemp(prefix="bench-sft-model-")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    load_tokenizer(name).save_pretrained(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params/cpu.yaml")
    ap.add_argument("--model", default="tiny-llama", help="registry name or checkpoint folder")
    ap.add_argument("--layers", type=int, help="a randomly initialised copy of --model with this many layers")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per configuration (>= 2)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each configuration's best run is shown")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    model = random_copy(args.model, args.layers) if args.layers else args.model
    best: dict[str, dict] = {}
    for round_ in range(args.repeats):  # rounds interleave the configurations; the best run of each counts
        for config in args.configs:
            spec = {"config": config, "params": args.params, "model": model,
                    "overrides": args.set + [f"sft.optim.max_steps={args.steps}"]}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                  capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(lines[-1].removeprefix("RESULT "))
            print(f"  round {round_ + 1} {config}: {result['tokens_per_second']:.1f} tokens/s",
                  file=sys.stderr, flush=True)
            if config not in best or result["tokens_per_second"] > best[config]["tokens_per_second"]:
                best[config] = result
    results = [best[c] for c in args.configs]

    base = results[0]
    label = f"random {args.model} with {args.layers} layers" if args.layers else args.model
    print(f"\nSFT benchmark: {label}, {args.params} {' '.join(args.set)}, {args.steps} steps "
          f"(throughput over steps 2-{args.steps}, best of {args.repeats}), {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'config':<12} {'tokens':>8} {'tokens/s':>9} {'vs ' + base['config']:>10} {'peak RSS MB':>12} "
          f"{'vs ' + base['config']:>10}")
    for r in results:
        print(f"{r['config']:<12} {r['tokens']:>8} {r['tokens_per_second']:>9.1f} "
              f"{r['tokens_per_second'] / base['tokens_per_second']:>9.2f}x {r['peak_rss_mb']:>12.0f} "
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
