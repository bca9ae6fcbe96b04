"""Generation throughput: transformers ``generate`` vs vLLM on the same prompts, side by side.

Each backend runs in a fresh process (one after the other, same machine), on the same chat
prompts, greedy, with EOS: the count is the tokens each backend actually generated (both
give the same greedy text, ``tests/test_vllm.py``). Two prompt sets: ``short`` (one-line
questions) and ``fewshot`` (the GSM8K 8-shot chain-of-thought prompts of ``05_eval``, whose
~900-token prefix is shared, so vLLM's prefix cache reuses it). Per backend and batch size:
tokens/s, seconds; per backend: engine start (load + warm-up) and peak RSS of its process.

Usage::

    .venv/bin/python scripts/bench_generate.py --model smollm2-135m-instruct --prompts 64 \\
        --hf-batch-sizes 8 32 --vllm-batch-sizes 8 32 64 --out bench_generate.csv
    .venv/bin/python scripts/bench_generate.py --backends vllm vllm-compiled   # torch.compile on
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time


def prompts(kind: str, n: int) -> list[list[dict]]:
    from tulu_lib import benchmarks, evals

    if kind == "short":
        topics = ["the moon", "a river", "bread", "tea", "winter", "a bicycle", "the ocean", "music"]
        return [[{"role": "user", "content": f"Write three sentences about {topics[i % 8]} ({i})."}]
                for i in range(n)]
    rows = list(benchmarks.load_benchmark("gsm8k", limit=n))
    return [evals.TASKS["gsm8k"].prompt(r, 8) for r in rows]


def worker(backend: str, model: str, kind: str, n: int, max_new_tokens: int, batch_sizes: list[int]) -> None:
    """Runs in the child: one JSON line per measurement on stdout."""
    from tulu_lib.assets import model_path
    from tulu_lib.generate import HFGenerator, SamplingParams, VLLMGenerator

    path = model_path(model)
    chats = prompts(kind, n)
    sampling = SamplingParams(max_new_tokens=max_new_tokens)
    started = time.perf_counter()
    if backend == "hf":
        gen = HFGenerator.from_path(path, progress=False)
    else:
        gen = VLLMGenerator(path, enforce_eager=backend == "vllm", max_model_len=2048)
    gen.generate(chats[:1], SamplingParams(max_new_tokens=4))  # warm-up
    start_s = time.perf_counter() - started
    for bs in batch_sizes:
        if backend == "hf":
            gen.batch_size = bs
        t = time.perf_counter()
        outs = [o for i in range(0, n, bs) for o in gen.generate(chats[i:i + bs], sampling)]
        seconds = time.perf_counter() - t
        tokens = sum(c.num_tokens for (c,) in outs)
        print(json.dumps({"backend": backend, "prompts": kind, "batch_size": bs, "n": n,
                          "tokens": tokens, "seconds": round(seconds, 2),
                          "tokens_per_s": round(tokens / seconds, 1), "start_s": round(start_s, 1),
                          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                          }),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--sets", nargs="+", default=["short", "fewshot"], choices=["short", "fewshot"])
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm", "vllm-compiled"])
    ap.add_argument("--hf-batch-sizes", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--vllm-batch-sizes", nargs="+", type=int, default=[8, 32, 64])
    ap.add_argument("--out", default=None, help="CSV file for the rows")
    ap.add_argument("--worker", nargs=2, metavar=("BACKEND", "SET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        backend, kind = args.worker
        sizes = args.hf_batch_sizes if backend == "hf" else args.vllm_batch_sizes
        worker(backend, args.model, kind, args.prompts, args.max_new_tokens, sizes)
        return
    rows = []
    for kind in args.sets:
        for backend in args.backends:
            cmd = [sys.executable, __file__, "--worker", backend, kind, "--model", args.model,
                   "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
                   "--hf-batch-sizes", *map(str, args.hf_batch_sizes),
                   "--vllm-batch-sizes", *map(str, args.vllm_batch_sizes)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            found = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not found:
                sys.exit(f"{backend}/{kind} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
            rows += found
            for r in found:
                print(f"{kind:8s} {backend:14s} batch {r['batch_size']:4d}: {r['tokens_per_s']:7.1f} tok/s "
                      f"({r['tokens']} tokens, {r['seconds']} s; start {r['start_s']} s, "
                      f"peak RSS {r['peak_rss_gb']} GB)", flush=True)
    for kind in args.sets:
        best = {b: max((r["tokens_per_s"] for r in rows if r["prompts"] == kind and r["backend"] == b),
                       default=None) for b in args.backends}
        if best.get("hf"):
            ratios = ", ".join(f"{b} {v / best['hf']:.2f}x" for b, v in best.items() if b != "hf" and v)
            print(f"{kind}: best tok/s vs hf at its best batch: {ratios}")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
