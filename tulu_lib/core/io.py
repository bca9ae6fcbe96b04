"""Whole-or-nothing JSON and JSON-lines files: what every stage record, output, cache entry and
launched stage's result is written with, and the one reader that reports an unreadable file.

Usage::

    write_json(folder / "result.json", {"row": row})
    read_json(folder / "result.json", "computing it again")  # None when missing or unreadable
    write_jsonl(folder / "items.jsonl", rows)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """``value`` as JSON at ``path``, whole or not at all: written to a hidden file beside it, then
    renamed over it, so an interrupted run leaves the old file or the new one (what
    :func:`read_json` reads back), never half of one.  Usage: ``write_json(folder / "x.json", d)``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=indent, default=str))
    tmp.replace(path)


def write_jsonl(path: Path, rows: Iterable[Any], ensure_ascii: bool = True) -> Path:
    """``rows`` as JSON lines at ``path``, whole or not at all, like :func:`write_json`: written to a
    hidden file beside it, flushed to disk, then renamed over it.
    Usage: ``write_jsonl(folder / "items.jsonl", items.values())``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=ensure_ascii) + "\n" for row in rows)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def read_json(path: Path, otherwise: str) -> dict | None:
    """A JSON object file, or None when it is missing or unreadable (truncated, empty, not an
    object): an unreadable one is reported in one line, ending with what happens ``otherwise``."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        value = exc
    if isinstance(value, dict):
        return value
    why = value if isinstance(value, Exception) else f"a JSON {type(value).__name__}, not an object"
    print(f"[tulu-repro] {path} is unreadable ({why}): {otherwise}", file=sys.stderr, flush=True)
    return None
