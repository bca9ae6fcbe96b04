"""Supervised finetuning (paper §4) on TRL's ``SFTTrainer``, with the paper's sum loss.

What this adds to TRL, each in one place:

* :func:`sft_config` — TRL's config from ``params.sft`` (bf16 and gradient checkpointing set
  explicitly: TRL 1.16 turns both on by default; loss on assistant replies only);
* :func:`tokenize_sft` — the Tülu-template tokenization with over-length conversations
  truncated or dropped per ``sft.truncation`` and *counted*;
* :class:`TuluSFTTrainer` — ``sft.loss``: ``sum`` (open-instruct's "batch aggregation")
  or ``mean`` (per-micro-batch token mean, the variant the paper found harmful);
* :class:`PackingCollator` — ``sft.packing``: a micro-batch's conversations share rows,
  each attending only to itself, so padding turns into throughput on CPU as well;
* :func:`train_sft` — all of it, resuming from the newest ``checkpoint-*`` in the output folder.

A stage trains through :func:`tulu_lib.train.entry.train` (here or in several processes).

Usage::

    result = train_sft("tiny-llama", rows, params.sft, "out/sft", seed=123)
    result.checkpoint, result.stats["tokens_per_second"]
    tulu-repro launch sft --params params/smoke.yaml --out out/sft --set launch.num_processes=2
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from trl import SFTConfig, SFTTrainer

from tulu_lib.core.assets import load_tokenizer, model_path
from tulu_lib.core.chat_template import IGNORE_INDEX, tokenize_conversation
from tulu_lib.core.checkpoints import last_complete
from tulu_lib.core.params import LaunchParams, SFTParams
from tulu_lib.train.common import TrainResult, parameter_layout, train_resuming, training_args


def sft_config(params: SFTParams, output_dir: str | Path, seed: int,
               launch: LaunchParams | None = None) -> SFTConfig:
    """TRL's SFTConfig from params; effective batch = per_device × accumulation × processes."""
    return SFTConfig(
        **training_args(params.optim, output_dir, seed, launch),
        max_length=params.optim.max_length, truncation_mode="keep_start",
        assistant_only_loss=True,  # the Tülu template marks each reply + eos with {% generation %}
        packing=False,  # TRL's packing flattens a batch into one row; PackingCollator packs instead
        include_num_input_tokens_seen="non_padding", save_strategy="steps",
        save_total_limit=2,  # the newest checkpoint, and one before it in case that write was cut
        ddp_find_unused_parameters=False)  # every parameter of a causal LM gets a gradient


# ----------------------------------------------------------------------------- data


def tokenize_sft(dataset: datasets.Dataset, tokenizer, max_length: int,
                 truncation: str) -> tuple[datasets.Dataset, dict]:
    """``input_ids``/``labels`` per conversation, over-length ones truncated or dropped, counted.

    Labels are -100 outside the assistant replies (:func:`tokenize_conversation`, the same
    ``{% generation %}`` mask TRL's ``assistant_only_loss`` builds). ``truncate`` keeps the
    first ``max_length`` tokens and drops a conversation with no reply token left (as
    open-instruct does); ``drop`` drops every over-length one. The ``messages`` column is
    kept so TRL still sees a conversational dataset (and checks the template).
    """
    def encode(row):
        ids, labels = tokenize_conversation(tokenizer, row["messages"])
        over_length = len(ids) > max_length
        ids, labels = ids[:max_length], labels[:max_length]
        return {"input_ids": ids, "labels": labels, "over_length": over_length,
                "has_loss": any(t != IGNORE_INDEX for t in labels)}

    encoded = dataset.map(encode, desc="Tokenizing SFT conversations")
    over, has_loss = encoded["over_length"], encoded["has_loss"]
    keep = [loss and not (long and truncation == "drop") for long, loss in zip(over, has_loss, strict=True)]
    stats = {"examples": len(encoded), "kept": sum(keep), "over_length": sum(over),
             "truncated": sum(k and long for k, long in zip(keep, over, strict=True)),
             "dropped": len(keep) - sum(keep)}
    kept = encoded.select([i for i, k in enumerate(keep) if k]).remove_columns(["over_length", "has_loss"])
    return kept, stats


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of ``lengths`` grouped into rows of at most ``capacity``."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if lengths[i] <= free), None)
        if row is None:
            rows.append([i])
            room.append(capacity - lengths[i])
        else:
            rows[row].append(i)
            room[row] -= lengths[i]
    return rows


@dataclass
class PackingCollator:
    """Packs a micro-batch's conversations into as few rows as possible; attention stays per example.

    Why not TRL's ``packing=True``: its ``bfd`` strategy packs the whole dataset into rows
    and then *flattens* each micro-batch into a single padding-free row (meant for
    FlashAttention's varlen kernels). On CPU, sdpa computes that row's full (masked)
    attention, so it ran no faster than padding (1.00×). Here the micro-batch keeps its
    conversations — so the optimizer batch, and the gradient, are exactly the padded
    ones — and only the padding goes: first-fit-decreasing rows no longer than the
    batch's longest conversation (never more work than padding). ``position_ids`` restart
    at 0 for each conversation; given no 2-D attention mask and no KV cache
    (``use_cache=False``: with a cache the check is skipped and examples silently attend
    to each other), transformers 5 builds a block-diagonal causal mask from them
    (``find_packed_sequence_indices``), which sdpa on CPU honours exactly (tested).
    ``attention_mask`` is still returned to count non-padding tokens;
    :class:`TuluSFTTrainer` withholds it from the model.
    """

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(e["input_ids"]) for e in examples]
        rows = pack_rows(lengths, max(lengths))
        width = max(sum(lengths[i] for i in row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        position_ids = torch.zeros_like(input_ids)
        attention_mask = torch.zeros_like(input_ids)
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                end = start + lengths[i]
                input_ids[r, start:end] = torch.tensor(examples[i]["input_ids"])
                # a conversation's first token is never predicted from the one packed before it
                labels[r, start + 1:end] = torch.tensor(examples[i]["labels"][1:])
                position_ids[r, start:end] = torch.arange(lengths[i])
                attention_mask[r, start:end] = 1
                start = end
            position_ids[r, start:] = torch.arange(width - start)  # the padding: a block of its own
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
                "attention_mask": attention_mask}


# ----------------------------------------------------------------------------- loss


class TuluSFTTrainer(SFTTrainer):
    """SFTTrainer with the loss aggregation of ``sft.loss``.

    TRL has neither aggregation: its loss divides the summed token NLL by
    ``num_items_in_batch``, the trained tokens of the whole optimizer batch (all
    accumulation steps and processes) — a token mean over the global batch, each token
    weighing 1/N_global, N_global changing from step to step.

    * ``sum`` (the paper, open-instruct ``--reduce_loss sum``): token losses are summed;
      every token of every step weighs the same constant, so the gradient does not
      depend on how the batch is split into micro-batches, accumulation steps and
      processes. The constant is 1/(per_device_batch_size × accumulation steps) here and
      DDP's average over processes completes 1/effective batch: it leaves the tokens'
      relative weights alone, makes the logged loss the summed NLL per conversation, and
      is open-instruct's own scaling at the paper's per_device_batch_size 1 (accelerate
      divides by the accumulation steps, DDP averages over processes).
    * ``mean``: each micro-batch's token mean, divided by the accumulation steps — a token
      weighs 1/(its micro-batch's token count).

    Both losses arrive already scaled for accumulation (``loss_is_scaled_for_ga``). The
    per-token NLL is logged as ``nll_per_token``, comparable across the two. The loss is
    taken from the full logits, not TRL's fused LM head: that head saves memory by
    recomputing the vocabulary projection in the backward pass, which made a step ~2×
    slower on CPU, where that projection dominates small models.
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args, loss: str = "sum", **kwargs):
        if loss not in ("sum", "mean"):
            raise ValueError(f"loss must be 'sum' or 'mean', got {loss!r}")
        super().__init__(*args, **kwargs)
        self.loss_aggregation = loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        packed = "position_ids" in inputs  # the model derives per-example masks from position_ids
        model_inputs = {k: v for k, v in inputs.items()
                        if k != "labels" and not (packed and k == "attention_mask")}
        outputs = model(**model_inputs, use_cache=False)  # a cache would disable packed-sequence masks
        # position t predicts label t+1; shifting the labels (not the logits) spares a copy of the logits
        labels = F.pad(inputs["labels"][:, 1:], (0, 1), value=IGNORE_INDEX)
        nll = F.cross_entropy(outputs.logits.flatten(0, 1).float(), labels.flatten(),
                              ignore_index=IGNORE_INDEX, reduction="sum")
        tokens = (labels != IGNORE_INDEX).sum()
        totals = self.accelerator.gather(torch.stack([nll.detach(), tokens.to(nll.dtype)])).view(-1, 2).sum(0)
        self._metrics["train"]["nll_per_token"].append((totals[0] / totals[1].clamp(min=1)).item())
        if self.loss_aggregation == "sum":
            loss = nll / (self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps)
        else:
            loss = nll / (tokens.clamp(min=1) * self.current_gradient_accumulation_steps)
        return (loss, outputs) if return_outputs else loss


# ----------------------------------------------------------------------------- training


def train_sft(model: str, dataset: datasets.Dataset, params: SFTParams, output_dir: str | Path, *,
              seed: int, dtype: str = "float32", launch: LaunchParams | None = None,
              resume: bool = True, callbacks=()) -> TrainResult:
    """SFT on ``messages`` rows; resumes from the newest ``checkpoint-*`` in ``output_dir``.

    The config is built before the model: with a ZeRO-3 config that registers DeepSpeed, so
    ``from_pretrained`` loads the weights partitioned across ranks (transformers' ``zero.Init``).
    """
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import TrainerState

    output_dir = Path(output_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    rows, stats = tokenize_sft(dataset, tokenizer, params.optim.max_length, params.truncation)
    config = sft_config(params, output_dir, seed, launch)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    stats["loaded"] = parameter_layout(policy)  # under ZeRO-3: partitioned at load, never whole
    trainer = TuluSFTTrainer(
        model=policy, args=config, processing_class=tokenizer,
        train_dataset=rows, data_collator=PackingCollator(tokenizer.pad_token_id) if params.packing else None,
        callbacks=list(callbacks), loss=params.loss)
    last = last_complete(output_dir) if resume and output_dir.is_dir() else None
    seen = TrainerState.load_from_json(f"{last}/trainer_state.json").num_input_tokens_seen if last else 0
    started = time.perf_counter()
    train_resuming(trainer, last)  # ends at max_steps even when resumed from a checkpoint there
    seconds = time.perf_counter() - started
    final = output_dir / "final"
    trainer.save_model(str(final))  # the tokenizer too (it is the processing class)
    tokens = trainer.state.num_input_tokens_seen - seen  # this session's
    args = trainer.args
    stats.update(loss=params.loss, packing=params.packing, resumed_from=last, steps=trainer.state.global_step,
                 effective_batch=args.per_device_train_batch_size * args.gradient_accumulation_steps
                 * args.world_size, trained_tokens=tokens, seconds=round(seconds, 2),
                 tokens_per_second=round(tokens / seconds, 1))
    return TrainResult(final, trainer.state.log_history, stats, seconds)
