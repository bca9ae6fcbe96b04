"""Generation throughput: transformers ``generate`` vs vLLM on the same prompts, side by side.

Each backend runs in a fresh process (one after the other, same machine), on the same chat
prompts, greedy, with EOS: the count is the tokens each backend actually generated (both
give the same greedy text, ``tests/test_vllm.py``). Two prompt sets: ``short`` (one-line
questions) and ``fewshot`` (the GSM8K 8-shot chain-of-thought prompts of ``05_eval``, whose
~900-token prefix is shared, so vLLM's prefix cache reuses it). Per backend and batch size:
tokens/s, seconds; per backend: engine start (load + warm-up) and peak RSS of its process.

``--sets judge`` times scoring instead: ``loglikelihood`` of " 1".." 5" after each of the four
per-aspect judge questions on ``--prompts`` stand-in SFT replies (``synthesis.judge_mode:
expected``), per backend requests/s; ``vllm-prompt-logprobs`` is vLLM scoring them all from
prompt log-probs (no prefix cache), the way it did before next-token reads.

Usage::

    .venv/bin/python scripts/bench_generate.py --model smollm2-135m-instruct --prompts 64 \\
        --hf-batch-sizes 8 32 --vllm-batch-sizes 8 32 64 --out bench_generate.csv
    .venv/bin/python scripts/bench_generate.py --backends vllm vllm-compiled   # torch.compile on
    .venv/bin/python scripts/bench_generate.py --backends vllm vllm-bf16   # what vLLM's "auto" picks
    .venv/bin/python scripts/bench_generate.py --sets judge --prompts 48 \
        --backends hf vllm vllm-prompt-logprobs
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
    from tulu_lib.evals import registry

    if kind == "short":
        topics = ["the moon", "a river", "bread", "tea", "winter", "a bicycle", "the ocean", "music"]
        return [[{"role": "user", "content": f"Write three sentences about {topics[i % 8]} ({i})."}]
                for i in range(n)]
    gsm8k = registry.benchmark("gsm8k")
    return [gsm8k.prompt(r, 8) for r in gsm8k.load(limit=n)]


def judge_requests(n: int, tokenizer) -> list[tuple[str, str]]:
    """The expected-rating judge's requests on ``n`` stand-in SFT replies (4 aspects × 5 ratings)."""
    from tulu_lib.data import preferences, standins

    rows = list(standins.build("sft"))[:n]
    out = []
    for aspect in preferences.ASPECTS:
        for row in rows:
            prompt, reply = row["messages"][:-1], row["messages"][-1]["content"]
            text = tokenizer.apply_chat_template(preferences.judge_messages(prompt, reply, aspect),
                                                 tokenize=False, add_generation_prompt=True)
            out += [(text + preferences.RATING_PREFIX, f" {k}") for k in range(1, 6)]
    return out


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def start(backend: str, model: str, warmup: list[dict]):
    """The generator and its start time (load + a 4-token reply to ``warmup``)."""
    from tulu_lib.core.assets import model_path
    from tulu_lib.generation import backends

    path = model_path(model)
    started = time.perf_counter()
    if backend == "hf":
        gen = backends.HFGenerator.from_path(path, progress=False)
    else:
        gen = backends.VLLMGenerator(path, enforce_eager=backend != "vllm-compiled", max_model_len=2048,
                                     dtype="bfloat16" if backend == "vllm-bf16" else "float32")
    if backend == "vllm-prompt-logprobs":
        backends.NEXT_TOKEN_READS = 0
    gen.generate([warmup], backends.SamplingParams(max_new_tokens=4))
    return gen, time.perf_counter() - started


def worker(backend: str, model: str, kind: str, n: int, max_new_tokens: int, batch_sizes: list[int]) -> None:
    """Runs in the child: one JSON line per measurement on stdout."""
    from tulu_lib.generation.types import SamplingParams

    chats = [] if kind == "judge" else prompts(kind, n)
    gen, start_s = start(backend, model, chats[0] if chats else [{"role": "user", "content": "Hi."}])
    if kind == "judge":
        requests = judge_requests(n, gen.tokenizer)
        if backend == "hf":
            gen.batch_size = batch_sizes[-1]
        t = time.perf_counter()
        gen.loglikelihood(requests)
        seconds = time.perf_counter() - t
        print(json.dumps({"backend": backend, "prompts": kind, "n": len(requests),
                          "batch_size": batch_sizes[-1] if backend == "hf" else 0,
                          "seconds": round(seconds, 2),
                          "requests_per_s": round(len(requests) / seconds, 1), "start_s": round(start_s, 1),
                          "peak_rss_gb": peak_rss_gb()}), flush=True)
        return
    sampling = SamplingParams(max_new_tokens=max_new_tokens)
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
                          "peak_rss_gb": peak_rss_gb()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--sets", nargs="+", default=["short", "fewshot"], choices=["short", "fewshot", "judge"])
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"],
                    choices=["hf", "vllm", "vllm-compiled", "vllm-prompt-logprobs", "vllm-bf16"])
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
                what = (f"{r['requests_per_s']:7.1f} requests/s ({r['n']} requests" if kind == "judge" else
                        f"{r['tokens_per_s']:7.1f} tok/s ({r['tokens']} tokens")
                print(f"{kind:8s} {backend:20s} batch {r['batch_size']:4d}: {what}, {r['seconds']} s; start "
                      f"{r['start_s']} s, peak RSS {r['peak_rss_gb']} GB)", flush=True)
    for kind in args.sets:
        rate = "requests_per_s" if kind == "judge" else "tokens_per_s"
        best = {b: max((r[rate] for r in rows if r["prompts"] == kind and r["backend"] == b),
                       default=None) for b in args.backends}
        if best.get("hf"):
            ratios = ", ".join(f"{b} {v / best['hf']:.2f}x" for b, v in best.items() if b != "hf" and v)
            print(f"{kind}: best {rate.replace('_per_s', '/s')} vs hf at its best batch: {ratios}")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
