"""Training stages in several processes on one or more machines: ``accelerate launch`` (torchrun).

The paper trained on nodes of 8 H100s with DeepSpeed ZeRO-3. With more than one process (or
``launch.<stage>.own_process``), a stage's trainer does not run in the notebook's kernel:
:func:`launch` starts ``accelerate launch -m tulu_lib.<stage module>`` (``MODULES``: sft, dpo,
rlvr) with the same params file and overrides, streams its output, and reads back the
``<out>/<stage>_result.json`` the main process writes. DeepSpeed needs no
launcher flag: the stage's DeepSpeed config reaches the trainer (``TrainingArguments.deepspeed``),
which builds accelerate's DeepSpeed plugin itself. On a machine without CUDA the processes
form a gloo group on the CPU (``--multi_gpu`` is accelerate's switch for "start several workers").

What a stage runs with is :func:`stage_params`: ``launch.<stage>`` over the flat ``launch``
keys, its per-device batch, accumulation and seed over the stage's ``optim`` and the top-level
seed. The launched process gets those as ``--set`` overrides, so it trains as planned.

Several machines (``num_machines`` > 1): each machine runs the same command with its own
``--machine_rank``; machine 0's host is the rendezvous. ``launch.machine_rank`` and
``launch.main_process_ip`` left null come from ``$MACHINE_RANK`` and ``$MAIN_PROCESS_IP``.
``scripts/slurm/train_stage.sbatch`` runs ``python -m tulu_lib.launch`` once per node; inside a
Slurm job with ``TULU_REPRO_SRUN=1`` (``scripts/slurm/workbook.sbatch``), :func:`launch` itself
starts the stage on its nodes with ``srun``, one task per node.

Usage::

    tulu-repro launch sft --params params/tulu3-8b.yaml --out runs/sft [--set k=v] [--data DIR]
    result = launch("sft", "params/smoke.yaml", "runs/sft", ["--set", "launch.num_processes=2"])
    MACHINE_RANK=1 MAIN_PROCESS_IP=node0 python -m tulu_lib.launch sft --params P --out O  # one node
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from tulu_lib.params import LaunchParams, Params, StageLaunch, load_params
from tulu_lib.workbook import read_json

MODULES = {"sft": "tulu_lib.sft", "dpo": "tulu_lib.dpo", "rlvr": "tulu_lib.rlvr_train"}
SRUN_ENV = "TULU_REPRO_SRUN"  # "1" inside a Slurm job: launch() starts multi-node stages with srun
# glibc's mmap threshold for a launched stage, unless set: fixed at 1 MiB, so a large CPU tensor is
# mapped and goes back to the OS when freed (by default glibc raises the threshold after each free,
# up to 32 MiB, and freed activations then stay in the heap). Measured on PPO, 5 steps on 2 cores
# (scripts/bench_rlvr.py): peak RSS 13.4 -> 11.0 GB, 16.4 -> 17.9 s per step.
MALLOC_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": str(2**20)}


def result_file(stage: str, out: str | Path) -> Path:
    """Where a launched stage's main process writes its result."""
    return Path(out) / f"{stage}_result.json"


def stage_params(params: Params, stage: str) -> Params:
    """``params`` as ``stage`` (sft, dpo, rlvr) trains: its launch settings applied.

    ``launch`` becomes the stage's flat launch (:meth:`LaunchParams.stage`);
    ``launch.<stage>.per_device_batch_size`` / ``gradient_accumulation_steps`` replace
    ``<stage>.optim``'s and ``launch.<stage>.seed`` the top-level seed.
    """
    launch = params.launch.stage(stage)  # unknown stage names fail here
    own = getattr(params.launch, stage)
    section = getattr(params, stage)
    optim = dataclasses.replace(section.optim, **{
        k: getattr(own, k) for k in ("per_device_batch_size", "gradient_accumulation_steps")
        if getattr(own, k) is not None})
    return dataclasses.replace(params, launch=launch, seed=params.seed if own.seed is None else own.seed,
                               **{stage: dataclasses.replace(section, optim=optim)})


def stage_overrides(params: Params, stage: str) -> list[str]:
    """``--set`` values that make a launched ``stage`` read :func:`stage_params` (none if nothing differs)."""
    if getattr(params.launch, stage) == StageLaunch():
        return []
    resolved = stage_params(params, stage)
    o, launch = getattr(resolved, stage).optim, resolved.launch
    items = [f"launch.num_machines={launch.num_machines}", f"launch.num_processes={launch.num_processes}",
             f"{stage}.optim.per_device_batch_size={o.per_device_batch_size}",
             f"{stage}.optim.gradient_accumulation_steps={o.gradient_accumulation_steps}",
             f"seed={resolved.seed}"]
    if launch.deepspeed:
        items.insert(2, f"launch.deepspeed={launch.deepspeed}")
    return items


def rendezvous(launch: LaunchParams, stage: str = "") -> tuple[int, str]:
    """This machine's rank and machine 0's address: the params', else ``$MACHINE_RANK`` and
    ``$MAIN_PROCESS_IP``."""
    n = launch.num_machines
    rank = launch.machine_rank if launch.machine_rank is not None else os.environ.get("MACHINE_RANK")
    ip = launch.main_process_ip or os.environ.get("MAIN_PROCESS_IP")
    if rank is None or not ip:
        raise ValueError(f"{stage or 'this stage'} runs on {n} machines: set MACHINE_RANK and "
                         "MAIN_PROCESS_IP on each (or launch.machine_rank / launch.main_process_ip), "
                         "or use scripts/slurm/")
    if not str(rank).isdigit() or not 0 <= int(rank) < n:
        raise ValueError(f"machine rank {rank!r} must be an integer in [0, {n}) for num_machines={n}")
    return int(rank), ip


def command(stage: str, params_file: str | Path, out: str | Path, args: list[str] = ()) -> list[str]:
    """The ``accelerate launch`` command line for ``stage`` on this machine (+ ``--set`` in args)."""
    if stage not in MODULES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(MODULES)}")
    args = list(args)
    overrides = [v for flag, v in zip(args, args[1:], strict=False) if flag == "--set"]
    params = load_params(params_file, overrides)
    launch = params.launch.stage(stage)
    world = launch.num_machines * launch.num_processes  # accelerate's --num_processes counts all machines
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", str(launch.num_machines),
           "--num_processes", str(world), "--mixed_precision", launch.mixed_precision,
           "--dynamo_backend", "no"]
    if launch.num_machines > 1:
        rank, ip = rendezvous(launch, stage)
        # static rendezvous at machine 0 (the release's deepspeed_zero3.yaml: same_network, static)
        cmd += ["--machine_rank", str(rank), "--main_process_ip", ip,
                "--main_process_port", str(launch.main_process_port), "--same_network"]
    if world > 1:
        cmd.append("--multi_gpu")
    extra = [a for o in stage_overrides(params, stage) for a in ("--set", o)]
    return [*cmd, "-m", MODULES[stage], "--params", str(params_file), "--out", str(out), *args, *extra]


def srun_command(stage: str, params_file: str | Path, out: str | Path, args: list[str] = ()) -> list[str]:
    """``srun``, one task per node of the stage, each running this machine's :func:`command`.

    Task ranks are the machine ranks; the step's first host (where task 0 runs) is machine 0.
    """
    overrides = [v for flag, v in zip(args, args[1:], strict=False) if flag == "--set"]
    n = load_params(params_file, overrides).launch.stage(stage).num_machines
    per_node = ('export MACHINE_RANK=$SLURM_PROCID; '
                'export MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1); '
                'exec "$@"')
    return ["srun", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "bash", "-c", per_node, "tulu-stage", sys.executable, "-m", "tulu_lib.launch", stage,
            "--params", str(params_file), "--out", str(out), *args]


def launch(stage: str, params_file: str | Path, out: str | Path, args: list[str] = (),
           cwd: str | Path | None = None) -> dict:
    """Run ``stage`` under ``accelerate launch`` (on several nodes with ``srun`` when
    ``$TULU_REPRO_SRUN`` is 1 and the stage has several machines), echoing its output; its result JSON.

    Raises ``RuntimeError`` with the last lines of output when a process fails; checkpoints
    already in ``out`` stay, so the same call resumes.
    """
    args = list(args)
    overrides = [v for flag, v in zip(args, args[1:], strict=False) if flag == "--set"]
    machines = load_params(params_file, overrides).launch.stage(stage).num_machines if stage in MODULES else 1
    srun = machines > 1 and os.environ.get(SRUN_ENV) == "1"
    cmd = srun_command(stage, params_file, out, args) if srun else command(stage, params_file, out, args)
    print("[tulu-repro] " + " ".join(cmd), flush=True)
    env = {**MALLOC_MMAP_THRESHOLD, **os.environ, "PYTHONUNBUFFERED": "1"}
    result_file(stage, out).unlink(missing_ok=True)  # a stale result must not pass for this run's
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            tail.append(line)
            print(line, end="", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{stage}` under accelerate launch exited {proc.returncode}:\n" + "".join(tail))
    result = read_json(result_file(stage, out), "the stage's result is lost")
    if result is None:
        raise RuntimeError(f"`{stage}` under accelerate launch exited 0 without a readable "
                           f"{result_file(stage, out)} (checkpoints in {out} stay):\n" + "".join(tail))
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m tulu_lib.launch STAGE --params FILE --out DIR [stage args]``: this machine's part.

    Replaces itself with :func:`command` (the stage's own args, ``--set``/``--data``/``--model``,
    pass through). In a Slurm step, a node count other than the stage's is an error here, before
    any rendezvous would wait for machines that never come.
    """
    ap = argparse.ArgumentParser(prog="python -m tulu_lib.launch", description=main.__doc__.splitlines()[0])
    ap.add_argument("stage", choices=tuple(MODULES))
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True)
    known, rest = ap.parse_known_args(argv)
    cmd = command(known.stage, known.params, known.out, rest)
    machines = int(cmd[cmd.index("--num_machines") + 1])
    nodes = os.environ.get("SLURM_STEP_NUM_NODES")
    if nodes and int(nodes) != machines:
        print(f"error: {known.stage} runs on {machines} machine(s) (launch.{known.stage}.num_machines or "
              f"launch.num_machines) but this Slurm step has {nodes} node(s): sbatch --nodes={machines}",
              file=sys.stderr)
        return 2
    print("[tulu-repro] " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
