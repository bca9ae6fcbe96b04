"""What every trainer shares: the training-argument fields the params set, and the result a
training run returns (to its caller, or as JSON from a launched process).

Usage::

    config = SFTConfig(**training_args(params.sft.optim, out, seed, launch), max_length=...)
    result = TrainResult(checkpoint, trainer.state.log_history, stats, seconds)
    TrainResult.from_json(result.to_json()) == result
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tulu_lib.core.params import LaunchParams, OptimParams


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


def train_and_save(trainer, output_dir: Path, last: str | None, stats: dict, tokenizer=None) -> TrainResult:
    """``trainer.train()`` (resuming from the checkpoint ``last``), then the final model (and
    ``tokenizer``) saved to ``output_dir/final``; its result, ``stats`` with ``resumed_from``."""
    started = time.time()
    trainer.train(resume_from_checkpoint=last)
    final = Path(output_dir) / "final"
    trainer.save_model(str(final))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(final))
    seconds = time.time() - started
    return TrainResult(final, trainer.state.log_history, {**stats, "resumed_from": last}, seconds)


def training_args(o: OptimParams, output_dir: str | Path, seed: int, launch: LaunchParams | None) -> dict:
    """The ``TrainingArguments`` fields every stage sets from its ``optim`` section and launch.

    bf16 and gradient checkpointing are set explicitly (TRL 1.16 turns both on when left unset);
    a ``warmup_steps`` float below 1 is a ratio of the steps (transformers 5); every checkpoint
    keeps its optimizer state, so a rerun resumes; the DeepSpeed config (when the launch names
    one) reaches the trainer, which builds accelerate's DeepSpeed plugin from it."""
    return dict(
        output_dir=str(output_dir), seed=seed, report_to=[],
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
