"""Benchmark tulu_lib.data.decontam on a synthetic SFT mixture and eval suite (not a test).

Builds ``--rows`` synthetic conversations (user turns of 20-400 words, 10% two-turn, assistant
replies, several sources) drawn from a Zipfian vocabulary shared with a synthetic eval suite of
the Tülu 3 sizes (~30.6k items), plants contaminated rows (verbatim, re-cased/re-punctuated,
embedded in longer turns, one word changed), runs ``decontaminate`` and prints throughput, the
projected time for the 939,343-row Tülu 3 SFT mixture, peak RSS and whether the planted rows
(and only them) were found.

    .venv/bin/python scripts/bench_decontam.py --rows 100000 --num-proc 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time

import datasets
import numpy as np
import psutil

from tulu_lib.data.decontam import BenchmarkIndex, decontaminate

TULU3_SFT_ROWS = 939_343
# Items per benchmark and (min, max) question length in words.
SUITE = {
    "gsm8k": (1319, 30, 90),
    "math": (5000, 10, 120),
    "mmlu": (14042, 3, 120),  # some questions are shorter than one 8-gram: exact match only
    "humaneval": (164, 40, 200),
    "ifeval": (541, 15, 80),
    "drop": (9536, 150, 400),
}
SOURCES = ["tulu_v3.9_wildchat", "flan_v2", "open_math_2", "personahub_code", "aya", "no_robots",
           "sciriff", "table_gpt", "coconot", "persona_if"]


class Words:
    """Zipfian word generator; ~8% of words carry punctuation, sentences start capitalised."""

    def __init__(self, rng: np.random.Generator, size: int = 60_000):
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = rng.integers(2, 10, size)
        base = ["".join(rng.choice(letters, n)) for n in lengths]
        marks = [",", ".", "?", ";", ":", "!"]
        self.table = np.array(base + [w + m for m in marks for w in base], dtype=object)
        self.size, self.n_marks = size, len(marks)
        weights = 1.0 / np.arange(1, size + 1)
        self.cdf = np.cumsum(weights / weights.sum())
        self.rng = rng

    def draw(self, n: int) -> list[str]:
        idx = np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), self.size - 1)
        punct = self.rng.random(n) < 0.08
        idx = idx + punct * self.size * self.rng.integers(1, self.n_marks + 1, n)
        words = self.table[idx].tolist()
        words[0] = words[0].capitalize()
        return words

    def text(self, low: int, high: int) -> str:
        n = int(np.exp(self.rng.uniform(np.log(low), np.log(high + 1))))
        return " ".join(self.draw(max(low, min(high, n))))


def make_suite(words: Words) -> dict[str, list[tuple[str, str]]]:
    return {
        name: [(f"{name}-{i}", words.text(lo, hi)) for i in range(size)]
        for name, (size, lo, hi) in SUITE.items()
    }


def contaminate(item: str, kind: str, words: Words) -> str:
    """One planted variant of a benchmark item."""
    if kind == "verbatim":
        return item
    if kind == "recased":
        return item.upper().replace(",", "").replace(".", " . ")
    if kind == "embedded":
        return f"{words.text(20, 150)}\n\n{item}\n\n{words.text(5, 60)}"
    tokens = item.split()  # "edited": one word in the middle changed
    tokens[len(tokens) // 2] = "zzqx"
    return " ".join(tokens)


def make_train(n_rows: int, suite, share: float, words: Words, rng: np.random.Generator):
    """Synthetic SFT rows and the set of planted row indices."""
    items = [text for entries in suite.values() for _, text in entries]
    planted = set(rng.choice(n_rows, int(n_rows * share), replace=False).tolist())
    kinds = ["verbatim", "recased", "embedded", "edited"]
    ids, messages, sources = [], [], []
    src_p = np.linspace(2, 1, len(SOURCES))
    src_p /= src_p.sum()
    for i in range(n_rows):
        multi_turn = rng.random() < 0.1
        if i in planted:
            item = items[rng.integers(len(items))]
            kind = kinds[rng.integers(len(kinds))]
            if len(item.split()) < 8:  # a short item matches only the whole user text
                kind, multi_turn = "recased", False
            elif kind == "edited" and len(item.split()) < 30:
                kind = "embedded"
            user = contaminate(item, kind, words)
            source = SOURCES[i % 2]
        else:
            user = words.text(20, 400)
            source = SOURCES[rng.choice(len(SOURCES), p=src_p)]
        turns = [{"role": "user", "content": user},
                 {"role": "assistant", "content": words.text(30, 300)}]
        if multi_turn:
            turns += [{"role": "user", "content": words.text(5, 60)},
                      {"role": "assistant", "content": words.text(30, 200)}]
        ids.append(f"{source}_{i}")
        messages.append(turns)
        sources.append(source)
    ds = datasets.Dataset.from_dict({"id": ids, "messages": messages, "source": sources})
    return ds, planted


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


class MemoryWatch(threading.Thread):
    """Samples this process's RSS and its children's USS (private memory; a forked worker's RSS
    would also count the pages it shares with this process) while running."""

    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        self.every, self.stop, self.me = every, threading.Event(), psutil.Process()
        self.parent = self.workers = self.total = 0

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                parent = self.me.memory_info().rss
                workers = sum(c.memory_full_info().uss for c in self.me.children(recursive=True))
            except psutil.Error:  # a worker exited between listing and reading
                continue
            self.parent, self.workers = max(self.parent, parent), max(self.workers, workers)
            self.total = max(self.total, parent + workers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--contaminated", type=float, default=0.03, help="share of planted rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show the progress bar")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    words = Words(rng)
    t0 = time.perf_counter()
    suite = make_suite(words)
    train, planted = make_train(args.rows, suite, args.contaminated, words, rng)
    tmp = tempfile.TemporaryDirectory(prefix="bench_decontam_")
    train.save_to_disk(tmp.name)  # memory-mapped from disk, like a downloaded mixture
    train = datasets.load_from_disk(tmp.name)
    print(f"synthetic data: {len(train):,} rows, {sum(map(len, suite.values())):,} eval items, "
          f"{len(planted):,} planted ({time.perf_counter() - t0:.1f}s)")

    t0 = time.perf_counter()
    index = BenchmarkIndex.build(suite)
    build_s = time.perf_counter() - t0
    print(f"index: {len(index.hashes):,} distinct 8-grams, {len(index.vocab):,} tokens, "
          f"built in {build_s:.1f}s")

    cpu, watch = cpu_seconds(), MemoryWatch()
    before = watch.me.memory_info().rss
    watch.start()
    result = decontaminate(train, index, num_proc=args.num_proc, progress=args.progress)
    watch.stop.set()
    watch.join()
    cpu = cpu_seconds() - cpu
    st = result.stats
    removed_rows = {int(i.rsplit("_", 1)[1]) for i in result.removed["id"]}
    missed, extra = planted - removed_rows, removed_rows - planted
    projected = build_s + TULU3_SFT_ROWS / st["rows_per_s"]
    print(f"decontaminate: {st['rows_in']:,} rows in {st['seconds']:.1f}s = "
          f"{st['rows_per_s']:,.0f} rows/s with num_proc={args.num_proc} "
          f"({cpu / st['rows_in'] * 1e6:.0f} CPU-us/row; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")
    print(f"projected for {TULU3_SFT_ROWS:,} rows: {projected / 60:.1f} min "
          f"(index build + scan)")
    mib = 2**20
    print(f"peak memory during decontaminate: {watch.total / mib:,.0f} MiB = parent RSS "
          f"{watch.parent / mib:,.0f} MiB (holding {before / mib:,.0f} MiB of synthetic data "
          f"and index before) + workers' private {watch.workers / mib:,.0f} MiB; "
          f"ru_maxrss of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    print(f"removed {st['rows_removed']:,} rows; planted {len(planted):,}: "
          f"missed {len(missed)}, unplanted removed {len(extra)}")
    flagged = result.flagged()
    print(f"flagged (source, benchmark) pairs: {len(flagged)}")
    print(flagged.to_string(index=False))
    tmp.cleanup()
    return 0 if not missed and not extra else 1


if __name__ == "__main__":
    sys.exit(main())
