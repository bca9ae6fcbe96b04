"""The one way to train a stage: :func:`train` takes a :class:`~tulu_lib.core.params.Params` and a
stage name, applies the stage's launch settings, and trains in this process or, as ``launch``
says (several processes or machines, ``own_process``), under ``accelerate launch`` with the
params written once (:mod:`tulu_lib.train.launch`, :mod:`tulu_lib.train.worker`). Every stage
run, ablation arm and sweep goes through it, so a launched run and one in the kernel cannot
differ in what they train.

Stages (:data:`tulu_lib.train.launch.STAGES`): ``sft`` (SFT mix), ``dpo`` (preference pairs),
``reward_model`` (preference pairs, ``dpo.optim``), ``rlvr`` (prompts with ground truth; PPO or
GRPO by ``rlvr.algorithm``). Checkpoints in ``out`` make a rerun resume.

Usage::

    result = train("sft", p, model=p.model.name, data=rows, out="runs/sft")  # a Dataset or a saved folder
    result = train("rlvr", dataclasses.replace(p, rlvr=arm_rlvr), model=start, data=prompts, out=folder)
    result.checkpoint, result.log_history, result.stats, result.seconds
"""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets

from tulu_lib.core.params import Params
from tulu_lib.train import dpo, grpo, launch, ppo, reward_model, sft
from tulu_lib.train.common import ProgressCallback, TrainResult, curves_named, reporting


def _rows(data: datasets.Dataset | str | Path) -> datasets.Dataset:
    return data if isinstance(data, datasets.Dataset) else datasets.load_from_disk(str(data))


def train(stage: str, p: Params, *, model: str | Path, data: datasets.Dataset | str | Path,
          out: str | Path, curves: str | None = None) -> TrainResult:
    """Train ``stage`` from the checkpoint ``model`` on ``data`` into ``out`` as ``p`` says;
    ``curves`` names its TensorBoard folder (default: ``out`` under the stage's artifacts)."""
    q = launch.stage_params(p, stage)
    out = Path(out)
    with curves_named(curves):  # launched processes inherit the name
        return _train(stage, q, model, data, out)


def _train(stage: str, q: Params, model: str | Path, data: datasets.Dataset | str | Path,
           out: Path) -> TrainResult:
    if not q.launch.launched:
        return train_here(stage, q, str(model), _rows(data), out)
    params_file = launch.write_params(q, out)
    if isinstance(data, datasets.Dataset):
        folder = out / "launch" / "data"
        shutil.rmtree(folder, ignore_errors=True)
        data.save_to_disk(str(folder))
        data = folder
    return TrainResult.from_json(launch.launch(stage, params_file, out, model=str(model), data=str(data)))


def train_here(stage: str, q: Params, model: str, rows: datasets.Dataset, out: Path) -> TrainResult:
    """``stage`` in this process with ``q`` as given (its launch settings already applied); its
    curves go where ``q.logging`` says and its steps to the console line (:mod:`tulu_lib.train.common`)."""
    if stage not in LABELS:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(launch.STAGES)}")
    label = "PPO" if stage == "rlvr" and q.rlvr.algorithm == "ppo" else LABELS[stage]
    kw = dict(seed=q.seed, dtype=q.model.dtype, launch=q.launch, callbacks=(ProgressCallback(label),))
    with reporting(q.logging, q.name, out):
        if stage == "sft":
            return sft.train_sft(model, rows, q.sft, out, **kw)
        if stage == "dpo":
            return dpo.train_dpo(model, rows, q.dpo, out, **kw)
        if stage == "reward_model":
            return reward_model.train_reward_model(model, rows, q.dpo.optim, out, **kw)
        if label == "PPO":
            return ppo.train_ppo(model, rows, q.rlvr, q.rlvr.ppo, out, **kw)
        return grpo.train_grpo(model, rows, q.rlvr, out, **kw)


LABELS = {"sft": "SFT", "dpo": "DPO", "reward_model": "reward model", "rlvr": "GRPO"}
