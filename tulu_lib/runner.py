"""Execute the workbook: papermill runs each stage's notebook into ``reports/<run>/``.

A stage's cache key hashes its params sections, the keys and output hashes of its
upstream stages, and the code (its notebook and ``tulu_lib``). A stage whose key is
unchanged and whose outputs are in place is skipped; ``force`` reruns. Each notebook
writes into ``.staging/<stage>`` and is promoted into the run folder only when it
finishes, so a failure or Ctrl-C never touches earlier good outputs, and starting the
same command again resumes at the first unfinished stage. After every stage the manifest
and ``index.html`` are rewritten.

Usage::

    tulu-repro run --params params/smoke.yaml [--stages 01_data 02_sft] [--force]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tulu_lib import manifest, report
from tulu_lib.params import Params, section_hash
from tulu_lib.workbook import (
    OUTPUTS_FILE,
    REPO_ROOT,
    STAGE_NAMES,
    STAGES,
    StageSpec,
    section_view,
    stage_spec,
)

log = logging.getLogger("tulu_repro")


class StageFailed(RuntimeError):
    """A notebook raised; the message names the stage, the cell and the error."""


@dataclass
class RunResult:
    run_dir: Path
    statuses: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(s in ("done", "skipped (cached)") for s in self.statuses.values())


def code_hash(spec: StageSpec) -> str:
    h = hashlib.sha256(spec.notebook.read_bytes())
    for path in sorted((REPO_ROOT / "tulu_lib").rglob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def outputs_hash(paths: list[Path]) -> str:
    """Content hash of a stage's outputs (large files: size plus first and last MiB)."""
    h = hashlib.sha256()
    for path in sorted(p for root in paths if root.exists()
                       for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()):
        h.update(str(path.name).encode())
        size = path.stat().st_size
        h.update(str(size).encode())
        with open(path, "rb") as fh:
            if size <= 64 << 20:
                h.update(fh.read())
            else:
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:16]


class Run:
    """One run folder: stage records, promotion of staged outputs, manifest and index."""

    def __init__(self, params: Params, params_file: Path, run_dir: Path):
        self.params = params
        self.params_file = params_file
        self.dir = run_dir
        self.records_dir = run_dir / "stages"
        self.staging_root = run_dir / ".staging"

    def record(self, stage: str) -> dict | None:
        path = self.records_dir / f"{stage}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def write_record(self, stage: str, record: dict) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.records_dir / f".{stage}.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(self.records_dir / f"{stage}.json")

    def stage_key(self, spec: StageSpec) -> str:
        resolved = self.params.to_dict()
        upstream = {}
        for name in spec.upstream:
            rec = self.record(name) or {}
            upstream[name] = (rec.get("key"), rec.get("outputs_hash"))
        return section_hash({"sections": {s: section_view(resolved, s) for s in spec.sections},
                             "upstream": upstream, "code": code_hash(spec)})

    def output_paths(self, stage: str, rec: dict) -> list[Path]:
        return [self.dir / p for p in rec.get("outputs", [])]

    def is_current(self, spec: StageSpec, key: str) -> bool:
        rec = self.record(spec.name)
        return bool(rec and rec.get("status") == "done" and rec.get("key") == key
                    and all(p.exists() for p in self.output_paths(spec.name, rec)))

    def promote(self, spec: StageSpec, staging: Path) -> list[str]:
        """Move a finished stage's outputs into the run folder; returns their paths."""
        old = self.record(spec.name)
        if old:
            for path in self.output_paths(spec.name, old):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        moved = []
        for sub in ("tables", "figures"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            for path in sorted((staging / sub).iterdir()):
                path.replace(self.dir / sub / path.name)
                moved.append(f"{sub}/{path.name}")
        for suffix in (".ipynb", ".html"):
            path = staging / f"{spec.name}{suffix}"
            if path.exists():
                path.replace(self.dir / path.name)
                moved.append(path.name)
        artifacts = self.dir / "artifacts" / spec.name
        artifacts.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(artifacts, ignore_errors=True)
        (staging / "artifacts").replace(artifacts)
        moved.append(f"artifacts/{spec.name}")
        return moved


@contextmanager
def _run_lock(run_dir: Path):
    from filelock import FileLock, Timeout

    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        raise RuntimeError(f"{run_dir} is in use by another tulu-repro run") from None
    try:
        yield
    finally:
        lock.release()


def _ipc_kernel_manager(socket_dir: str, kernel_log, started: list):
    """Kernels over local IPC sockets rather than TCP ports: nothing listens on the network, and
    ipykernel's "running over TCP without encryption" warning no longer opens every stage's log.

    The sockets live in ``socket_dir`` under an absolute name: jupyter_client's default name is
    relative to the kernel's cwd (the repo root), where concurrent runs shared it and killed kernels
    left their sockets. The kernel's own stdout/stderr go to ``kernel_log``
    (``logs/<stage>.kernel.log``), not the terminal, and each manager is appended to ``started``
    so that :func:`_kill_kernels` can end the kernel when papermill cannot (Ctrl-C stops its event
    loop before its clean-up runs)."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=os.path.join(socket_dir, "kernel"), **kwargs)
            started.append(self)

        async def start_kernel(self, **kw):
            kw.setdefault("stdout", kernel_log)
            kw.setdefault("stderr", kernel_log)
            return await super().start_kernel(**kw)

    return IPCKernelManager


def _kill_kernels(managers: list) -> None:
    """Kill each kernel's process group (it runs in a session of its own) and reap it; no event
    loop needed, so this works after Ctrl-C broke papermill's."""
    for km in managers:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is None or process.poll() is not None:
            continue
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=10)


def _execute(spec: StageSpec, run: Run, staging: Path, params_json: Path, log_file: Path):
    import jupytext
    import papermill as pm

    source = staging / f"{spec.name}.source.ipynb"
    jupytext.write(jupytext.read(spec.notebook), source)
    output = staging / f"{spec.name}.ipynb"
    handler = logging.FileHandler(log_file, mode="w")
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    managers: list = []
    interrupted = False
    try:
        with tempfile.TemporaryDirectory(prefix="tulu-kernel-") as sockets, \
                open(log_file.with_suffix(".kernel.log"), "wb") as kernel_log:
            try:
                pm.execute_notebook(
                    str(source), str(output), kernel_name="python3", language="python",
                    cwd=str(REPO_ROOT),
                    parameters={"params_file": str(params_json), "run_dir": str(run.dir),
                                "stage_dir": str(staging)},
                    log_output=True, progress_bar=False, request_save_on_cell_execute=True,
                    kernel_manager_class=_ipc_kernel_manager(sockets, kernel_log, managers))
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:
                _kill_kernels(managers)  # before its sockets go: an orphan would print ZMQErrors
    except pm.PapermillExecutionError as exc:
        raise StageFailed(f"{spec.name}: cell {exc.exec_count} raised {exc.ename}: "
                          f"{exc.evalue}") from exc
    finally:
        pm_log.removeHandler(handler)
        handler.close()
        source.unlink(missing_ok=True)
        if output.exists() and not interrupted:  # Ctrl-C: leave at once
            _export_html(output)


def _export_html(notebook: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    notebook.with_suffix(".html").write_text(body)


def _failure_details(exc: BaseException) -> dict:
    cause = exc.__cause__
    details = {"error": str(exc)}
    if cause is not None and hasattr(cause, "exec_count"):
        details.update(cell=cause.exec_count, ename=cause.ename, evalue=cause.evalue)
    return details


def run(params: Params, params_file: Path, out_dir: Path | None = None,
        stages: tuple[str, ...] = (), force: bool = False,
        specs: tuple[StageSpec, ...] = STAGES) -> RunResult:
    """Execute the selected stages (default all) in paper order."""
    for name in stages:
        stage_spec(name)
    run_dir = (out_dir or REPO_ROOT / "reports" / params.name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    selected = [s for s in specs if not stages or s.name in stages]
    statuses: dict[str, str] = {}
    with _run_lock(run_dir):
        r = Run(params, params_file, run_dir)
        params_json = run_dir / "params.json"
        params_json.write_text(json.dumps(params.to_dict(), indent=2))
        (run_dir / "logs").mkdir(exist_ok=True)
        shutil.rmtree(r.staging_root, ignore_errors=True)  # leftovers of an interrupted run
        manifest.write(r)
        print(f"[tulu-repro] run '{params.name}' ({params.scale}) -> {run_dir}", flush=True)
        for i, spec in enumerate(selected, 1):
            head = f"[{i}/{len(selected)}] {spec.name}"
            blocked = [u for u in spec.upstream
                       if statuses.get(u, "").startswith(("failed", "not run"))]
            if blocked:
                statuses[spec.name] = f"not run (upstream {', '.join(blocked)} failed)"
                print(f"{head}: {statuses[spec.name]}", flush=True)
                continue
            key = r.stage_key(spec)
            if not force and r.is_current(spec, key):
                statuses[spec.name] = "skipped (cached)"
                print(f"{head}: unchanged, skipped (use --force to rerun)", flush=True)
                continue
            staging = r.staging_root / spec.name
            staging.mkdir(parents=True)
            started = time.time()
            print(f"{head}: {spec.title} ...", flush=True)
            record = {"stage": spec.name, "key": key, "started": started}
            try:
                _execute(spec, r, staging, params_json, run_dir / "logs" / f"{spec.name}.log")
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
                elapsed = time.time() - started
                failed_dir = run_dir / "failed"
                failed_dir.mkdir(exist_ok=True)
                for suffix in (".ipynb", ".html"):
                    path = staging / f"{spec.name}{suffix}"
                    if path.exists():
                        path.replace(failed_dir / path.name)
                prev = r.record(spec.name) or {}
                r.write_record(spec.name, {**prev, "last_attempt": {
                    **record, "status": "failed", "ended": time.time(), "elapsed_s": elapsed,
                    **_failure_details(exc), "notebook": f"failed/{spec.name}.html"}})
                statuses[spec.name] = "failed"
                shutil.rmtree(staging, ignore_errors=True)
                print(f"{head}: FAILED after {elapsed:.0f}s: {exc}", file=sys.stderr, flush=True)
                print(f"    see {failed_dir / (spec.name + '.html')} and "
                      f"{run_dir / 'logs' / (spec.name + '.log')}", file=sys.stderr, flush=True)
                manifest.write(r)
                report.write_index(run_dir)
                continue
            outputs = json.loads((staging / OUTPUTS_FILE).read_text()) \
                if (staging / OUTPUTS_FILE).exists() else {}
            moved = r.promote(spec, staging)
            elapsed = time.time() - started
            r.write_record(spec.name, {
                **record, "status": "done", "ended": time.time(), "elapsed_s": elapsed,
                "outputs": moved, "outputs_hash": outputs_hash([run_dir / p for p in moved]),
                **outputs})
            shutil.rmtree(staging, ignore_errors=True)
            (run_dir / "failed" / f"{spec.name}.html").unlink(missing_ok=True)
            (run_dir / "failed" / f"{spec.name}.ipynb").unlink(missing_ok=True)
            statuses[spec.name] = "done"
            print(f"{head}: done in {elapsed:.0f}s", flush=True)
            manifest.write(r)
            report.write_index(run_dir)
        shutil.rmtree(r.staging_root, ignore_errors=True)
        manifest.write(r)
        report.write_index(run_dir)
    return RunResult(run_dir, statuses)


__all__ = ["STAGE_NAMES", "RunResult", "StageFailed", "run"]
