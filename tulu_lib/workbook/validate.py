"""Params checked against the registries and the disk: what ``tulu-repro validate`` and every run load.

:func:`tulu_lib.core.params.load_params` checks a params file against its schema; this layer, which
sees the benchmark and model registries and the data loader, also checks that every name in it is one
they know: model names, hub ids (their spelling), stand-ins, local data files (there and readable),
the persona source, and the ``source`` values that ``data.*.mix`` and ``sft.ablate_sources`` name
(against the stand-ins and local files up to :data:`SOURCES_READ_UP_TO` bytes; a hub dataset's are
checked when 01_data reads it). :func:`warnings` names each hub id that is not in the local cache:
not an error, since the hub may be reachable when the run starts.

Usage::

    p = load("params/cpu.yaml", ["eval.benchmarks={gsm8k: {limit: 8}}"])   # ParamsError on a bad name
    for line in warnings(p, "params/cpu.yaml"): print("warning:", line)
    tulu-repro validate params/*.yaml
"""

from __future__ import annotations

import functools
import os
import re
import typing
from pathlib import Path

from tulu_lib.core import assets
from tulu_lib.core.hashing import selection_benchmarks
from tulu_lib.core.params import Params, ParamsError, load_params, looks_local, unknown, where
from tulu_lib.evals import registry

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")  # huggingface_hub's repo id: org/name
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")  # what the loader reads (sources.read_rows)
SOURCES_READ_UP_TO = 64 * 2**20  # local data files read for their sources by validate


def load(path: str | Path, overrides: typing.Sequence[str] = ()) -> Params:
    """:func:`~tulu_lib.core.params.load_params`, then :func:`check_names`."""
    params = load_params(path, overrides)
    check_names(params, str(path))
    return params


def is_hub_id(ref: str) -> bool:
    """``org/name`` as the hub spells repo ids (no ``--`` or ``..``)."""
    return HUB_ID.fullmatch(ref) is not None and "--" not in ref and ".." not in ref


def check_names(params: Params, source: str) -> None:
    """Every benchmark, model, data and persona name in ``params`` is one this package can use,
    and every ``rlvr.select_on`` domain has its evaluation benchmark under ``rlvr.select_with:
    eval``; else a :class:`ParamsError` naming the file, the key, the value and what is allowed."""
    runnable = list(registry.BENCHMARKS) + [n for n in registry.NOT_RUN if n not in registry.BENCHMARKS]
    for name in params.eval.benchmarks:
        if name not in runnable:
            raise unknown(where(source, ("eval", "benchmarks", name)), "benchmark", name, runnable)
    ifeval_style = [n for n, b in registry.BENCHMARKS.items() if "inst_loose" in b.secondary]
    if params.eval.constraint_benchmark not in ifeval_style:  # findings b and c pair on its items
        raise unknown(where(source, ("eval", "constraint_benchmark")), "IFEval-style benchmark",
                      params.eval.constraint_benchmark, ifeval_style)
    for i, name in enumerate(params.decontamination.benchmarks):
        if name not in registry.DATASETS:
            raise unknown(where(source, ("decontamination", "benchmarks", str(i))),
                          "benchmark (decontamination reads its texts)", name, registry.DATASETS)
    if params.rlvr.select_with == "eval":  # 04_rlvr can score each select_on domain as 05_eval does
        try:
            selection_benchmarks(params.to_dict())
        except ValueError as exc:
            raise ParamsError(f"{where(source, ('rlvr', 'select_with'))}: {exc}") from None
    _check_model(params.model.name, source, ("model", "name"))
    rm = params.rlvr.ppo.reward_model
    if rm is not None and not Path(rm).expanduser().is_dir() and not is_hub_id(rm):
        raise ParamsError(f"{where(source, ('rlvr', 'ppo', 'reward_model'))}: {rm!r} is not allowed; use a "
                          "local checkpoint folder or a hub id like allenai/Llama-3.1-Tulu-3-8B-RM")
    _check_synthesis(params, source)
    for kind in ("sft", "preferences", "rlvr"):
        _check_data_path(getattr(params.data, kind).path, source, ("data", kind, "path"))
    _check_sources(params, source)


def _check_model(name: str, source: str, keys: tuple[str, ...]) -> None:
    if name in assets.REGISTRY or Path(name).expanduser().is_dir() or is_hub_id(name):
        return
    raise unknown(where(source, keys), "model", name,
                  [*assets.REGISTRY, "a hub id like meta-llama/Llama-3.1-8B", "a local folder"])


def _check_synthesis(params: Params, source: str) -> None:
    spec = params.synthesis
    personas = spec.personas
    if personas != "builtin" and not is_hub_id(personas) and not (
            personas.endswith(".txt") and Path(personas).expanduser().is_file()):
        what = "no such file" if personas.endswith(".txt") else "not builtin, a .txt file or a hub id"
        raise ParamsError(f"{where(source, ('synthesis', 'personas'))}: {personas!r} is not allowed "
                          f"({what}); use builtin, an existing .txt file (one persona a line) or a hub id "
                          "like proj-persona/PersonaHub")
    if spec.enabled:
        for key, names in (("pool", spec.pool), ("judge_model", [spec.judge_model]),
                           ("prompt_model", [spec.prompt_model])):
            for i, name in enumerate(n for n in names if n is not None):
                keys = ("synthesis", key, str(i)) if key == "pool" else ("synthesis", key)
                _check_model(name, source, keys)


def _check_data_path(ref: str, source: str, keys: tuple[str, ...]) -> None:
    """A stand-in (checked by load_params), a readable local file or saved dataset, or a hub id."""
    local = Path(ref).expanduser()
    if ref.startswith("standin:"):
        return
    if local.is_dir():
        if not (local / "dataset_info.json").is_file():
            raise ParamsError(f"{where(source, keys)}: {ref!r} is not allowed: a folder without "
                              "dataset_info.json; use a folder written by Dataset.save_to_disk")
        return
    if local.is_file():
        if local.suffix not in DATA_SUFFIXES:
            raise ParamsError(f"{where(source, keys)}: {ref!r} is not allowed: not a data file; "
                              f"use a {', '.join(DATA_SUFFIXES)} file or a saved dataset folder")
        return
    if looks_local(ref) or not is_hub_id(ref):
        raise ParamsError(f"{where(source, keys)}: {ref!r} is not allowed: no such file or folder, and not "
                          f"a hub id (org/name); use standin:{keys[1]}, a hub id or a local data file "
                          f"(relative paths are read from {Path.cwd()})")


@functools.lru_cache(maxsize=8)
def _sources_of(kind: str, path: str, split: str, stamp: tuple) -> frozenset[str] | None:
    """The ``source`` values the loader gives ``path``'s rows; None when not read here (hub ids,
    large files). ``stamp`` (size, mtime) keys the cache on the file's state."""
    from tulu_lib.core.params import SourceParams  # lazy: with the loader below
    from tulu_lib.data import loader  # lazy: datasets costs validate a second; only local files need it

    try:
        rows, _ = loader.read(kind, SourceParams(path=path, split=split, duplicate_ids="keep_all"))
    except ValueError:
        return None  # unreadable: the run's loader says why, with the file and line
    return frozenset(row["source"] for row in rows)


def _readable_sources(kind: str, path: str, split: str) -> frozenset[str] | None:
    if path.startswith("standin:"):
        return _sources_of(kind, path, split, ())
    local = Path(path).expanduser()
    if local.is_file() and local.stat().st_size <= SOURCES_READ_UP_TO:
        return _sources_of(kind, str(local), split, (local.stat().st_size, local.stat().st_mtime_ns))
    return None


def _check_sources(params: Params, source: str) -> None:
    """``data.*.mix`` and ``sft.ablate_sources`` name sources the data has (when it can be read here)."""
    for kind in ("sft", "preferences", "rlvr"):
        spec = getattr(params.data, kind)
        wanted = list(spec.mix) + (list(params.sft.ablate_sources) if kind == "sft" else [])
        if not wanted:
            continue
        have = _readable_sources(kind, spec.path, spec.split)
        if have is None:
            continue
        for name in spec.mix:
            if name not in have:
                raise unknown(where(source, ("data", kind, "mix", name)), f"source of {spec.path}", name,
                              sorted(have))
        if kind == "sft":
            after_mix = set(spec.mix) or have
            for i, name in enumerate(params.sft.ablate_sources):
                if name not in after_mix:
                    mixed = ", after data.sft.mix" if spec.mix else ""
                    raise unknown(where(source, ("sft", "ablate_sources", str(i))),
                                  f"source of the SFT data ({spec.path}{mixed})", name, sorted(after_mix))


def _in_hub_cache(ref: str, repo_type: str) -> bool:
    from datasets import config
    from huggingface_hub import constants

    hub = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{ref.replace('/', '--')}"
    if hub.is_dir():
        return True
    return repo_type == "dataset" and any(Path(config.HF_DATASETS_CACHE).glob(f"{ref.replace('/', '___')}*"))


def warnings(params: Params, source: str) -> list[str]:
    """One line per hub id in ``params`` that is not in the local cache (model, reward model,
    data, synthesis models and personas, named checkpoints, the safety classifier, and the data of
    every benchmark with no packaged copy): not an error, as the hub may be reachable at run time;
    and one per benchmark that will be reported as not run (no judge or classifier configured,
    not implemented).

    Usage: ``for line in warnings(p, "params/tulu3-8b.yaml"): print("warning:", line)``
    """
    refs: list[tuple[tuple[str, ...], str, str]] = [(("model", "name"), params.model.name, "model")]
    if params.rlvr.ppo.reward_model:
        refs.append((("rlvr", "ppo", "reward_model"), params.rlvr.ppo.reward_model, "model"))
    refs += [(("data", k, "path"), getattr(params.data, k).path, "dataset")
             for k in ("sft", "preferences", "rlvr")]
    spec = params.synthesis
    if spec.enabled:
        refs += [(("synthesis", "pool", str(i)), m, "model") for i, m in enumerate(spec.pool)]
        refs += [(("synthesis", k), getattr(spec, k), "model") for k in ("judge_model", "prompt_model")
                 if getattr(spec, k)]
        refs.append((("synthesis", "personas"), spec.personas, "dataset"))
    refs += [(("eval", "checkpoints", label), ref, "model") for label, ref in params.eval.checkpoints.items()]
    if params.eval.safety_classifier:
        refs.append((("eval", "safety_classifier"), params.eval.safety_classifier, "model"))
    lines = []
    graders = {"judge": params.eval.judge, "safety_classifier": params.eval.safety_classifier}
    for name, bp in params.eval.benchmarks.items():
        keys = ("eval", "benchmarks", name)
        task = registry.BENCHMARKS.get(name)
        if task is None:  # known but not implemented (check_names refuses unknown names)
            lines.append(f"{where(source, keys)}: {registry.not_run_reason(name)}")
            continue
        if task.judge_score is not None and not graders[task.judge_role]:
            lines.append(f"{where(source, keys)}: {task.not_run_without_judge}")
        rows_of = registry.BENCHMARKS[task.data] if task.data else task
        if bp.data is not None or rows_of.packaged is None:
            refs.append(((*keys, "data"), bp.data or rows_of.hub_id, "dataset"))
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    for keys, ref, repo_type in refs:
        if ref in assets.REGISTRY or Path(ref).expanduser().exists() or not is_hub_id(ref) \
                or _in_hub_cache(ref, repo_type):
            continue
        then = ("HF_HUB_OFFLINE is set, so the run will fail unless it is downloaded first" if offline
                else "the run downloads it, so the hub must be reachable then")
        lines.append(f"{where(source, keys)}: hub {repo_type} {ref!r} is not in the local cache; {then}")
    return lines


__all__ = ["ParamsError", "check_names", "is_hub_id", "load", "warnings"]
