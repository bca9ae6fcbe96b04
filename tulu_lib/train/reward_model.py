"""Reward model (paper §6: PPO's value model starts from one) on TRL's ``RewardTrainer``.

A reward model is ``AutoModelForSequenceClassification`` with one label: the score head on the
last non-pad token of the chat-formatted prompt + reply. It is trained on preference pairs
(``prompt``, ``chosen``, ``rejected``, each a list of chat messages) with TRL's Bradley–Terry
loss ``−log σ(r_chosen − r_rejected)``, as open-instruct's ``reward_modeling.py`` (release
9b39f557) did, with two of the release's settings: the score head re-initialised with
std ``1/√(hidden + 1)`` (line 305) and Adam's ε = 1e-5 (line 86). The release's 8B RM used
lr 3e-6, 1 epoch, max length 2048, per-device batch 1 × 32 accumulation (docs/tulu3.md).

A model name is a registry name, a local folder or a hub id (``allenai/Llama-3.1-Tulu-3-8B-RM``,
the paper's), resolved by :func:`tulu_lib.core.assets.model_path`.

Usage::

    folder = train_reward_model("tiny-llama", prefs.dataset, params.dpo.optim, out_dir, seed=123).checkpoint
    scores = score_replies(folder, [prompt_messages + [{"role": "assistant", "content": reply}]])
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import datasets

from tulu_lib.core.assets import load_tokenizer, model_path
from tulu_lib.core.checkpoints import last_complete
from tulu_lib.core.params import LaunchParams, OptimParams
from tulu_lib.train.common import TrainResult, parameter_layout, train_and_save, training_args


def load_reward_model(name: str, dtype: str = "float32"):
    """A one-label sequence classifier from a reward model, or from a causal LM (fresh head)."""
    import torch
    from transformers import AutoModelForSequenceClassification


    return AutoModelForSequenceClassification.from_pretrained(model_path(name), num_labels=1,
                                                              dtype=getattr(torch, dtype))


def _init_score_head(model) -> None:
    """The release's ``layer_init(model.score, std=1/sqrt(hidden + 1))`` (reward_modeling.py 305)."""
    import torch
    from transformers.integrations import is_deepspeed_zero3_enabled

    weight = model.score.weight
    gathered = contextlib.nullcontext()
    if is_deepspeed_zero3_enabled():
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters([weight], modifier_rank=0)
    with gathered, torch.no_grad():
        torch.nn.init.normal_(weight, std=1 / math.sqrt(model.config.hidden_size + 1))


def reward_config(optim: OptimParams, output_dir: str | Path, seed: int, adam_epsilon: float = 1e-5,
                  launch: LaunchParams | None = None):
    """TRL's RewardConfig from the optimisation params (dropout off, as the release)."""
    from trl import RewardConfig

    return RewardConfig(**training_args(optim, output_dir, seed, launch), max_length=optim.max_length,
                        adam_epsilon=adam_epsilon, disable_dropout=True, disable_tqdm=False)


def train_reward_model(model: str, dataset: datasets.Dataset, optim: OptimParams, output_dir: str | Path, *,
                       seed: int, dtype: str = "float32", adam_epsilon: float = 1e-5,
                       launch: LaunchParams | None = None, resume: bool = True, callbacks=()) -> TrainResult:
    """Train a reward model from ``model`` on preference pairs (its folder: ``result.checkpoint``,
    ``output_dir/final``).

    Resumes from the newest checkpoint in ``output_dir``. Pairs longer than ``optim.max_length``
    (chosen or rejected) are dropped by TRL."""
    from transformers import set_seed
    from trl import RewardTrainer


    output_dir = Path(output_dir)
    tokenizer = load_tokenizer(model_path(model))
    config = reward_config(optim, output_dir, seed, adam_epsilon, launch)  # before the model: ZeRO-3 loading
    set_seed(seed)
    reward_model = load_reward_model(model, dtype)
    _init_score_head(reward_model)
    last = last_complete(output_dir) if resume and output_dir.is_dir() else None
    trainer = RewardTrainer(model=reward_model, args=config, processing_class=tokenizer,
                            train_dataset=dataset.select_columns(["prompt", "chosen", "rejected"]),
                            callbacks=list(callbacks))
    loaded = parameter_layout(reward_model)  # under ZeRO-3: partitioned at load, never whole
    result = train_and_save(trainer, output_dir, last, {"loaded": loaded})  # tokenizer: the processing class
    return dataclasses.replace(result, stats={**result.stats, "global_step": trainer.state.global_step})


def score_replies(reward_model: str, conversations: Sequence[list[dict]], batch_size: int = 8,
                  dtype: str = "float32") -> list[float]:
    """The reward model's score of each conversation (prompt messages + the assistant reply)."""
    import torch


    model = load_reward_model(reward_model, dtype).eval()
    tokenizer = load_tokenizer(reward_model)
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              padding_side="right", add_special_tokens=False)
            scores.extend(model(**batch).logits[:, 0].float().tolist())
    return scores
