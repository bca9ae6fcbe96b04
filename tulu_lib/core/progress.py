"""What a running stage is doing now, for the console line ``tulu-repro run`` keeps updated.

The running code (a trainer's callback, the evaluation's item loop) calls :func:`report`; it
writes one small JSON record to ``$TULU_PROGRESS_FILE`` (atomically, at most twice a second) and
does nothing when the variable is unset, so a notebook stepped through by hand or a test is not
affected and nothing the stage computes depends on it. The runner sets the variable for each
stage's kernel (launched training processes inherit it) and reads the record with :func:`read`.

Usage::

    report("GRPO step", 9, 24, reward=-3.1)      # in the kernel (or a launched rank-0 process)
    read(path)  # -> {"what": "GRPO step", "done": 9, "total": 24, "metrics": {"reward": -3.1}, "time": ...}
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

ENV = "TULU_PROGRESS_FILE"
# where a stage's training curves go (set by the notebook's open_stage; read by tulu_lib.train.common)
TENSORBOARD_DIR_ENV, STAGE_DIR_ENV = "TULU_TENSORBOARD_DIR", "TULU_STAGE_DIR"
_MIN_INTERVAL_S = 0.5
_last: dict[str, float] = {}


def report(what: str, done: int | None = None, total: int | None = None, **metrics: float) -> None:
    """Record that the stage is at ``done`` of ``total`` in ``what`` (a no-op without the runner)."""
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.time()
    final = done is not None and total is not None and done >= total
    if not final and now - _last.get(path, 0.0) < _MIN_INTERVAL_S:
        return
    _last[path] = now
    record = {"what": what, "done": done, "total": total, "time": now, "pid": os.getpid(),
              "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}}
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        Path(tmp).write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:  # progress is a courtesy: never fail the stage over it
        pass


@contextlib.contextmanager
def scoped_environ(values: dict[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (None: left as it is) inside; the names restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read(path: str | Path) -> dict | None:
    """The last record written to ``path``, or None (none yet, or one being replaced)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["ENV", "STAGE_DIR_ENV", "TENSORBOARD_DIR_ENV", "read", "report", "scoped_environ"]
