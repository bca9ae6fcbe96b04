"""Figures are readable: titled, with labelled axes; stages keep their colours across figures."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tulu_lib.data.loader import length_histogram  # noqa: E402
from tulu_lib.reporting import plots  # noqa: E402


def test_stage_colours_follow_the_stage_named_in_a_label():
    assert plots.colour_for("dpo", ["dpo", "sft"]) == plots.STAGE_COLOURS["dpo"]
    assert plots.colour_for("from SFT", ["from DPO", "from SFT"]) == plots.STAGE_COLOURS["sft"]
    assert plots.colour_for("math", ["code", "math"]) == plots.PALETTE[1]


LOG = pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5], "kl": [0.0, 0.1], "reward": [1.0, 2.0],
                    "rewards/gsm8k/mean": [0.0, 5.0], "gsm8k/response_length": [80, 70],
                    "gsm8k/kl": [0.0, 0.1]})
SWEEP = pd.DataFrame({"unique prompts": [8, 16], "gsm8k": [10.0, 20.0], "average": [10.0, 20.0],
                      "ci95_low": [2.0, 8.0], "ci95_high": [30.0, 40.0]})
BETA = pd.DataFrame({"beta": [0.01, 0.05], "domain": ["gsm8k", "gsm8k"], "accuracy": [0.2, 0.3],
                     "ci95_low": [0.1, 0.2], "ci95_high": [0.4, 0.5], "final_kl": [0.3, 0.1]})


TWO = pd.concat([LOG.assign(run="from DPO"), LOG.assign(run="from SFT")], ignore_index=True)
LENGTHS = pd.DataFrame({"source": ["a", "b", "a"], "tokens": [10, 200, 30]})


@pytest.mark.parametrize("make", [
    lambda: plots.mix_composition(length_histogram(LENGTHS)),
    lambda: plots.rlvr_curves(TWO, ["gsm8k"], by="run"),
    lambda: plots.rlvr_curves(LOG, ["gsm8k"], held_out=BETA.assign(step=[0, 2])),
    lambda: plots.training_curves(TWO, ["loss"], "SFT loss"),
    lambda: plots.sweep_scores(SWEEP, "unique prompts", ["gsm8k"], "Figure 8"),
])
def test_every_panel_has_a_title_and_labelled_axes(make):
    fig = make()
    assert fig.axes
    assert fig.get_suptitle() or all(ax.get_title() for ax in fig.axes)
    for ax in fig.axes:
        assert ax.get_title() or ax.get_ylabel(), "a grid's rows are named by their y labels"
        if ax.has_data():
            assert ax.get_ylabel(), ax.get_title()
    assert any(ax.get_xlabel() for ax in fig.axes)  # panels sharing an x axis label it once


def test_judge_ratings_draw_bars_when_whole_and_histograms_when_fractional():
    aspects = ["helpfulness", "honesty"]
    whole = pd.DataFrame({"model": ["a", "a", "b"], "helpfulness": [1, 5, 3], "honesty": [2, 2, 4]})
    fig = plots.rating_distributions(whole, aspects, "written ratings")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 5  # a bar per rating and model
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "1"
    fractional = whole.assign(helpfulness=[3.12, 3.47, 2.95], honesty=[3.3, 3.31, 3.05])
    ax = plots.rating_distributions(fractional, aspects, "expected ratings").axes[0]
    assert len(ax.patches) == 2  # one step histogram per model
    pairs = pd.DataFrame({"margin": [0.02, 0.31, 0.13], "chosen_tokens": [10, 20, 30],
                          "rejected_tokens": [30, 20, 10]})
    left = plots.preference_margins(pairs, "fractional margins").axes[0]
    assert sum(p.get_height() for p in left.patches) == 3


def test_a_figure_is_drawn_from_tables_by_name_and_lines_follow_the_runs():
    fig = plots.draw("training_curves", {"logs": TWO}, {"keys": ["loss"], "title": "t"})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["from DPO", "from SFT"]
    with pytest.raises(KeyError, match="unknown plot"):
        plots.draw("pie", {}, {})
    hist = length_histogram(LENGTHS)
    assert hist.groupby("source")["examples"].sum().to_dict() == {"a": 2, "b": 1}
    assert (hist["tokens_to"] > hist["tokens_from"]).all()
