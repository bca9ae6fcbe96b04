"""glibc malloc settings for the processes that train and generate on CPU: keep freed memory in
the heap for the next step instead of handing it back to the kernel.

By default glibc serves every allocation over 32 MiB (logits, activations, gradients of a
training step) with a fresh ``mmap`` and returns it with ``munmap`` when freed, so each step
page-faults its working set in again: on 2 cores that was a quarter of a DPO step's CPU time in
the kernel (``sys``). With ``HEAP_ENV`` (no ``mmap``, no trimming) a step reuses the pages the
previous one freed: 4 DPO steps of SmolLM2-135M took 38.1 s against 47.8 s, with the same losses
and weights bit for bit (the allocator moves no arithmetic; docs/performance.md). The price is
that a process keeps its peak heap until it exits — which is why Figure 17's measurement children
run without it (:func:`without`): their peak RSS is the paper's measure, and a kept heap would
blur it.

glibc reads these variables when a process starts, so they are set for the processes a run
starts (the notebook kernels, ``accelerate launch`` workers below them), not the running one.

Usage::

    os.environ.update(allocator.HEAP_ENV)        # before starting the kernels
    subprocess.run(cmd, env=allocator.without(os.environ))
"""

from __future__ import annotations

from collections.abc import Mapping

HEAP_ENV = {"MALLOC_MMAP_MAX_": "0",                    # every block from the heap, none mmapped
            "MALLOC_TRIM_THRESHOLD_": str(2**36)}       # and the heap never trimmed below 64 GiB


def without(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without :data:`HEAP_ENV`'s variables: glibc's default allocation behaviour."""
    return {k: v for k, v in env.items() if k not in HEAP_ENV}
