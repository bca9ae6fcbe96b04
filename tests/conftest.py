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
