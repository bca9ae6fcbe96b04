"""One process of a launched training stage: what ``accelerate launch`` starts on every rank.

Reads the params :func:`tulu_lib.train.entry.train` wrote (the stage's launch settings already
applied), the starting checkpoint and the rows (a ``save_to_disk`` folder; without ``--data``,
the params' own data section), trains with :func:`tulu_lib.train.entry.train_here` and, on the
main process, writes ``<out>/<stage>_result.json``.

Usage::

    accelerate launch --num_processes 2 --multi_gpu -m tulu_lib.train.worker sft \\
        --params runs/sft/launch/params.yaml --out runs/sft [--model M] [--data D]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import datasets
import torch

from tulu_lib.core.io import write_json
from tulu_lib.core.params import load_params
from tulu_lib.data import loader
from tulu_lib.train import entry, launch

DATA = {"sft": "sft", "dpo": "preferences", "reward_model": "preferences", "rlvr": "rlvr"}  # rows by stage


def deepspeed_environment() -> None:
    """What DeepSpeed needs before any trainer config is built. One process gets the rendezvous
    variables a multi-process launcher sets (without them DeepSpeed looks for MPI). Without CUDA,
    DeepSpeed's communication starts here, over gloo: a CPU trainer runs with ``use_cpu``, accelerate
    then forms the gloo group without starting DeepSpeed's communication, and ``zero.Init`` would
    count one process and refuse the batch sizes the trainer computed for all of them."""
    import socket

    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                        ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(name, value)
    if not torch.cuda.is_available():
        import deepspeed  # lazy: DeepSpeed is needed only by a stage whose launch names a config

        deepspeed.init_distributed(dist_backend="gloo")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tulu_lib.train.worker", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=launch.STAGES)
    ap.add_argument("--params", required=True, help="the params file the stage trains with")
    ap.add_argument("--out", required=True, help="output folder (checkpoints, final/, <stage>_result.json)")
    ap.add_argument("--model", help="starting checkpoint (default: the params' model)")
    ap.add_argument("--data", help="rows saved with save_to_disk (default: the params' data section)")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    processes, main_process = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)) == 0
    planned = p.launch.num_machines * p.launch.num_processes
    if processes != planned and main_process:
        print(f"[tulu-repro] warning: {processes} process(es) running, params say {p.launch.num_machines} "
              f"machine(s) x {p.launch.num_processes} (start them with `tulu-repro launch {args.stage}`)",
              file=sys.stderr)
    if p.launch.deepspeed:
        deepspeed_environment()
    kind = DATA[args.stage]
    rows = (datasets.load_from_disk(args.data) if args.data
            else loader.load(kind, getattr(p.data, kind), seed=p.seed).dataset)
    result = entry.train_here(args.stage, p, args.model or p.model.name, rows, Path(args.out))
    if main_process:
        write_json(launch.result_file(args.stage, args.out), result.to_json(), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
