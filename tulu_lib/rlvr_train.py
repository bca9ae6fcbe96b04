"""One RLVR run by its algorithm — PPO (:mod:`tulu_lib.ppo`) or GRPO (:mod:`tulu_lib.rlvr`) —
in this process or, as ``launch.rlvr`` says, under ``accelerate launch`` (:mod:`tulu_lib.launch`).

The paper's RLVR ran on 7 learner GPUs (``launch.rlvr.num_processes``); on one process,
``launch.rlvr.own_process: true`` still trains in a process of its own. That is what the CPU
params with several RLVR runs use: one notebook kernel that trained the stage's run and then
ablation arms, each with its policy, reference, value model, optimizer and TRL's colocated vLLM
engine, kept what it had allocated (measured: 17.4 GB resident between PPO steps, killed at
24 GB in the first arm); a run's own process returns all of it when the run ends. The launched
run reads the resolved params (written to ``<out>/launch/params.yaml``, the run's RLVR settings
in its ``rlvr`` section), the prompts (``<out>/launch/prompts``) and the starting checkpoint,
and writes ``<out>/rlvr_result.json``; checkpoints in ``<out>`` make a rerun resume.

Usage::

    result = train(start, rows, params, out_dir)                 # as params.launch.rlvr says
    result = train(start, rows, params, out_dir, arm.rlvr, arm.ppo)  # an ablation arm's settings
    accelerate launch -m tulu_lib.rlvr_train --params P --model START --data ROWS --out OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import datasets
import pandas as pd
import yaml

from tulu_lib import rlvr
from tulu_lib.params import Params, PPOParams, RLVRParams, load_params


def train(start: str, rows: datasets.Dataset, p: Params, out: str | Path,
          rlvr_params: RLVRParams | None = None, ppo_settings: PPOParams | None = None) -> rlvr.RLVRResult:
    """One RLVR run with ``rlvr_params`` (default ``p.rlvr``; PPO with ``ppo_settings``, default
    its ``ppo``) at ``launch.rlvr``'s batch, accumulation and seed (the release's): here, or
    under ``accelerate launch`` when ``launch.rlvr`` has several processes or ``own_process``."""
    from tulu_lib.launch import launch, stage_params

    section = rlvr_params or p.rlvr
    p = dataclasses.replace(p, rlvr=dataclasses.replace(section, ppo=ppo_settings or section.ppo))
    if not stage_params(p, "rlvr").launch.launched:
        return train_here(start, rows, p, out)
    out, folder = Path(out), Path(out) / "launch"
    folder.mkdir(parents=True, exist_ok=True)
    params_file = folder / "params.yaml"
    params_file.write_text(yaml.safe_dump(p.to_dict(), sort_keys=False))
    prompts = folder / "prompts"
    shutil.rmtree(prompts, ignore_errors=True)
    rows.save_to_disk(str(prompts))
    d = launch("rlvr", params_file, out, ["--model", str(start), "--data", str(prompts)])
    return rlvr.RLVRResult(Path(d["checkpoint"]), d["log_history"], d["seconds"], d["prompts_dropped"])


def train_here(start: str, rows: datasets.Dataset, p: Params, out: str | Path) -> rlvr.RLVRResult:
    """``p.rlvr``'s run in this process, by its algorithm."""
    from tulu_lib import ppo
    from tulu_lib.launch import stage_params

    q = stage_params(p, "rlvr")
    common = dict(seed=q.seed, dtype=p.model.dtype, launch=q.launch)
    if q.rlvr.algorithm == "ppo":
        return ppo.train_ppo(start, rows, q.rlvr, q.rlvr.ppo, out, **common)
    return rlvr.train_rlvr(start, rows, q.rlvr, out, **common)


def logs_table(result: rlvr.RLVRResult) -> pd.DataFrame:
    """The steps of a run's TRL log history (the rows with a loss or a KL)."""
    return pd.DataFrame([h for h in result.log_history if "loss" in h or "kl" in h])


def main(argv: list[str] | None = None) -> int:
    """``[accelerate launch ...] -m tulu_lib.rlvr_train --params F --model START --data ROWS --out DIR``."""
    from accelerate import PartialState

    from tulu_lib.launch import result_file
    from tulu_lib.workbook import write_json

    ap = argparse.ArgumentParser(prog="python -m tulu_lib.rlvr_train", description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help="params YAML file (its rlvr section is the run's)")
    ap.add_argument("--model", required=True, help="starting checkpoint (folder or model name)")
    ap.add_argument("--data", required=True, help="RLVR prompts saved with save_to_disk")
    ap.add_argument("--out", required=True, help="output folder (checkpoints, final/, rlvr_result.json)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    args = ap.parse_args(argv)
    p = load_params(args.params, args.set)
    result = train_here(args.model, datasets.load_from_disk(args.data), p, args.out)
    if PartialState().is_main_process:
        summary = {"checkpoint": str(result.checkpoint), "seconds": round(result.seconds, 1),
                   "prompts_dropped": result.prompts_dropped, "log_history": result.log_history}
        write_json(result_file("rlvr", args.out), summary, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
