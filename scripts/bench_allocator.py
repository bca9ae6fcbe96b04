"""Benchmark glibc's default allocator against the run's heap settings (tulu_lib/core/allocator.py)
on DPO training steps: wall time, CPU time in user and kernel mode, minor page faults.

Each configuration trains the same ``dpo_norm`` steps on the same pairs (the longest stand-in
pairs, at the params' max_length and batch) in a fresh process; rounds alternate the two and the
best round of each is shown, beside whether the losses and final weights came out bit-identical.

Usage::

    .venv/bin/python scripts/bench_allocator.py [--params params/cpu.yaml] [--steps 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("glibc default", "heap (HEAP_ENV)")


def child(spec: dict) -> dict:
    from tulu_lib.ablations.memory import memory_pairs
    from tulu_lib.core import assets
    from tulu_lib.core.params import DPOParams, OptimParams
    from tulu_lib.train import dpo

    model = str(assets.model_path(spec["model"]))
    rows, _ = memory_pairs("standin:preferences", model, spec["batch"] * spec["steps"], spec["max_length"])
    optim = OptimParams(learning_rate=1e-5, max_steps=spec["steps"], per_device_batch_size=spec["batch"],
                        max_length=spec["max_length"], save_steps=10**6)
    work = Path(spec["work"])
    trainer = dpo.build_trainer(model, rows, DPOParams(optim=optim, loss="dpo_norm", beta=5.0), work / "out",
                                seed=0, ref_cache_root=work / "cache")
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.time()
    trainer.train()
    after = resource.getrusage(resource.RUSAGE_SELF)
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters()))
    return {"train_s": time.time() - started, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "minor_faults": after.ru_minflt - before.ru_minflt,
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
            "weights": weights.hexdigest()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params/cpu.yaml")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))))
        return
    from tulu_lib.core import allocator
    from tulu_lib.core.params import load_params

    p = load_params(args.params)
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for config in CONFIGS:
            env = allocator.without(os.environ)
            if config != CONFIGS[0]:
                env.update(allocator.HEAP_ENV)
            with tempfile.TemporaryDirectory(prefix="bench-allocator-") as work:
                spec = {"model": p.model.name, "steps": args.steps, "work": work,
                        "batch": p.dpo.optim.per_device_batch_size, "max_length": p.dpo.optim.max_length}
                done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                      capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{config} failed:\n{done.stderr[-3000:]}")
            result = json.loads(line.removeprefix("RESULT "))
            if config not in best or result["train_s"] < best[config]["train_s"]:
                best[config] = result
    base = best[CONFIGS[0]]
    print(f"{p.model.name}: {args.steps} dpo_norm steps, batch {p.dpo.optim.per_device_batch_size}, "
          f"max_length {p.dpo.optim.max_length}; best of {args.repeats} rounds")
    print("| allocator | train s | ratio | user s | sys s | minor faults | same losses and weights |")
    print("|---|---|---|---|---|---|---|")
    for config, r in best.items():
        same = r["losses"] == base["losses"] and r["weights"] == base["weights"]
        print(f"| {config} | {r['train_s']:.1f} | {r['train_s'] / base['train_s']:.2f} | {r['user_s']:.1f} "
              f"| {r['sys_s']:.1f} | {r['minor_faults']:,} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
