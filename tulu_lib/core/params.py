"""Params: one YAML file per scale, validated into typed, frozen objects.

Every knob of a run lives in a params file (``params/smoke.yaml``, ``params/cpu.yaml``,
``params/tulu3-8b.yaml``, ``params/tulu3-70b.yaml``); a difference between scales is a
value here, never a branch in code. Loading checks every key and value before anything
runs: an unknown key, a wrong type or a bad value raises :class:`ParamsError` naming the
file, the key path and what is allowed (with the close spelling of a mistyped key).

Usage::

    p = load_params("params/cpu.yaml", overrides=["sft.learning_rate=1e-5"])
    p.sft.learning_rate, p.hash()
    tulu-repro validate params/*.yaml
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tulu_lib.core.hashing import section_hash


class ParamsError(ValueError):
    """A params file (or override) is invalid; the message names file, key and fix."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``5e-6`` as a string; learning rates are written that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\d+\.\d*$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    _no_aliases(text)
    return yaml.load(text, Loader=_Loader)


class _AliasError(yaml.YAMLError):
    """A YAML alias (``*name``): refused, so no params file can expand or recurse without bound."""

    def __init__(self, event: yaml.AliasEvent):
        super().__init__()
        self.problem_mark = event.start_mark
        self.problem = (f"alias *{event.anchor} is not allowed in params files (aliases can expand "
                        "without bound); write the value out, or share settings with extends:")


MAX_FLOW_BRACKETS = 1000  # PyYAML scans nested [ { in quadratic time: 10,000 deep takes minutes


def _no_aliases(text: str) -> None:
    """Raise :class:`_AliasError` at the first alias; parsing events is linear in the text, so an
    alias bomb or a recursive alias is refused before anything is built from it. A text with more
    than :data:`MAX_FLOW_BRACKETS` ``[``/``{`` (a params file has a few dozen) is refused unparsed."""
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_FLOW_BRACKETS:
        raise yaml.YAMLError(f"{brackets:,} '[' and '{{' (at most {MAX_FLOW_BRACKETS:,}; deep nesting "
                             "makes YAML parsing take minutes)")
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise _AliasError(event)


# ---------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ModelParams:
    """The starting checkpoint: a registry name, a hub id or a local path."""

    name: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    revision: str | None = None
    stands_in_for: str | None = None  # the paper's model this one replaces, for labels


@dataclass(frozen=True)
class SourceParams:
    """One dataset: an offline stand-in (``standin:sft``), a hub id or a local file.

    ``mix`` samples rows per value of the ``source`` column: a YAML integer is a row
    count, a YAML float is a fraction of that source's rows (so ``1`` is one row and
    ``1.0`` is all of them); sources not named are dropped. Empty ``mix`` keeps all rows.
    ``duplicate_ids``: a row whose ``id`` an earlier row has is counted and dropped
    (``keep_first``) or counted and kept (``keep_all``).
    """

    path: str
    split: str = "train"
    limit: int | None = None
    mix: dict[str, int | float] = field(default_factory=dict)
    duplicate_ids: Literal["keep_first", "keep_all"] = "keep_first"

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be a positive integer or null")
        for source, amount in self.mix.items():
            if isinstance(amount, float) and not 0.0 < amount <= 1.0:
                raise ValueError(f"mix.{source}: a fraction must be in (0, 1], got {amount}")
            if isinstance(amount, int) and amount < 1:
                raise ValueError(f"mix.{source}: a row count must be >= 1, got {amount}")


@dataclass(frozen=True)
class DataParams:
    sft: SourceParams
    preferences: SourceParams
    rlvr: SourceParams


@dataclass(frozen=True)
class DecontaminationParams:
    """The paper's rules: 8-gram matching on user turns (Section 2.3 / release code)."""

    benchmarks: tuple[str, ...]
    ngram: int = 8
    overlap_threshold: float = 0.5
    flag_threshold: float = 0.02
    removal: Literal["overlapping", "flagged"] = "overlapping"
    num_proc: int = 2
    rule: Literal["release", "ngram_fraction"] = "release"  # decontam.decontaminate(rule=...)
    remove: bool = True  # false: report the overlap, remove nothing

    def __post_init__(self) -> None:
        if self.rule not in ("release", "ngram_fraction"):
            raise ValueError(f"decontamination.rule must be release or ngram_fraction, got {self.rule!r}")
        if self.ngram < 1:
            raise ValueError("ngram must be >= 1")
        for name in ("overlap_threshold", "flag_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True)
class OptimParams:
    """Optimisation settings shared by SFT, DPO and RLVR."""

    learning_rate: float
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = 0.0
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_length: int = 2048
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    bf16: bool = False
    logging_steps: int = 1
    save_steps: int = 100

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (train for epochs) or >= 1, got {self.max_steps}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set epochs > 0 or max_steps > 0")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "max_length",
                     "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass(frozen=True)
class SFTParams:
    """Supervised finetuning (paper Section 4): sum loss, Tülu template, assistant-only."""

    optim: OptimParams
    loss: Literal["sum", "mean"] = "sum"
    packing: bool = False
    truncation: Literal["truncate", "drop"] = "truncate"
    ablate_loss: bool = False  # also train the other loss aggregation, for the comparison
    ablate_subsample: tuple[float, ...] = ()  # Figure 4: also train on these fractions of each source
    ablate_sources: tuple[str, ...] = ()  # the paper's mix ablations: also train without each source

    def __post_init__(self) -> None:
        if any(not 0 < f < 1 for f in self.ablate_subsample):
            raise ValueError(f"ablate_subsample fractions must be between 0 and 1 (exclusive), "
                             f"got {list(self.ablate_subsample)}")


def _increasing_positive(name: str, values: tuple[int, ...]) -> None:
    if any(v < 1 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"{name} must be positive integers in increasing order without repeats, "
                         f"got {list(values)}")


@dataclass(frozen=True)
class DuplicationSweep:
    """Figure 9: ``prompts`` unique prompts, each repeated ``copies`` times (one run per value)."""

    prompts: int
    copies: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.prompts < 1:
            raise ValueError(f"prompts must be >= 1, got {self.prompts}")
        if not self.copies:
            raise ValueError("copies must list at least one value, e.g. [1, 2, 4]")
        _increasing_positive("copies", self.copies)


@dataclass(frozen=True)
class ReuseSweep:
    """Figure 10: ``pairs`` pairs whose prompts the SFT data has vs ``pairs`` whose prompts it lacks."""

    pairs: int

    def __post_init__(self) -> None:
        if self.pairs < 1:
            raise ValueError(f"pairs must be >= 1, got {self.pairs}")


@dataclass(frozen=True)
class OnPolicySweep:
    """Figure 11: ``samples`` completions by the SFT model for each of ``prompts`` verifiable prompts."""

    prompts: int
    samples: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.prompts < 1:
            raise ValueError(f"prompts must be >= 1, got {self.prompts}")
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2 (a pair needs a verified and a failed one), "
                             f"got {self.samples}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (greedy samples are all the same), "
                             f"got {self.temperature}")


@dataclass(frozen=True)
class DPOSweepParams:
    """The paper's DPO data ablations (Figures 8–11); each is off unless set.

    Every run starts from the SFT checkpoint with ``dpo``'s loss, optimiser and seed, trains
    ``epochs`` over its own pairs (a bigger set trains more steps, as in the paper) and is
    evaluated on the verifiable benchmarks of ``eval.benchmarks``.
    """

    epochs: float = 1.0
    unique_prompts: tuple[int, ...] = ()  # Figure 8: nested subsets of this many unique prompts
    duplicated_prompts: DuplicationSweep | None = None  # Figure 9
    reused_vs_new: ReuseSweep | None = None  # Figure 10
    on_policy: OnPolicySweep | None = None  # Figure 11

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        _increasing_positive("unique_prompts", self.unique_prompts)

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self) if f.name != "epochs" and getattr(self, f.name))


DPO_LOSSES = ("dpo", "dpo_norm", "simpo")


@dataclass(frozen=True)
class LossSettings:
    """One preference loss's own constants (open-instruct's ``dpo_beta``, ``dpo_gamma_beta_ratio``)."""

    beta: float | None = None
    gamma_beta_ratio: float | None = None  # SimPO's target margin over β


@dataclass(frozen=True)
class DPOParams:
    """Preference tuning (paper Section 5, Table 20), its ablations (Table 18, Figures 8–11, 17).

    ``per_loss`` gives a loss its own β (and SimPO's γ/β) whenever that loss trains, as main
    loss or in ``ablate_losses``: the release ran each Table 18 loss with its own settings.
    """

    optim: OptimParams
    loss: Literal["dpo", "dpo_norm", "simpo"] = "dpo_norm"
    beta: float = 5.0
    gamma_beta_ratio: float = 0.3  # SimPO only: open-instruct's dpo_gamma_beta_ratio default
    per_loss: dict[str, LossSettings] = field(default_factory=dict)
    cache_reference: bool = True
    ablate_losses: tuple[Literal["dpo", "dpo_norm", "simpo"], ...] = ()  # Table 18: also train these
    sweeps: DPOSweepParams = field(default_factory=DPOSweepParams)
    measure_memory: bool = False  # Figure 17: peak memory of a step, with/without cache, joint/separate

    def __post_init__(self) -> None:
        unknown = sorted(set(self.per_loss) - set(DPO_LOSSES))
        if unknown:
            raise ValueError(f"per_loss: unknown loss {unknown[0]!r}; choose from {', '.join(DPO_LOSSES)}")
        betas = [self.beta, *(s.beta for s in self.per_loss.values() if s.beta is not None)]
        if any(b <= 0 for b in betas):
            raise ValueError("beta must be > 0")
        ratios = [self.gamma_beta_ratio,
                  *(s.gamma_beta_ratio for s in self.per_loss.values() if s.gamma_beta_ratio is not None)]
        if any(r < 0 for r in ratios):
            raise ValueError("gamma_beta_ratio must be >= 0")

    def settled(self) -> DPOParams:
        """These params with ``per_loss[loss]`` applied to ``beta`` and ``gamma_beta_ratio``."""
        own = self.per_loss.get(self.loss, LossSettings())
        return dataclasses.replace(
            self, beta=self.beta if own.beta is None else own.beta,
            gamma_beta_ratio=self.gamma_beta_ratio if own.gamma_beta_ratio is None else own.gamma_beta_ratio)


@dataclass(frozen=True)
class PPOParams:
    """PPO (``rlvr.algorithm: ppo``, :mod:`tulu_lib.train.ppo`): Table 21 and the release's defaults
    (open-instruct's ppo_vllm_thread_ray_gtrl.py lines). ``reward_model`` null: 04_rlvr trains one
    on the run's preference pairs (:mod:`tulu_lib.train.reward_model`)."""

    num_generations: int = 1      # replies per prompt (number_samples_per_prompt, 217; unset for Tülu 3)
    ppo_epochs: int = 4           # passes over each rollout batch (num_epochs, 185)
    gamma: float = 1.0            # GAE discount (231)
    lam: float = 0.95             # GAE λ (233)
    cliprange: float = 0.2        # policy ratio clip (225)
    cliprange_value: float = 0.2  # value clip (229)
    vf_coef: float = 0.1          # value-loss coefficient (227)
    whiten_advantages: bool = True  # always on in the release (1206)
    value_model: Literal["reward_model", "policy"] = "reward_model"  # the paper: a general RM
    reward_model: str | None = None  # path or hub id (paper: allenai/Llama-3.1-Tulu-3-8B-RM, also for 70B)
    reward_model_multiplier: float = 0.0  # × RM score added to the final reward (paper: 0)
    # separate: as the release, policy and value each an AdamW of its own (own DeepSpeed engine there,
    # 608, 647), each clipped by its own gradient norm at optim.max_grad_norm, optim.weight_decay on
    # every parameter; joint: one optimizer and one clip over both (Hugging Face's weight-decay groups)
    optimizers: Literal["separate", "joint"] = "separate"

    def __post_init__(self) -> None:
        if self.num_generations < 1 or self.ppo_epochs < 1:
            raise ValueError("num_generations and ppo_epochs must be >= 1")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError("gamma and lam must be in [0, 1]")
        if self.cliprange <= 0 or self.cliprange_value <= 0 or self.vf_coef <= 0:
            raise ValueError("cliprange, cliprange_value and vf_coef must be > 0")
        if self.value_model not in ("reward_model", "policy"):
            raise ValueError(f"value_model must be reward_model or policy, got {self.value_model!r}")
        if self.optimizers not in ("separate", "joint"):
            raise ValueError(f"optimizers must be separate or joint, got {self.optimizers!r}")


@dataclass(frozen=True)
class RLVRParams:
    """RL with verifiable rewards (paper Section 6, Table 21)."""

    optim: OptimParams
    algorithm: Literal["grpo", "ppo"] = "grpo"  # TRL's GRPO, or the paper's PPO (rlvr.ppo)
    beta: float = 0.05  # KL penalty
    alpha: float = 10.0  # verifiable reward
    non_eos_penalty: float | None = -10.0  # null: truncated replies are verified like the rest
    num_generations: int = 4
    max_new_tokens: int = 256
    temperature: float = 1.0
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = "dapo"  # TRL's token aggregation
    # the release's schedule (its --total_episodes): rollouts = total_episodes // replies per rollout,
    # optimizer steps = rollouts x PPO epochs, the LR schedule over them; null: optim.epochs/max_steps
    total_episodes: int | None = None
    held_out_per_domain: int = 16  # prompts per domain kept out of training, scored before/after
    select_on: tuple[Literal["gsm8k", "MATH", "ifeval"], ...] = ("MATH", "ifeval")  # best checkpoint
    # eval: every checkpoint scored on the evaluation benchmarks behind select_on as 05_eval scores them
    # (the paper; the same items 05_eval reports); held_out: on held_out_per_domain training prompts
    select_with: Literal["eval", "held_out"] = "eval"
    # the paper's RLVR ablations (tulu_lib.ablations.rlvr_arms), each off unless set; every arm trains from
    # the same start on the same prompts for the same steps and replies, scored on eval.ablation_benchmarks
    beta_sweep: tuple[float, ...] = ()  # Figure 16: runs at these KL coefficients ...
    warmup_sweep: tuple[float, ...] = ()  # ... crossed with these warm-up ratios
    compare_sft_start: bool = False  # Figure 20: also train from the SFT checkpoint at the same beta
    ablate_value_init: bool = False  # PPO: value model from the reward model vs from the policy
    ablate_reward_model_score: float = 0.0  # > 0: PPO on the verifiable reward alone vs plus this x RM score
    compare_algorithms: bool = False  # PPO vs GRPO on the same prompts and number of replies
    verifier_rules: Literal["open_instruct", "corrected"] = "corrected"  # rewards.verify(rules=...)
    use_vllm: bool = False  # rollouts through vLLM (TRL's colocate mode, weights synced every step)
    # one-step asynchronous rollouts (the release's async_mode): rollout k is sampled by the policy of
    # rollout k-1 (the engine's weights are synced after it generates, not before); needs use_vllm
    async_rollouts: bool = False
    vllm_tensor_parallel_size: int = 1  # colocated vLLM split over this many GPUs (70B: 8)
    vllm_gpu_memory_utilization: float = 0.3  # the share of each GPU colocated vLLM takes (TRL's default)
    ppo: PPOParams = field(default_factory=PPOParams)

    def __post_init__(self) -> None:
        if self.verifier_rules not in ("open_instruct", "corrected"):
            raise ValueError(
                f"rlvr.verifier_rules must be open_instruct or corrected, got {self.verifier_rules!r}")
        if self.beta < 0 or any(b < 0 for b in self.beta_sweep):
            raise ValueError("beta (KL coefficient) must be >= 0")
        if any(not 0 <= w < 1 for w in self.warmup_sweep):
            raise ValueError(f"rlvr.warmup_sweep ratios must be in [0, 1), got {list(self.warmup_sweep)}")
        if self.ablate_reward_model_score < 0:
            raise ValueError("rlvr.ablate_reward_model_score is the RM score's multiplier: >= 0 (0 = off)")
        if self.select_with not in ("eval", "held_out"):
            raise ValueError(f"select_with must be eval or held_out, got {self.select_with!r}")
        if not self.select_on:
            raise ValueError("select_on needs at least one domain (the paper: [MATH, ifeval])")
        if self.async_rollouts and not self.use_vllm:
            raise ValueError("async_rollouts needs use_vllm: true (the engine keeps the previous rollout's "
                             "weights while the policy trains on; without vLLM the policy itself generates)")
        if self.vllm_tensor_parallel_size < 1 or not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ValueError("vllm_tensor_parallel_size must be >= 1 and "
                             "vllm_gpu_memory_utilization in (0, 1)")
        if (self.algorithm == "grpo" or self.compare_algorithms) and self.num_generations < 2:
            raise ValueError("num_generations must be >= 2 (GRPO's group-relative advantages)")
        if self.total_episodes is not None and self.total_episodes < 1:
            raise ValueError(f"total_episodes must be >= 1 or null (optim.epochs, max_steps), "
                             f"got {self.total_episodes}")
        if self.optim.max_length <= self.max_new_tokens:
            raise ValueError(f"rlvr.optim.max_length ({self.optim.max_length}, prompt + reply) must exceed "
                             f"rlvr.max_new_tokens ({self.max_new_tokens}); longer prompts are dropped")


@dataclass(frozen=True)
class BenchmarkParams:
    limit: int | None = None
    shots: int | None = None
    samples: int | None = None  # code: also pass@10 from this many samples (paper: 20, T 0.8)
    # where its rows come from: null = the packaged copy, else the hub id when none is packaged;
    # a hub id or a local copy in the hub's schema (.jsonl/.json/.parquet/.csv, a saved dataset)
    data: str | None = None
    # IFEval-style tasks only: score just the items testing one of these instruction ids (the same
    # items at every stage), e.g. the constraint types a small run trains on; null: every item
    instructions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.instructions is not None and not self.instructions:
            raise ValueError("instructions: an empty list selects no item; list instruction ids, or null")
        for name, least in (("limit", 1), ("shots", 0), ("samples", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise ValueError(f"{name}: {value} is not allowed; use an integer >= {least}, or null")


@dataclass(frozen=True)
class VLLMParams:
    """The vLLM engine (eval.backend: vllm): context length, CUDA graphs / torch.compile, KV cache."""

    max_model_len: int = 4096
    enforce_eager: bool = True  # False compiles: faster decoding, minutes more to start on CPU
    kv_cache_gib: float = 2.0   # CPU only: RAM for the KV cache (VLLM_CPU_KVCACHE_SPACE)

    def __post_init__(self) -> None:
        if self.max_model_len < 16 or self.kv_cache_gib <= 0:
            raise ValueError("vllm.max_model_len must be >= 16 and vllm.kv_cache_gib > 0")


# the checkpoints 05_eval can score, in Table 6's order (the start model, then each stage's)
CHECKPOINT_LABELS = ("base", "sft", "dpo", "rlvr")


@dataclass(frozen=True)
class EvalParams:
    benchmarks: dict[str, BenchmarkParams]
    backend: Literal["hf", "vllm", "openai"] = "hf"
    vllm: VLLMParams = field(default_factory=VLLMParams)
    max_new_tokens: int = 512
    batch_size: int = 8
    # what ablation checkpoints (sum vs mean, DPO algorithms and data sweeps) are scored on: the
    # verifiable benchmarks, cheap and reward-aligned; the stage checkpoints get the whole suite
    ablation_benchmarks: tuple[str, ...] = ("gsm8k", "math500", "ifeval")
    # the start model against its model card: its own chat template, and a budget that lets replies end
    card_max_new_tokens: int = 320
    card_benchmarks: tuple[Literal["ifeval", "gsm8k"], ...] = ("ifeval", "gsm8k")
    evaluate_base: bool = True  # the start model on the stage suite too (Table 6's deltas start there)
    # the IFEval-style benchmark that findings b and c pair on (RLVR against its DPO start, DPO
    # against its SFT start; tulu_lib.reporting.findings): its items, its evaluation checkers
    constraint_benchmark: str = "ifeval"
    # seconds an item's scorer may take (tulu_lib.evals.bounded); past it, or raising: scored 0, counted
    score_timeout_s: float = 5.0
    # AlpacaEval's and HREF's judge: an OpenAI-compatible endpoint {base_url, model}; key from $OPENAI_API_KEY
    judge: dict[str, str] | None = None
    # the safety suite's classifier (the paper's: allenai/wildguard), a model id or local folder
    # served through eval.backend; null: the safety benchmarks are reported as not run
    safety_classifier: str | None = None
    # named checkpoints to evaluate without training (label -> hub id or local folder): 05_eval
    # scores these instead of this run's stages; base / sft / dpo / rlvr sit beside the paper's
    # Table 6 rows for the released Tülu 3 models (params/tulu3-8b-released.yaml)
    checkpoints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)} is not allowed; use an integer >= 1")
        if not 0 < self.score_timeout_s < float("inf"):
            raise ValueError(f"score_timeout_s: {self.score_timeout_s} is not allowed; "
                             "use a number of seconds > 0")
        missing = [b for b in self.ablation_benchmarks if b not in self.benchmarks]
        if missing:
            raise ValueError(f"ablation_benchmarks names {missing}, which eval.benchmarks does not list")
        if self.judge is not None and set(self.judge) != {"base_url", "model"}:
            raise ValueError(f"judge needs exactly the keys base_url and model, got {sorted(self.judge)}")
        unknown = sorted(set(self.checkpoints) - set(CHECKPOINT_LABELS))
        if unknown:
            raise ValueError(f"checkpoints: {unknown} are not checkpoint labels; "
                             f"use {list(CHECKPOINT_LABELS)}")
        empty = [k for k, v in self.checkpoints.items() if not isinstance(v, str) or not v.strip()]
        if empty:
            raise ValueError(f"checkpoints: {empty} name no model; give a hub id or a local folder")

    def ablation(self) -> dict[str, BenchmarkParams]:
        """The benchmarks (with their limits) that ablation checkpoints are evaluated on."""
        return {b: self.benchmarks[b] for b in self.ablation_benchmarks}


@dataclass(frozen=True)
class StageLaunch:
    """One training stage's launch over the flat ``launch`` defaults; null keeps the default.

    ``per_device_batch_size``, ``gradient_accumulation_steps`` and ``seed`` replace the stage's
    ``optim`` values and the top-level seed for that stage's training, so a params file can say
    how the release ran each stage (``tulu_lib.train.launch.stage_params`` applies them).
    """

    num_machines: int | None = None
    num_processes: int | None = None  # per machine
    deepspeed: str | None = None
    per_device_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    seed: int | None = None
    own_process: bool | None = None

    def __post_init__(self) -> None:
        for name in ("num_machines", "num_processes", "per_device_batch_size", "gradient_accumulation_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


LAUNCH_STAGES = ("sft", "dpo", "rlvr")


@dataclass(frozen=True)
class LaunchParams:
    """How training stages are launched: machines, processes per machine, a DeepSpeed config.

    The flat fields are every stage's defaults; ``sft``/``dpo``/``rlvr`` override them for one
    stage. ``machine_rank`` and ``main_process_ip`` left null are read when a stage starts from
    ``$MACHINE_RANK`` and ``$MAIN_PROCESS_IP`` (what ``scripts/slurm/`` sets on every node), so one
    file serves all nodes; several machines with neither set is an error then. ``gpu`` and
    ``gpu_memory_gb`` are what ``tulu-repro plan`` checks each stage against.
    """

    num_processes: int = 1  # per machine
    num_machines: int = 1
    machine_rank: int | None = None
    main_process_ip: str | None = None
    main_process_port: int = 29500  # accelerate's default
    deepspeed: str | None = None
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gpu: Literal["H100", "H200", "A100"] = "H100"
    gpu_memory_gb: float = 80.0
    collective_timeout_s: int = 1800  # NCCL/gloo collectives (TrainingArguments.ddp_timeout); open-instruct's
    own_process: bool = False  # one process too trains outside the kernel (its memory freed at the end)
    sft: StageLaunch = field(default_factory=StageLaunch)
    dpo: StageLaunch = field(default_factory=StageLaunch)
    rlvr: StageLaunch = field(default_factory=StageLaunch)

    def __post_init__(self) -> None:
        if self.num_processes < 1:
            raise ValueError("num_processes must be >= 1")
        if self.num_machines < 1:
            raise ValueError(f"num_machines must be >= 1, got {self.num_machines}")
        if self.machine_rank is not None and not 0 <= self.machine_rank < self.num_machines:
            raise ValueError(f"machine_rank must be in [0, {self.num_machines}) for num_machines="
                             f"{self.num_machines}, got {self.machine_rank}")
        if not 1 <= self.main_process_port <= 65535:
            raise ValueError(f"main_process_port must be in 1..65535, got {self.main_process_port}")
        if self.main_process_ip is not None and not self.main_process_ip.strip():
            raise ValueError("main_process_ip must be a host name or address, or null ($MAIN_PROCESS_IP)")
        if self.gpu_memory_gb <= 0:
            raise ValueError(f"gpu_memory_gb must be > 0, got {self.gpu_memory_gb}")
        if self.collective_timeout_s < 1:
            raise ValueError(f"collective_timeout_s must be >= 1, got {self.collective_timeout_s}")

    def stage(self, name: str) -> LaunchParams:
        """The flat launch ``name`` runs with: ``launch.<name>`` over the defaults (validated again)."""
        if name not in LAUNCH_STAGES:
            raise ValueError(f"unknown stage {name!r}: one of {', '.join(LAUNCH_STAGES)}")
        own = getattr(self, name)
        return dataclasses.replace(
            self, num_machines=own.num_machines or self.num_machines,
            num_processes=own.num_processes or self.num_processes, deepspeed=own.deepspeed or self.deepspeed,
            own_process=self.own_process if own.own_process is None else own.own_process,
            sft=StageLaunch(), dpo=StageLaunch(), rlvr=StageLaunch())

    @property
    def launched(self) -> bool:
        """Whether a stage with this (flat) launch trains under ``accelerate launch``
        (:mod:`tulu_lib.train.launch`) rather than in the calling process: several processes,
        ``own_process``, or a DeepSpeed config (DeepSpeed runs in a distributed environment)."""
        return self.num_machines * self.num_processes > 1 or self.own_process or self.deepspeed is not None

    def local_files(self) -> dict[tuple[str, ...], str | None]:
        """Every DeepSpeed config path, by key path (checked like the other local files)."""
        return {("launch", "deepspeed"): self.deepspeed,
                **{("launch", s, "deepspeed"): getattr(self, s).deepspeed for s in LAUNCH_STAGES}}


@dataclass(frozen=True)
class SynthesisParams:
    """Persona prompts and synthetic preference pairs (paper §3.1, §5.2.1; :mod:`tulu_lib.data.preferences`).

    ``enabled``: 03_dpo runs the pipeline before DPO and appends its pairs to ``data.preferences``'
    (``tulu-repro synthesize`` runs it alone). Prompts: ``prompts_per_domain`` per domain written
    by ``prompt_model`` (null: the judge) from ``num_personas`` personas (``builtin``, a .txt file or
    a hub id such as ``proj-persona/PersonaHub``), or as many reused from the SFT data
    (``prompt_source: reused``, Figure 10's axis). Responses: every ``pool`` model (or
    ``models_per_prompt`` of them) × ``samples_per_model``; ``on_policy`` adds the SFT checkpoint
    (Figure 11's axis). Each model runs on ``backends[name]`` (``policy`` for the SFT checkpoint) or
    ``backend``; ``openai`` needs ``base_url``. The judge rates 1–5 on four aspects, ``joint`` (one
    JSON answer) or ``per_aspect``, resampled up to ``judge_retries`` times when unparseable, or
    ``expected`` (per aspect, the mean rating under its next-token probabilities: hf or vllm
    judges; for judges too small to write ratings).
    """

    enabled: bool = False
    personas: str = "builtin"
    persona_config: str | None = "persona"  # hub config (PersonaHub's bare personas)
    num_personas: int = 16
    domains: tuple[Literal["math", "code", "precise_if"], ...] = ("math", "code", "precise_if")
    prompts_per_domain: int = 8
    prompt_source: Literal["new", "reused"] = "new"
    prompt_model: str | None = None
    pool: tuple[str, ...] = ()
    on_policy: bool = True
    models_per_prompt: int | None = None  # null: every pool member answers every prompt
    samples_per_model: int = 1
    judge_model: str | None = None
    judge_mode: Literal["joint", "per_aspect", "expected"] = "joint"
    judge_retries: int = 2
    backend: Literal["hf", "vllm", "openai"] = "hf"
    backends: dict[str, Literal["hf", "vllm", "openai"]] = field(default_factory=dict)
    base_url: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    judge_max_new_tokens: int = 96
    judge_temperature: float = 0.0
    max_prompt_chars: int = 2000
    agreement_threshold: float = 4.0  # judge "follows" = instruction-following rating >= this
    # on-policy verifiable pairs (preferences.constraint_pairs): this many if_short prompts answered
    # by the SFT model, each reply breaking its constraint paired with itself made to keep it
    constraint_pairs: int = 0

    def __post_init__(self) -> None:
        for name in ("num_personas", "prompts_per_domain", "samples_per_model", "batch_size",
                     "max_new_tokens", "judge_max_new_tokens", "max_prompt_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"synthesis.{name} must be >= 1, got {getattr(self, name)}")
        if self.judge_retries < 0:
            raise ValueError(f"synthesis.judge_retries must be >= 0, got {self.judge_retries}")
        if not 0 <= self.constraint_pairs <= 480:
            raise ValueError(f"synthesis.constraint_pairs must be between 0 and 480 (the if_short prompts), "
                             f"got {self.constraint_pairs}")
        if not self.domains or len(set(self.domains)) != len(self.domains):
            raise ValueError(f"synthesis.domains must list math, code or precise_if without repeats, "
                             f"got {list(self.domains)}")
        if self.temperature < 0 or self.judge_temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("synthesis temperatures must be >= 0 and top_p in (0, 1]")
        if self.samples_per_model > 1 and self.temperature == 0:
            raise ValueError("synthesis.samples_per_model > 1 needs temperature > 0 "
                             "(greedy samples are equal)")
        if not 1 <= self.agreement_threshold <= 5:
            raise ValueError(f"synthesis.agreement_threshold is a 1-5 rating, "
                             f"got {self.agreement_threshold}")
        named = {*self.pool, "policy", self.judge_model, self.prompt_model}
        unknown = sorted(set(self.backends) - named)
        if unknown:
            raise ValueError(f"synthesis.backends names {unknown[0]!r}, which is not a pool model, the "
                             "judge, the prompt model or 'policy'")
        if len(set(self.pool)) != len(self.pool) or "policy" in self.pool:
            raise ValueError("synthesis.pool: each model once ('policy' is added by on_policy)")
        if not self.enabled:
            return
        if not self.judge_model:
            raise ValueError("synthesis.judge_model is required when synthesis is enabled")
        members = len(self.pool) + self.on_policy
        if members == 0:
            raise ValueError("synthesis needs a model pool: list synthesis.pool and/or set on_policy: true")
        per_prompt = self.models_per_prompt or members
        if self.models_per_prompt is not None and not 1 <= self.models_per_prompt <= members:
            raise ValueError(f"synthesis.models_per_prompt must be between 1 and the pool size ({members}), "
                             f"got {self.models_per_prompt}")
        if per_prompt * self.samples_per_model < 2:
            raise ValueError("synthesis: a pair needs >= 2 responses per prompt (more pool models, "
                             "on_policy, or samples_per_model)")
        used = {self.backends.get(m, self.backend) for m in
                (*self.pool, self.judge_model, self.prompt_model or self.judge_model, "policy")}
        if "openai" in used and not self.base_url:
            raise ValueError("synthesis: the openai backend needs synthesis.base_url (e.g. http://localhost:8000/v1)")
        if self.judge_mode == "expected" and self.backends.get(self.judge_model, self.backend) == "openai":
            raise ValueError("synthesis.judge_mode: expected reads the judge's next-token probabilities; an "
                             "openai judge does not give them (use joint or per_aspect, or an hf/vllm judge)")


REPORTERS = ("tensorboard", "wandb", "trackio", "mlflow")


@dataclass(frozen=True)
class LoggingParams:
    """Where training curves go while a stage trains (``TrainingArguments.report_to`` of every
    trainer and ablation arm). ``tensorboard`` (the default) writes event files under
    ``reports/<run>/logs/tensorboard/<stage>/<arm>``, no account or network; ``wandb``, ``trackio``
    and ``mlflow`` read their keys from the environment only, with ``project`` and the run name
    ``<params name>/<stage>/<arm>``; ``[]`` logs nowhere. Not part of any cache key."""

    report_to: tuple[Literal["tensorboard", "wandb", "trackio", "mlflow"], ...] = ("tensorboard",)
    project: str = "tulu-repro"

    def __post_init__(self) -> None:
        unknown = [r for r in self.report_to if r not in REPORTERS]
        if unknown:
            raise ValueError(f"report_to: {unknown[0]!r} is not one of {', '.join(REPORTERS)} "
                             "(or [] for none)")
        if not self.project.strip():
            raise ValueError("project must be a non-empty name")


@dataclass(frozen=True)
class Params:
    """A whole run. ``name`` labels the report; ``scale`` is shown next to paper numbers."""

    name: str
    scale: str
    seed: int
    model: ModelParams
    data: DataParams
    decontamination: DecontaminationParams
    sft: SFTParams
    dpo: DPOParams
    rlvr: RLVRParams
    eval: EvalParams
    launch: LaunchParams = field(default_factory=LaunchParams)
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    logging: LoggingParams = field(default_factory=LoggingParams)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def hash(self) -> str:
        """Stable hash of the resolved params (what ran, not how the file was spelled)."""
        return section_hash(self.to_dict())

    def section(self, name: str) -> Any:
        return getattr(self, name)


# ------------------------------------------------------------------------- loading


def load_params(path: str | Path, overrides: typing.Sequence[str] = ()) -> Params:
    """Read, override (``a.b=value``, value parsed as YAML) and validate a params file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    raw = _resolve_extends(path)
    for item in overrides:
        _apply_override(raw, item, path)
    params = from_dict(raw, source=str(path))
    _check_local_files(params, str(path))
    return params


def _resolve_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping; with ``extends: other.yaml`` (relative to the file), that file's
    mapping with this one's keys merged over it, section by section (a list or scalar replaces)."""
    raw = _read_yaml_file(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base_path = (path.parent / str(parent)).resolve()
    if not base_path.is_file():
        raise ParamsError(f"{path}: extends: no such params file {base_path}")
    if base_path in seen or base_path == path.resolve():
        raise ParamsError(f"{path}: extends: {base_path} extends itself (a cycle)")
    return _merge(_resolve_extends(base_path, seen + (path.resolve(),)), raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key; ``null`` over an inherited mapping
    removes it (``eval.benchmarks.popqa: null``, ``eval.judge: null``)."""
    out = dict(base)
    for key, value in over.items():
        if value is None and isinstance(out.get(key), dict):
            del out[key]
        else:
            out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
                else value
    return out


def _read_yaml_file(path: Path) -> Any:
    """The file's YAML, or a one-line ParamsError: not UTF-8, a syntax error, a repeated key."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParamsError(f"{path}: line {line}: byte {data[exc.start]:#04x} is not UTF-8; "
                          "params files are UTF-8 text") from None
    try:
        _no_aliases(text)
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            return None
        _no_repeated_keys(node, path, ())
        loader = _Loader(text)
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        what += f" ({' '.join(context.split())})" if context else ""
        raise ParamsError(f"{path}: {where}not valid YAML: {what}") from None
    except RecursionError:
        raise ParamsError(f"{path}: not valid YAML: nested too deeply") from None


def _no_repeated_keys(node: yaml.Node, path: Path, keys: tuple[str, ...]) -> None:
    """A key given twice in one mapping is an error (YAML would keep the last one silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ParamsError(
                    f"{where(str(path), keys + (key,))}: key given twice (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}, value {value_node.value!r} here); keep one")
            seen[key] = key_node.start_mark.line + 1
            _no_repeated_keys(value_node, path, keys + (key,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_repeated_keys(item, path, keys + (str(i),))


def unknown(where: str, what: str, value: str, valid: typing.Iterable[str]) -> ParamsError:
    valid = list(valid)
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ParamsError(f"{where}: unknown {what} {value!r}{hint}; valid: {', '.join(valid)}")


def from_dict(raw: dict[str, Any], source: str = "<params>") -> Params:
    params = _build(Params, raw, source, ())
    _check_values(params, source)
    return params


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # reports/<name>: never a path


def _at_least(low: float) -> typing.Callable[[Any], bool]:
    return lambda v: v >= low


def _blank(v: Any) -> bool:
    return not v.strip()


def _repeats(v: list) -> bool:
    return len(set(map(str, v))) != len(v)


def _seed(v: int) -> bool:
    return 0 <= v <= 2**32 - 1


def _http_url(v: str) -> bool:
    return re.fullmatch(r"https?://[^/\s:]+(:\d{1,5})?(/\S*)?", v) is not None


# (key path, pattern with *, allowed(value), what is allowed): checked on every built Params, after the
# schema's types and each section's own checks; a null (optional) value is not checked
_VALUE_RULES: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("name", lambda v: RUN_NAME.fullmatch(v) is not None,
     "letters, digits, '.', '_' and '-', starting with a letter or digit (the run folder is reports/<name>)"),
    ("scale", lambda v: not _blank(v), "a non-empty label"),
    ("seed", _seed, "an integer in [0, 2**32 - 1] (numpy's seed range)"),
    ("launch.*.seed", _seed, "an integer in [0, 2**32 - 1] (numpy's seed range), or null"),
    ("model.name", lambda v: not _blank(v), "a registry name, a hub id or a local folder"),
    ("model.revision", lambda v: not _blank(v), "a branch, tag or commit of the hub model, or null"),
    ("data.*.path", lambda v: not _blank(v), "standin:KIND, a hub id or a local data file"),
    ("data.*.split", lambda v: not _blank(v), "a split name such as train"),
    ("decontamination.benchmarks", lambda v: bool(v) and not _repeats(v), "a non-empty list without repeats"),
    ("decontamination.num_proc", _at_least(1), "an integer >= 1"),
    ("decontamination.overlap_threshold", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("decontamination.flag_threshold", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("*.optim.max_grad_norm", _at_least(0), "a number >= 0 (0: no clipping)"),
    ("*.optim.weight_decay", _at_least(0), "a number >= 0"),
    ("*.optim.epochs", _at_least(0), "a number >= 0 (0 only with max_steps >= 1)"),
    ("sft.ablate_sources", lambda v: not _repeats(v), "source names without repeats"),
    ("sft.ablate_subsample", lambda v: not _repeats(v), "fractions without repeats"),
    ("dpo.ablate_losses", lambda v: not _repeats(v), "losses without repeats"),
    ("rlvr.max_new_tokens", _at_least(1), "an integer >= 1"),
    ("rlvr.temperature", lambda v: v > 0, "a number > 0 (RLVR samples its replies)"),
    ("rlvr.alpha", lambda v: v > 0, "a number > 0 (the verifiable reward)"),
    ("rlvr.non_eos_penalty", lambda v: v <= 0, "a number <= 0 (a penalty), or null"),
    ("rlvr.held_out_per_domain", _at_least(0), "an integer >= 0"),
    ("rlvr.select_on", lambda v: not _repeats(v), "domains without repeats"),
    ("rlvr.beta_sweep", lambda v: not _repeats(v), "values without repeats"),
    ("rlvr.warmup_sweep", lambda v: not _repeats(v), "values without repeats"),
    ("rlvr.ppo.reward_model", lambda v: not _blank(v), "a local folder or a hub id, or null (trained here)"),
    ("rlvr.ppo.reward_model_multiplier", _at_least(0), "a number >= 0"),
    ("eval.card_max_new_tokens", _at_least(1), "an integer >= 1"),
    ("eval.ablation_benchmarks", lambda v: not _repeats(v), "benchmarks without repeats"),
    ("eval.card_benchmarks", lambda v: not _repeats(v), "benchmarks without repeats"),
    ("eval.judge.base_url", _http_url, "an http:// or https:// URL with a host"),
    ("eval.judge.model", lambda v: not _blank(v), "a model name"),
    ("synthesis.personas", lambda v: not _blank(v), "builtin, a local .txt file or a hub id"),
    ("synthesis.base_url", _http_url, "an http:// or https:// URL with a host, or null"),
)


def _leaves(value: Any, keys: tuple[str, ...] = ()) -> typing.Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, keys + (str(key),))
    else:
        yield keys, value


def _check_values(params: Params, source: str) -> None:
    """Every value within what its key allows (:data:`_VALUE_RULES`), and the checks that span
    sections; else a one-line ParamsError naming the file, the key path, the value and what is allowed."""
    import fnmatch

    for keys, value in _leaves(params.to_dict()):
        dotted = ".".join(keys)
        for pattern, allowed, what in _VALUE_RULES:
            if value is not None and fnmatch.fnmatchcase(dotted, pattern) and not allowed(value):
                raise ParamsError(f"{where(source, keys)}: {value!r} is not allowed; use {what}")
    for kind in ("sft", "preferences", "rlvr"):
        path = getattr(params.data, kind).path
        if path.startswith("standin:") and path != f"standin:{kind}":
            raise ParamsError(f"{where(source, ('data', kind, 'path'))}: {path!r} is not allowed; the "
                              f"offline stand-in here is 'standin:{kind}' (or a hub id or a local data file)")
    if params.rlvr.select_with == "held_out" and params.rlvr.held_out_per_domain < 1:
        raise ParamsError(f"{where(source, ('rlvr', 'held_out_per_domain'))}: "
                          f"{params.rlvr.held_out_per_domain} is not allowed with rlvr.select_with: "
                          "held_out; use an integer >= 1 (the prompts checkpoints are chosen on)")


LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow", ".yaml", ".yml")


def looks_local(ref: str) -> bool:
    """A reference that can only mean a file on disk (not a hub id or registry name)."""
    return ref.startswith(("/", "./", "../", "~")) or ref.endswith(LOCAL_SUFFIXES)


def _check_local_files(params: Params, source: str) -> None:
    refs = {("model", "name"): params.model.name, **params.launch.local_files(),
            ("rlvr", "ppo", "reward_model"): params.rlvr.ppo.reward_model}
    refs.update({("data", k, "path"): getattr(params.data, k).path
                 for k in ("sft", "preferences", "rlvr")})
    for keys, ref in refs.items():
        if ref and looks_local(ref) and not Path(ref).expanduser().exists():
            raise ParamsError(f"{where(source, keys)}: file {ref!r} does not exist "
                              f"(relative paths are read from {Path.cwd()})")


def _apply_override(raw: dict[str, Any], item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ParamsError(f"{path}: override {item!r} must look like section.key=value")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"{path}: override {item!r}: {part!r} is not a section")
        node = child
    shown = item if len(item) <= 120 else f"{item[:100]}... ({len(item):,} characters)"
    try:
        node[parts[-1]] = _yaml(value)
    except yaml.YAMLError as exc:
        what = " ".join(str(getattr(exc, "problem", None) or exc).split())
        mark = getattr(exc, "problem_mark", None)
        at = f" at column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}: override {shown!r}: value is not valid YAML ({what}{at}); "
                          "quote a string, e.g. key='a: b'") from None
    except RecursionError:
        raise ParamsError(f"{path}: override {shown!r}: value is nested too deeply") from None


def where(source: str, keys: tuple[str, ...]) -> str:
    return f"{source}: {'.'.join(keys) or '<top level>'}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (tuple, list):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _build(tp: Any, value: Any, source: str, keys: tuple[str, ...]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"{where(source, keys)}: expected a mapping, got {value!r}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamsError(
                    f"{where(source, keys + (str(key),))}: unknown key{hint}; "
                    f"valid keys: {', '.join(fields)}")
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = _build(hints[name], value[name], source, keys + (name,))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{where(source, keys + (name,))}: missing required key "
                                  f"({_type_name(hints[name])})")
        try:
            return tp(**kwargs)
        except ValueError as exc:
            raise ParamsError(f"{where(source, keys)}: {exc}") from None
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{where(source, keys)}: {value!r} is not allowed; "
                              f"choose one of {_type_name(tp)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _build(arg, value, source, keys)
            except ParamsError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ParamsError(f"{where(source, keys)}: expected {_type_name(tp)}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ParamsError(f"{where(source, keys)}: expected {_type_name(tp)}, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_build(item_tp, v, source, keys + (str(i),)) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where(source, keys)}: expected {_type_name(tp)}, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return {str(k): _build(val_tp, v, source, keys + (str(k),)) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where(source, keys)}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ParamsError(f"{where(source, keys)}: {value!r} is not allowed; expected a finite number")
        return float(value)
    if tp in (int, bool, str):
        if type(value) is not tp:
            raise ParamsError(f"{where(source, keys)}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"params schema: unsupported type {tp!r}")  # a bug in this module


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj
