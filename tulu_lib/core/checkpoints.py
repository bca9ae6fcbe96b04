"""Trainer checkpoints that are whole: what a resume may start from.

The Trainer writes ``checkpoint-<step>/`` file by file and ``trainer_state.json`` last, so a
kill can leave a newer folder without it (or without weights). transformers'
``get_last_checkpoint`` picks the newest folder whatever its state; :func:`last_complete`
picks the newest whole one.

Usage::

    trainer.train(resume_from_checkpoint=last_complete(output_dir))
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_NAME = re.compile(r"checkpoint-(\d+)$")


def complete(folder: Path) -> bool:
    """A checkpoint folder with weights and a readable ``trainer_state.json``."""
    try:
        json.loads((Path(folder) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any(p.suffix == ".safetensors" or p.name.startswith("pytorch_model")
               for p in Path(folder).iterdir())


def step(folder: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder (None for any other name)."""
    m = _NAME.match(Path(folder).name)
    return int(m.group(1)) if m else None


def last_complete(output_dir: str | Path) -> str | None:
    """The newest whole ``checkpoint-<step>`` in ``output_dir`` (None when there is none)."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and step(p) is not None]
    whole = [p for p in folders if complete(p)]
    return str(max(whole, key=step)) if whole else None
