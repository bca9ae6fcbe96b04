"""What every trainer shares: the training-argument fields the params set, and the result a
training run returns (to its caller, or as JSON from a launched process).

Training curves: inside :func:`reporting` (what :func:`tulu_lib.train.entry.train_here` wraps every
run in), :func:`training_args` reports to ``logging.report_to``, TensorBoard's event files go to
``$TULU_TENSORBOARD_DIR/<arm>`` (the notebook's :func:`~tulu_lib.workbook.stages.open_stage` sets it
to ``reports/<run>/logs/tensorboard/<stage>``; ``<arm>`` is the output folder relative to
``$TULU_STAGE_DIR``), else ``<out>/tensorboard``. Outside it (a trainer called directly, a test),
nothing is reported.

Usage::

    config = SFTConfig(**training_args(params.sft.optim, out, seed, launch), max_length=...)
    result = TrainResult(checkpoint, trainer.state.log_history, stats, seconds)
    TrainResult.from_json(result.to_json()) == result
    with reporting(p.logging, p.name, out): trainer = ...; trainer.train()
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback

from tulu_lib.core import progress
from tulu_lib.core.params import LaunchParams, LoggingParams, OptimParams
from tulu_lib.core.progress import STAGE_DIR_ENV, TENSORBOARD_DIR_ENV, scoped_environ


@dataclass(frozen=True)
class _Reporting:
    report_to: list[str]
    run_name: str
    project: str


_REPORTING: contextvars.ContextVar[_Reporting | None] = contextvars.ContextVar("reporting", default=None)


CURVES_NAME_ENV = "TULU_CURVES_NAME"


@contextlib.contextmanager
def curves_named(name: str | None) -> Iterator[None]:
    """Runs trained inside write their curves to ``<stage's folder>/<name>`` (an ablation arm:
    ``<ablation>/<label>``) rather than a folder named after their output folder."""
    clean = None if name is None else re.sub(r"[^A-Za-z0-9._/=+-]+", "_", name).strip("/")
    with scoped_environ({CURVES_NAME_ENV: clean}):
        yield


def curves_dir(out: str | Path) -> Path:
    """Where the TensorBoard event files of a run writing to ``out`` go (see the module doc)."""
    out = Path(out).resolve()
    root = os.environ.get(TENSORBOARD_DIR_ENV)
    if not root:
        return out / "tensorboard"
    if os.environ.get(CURVES_NAME_ENV):
        return Path(root) / os.environ[CURVES_NAME_ENV]
    base = os.environ.get(STAGE_DIR_ENV)
    arm = out.relative_to(Path(base).resolve()) if base and out.is_relative_to(Path(base).resolve()) \
        else Path(out.name)
    return Path(root) / arm


@contextlib.contextmanager
def reporting(logging: LoggingParams, name: str, out: str | Path) -> Iterator[Path]:
    """Trainers built inside report to ``logging.report_to``; yields the TensorBoard folder."""
    from transformers.integrations import get_available_reporting_integrations

    missing = sorted(set(logging.report_to) - set(get_available_reporting_integrations()))
    if missing:
        raise RuntimeError(f"logging.report_to names {', '.join(missing)}, which is not installed here "
                           f"(pip install {' '.join(missing)}), or set logging.report_to to [tensorboard]")
    folder = curves_dir(out)
    root = os.environ.get(TENSORBOARD_DIR_ENV)
    run_name = f"{name}/{folder.relative_to(Path(root).parent).as_posix() if root else Path(out).name}"
    token = _REPORTING.set(_Reporting(list(logging.report_to), run_name, logging.project))
    try:
        project = {k: os.environ.get(k, logging.project) for k in ("WANDB_PROJECT", "MLFLOW_EXPERIMENT_NAME")}
        # transformers 5 takes the event files' folder only from TENSORBOARD_LOGGING_DIR
        with scoped_environ({"TENSORBOARD_LOGGING_DIR": str(folder), **project}):
            yield folder
    finally:
        _REPORTING.reset(token)


class ProgressCallback(TrainerCallback):
    """Reports ``<label> step k/n`` and the last reward or loss to :mod:`tulu_lib.core.progress`
    (the console line of ``tulu-repro run``); rank 0 only, nothing else changes."""

    KEYS = ("reward", "loss")

    def __init__(self, label: str):
        self.label = label
        self.metrics: dict[str, float] = {}

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            progress.report(f"{self.label} step", state.global_step, state.max_steps, **self.metrics)

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in self.KEYS:
            if isinstance((logs or {}).get(key), int | float):
                self.metrics = {key: logs[key]}
                break
        self.on_step_end(args, state, control)


@dataclass
class TrainResult:
    """One training run: its final checkpoint folder (model + tokenizer), TRL's log history,
    the trainer's own counts (``stats``: steps, data dropped, resume point, ...) and seconds."""

    checkpoint: Path
    log_history: list[dict]
    stats: dict
    seconds: float

    def to_json(self) -> dict:
        return {**asdict(self), "checkpoint": str(self.checkpoint)}

    @classmethod
    def from_json(cls, d: dict) -> TrainResult:
        return cls(Path(d["checkpoint"]), d["log_history"], d["stats"], d["seconds"])


def parameter_layout(model) -> dict:
    """How ``model``'s parameters are held: how many there are and how many elements in all, how
    many are ZeRO-3 partitions (``ds_numel``: the whole size), and how many elements each process
    holds (``held``, by rank). Loaded under ZeRO-3 (``zero.Init``), no process holds a whole one."""
    params = list(model.parameters())
    held = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params)
    by_rank = [held]
    if torch.distributed.is_initialized():  # every rank's share (a collective: every rank calls this)
        by_rank = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(by_rank, held)
    return {"parameters": len(params), "partitioned": sum(hasattr(p, "ds_numel") for p in params),
            "elements": sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in params),
            "held": by_rank}


def train_resuming(trainer, last: str | None):
    """``trainer.train(resume_from_checkpoint=last)`` that ends at ``max_steps`` however it resumes.

    transformers checks ``max_steps`` only after an optimizer step: resumed from a checkpoint at
    ``max_steps`` (a run killed after its last checkpoint, before its final save) in the middle of
    an epoch, it trains one step more (``global_step`` max_steps + 1, other weights). Here an epoch
    begun at ``max_steps`` trains nothing: the checkpoint's weights and state are the result.
    Usage: ``train_resuming(trainer, last_complete(output_dir))``."""
    run_epoch = trainer._run_epoch  # transformers' loop body (5.x): an AttributeError if it is renamed

    def run_epoch_unless_done(*args, **kwargs):
        if 0 < trainer.state.max_steps <= trainer.state.global_step:
            trainer.control.should_training_stop = True
            return None
        return run_epoch(*args, **kwargs)

    trainer._run_epoch = run_epoch_unless_done
    try:
        return trainer.train(resume_from_checkpoint=last)
    finally:
        del trainer._run_epoch  # the class's own again


def train_and_save(trainer, output_dir: Path, last: str | None, stats: dict, tokenizer=None) -> TrainResult:
    """:func:`train_resuming` from the checkpoint ``last``, then the final model (and ``tokenizer``)
    saved to ``output_dir/final``; its result, ``stats`` with ``resumed_from`` and ``global_step``."""
    started = time.time()
    train_resuming(trainer, last)
    final = Path(output_dir) / "final"
    trainer.save_model(str(final))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(final))
    seconds = time.time() - started
    stats = {**stats, "resumed_from": last, "global_step": trainer.state.global_step}
    return TrainResult(final, trainer.state.log_history, stats, seconds)


def training_args(o: OptimParams, output_dir: str | Path, seed: int, launch: LaunchParams | None) -> dict:
    """The ``TrainingArguments`` fields every stage sets from its ``optim`` section and launch.

    bf16 and gradient checkpointing are set explicitly (TRL 1.16 turns both on when left unset);
    a ``warmup_steps`` float below 1 is a ratio of the steps (transformers 5); every checkpoint
    keeps its optimizer state, so a rerun resumes; the DeepSpeed config (when the launch names
    one) reaches the trainer, which builds accelerate's DeepSpeed plugin from it."""
    return dict(
        output_dir=str(output_dir), seed=seed, **_reporting_args(),
        learning_rate=o.learning_rate, lr_scheduler_type=o.lr_scheduler, warmup_steps=o.warmup_ratio,
        num_train_epochs=o.epochs, max_steps=o.max_steps,
        per_device_train_batch_size=o.per_device_batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps,
        weight_decay=o.weight_decay, max_grad_norm=o.max_grad_norm,
        bf16=o.bf16, gradient_checkpointing=o.gradient_checkpointing,
        logging_steps=o.logging_steps, save_steps=o.save_steps, save_only_model=False,
        deepspeed=launch.deepspeed if launch else None,
        ddp_timeout=launch.collective_timeout_s if launch else 1800,
        # without CUDA: train on the CPU; launched processes form a gloo group (DeepSpeed's
        # communication over it: tulu_lib.train.worker.deepspeed_environment)
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available())


def _reporting_args() -> dict:
    r = _REPORTING.get()
    return dict(report_to=r.report_to, run_name=r.run_name, project=r.project) if r else dict(report_to=[])
