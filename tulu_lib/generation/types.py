"""The types every generation backend shares: chat messages, sampling settings, completions, and
the :class:`Generator` interface that evaluation, RLVR scoring and preference synthesis ask for.

Usage::

    from tulu_lib.generation.types import Completion, SamplingParams
    SamplingParams(max_new_tokens=64, temperature=0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Messages = list[dict]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()  # ends a reply besides EOS (a model's own end-of-turn)


@dataclass(frozen=True)
class Completion:
    text: str
    finished: bool  # ended with EOS or a stop string (not cut at max_new_tokens)
    num_tokens: int


class Generator(Protocol):
    """Chat generation. Backends may also offer ``complete(texts, sampling)`` (raw text, no
    chat template: ``hf``, ``vllm``) and ``loglikelihood([(context, continuation)])``
    (``hf``); evaluation reports a benchmark that needs a missing one as not run."""

    def generate(self, prompts: Sequence[Messages], sampling: SamplingParams,
                 ) -> list[list[Completion]]: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
