"""Training stages in several processes on one or more machines: ``accelerate launch`` (torchrun).

The paper trained on nodes of 8 H100s with DeepSpeed ZeRO-3. With more than one process (or
``launch.<stage>.own_process``), a stage's trainer does not run in the caller's process:
:func:`tulu_lib.train.entry.train` writes the stage's resolved params once
(:func:`write_params`) and :func:`launch` starts ``accelerate launch -m tulu_lib.train.worker``
on that file, streams its output and reads back the ``<out>/<stage>_result.json`` the main
process writes. DeepSpeed needs no launcher flag: the stage's DeepSpeed config reaches the
trainer (``TrainingArguments.deepspeed``), which builds accelerate's DeepSpeed plugin itself. On
a machine without CUDA the processes form a gloo group on the CPU (``--multi_gpu`` is
accelerate's switch for "start several workers").

What a stage runs with is :func:`stage_params`: ``launch.<stage>`` over the flat ``launch``
keys, its per-device batch, accumulation and seed over the stage's ``optim`` and the top-level
seed (the reward model runs with ``launch.dpo``'s: it trains on the preference pairs with
``dpo.optim``). The launched processes read exactly those params, so they train as planned.

Several machines (``num_machines`` > 1): each machine runs the same command with its own
``--machine_rank``; machine 0's host is the rendezvous. ``launch.machine_rank`` and
``launch.main_process_ip`` left null come from ``$MACHINE_RANK`` and ``$MAIN_PROCESS_IP``.
``scripts/slurm/train_stage.sbatch`` runs ``python -m tulu_lib.train.launch`` once per node
(:func:`main`); inside a Slurm job with ``TULU_REPRO_SRUN=1`` (``scripts/slurm/workbook.sbatch``),
:func:`launch` itself starts the stage on its nodes with ``srun``, one task per node.

Usage::

    params_file = write_params(stage_params(p, "sft"), "runs/sft")
    result = launch("sft", params_file, "runs/sft", data="runs/sft/launch/data")
    MACHINE_RANK=1 MAIN_PROCESS_IP=node0 python -m tulu_lib.train.launch sft --params P --out O  # one node
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import yaml

from tulu_lib.core import allocator
from tulu_lib.core.io import read_json
from tulu_lib.core.params import LaunchParams, Params, load_params

WORKER = "tulu_lib.train.worker"
SECTION = {"sft": "sft", "dpo": "dpo", "reward_model": "dpo", "rlvr": "rlvr"}  # stage -> launch.<section>
STAGES = tuple(SECTION)
SRUN_ENV = "TULU_REPRO_SRUN"  # "1" inside a Slurm job: launch() starts multi-node stages with srun


def _section(stage: str) -> str:
    if stage not in SECTION:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    return SECTION[stage]


def result_file(stage: str, out: str | Path) -> Path:
    """Where a launched stage's main process writes its result."""
    return Path(out) / f"{stage}_result.json"


def stage_params(params: Params, stage: str) -> Params:
    """``params`` as ``stage`` trains: its launch settings applied (idempotent).

    ``launch`` becomes the stage's flat launch (:meth:`LaunchParams.stage`);
    ``launch.<section>.per_device_batch_size`` / ``gradient_accumulation_steps`` replace
    ``<section>.optim``'s and ``launch.<section>.seed`` the top-level seed.
    """
    name = _section(stage)
    launch = params.launch.stage(name)
    own = getattr(params.launch, name)
    section = getattr(params, name)
    optim = dataclasses.replace(section.optim, **{
        k: getattr(own, k) for k in ("per_device_batch_size", "gradient_accumulation_steps")
        if getattr(own, k) is not None})
    return dataclasses.replace(params, launch=launch, seed=params.seed if own.seed is None else own.seed,
                               **{name: dataclasses.replace(section, optim=optim)})


def write_params(p: Params, out: str | Path) -> Path:
    """``p`` (already :func:`stage_params`) as ``<out>/launch/params.yaml``, the one file every
    launched process reads; written whole or not at all."""
    folder = Path(out) / "launch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    tmp = folder / f".params.yaml.{os.getpid()}"
    tmp.write_text(yaml.safe_dump(p.to_dict(), sort_keys=False))
    tmp.replace(path)
    return path


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


def _stage_args(stage: str, params_file: str | Path, out: str | Path, model: str | None,
                data: str | None) -> list[str]:
    args = [stage, "--params", str(params_file), "--out", str(out)]
    return args + [a for flag, v in (("--model", model), ("--data", data)) if v for a in (flag, str(v))]


def command(stage: str, params_file: str | Path, out: str | Path, model: str | None = None,
            data: str | None = None) -> list[str]:
    """The ``accelerate launch`` command line for ``stage`` on this machine; ``params_file`` holds
    the params the stage trains with (:func:`write_params`)."""
    launch = load_params(params_file).launch.stage(_section(stage))
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
    return [*cmd, "-m", WORKER, *_stage_args(stage, params_file, out, model, data)]


def srun_command(stage: str, params_file: str | Path, out: str | Path, model: str | None = None,
                 data: str | None = None) -> list[str]:
    """``srun``, one task per node of the stage, each running this machine's :func:`command`
    (through :func:`main`). Task ranks are the machine ranks; the step's first host is machine 0."""
    n = load_params(params_file).launch.stage(_section(stage)).num_machines
    per_node = ('export MACHINE_RANK=$SLURM_PROCID; '
                'export MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1); '
                'exec "$@"')
    return ["srun", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "bash", "-c", per_node, "tulu-stage", sys.executable, "-m", "tulu_lib.train.launch",
            *_stage_args(stage, params_file, out, model, data)]


def launch(stage: str, params_file: str | Path, out: str | Path, model: str | None = None,
           data: str | None = None, cwd: str | Path | None = None) -> dict:
    """Run ``stage`` under ``accelerate launch`` (on several nodes with ``srun`` when
    ``$TULU_REPRO_SRUN`` is 1 and the stage has several machines), echoing its output; its result JSON.

    Raises ``RuntimeError`` with the last lines of output when a process fails; checkpoints
    already in ``out`` stay, so the same call resumes.
    """
    machines = load_params(params_file).launch.stage(_section(stage)).num_machines
    srun = machines > 1 and os.environ.get(SRUN_ENV) == "1"
    cmd = (srun_command if srun else command)(stage, params_file, out, model, data)
    print("[tulu-repro] " + " ".join(cmd), flush=True)
    # freed tensors back to the OS (glibc's 1 MiB mmap threshold), not the kernel's kept heap
    env = {**allocator.RETURN_ENV, **allocator.without(os.environ), "PYTHONUNBUFFERED": "1"}
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
    """``python -m tulu_lib.train.launch STAGE --params FILE --out DIR [--set k=v] [--model M] [--data D]``:
    this machine's part of a stage (one per node, as ``scripts/slurm/train_stage.sbatch`` runs it).

    Writes the stage's params (:func:`stage_params` of the file and overrides) once, then replaces
    itself with :func:`command`. In a Slurm step, a node count other than the stage's is an error
    here, before any rendezvous would wait for machines that never come.
    """
    ap = argparse.ArgumentParser(prog="python -m tulu_lib.train.launch",
                                 description=main.__doc__.splitlines()[0])
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--model")
    ap.add_argument("--data")
    args = ap.parse_args(argv)
    p = stage_params(load_params(args.params, args.set), args.stage)
    nodes = os.environ.get("SLURM_STEP_NUM_NODES")
    if nodes and int(nodes) != p.launch.num_machines:
        section = SECTION[args.stage]
        print(f"error: {args.stage} runs on {p.launch.num_machines} machine(s) "
              f"(launch.{section}.num_machines or launch.num_machines) but this Slurm step has "
              f"{nodes} node(s): sbatch --nodes={p.launch.num_machines}", file=sys.stderr)
        return 2
    cmd = command(args.stage, write_params(p, args.out), args.out, args.model, args.data)
    print("[tulu-repro] " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
