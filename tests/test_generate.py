import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tulu_lib.generation.backends import make_generator
from tulu_lib.generation.endpoint import OpenAIGenerator
from tulu_lib.generation.types import SamplingParams

PROMPT = [{"role": "user", "content": "Say something."}]


def test_hf_backend_greedy_is_deterministic_and_reports_truncation(tiny_path):
    gen = make_generator("hf", "tiny-llama", batch_size=2)
    sampling = SamplingParams(max_new_tokens=6)
    first = gen.generate([PROMPT, PROMPT, PROMPT], sampling)
    assert first == gen.generate([PROMPT, PROMPT, PROMPT], sampling)
    assert len(first) == 3 and all(len(row) == 1 for row in first)
    for (c,) in first:  # a random model rarely emits EOS within 6 tokens
        assert c.num_tokens <= 7 and c.finished == (c.num_tokens < 6 or c.num_tokens == 7)


def test_hf_backend_samples_n_completions(tiny_path):
    gen = make_generator("hf", "tiny-llama")
    (row,) = gen.generate([PROMPT], SamplingParams(max_new_tokens=5, temperature=1.0, n=3, seed=1))
    assert len(row) == 3 and len({c.text for c in row}) > 1


def test_unknown_backend_and_missing_url():
    with pytest.raises(ValueError, match="choose hf, vllm or openai"):
        make_generator("tgi", "tiny-llama")
    with pytest.raises(ValueError, match="needs base_url"):
        make_generator("openai", "m")


class _Stub(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.seen.append((self.path, body))
        reply = {"choices": [{"message": {"content": f"echo {body['messages'][-1]['content']}"},
                              "finish_reason": "stop" if body["max_tokens"] > 3 else "length"}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_backend_against_a_loopback_server():
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gen = OpenAIGenerator(f"http://127.0.0.1:{server.server_port}/v1", "local-model", timeout_s=5)
        (row,) = gen.generate([PROMPT], SamplingParams(max_new_tokens=16, n=2, seed=7))
        assert [c.text for c in row] == ["echo Say something."] * 2 and row[0].finished
        (cut,) = gen.generate([PROMPT], SamplingParams(max_new_tokens=2))
        assert not cut[0].finished
        path, body = _Stub.seen[0]
        assert path == "/v1/chat/completions" and body["model"] == "local-model"
        assert sorted(b["seed"] for _, b in _Stub.seen[:2]) == [7, 8]  # n requests, distinct seeds
    finally:
        server.shutdown()


def test_hf_loglikelihood_matches_a_full_forward_and_shares_contexts(tiny_path):
    import torch

    gen = make_generator("hf", "tiny-llama", batch_size=3)
    context = "Question: 2+2?\nAnswer:"
    requests = [(context, f" {x}") for x in "ABCD"] + [("Hello", " world, again")]
    calls = []
    gen.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(1), with_kwargs=True)
    scores = gen.loglikelihood(requests)
    assert len(calls) == 1  # the four letters share one input; two unique inputs fit one batch of 3
    tok = gen.tokenizer
    for (ctx, cont), score in zip(requests, scores, strict=True):
        ids = tok(ctx + cont, add_special_tokens=False)["input_ids"]
        n_ctx = len(tok(ctx, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logits = gen.model(torch.tensor([ids], device=gen.model.device)).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        expected = sum(float(logp[i - 1, ids[i]]) for i in range(n_ctx, len(ids)))
        assert abs(score - expected) < 1e-4


def test_hf_complete_continues_raw_text_without_the_chat_template(tiny_path):
    gen = make_generator("hf", "tiny-llama")
    sampling = SamplingParams(max_new_tokens=4)
    text = gen.tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert gen.complete([text], sampling) == gen.generate([PROMPT], sampling)
