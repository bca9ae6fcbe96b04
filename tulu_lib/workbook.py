"""The workbook's stages and the handle a notebook uses to read inputs and save outputs.

Each paper section is one notebook (``notebooks/NN_name.py``, jupytext py:percent). The
runner executes it with papermill, passing ``params_file``, ``run_dir`` and ``stage_dir``;
the notebook opens its stage with :func:`open_stage` and writes tables, figures and
artifacts through it, into ``stage_dir`` (a staging folder the runner promotes into the
run folder only when the notebook finishes). Opened by hand in JupyterLab (no
``stage_dir``), a notebook writes into ``<run_dir>/.interactive/<stage>`` and leaves the
run's finished outputs alone.

Usage (inside a notebook)::

    stage = open_stage("02_sft", params_file, run_dir, stage_dir)
    stage.params.sft.optim.learning_rate
    stage.save_table(df, "sft_loss", caption="SFT loss: sum vs mean")
    stage.save_figure(fig, "fig02_mix", caption="Figure 2: the SFT mix by source")
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tulu_lib.params import Params, load_params

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUTS_FILE = "stage_outputs.json"


@dataclass(frozen=True)
class StageSpec:
    """A notebook, the params sections it reads, and the stages whose artifacts it uses."""

    name: str
    title: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...]
    source: Path | None = None  # another notebook file for this stage (tests use this)

    @property
    def notebook(self) -> Path:
        return self.source or REPO_ROOT / "notebooks" / f"{self.name}.py"


STAGES: tuple[StageSpec, ...] = (
    StageSpec("01_data", "Data: mixing and decontamination (paper §2–3)",
              ("seed", "model", "data", "decontamination"), ()),
    StageSpec("02_sft", "Supervised finetuning (paper §4)",
              ("seed", "model", "sft", "launch", "eval.ablation"), ("01_data",)),
    StageSpec("03_dpo", "Preference tuning with DPO (paper §5)",  # Figure 10 reads the data source
              ("seed", "model", "data", "decontamination", "dpo", "synthesis", "launch", "eval.ablation"),
              ("01_data", "02_sft")),
    StageSpec("04_rlvr", "RL with verifiable rewards (paper §6)",
              ("seed", "model", "rlvr", "launch", "eval.ablation"), ("01_data", "02_sft", "03_dpo")),
    StageSpec("05_eval", "Evaluation (paper §7)",
              ("seed", "model", "eval"), ("01_data", "02_sft", "03_dpo", "04_rlvr")),
    StageSpec("06_paper_tables", "The paper's tables and figures, regenerated",
              ("name", "scale"), ("01_data", "02_sft", "03_dpo", "04_rlvr", "05_eval")),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def section_view(resolved: dict, section: str):
    """A params section for a stage's cache key, or a narrower view of one: ``eval.ablation``
    is what ablation checkpoints are scored with, so tuning the other benchmarks' limits for
    05_eval does not retrain 02–04 (the vLLM engine options are in it: 03_dpo's synthesis and
    every ablation score generate through that engine)."""
    if section == "eval.ablation":
        e = resolved["eval"]
        return {"benchmarks": {b: e["benchmarks"][b] for b in e["ablation_benchmarks"]},
                **{k: e[k] for k in ("backend", "max_new_tokens", "batch_size", "vllm")}}
    return resolved[section]


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


def stage_statuses(records: dict[str, dict]) -> dict[str, str]:
    """The one status of each recorded stage (``records`` in paper order), that the console, the
    stage records, the manifest and ``index.html`` all show: its latest attempt's ("done",
    "failed", "not run (upstream X failed)"), unless an upstream stage it was built on has failed
    since ("not run (upstream X failed)") or changed ("out of date (upstream X changed)")."""
    out: dict[str, str] = {}
    for name, rec in records.items():
        attempt = rec.get("last_attempt")
        if attempt and attempt.get("started", 0) >= rec.get("started", 0):
            out[name] = attempt.get("status", "failed")
        else:
            out[name] = next((why for up, built_on in (rec.get("upstream") or {}).items()
                              if (why := _upstream_problem(up, built_on, out, records))), "done")
    return out


def _upstream_problem(up: str, built_on: list, statuses: dict, records: dict) -> str | None:
    now, rec = statuses.get(up), records.get(up, {})
    if now and now.startswith(("failed", "not run")):
        return f"not run (upstream {up} failed)"
    if now not in (None, "done") or [rec.get("key"), rec.get("outputs_hash")] != built_on:
        return f"out of date (upstream {up} changed)"
    return None


def stage_spec(name: str) -> StageSpec:
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO_ROOT / path


class Stage:
    """What a running notebook sees: its params, upstream artifacts, and output sinks."""

    def __init__(self, name: str, params: Params, run_dir: Path, stage_dir: Path):
        self.spec = stage_spec(name)
        self.params = params
        self.run_dir = run_dir
        self.dir = stage_dir
        self.artifacts = stage_dir / "artifacts"
        for sub in ("tables", "figures", "artifacts"):
            (stage_dir / sub).mkdir(parents=True, exist_ok=True)
        self._outputs_path = stage_dir / OUTPUTS_FILE
        self._outputs: dict[str, Any] = (
            read_json(self._outputs_path, "started afresh")
            or {"tables": {}, "figures": {}, "fingerprints": {}, "metrics": {}, "readings": {}})

    def _upstream_dirs(self, stage: str) -> list[Path]:
        """Where an earlier stage's artifacts are: the run's, or (by hand) its notebook's own."""
        if stage not in self.spec.upstream:
            raise KeyError(f"{self.spec.name} does not depend on {stage}; "
                           f"its upstream stages: {', '.join(self.spec.upstream) or 'none'}")
        return [self.run_dir / "artifacts" / stage,
                self.run_dir / ".interactive" / stage / "artifacts"]

    def upstream(self, stage: str) -> Path:
        """The artifacts folder of an earlier stage of this run."""
        for path in self._upstream_dirs(stage):
            if path.is_dir():
                return path
        raise FileNotFoundError(
            f"{self.run_dir / 'artifacts' / stage} is missing: run stage {stage} first "
            f"(tulu-repro run --params ... --stages {stage}, or its notebook by hand)")

    def has_upstream(self, stage: str) -> bool:
        return any(path.is_dir() for path in self._upstream_dirs(stage))

    def save_table(self, df, name: str, caption: str = "") -> Path:
        path = self.dir / "tables" / f"{name}.csv"
        df.to_csv(path, index=False)
        self._outputs["tables"][name] = caption
        self._flush()
        return path

    def save_figure(self, fig, name: str, caption: str = "") -> Path:
        path = self.dir / "figures" / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
        self._outputs["figures"][name] = caption
        self._flush()
        return path

    def fingerprint(self, name: str, value: str) -> None:
        """Record a data fingerprint for the run manifest."""
        self._outputs["fingerprints"][name] = value
        self._flush()

    def metric(self, name: str, value: Any) -> None:
        self._outputs["metrics"][name] = value
        self._flush()

    def reading(self, ref: str, text: str) -> None:
        """Our one-line reading of a paper item (``ref`` as in :data:`tulu_lib.paper.PAPER_ITEMS`)."""
        self._outputs.setdefault("readings", {})[ref] = text
        self._flush()
        print(f"{ref}: {text}")

    def _flush(self) -> None:
        write_json(self._outputs_path, self._outputs)


def open_stage(name: str, params_file: str, run_dir: str | None = None,
               stage_dir: str | None = None) -> Stage:
    """Open a stage from a notebook; paths are relative to the repository root."""
    os.chdir(REPO_ROOT)  # params and data paths are written relative to the repo root
    params = load_params(_resolve(params_file))
    run = _resolve(run_dir) if run_dir else REPO_ROOT / "reports" / params.name
    staging = Path(stage_dir) if stage_dir else run / ".interactive" / name
    return Stage(name, params, run, staging)
