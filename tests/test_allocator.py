"""The heap allocator settings (tulu_lib/core/allocator.py): glibc honours them, and a training
run under them takes fewer page faults and computes the same losses and weights, bit for bit."""

import json
import os
import subprocess
import sys

from tulu_lib.core import allocator

# Three dpo_norm steps of the tiny model over 256-token pairs: its 49,152-token vocabulary makes
# logits of ~100 MB a micro-batch, the allocations glibc would otherwise mmap and unmap each step
TRAIN = r"""
import hashlib, json, resource, sys
import datasets, torch
from pathlib import Path
from tulu_lib.core.params import DPOParams, OptimParams
from tulu_lib.train import dpo
rows = datasets.Dataset.from_list([
    {"prompt": [{"role": "user", "content": f"Question {i}?"}],
     "chosen": [{"role": "assistant", "content": "yes " * 300}],
     "rejected": [{"role": "assistant", "content": "no " * (290 + i)}]} for i in range(6)])
optim = OptimParams(learning_rate=1e-2, max_steps=3, per_device_batch_size=2, max_length=256, save_steps=100)
params = DPOParams(optim=optim, loss="dpo_norm", beta=5.0)
out = Path(sys.argv[2])
trainer = dpo.build_trainer(sys.argv[1], rows, params, out / "run", seed=0, ref_cache_root=out / "cache")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
trainer.train()
weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters()))
print("RESULT " + json.dumps({"losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
                              "weights": weights.hexdigest(),
                              "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

# RSS after a 256 MiB block is written and freed: glibc unmaps it by default, keeps it under HEAP_ENV
FREE = r"""
import ctypes, json, psutil
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
block = libc.malloc(256 << 20)
ctypes.memset(block, 1, 256 << 20)
libc.free(ctypes.c_void_p(block))
print("RESULT " + json.dumps({"rss_mib": psutil.Process().memory_info().rss / 2**20}))
"""


def _child(code: str, env: dict, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, done.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))


def test_glibc_keeps_freed_memory_only_under_the_heap_settings():
    base = allocator.without(os.environ)
    plain, heap = _child(FREE, base), _child(FREE, {**base, **allocator.HEAP_ENV})
    assert heap["rss_mib"] - plain["rss_mib"] > 200, (plain, heap)


def test_training_under_the_heap_settings_faults_less_and_computes_the_same(tiny_path, tmp_path):
    base = allocator.without(os.environ)
    plain = _child(TRAIN, base, tiny_path, tmp_path / "plain")
    heap = _child(TRAIN, {**base, **allocator.HEAP_ENV}, tiny_path, tmp_path / "heap")
    assert len(plain["losses"]) == 3
    assert heap["losses"] == plain["losses"] and heap["weights"] == plain["weights"]
    assert heap["faults"] < plain["faults"] / 2, (plain["faults"], heap["faults"])


def test_without_removes_only_the_heap_settings():
    env = {"PATH": "/bin", **allocator.HEAP_ENV}
    assert allocator.without(env) == {"PATH": "/bin"}
