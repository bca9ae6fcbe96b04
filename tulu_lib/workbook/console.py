"""The console line ``tulu-repro run`` keeps while a stage runs: what the stage's kernel reports
(:mod:`tulu_lib.core.progress`), the time it has taken and, from the last finished run of the same
stage, about how long is left. On a terminal one line is redrawn every second; elsewhere (CI,
Slurm logs) a plain line is printed when the report changes, at most every ``plain_every`` seconds.

Usage::

    with StageProgress("[4/6] 04_rlvr", staging / "progress.json", expected_s=rec.get("elapsed_s")):
        execute_the_notebook()   # the kernel inherits $TULU_PROGRESS_FILE and reports into it
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from tulu_lib.core import progress


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a duration."""
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def describe(head: str, record: dict | None, elapsed: float, expected_s: float | None) -> str:
    """One line: ``head · what k/n · metric v · m:ss elapsed, ~N min left``."""
    parts = [head]
    if record:
        what, done, total = record.get("what", ""), record.get("done"), record.get("total")
        parts.append(f"{what} {done}/{total}" if done is not None and total else what)
        parts += [f"{k} {v:.3g}" for k, v in (record.get("metrics") or {}).items()]
    tail = f"{clock(elapsed)} elapsed"
    if expected_s:
        left = expected_s - elapsed
        tail += f", ~{max(1, round(left / 60))} min left" if left > 0 else \
            f", past the last run's {clock(expected_s)}"
    return " · ".join([*parts, tail])


class StageProgress:
    """Shows a running stage's progress on ``stream`` from a background thread (see module doc)."""

    def __init__(self, head: str, path: Path, expected_s: float | None = None, stream: TextIO | None = None,
                 interval: float = 1.0, plain_every: float = 30.0):
        self.head, self.path, self.expected_s = head, Path(path), expected_s
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval, self.plain_every = interval, plain_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = time.time()
        self._env = progress.scoped_environ({progress.ENV: str(self.path)})  # the kernel inherits it

    def __enter__(self) -> StageProgress:
        self.path.unlink(missing_ok=True)
        self._env.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._env.__exit__(None, None, None)
        if self.tty:
            self._write("\r" + " " * self._width() + "\r")
        self.path.unlink(missing_ok=True)

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 20)).columns - 1)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream: the display is a courtesy
            self._stop.set()

    def _loop(self) -> None:
        last_record, last_print = None, 0.0
        while not self._stop.wait(self.interval):
            record = progress.read(self.path)
            now = time.time()
            line = describe(self.head, record, now - self._started, self.expected_s)
            if self.tty:
                self._write("\r" + line[: self._width()].ljust(self._width()))
            elif record and record != last_record and now - last_print >= self.plain_every:
                self._write(line + "\n")
                last_record, last_print = record, now


__all__ = ["StageProgress", "clock", "describe"]
