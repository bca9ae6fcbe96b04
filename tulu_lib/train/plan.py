"""Pre-flight plan: per training stage, memory per GPU, optimizer steps, tokens and GPU-hours.

Each of sft, dpo and rlvr is planned as it would train (:func:`tulu_lib.train.launch.stage_params`:
``launch.<stage>`` over the flat launch keys). Per GPU it adds up

* model states (weights, gradients, optimizer) from DeepSpeed's estimators for the stage's ZeRO
  stage and offload (DeepSpeed's functions when it imports, else the same formulas here:
  :func:`zero3_model_states_mem`, :func:`zero2_model_states_mem`);
  without DeepSpeed every rank holds weights, gradients and AdamW's two moments in the
  model's dtype (4 × its bytes per parameter);
* activations of one micro-batch (:func:`activation_bytes`);
* a frozen reference model where the stage holds one (DPO without ``cache_reference``; RLVR
  with a KL term), partitioned like the policy under ZeRO-3;
* with ``rlvr.use_vllm``, vLLM's colocated share of the GPU (``rlvr.vllm_gpu_memory_utilization``,
  TRL's default 0.3), and it checks vLLM's weights, split over ``rlvr.vllm_tensor_parallel_size``
  GPUs, fit that share;
* ``RUNTIME_GB`` for the CUDA context, NCCL buffers and allocator slack (an assumption).

A stage over ``launch.gpu_memory_gb`` fails the plan (``tulu-repro plan`` exits 2, one line per
stage naming the shortfall). Tokens are an upper bound (every sequence at ``max_length``);
FLOPs are 6·N per trained token (8·N with gradient checkpointing's extra forward) and 2·N per
reference-scored or generated token, attention ignored; GPU-hours = FLOPs / (peak × MFU).

Usage::

    tulu-repro plan --params params/tulu3-70b.yaml [--mfu 0.4] [--gpu-tflops 989] [--set k=v]
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tulu_lib.core.params import Params, SourceParams
from tulu_lib.data import standins
from tulu_lib.train import rlvr
from tulu_lib.train.launch import stage_params

GB = 1e9  # launch.gpu_memory_gb and every printed size are decimal gigabytes
RUNTIME_GB = 2.0
STAGES = ("sft", "dpo", "rlvr")
# Dense bf16 tensor-core peak, NVIDIA datasheets (H100 SXM: 1,979 TFLOPS "with sparsity"; H200
# has the same compute; A100: 312).
GPU_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
# Rows of the release mixtures on the hub, as the project's paper facts give them (shared/paper/
# README.md; the 8B ones also in tulu_lib.data.standins.STANDS_IN_FOR).
RELEASE_ROWS = {
    "allenai/tulu-3-sft-mixture": 939_343,
    "allenai/llama-3.1-tulu-3-8b-preference-mixture": 271_409,
    "allenai/llama-3.1-tulu-3-70b-preference-mixture": 334_302,
    "allenai/RLVR-GSM-MATH-IF-Mixed-Constraints": 29_946,
}


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Arch:
    """A Llama-style decoder: what parameter counts and activation sizes need."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False
    head_dim: int | None = None

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * (self.head_dim or self.hidden // self.heads)

    @property
    def params(self) -> int:
        q_dim = self.heads * (self.head_dim or self.hidden // self.heads)
        h = self.hidden
        layer = 2 * h * q_dim + 2 * h * self.kv_dim + 3 * h * self.intermediate + 2 * h  # qo kv MLP norms
        return self.layers * layer + self.hidden + self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def largest_layer(self) -> int:
        """DeepSpeed's ``largest_layer_params``: most parameters one module owns (embedding or MLP)."""
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)


# config.json of meta-llama/Llama-3.1-8B and -70B on the hub (the Tülu 3 checkpoints share them);
# HuggingFaceTB/SmolLM2-135M-Instruct; the tiny models as tulu_lib.core.assets._build_tiny_llama builds them.
LLAMA_31_8B = Arch(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256)
LLAMA_31_70B = Arch(layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, vocab=128256)
ARCHS = {
    "meta-llama/Llama-3.1-8B": LLAMA_31_8B, "meta-llama/Llama-3.1-70B": LLAMA_31_70B,
    **{f"allenai/Llama-3.1-Tulu-3-8B{s}": LLAMA_31_8B for s in ("", "-SFT", "-DPO")},
    **{f"allenai/Llama-3.1-Tulu-3-70B{s}": LLAMA_31_70B for s in ("", "-SFT", "-DPO")},
    "smollm2-135m-instruct": Arch(layers=30, hidden=576, intermediate=1536, heads=9, kv_heads=3,
                                  vocab=49152, tied=True),
    "tiny-llama": Arch(layers=2, hidden=8, intermediate=32, heads=2, kv_heads=1, vocab=49152, tied=True),
    "tiny-llama-vllm": Arch(layers=2, hidden=32, intermediate=128, heads=1, kv_heads=1, vocab=49152,
                            tied=True),
}


def arch(name: str) -> Arch:
    """A local checkpoint's ``config.json``, else the table above."""
    config = Path(name).expanduser() / "config.json"
    if config.is_file():
        c = json.loads(config.read_text())
        heads = c["num_attention_heads"]
        return Arch(layers=c["num_hidden_layers"], hidden=c["hidden_size"],
                    intermediate=c["intermediate_size"], heads=heads,
                    kv_heads=c.get("num_key_value_heads") or heads, vocab=c["vocab_size"],
                    tied=bool(c.get("tie_word_embeddings")), head_dim=c.get("head_dim"))
    if name in ARCHS:
        return ARCHS[name]
    raise ValueError(f"plan: no architecture for model {name!r}: use a local checkpoint folder "
                     "(its config.json is read) or add it to tulu_lib.train.plan.ARCHS")


# ------------------------------------------------------------ DeepSpeed's estimators


def zero3_model_states_mem(total_params: int, largest_layer_params: int, num_gpus_per_node: int = 1,
                           num_nodes: int = 1, cpu_offload: bool = True, cpu_offload_params: bool = True,
                           zero_init: bool = True,
                           additional_buffer_factor: float = 1.5) -> tuple[int, int, int]:
    """(CPU bytes per node, GPU bytes per GPU, largest-layer bytes) for ZeRO-3.

    DeepSpeed's ``estimate_zero3_model_states_mem_needs`` (deepspeed/runtime/zero/stage3.py, the
    numbers ``estimate_zero3_model_states_mem_needs_all_cold`` prints), the same formulas
    rewritten: DeepSpeed is the ``gpu`` extra and is not installed where params get planned.
    :func:`deepspeed_estimators` uses DeepSpeed's own functions when it imports. GPU: the
    largest layer gathered in 16 bits with its gradient (4 B/param), plus 18 B/param (16-bit
    weights, fp32 master, gradient, two Adam moments) over all GPUs for what stays on the GPU.
    """
    total_gpus = num_nodes * num_gpus_per_node
    per_node = 1 / num_nodes
    largest = 4 * largest_layer_params
    if cpu_offload and cpu_offload_params:
        gpu = largest
        cpu = total_params * (18 * per_node if zero_init else max(4 * num_gpus_per_node, 18 * per_node))
    elif cpu_offload:
        gpu = largest + int(2 * total_params / total_gpus)
        cpu = total_params * (16 * per_node if zero_init else max(4 * num_gpus_per_node, 16 * per_node))
    else:
        gpu = largest + int(18 * total_params / total_gpus)
        cpu = (largest_layer_params if zero_init else total_params) * 4 * num_gpus_per_node
    return int(cpu * additional_buffer_factor), int(gpu), largest


def zero2_model_states_mem(total_params: int, num_gpus_per_node: int = 1, num_nodes: int = 1,
                           cpu_offload: bool = True,
                           additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    """(CPU bytes per node, GPU bytes per GPU) for ZeRO-2: DeepSpeed's
    ``estimate_zero2_model_states_mem_needs`` (deepspeed/runtime/zero/stage_1_and_2.py, as of
    DeepSpeed PR #5099, 0.14.2+; pyproject pins >= 0.15), rewritten for the same reason as
    :func:`zero3_model_states_mem`. GPU: 16-bit weights, plus 18 B/param over all GPUs without offload."""
    total_gpus = num_nodes * num_gpus_per_node
    if cpu_offload:
        return int(total_params * max(4 * total_gpus, 16) * additional_buffer_factor), int(2 * total_params)
    return (int(total_params * 4 * num_gpus_per_node * additional_buffer_factor),
            int(2 * total_params + int(18 * total_params / total_gpus)))


def deepspeed_estimators():
    """DeepSpeed's own (zero3, zero2) estimator functions if ``deepspeed`` imports, else this module's."""
    try:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs as z3
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs as z2
        return z3, z2
    except Exception:  # noqa: BLE001 (not installed, or no accelerator/ops here: any import error)
        return zero3_model_states_mem, zero2_model_states_mem


@dataclass(frozen=True)
class Zero:
    """A DeepSpeed config's ZeRO stage and offload (stage 0 = no DeepSpeed)."""

    stage: int = 0
    offload_optimizer: bool = False
    offload_params: bool = False

    @classmethod
    def read(cls, path: str | None) -> Zero:
        if not path:
            return cls()
        z = json.loads(Path(path).read_text()).get("zero_optimization", {})
        stage = int(z.get("stage", 0))
        if stage not in (2, 3):
            raise ValueError(f"plan: {path}: ZeRO stage {stage} has no DeepSpeed estimator; use 2 or 3")

        def off(key: str) -> bool:
            return (z.get(key) or {}).get("device", "none") in ("cpu", "nvme")

        return cls(stage, off("offload_optimizer"), stage == 3 and off("offload_param"))

    def __str__(self) -> str:
        if not self.stage:
            return "no DeepSpeed"
        parts = [n for n, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params))
                 if on]
        return f"ZeRO-{self.stage}, " + (f"offload {'+'.join(parts)}" if parts else "no offload")


# ---------------------------------------------------------------------- activations


def activation_bytes(a: Arch, sequences: int, seq_len: int, act_bytes: int, checkpointing: bool) -> int:
    """Activations one GPU keeps for the backward of one micro-batch (this module's estimate).

    Per token, one decoder layer keeps about ``8·h + 4·kv + 4·i`` values (both RMSNorms' inputs
    and outputs, q/k/v and RoPE'd q/k, the attention output with flash attention, i.e. no
    seq² scores; gate, up, SiLU and their product). Gradient checkpointing keeps each layer's
    input (``h``) and recomputes one layer at a time; without it every layer is kept. The
    logits add ``V`` values in the compute dtype plus a float32 copy and its gradient (8 bytes).
    """
    tokens = sequences * seq_len
    layer = tokens * act_bytes * (8 * a.hidden + 4 * a.kv_dim + 4 * a.intermediate)
    kept = a.layers * tokens * a.hidden * act_bytes + layer if checkpointing else a.layers * layer
    return kept + tokens * a.vocab * (act_bytes + 8)


# --------------------------------------------------------------------------- data


def dataset_rows(src: SourceParams) -> int | None:
    """Rows a data source yields after ``mix`` and ``limit`` (at most; None: not knowable offline)."""
    counts = sum(v for v in src.mix.values() if isinstance(v, int))
    fractions = {k: v for k, v in src.mix.items() if isinstance(v, float)}
    if not fractions and (src.mix or src.limit is not None):
        n = counts if src.mix else None  # row counts, or just the limit: no need to read the data
    else:
        sizes = _source_sizes(src.path)
        if sizes is None or (fractions and None in sizes):
            n = None
        else:
            n = counts + sum(round(f * sizes.get(k, 0)) for k, f in fractions.items()) if fractions \
                else sum(sizes.values())
    if src.limit is not None:
        n = src.limit if n is None else min(n, src.limit)
    return n


def _source_sizes(path: str) -> dict[str | None, int] | None:
    """Rows per ``source`` (stand-ins, local JSON lines), or ``{None: total}`` for a release mixture."""
    if path in RELEASE_ROWS:
        return {None: RELEASE_ROWS[path]}
    if path.startswith("standin:"):

        return dict(Counter(r.get("source") for r in standins.build(path.removeprefix("standin:"))))
    if path.endswith(".jsonl") and Path(path).is_file():
        lines = [json.loads(s) for s in Path(path).read_text().splitlines() if s.strip()]
        return dict(Counter(r.get("source") for r in lines))
    return None


# --------------------------------------------------------------------------- plan


@dataclass
class StagePlan:
    stage: str
    machines: int
    per_machine: int
    zero: Zero
    deepspeed: str | None
    micro_batch: int
    accumulation: int
    seed: int
    capacity: float  # bytes a GPU has for training (after vLLM's share)
    memory: dict[str, float]  # per GPU, bytes, by part
    host_per_node: float | None
    rows: int | None
    samples_per_row: int  # dpo: a pair; rlvr: completions per prompt
    epochs: float
    steps: int | None
    rollouts: int | None  # rlvr: generation batches (each trained epochs_per_rollout times)
    epochs_per_rollout: int
    tokens: float | None
    flops: float | None
    gpu_hours: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def world(self) -> int:
        return self.machines * self.per_machine

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.accumulation * self.world

    @property
    def total(self) -> float:
        return sum(self.memory.values())


def plan_stage(params: Params, stage: str, mfu: float = 0.4, gpu_tflops: float | None = None) -> StagePlan:
    """One stage's plan under its launch settings (:func:`tulu_lib.train.launch.stage_params`)."""

    p = stage_params(params, stage)
    launch, o = p.launch, getattr(p, stage).optim
    a, zero = arch(p.model.name), Zero.read(launch.deepspeed)
    memory, host = _memory(p, stage, a, zero)
    capacity, problems = _check(p, stage, a, memory)
    rows = dataset_rows({"sft": p.data.sft, "dpo": p.data.preferences, "rlvr": p.data.rlvr}[stage])
    ppo = stage == "rlvr" and p.rlvr.algorithm == "ppo"
    per_row = (p.rlvr.ppo.num_generations if ppo else p.rlvr.num_generations) if stage == "rlvr" else 1
    epochs_per_rollout = p.rlvr.ppo.ppo_epochs if ppo else 1
    world = launch.num_machines * launch.num_processes
    effective = o.per_device_batch_size * o.gradient_accumulation_steps * world
    release = rlvr.schedule(p.rlvr, launch) if stage == "rlvr" else None
    if release is not None:  # the release's total_episodes
        steps, rollouts = release.optimizer_steps, release.rollouts
    elif o.max_steps > 0:
        steps, rollouts = o.max_steps, math.ceil(o.max_steps / epochs_per_rollout)
    elif rows is None:
        steps = rollouts = None
    else:
        rollouts = math.ceil(rows * per_row * o.epochs / effective)
        steps = rollouts * epochs_per_rollout
    tokens = flops = hours = None
    if steps is not None:
        tokens, flops = _work(p, stage, a.params, steps * effective, rollouts * effective)
        hours = flops / ((gpu_tflops or GPU_TFLOPS[launch.gpu]) * 1e12 * mfu) / 3600
    return StagePlan(stage, launch.num_machines, launch.num_processes, zero, launch.deepspeed,
                     o.per_device_batch_size, o.gradient_accumulation_steps, p.seed, capacity, memory, host,
                     rows, per_row, o.epochs, steps, rollouts if stage == "rlvr" else None,
                     epochs_per_rollout, tokens, flops, hours, problems)


def _weight_bytes(p: Params) -> int:
    return 4 if p.model.dtype == "float32" else 2


def _memory(p: Params, stage: str, a: Arch, zero: Zero) -> tuple[dict[str, float], float | None]:
    """Bytes per GPU by part, and DeepSpeed's host bytes per node (None without DeepSpeed)."""
    section, launch = getattr(p, stage), p.launch
    o, wb = section.optim, _weight_bytes(p)
    world = launch.num_machines * launch.num_processes
    z3, z2 = deepspeed_estimators()
    host = None
    if zero.stage == 3:
        host, states, _ = z3(a.params, a.largest_layer, launch.num_processes, launch.num_machines,
                             zero.offload_optimizer, zero.offload_params, True)
    elif zero.stage == 2:
        host, states = z2(a.params, launch.num_processes, launch.num_machines, zero.offload_optimizer)
    else:
        states = 4 * wb * a.params  # weights, gradients, AdamW's two moments
    act_bytes = 2 if (o.bf16 or wb == 2) else 4
    sequences = o.per_device_batch_size * (2 if stage == "dpo" else 1)  # DPO: chosen + rejected
    activations = activation_bytes(a, sequences, o.max_length, act_bytes, o.gradient_checkpointing)
    memory = {"model states": float(states), "activations": float(activations)}
    if (stage == "dpo" and not section.cache_reference) or (stage == "rlvr" and section.beta > 0):
        shards = world if zero.stage == 3 else 1  # ZeRO-3 partitions the frozen model like the policy
        memory["reference"] = 0.0 if zero.offload_params else wb * a.params / shards
    memory["runtime"] = RUNTIME_GB * GB
    return memory, None if host is None else float(host)


def _check(p: Params, stage: str, a: Arch, memory: dict[str, float]) -> tuple[float, list[str]]:
    """The bytes a GPU has for training, and one line per shortfall."""
    launch, problems = p.launch, []
    capacity = launch.gpu_memory_gb * GB
    if stage == "rlvr" and p.rlvr.use_vllm:
        fraction, tp = p.rlvr.vllm_gpu_memory_utilization, p.rlvr.vllm_tensor_parallel_size
        share = fraction * capacity
        capacity -= share
        weights = _weight_bytes(p) * a.params / tp
        if weights > share:
            problems.append(
                f"rlvr: colocated vLLM needs {weights / GB:.1f} GB per GPU for the weights alone "
                f"(rlvr.vllm_tensor_parallel_size {tp}), {(weights - share) / GB:.1f} GB over its "
                f"{fraction:.0%} share ({share / GB:.1f} GB) of launch.gpu_memory_gb="
                f"{launch.gpu_memory_gb:g}")
    total = sum(memory.values())
    if total > capacity:
        parts = " + ".join(f"{k} {v / GB:.1f}" for k, v in memory.items())
        left = "" if capacity == launch.gpu_memory_gb * GB else f" (the {capacity / GB:.1f} GB vLLM leaves)"
        problems.insert(0, f"{stage}: needs {total / GB:.1f} GB per GPU ({parts}), "
                           f"{(total - capacity) / GB:.1f} GB over launch.gpu_memory_gb="
                           f"{launch.gpu_memory_gb:g}{left}; {launch.num_machines} x "
                           f"{launch.num_processes} GPUs, {Zero.read(launch.deepspeed)}")
    return capacity, problems


def _work(p: Params, stage: str, n: int, samples: int, generated: int) -> tuple[float, float]:
    """(tokens, FLOPs) of ``samples`` trained samples (sequences; DPO pairs; RLVR completions, each
    trained once per PPO epoch) and, for RLVR, ``generated`` completions sampled."""
    section = getattr(p, stage)
    o = section.optim
    tokens = samples * (2 if stage == "dpo" else 1) * o.max_length  # at most: every sequence full
    flops = (8 if o.gradient_checkpointing else 6) * n * tokens
    if stage == "dpo":
        flops += 2 * n * tokens  # the reference's forward, once per pair
    if stage == "rlvr":
        flops += 2 * n * generated * section.max_new_tokens  # generation, once per rollout
        flops += 2 * n * tokens if section.beta > 0 else 0  # reference log-probs
    return float(tokens), float(flops)


def plan(params: Params, mfu: float = 0.4, gpu_tflops: float | None = None,
         stages: tuple[str, ...] = STAGES) -> list[StagePlan]:
    if not 0 < mfu <= 1:
        raise ValueError(f"plan: mfu must be in (0, 1], got {mfu}")
    if gpu_tflops is not None and gpu_tflops <= 0:
        raise ValueError(f"plan: gpu_tflops must be > 0, got {gpu_tflops}")
    return [plan_stage(params, s, mfu, gpu_tflops) for s in stages]


def failures(plans: list[StagePlan]) -> list[str]:
    return [line for s in plans for line in s.problems]


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 10 else f"{h:.2g}"


def render(params: Params, plans: list[StagePlan], mfu: float = 0.4, gpu_tflops: float | None = None,
           source: str = "") -> str:
    a, launch = arch(params.model.name), params.launch
    peak = gpu_tflops or GPU_TFLOPS[launch.gpu]
    lines = [f"{params.name}{f' ({source})' if source else ''}: {params.model.name}, "
             f"{_count(a.params)} parameters (largest layer {_count(a.largest_layer)}); "
             f"{launch.gpu} {launch.gpu_memory_gb:g} GB, {peak:g} TFLOPS at MFU {mfu:g}"]
    for s in plans:
        ds = f" ({s.deepspeed})" if s.deepspeed else ""
        lines.append(f"{s.stage:<5} {s.machines} x {s.per_machine} = {s.world} GPUs, {s.zero}{ds}; batch "
                     f"{s.micro_batch} x {s.accumulation} accumulation x {s.world} = {s.effective_batch}; "
                     f"seed {s.seed}")
        parts = " + ".join(f"{k} {v / GB:.1f}" for k, v in s.memory.items())
        verdict = "fits" if s.total <= s.capacity else "DOES NOT FIT"
        by_vllm = "" if s.capacity == launch.gpu_memory_gb * GB else " left by vLLM"
        room = f"{s.capacity / GB:.1f} GB{by_vllm}"
        host = f"; host per node {s.host_per_node / GB:.1f} GB (DeepSpeed)" if s.host_per_node else ""
        lines.append(f"      per GPU: {parts} = {s.total / GB:.1f} GB of {room}: {verdict}{host}")
        unit = {"dpo": "pairs", "rlvr": f"prompts x {s.samples_per_row} completions"}.get(s.stage, "rows")
        rows = "? rows (size unknown offline)" if s.rows is None else f"{s.rows:,} {unit}"
        length = f"{s.epochs:g} epoch(s)"
        if s.rollouts is not None:
            length = (f"{s.rollouts:,} rollouts of {s.effective_batch:,} replies x {s.epochs_per_rollout} "
                      f"epoch(s) each")
        if s.steps is None:
            lines.append(f"      {rows}: steps unknown")
        else:
            lines.append(f"      {rows}, {length}: {s.steps:,} steps, "
                         f"<= {s.tokens:,.0f} tokens, {s.flops:.2e} FLOPs, {_hours(s.gpu_hours)} GPU-hours "
                         f"({_hours(s.gpu_hours / s.world)} h on {s.world})")
        lines += [f"      ! {p}" for p in s.problems]
    return "\n".join(lines)
