"""The SFT ablations as arms: the loss aggregation, Figure 4's subsamples and the source removals."""

from collections import Counter

import datasets
import pytest

from tulu_lib.ablations import sft_arms
from tulu_lib.core.params import load_params


@pytest.fixture
def rows16():
    sources = ["a"] * 8 + ["b"] * 6 + ["c"] * 2
    return datasets.Dataset.from_list([
        {"id": str(i), "source": s, "messages": [{"role": "user", "content": f"q{i}"},
                                                 {"role": "assistant", "content": f"a{i}"}]}
        for i, s in enumerate(sources)])


def test_mix_arms_subsample_every_source_and_keep_the_passes(rows16):
    p = load_params("params/smoke.yaml", ["sft.optim.max_steps=8", "sft.ablate_subsample=[0.5]",
                                          "sft.ablate_sources=[a]"])
    groups = sft_arms.mix_arms(p, rows16)
    full, half = groups["fig04_sft_subsamples"]
    assert full.main and full.label == "full mix" and full.params == p and len(full.data) == 16
    counts = Counter(rows16["source"])
    assert Counter(half.data["source"]) == {s: round(n / 2) for s, n in counts.items() if round(n / 2)}
    assert half.params.sft.optim.max_steps == max(1, round(8 * len(half.data) / len(rows16)))
    assert half.params.sft.loss == p.sft.loss and half.params.seed == p.seed and not half.main
    _, without = groups["sft_source_removal"]
    assert without.label == "without a" and "a" not in without.data["source"]
    assert len(without.data) == len(rows16) - counts["a"]
    with pytest.raises(ValueError, match="no rows with source"):
        sft_arms.mix_arms(load_params("params/smoke.yaml", ["sft.ablate_sources=[nosuch]"]), rows16)
    assert sft_arms.mix_arms(load_params("params/smoke.yaml", ["sft.ablate_subsample=[]",
                                                               "sft.ablate_sources=[]"]), rows16) == {}


def test_the_loss_arms_differ_in_the_aggregation_only(rows16):
    p = load_params("params/smoke.yaml")
    main, other = sft_arms.loss_arms(p, rows16)
    assert (main.label, main.main, other.label, other.main) == ("sum", True, "mean", False)
    assert other.params.sft.loss == "mean" and other.params.sft.optim == p.sft.optim
    assert other.data is main.data is rows16
