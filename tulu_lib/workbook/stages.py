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
    stage.figure("fig02_sft_mix", "mix_composition", {"hist": "sft_lengths"}, caption="Figure 2: the SFT mix")
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tulu_lib.core import progress
from tulu_lib.core.io import read_json, write_json
from tulu_lib.core.params import Params, looks_local
from tulu_lib.reporting import plots
from tulu_lib.workbook import validate

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUTS_FILE = "stage_outputs.json"


@dataclass(frozen=True)
class StageSpec:
    """A notebook, the params sections it reads, the stages whose artifacts it uses, and the files
    it reads besides them (``reads``: globs under the repository, or absolute paths)."""

    name: str
    title: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...]
    source: Path | None = None  # another notebook file for this stage (tests use this)
    reads: tuple[str, ...] = ()

    @property
    def notebook(self) -> Path:
        return self.source or REPO_ROOT / "notebooks" / f"{self.name}.py"

    def read_paths(self, sections: dict) -> list[Path]:
        """Every file the stage reads: its ``reads`` and each local file or folder named in its
        params ``sections`` (a data file, a DeepSpeed config, a local model or reward model)."""
        fixed = [p for pattern in self.reads
                 for p in (sorted(REPO_ROOT.glob(pattern)) if not Path(pattern).is_absolute()
                           else [Path(pattern)])]
        return fixed + [path for value in _strings(sections) if (path := _local(value)) is not None]


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _local(value: str) -> Path | None:
    """The file or folder a params value names, when it names one that exists here."""
    if not (looks_local(value) or "/" in value):
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else REPO_ROOT / path
    return path if path.exists() else None


REFERENCE = ("reports/reference/*.csv",)  # the paper's numbers, which every reading compares with


STAGES: tuple[StageSpec, ...] = (
    StageSpec("01_data", "Data: mixing and decontamination (paper §2–3)",
              ("seed", "model", "data", "decontamination"), ()),
    StageSpec("02_sft", "Supervised finetuning (paper §4)",
              ("seed", "model", "sft", "launch", "eval.ablation"), ("01_data",), reads=REFERENCE),
    StageSpec("03_dpo", "Preference tuning with DPO (paper §5)",  # Figure 10 reads the data source
              ("seed", "model", "data", "decontamination", "dpo", "synthesis", "launch", "eval.ablation"),
              ("01_data", "02_sft"), reads=REFERENCE),
    StageSpec("04_rlvr", "RL with verifiable rewards (paper §6)",
              ("seed", "model", "rlvr", "launch", "eval.ablation", "eval.selection"),
              ("01_data", "02_sft", "03_dpo"), reads=REFERENCE),
    StageSpec("05_eval", "Evaluation (paper §7)",
              ("seed", "model", "eval"), ("01_data", "02_sft", "03_dpo", "04_rlvr"), reads=REFERENCE),
    StageSpec("06_paper_tables", "The paper's tables and figures, regenerated",  # the paper's recipes too
              ("name", "scale"), ("01_data", "02_sft", "03_dpo", "04_rlvr", "05_eval"),
              reads=("params/tulu3-8b.yaml", "params/tulu3-70b.yaml", "params/deepspeed/*.json", *REFERENCE)),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def draw_figure(folder: Path, name: str, spec: dict):
    """Draw the figure ``spec`` describes (:meth:`Stage.figure`) from the tables saved in
    ``folder/tables`` and save it as ``folder/figures/<name>.png`` and ``.svg``; returns it."""
    tables = {arg: pd.read_csv(folder / "tables" / f"{table}.csv") for arg, table in spec["tables"].items()}
    fig = plots.draw(spec["plot"], tables, spec["args"])
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    path = folder / "figures" / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    return fig


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

    def __init__(self, name: str, params: Params, run_dir: Path, stage_dir: Path,
                 params_file: str | Path | None = None):
        self.spec = stage_spec(name)
        self.params = params
        self.params_file = params_file  # as the notebook named it: the command to run first names it too
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
            f"{self.run_dir / 'artifacts' / stage} is missing: run stage {stage} first: "
            f"{self._run_first(stage)} (or notebooks/{stage}.py by hand)")

    def _run_first(self, stage: str) -> str:
        """The command that makes ``stage`` (and the stages it builds on) for this notebook: its
        params file and, when it is not the default ``reports/<name>``, its run folder."""
        def shown(path: Path) -> str:  # relative to the repository root, where the commands run
            path = path.resolve()
            return shlex.quote(str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path))

        params = shown(_resolve(self.params_file)) if self.params_file else "FILE"
        out = ("" if self.run_dir.resolve() == (REPO_ROOT / "reports" / self.params.name).resolve()
               else f" --out {shown(self.run_dir)}")
        stages = " ".join((*stage_spec(stage).upstream, stage))
        return f"tulu-repro run --params {params}{out} --stages {stages}"

    def has_upstream(self, stage: str) -> bool:
        return any(path.is_dir() for path in self._upstream_dirs(stage))

    def save_table(self, df, name: str, caption: str = "") -> Path:
        path = self.dir / "tables" / f"{name}.csv"
        df.to_csv(path, index=False)
        self._outputs["tables"][name] = caption
        self._flush()
        return path

    def figure(self, name: str, plot: str, tables: Mapping[str, str], caption: str = "", **args):
        """Draw ``plots.PLOTS[plot]`` from this stage's saved ``tables`` (plot argument -> table name)
        and ``args`` (JSON-able), save ``figures/<name>.png`` and ``.svg``, and record how it was
        drawn, so ``tulu-repro report`` can draw it again from the tables alone. Returns the figure."""
        spec = {"plot": plot, "tables": dict(tables), "args": args}
        fig = draw_figure(self.dir, name, spec)
        self._outputs["figures"][name] = caption
        self._outputs.setdefault("figure_specs", {})[name] = spec
        self._flush()
        return fig

    def fingerprint(self, name: str, value: str) -> None:
        """Record a data fingerprint for the run manifest."""
        self._outputs["fingerprints"][name] = value
        self._flush()

    def metric(self, name: str, value: Any) -> None:
        self._outputs["metrics"][name] = value
        self._flush()

    def finding(self, row: dict) -> None:
        """One of the paper's findings as this stage tested it (a row of
        :mod:`tulu_lib.reporting.findings`); the report collects them into ``tables/findings.csv``."""
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        self._outputs.setdefault("findings", {})[row["key"]] = clean
        self._flush()
        print(f"finding {row['finding']}: {row['reading']}")

    def reading(self, ref: str, text: str) -> None:
        """Our one-line reading of a paper item (``ref``: one of ``reporting.paper.PAPER_ITEMS``)."""
        self._outputs.setdefault("readings", {})[ref] = text
        self._flush()
        print(f"{ref}: {text}")

    def keep_model(self, checkpoint: str | Path, move: bool = True) -> Path:
        """``checkpoint`` as this stage's model, ``artifacts/model`` (what later stages start
        from): moved into place, or copied without its optimizer and trainer state (``move=False``).
        A copy left by an attempt cut short is replaced."""
        target = self.artifacts / "model"
        shutil.rmtree(target, ignore_errors=True)
        if move:
            Path(checkpoint).rename(target)
        else:
            shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns(
                "optimizer.pt", "scheduler.pt", "rng_state*", "trainer_state.json", "training_args.bin"))
        return target

    def save_dataset(self, dataset, name: str) -> Path:
        """``dataset`` saved as ``artifacts/<name>`` (``save_to_disk``), replacing what an attempt
        cut short left there."""
        folder = self.artifacts / name
        shutil.rmtree(folder, ignore_errors=True)
        dataset.save_to_disk(str(folder))
        return folder

    def _flush(self) -> None:
        write_json(self._outputs_path, self._outputs)


def open_stage(name: str, params_file: str, run_dir: str | None = None,
               stage_dir: str | None = None) -> Stage:
    """Open a stage from a notebook; paths are relative to the repository root."""
    os.chdir(REPO_ROOT)  # params and data paths are written relative to the repo root
    params = validate.load(_resolve(params_file))
    run = _resolve(run_dir) if run_dir else REPO_ROOT / "reports" / params.name
    staging = Path(stage_dir) if stage_dir else run / ".interactive" / name
    # training curves: reports/<run>/logs/tensorboard/<stage>/<arm>, <arm> the folder under artifacts/
    os.environ[progress.TENSORBOARD_DIR_ENV] = str(run / "logs" / "tensorboard" / name)
    os.environ[progress.STAGE_DIR_ENV] = str(staging / "artifacts")
    return Stage(name, params, run, staging, params_file)
