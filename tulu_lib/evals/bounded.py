"""Scorers and verifiers under a per-item time budget, on a bounded input: a timeout or a crash
is an :class:`Outcome` the caller counts (``timeouts``, ``scorer_errors``), never an abort.

The call runs in a worker process that is killed when the item overruns its budget. A process,
because what runs long are C calls that hold the GIL and never see a signal (``re.sub`` over a
nested ``\\frac`` in Minerva's normalisation: minutes on a 40 KB reply), and sympy/math-verify,
whose SIGALRM timeouts work only in the main thread and raise ``TimeoutException`` (a
``BaseException``): a thread cannot be stopped, an alarm cannot reach the threads RLVR's reward
functions or a notebook call from. A worker is a fresh ``python -m tulu_lib.evals.bounded`` (not
a ``multiprocessing`` child, which would import the caller's main script again) with the
scorers' modules imported; it takes one pickled call at a time over a socket (0.5-0.6 ms a call
more than in-process, measured on a loaded 2-core machine: 0.3 s for 512 RLVR replies). One killed
after a timeout is replaced at once, in the background (its imports take 3-5 s there). The budget's clock
starts when the worker starts the item: not while a worker starts, imports the scorer's module
or runs that module's ``warm_up()`` (lazy loads: lm-eval's IFEval files, langdetect's profiles,
math-verify's grammar), once per worker.

Runs in the calling process instead (exceptions still caught and counted, no time bound but the
scorer's own): a function marked :func:`in_process` (HumanEval's sandbox and AlpacaEval's judge
bound themselves and keep state here), one that cannot be pickled or imported by a worker (a
closure, a test's function), ``timeout_s=None``, or when no worker could start (said once, as a
warning). A call made inside a worker (GSM8K's scorer calling :func:`~tulu_lib.evals.verifiers.verify`)
is a plain call: the outer call's budget bounds it and its exception is the item's.

Input bound: every scorer and verifier sees at most the last :data:`MAX_SCORED_CHARS` characters
of an output (:func:`tail`), the same everywhere: answers come at the end, and no reply within
the params' token budgets (2,048 tokens at most) comes near it.

Usage::

    outcome = run(task.score, row, tail(output), timeout_s=5.0, label=row["id"])
    outcome.status   # "ok" (outcome.value), "timeout" or "error" (outcome.error: "TypeError: ...")
"""

from __future__ import annotations

import atexit
import functools
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
"""The per-item budget when none is given (``eval.score_timeout_s``'s default; RLVR's verifier)."""
MAX_SCORED_CHARS = 32_768
"""Scorers see an output's last this many characters (2,048 tokens are about 8,000)."""
STARTUP_TIMEOUT_S = 120.0  # a worker's start: its imports
PRELOAD = ("tulu_lib.evals.verifiers",)  # imported as a worker starts; a function's module at its first call
_IN_PROCESS = "_tulu_scored_in_process"

_lock = threading.Lock()
_idle: list[_Worker] = []
_in_worker = False  # set in a worker: a nested call runs as a plain call (the outer one is bounded)
_counts: Counter = Counter()
_unloadable: set[str] = set()  # functions a worker could not import
_no_worker_warned = False


@dataclass(frozen=True)
class Outcome:
    """What one bounded call gave: ``status`` ok (``value``), timeout, or error (``error``, the
    exception's type and message); ``seconds`` it took."""

    status: Literal["ok", "timeout", "error"]
    value: Any = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def tail(text: str, max_chars: int = MAX_SCORED_CHARS) -> str:
    """The last ``max_chars`` characters of ``text`` (all of it when shorter): what is scored."""
    return text if len(text) <= max_chars else text[-max_chars:]


def in_process(fn: Callable) -> Callable:
    """Mark a scorer that bounds itself and must run in the calling process (a sandbox with its
    own timeout, a judge endpoint with its own): :func:`run` calls it directly."""
    setattr(fn, _IN_PROCESS, True)
    return fn


def counts() -> dict[str, int]:
    """Timeouts and scorer errors of :func:`run` in this process so far (RLVR's log reads them)."""
    return {"timeouts": _counts["timeout"], "scorer_errors": _counts["error"]}


def run(fn: Callable, *args: Any, timeout_s: float | None = DEFAULT_TIMEOUT_S, label: object = None,
        reraise: tuple[type[BaseException], ...] = (), **kwargs: Any) -> Outcome:
    """``fn(*args, **kwargs)`` within ``timeout_s`` seconds (see the module docstring). An
    exception of a ``reraise`` type (a malformed ground truth: the data's fault, not the
    reply's) is raised here; every other one, and a timeout, is returned and counted."""
    if _in_worker:  # nested in a bounded call (GSM8K's scorer verifying): its failure is the item's
        return Outcome("ok", fn(*args, **kwargs))
    start = time.monotonic()
    target = fn.func if isinstance(fn, functools.partial) else fn
    if (timeout_s is None or getattr(target, _IN_PROCESS, False) or _no_worker_warned
            or _name(fn) in _unloadable):
        return _finish(_inline(fn, args, kwargs, reraise), start, fn, label, timeout_s)
    try:
        payload = ForkingPickler.dumps((fn, args, kwargs, reraise))
    except Exception:  # noqa: BLE001 - a closure, a lock, ...: not sendable, so it runs here
        return _finish(_inline(fn, args, kwargs, reraise), start, fn, label, timeout_s)
    worker = _take()
    if worker is None:
        return _finish(_inline(fn, args, kwargs, reraise), start, fn, label, timeout_s)
    try:
        worker.conn.send_bytes(payload)
        # the worker imports the function's module and runs its warm_up() first: not the item's time
        if not worker.conn.poll(STARTUP_TIMEOUT_S):
            _replace(worker)
            return _finish(Outcome("error", error=f"the scorer did not start within {STARTUP_TIMEOUT_S:g} s"),
                           start, fn, label, timeout_s)
        kind, value = worker.conn.recv()
        if kind == "start":
            if not worker.conn.poll(timeout_s):
                _replace(worker)
                return _finish(Outcome("timeout"), start, fn, label, timeout_s)
            kind, value = worker.conn.recv()
    except (EOFError, OSError):  # the worker died mid-item (killed, a crash in C)
        try:
            code = worker.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        _replace(worker)
        return _finish(Outcome("error", error=f"the scorer's process died (exit code {code})"),
                       start, fn, label, timeout_s)
    except BaseException:  # ^C while waiting: the worker is busy with this item
        worker.close()
        raise
    with _lock:
        _idle.append(worker)
    if kind == "raise":
        raise value
    if kind == "unloadable":  # e.g. a function of a test module or a script: run it here
        _unloadable.add(_name(fn))
        return _finish(_inline(fn, args, kwargs, reraise), start, fn, label, timeout_s)
    return _finish(Outcome("ok", value) if kind == "ok" else Outcome("error", error=value),
                   start, fn, label, timeout_s)


def _finish(outcome: Outcome, start: float, fn: Callable, label: object, timeout_s: float | None) -> Outcome:
    outcome = Outcome(outcome.status, outcome.value, outcome.error, time.monotonic() - start)
    if not outcome.ok:
        with _lock:
            _counts[outcome.status] += 1
        name = _name(fn)
        what = f"timed out after {timeout_s:g} s" if outcome.status == "timeout" else outcome.error
        log.warning("%s%s: %s; scored as failed", name, f" ({label})" if label is not None else "", what)
    return outcome


def _name(fn: Callable) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(target).__name__)}"


def _inline(fn: Callable, args: tuple, kwargs: dict, reraise: tuple) -> Outcome:
    try:
        return Outcome("ok", fn(*args, **kwargs))
    except reraise:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - math_verify's TimeoutException is a BaseException
        return Outcome("error", error=_describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _take() -> _Worker | None:
    """An idle worker, ready (one started now if none is), or None when none can start."""
    global _no_worker_warned
    while True:
        with _lock:
            worker = _idle.pop() if _idle else None
        try:
            worker = worker or _Worker()
            worker.wait_ready()
            return worker
        except Exception as exc:  # noqa: BLE001 - no worker: score here, unbounded, and say so once
            if worker is not None:
                worker.close()
            if isinstance(exc, _Stale):
                continue
            _no_worker_warned = True
            log.warning("no scoring worker (%s): scorers run in this process without a time budget",
                        _describe(exc))
            return None


class _Stale(Exception):
    """An idle worker that died meanwhile: take another."""


class _Worker:
    """One ``python -m tulu_lib.evals.bounded FD`` process and our end of its socket."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # where tulu_lib is, however it was found
        path = os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "PYTHONPATH": path}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tulu_lib.evals.bounded", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self.conn, self.ready = Connection(ours.detach()), False

    def wait_ready(self) -> None:
        if self.ready:
            if self.process.poll() is not None:
                raise _Stale
            return
        try:
            started = self.conn.poll(STARTUP_TIMEOUT_S) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            started = False
        if not started:
            raise RuntimeError(f"a scoring worker did not start within {STARTUP_TIMEOUT_S:g} s "
                               f"(exit code {self.process.poll()})")
        self.ready = True

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


def _replace(worker: _Worker) -> None:
    """Kill a worker stuck on an item, and start its successor now so it is ready sooner."""
    worker.close()
    try:
        spare = _Worker()
    except OSError:
        return
    with _lock:
        _idle.append(spare)


def _forget_after_fork() -> None:
    """A forked child (a ``datasets.map`` worker, say) starts its own workers, never uses its parent's."""
    global _idle, _lock
    _idle, _lock = [], threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def _close_all() -> None:
    with _lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        worker.close()


def _serve(conn) -> None:
    """The worker's loop: one ``(fn, args, kwargs, reraise)`` in, one ``(kind, value)`` out."""
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the parent's to handle
    for name in PRELOAD:
        importlib.import_module(name)
    warmed: set[str] = set()
    conn.send("ready")
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            fn, args, kwargs, reraise = ForkingPickler.loads(payload)
        except Exception as exc:  # noqa: BLE001 - defined where this process cannot import it
            conn.send(("unloadable", _describe(exc)))
            continue
        module = sys.modules.get(getattr(fn.func if isinstance(fn, functools.partial) else fn,
                                         "__module__", None) or "")
        if module is not None and module.__name__ not in warmed:
            warmed.add(module.__name__)
            try:
                getattr(module, "warm_up", lambda: None)()
            except Exception:  # noqa: BLE001 - a warm-up that fails leaves the item to fail alone
                pass
        conn.send(("start", None))
        try:
            reply = ("ok", fn(*args, **kwargs))
        except reraise as exc:
            reply = ("raise", exc)
        except BaseException as exc:  # noqa: BLE001 - any failure is the item's outcome
            reply = ("error", _describe(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable value or exception
            conn.send(("error", f"unsendable result: {_describe(exc)}"))


if __name__ == "__main__":  # a worker: python -m tulu_lib.evals.bounded FD
    # the package's module object (not __main__), whose globals the scorers see
    from tulu_lib.evals import bounded  # lazy: see above

    bounded._serve(Connection(int(sys.argv[1])))
