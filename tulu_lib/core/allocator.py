"""glibc malloc settings, one per kind of process a run starts (glibc reads them when a process
starts, so they are set for the processes a run starts, not the running one).

* :data:`HEAP_ENV`, the notebook kernels (every stage of a single-process run trains and
  generates in its kernel): keep freed memory in the heap for the next step. By default glibc
  serves every allocation over 32 MiB (logits, activations, gradients) with a fresh ``mmap`` and
  unmaps it when freed, so each step page-faults its working set in again: on 2 cores that was a
  quarter of a DPO step's CPU time in the kernel (``sys``). With no ``mmap`` and no trimming a step
  reuses the pages the previous one freed: 4 DPO steps of SmolLM2-135M took 31.1 s against 38.5 s
  (0.81x), the losses and weights bit-identical (the allocator moves no arithmetic;
  ``scripts/bench_allocator.py``, docs/performance.md). The price: a process keeps its peak heap.
* :data:`RETURN_ENV`, the processes ``accelerate launch`` starts (several processes, PPO's four
  models): a 1 MiB mmap threshold, so freed tensors go back to the OS. Measured on PPO, 5 steps
  on 2 cores (``scripts/bench_rlvr.py``): peak RSS 13.4 -> 11.0 GB, 16.4 -> 17.9 s per step.
* Figure 17's measurement children run with glibc's defaults (:func:`without`): their peak RSS
  is the paper's measure, which a kept heap would blur.

A variable already set in the environment wins, except that :func:`without` drops ``HEAP_ENV``'s
(a kernel's) from what a launched stage or a measurement child inherits.

Usage::

    subprocess.Popen(kernel, env={**allocator.HEAP_ENV, **os.environ})
    subprocess.run(cmd, env={**allocator.RETURN_ENV, **allocator.without(os.environ)})
"""

from __future__ import annotations

from collections.abc import Mapping

HEAP_ENV = {"MALLOC_MMAP_MAX_": "0",                    # every block from the heap, none mmapped
            "MALLOC_TRIM_THRESHOLD_": str(2**36)}       # and the heap never trimmed below 64 GiB
RETURN_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**20)}     # blocks over 1 MiB mmapped, unmapped when freed


def without(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without :data:`HEAP_ENV`'s variables: glibc's default allocation behaviour."""
    return {k: v for k, v in env.items() if k not in HEAP_ENV}
