"""Params checked against the registries: what ``tulu-repro validate`` and every run load.

:func:`tulu_lib.core.params.load_params` checks a params file against its schema; this layer, which
sees the benchmark and model registries, also checks that every name in it is one they know.

Usage::

    p = load("params/cpu.yaml", ["eval.benchmarks={gsm8k: {limit: 8}}"])   # ParamsError on a bad name
    tulu-repro validate params/*.yaml
"""

from __future__ import annotations

import typing
from pathlib import Path

from tulu_lib.core import assets
from tulu_lib.core.hashing import selection_benchmarks
from tulu_lib.core.params import Params, ParamsError, load_params, looks_local, unknown, where
from tulu_lib.evals import registry


def load(path: str | Path, overrides: typing.Sequence[str] = ()) -> Params:
    """:func:`~tulu_lib.core.params.load_params`, then :func:`check_names`."""
    params = load_params(path, overrides)
    check_names(params, str(path))
    return params


def check_names(params: Params, source: str) -> None:
    """Every benchmark and model name in ``params`` is one this package knows, and every
    ``rlvr.select_on`` domain has its evaluation benchmark under ``rlvr.select_with: eval``; else a
    :class:`ParamsError` naming the file, the key and the fix (the close valid names)."""
    runnable = list(registry.BENCHMARKS) + [n for n in registry.NOT_RUN if n not in registry.BENCHMARKS]
    for name in params.eval.benchmarks:
        if name not in runnable:
            raise unknown(where(source, ("eval", "benchmarks", name)), "benchmark", name, runnable)
    for i, name in enumerate(params.decontamination.benchmarks):
        if name not in registry.DATASETS:
            raise unknown(where(source, ("decontamination", "benchmarks", str(i))),
                          "benchmark (decontamination reads its texts)", name, registry.DATASETS)
    if params.rlvr.select_with == "eval":  # 04_rlvr can score each select_on domain as 05_eval does
        try:
            selection_benchmarks(params.to_dict())
        except ValueError as exc:
            raise ParamsError(f"{where(source, ('rlvr', 'select_with'))}: {exc}") from None
    name = params.model.name
    if "/" not in name and not looks_local(name) and name not in assets.REGISTRY \
            and not Path(name).expanduser().is_dir():
        raise unknown(where(source, ("model", "name")), "model", name,
                      [*assets.REGISTRY, "a hub id like meta-llama/Llama-3.1-8B", "a local folder"])


__all__ = ["ParamsError", "check_names", "load"]
