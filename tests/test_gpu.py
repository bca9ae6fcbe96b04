"""On a CUDA machine: SFT, DPO and GRPO train in bf16 on the GPU, generation there matches the CPU's,
and Figure 17's memory is read as GPU max-allocated. Skipped without CUDA (CI has none).

The rest of the suite also runs on a GPU machine: TRL puts the trainers' models on CUDA by itself.
"""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tulu_lib.core.params import DPOParams, OptimParams, SFTParams, SourceParams, load_params
from tulu_lib.data.loader import load_preferences, load_sft
from tulu_lib.train import dpo, grpo, sft

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


class Where(TrainerCallback):
    """Where the policy's weights live during a training step, and whether the run trains in bf16."""

    def __init__(self):
        self.seen = set()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.seen.add((next(model.parameters()).device.type, args.bf16))


def _moved(start: str | Path, checkpoint: Path) -> bool:
    a, b = (load_file(str(Path(p) / "model.safetensors")) for p in (start, checkpoint))
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_sft_trains_in_bf16_on_the_gpu(tiny_path, tokenizer, tmp_path):
    rows = load_sft(SourceParams(path="standin:sft", limit=16), seed=0).dataset
    p = SFTParams(optim=OptimParams(learning_rate=1e-2, max_steps=6, per_device_batch_size=4, max_length=128,
                                    save_steps=100, lr_scheduler="constant", bf16=True))
    where = Where()
    result = sft.train_sft("tiny-llama", rows, p, tmp_path, seed=0, callbacks=[where])
    assert where.seen == {("cuda", True)}
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert sum(losses[3:]) < sum(losses[:3]) and _moved(tiny_path, result.checkpoint)


def test_dpo_trains_in_bf16_on_the_gpu_with_cached_reference_logps(tiny_path, tmp_path):
    pairs = load_preferences(SourceParams(path="standin:preferences", limit=8), seed=0).dataset
    params = DPOParams(optim=OptimParams(learning_rate=1e-2, max_steps=3, per_device_batch_size=2,
                                         max_length=96, save_steps=100, bf16=True), loss="dpo_norm", beta=0.5)
    where = Where()
    result = dpo.train_dpo(tiny_path, pairs, params, tmp_path / "run", seed=0,
                           ref_cache_root=tmp_path / "cache", callbacks=[where])
    assert where.seen == {("cuda", True)} and result.stats["reference"]["mode"] == "cache"
    assert all(math.isfinite(e["loss"]) for e in result.log_history if "loss" in e)
    assert _moved(tiny_path, result.checkpoint)


def test_grpo_trains_in_bf16_on_the_gpu(tiny_path, tmp_path, letter_rows):
    params = load_params("params/smoke.yaml", ["rlvr.optim.max_steps=2", "rlvr.max_new_tokens=16",
                                               "rlvr.non_eos_penalty=null", "rlvr.optim.bf16=true"])
    rows = letter_rows(8, at_least=9)
    where = Where()
    result = grpo.train_grpo("tiny-llama", rows, params.rlvr, tmp_path, seed=0, callbacks=[where])
    assert where.seen == {("cuda", True)}
    logged = [h for h in result.log_history if "kl" in h]
    assert logged and all(math.isfinite(h["kl"]) and math.isfinite(h["ifeval/kl"]) for h in logged)
    assert any(h["reward_std"] > 0 for h in logged) and _moved(tiny_path, result.checkpoint)


def test_gpu_generation_matches_the_cpu_greedy(tiny_path):
    from transformers import AutoModelForCausalLM

    from tulu_lib.generation.backends import HFGenerator
    from tulu_lib.generation.types import SamplingParams

    prompts = [[{"role": "user", "content": text}] for text in ("Say something.", "Count to three.", "Hi")]
    sampling = SamplingParams(max_new_tokens=8)
    gpu = HFGenerator.from_path(tiny_path, batch_size=3)
    cpu = HFGenerator(AutoModelForCausalLM.from_pretrained(tiny_path).eval(), gpu.tokenizer, batch_size=3)
    assert gpu.model.device.type == "cuda" and cpu.model.device.type == "cpu"
    on_gpu, on_cpu = gpu.generate(prompts, sampling), cpu.generate(prompts, sampling)
    assert [c.text for (c,) in on_gpu] == [c.text for (c,) in on_cpu]


def test_figure_17_memory_is_read_as_gpu_max_allocated(tiny_path, tmp_path):
    from tulu_lib.ablations import memory

    table = memory.measure_memory(tiny_path, max_length=64, batch_size=1, steps=1, workdir=tmp_path)
    assert (table["device"] != "cpu").all()
    assert (table["cuda_max_allocated_mb"] > 0).all() and table["cuda_max_allocated_ratio"].iloc[0] == 1.0
    assert memory._memory_measure(table)[0] == "cuda_max_allocated_mb"
    # without the reference model in memory, less is resident on the GPU before the first step
    with_ref = table[table["reference_model_in_memory"]]["cuda_resident_mb"]
    without = table[~table["reference_model_in_memory"]]["cuda_resident_mb"]
    assert without.max() < with_ref.min()


def test_one_zero3_step_on_the_gpu(tmp_path):
    """The 8B recipe's engine on one GPU: SFT under the release's ZeRO-3 config through
    train.entry (accelerate launch, one process, nccl), loaded partitioned, one bf16 step."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed")
    from tulu_lib.core.params import SourceParams
    from tulu_lib.data.loader import load_sft
    from tulu_lib.train import entry

    data = tmp_path / "rows"
    load_sft(SourceParams(path="standin:sft", limit=8), seed=0).dataset.save_to_disk(str(data))
    p = load_params("params/smoke.yaml", ["sft.optim.max_steps=1", "sft.optim.max_length=128",
                                          "sft.optim.bf16=true", "launch.mixed_precision=bf16",
                                          "launch.deepspeed=params/deepspeed/zero3_no_offload.json"])
    result = entry.train("sft", p, model="tiny-llama", data=data, out=tmp_path / "zero3")
    assert result.stats["loaded"]["partitioned"] == result.stats["loaded"]["parameters"] > 0
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    assert len(losses) == 1 and math.isfinite(losses[0])
    assert (result.checkpoint / "model.safetensors").is_file()
