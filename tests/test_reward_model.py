"""Reward model: TRL's RewardTrainer on preference pairs, scoring replies, hub ids."""

import pytest

from tulu_lib.core.params import OptimParams, SourceParams
from tulu_lib.data import loader
from tulu_lib.train import reward_model


def test_a_reward_model_learns_the_preferred_reply_and_scores_conversations(tmp_path):
    from transformers import AutoConfig

    # the stand-in preference prompts with a reply the model can tell apart at once: "Yes." over "No."
    prefs = loader.load_preferences(SourceParams(path="standin:preferences", limit=16), seed=0).dataset
    prefs = prefs.map(lambda r: {"chosen": [{"role": "assistant", "content": "Yes."}],
                                 "rejected": [{"role": "assistant", "content": "No."}]})
    optim = OptimParams(learning_rate=1e-2, max_steps=6, per_device_batch_size=4, max_length=256,
                        save_steps=3)
    folder = reward_model.train_reward_model("tiny-llama", prefs, optim, tmp_path, seed=0).checkpoint
    assert folder == tmp_path / "final" and AutoConfig.from_pretrained(folder).num_labels == 1
    assert (tmp_path / "checkpoint-3").is_dir() and (folder / "chat_template.jinja").exists()
    chosen = reward_model.score_replies(str(folder), [r["prompt"] + r["chosen"] for r in prefs])
    rejected = reward_model.score_replies(str(folder), [r["prompt"] + r["rejected"] for r in prefs],
                                          batch_size=3)
    assert len(chosen) == len(prefs) and all(c > r for c, r in zip(chosen, rejected, strict=True))
    # measured: an untrained head separates them by ~1e-4 on average, the trained one by ~0.35
    assert sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(prefs) > 0.1
    # alone or in a padded batch of 16: the same score up to float32 rounding (CI saw 1.5e-8 apart)
    alone = reward_model.score_replies(str(folder), [prefs[0]["prompt"] + prefs[0]["chosen"]])
    assert alone == pytest.approx(chosen[:1], rel=1e-5)


def test_a_hub_id_is_read_as_a_hub_model():
    # offline (tests/conftest.py) and not cached: from_pretrained tried the hub (no "unknown model")
    with pytest.raises(OSError, match="huggingface.co"):
        reward_model.load_reward_model("allenai/Llama-3.1-Tulu-3-8B-RM")
