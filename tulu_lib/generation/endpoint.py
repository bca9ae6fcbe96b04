"""An OpenAI-compatible chat endpoint (vLLM serve, llama.cpp server, a hosted API) as a generator.

Usage::

    gen = OpenAIGenerator("http://127.0.0.1:8000/v1", "my-model", cache_dir="runs/x/endpoint-cache")
    outs = gen.generate([[{"role": "user", "content": "2+2?"}]], SamplingParams(max_new_tokens=32))
    gen.stats  # {'cache_hits': 0, 'generated': 1, 'requests': 1, 'retries': 0, 'failures': 0, ...}

Requests go ``max_concurrency`` at a time; results come back in prompt order. ``n > 1`` is sent
as n requests with seeds ``seed + k`` (some servers ignore ``n``). Each attempt is bounded by
``timeout_s`` (connect and each read; the whole reply within twice that). HTTP 429, 5xx,
connection errors, timeouts and unparseable replies are retried with exponential backoff and
jitter (``Retry-After`` honoured; waits capped at ``max_backoff_s``) up to ``max_retries`` times;
other 4xx fail at once. So one sample takes at most about ``(max_retries + 1) * 2 * timeout_s +
max_retries * max_backoff_s``, then fails with :class:`EndpointError` (URL without credentials,
status, last error). ``on_error="skip"`` returns ``[]`` for a prompt whose request failed and
goes on with the others.

``cache_dir``: each completion is appended, fsynced, to ``completions.jsonl`` there, keyed by
the sha256 of the request (model, messages, sampling parameters, the sample's seed; not the URL
or key), so an interrupted job resumes without re-sending what came back and a rerun sends
nothing; an unreadable line (a write cut by a kill) is skipped.

The key is read from ``$<api_key_env>`` at each request and sent only in the Authorization
header: never stored on the object, in the cache, in stats, logs or error messages (a reply
that echoes it has it masked, a piece of it cut off at the message's length included). No
redirect is followed, to another host or the same one: urllib would turn a 301/302/303 after
POST into a GET carrying the same Authorization header to wherever ``Location`` points, and an
API endpoint that redirects is misconfigured anyway. A 3xx fails at once (not retried) with
:class:`EndpointError` naming where it pointed (without credentials or query): set
``base_url`` to that URL if it is meant.

Plain urllib rather than the ``openai`` package (installed only as a vLLM dependency, not ours):
no new dependency, and retries, timeouts and the cache follow this one policy (the package
retries on its own too).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from tulu_lib.generation.types import Completion, Messages, SamplingParams

log = logging.getLogger(__name__)
CACHE_FILE = "completions.jsonl"


class EndpointError(RuntimeError):
    """A request that failed for good: ``url`` (no credentials), ``status`` (None: no HTTP reply),
    ``attempts``."""

    def __init__(self, message: str, url: str, status: int | None, attempts: int):
        super().__init__(message)
        self.url, self.status, self.attempts = url, status, attempts

    def __reduce__(self):  # picklable (e.g. back from a worker process)
        return type(self), (str(self), self.url, self.status, self.attempts)


class _Failure(Exception):
    def __init__(self, status: int | None, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.retryable, self.retry_after = status, message, retryable, retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the 3xx reaches the caller as an ``HTTPError``, the key stays home."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _safe(url: str) -> str:
    """``url`` without user info, query or fragment: what messages and logs show."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _redactor(secret: str | None):
    """A function masking ``secret`` in a text, and a piece of it (4 characters or more) that a cut
    left at the end."""
    def redact(text: str) -> str:
        if not secret:
            return text
        text = text.replace(secret, "***")
        for k in range(min(len(secret) - 1, len(text)), 3, -1):
            if text.endswith(secret[:k]):
                return text[:-k] + "***"
        return text
    return redact


class OpenAIGenerator:
    """``POST {base_url}/chat/completions`` for each sample; see the module docstring.

    ``stats`` (cumulative over calls): ``cache_hits``, ``generated`` (fresh completions),
    ``requests`` (HTTP attempts, retries included), ``retries``, ``failures`` (samples given up
    on), ``skipped_prompts`` (prompts returned empty under ``on_error="skip"``)."""

    def __init__(self, base_url: str, model: str, timeout_s: float = 120.0, *, max_retries: int = 5,
                 max_concurrency: int = 8, cache_dir: str | os.PathLike | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", on_error: str = "raise",
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, progress: bool = True):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout_s, self.max_retries = model, timeout_s, max(0, max_retries)
        self.max_concurrency, self.api_key_env, self.on_error = max(1, max_concurrency), api_key_env, on_error
        self.backoff_s, self.max_backoff_s, self.progress = backoff_s, max_backoff_s, progress
        self.cache = _Cache(Path(cache_dir)) if cache_dir is not None else None
        self.stats = dict.fromkeys(("cache_hits", "generated", "requests", "retries", "failures",
                                    "skipped_prompts"), 0)
        self._lock = threading.Lock()

    @property
    def safe_url(self) -> str:
        """The URL without user info, query or fragment: what messages and logs show."""
        return _safe(self.url)

    def __repr__(self) -> str:
        cache = str(self.cache.path) if self.cache else None
        return (f"OpenAIGenerator({self.safe_url!r}, model={self.model!r}, cache={cache!r}, "
                f"max_concurrency={self.max_concurrency}, api_key_env={self.api_key_env!r})")

    def generate(self, prompts: Sequence[Messages], sampling: SamplingParams) -> list[list[Completion]]:
        from tqdm.auto import tqdm

        results: list[list[Completion | None]] = [[None] * sampling.n for _ in prompts]
        todo = []
        for i, messages in enumerate(prompts):
            for k in range(sampling.n):
                body = self._body(messages, sampling, sampling.seed + k)
                key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
                hit = self.cache.entries.get(key) if self.cache else None
                if hit is not None:
                    results[i][k] = hit
                else:
                    todo.append((i, k, key, body))
        self._count(cache_hits=len(prompts) * sampling.n - len(todo))
        failed: set[int] = set()
        if todo:
            stop = threading.Event()  # set when the call is abandoned: in-flight retries give up
            with ThreadPoolExecutor(min(self.max_concurrency, len(todo))) as pool, \
                    tqdm(total=len(todo), desc="endpoint", disable=not self.progress or len(todo) < 2) as bar:
                futures = {pool.submit(self._sample, key, body, stop): (i, k) for i, k, key, body in todo}
                try:
                    for future in as_completed(futures):
                        i, k = futures[future]
                        bar.update()
                        try:
                            results[i][k] = future.result()
                        except EndpointError as exc:
                            if self.on_error == "raise":
                                raise
                            log.warning("skipping prompt %d: %s", i, exc)
                            failed.add(i)
                finally:  # on a raise (or ^C): drop queued samples; in-flight ones stop retrying
                    stop.set()
                    for f in futures:
                        f.cancel()
        self._count(skipped_prompts=len(failed))
        return [[] if i in failed else row for i, row in enumerate(results)]  # type: ignore[misc]

    def _body(self, messages: Messages, sampling: SamplingParams, seed: int) -> dict:
        body = {"model": self.model, "messages": list(messages), "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": seed}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return body

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self.stats[name] += delta

    def _sample(self, key: str, body: dict, stop: threading.Event) -> Completion:
        """One sample with retries; cached as soon as it comes back."""
        data, attempts, delay, last = json.dumps(body).encode(), 0, 0.0, None
        while attempts <= self.max_retries:
            if attempts:
                if stop.wait(delay):
                    raise EndpointError(f"POST {self.safe_url} cancelled", self.safe_url, None, attempts)
                self._count(retries=1)
            attempts += 1
            self._count(requests=1)
            try:
                completion = self._attempt(data)
            except _Failure as failure:
                last = (failure.status, failure.message)
                if not failure.retryable:
                    break
                backoff = self.backoff_s * 2 ** (attempts - 1) * random.uniform(0.5, 1.0)
                wait = backoff if failure.retry_after is None else failure.retry_after
                delay = min(self.max_backoff_s, wait)
                if attempts <= self.max_retries:
                    log.info("POST %s: %s; retry %d/%d in %.2f s", self.safe_url, failure.message, attempts,
                             self.max_retries, delay)
                continue
            if self.cache:
                self.cache.put(key, completion)
            self._count(generated=1)
            return completion
        self._count(failures=1)
        status, message = last
        raise EndpointError(f"POST {self.safe_url} failed after {attempts} attempt(s); last status: "
                            f"{status if status is not None else 'no HTTP reply'}; last error: {message}",
                            self.safe_url, status, attempts)

    def _attempt(self, data: bytes) -> Completion:
        """One HTTP request; every failure becomes a :class:`_Failure` with the key redacted."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        secret = os.environ.get(self.api_key_env) if self.api_key_env else None
        if secret:
            headers["Authorization"] = f"Bearer {secret}"

        redact = _redactor(secret)
        request = urllib.request.Request(self.url, data, headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as response:
                raw, deadline = [], time.monotonic() + self.timeout_s
                while chunk := response.read1(1 << 16):
                    raw.append(chunk)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"reply not complete within {self.timeout_s:g} s")
                raw = b"".join(raw)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:  # see the module docstring: never followed
                where = exc.headers.get("Location", "") if exc.headers else ""
                try:
                    where = _safe(urllib.parse.urljoin(self.url, where)) if where else "nowhere"
                except ValueError:  # an unparseable Location
                    where = "an unreadable Location"
                raise _Failure(exc.code, redact(f"HTTP {exc.code} redirect to {where} not followed (the "
                                                "API key goes to the configured host only): set base_url "
                                                "to the final URL"), False) from None
            try:
                detail = exc.read(300).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                detail = ""
            retryable = exc.code == 429 or exc.code >= 500
            wait = _retry_after(exc.headers.get("Retry-After")) if retryable and exc.headers else None
            raise _Failure(exc.code, redact(f"HTTP {exc.code} {exc.reason}: {detail}".strip()), retryable,
                           wait) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out (URLError too)
            reason = getattr(exc, "reason", exc)
            raise _Failure(None, redact(f"{type(reason).__name__}: {reason}"), True) from None
        try:
            return _parse(raw)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = raw[:200].decode("utf-8", "replace")
            raise _Failure(200, redact(f"unparseable reply ({type(exc).__name__}: {exc}): {snippet!r}"),
                           True) from None


def _parse(raw: bytes) -> Completion:
    data = json.loads(raw)
    choice = data["choices"][0]
    text = choice["message"]["content"] or ""
    if not isinstance(text, str):
        raise TypeError("message content is not a string")
    tokens = (data.get("usage") or {}).get("completion_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        tokens = len(text.split())
    return Completion(text, choice.get("finish_reason") == "stop", tokens)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Cache:
    """Append-only JSONL of ``{"key", "text", "finished", "num_tokens"}``, one fsynced line each."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path, self.entries, self.unreadable = directory / CACHE_FILE, {}, 0
        self._lock = threading.Lock()
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self.entries[row["key"]] = Completion(row["text"], bool(row["finished"]),
                                                              int(row["num_tokens"]))
                    except (ValueError, KeyError, TypeError):
                        self.unreadable += line.strip() != b""
            if self.unreadable:
                log.warning("%s: skipped %d unreadable line(s)", self.path, self.unreadable)

    def put(self, key: str, c: Completion) -> None:
        line = json.dumps({"key": key, "text": c.text, "finished": c.finished, "num_tokens": c.num_tokens},
                          ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a+b") as f:
            if f.seek(0, os.SEEK_END):  # a line cut by a kill must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
            self.entries[key] = c
