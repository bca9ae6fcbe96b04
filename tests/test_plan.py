"""tulu_lib.train.plan and ``tulu-repro plan``: DeepSpeed's estimators, activations, steps, the fit check."""

import json
import math
from pathlib import Path

import pytest

from tulu_lib import cli
from tulu_lib.core.params import SourceParams, load_params
from tulu_lib.train import plan

REPO = Path(__file__).resolve().parents[1]
PARAMS = sorted((REPO / "params").glob("*.yaml"))
P8, P70 = REPO / "params" / "tulu3-8b.yaml", REPO / "params" / "tulu3-70b.yaml"
GIB = 2**30


def _run(capsys, *argv):
    code = cli.main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_every_shipped_params_file_passes_the_plan(path, capsys):
    code, out, err = _run(capsys, "--params", str(path))
    assert code == 0, err
    assert err == "" and out.count(": fits") == 3 and "GPU-hours" in out


def test_70b_rlvr_with_colocated_vllm_on_one_gpu_does_not_fit(capsys):
    """Colocated vLLM at tensor parallel 1 holds all 70B bf16 weights on every GPU (the params: 8)."""
    code, out, err = _run(capsys, "--params", str(P70), "--set", "rlvr.vllm_tensor_parallel_size=1")
    assert code == cli.EXIT_BAD_PARAMS
    (line,) = err.splitlines()
    assert line.startswith("error: rlvr: colocated vLLM needs 141.1 GB per GPU") and "24.0 GB" in line


def test_70b_sft_squeezed_onto_one_node_without_offload_fails_in_one_line(capsys):
    code, out, err = _run(capsys, "--params", str(P70), "--stages", "sft",
                          "--set", "launch.sft.num_machines=1")
    assert code == cli.EXIT_BAD_PARAMS and "DOES NOT FIT" in out
    (line,) = err.splitlines()
    assert line.startswith("error: sft: needs 177.1 GB per GPU (model states 162.9 + ")
    assert "97.1 GB over launch.gpu_memory_gb=80; 1 x 8 GPUs, ZeRO-3, no offload" in line
    # the release's offloading config makes the same node fit the model states
    code, _, _ = _run(capsys, "--params", str(P70), "--stages", "sft", "--set", "launch.sft.num_machines=1",
                      "--set", "launch.sft.deepspeed=params/deepspeed/zero3_offload.json")
    assert code == 0


def test_parameter_counts_of_the_release_models():
    assert plan.LLAMA_31_8B.params == 8_030_261_248 and plan.LLAMA_31_70B.params == 70_553_706_496
    assert plan.LLAMA_31_8B.largest_layer == 128_256 * 4096  # embed_tokens / lm_head
    assert plan.ARCHS["smollm2-135m-instruct"].params == 134_515_008  # tied embedding, counted once


def test_zero3_estimator_matches_a_hand_computed_case():
    """Llama-3.1-8B on 1 node x 8 GPUs, no offload: 4 B per largest-layer param (16-bit weights and
    gradient, gathered) + 18 B per param / 8 GPUs; host: the largest layer x 4 B x 8 x 1.5 (zero.Init)."""
    cpu, gpu, largest = plan.zero3_model_states_mem(8_030_261_248, 525_336_576, 8, 1, False, False, True)
    assert largest == 2_101_346_304
    assert gpu == 2_101_346_304 + 18_068_087_808 == 20_169_434_112
    assert cpu == 25_216_155_648
    _, offloaded, _ = plan.zero3_model_states_mem(8_030_261_248, 525_336_576, 8, 1, True, True)
    assert offloaded == largest


def test_estimators_print_deepspeeds_documented_numbers():
    """DeepSpeed's docs (docs/code-docs/source/memory.rst), estimate_*_all_cold for 2851M params,
    32M largest layer, 1 node x 8 GPUs: (per CPU, per GPU) in GiB as printed."""
    z3 = {(True, True, True): ("71.69", "0.12"), (True, True, False): ("127.45", "0.12"),
          (True, False, True): ("63.72", "0.78"), (True, False, False): ("127.45", "0.78"),
          (False, False, True): ("1.43", "6.09"), (False, False, False): ("127.45", "6.09")}
    for (opt, par, init), want in z3.items():
        cpu, gpu, _ = plan.zero3_model_states_mem(2851e6, 32e6, 8, 1, opt, par, init)
        assert (f"{cpu / GIB:.2f}", f"{gpu / GIB:.2f}") == want
    cpu, gpu = plan.zero2_model_states_mem(2851e6, 8, 1, cpu_offload=True)
    assert (f"{cpu / GIB:.2f}", f"{gpu / GIB:.2f}") == ("127.45", "5.31")
    # without offload the docs still show 15.93 (4 + 16/N B per param); DeepSpeed >= 0.14.2 (PR #5099)
    # computes 2 + 18/N (16-bit weights; 16-bit and fp32 gradients, fp32 master, Adam's moments) and
    # estimate_zero2_model_states_mem_needs_all_cold of DeepSpeed 0.16.9 prints 11.28
    cpu, gpu = plan.zero2_model_states_mem(2851e6, 8, 1, cpu_offload=False)
    assert (f"{cpu / GIB:.2f}", f"{gpu / GIB:.2f}") == ("127.45", "11.28")
    assert gpu == int(2 * 2851e6 + int(18 * 2851e6 / 8))


def test_deepspeeds_own_functions_agree_when_installed():
    try:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs as z3
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs as z2
    except Exception:  # noqa: BLE001 (the gpu extra: any import error)
        pytest.skip("deepspeed does not import here")
    for opt, par, init in ((True, True, True), (True, False, False), (False, False, True)):
        assert z3(70_553_706_496, 1_050_673_152, 8, 8, opt, par, init) == \
            plan.zero3_model_states_mem(70_553_706_496, 1_050_673_152, 8, 8, opt, par, init)
    assert z2(8_030_261_248, 8, 1, False) == plan.zero2_model_states_mem(8_030_261_248, 8, 1, False)


def test_activation_estimate_by_hand():
    a = plan.Arch(layers=2, hidden=8, intermediate=32, heads=2, kv_heads=1, vocab=100)  # kv_dim 4
    layer = 20 * 2 * (8 * 8 + 4 * 4 + 4 * 32)  # 2 sequences x 10 tokens, 2 bytes: 8,320
    logits = 20 * 100 * (2 + 8)
    assert plan.activation_bytes(a, 2, 10, 2, checkpointing=True) == 2 * 20 * 8 * 2 + layer + logits
    assert plan.activation_bytes(a, 2, 10, 2, checkpointing=False) == 2 * layer + logits


def test_steps_tokens_and_gpu_hours_of_8b_sft():
    s = plan.plan_stage(load_params(P8), "sft")
    assert (s.world, s.effective_batch, s.rows) == (64, 128, 939_343)
    assert s.steps == math.ceil(939_343 * 2 / 128) == 14_678
    assert s.tokens == 14_678 * 128 * 4096
    assert s.flops == 8 * 8_030_261_248 * s.tokens  # gradient checkpointing: 8N per token
    assert s.gpu_hours == pytest.approx(s.flops / (989e12 * 0.4) / 3600)
    assert plan.plan_stage(load_params(P8), "sft", mfu=0.2, gpu_tflops=494.5).gpu_hours == \
        pytest.approx(4 * s.gpu_hours)
    d = plan.plan_stage(load_params(P8), "dpo")  # pairs: chosen + rejected per sample
    assert (d.rows, d.steps, d.tokens) == (271_409, 2121, 2121 * 128 * 2 * 2048)


def test_70b_dpo_offloads_as_the_release_did():
    d = plan.plan_stage(load_params(P70), "dpo")
    assert (d.zero.stage, d.zero.offload_optimizer, d.zero.offload_params) == (3, True, True)
    assert d.memory["model states"] == 4 * 1_050_673_152  # only the gathered largest layer
    assert d.host_per_node == pytest.approx(70_553_706_496 * 18 / 8 * 1.5, rel=1e-9)


def test_dataset_rows_from_limits_mixes_and_release_sizes():
    assert plan.dataset_rows(SourceParams(path="allenai/tulu-3-sft-mixture")) == 939_343
    assert plan.dataset_rows(SourceParams(path="allenai/tulu-3-sft-mixture", limit=1000)) == 1000
    assert plan.dataset_rows(SourceParams(path="standin:rlvr", mix={"a": 6, "b": 6})) == 12
    assert plan.dataset_rows(SourceParams(path="allenai/tulu-3-sft-mixture", mix={"a": 0.5})) is None
    assert plan.dataset_rows(SourceParams(path="someone/unknown")) is None


def test_a_local_checkpoint_is_read_from_its_config(tmp_path, capsys):
    config = {"num_hidden_layers": 4, "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(config))
    a = plan.arch(str(tmp_path))
    assert a.params == 4 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 256 + 2 * 64) + 64 + 2 * 1000 * 64
    code, out, _ = _run(capsys, "--params", str(REPO / "params" / "smoke.yaml"),
                        "--set", f"model.name={tmp_path}")
    assert code == 0 and "0.4M parameters" in out  # 374,336
    with pytest.raises(ValueError, match="no architecture for model 'someone/model'"):
        plan.arch("someone/model")


def test_bad_flags_and_zero_stages():
    with pytest.raises(SystemExit):
        cli.main(["plan", "--params", str(P8), "--mfu", "1.5"])
    with pytest.raises(ValueError, match="gpu_tflops must be > 0"):
        plan.plan(load_params(P8), gpu_tflops=0)
    assert str(plan.Zero.read("params/deepspeed/zero3_no_offload.json")) == "ZeRO-3, no offload"
    assert str(plan.Zero.read("params/deepspeed/zero3_offload.json")) == "ZeRO-3, offload optimizer+params"
    assert str(plan.Zero.read(None)) == "no DeepSpeed"
