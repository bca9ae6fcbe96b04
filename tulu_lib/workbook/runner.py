"""Execute the workbook: papermill runs each stage's notebook into ``reports/<run>/``.

A stage's cache key hashes its params sections, the keys and output hashes of its
upstream stages, and the code (its notebook and ``tulu_lib``). A stage whose key is
unchanged and whose outputs still hash as recorded is skipped; ``force`` reruns. Each
notebook writes into ``.staging/<stage>`` and is promoted into the run folder only when it
finishes, so a failure or Ctrl-C never touches earlier good outputs. An unfinished stage's
staging folder is kept with its key: the next run with the same key continues in it (its
trainers resume from their newest complete checkpoint), a changed key or ``force`` starts
it afresh. After every stage the stage records get their one status
(:func:`~tulu_lib.workbook.stages.stage_statuses`) and the manifest and ``index.html`` are rewritten.

Usage::

    tulu-repro run --params params/smoke.yaml [--stages 01_data 02_sft] [--force]
"""

from __future__ import annotations

import contextlib
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

from tulu_lib.core import allocator, checkpoints, hashing
from tulu_lib.core.hashing import changed_output, output_digests, section_hash, section_view
from tulu_lib.core.io import read_json, write_json
from tulu_lib.core.params import Params
from tulu_lib.workbook import manifest, report
from tulu_lib.workbook.console import StageProgress
from tulu_lib.workbook.stages import (
    OUTPUTS_FILE,
    REPO_ROOT,
    STAGE_NAMES,
    STAGES,
    StageSpec,
    stage_spec,
    stage_statuses,
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


DRAWING = ("tulu_lib.reporting.plots",)  # figures are redrawn from saved tables when it changes


def drawing_hash() -> str:
    """The drawing code's hash (:data:`DRAWING`): a stage's figures are redrawn when it changes."""
    return hashing.code_hash(hashing.module_closure_of(DRAWING))


def code_hash(spec: StageSpec) -> str:
    """The code a stage runs: its notebook and the ``tulu_lib`` modules it imports, directly or not
    (:func:`~tulu_lib.core.hashing.module_closure`), but not the drawing code (:data:`DRAWING`):
    a change there redraws the figures from the saved tables and retrains nothing."""
    return hashing.code_hash([spec.notebook, *hashing.module_closure(spec.notebook, exclude=DRAWING)])


def _reuse_staging(staging: Path, key: str, fresh: bool) -> bool:
    """Keep an unfinished attempt's staging folder made with ``key`` (unless ``fresh``); else
    start it afresh. Returns whether it was kept."""
    if not fresh and (staging / "KEY").is_file() and (staging / "KEY").read_text() == key:
        return True
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "KEY").write_text(key)
    return False


def _drop_partial_checkpoints(staging: Path) -> list[Path]:
    """Remove the ``checkpoint-<step>`` folders a kill cut mid-write, so that trainers resume from
    their newest complete one; returns them."""
    partial = [c for c in sorted(staging.rglob("checkpoint-*"))
               if c.is_dir() and checkpoints.step(c) is not None and not checkpoints.complete(c)]
    for folder in partial:
        shutil.rmtree(folder)
    return partial


class Run:
    """One run folder: stage records, promotion of staged outputs, manifest and index."""

    def __init__(self, params: Params, params_file: Path, run_dir: Path):
        self.params = params
        self.params_file = params_file
        self.dir = run_dir
        self.records_dir = run_dir / "stages"
        self.staging_root = run_dir / ".staging"

    def record(self, stage: str) -> dict | None:
        """The stage's record; one that does not parse is reported and removed (the stage reruns)."""
        path = self.records_dir / f"{stage}.json"
        rec = read_json(path, f"removed; {stage} will run again")
        if rec is None and path.exists():
            path.unlink()
        return rec

    def records(self) -> dict[str, dict]:
        return {name: rec for name in STAGE_NAMES if (rec := self.record(name)) is not None}

    def statuses(self) -> dict[str, str]:
        return stage_statuses(self.records())

    def write_record(self, stage: str, record: dict) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.records_dir / f"{stage}.json", record)

    def write_attempt(self, stage: str, attempt: dict) -> None:
        """Record an attempt that did not finish (failed, or not run); earlier outputs stay recorded."""
        self.write_record(stage, {**(self.record(stage) or {}), "stage": stage,
                                  "status": attempt["status"], "last_attempt": attempt})

    def publish(self) -> dict[str, str]:
        """Write each stage record's one status, then the manifest and ``index.html``."""
        records = self.records()
        statuses = stage_statuses(records)
        for name, rec in records.items():
            if rec.get("status") != statuses[name]:
                self.write_record(name, {**rec, "status": statuses[name]})
        manifest.write(self)
        report.write_index(self.dir)
        return statuses

    def built_on(self, spec: StageSpec) -> dict[str, list]:
        """Each upstream stage's key and outputs hash, as a stage run now builds on them."""
        return {name: [rec.get("key"), rec.get("outputs_hash")]
                for name in spec.upstream for rec in [self.record(name) or {}]}

    def reads(self, spec: StageSpec) -> dict[str, str]:
        """Each file the stage reads besides its params and upstream artifacts -> its digest."""
        resolved = self.params.to_dict()
        sections = {s: section_view(resolved, s) for s in spec.sections}
        return hashing.read_digests(spec.read_paths(sections), REPO_ROOT)

    def stage_key(self, spec: StageSpec, built_on: dict[str, list], reads: dict[str, str]) -> str:
        resolved = self.params.to_dict()
        return hashing.stage_key({s: section_view(resolved, s) for s in spec.sections}, built_on,
                                 code_hash(spec), reads)

    def output_paths(self, stage: str, rec: dict) -> list[Path]:
        return [self.dir / p for p in rec.get("outputs", [])]

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
    left their sockets. Kernels start with :data:`tulu_lib.core.allocator.HEAP_ENV` (a variable already
    set in the environment wins). The kernel's own stdout/stderr go to ``kernel_log``
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
            kw.setdefault("env", {**allocator.HEAP_ENV, **os.environ})
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


def _blocked(spec: StageSpec, statuses: dict[str, str]) -> str | None:
    """Why a stage cannot run on its upstream stages as they stand, or None."""
    failed = [u for u in spec.upstream if statuses.get(u, "done").startswith(("failed", "not run"))]
    stale = [u for u in spec.upstream if statuses.get(u, "done").startswith("out of date")]
    if failed:
        return f"not run (upstream {', '.join(failed)} failed)"
    return f"not run (upstream {', '.join(stale)} out of date)" if stale else None


def run(params: Params, params_file: Path, out_dir: Path | None = None,
        stages: tuple[str, ...] = (), force: bool = False,
        specs: tuple[StageSpec, ...] = STAGES) -> RunResult:
    """Execute the selected stages (default all) in paper order."""
    for name in stages:
        stage_spec(name)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # the kernels inherit it
    run_dir = (out_dir or REPO_ROOT / "reports" / params.name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    selected = [s for s in specs if not stages or s.name in stages]
    statuses: dict[str, str] = {}
    with _run_lock(run_dir):
        r = Run(params, params_file, run_dir)
        params_json = run_dir / "params.json"
        params_json.write_text(json.dumps(params.to_dict(), indent=2))
        (run_dir / "logs").mkdir(exist_ok=True)
        now = r.publish()
        print(f"[tulu-repro] run '{params.name}' ({params.scale}) -> {run_dir}", flush=True)
        for i, spec in enumerate(selected, 1):
            head = f"[{i}/{len(selected)}] {spec.name}"
            staging = r.staging_root / spec.name
            blocked = _blocked(spec, now)
            if blocked:
                statuses[spec.name] = blocked
                r.write_attempt(spec.name, {"status": blocked, "started": time.time()})
                now = r.statuses()
                print(f"{head}: {blocked}", flush=True)
                continue
            built_on, reads = r.built_on(spec), r.reads(spec)
            key = r.stage_key(spec, built_on, reads)
            rec = r.record(spec.name) or {}
            if not force and now.get(spec.name) == "done" and rec.get("key") == key:
                changed = changed_output(run_dir, rec.get("output_files", {}), rec.get("output_sizes"))
                if changed is None:
                    statuses[spec.name] = "skipped (cached)"
                    shutil.rmtree(staging, ignore_errors=True)  # an unfinished forced attempt's
                    redrawn = ""
                    if rec.get("drawing") != drawing_hash():  # only the drawing code changed
                        report.redraw_figures(run_dir, rec)
                        r.write_record(spec.name, {**rec, "drawing": drawing_hash()})
                        redrawn = f"; {len(rec.get('figure_specs') or {})} figure(s) redrawn from its tables"
                    print(f"{head}: unchanged, skipped{redrawn} (use --force to rerun)", flush=True)
                    continue
                print(f"{head}: {changed} since it was recorded: running it again", flush=True)
            resuming = _reuse_staging(staging, key, fresh=force)
            started = time.time()
            print(f"{head}: {spec.title} ...{' (resuming its unfinished attempt)' if resuming else ''}",
                  flush=True)
            for folder in _drop_partial_checkpoints(staging):
                print(f"    dropped a half-written checkpoint: {folder}", flush=True)
            record = {"stage": spec.name, "key": key, "started": started, "reads": reads}
            try:
                with StageProgress(head, staging / "progress.json", expected_s=rec.get("elapsed_s")):
                    _execute(spec, r, staging, params_json, run_dir / "logs" / f"{spec.name}.log")
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run goes on
                elapsed = time.time() - started
                failed_dir = run_dir / "failed"
                failed_dir.mkdir(exist_ok=True)
                for suffix in (".ipynb", ".html"):
                    path = staging / f"{spec.name}{suffix}"
                    if path.exists():
                        path.replace(failed_dir / path.name)
                r.write_attempt(spec.name, {
                    **record, "status": "failed", "ended": time.time(), "elapsed_s": elapsed,
                    **_failure_details(exc), "notebook": f"failed/{spec.name}.html"})
                statuses[spec.name] = "failed"
                print(f"{head}: FAILED after {elapsed:.0f}s: {exc}", file=sys.stderr, flush=True)
                print(f"    see {failed_dir / (spec.name + '.html')} and "
                      f"{run_dir / 'logs' / (spec.name + '.log')}; the next run resumes in "
                      f"{staging} unless its key changed (--force starts afresh)",
                      file=sys.stderr, flush=True)
                now = r.publish()
                continue
            outputs = read_json(staging / OUTPUTS_FILE, "its tables, figures and metrics are "
                                "not recorded") or {}
            moved = r.promote(spec, staging)
            # figures are drawn from the tables (redrawn when the drawing code changes): not outputs a
            # later stage builds on, nor a reason to rerun the stage
            digests = output_digests(run_dir, [m for m in moved if not m.startswith("figures/")])
            elapsed = time.time() - started
            r.write_record(spec.name, {
                **record, "status": "done", "ended": time.time(), "elapsed_s": elapsed,
                "upstream": built_on, "outputs": moved, "outputs_hash": section_hash(digests),
                "output_files": digests, "output_sizes": hashing.file_sizes(run_dir, digests),
                "drawing": drawing_hash(), **outputs})
            shutil.rmtree(staging, ignore_errors=True)
            (run_dir / "failed" / f"{spec.name}.html").unlink(missing_ok=True)
            (run_dir / "failed" / f"{spec.name}.ipynb").unlink(missing_ok=True)
            statuses[spec.name] = "done"
            print(f"{head}: done in {elapsed:.0f}s", flush=True)
            now = r.publish()
        for name, status in r.publish().items():
            if name not in statuses and status != "done":
                print(f"[-] {name}: {status}", flush=True)
        with contextlib.suppress(OSError):
            r.staging_root.rmdir()  # kept while an unfinished stage's folder is in it
    return RunResult(run_dir, statuses)


__all__ = ["STAGE_NAMES", "RunResult", "StageFailed", "run"]
