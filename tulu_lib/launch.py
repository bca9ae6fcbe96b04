"""Training stages in several processes: ``accelerate launch`` (torchrun), DeepSpeed when params ask.

The paper trained on nodes of 8 H100s with DeepSpeed ZeRO-3. With ``launch.num_processes``
above 1, a stage's trainer does not run in the notebook's kernel: :func:`launch` starts
``accelerate launch -m tulu_lib.<stage>`` with the same params file and overrides, streams
its output, and reads back the ``<out>/<stage>_result.json`` the main process writes.
DeepSpeed needs no launcher flag: ``launch.deepspeed`` reaches the trainer's config
(``TrainingArguments.deepspeed``), which builds accelerate's DeepSpeed plugin itself. On a
machine without CUDA the processes form a gloo group on the CPU (``--multi_gpu`` is simply
accelerate's switch for "start several workers").

Usage::

    tulu-repro launch sft --params params/tulu3-8b.yaml --out runs/sft [--set k=v] [--data DIR]
    result = launch("sft", "params/smoke.yaml", "runs/sft", ["--set", "launch.num_processes=2"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from tulu_lib.params import load_params

MODULES = {"sft": "tulu_lib.sft", "dpo": "tulu_lib.dpo"}


def result_file(stage: str, out: str | Path) -> Path:
    """Where a launched stage's main process writes its result."""
    return Path(out) / f"{stage}_result.json"


def command(stage: str, params_file: str | Path, out: str | Path, args: list[str] = ()) -> list[str]:
    """The ``accelerate launch`` command line for ``stage`` under ``params_file`` (+ ``--set`` in args)."""
    if stage not in MODULES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(MODULES)}")
    overrides = [v for flag, v in zip(args, args[1:], strict=False) if flag == "--set"]
    launch = load_params(params_file, overrides).launch
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--num_processes", str(launch.num_processes), "--mixed_precision", launch.mixed_precision,
           "--dynamo_backend", "no"]
    if launch.num_processes > 1:
        cmd.append("--multi_gpu")
    return [*cmd, "-m", MODULES[stage], "--params", str(params_file), "--out", str(out), *args]


def launch(stage: str, params_file: str | Path, out: str | Path, args: list[str] = (),
           cwd: str | Path | None = None) -> dict:
    """Run ``stage`` under ``accelerate launch``, echoing its output; its result JSON.

    Raises ``RuntimeError`` with the last lines of output when a process fails; checkpoints
    already in ``out`` stay, so the same call resumes.
    """
    cmd = command(stage, params_file, out, list(args))
    print("[tulu-repro] " + " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            tail.append(line)
            print(line, end="", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{stage}` under accelerate launch exited {proc.returncode}:\n" + "".join(tail))
    return json.loads(result_file(stage, out).read_text())
