"""Shared test set-up: offline hub, and the two registry models built once per machine."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def tiny_path():
    from tulu_lib.core import assets

    return assets.model_path("tiny-llama")


@pytest.fixture(scope="session")
def tokenizer(tiny_path):
    from tulu_lib.core import assets

    return assets.load_tokenizer("tiny-llama")


@pytest.fixture(scope="session")
def letter_rows():
    """``letter_rows(n, at_least)``: n ifeval RLVR rows asking for at least ``at_least`` e's. A random
    model never emits EOS, so with the non-EOS rule off this passes by chance about half the time
    (at 9 in 16 tokens): rewards vary within each group and GRPO has something to learn."""
    import json

    from datasets import Dataset

    def make(n: int, at_least: int):
        truth = json.dumps({"func_name": "verify_letter_frequency", "letter": "e", "N": at_least,
                            "quantifier": "at least"})
        return Dataset.from_list([{"messages": [{"role": "user", "content": f"Say something {i}."}],
                                   "ground_truth": truth, "dataset": "ifeval"} for i in range(n)])
    return make


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole smoke run, once per session, by the CLI as a user types it and started outside
    the repo (``tests/test_e2e.py`` checks it; the browser tests open its report): a namespace with
    ``out`` (the run folder), ``done`` (the finished process), ``cwd`` (where it started) and
    ``sockets_before`` (kernel sockets in the repo before it ran)."""
    import subprocess
    import sys
    import types
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("smoke-run")
    out, cwd = root / "smoke", root / "cwd"
    cwd.mkdir()
    sockets_before = set(repo.glob("kernel-ipc-*"))
    command = [sys.executable, "-m", "tulu_lib.cli", "run", "--params", str(repo / "params/smoke.yaml"),
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=cwd)
    return types.SimpleNamespace(out=out, done=done, cwd=cwd, sockets_before=sockets_before)
