"""The Tülu 3 chat template, with the markers that make the loss cover only the replies.

The paper (and open-instruct's ``tulu`` template) formats a conversation as::

    <|system|>\\n{system}\\n<|user|>\\n{user}\\n<|assistant|>\\n{reply}{eos}\\n<|user|>...

and trains only on each assistant reply and its end-of-sequence token — not on the
system or user turns and not on the ``<|assistant|>\\n`` role marker. The template below
wraps exactly ``{reply}{eos}`` in ``{% generation %}`` so that transformers'
``return_assistant_tokens_mask`` (and TRL's ``assistant_only_loss``) mask the rest. It is
applied the same way to every model, whatever template the model shipped with.

Usage::

    tokenizer = apply_tulu_template(tokenizer)
    ids, labels = tokenize_conversation(tokenizer, messages, max_length=4096)
"""

from __future__ import annotations

from collections.abc import Sequence

IGNORE_INDEX = -100

TULU_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{{ '<|system|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% if not loop.last %}{{ '\\n' }}{% endif %}"
    "{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    "{% endfor %}"
)


def apply_tulu_template(tokenizer):
    """Install the Tülu template (and a pad token if the tokenizer has none)."""
    tokenizer.chat_template = TULU_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def render(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """The conversation as text, exactly as the model sees it."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def num_tokens(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> int:
    """Length of the conversation in tokens under the chat template (optionally with the
    assistant header a reply would follow)."""
    return len(tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True,
                                             add_generation_prompt=add_generation_prompt)["input_ids"])


def tokenize_conversation(tokenizer, messages: Sequence[dict], max_length: int | None = None,
                          ) -> tuple[list[int], list[int]]:
    """Token ids and labels (``-100`` outside assistant replies), truncated to max_length."""
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"])
    labels = [tok if keep else IGNORE_INDEX for tok, keep in zip(ids, mask, strict=True)]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels
