"""Training data: one loader per kind, the paper's schemas, bad rows counted and dropped.

Each loader takes a :class:`~tulu_lib.core.params.SourceParams` whose ``path`` is an offline
stand-in (``standin:sft``), a hub id (``allenai/tulu-3-sft-mixture``), a local data file
(.jsonl/.json/.parquet/.csv) or a saved dataset folder, and returns rows in the schema of
the paper's released dataset:

* SFT — ``id, messages, source`` (``allenai/tulu-3-sft-mixture``);
* preferences — ``id, prompt, chosen, rejected, source`` with message lists, in TRL's
  conversational form: ``prompt`` = the turns before the final reply, ``chosen`` and
  ``rejected`` = that reply (``allenai/llama-3.1-tulu-3-8b-preference-mixture``);
* RLVR — ``id, messages, ground_truth, dataset, source`` with dataset in gsm8k/MATH/ifeval
  (``allenai/RLVR-GSM-MATH-IF-Mixed-Constraints``).

Malformed rows (missing fields, unknown roles, empty content, no assistant turn,
identical chosen/rejected, prompts that differ) are counted by reason, a few shown, and
dropped — never silently, never a crash. So are a local ``.jsonl``'s bad lines (blank, not
UTF-8, not JSON, not an object), shown with their ``file:line``; a file in another encoding
(UTF-16) or with no usable line is an error naming it. Every result carries a content fingerprint for
the run manifest.

Usage::

    loaded = load_sft(params.data.sft, seed=params.seed)
    loaded.dataset, loaded.report.dropped, loaded.fingerprint
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from tulu_lib.core.hashing import rows_fingerprint
from tulu_lib.core.params import SourceParams
from tulu_lib.data import standins
from tulu_lib.evals.sources import read_rows

ROLES = ("system", "user", "assistant")
RLVR_DOMAINS = {"gsm8k": "gsm8k", "math": "MATH", "ifeval": "ifeval"}
STANDIN_PREFIX = "standin:"


class BadRow(ValueError):
    """Why one row is malformed (the reason is what gets counted)."""


@dataclass
class DataReport:
    """Rows read, kept, and dropped by reason, with a few examples of each."""

    kind: str
    path: str
    rows_in: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, row: dict) -> None:
        self.dropped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            shown.append(json.dumps(row, default=str)[:300])

    def summary(self) -> str:
        lines = [f"{self.kind} from {self.path}: kept {self.rows_kept:,} of {self.rows_in:,} rows"]
        for reason, n in self.dropped.most_common():
            lines.append(f"  dropped {n:,}: {reason}  e.g. {self.examples[reason][0]}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "rows_in": self.rows_in,
                "rows_kept": self.rows_kept, "dropped": dict(self.dropped),
                "examples": self.examples}


@dataclass
class Loaded:
    dataset: datasets.Dataset
    report: DataReport
    fingerprint: str


# ------------------------------------------------------------------ row checks


def _messages(value, what: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadRow(f"{what}: not a non-empty list of messages")
    out = []
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRow(f"{what}: a message with a missing or unknown role")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise BadRow(f"{what}: a message with empty content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _clean_sft(row: dict, index: int) -> dict:
    messages = _messages(row.get("messages"), "messages")
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        raise BadRow("messages: no user turn")
    if "assistant" not in roles:
        raise BadRow("messages: no assistant turn")
    return {"id": str(row.get("id") or f"row-{index}"), "messages": messages,
            "source": str(row.get("source") or "unknown")}


def _clean_preference(row: dict, index: int) -> dict:
    chosen = _messages(row.get("chosen"), "chosen")
    rejected = _messages(row.get("rejected"), "rejected")
    prompt = row.get("prompt")
    if isinstance(prompt, list):  # TRL conversational form: prompt + one reply each
        prompt = _messages(prompt, "prompt")
        chosen_prompt, rejected_prompt = prompt, prompt
    else:  # full conversations (the hub mixtures): the prompt is everything but the reply
        chosen_prompt, rejected_prompt = chosen[:-1], rejected[:-1]
        chosen, rejected = chosen[-1:], rejected[-1:]
        if isinstance(prompt, str) and prompt.strip() and chosen_prompt and \
                chosen_prompt[-1]["content"].strip() != prompt.strip():
            raise BadRow("prompt: does not match the conversation's last user turn")
    if chosen_prompt != rejected_prompt:
        raise BadRow("chosen and rejected answer different prompts")
    if not chosen_prompt or chosen_prompt[-1]["role"] != "user":
        raise BadRow("prompt: does not end with a user turn")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise BadRow("chosen/rejected: the reply is not an assistant turn")
    if chosen[-1]["content"].strip() == rejected[-1]["content"].strip():
        raise BadRow("chosen and rejected are identical")
    return {"id": str(row.get("id") or f"row-{index}"), "prompt": chosen_prompt,
            "chosen": chosen, "rejected": rejected, "source": str(row.get("source") or "unknown")}


def _clean_rlvr(row: dict, index: int) -> dict:
    messages = _messages(row.get("messages"), "messages")
    if messages[-1]["role"] == "assistant":  # the hub set has no replies; tolerate one
        messages = messages[:-1]
    if not messages or messages[-1]["role"] != "user":
        raise BadRow("messages: no user turn to answer")
    domain = RLVR_DOMAINS.get(str(row.get("dataset", "")).lower())
    if domain is None:
        raise BadRow(f"dataset: must be one of {sorted(set(RLVR_DOMAINS.values()))}")
    truth = row.get("ground_truth")
    if isinstance(truth, list) and len(truth) == 1:
        truth = truth[0]
    if not isinstance(truth, str) or not truth.strip():
        raise BadRow("ground_truth: missing or empty")
    if domain == "ifeval":
        try:
            if "func_name" not in json.loads(truth):
                raise BadRow("ground_truth: ifeval constraint without func_name")
        except (json.JSONDecodeError, TypeError):
            raise BadRow("ground_truth: ifeval constraint is not JSON") from None
    return {"id": str(row.get("id") or f"row-{index}"), "messages": messages,
            "ground_truth": truth, "dataset": domain,
            "source": str(row.get("source") or domain)}


CLEANERS: dict[str, Callable[[dict, int], dict]] = {
    "sft": _clean_sft, "preferences": _clean_preference, "rlvr": _clean_rlvr}


# ------------------------------------------------------------------ loading


def clean_rows(kind: str, rows: Iterable[dict], path: str) -> tuple[list[dict], DataReport]:
    report = DataReport(kind=kind, path=path)
    kept = []
    for i, row in enumerate(rows):
        report.rows_in += 1
        try:
            kept.append(CLEANERS[kind](row, i))
        except BadRow as exc:
            report.drop(str(exc), row)
    report.rows_kept = len(kept)
    return kept, report


def raw_rows(kind: str, spec: SourceParams, bad_lines: list | None = None) -> Iterable[dict]:
    """The source's rows; a local ``.jsonl``'s bad lines go to ``bad_lines`` (see jsonl_rows)."""
    if spec.path.startswith(STANDIN_PREFIX):
        name = spec.path.removeprefix(STANDIN_PREFIX)
        if name != kind:
            raise ValueError(f"{spec.path}: a {kind} loader needs 'standin:{kind}'")
        return standins.build(name)
    local = Path(spec.path).expanduser()
    if local.suffix == ".jsonl" and local.is_file():
        return jsonl_rows(local, [] if bad_lines is None else bad_lines)
    return read_rows(spec.path, spec.split)


_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32 byte-order marks


def jsonl_rows(path: Path, bad_lines: list[tuple[str, str, str]]) -> list[dict]:
    """The JSON objects of a JSON-lines file, one a line. A line that is blank, not UTF-8, not
    JSON or not an object is appended to ``bad_lines`` as ``(reason, "file:line", text)`` and
    skipped; a file in another encoding (UTF-16/32, NUL bytes) or with no usable line is a
    ValueError naming it.

    Usage: ``rows = jsonl_rows(Path("sft.jsonl"), bad := [])``
    """
    data = path.read_bytes()
    if data.startswith(_WIDE_BOMS) or b"\x00" in data[:4096]:
        raise ValueError(f"{path}: not UTF-8 (a UTF-16/UTF-32 byte-order mark or NUL bytes); "
                         "save it as UTF-8 JSON lines")
    rows = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        where = f"{path}:{number}"
        if not raw.strip():
            if number < data.count(b"\n") + 1:  # not the empty tail after the last newline
                bad_lines.append(("blank line", where, ""))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_lines.append((f"line is not UTF-8 (byte {raw[exc.start]:#04x})", where,
                              raw[:200].decode("utf-8", "replace")))
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            bad_lines.append((f"line is not JSON ({exc.msg})", where, text[:200]))
            continue
        if not isinstance(row, dict):
            bad_lines.append((f"line is a JSON {type(row).__name__}, not an object", where, text[:200]))
            continue
        rows.append(row)
    if not rows:
        first = f"; first: {bad_lines[-1][1]}: {bad_lines[-1][0]}" if bad_lines else ""
        raise ValueError(f"{path}: no usable JSON line ({len(data.splitlines())} lines{first})")
    return rows


def mix(rows: list[dict], amounts: dict[str, int | float], seed: int) -> list[dict]:
    """Sample per ``source``: an int is a row count, a float a fraction (see SourceParams)."""
    if not amounts:
        return rows
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    rng = random.Random(seed)
    out = []
    for source, amount in amounts.items():
        pool = by_source.get(source)
        if not pool:
            raise ValueError(f"mix: no rows with source {source!r}; "
                             f"sources here: {', '.join(sorted(by_source)) or 'none'}")
        n = amount if isinstance(amount, int) else round(amount * len(pool))
        if n > len(pool):
            raise ValueError(f"mix: {source!r} asks for {n} rows but has {len(pool)}")
        out.extend(rng.sample(pool, n))
    rng.shuffle(out)
    return out


def length_histogram(lengths: pd.DataFrame, bins: int = 40) -> pd.DataFrame:
    """Rows per source and length bin (``source``, ``tokens_from``, ``tokens_to``, ``examples``) of a
    table with one row per example (``source``, ``tokens``): about ``bins`` equal bins up to the 99th
    percentile, longer examples counted in the last. Figure 2's table."""
    upper = max(int(lengths["tokens"].quantile(0.99)), 1)
    width = max(upper // bins, 8)
    edges = list(range(0, upper + width, width))
    binned = (lengths["tokens"].clip(upper=edges[-1] - 1) // width) * width
    table = (pd.DataFrame({"source": lengths["source"], "tokens_from": binned})
             .value_counts().rename("examples").reset_index().sort_values(["source", "tokens_from"]))
    table.insert(2, "tokens_to", table["tokens_from"] + width)
    return table.reset_index(drop=True)


def prompt_key(messages: Sequence[Mapping]) -> str:
    """A prompt's duplicate key: its user turns, lower-cased with whitespace collapsed (system
    turns ignored). Two rows with the same key ask the same thing."""
    return " ".join(" ".join(m["content"] for m in messages if m["role"] == "user").split()).lower()


def load(kind: str, spec: SourceParams, seed: int = 0) -> Loaded:
    """Read, clean, mix, limit and fingerprint one training dataset."""
    bad_lines: list[tuple[str, str, str]] = []
    rows, report = clean_rows(kind, raw_rows(kind, spec, bad_lines), spec.path)
    for reason, where, text in bad_lines:  # counted and shown with their file:line, as rows are
        report.rows_in += 1
        report.drop(reason, {"line": where, "text": text})
    rows = mix(rows, spec.mix, seed)
    if spec.limit is not None and spec.limit < len(rows):
        rows = rows if spec.mix else random.Random(seed).sample(rows, len(rows))
        rows = rows[: spec.limit]
    if not rows:
        raise ValueError(f"{kind} data from {spec.path}: no usable rows\n{report.summary()}")
    return Loaded(datasets.Dataset.from_list(rows), report, rows_fingerprint(rows))


def load_sft(spec: SourceParams, seed: int = 0) -> Loaded:
    return load("sft", spec, seed)


def load_preferences(spec: SourceParams, seed: int = 0) -> Loaded:
    return load("preferences", spec, seed)


def load_rlvr(spec: SourceParams, seed: int = 0) -> Loaded:
    return load("rlvr", spec, seed)
