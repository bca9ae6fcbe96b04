"""DPO stage: each loss against hand-computed values, the on-disk reference cache, real training."""

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tulu_lib.core.assets import load_tokenizer
from tulu_lib.core.chat_template import tokenize_conversation
from tulu_lib.core.params import DPOParams, OptimParams, SourceParams
from tulu_lib.data.loader import load_preferences
from tulu_lib.train import dpo

ROOT = Path(__file__).resolve().parents[1]
MAX_LENGTH = 96


@pytest.fixture(scope="module")
def pairs():
    return load_preferences(SourceParams(path="standin:preferences", limit=16), seed=0).dataset


def _params(loss="dpo_norm", beta=0.5, per_loss=None, **optim) -> DPOParams:
    o = dict(learning_rate=1e-2, max_steps=2, per_device_batch_size=2, max_length=MAX_LENGTH, save_steps=100)
    return DPOParams(optim=OptimParams(**{**o, **optim}), loss=loss, beta=beta, gamma_beta_ratio=1.0,
                     per_loss=per_loss or {})


@pytest.fixture
def reference_loads(monkeypatch):
    """Counts TRL's reference passes over a dataset ("loads") and the backbone forward passes in
    them, independently of the library's counter."""
    from trl import DPOTrainer

    seen = {"loads": 0, "forwards": 0}
    precompute = DPOTrainer._precompute_ref_logps

    def counting(self, *args, **kwargs):
        seen["loads"] += 1
        hook = self.model.base_model.register_forward_hook(
            lambda *_: seen.__setitem__("forwards", seen["forwards"] + 1))
        try:
            return precompute(self, *args, **kwargs)
        finally:
            hook.remove()

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", counting)
    return seen


# ----------------------------------------------------------------------------- config


def test_dpo_config_maps_losses_and_sets_trl_defaults_explicitly(tmp_path):
    for loss, trl_loss in (("dpo", ["sigmoid"]), ("dpo_norm", ["sigmoid_norm"]), ("simpo", ["sigmoid_norm"])):
        cfg = dpo.dpo_config(_params(loss, beta=5.0, warmup_ratio=0.1), tmp_path, seed=7)
        assert (cfg.loss_type, cfg.beta, cfg.precompute_ref_log_probs, cfg.seed) == (trl_loss, 5.0, True, 7)
        assert cfg.bf16 is False and cfg.gradient_checkpointing is False  # TRL's defaults are True
        assert cfg.report_to == [] and cfg.warmup_steps == 0.1 and cfg.max_length == MAX_LENGTH
    checkpointed = OptimParams(learning_rate=1e-3, gradient_checkpointing=True)
    cfg = dpo.dpo_config(dataclasses.replace(_params("dpo"), cache_reference=False, optim=checkpointed),
                         tmp_path, seed=0)
    assert cfg.gradient_checkpointing is True and cfg.precompute_ref_log_probs is False
    from tulu_lib.core.params import LaunchParams

    assert cfg.ddp_timeout == 1800  # open-instruct's timeout default
    assert dpo.dpo_config(_params(), tmp_path, seed=0,
                          launch=LaunchParams(collective_timeout_s=7200)).ddp_timeout == 7200


def test_each_loss_takes_its_own_settings_and_validate_rejects_bad_ones(tmp_path):
    from tulu_lib.core.params import LossSettings, ParamsError, load_params

    per_loss = {"dpo": LossSettings(beta=0.1), "simpo": LossSettings(beta=10.0, gamma_beta_ratio=0.3)}
    base = _params("dpo_norm", beta=5.0, per_loss=per_loss)
    settled = {loss: dataclasses.replace(base, loss=loss).settled() for loss in ("dpo", "dpo_norm", "simpo")}
    assert {k: (v.beta, v.gamma_beta_ratio) for k, v in settled.items()} == {
        "dpo": (0.1, 1.0), "dpo_norm": (5.0, 1.0), "simpo": (10.0, 0.3)}
    # the release's values reach the 8B params (open-instruct: dpo_beta default 0.1; SimPO test config
    # beta 10, dpo_gamma_beta_ratio 0.3; the final 8B config dpo_norm at beta 5)
    p8 = load_params(ROOT / "params" / "tulu3-8b.yaml").dpo
    assert (p8.settled().beta, dataclasses.replace(p8, loss="dpo").settled().beta) == (5.0, 0.1)
    assert (dataclasses.replace(p8, loss="simpo").settled().beta,
            dataclasses.replace(p8, loss="simpo").settled().gamma_beta_ratio) == (10.0, 0.3)
    for bad, message in (("dpo.per_loss={ipo: {beta: 1}}", "unknown loss 'ipo'"),
                         ("dpo.per_loss={simpo: {beta: 0}}", "beta must be > 0"),
                         ("dpo.per_loss={simpo: {gamma_beta_ratio: -1}}", "gamma_beta_ratio must be >= 0")):
        with pytest.raises(ParamsError, match=message):
            load_params(ROOT / "params" / "smoke.yaml", [bad])


# ------------------------------------------------------------------ losses by hand

# Two pairs, β = 0.5, SimPO γ = 0.5. Per-token policy log-probs of each reply, and the
# reference's summed log-probs:
#   A: chosen [-1, -2] (sum -3, mean -1.5), rejected [-1, -1, -1, -1] (sum -4, mean -1);  ref -3.5 / -3.0
#   B: chosen [-0.5]  (sum -0.5, mean -0.5), rejected [-2, -1] (sum -3, mean -1.5);       ref -1.0 / -2.5
# loss = -log σ(z) = log(1 + e^-z) with
#   dpo:      z = β[(π_c - ref_c) - (π_r - ref_r)]
#             A: 0.5[(-3 + 3.5) - (-4 + 3)] = 0.75 -> 0.386871   B: 0.5[0.5 + 0.5] = 0.5 -> 0.474077
#   dpo_norm: z = β[(π_c - ref_c)/|c| - (π_r - ref_r)/|r|]
#             A: 0.5[0.5/2 + 1/4] = 0.25 -> 0.575939         B: 0.5[0.5/1 + 0.5/2] = 0.375 -> 0.523123
#   simpo:    z = β(mean π_c - mean π_r - γ/β)   (open-instruct's simpo_loss; no reference), γ/β = 1
#             A: 0.5(-1.5 + 1 - 1) = -0.75 -> 1.136871    B: 0.5(-0.5 + 1.5 - 1) = 0 -> 0.693147
#   simpo at the release's β = 10, γ/β = 0.3:
#             A: 10(-0.5 - 0.3) = -8 -> 8.000335          B: 10(1 - 0.3) = 7 -> 0.000911
PAIRS = {"A": ([-1.0, -2.0], [-1.0, -1.0, -1.0, -1.0], -3.5, -3.0),
         "B": ([-0.5], [-2.0, -1.0], -1.0, -2.5)}
EXPECTED = {"dpo": {"A": 0.386871, "B": 0.474077}, "dpo_norm": {"A": 0.575939, "B": 0.523123},
            "simpo": {"A": 1.136871, "B": 0.693147}, "simpo_release": {"A": 8.000335, "B": 0.000911}}
PROMPT = 2  # prompt tokens before each reply


def _rows(token_logps_per_row, width):
    """Per-position values where position P-1+k predicts reply token k (TRL's shifted layout)."""
    out = torch.zeros(len(token_logps_per_row), width)
    for i, lps in enumerate(token_logps_per_row):
        out[i, PROMPT - 1:PROMPT - 1 + len(lps)] = torch.tensor(lps)
    return out


def _inputs(trainer, chosen, rejected, ref_c, ref_r):
    """The trainer's own collated batch for one pair (reply tokens are id 0; the reference columns
    given for dpo/dpo_norm, the collator's margin for SimPO), and a stand-in for the policy's
    fused-head forward giving these per-token log-probs."""
    example = {"prompt_ids": [0] * PROMPT, "chosen_ids": [0] * len(chosen),
               "rejected_ids": [0] * len(rejected)}
    if trainer.data_collator.simpo_gamma_beta_ratio is None:
        example |= {"ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    inputs = trainer.data_collator([example])
    log_probs = _rows([chosen, rejected], inputs["input_ids"].size(1) - 1)

    def policy(**_):
        zeros = torch.zeros_like(log_probs)
        return SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros,
                               is_top1=zeros.bool(), aux_loss=None)
    return inputs, policy


@pytest.mark.parametrize("loss", ["dpo", "dpo_norm", "simpo", "simpo_release"])
def test_each_loss_matches_the_hand_computed_value(loss, pairs, tiny_path, tmp_path):
    from tulu_lib.core.params import LossSettings

    release = {"simpo": LossSettings(beta=10.0, gamma_beta_ratio=0.3)} if loss == "simpo_release" else None
    params = _params(loss.split("_release")[0], per_loss=release)
    trainer = dpo.build_trainer(tiny_path, pairs.select(range(2)), params, tmp_path / "out", seed=0,
                                ref_cache_root=tmp_path / "cache")
    for name, (chosen, rejected, ref_c, ref_r) in PAIRS.items():
        inputs, policy = _inputs(trainer, chosen, rejected, ref_c, ref_r)
        with torch.no_grad():
            value = trainer.compute_loss(policy, inputs).item()  # the trainer's own loss entry point
        assert value == pytest.approx(EXPECTED[loss][name], abs=1e-5), (loss, name)


def test_simpo_tokenizes_like_dpo_with_no_extra_bos(pairs, tiny_path, tmp_path):
    rows = pairs.select(range(4))
    trainers = {loss: dpo.build_trainer(tiny_path, rows, _params(loss), tmp_path / loss, seed=0,
                                        ref_cache_root=tmp_path / "cache") for loss in ("dpo_norm", "simpo")}
    columns = ("prompt_ids", "chosen_ids", "rejected_ids")
    assert all(trainers["simpo"].train_dataset[c] == trainers["dpo_norm"].train_dataset[c] for c in columns)
    tokenizer = trainers["simpo"].processing_class
    rendered = tokenizer.apply_chat_template(list(rows[0]["prompt"]), tokenize=True, return_dict=True,
                                             add_generation_prompt=True)["input_ids"]
    assert trainers["simpo"].train_dataset[0]["prompt_ids"] == list(rendered)  # nothing prepended


def _multi_turn_pair():
    return datasets.Dataset.from_list([{
        "id": "mt", "prompt": [{"role": "user", "content": "Name a colour."},
                               {"role": "assistant", "content": "Blue."},
                               {"role": "user", "content": "Another one?"}],
        "chosen": [{"role": "assistant", "content": "Green."}],
        "rejected": [{"role": "assistant", "content": "I will not."}]}])


def test_multi_turn_pairs_train_every_assistant_turn(tiny_path, tmp_path):
    rows = _multi_turn_pair()
    trainer = dpo.build_trainer(tiny_path, rows, _params(), tmp_path / "o", seed=0,
                                ref_cache_root=tmp_path / "c")
    batch = trainer.data_collator([trainer.train_dataset[0]])
    tokenizer = trainer.processing_class
    for row, side in ((0, "chosen"), (1, "rejected")):
        ids, labels = tokenize_conversation(tokenizer, rows[0]["prompt"] + rows[0][side])
        n = len(ids)
        assert batch["input_ids"][row, :n].tolist() == ids
        # open-instruct's labels: every assistant reply (and its EOS) of the conversation, nothing else
        assert batch["completion_mask"][row, :n].tolist() == [int(x != -100) for x in labels]
        assert batch["completion_mask"][row, n:].sum() == 0
        trained = [t for t, x in zip(ids, labels, strict=True) if x != -100]
        assert tokenizer.decode(trained).startswith("Blue.")


def test_shared_earlier_turns_cancel_in_summed_dpo_but_not_in_dpo_norm(tiny_path, tmp_path):
    """Summed DPO: the shared earlier reply adds the same log-prob to chosen and rejected, so the loss
    is what the final replies alone give; length-normalised DPO averages it in, so it moves."""
    rows = _multi_turn_pair()
    values = {}
    for loss in ("dpo", "dpo_norm"):
        trainer = dpo.build_trainer(tiny_path, rows, _params(loss), tmp_path / loss, seed=0,
                                    ref_cache_root=tmp_path / "c")
        with torch.no_grad():
            trainer.model.model.embed_tokens.weight.mul_(1.5)  # policy != reference
        example = dict(trainer.train_dataset[0])
        for every_turn in (True, False):
            if not every_turn:
                example[dpo.EARLIER_TURNS] = []
            batch = trainer.data_collator([example])
            with torch.no_grad():
                values[loss, every_turn] = trainer.compute_loss(trainer.model, batch).item()
    assert values["dpo", True] == pytest.approx(values["dpo", False], abs=1e-5)
    assert abs(values["dpo_norm", True] - values["dpo_norm", False]) > 1e-4


def test_the_config_is_built_before_the_model_is_loaded(pairs, tiny_path, tmp_path, monkeypatch):
    """With a ZeRO-3 config, transformers partitions from_pretrained only once the config exists."""
    from transformers import AutoModelForCausalLM

    order, load, config = [], AutoModelForCausalLM.from_pretrained, dpo.dpo_config
    monkeypatch.setattr(dpo, "dpo_config", lambda *a, **k: order.append("config") or config(*a, **k))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: order.append("model") or load(*a, **k))
    dpo.build_trainer(tiny_path, pairs.select(range(2)), _params(), tmp_path / "o", seed=0,
                      ref_cache_root=tmp_path / "c")
    assert order == ["config", "model"]


# ------------------------------------------------------------------ reference cache


def test_cached_reference_logps_equal_trls_own_and_separate_forward_matches(pairs, tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    rows = pairs.select(range(4))
    params = _params()
    ours = {sep: dpo.build_trainer(tiny_path, rows, params, tmp_path / f"o{sep}", seed=0,
                                   ref_cache_root=tmp_path / f"cache{sep}", separate_forward=sep)
            for sep in (False, True)}
    theirs = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_path),
                        args=dpo.dpo_config(params, tmp_path / "trl", seed=0), train_dataset=rows,
                        processing_class=ours[False].processing_class)
    for column in dpo.REF_COLUMNS:
        expected = torch.tensor(theirs.train_dataset[column])
        for trainer in ours.values():
            assert torch.allclose(torch.tensor(trainer.train_dataset[column]), expected, atol=1e-3, rtol=1e-5)
    assert ours[True].reference_forwards.calls == 2 * ours[False].reference_forwards.calls  # 2 a batch

    # the policy's forward in halves gives TRL's loss and gradients unchanged
    batch = ours[False].data_collator([ours[False].train_dataset[i] for i in range(2)])
    batch = {k: v.to(ours[False].model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    results = []
    for trainer in ours.values():
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        results.append((loss.detach(), trainer.model.get_input_embeddings().weight.grad.clone()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_second_run_does_no_reference_forward_and_key_changes_recompute(pairs, tiny_path, tmp_path,
                                                                        reference_loads):
    rows, cache = pairs.select(range(6)), tmp_path / "cache"
    one_step = _params(max_steps=1, per_device_batch_size=1)
    first = dpo.train_dpo(tiny_path, rows, one_step, tmp_path / "run1", seed=0, ref_cache_root=cache)
    assert first.stats["reference"]["cache_hit"] is False and reference_loads["forwards"] > 0
    assert first.stats["reference"]["forward_passes"] == reference_loads["forwards"]
    seen = dict(reference_loads)

    second = dpo.train_dpo(tiny_path, rows, one_step, tmp_path / "run2", seed=0, ref_cache_root=cache)
    assert reference_loads == seen  # no reference model loaded, no reference forward pass
    assert second.stats["reference"] == {**first.stats["reference"], "cache_hit": True, "forward_passes": 0}
    assert math.isfinite(second.stats["final_loss"])

    ablation = dpo.build_trainer(tiny_path, rows, _params("dpo"), tmp_path / "abl", seed=0,
                                 ref_cache_root=cache)
    assert ablation.reference_info["cache_hit"] and ablation.ref_model is None  # dpo shares dpo_norm's values

    for changed in (dict(params=_params(max_length=MAX_LENGTH - 16)), dict(rows=pairs.select(range(1, 7)))):
        trainer = dpo.build_trainer(tiny_path, changed.get("rows", rows), changed.get("params", _params()),
                                    tmp_path / "chg", seed=0, ref_cache_root=cache)
        assert trainer.reference_info["cache_hit"] is False
        assert trainer.reference_info["cache_dir"] != first.stats["reference"]["cache_dir"]
    assert reference_loads["loads"] == seen["loads"] + 2
    assert first.stats["reference"]["key"]["tokenization"] == dpo.TOKENIZATION


def _rewrite(folder: Path, change) -> None:
    table = pq.read_table(folder / dpo.CACHE_FILE).to_pydict()
    pq.write_table(pa.table(change(table)), folder / dpo.CACHE_FILE)


def _nan_first(table: dict) -> dict:
    return {**table, "ref_rejected_logps": [math.nan, *table["ref_rejected_logps"][1:]]}


CORRUPTIONS = {
    "no complete.json": lambda f: (f / dpo.COMPLETE_FILE).unlink(),
    "unreadable parquet": lambda f: (f / dpo.CACHE_FILE).write_bytes(b"PAR1 not really"),
    "a NaN": lambda f: _rewrite(f, _nan_first),
    "a row missing": lambda f: _rewrite(f, lambda t: {k: v[:-1] for k, v in t.items()}),
}


def test_partial_or_corrupt_cache_is_rebuilt(pairs, tiny_path, tmp_path, reference_loads):
    rows, cache = pairs.select(range(4)), tmp_path / "cache"
    build = lambda: dpo.build_trainer(tiny_path, rows, _params(), tmp_path / "out", seed=0,  # noqa: E731
                                      ref_cache_root=cache)
    good = build()
    folder, values = Path(good.reference_info["cache_dir"]), good.train_dataset[dpo.REF_COLUMNS[1]]
    key, ids = dpo.CacheKey(**good.reference_info["key"]), good.train_dataset["id"]
    store = dpo.ReferenceCache(cache, tiny_path)
    assert json.loads((folder / dpo.COMPLETE_FILE).read_text())["rows"] == len(ids)
    for name, corrupt in CORRUPTIONS.items():
        corrupt(folder)
        assert store.read(key, ids) is None, name
        rebuilt = build()
        assert rebuilt.reference_info["cache_hit"] is False, name
        assert rebuilt.train_dataset[dpo.REF_COLUMNS[1]] == values, name
        assert store.read(key, ids) is not None, name  # the rebuilt folder is good again
    assert reference_loads["loads"] == 1 + len(CORRUPTIONS)


# --------------------------------------------------------------------------- training


class StopAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **_):
        if state.global_step >= self.step:
            control.should_training_stop = True


def test_training_changes_weights_and_resume_reaches_the_same_weights(pairs, tiny_path, tmp_path):
    params, cache = _params(max_steps=3, save_steps=1, per_device_batch_size=1), tmp_path / "cache"
    straight = dpo.train_dpo(tiny_path, pairs, params, tmp_path / "a", seed=3, ref_cache_root=cache)
    stopped = dpo.train_dpo(tiny_path, pairs, params, tmp_path / "b", seed=3, ref_cache_root=cache,
                            callbacks=[StopAt(1)])
    assert stopped.stats["global_step"] == 1 and (tmp_path / "b" / "checkpoint-1").is_dir()
    resumed = dpo.train_dpo(tiny_path, pairs, params, tmp_path / "b", seed=3, ref_cache_root=cache)
    assert resumed.stats["resumed_from"].endswith("checkpoint-1") and resumed.stats["global_step"] == 3

    losses = [e["loss"] for e in straight.log_history if "loss" in e]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    start = load_file(str(Path(tiny_path) / "model.safetensors"))
    final, again = (load_file(str(r.checkpoint / "model.safetensors")) for r in (straight, resumed))
    assert any(not torch.equal(start[k], final[k]) for k in start)
    for k in final:
        assert torch.allclose(final[k], again[k], atol=1e-6), k
    assert (straight.checkpoint / "tokenizer_config.json").is_file()

    s, tokenizer = straight.stats, load_tokenizer(tiny_path)
    longer = [max(len(tokenize_conversation(tokenizer, r["prompt"] + r[side])[0])
                  for side in ("chosen", "rejected")) > MAX_LENGTH for r in pairs]
    assert s["pairs"] == 16 and s["pairs_truncated"] == sum(longer) > 0
    assert 0 < s["pairs_trained"] == 16 - s["prompt_fills_max_length"]
    assert s["reference"]["mode"] == "cache" and straight.seconds > 0


def test_simpo_trains_without_a_reference(pairs, tiny_path, tmp_path, reference_loads):
    result = dpo.train_dpo(tiny_path, pairs.select(range(8)), _params("simpo"), tmp_path / "s", seed=0,
                           ref_cache_root=tmp_path / "cache")
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    assert losses and all(math.isfinite(x) for x in losses)
    assert result.stats["reference"] == {"mode": "none (reference-free)", "forward_passes": 0}
    assert result.stats["gamma_beta_ratio"] == 1.0 and reference_loads["loads"] == 0


def test_the_worker_trains_from_the_written_params_file(tiny_path, tmp_path, monkeypatch):
    """What every launched process runs: the params file written once, the data from its data section."""
    from tulu_lib.core.params import load_params
    from tulu_lib.train import launch, worker

    monkeypatch.setenv("TULU_REPRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cli"
    p = load_params(ROOT / "params" / "smoke.yaml", ["dpo.optim.max_steps=1", "data.preferences.limit=4",
                                                     f"dpo.optim.max_length={MAX_LENGTH}"])
    written = launch.write_params(launch.stage_params(p, "dpo"), out)
    assert worker.main(["dpo", "--params", str(written), "--model", tiny_path, "--out", str(out)]) == 0
    summary = json.loads((out / "dpo_result.json").read_text())
    stats = summary["stats"]
    assert stats["loss"] == "dpo_norm" and stats["global_step"] == 1 and stats["beta"] == 5.0
    assert (out / "final" / "model.safetensors").is_file() and summary["log_history"]


@pytest.mark.slow
def test_two_processes_match_one(tiny_path, tmp_path, monkeypatch):
    """train.entry with launch.num_processes=2 (accelerate launch, gloo) × batch 1 == 1 process × batch 2;
    the two processes each score their shard of the pairs and write the same reference cache."""
    from tulu_lib.core.params import load_params
    from tulu_lib.train import entry

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tmp_path / "pairs"
    pairs = load_preferences(SourceParams(path="standin:preferences", limit=7), seed=0).dataset
    pairs.save_to_disk(str(data))
    common = ["dpo.optim.max_steps=2", f"dpo.optim.max_length={MAX_LENGTH}", "dpo.optim.save_steps=100"]
    smoke = ROOT / "params" / "smoke.yaml"
    monkeypatch.setenv("TULU_REPRO_CACHE", str(tmp_path / "cache-two"))
    two = entry.train("dpo", load_params(smoke, [*common, "dpo.optim.per_device_batch_size=1",
                                                 "launch.num_processes=2"]),
                      model=tiny_path, data=data, out=tmp_path / "two")
    monkeypatch.setenv("TULU_REPRO_CACHE", str(tmp_path / "cache-one"))
    one = entry.train("dpo", load_params(smoke, [*common, "dpo.optim.per_device_batch_size=2"]),
                      model=tiny_path, data=data, out=tmp_path / "one")

    def losses(r):
        return [e["loss"] for e in r.log_history if "loss" in e]

    assert len(losses(one)) == 2 and losses(two) == pytest.approx(losses(one), rel=1e-3)
    assert two.stats["reference"]["cache_hit"] is one.stats["reference"]["cache_hit"] is False
    caches = [pq.read_table(Path(r.stats["reference"]["cache_dir"]) / dpo.CACHE_FILE).to_pydict()
              for r in (two, one)]
    assert caches[0]["id"] == caches[1]["id"] and len(caches[0]["id"]) == two.stats["pairs_trained"] >= 5
    for column in dpo.REF_COLUMNS:
        assert caches[0][column] == pytest.approx(caches[1][column], abs=1e-4)
