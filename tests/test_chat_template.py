"""The Tülu template trains exactly on assistant replies + EOS (paper §4, open-instruct)."""

from tulu_lib.core import chat_template
from tulu_lib.core.chat_template import IGNORE_INDEX, render, tokenize_conversation

CONVERSATIONS = {
    "no system": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "It is 6."},
    ],
    "with system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ],
}


def test_rendering_matches_the_paper_format(tokenizer):
    eos = tokenizer.eos_token
    text = render(tokenizer, CONVERSATIONS["with system"])
    assert text == (f"<|system|>\nYou are terse.\n<|user|>\nName a colour.\n"
                    f"<|assistant|>\nBlue.{eos}")
    text = render(tokenizer, CONVERSATIONS["no system"][:1], add_generation_prompt=True)
    assert text == "<|user|>\nWhat is 2+2?\n<|assistant|>\n"


def _by_hand(tokenizer, messages):
    """Labels built segment by segment: role markers and user/system text masked."""
    eos = tokenizer.eos_token
    ids, labels = [], []
    for i, m in enumerate(messages):
        last = i == len(messages) - 1
        if m["role"] == "assistant":
            prefix = tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
            reply = tokenizer(m["content"] + eos, add_special_tokens=False)["input_ids"]
            tail = [] if last else tokenizer("\n", add_special_tokens=False)["input_ids"]
            ids += prefix + reply + tail
            labels += [IGNORE_INDEX] * len(prefix) + reply + [IGNORE_INDEX] * len(tail)
        else:
            text = f"<|{m['role']}|>\n{m['content']}\n"
            seg = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += seg
            labels += [IGNORE_INDEX] * len(seg)
    return ids, labels


def test_labels_equal_hand_computed_labels(tokenizer):
    for messages in CONVERSATIONS.values():
        ids, labels = tokenize_conversation(tokenizer, messages)
        assert (ids, labels) == _by_hand(tokenizer, messages)


def test_trained_tokens_are_exactly_the_replies_and_eos(tokenizer):
    eos = tokenizer.eos_token
    ids, labels = tokenize_conversation(tokenizer, CONVERSATIONS["no system"])
    trained = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])
    assert trained == f"It is 4.{eos}It is 6.{eos}"
    masked = tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX])
    assert "<|assistant|>" in masked and "What is 2+2?" in masked and "It is" not in masked


def test_truncation(tokenizer):
    ids, labels = tokenize_conversation(tokenizer, CONVERSATIONS["no system"], max_length=5)
    assert len(ids) == len(labels) == 5


def test_num_tokens_counts_the_templated_conversation(tokenizer):
    messages = [{"role": "user", "content": "What is 2 + 2? " * 20}, {"role": "assistant", "content": "4"}]
    assert chat_template.num_tokens(tokenizer, messages) == len(chat_template.tokenize_conversation(
        tokenizer, messages)[0]) > 40  # tokens, not the keys of a BatchEncoding
