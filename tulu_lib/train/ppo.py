"""PPO for RLVR (paper §6, Table 21) on TRL's ``GRPOTrainer``, as open-instruct's release ran it.

Policy, frozen reference, and a value model (a one-label sequence classifier read at every token,
from a reward model or from the policy). Per rollout: reward −β·k1 (``logp_policy − logp_ref``) on
each reply token plus the reply's score (α if verified, the non-EOS penalty if cut off, plus
``reward_model_multiplier`` × the reward model's score); GAE (γ, λ); advantages whitened over the
process's rollout batch; then ``ppo_epochs`` freshly shuffled passes with the clipped surrogate and
the clipped value loss (``vf_coef``).

Conventions of the release (``open_instruct/ppo_vllm_thread_ray_gtrl.py`` at 9b39f557, "release N"
= its line N), quirks included: the score sits one token *past* the reply's EOS, or on the last token
when the reply fills the response length (1163, 1185-1186); that extra position's value (the value
head on the EOS) is kept and trained (``padding_mask_p1``, 1164-1165, 1247) while the policy loss
and the whitening stop at the EOS (1206, 1262); the non-EOS penalty *replaces* the whole score,
reward-model part included (1153-1156); whitening uses the unbiased masked variance (452-485);
both losses are token means over each micro-batch (1247, 1262).

Generation (transformers or colocated vLLM), the reference model, the reward functions
(:mod:`tulu_lib.train.rlvr`'s verifiers; the reward model as a TRL reward model), batching,
``num_iterations`` (= PPO epochs), DeepSpeed/DDP, checkpoints and logging are TRL's. The value model
is the policy's submodule ``value_model``, so one DeepSpeed engine and one schedule hold both (the
release gave the value model the policy's learning rate and schedule). With ``ppo.optimizers:
separate`` (the default) they are optimized as the release's two engines were: AdamW with weight
decay on every parameter, each model's gradients clipped by its own norm (:func:`clip_each_group`;
under ZeRO-3 :func:`clip_each_group_under_zero3`); ``joint`` clips both by one norm. Checkpoints write
it to ``value_model/`` beside the policy, plus the rollout in progress (``ppo_rollout.rank<i>.pt``),
so resuming in the middle of a rollout's epochs ends where an uninterrupted run does.

Not as in the release: rollouts are synchronous unless ``rlvr.async_rollouts`` (its ``async_mode``,
244, on by default there: :func:`tulu_lib.train.grpo._rollout_trainer`); float32 maths (its bf16
models made KL, rewards and GAE bf16); the reward model scores the re-rendered chat text (TRL's
reward-model path), not the generated ids.

Usage::

    result = train_ppo(dpo_checkpoint, rlvr_rows, params.rlvr, params.rlvr.ppo, out, seed=3)
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import datasets
import torch

from tulu_lib.core.assets import load_tokenizer, model_path
from tulu_lib.core.checkpoints import last_complete
from tulu_lib.core.params import LaunchParams, PPOParams, RLVRParams
from tulu_lib.train import grpo, rlvr
from tulu_lib.train.common import TrainResult, parameter_layout, train_and_save
from tulu_lib.train.reward_model import load_reward_model

VALUE = "value_model"  # the policy's submodule, and its folder in a checkpoint
ROLLOUT = "ppo_rollout.rank{rank}.pt"  # in each checkpoint, one file per process


# --- the maths (pure functions on (replies, tokens) tensors) --------------------------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum()


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Release ``masked_whiten`` (452-485): ``(x − mean)·rsqrt(var + 1e-8)`` with the masked mean and
    the unbiased (Bessel-corrected) masked variance; ``shift_mean=False`` adds the mean back."""
    mask = mask.to(x.dtype)
    n = mask.sum()
    if n < 2:
        raise ValueError("whitening needs at least 2 tokens (the release raises at 0, divides by 0 at 1)")
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def k1(logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``logp_policy − logp_ref`` (release ``kl1``, 1169), 0 off the reply."""
    return (logps - ref_logps) * mask


def reply_end(mask: torch.Tensor, max_length: int) -> torch.Tensor:
    """Where each reply's score goes: one past its last token, or the last token when the reply
    fills ``max_length`` (release 1163, 1185: ``sequence_lengths_p1`` if it fits, else the length)."""
    return torch.clamp(mask.sum(1).long(), max=max_length - 1)


def value_mask(mask: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B, T+1): the positions whose value is kept and trained, up to :func:`reply_end`
    (release ``~padding_mask_p1``, 1164)."""
    positions = torch.arange(mask.size(1) + 1, device=mask.device)
    return (positions[None, :] <= reply_end(mask, max_length)[:, None]).to(torch.float32)


def non_eos_penalized(score: torch.Tensor, finished: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """A reply cut off before its EOS scores ``penalty`` whatever else it earned (release 1153-1156)."""
    return score if penalty is None else torch.where(finished, score, torch.full_like(score, penalty))


def per_token_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float,
                      max_length: int) -> torch.Tensor:
    """(B, T+1) rewards: ``−β·kl`` on each reply token, plus the score at :func:`reply_end`
    (release 1180-1186); column T exists for a reply one token short of the widest."""
    rewards = torch.nn.functional.pad(-beta * kl * mask, (0, 1))
    rewards[torch.arange(len(score), device=score.device), reply_end(mask, max_length)] += score
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation right to left over every column (release 1196-1205):
    ``δ_t = r_t + γ·V_{t+1} − V_t``, ``A_t = δ_t + γλ·A_{t+1}``, the value past the last column 0,
    rewards and values outside ``mask`` 0. Returns (advantages, returns = advantages + values)."""
    rewards, values = rewards * mask, values * mask
    running = torch.zeros_like(values[:, 0])
    reversed_advantages = []
    for t in reversed(range(values.size(1))):
        next_value = values[:, t + 1] if t + 1 < values.size(1) else 0.0
        running = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * running
        reversed_advantages.append(running)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)
    return advantages, advantages + values


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate ``mean(max(−A·ρ, −A·clip(ρ, 1 ± ε)))`` over the reply tokens, ρ the
    probability ratio to the rollout policy (release 1257-1262); also the clipped fraction."""
    ratio = torch.exp((logps - old_logps) * mask)  # 1 off the reply (release: INVALID_LOGPROB both sides)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ``0.5·mean(max((v − R)², (clip(v, v_old ± c) − R)²))`` over ``mask``
    (release 1238-1247); also the clipped fraction."""
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped, clipped = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def token_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 prompt_length: int) -> torch.Tensor:
    """(B, T+1) values: the score head on the backbone's hidden state at the last prompt token and
    at every reply token (release 1120, 1237, and ``model_utils.get_reward`` 172-185)."""
    backbone = getattr(value_model, value_model.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return value_model.score(hidden[:, prompt_length - 1:]).squeeze(-1).float()


# --- TRL ------------------------------------------------------------------------------------------

def ppo_config(params: RLVRParams, settings: PPOParams, output_dir: str | Path, seed: int,
               launch: LaunchParams | None = None, beta: float | None = None):
    """TRL's GRPOConfig for PPO: :func:`tulu_lib.train.grpo.grpo_config`'s, plus ``num_iterations`` =
    PPO epochs, dropout off, and ``settings.num_generations`` replies per prompt (no vLLM importance
    weights, as in ``grpo_config``).

    GRPOConfig (and RLVRParams) refuse fewer than 2 replies per prompt; PPO does not group replies,
    so the config is built with a group size that divides every generation batch (per-device batch
    × accumulation steps) and then set to the wanted one."""
    per_process = params.optim.per_device_batch_size * params.optim.gradient_accumulation_steps
    if per_process < 2:
        raise ValueError("PPO whitens advantages over each process's rollout batch: "
                         "per_device_batch_size × gradient_accumulation_steps must be >= 2")
    if per_process % settings.num_generations:
        raise ValueError(f"num_generations ({settings.num_generations}) must divide per_device_batch_size × "
                         f"gradient_accumulation_steps ({per_process})")
    group = settings.num_generations if settings.num_generations > 1 else per_process
    config = grpo.grpo_config(replace(params, num_generations=group), output_dir, seed, launch, beta)
    config.num_generations = settings.num_generations
    config.num_iterations = settings.ppo_epochs
    config.disable_dropout = True
    # the value model runs outside DDP's forward: its parameters must not be taken for unused ones
    config.ddp_find_unused_parameters = False
    if settings.reward_model_multiplier:
        config.reward_weights = [1.0] * len(rlvr.DOMAINS) + [settings.reward_model_multiplier]
    return config


def clip_each_group(groups, max_norm: float) -> list[float]:
    """Clip each optimizer parameter group's gradients by the group's own norm (torch's
    ``clip_grad_norm_`` per group: × max_norm / (norm + 1e-6) when above), as the release's two
    DeepSpeed engines clipped policy and value each at ``gradient_clipping`` 1.0 (392); the norms
    before clipping. Written here: Hugging Face's Trainer clips all parameters by one norm."""
    norms = []
    for group in groups:
        grads = [p for p in group["params"] if p.grad is not None]
        norms.append(float(torch.nn.utils.clip_grad_norm_(grads, max_norm)) if grads else 0.0)
    return norms


def clip_each_group_under_zero3(optimizer) -> list[float]:
    """Make DeepSpeed's ZeRO-3 optimizer clip each parameter group by its own norm, like
    :func:`clip_each_group`: its step takes every sub-group's norm (summed over the processes),
    combines them into one and scales each sub-group by it; here each sub-group is scaled by its
    own parameter group's norm instead. Returns the list that holds the latest norms (before
    clipping, one per group). Written here: DeepSpeed clips one norm per engine, and the value
    model shares the policy's engine under TRL. Other ZeRO stages: ``ValueError``."""
    from deepspeed.runtime.utils import combine_grad_norm_groups
    from deepspeed.runtime.zero.stage3 import DeepSpeedZeroOptimizer_Stage3

    if not isinstance(optimizer, DeepSpeedZeroOptimizer_Stage3):
        raise ValueError(f"rlvr.ppo.optimizers: separate clips policy and value by their own norms without "
                         f"DeepSpeed or under ZeRO-3 (the release's); this DeepSpeed optimizer is "
                         f"{type(optimizer).__name__}: use ZeRO-3 or rlvr.ppo.optimizers: joint")
    group_of, latest, by_group = optimizer.sub_group_to_group_id, [], {}
    norms_of, unscale = optimizer._get_norm_groups, optimizer.unscale_and_clip_grads

    def _get_norm_groups():
        norms = norms_of()
        groups = sorted(set(group_of.values()))
        by_group.clear()
        by_group.update({g: combine_grad_norm_groups([n for i, n in enumerate(norms) if group_of[i] == g])
                         for g in groups})
        latest[:] = [float(by_group[g]) / optimizer.loss_scale for g in groups]
        return norms

    optimizer._get_norm_groups = _get_norm_groups
    optimizer.unscale_and_clip_grads = lambda sub, total_norm: unscale(sub, by_group[group_of[sub]])
    return latest


def _ppo_trainer():
    """TRL's ``GRPOTrainer`` with GRPO's advantages and loss replaced by PPO's (module docstring)."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    class ClipEachUnderZero3(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_train_begin(self, args, state, control, **kwargs):  # after DeepSpeed made its optimizer
            t = self.trainer
            if t.is_deepspeed_enabled and t.settings.optimizers == "separate":
                engine = t.accelerator.deepspeed_engine_wrapped.engine
                t._group_norms = clip_each_group_under_zero3(engine.optimizer)

    class PPOTrainer(grpo._rollout_trainer()):
        def __init__(self, *args, settings: PPOParams, non_eos_penalty: float | None, **kwargs):
            self.settings, self.non_eos_penalty = settings, non_eos_penalty
            self._rollout, self._group_norms = None, []
            super().__init__(*args, **kwargs)
            generation = getattr(self, "vllm_generation", None)
            if generation is not None:  # vLLM gets the policy's weights, not the value model's
                every = generation._iter_named_params
                generation._iter_named_params = lambda: (
                    (name, p) for name, p in every() if not name.startswith(VALUE + "."))
            self.add_callback(ClipEachUnderZero3(self))

        def create_optimizer(self, model=None):
            """``rlvr.ppo.optimizers: separate``: the policy's and the value model's parameters in two
            groups (weight decay on every one, as the release's ``torch.optim.AdamW``). AdamW's update
            is per parameter, so two groups of one AdamW step as two AdamWs do; the clip is per group
            (:meth:`_clip_grad_norm`)."""
            if self.settings.optimizers == "joint" or self.optimizer is not None:
                return super().create_optimizer(model)
            model = self.model if model is None else model
            value = [p for p in model.value_model.parameters() if p.requires_grad]
            ids = {id(p) for p in value}
            policy = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            decay = self.args.weight_decay
            self.optimizer = cls([{"params": policy, "weight_decay": decay},
                                  {"params": value, "weight_decay": decay}], **kwargs)
            return self.optimizer

        def _clip_grad_norm(self, model):
            if self.settings.optimizers == "joint":
                return super()._clip_grad_norm(model)
            if self.is_deepspeed_enabled:  # the engine clipped each group in its step (ClipEachUnderZero3)
                norms = list(self._group_norms)
            else:
                norms = clip_each_group(self.optimizer.param_groups, self.args.max_grad_norm)
            for name, norm in zip(("policy", "value"), norms, strict=True):
                self._metrics["train"][f"grad_norm/{name}"].append(norm)
            return torch.tensor(math.hypot(*norms))  # logged as grad_norm: both models', before clipping

        def _calculate_rewards(self, *args):
            self._rewards_per_func = super()._calculate_rewards(*args)  # every process's rows
            return self._rewards_per_func

        def _prepare_inputs(self, generation_batch):
            if not self.model.training:
                return super()._prepare_inputs(generation_batch)
            steps = self.args.steps_per_generation
            if self._step % (steps * self.num_iterations) == 0 or self._rollout is None:
                self._rollout = self._generate_and_score_completions(generation_batch)
            if self._step % steps == 0 or self._buffered_inputs is None:  # each epoch reshuffled (1213)
                self._buffered_inputs = split_tensor_dict(shuffle_sequence_dict(self._rollout), steps)
            return self._buffered_inputs[self._step % steps]

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            s, mode = self.settings, "train" if self.model.training else "eval"
            prompt_ids, completion_ids = out["prompt_ids"], out["completion_ids"]
            input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attention_mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
            width, chunk = completion_ids.size(1), self.args.per_device_train_batch_size
            unchecked = disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
            with torch.no_grad(), unchecked:
                old = out.get("old_per_token_logps")
                if old is None:  # TRL skips it when a rollout serves one optimizer step only
                    old, _, _ = self._get_per_token_logps_and_entropies(
                        self.model, input_ids, attention_mask, width, batch_size=chunk)
                with self.accelerator.autocast():
                    values = torch.cat([token_values(self.model.value_model, input_ids[i:i + chunk],
                                                     attention_mask[i:i + chunk], prompt_ids.size(1))
                                        for i in range(0, len(input_ids), chunk)])
            mask = out["completion_mask"].float()
            ref = out.get("ref_per_token_logps")
            kl = k1(old, ref, mask) if ref is not None else torch.zeros_like(mask)  # β = 0: no reference
            rewards = per_token_rewards(self._scores(completion_ids, mask), kl, mask, self.beta,
                                        self.max_completion_length)
            keep = value_mask(mask, self.max_completion_length)
            advantages, returns = gae(rewards, values, keep, s.gamma, s.lam)
            advantages = advantages[:, :width]
            if s.whiten_advantages:
                advantages = whiten(advantages, mask)
            out.update(advantages=advantages * mask, returns=returns, old_values=values * keep,
                       value_mask=keep, old_per_token_logps=old)
            self._log_kl(kl, mask, inputs, mode)
            grpo.log_engine_gap(self, old, out)  # vLLM's log-probs: far from ours if its weights are stale
            return out

        def _scores(self, completion_ids, mask):
            """This process's replies' scores: the weighted reward functions, the non-EOS rule on top."""
            first, device = self.accelerator.process_index * len(mask), mask.device
            rewards = self._rewards_per_func[first:first + len(mask)] * self.reward_weights.to(device)
            last = completion_ids.gather(1, (mask.sum(1).long() - 1).clamp(min=0)[:, None]).squeeze(1)
            finished = torch.isin(last, torch.tensor(self.eos_token_ids, device=device)) & (mask.sum(1) > 0)
            return non_eos_penalized(rewards.nansum(dim=1), finished, self.non_eos_penalty)

        def _log_kl(self, kl, mask, inputs, mode):
            """``kl`` (mean per-token k1 of the rollout, the reward's KL) and ``<domain>/kl``."""
            domains = [x.get("dataset") for x in inputs]
            index = torch.tensor([rlvr.DOMAINS.index(d) if d in rlvr.DOMAINS else -1 for d in domains],
                                 device=kl.device)
            onehot = (index == torch.arange(-1, len(rlvr.DOMAINS), device=kl.device)[:, None]).float()
            sums = self.accelerator.reduce(torch.stack([onehot @ kl.sum(1), onehot @ mask.sum(1)]), "sum")
            self._metrics[mode]["kl"].append((sums[0].sum() / sums[1].sum().clamp(min=1)).item())
            for i, domain in enumerate(rlvr.DOMAINS, start=1):  # row 0: rows of no domain
                if sums[1, i] > 0:
                    self._metrics[mode][f"{domain}/kl"].append((sums[0, i] / sums[1, i]).item())

        def _compute_loss(self, model, inputs):
            s = self.settings
            prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
            mask = inputs["completion_mask"].float()
            input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            logps, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True)
            with self.accelerator.autocast():
                values = token_values(self.accelerator.unwrap_model(model).value_model, input_ids,
                                      attention_mask, prompt_ids.size(1))
            pg, pg_clipped = policy_loss(logps, inputs["old_per_token_logps"], inputs["advantages"], mask,
                                         s.cliprange)
            vf, vf_clipped = value_loss(values, inputs["old_values"], inputs["returns"], inputs["value_mask"],
                                        s.cliprange_value)
            mode = "train" if self.model.training else "eval"
            for name, value in (("policy_loss", pg), ("value_loss", vf), ("clipfrac/policy", pg_clipped),
                                ("clipfrac/value", vf_clipped), ("entropy", masked_mean(entropies, mask))):
                self._metrics[mode][name].append(self.accelerator.gather(value.detach()).mean().item())
            normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            return (pg + s.vf_coef * vf) / normalizer

        def _save(self, output_dir=None, state_dict=None):
            output_dir = Path(output_dir or self.args.output_dir)
            unwrapped = self.accelerator.unwrap_model(self.model)
            if state_dict is None:
                state_dict = unwrapped.state_dict()
            prefix = VALUE + "."
            super()._save(str(output_dir), state_dict={k: v for k, v in state_dict.items()
                                                       if not k.startswith(prefix)})
            unwrapped.value_model.save_pretrained(output_dir / VALUE, state_dict={
                k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)})

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            policy = self.accelerator.unwrap_model(model or self.model)
            value = policy.value_model
            del policy.value_model  # the policy's files hold the policy only
            try:
                super()._load_from_checkpoint(resume_from_checkpoint, model)
            finally:
                policy.value_model = value
            value.load_state_dict(load_file(os.path.join(resume_from_checkpoint, VALUE, "model.safetensors")))

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            step = self.state.global_step
            folder = Path(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{step}")
            folder.mkdir(parents=True, exist_ok=True)
            torch.save({"step": self._step, "rollout": self._rollout, "batches": self._buffered_inputs},
                       folder / ROLLOUT.format(rank=self.accelerator.process_index))

        def _load_optimizer_and_scheduler(self, checkpoint):
            super()._load_optimizer_and_scheduler(checkpoint)
            path = Path(checkpoint or "", ROLLOUT.format(rank=self.accelerator.process_index))
            if checkpoint and path.exists():  # resume inside a rollout's epochs
                state = torch.load(path, map_location=self.accelerator.device, weights_only=True)
                self._step, self._rollout = state["step"], state["rollout"]
                self._buffered_inputs = state["batches"]

    return PPOTrainer


def train_ppo(model: str, dataset: datasets.Dataset, params: RLVRParams, settings: PPOParams,
              output_dir: str | Path, *, seed: int, dtype: str = "float32", beta: float | None = None,
              launch: LaunchParams | None = None, resume: bool = True, callbacks=()) -> TrainResult:
    """PPO against the verifiers (as :func:`tulu_lib.train.grpo.train_grpo`, the same records and result);
    resumes from the newest checkpoint in ``output_dir``. The final policy is ``<out>/final``, its
    value model ``<out>/final/value_model``."""
    from transformers import AutoModelForCausalLM, set_seed


    output_dir = Path(output_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    config = ppo_config(params, settings, output_dir, seed, launch, beta)  # before the models: ZeRO-3 loading
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    set_seed(seed)  # a fresh value head (value_model: policy) is drawn the same way on every run
    needs_rm = settings.value_model == "reward_model" or settings.reward_model_multiplier
    if settings.reward_model is None and needs_rm:
        raise ValueError("rlvr.ppo.reward_model is null: train one first (04_rlvr trains it on the run's "
                         "preference pairs) or give a path or hub id")
    value_from = path if settings.value_model == "policy" else settings.reward_model
    policy.value_model = load_reward_model(value_from, dtype)
    loaded = {"policy": parameter_layout(policy), "value": parameter_layout(policy.value_model)}
    dataset, dropped = rlvr.fit_prompts(dataset, tokenizer, params.optim.max_length - params.max_new_tokens)
    last = last_complete(output_dir) if resume and output_dir.is_dir() else None
    record = rlvr.rollout_record(output_dir, last)
    reward_funcs = rlvr.reward_functions(params, rlvr.eos_token_ids(policy, tokenizer), record)
    processing = [None] * len(reward_funcs)
    if settings.reward_model_multiplier:  # TRL scores it; ppo_config weighs it by the multiplier
        reward_funcs.append(load_reward_model(settings.reward_model, dtype))
        processing.append(load_tokenizer(settings.reward_model))
    trainer = _ppo_trainer()(
        model=policy, args=config, processing_class=tokenizer, train_dataset=rlvr.to_grpo_dataset(dataset),
        reward_funcs=reward_funcs, reward_processing_classes=processing, callbacks=list(callbacks),
        settings=settings, non_eos_penalty=params.non_eos_penalty, async_rollouts=params.async_rollouts)
    stats = {"prompts_dropped": dropped, "loaded": loaded}
    return train_and_save(trainer, output_dir, last, stats, tokenizer)
