"""SFT (tulu_lib.train.sft): config, masking, loss aggregation, packing, resume, several processes.

Every training test runs the tiny random Llama on a few stand-in conversations.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from tulu_lib.core.chat_template import IGNORE_INDEX, tokenize_conversation
from tulu_lib.core.params import OptimParams, SFTParams, SourceParams
from tulu_lib.data.loader import load_sft
from tulu_lib.train import sft

REPO = Path(__file__).resolve().parents[1]


def params(loss="sum", packing=False, truncation="truncate", **optim) -> SFTParams:
    optim = {"learning_rate": 1e-3, "max_steps": 1, "per_device_batch_size": 4, "max_length": 256,
             "save_steps": 100, "lr_scheduler": "constant", **optim}
    return SFTParams(optim=OptimParams(**optim), loss=loss, packing=packing, truncation=truncation)


@pytest.fixture(scope="module")
def rows16():
    return load_sft(SourceParams(path="standin:sft", limit=16), seed=0).dataset


@pytest.fixture(scope="module")
def four_rows(rows16, tokenizer):
    """The four shortest conversations: different lengths, none over 256 tokens."""
    lengths = [len(tokenize_conversation(tokenizer, m)[0]) for m in rows16["messages"]]
    shortest = sorted(range(len(lengths)), key=lengths.__getitem__)[:4]
    assert len({lengths[i] for i in shortest}) == 4 and max(lengths[i] for i in shortest) <= 256
    return rows16.select(shortest)


class GradCapture(TrainerCallback):
    """The accumulated gradient just before the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _tiny():
    """A fresh copy of the tiny random Llama."""
    from tulu_lib.core.assets import load_model

    return load_model("tiny-llama")[0]


def first_gradient(rows, p, out) -> dict[str, torch.Tensor]:
    capture = GradCapture()
    sft.train_sft("tiny-llama", rows, p, out, seed=0, callbacks=[capture])
    return capture.grads


def assert_grads_close(a, b):
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5 * a[name].abs().max().item(),
                                   msg=lambda m, name=name: f"{name}: {m}")


def grads_close(a, b) -> bool:
    try:
        assert_grads_close(a, b)
    except AssertionError:
        return False
    return True


# ------------------------------------------------------------------ config and data


def test_sft_config_is_explicit(tmp_path):
    p = params(max_steps=7, per_device_batch_size=2, gradient_accumulation_steps=3, max_length=256,
               warmup_ratio=0.03, save_steps=5, logging_steps=2)
    c = sft.sft_config(p, tmp_path, seed=11)
    assert (c.bf16, c.gradient_checkpointing) == (False, False)
    assert getattr(c, "activation_checkpointing", False) is False  # its newer name (transformers >= 5.2x)
    assert c.assistant_only_loss and not c.packing and c.max_length == 256
    assert (c.learning_rate, c.max_steps, c.warmup_steps, c.seed) == (1e-3, 7, 0.03, 11)
    assert (c.save_steps, c.logging_steps, c.report_to, c.save_only_model) == (5, 2, [], False)
    assert (c.dataloader_num_workers, c.dataloader_pin_memory) == (0, False)
    assert c.per_device_train_batch_size * c.gradient_accumulation_steps * c.world_size == 6


def test_tokenize_sft_masks_everything_but_replies(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Goodbye."}]
    rows, stats = sft.tokenize_sft(datasets.Dataset.from_list([{"messages": messages}]), tokenizer, 512,
                                   "truncate")
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    trained = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])
    assert trained == f"Hello!{tokenizer.eos_token}Goodbye.{tokenizer.eos_token}"
    masked = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
    assert masked.count("<|assistant|>\n") == 2 and "Be brief." in masked and "Hi there" in masked
    assert stats == {"examples": 1, "kept": 1, "over_length": 0, "truncated": 0, "dropped": 0}


def test_over_length_conversations_are_truncated_or_dropped_and_counted(rows16, tokenizer):
    lengths = [len(tokenize_conversation(tokenizer, m)[0]) for m in rows16["messages"]]
    limit = sorted(lengths)[len(lengths) // 2]
    over = sum(n > limit for n in lengths)
    cut, s = sft.tokenize_sft(rows16, tokenizer, limit, "truncate")
    assert s["over_length"] == over and s["truncated"] + s["dropped"] == over and s["kept"] == len(cut)
    assert max(len(r) for r in cut["input_ids"]) == limit
    assert all(any(t != IGNORE_INDEX for t in lab) for lab in cut["labels"])  # a reply token in each
    kept, s = sft.tokenize_sft(rows16, tokenizer, limit, "drop")
    assert s["dropped"] == over and s["truncated"] == 0 and len(kept) == 16 - over
    assert max(len(r) for r in kept["input_ids"]) <= limit


def test_trl_builds_the_same_labels_from_the_config(rows16, tiny_path, tokenizer, tmp_path):
    """sft_config's assistant_only_loss + the Tülu template in plain TRL == tokenize_sft."""
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    p = params(max_length=256)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    trainer = SFTTrainer(model=model, args=sft.sft_config(p, tmp_path, seed=0), processing_class=tokenizer,
                         train_dataset=rows16.select_columns(["messages"]))
    ours, _ = sft.tokenize_sft(rows16, tokenizer, 256, "truncate")
    assert trainer.train_dataset["input_ids"] == ours["input_ids"]
    assert trainer.train_dataset["labels"] == ours["labels"]


# ------------------------------------------------------------------ loss aggregation


def test_per_token_weights_sum_vs_mean(four_rows, tokenizer, tmp_path):
    """Two micro-batches with 3 and 5 trained tokens: mean weighs 1/(3·2) and 1/(5·2), sum 1/(2·2)."""
    rows, _ = sft.tokenize_sft(four_rows, tokenizer, 256, "truncate")
    p = params(per_device_batch_size=2, gradient_accumulation_steps=2)
    trainer = sft.TuluSFTTrainer(model=_tiny(), args=sft.sft_config(p, tmp_path, seed=0),
                                 processing_class=tokenizer, train_dataset=rows)
    trainer.current_gradient_accumulation_steps = 2
    vocab = 7
    micro = {"A": torch.tensor([[-100, 1, 2, -100, 3, -100]]),  # 3 trained tokens after the shift
             "B": torch.tensor([[-100, 1, 2, 3, 4, 5]])}        # 5
    for loss, expected in (("sum", {"A": 1 / 4, "B": 1 / 4}), ("mean", {"A": 1 / 6, "B": 1 / 10})):
        trainer.loss_aggregation = loss
        for key, labels in micro.items():
            logits = torch.zeros(1, labels.shape[1], vocab, requires_grad=True)  # uniform: dCE/dlogit known
            model = (lambda lg: lambda **_: SimpleNamespace(logits=lg))(logits)
            trainer.compute_loss(model, {"input_ids": labels.clamp(min=0), "labels": labels}).backward()
            targets = labels[0, 1:]
            trained = targets != IGNORE_INDEX
            # d(w·CE)/d logit[label] = w·(1/V - 1) at uniform logits
            weights = logits.grad[0, :-1][trained, targets[trained]] / (1 / vocab - 1)
            torch.testing.assert_close(weights, torch.full_like(weights, expected[key]))
            assert logits.grad[0, :-1][~trained].abs().sum() == 0 and logits.grad[0, -1].abs().sum() == 0


def test_sum_gradient_does_not_depend_on_the_split(four_rows, tmp_path):
    """4×1 == 2×2 == 1×4 (micro-batch × accumulation), padded or packed."""
    reference = first_gradient(four_rows, params(per_device_batch_size=4), tmp_path / "4x1")
    for name, p in {"2x2": params(per_device_batch_size=2, gradient_accumulation_steps=2),
                    "1x4": params(per_device_batch_size=1, gradient_accumulation_steps=4),
                    "4x1-packed": params(per_device_batch_size=4, packing=True),
                    "2x2-packed": params(per_device_batch_size=2, gradient_accumulation_steps=2,
                                         packing=True)}.items():
        assert_grads_close(reference, first_gradient(four_rows, p, tmp_path / name))


def test_mean_gradient_depends_on_the_split(four_rows, tmp_path):
    whole = first_gradient(four_rows, params(loss="mean", per_device_batch_size=4), tmp_path / "4x1")
    one_at_a_time = params(loss="mean", per_device_batch_size=1, gradient_accumulation_steps=4)
    split = first_gradient(four_rows, one_at_a_time, tmp_path / "1x4")
    assert not grads_close(whole, split)


# ------------------------------------------------------------------ packing


def per_example_nll(model, batch, spans, use_cache=False) -> list[float]:
    """Mean NLL of each (row, start, end) span of a batch."""
    with torch.no_grad():
        logits = model(**batch, use_cache=use_cache).logits
    out = []
    for row, start, end in spans:
        labels = batch["labels"][row, start + 1:end]
        nll = F.cross_entropy(logits[row, start:end - 1], labels, ignore_index=IGNORE_INDEX, reduction="sum")
        out.append((nll / (labels != IGNORE_INDEX).sum()).item())
    return out


def test_packed_rows_give_each_example_its_unpacked_loss(four_rows, tokenizer):
    """sdpa on CPU keeps packed examples apart when position_ids restart — only without a KV cache.

    transformers 5 derives the block-diagonal mask from position_ids only when it gets no
    2-D attention mask *and* no cache; with the default ``use_cache=True`` it builds a
    cache and the examples silently attend to each other.
    """
    model = _tiny().eval()
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():  # larger weights, so that attending across examples shows in the loss
        for p in model.parameters():
            p.mul_(25)
    rows, _ = sft.tokenize_sft(four_rows, tokenizer, 256, "truncate")
    examples = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    batch = sft.PackingCollator(tokenizer.pad_token_id)(examples)
    assert batch["input_ids"].shape[0] < len(examples)
    assert batch["input_ids"].shape[1] == max(len(e["input_ids"]) for e in examples)
    assert batch["attention_mask"].sum() == sum(len(e["input_ids"]) for e in examples)

    spans, order = [], []  # where the collator put each example
    lengths = [len(e["input_ids"]) for e in examples]
    for r, row in enumerate(sft.pack_rows(lengths, max(lengths))):
        start = 0
        for i in row:
            end = start + lengths[i]
            assert batch["input_ids"][r, start:end].tolist() == examples[i]["input_ids"]
            spans.append((r, start, end))
            order.append(i)
            start = end
    assert sorted(order) == [0, 1, 2, 3]

    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "labels")}
    packed = per_example_nll(model, inputs, spans)
    alone = [per_example_nll(model, {"input_ids": torch.tensor([examples[i]["input_ids"]]),
                                     "labels": torch.tensor([examples[i]["labels"]])},
                             [(0, 0, len(examples[i]["input_ids"]))])[0] for i in order]
    torch.testing.assert_close(torch.tensor(packed), torch.tensor(alone), rtol=1e-5, atol=1e-5)

    # the same rows with one running position per row let examples attend to each other
    running = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
    crossed = per_example_nll(model, {"input_ids": batch["input_ids"], "position_ids": running,
                                      "labels": batch["labels"]}, spans)
    assert max(abs(a - b) for a, b in zip(crossed, alone, strict=True)) > 1e-3
    cached = per_example_nll(model, inputs, spans, use_cache=True)
    assert max(abs(a - b) for a, b in zip(cached, alone, strict=True)) > 1e-3


# ------------------------------------------------------------------ training, checkpoints, resume


def test_training_lowers_the_loss_and_saves_the_model(rows16, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    p = params(max_steps=6, per_device_batch_size=4, learning_rate=1e-2, save_steps=3, max_length=128)
    result = sft.train_sft("tiny-llama", rows16, p, tmp_path, seed=0)
    rows, _ = sft.tokenize_sft(rows16, tokenizer, 128, "truncate")
    batch = sft.PackingCollator(tokenizer.pad_token_id)([{"input_ids": r["input_ids"], "labels": r["labels"]}
                                                         for r in rows])
    batch.pop("attention_mask")

    def nll(model):
        with torch.no_grad():
            return model(**batch, use_cache=False).loss.item()

    before, after = _tiny(), AutoModelForCausalLM.from_pretrained(result.checkpoint)
    assert nll(after) < nll(before) - 0.1
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert (result.checkpoint / "chat_template.jinja").exists()
    s = result.stats
    assert (s["steps"], s["effective_batch"], s["examples"], s["loss"]) == (6, 4, 16, "sum")
    assert s["trained_tokens"] > 0 and s["tokens_per_second"] > 0
    assert [e["step"] for e in result.log_history if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert all("nll_per_token" in e for e in result.log_history if "loss" in e)


def test_the_config_is_built_before_the_model_is_loaded(rows16, tmp_path, monkeypatch):
    """With a ZeRO-3 config, transformers partitions from_pretrained only once the config exists."""
    from transformers import AutoModelForCausalLM

    order, load, config = [], AutoModelForCausalLM.from_pretrained, sft.sft_config
    monkeypatch.setattr(sft, "sft_config", lambda *a, **k: order.append("config") or config(*a, **k))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: order.append("model") or load(*a, **k))
    sft.train_sft("tiny-llama", rows16.select(range(4)), params(max_steps=1, max_length=64), tmp_path, seed=0)
    assert order == ["config", "model"]


class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated kill after step 3")


def test_interrupted_run_resumes_to_the_same_weights(rows16, tmp_path):
    from safetensors.torch import load_file

    rows = rows16.select(range(8))
    p = params(max_steps=4, per_device_batch_size=2, save_steps=2, lr_scheduler="linear", warmup_ratio=0.25,
               max_length=128)
    straight = sft.train_sft("tiny-llama", rows, p, tmp_path / "straight", seed=0)
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft("tiny-llama", rows, p, tmp_path / "killed", seed=0, callbacks=[Crash()])
    assert not (tmp_path / "killed" / "final").exists()
    resumed = sft.train_sft("tiny-llama", rows, p, tmp_path / "killed", seed=0)
    assert resumed.stats["resumed_from"].endswith("checkpoint-2") and resumed.stats["steps"] == 4
    a = load_file(straight.checkpoint / "model.safetensors")
    b = load_file(resumed.checkpoint / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7)
    losses = {e["step"]: e["loss"] for e in straight.log_history if "loss" in e}
    assert {e["step"]: e["loss"] for e in resumed.log_history if "loss" in e} == pytest.approx(losses)


# ------------------------------------------------------------------ several processes


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, monkeypatch):
    """train.entry with launch.num_processes=2 (accelerate launch, gloo) × batch 2 == 1 process × batch 4."""
    from tulu_lib.core.params import load_params
    from tulu_lib.train import entry

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tmp_path / "rows"
    load_sft(SourceParams(path="standin:sft", limit=24), seed=0).dataset.save_to_disk(str(data))
    common = ["sft.optim.max_steps=3", "sft.optim.max_length=128", "sft.optim.save_steps=100"]
    smoke = REPO / "params/smoke.yaml"
    two = entry.train("sft", load_params(smoke, [*common, "sft.optim.per_device_batch_size=2",
                                                 "launch.num_processes=2"]),
                      model="tiny-llama", data=data, out=tmp_path / "two")
    one = entry.train("sft", load_params(smoke, [*common, "sft.optim.per_device_batch_size=4"]),
                      model="tiny-llama", data=data, out=tmp_path / "one")
    assert json.loads((tmp_path / "two" / "sft_result.json").read_text())["stats"] == two.stats
    assert two.stats["effective_batch"] == one.stats["effective_batch"] == 4
    assert two.stats["trained_tokens"] == one.stats["trained_tokens"]

    def losses(r):
        return [e["loss"] for e in r.log_history if "loss" in e]

    assert len(losses(one)) == 3 and losses(two) == pytest.approx(losses(one), rel=1e-4)


def test_subsample_fractions_are_validated():
    from tulu_lib.core.params import ParamsError, load_params

    with pytest.raises(ParamsError, match="between 0 and 1"):
        load_params(REPO / "params" / "smoke.yaml", ["sft.ablate_subsample=[1.5]"])
