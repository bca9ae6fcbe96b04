"""The run manifest: everything needed to say where a number came from.

``reports/<run>/manifest.json`` holds the git commit (and whether the tree was dirty),
Python and package versions, the resolved params and their hash, the data fingerprints
the stages recorded, the hardware, and each stage's key, status (its one status,
:func:`~tulu_lib.workbook.stages.stage_statuses`) and times. The runner rewrites it after every stage.

Usage::

    manifest.collect(run)   # dict;  manifest.write(run) writes manifest.json
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata

from tulu_lib.core.io import write_json
from tulu_lib.workbook.stages import REPO_ROOT, stage_statuses

PACKAGES = ("tulu-repro", "torch", "transformers", "trl", "datasets", "accelerate", "peft",
            "papermill", "jupytext", "lm_eval", "math-verify", "vllm", "deepspeed")


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict:
    import psutil

    info = {"platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "gpus": []}
    if "torch" in sys.modules or _importable("torch"):
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _importable(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def collect(run) -> dict:
    stages, fingerprints = {}, {}
    records = run.records()
    for stage, status in stage_statuses(records).items():
        rec = records[stage]
        stages[stage] = {"status": status, **{k: rec.get(k) for k in
                                              ("key", "started", "ended", "elapsed_s", "outputs_hash")}}
        if "last_attempt" in rec:
            stages[stage]["last_attempt"] = rec["last_attempt"]
        for name, value in (rec.get("fingerprints") or {}).items():
            fingerprints[f"{stage}/{name}"] = value
    dirty = _git("status", "--porcelain")
    return {
        "run": run.params.name, "scale": run.params.scale, "written": time.time(),
        "git": {"commit": _git("rev-parse", "HEAD"), "dirty": bool(dirty) if dirty is not None
                else None},
        "versions": versions(), "hardware": hardware(),
        "params_file": os.path.relpath(run.params_file, REPO_ROOT)
        if run.params_file.is_absolute() else str(run.params_file),
        "params_hash": run.params.hash(), "params": run.params.to_dict(),
        "data_fingerprints": fingerprints, "stages": stages,
    }


def write(run) -> None:
    write_json(run.dir / "manifest.json", collect(run))
