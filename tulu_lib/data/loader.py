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
dropped — never silently, never a crash — each named by where it was (``file:line`` of a
``.jsonl``, ``path row N`` otherwise). So are a local ``.jsonl``'s bad lines (blank, not UTF-8, not
JSON, not an object); a file in another encoding (UTF-16), with no usable line, or that its format's
reader refuses is a one-line ValueError naming it. A row whose ``id`` an earlier row has is counted
and, under ``duplicate_ids: keep_first`` (the default), dropped with both places named;
``keep_all`` keeps it (still counted). Every result carries a content fingerprint for the run manifest.
``tulu-repro decontaminate`` reads its ``--train`` file through :func:`read` too, so it sees the
rows a run would.

Usage::

    loaded = load_sft(params.data.sft, seed=params.seed)
    loaded.dataset, loaded.report.dropped, loaded.report.locations, loaded.fingerprint
    rows, report = read("auto", SourceParams(path="train.jsonl"))   # the kind told from the rows
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
import pyarrow as pa
from datasets.exceptions import DatasetsError

from tulu_lib.core.hashing import rows_fingerprint
from tulu_lib.core.params import SourceParams, looks_local
from tulu_lib.data import standins
from tulu_lib.evals.sources import read_rows

ROLES = ("system", "user", "assistant")
RLVR_DOMAINS = {"gsm8k": "gsm8k", "math": "MATH", "ifeval": "ifeval"}
STANDIN_PREFIX = "standin:"
KINDS = ("sft", "preferences", "rlvr")
MAX_LOCATIONS = 1000  # dropped rows named per reason (the count is always whole)
DUPLICATE_REASON = "duplicate id (an earlier row has it)"


class BadRow(ValueError):
    """Why one row is malformed (the reason is what gets counted)."""


@dataclass
class DataReport:
    """Rows read, kept, and dropped by reason, with a few examples of each and where the dropped
    rows were (``locations``: the first :data:`MAX_LOCATIONS` per reason). ``duplicate_ids``: rows
    whose id an earlier row has (dropped, or kept under ``duplicate_ids: keep_all``)."""

    kind: str
    path: str
    rows_in: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    locations: dict[str, list[str]] = field(default_factory=dict)
    duplicate_ids: int = 0
    duplicates_kept: bool = False

    def drop(self, reason: str, row: dict | str, where: str = "") -> None:
        """Count one dropped row (a dict, or the text to show) found at ``where``."""
        self.dropped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            text = row if isinstance(row, str) else json.dumps(row, default=str)[:300]
            shown.append(f"{where}: {text}" if where else text)
        if where:
            at = self.locations.setdefault(reason, [])
            if len(at) < MAX_LOCATIONS:
                at.append(where)

    def summary(self) -> str:
        lines = [f"{self.kind} from {self.path}: kept {self.rows_kept:,} of {self.rows_in:,} rows"]
        for reason, n in self.dropped.most_common():
            lines.append(f"  dropped {n:,}: {reason}  e.g. {self.examples[reason][0]}")
        if self.duplicates_kept and self.duplicate_ids:
            lines.append(f"  kept {self.duplicate_ids:,} rows whose id an earlier row has "
                         "(duplicate_ids: keep_all)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "rows_in": self.rows_in,
                "rows_kept": self.rows_kept, "dropped": dict(self.dropped),
                "examples": self.examples, "locations": self.locations,
                "duplicate_ids": self.duplicate_ids, "duplicates_kept": self.duplicates_kept}


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


def clean_rows(kind: str, rows: Iterable[dict], path: str,
               locations: Sequence[str] = ()) -> tuple[list[dict], DataReport]:
    """Rows in ``kind``'s schema and the report of those dropped; row ``i`` was found at
    ``locations[i]`` (default ``"<path> row <i + 1>"``).

    Usage: ``kept, report = clean_rows("sft", rows, "sft.jsonl")``
    """
    kept, report, _ = _clean(kind, rows, path, locations)
    return kept, report


def _where(path: str, locations: Sequence[str], i: int) -> str:
    return locations[i] if i < len(locations) else f"{path} row {i + 1}"


def _clean(kind: str, rows: Iterable[dict], path: str,
           locations: Sequence[str]) -> tuple[list[dict], DataReport, list[int]]:
    """:func:`clean_rows` plus each kept row's position among the rows read."""
    report = DataReport(kind=kind, path=path)
    kept, kept_at = [], []
    for i, row in enumerate(rows):
        report.rows_in += 1
        try:
            kept.append(CLEANERS[kind](row, i))
            kept_at.append(i)
        except BadRow as exc:
            report.drop(str(exc), row, _where(path, locations, i))
    report.rows_kept = len(kept)
    return kept, report, kept_at


def raw_rows(kind: str, spec: SourceParams, bad_lines: list | None = None,
             locations: list[str] | None = None) -> Iterable[dict]:
    """The source's rows; a local ``.jsonl``'s bad lines go to ``bad_lines`` and each row's
    ``file:line`` to ``locations`` (see jsonl_rows). A local file that is missing or that its
    format's reader refuses is a one-line ValueError naming it."""
    if spec.path.startswith(STANDIN_PREFIX):
        name = spec.path.removeprefix(STANDIN_PREFIX)
        if name not in KINDS or kind not in (name, "auto"):
            raise ValueError(f"{spec.path}: a {kind} loader needs 'standin:"
                             f"{kind if kind in KINDS else '|'.join(KINDS)}'")
        return standins.build(name)
    local = Path(spec.path).expanduser()
    if local.suffix == ".jsonl" and local.is_file():
        lines: list[int] = []
        rows = jsonl_rows(local, [] if bad_lines is None else bad_lines, lines)
        if locations is not None:
            locations.extend(f"{local}:{n}" for n in lines)
        return rows
    if looks_local(spec.path) and not local.exists():
        raise ValueError(f"{spec.path}: no such file")
    try:
        return read_rows(spec.path, spec.split)
    except (DatasetsError, pa.ArrowException, StopIteration, OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"{spec.path}: unsupported"):
            raise
        if not local.exists():  # a hub id: offline and not cached, unknown, or no such split
            what = " ".join(str(exc).split())[:300]
            raise ValueError(f"{spec.path}: cannot load it from the hub or its cache "
                             f"({type(exc).__name__}: {what})") from None
        raise _unreadable(spec.path, exc) from None  # datasets' and pyarrow's readers: one line


def _unreadable(path: str, exc: BaseException) -> ValueError:
    cause = exc.__cause__ or exc
    what = " ".join(str(cause).split())[:200] or "the file is empty"
    kind = f"{Path(path).suffix[1:]} file" if Path(path).suffix else "saved dataset"
    return ValueError(f"{path}: not a readable {kind} ({type(cause).__name__}: {what})")


def detect_kind(rows: Sequence[Mapping], path: str, sample: int = 1000) -> str:
    """``sft``, ``preferences`` or ``rlvr``: what most of the first ``sample`` rows look like
    (``chosen``/``rejected``: preferences; ``ground_truth``: rlvr; ``messages``: sft); a
    ValueError when none looks like any.

    Usage: ``kind = detect_kind(rows, "train.jsonl")``
    """
    votes: Counter = Counter()
    for row in (rows[i] for i in range(min(sample, len(rows)))):
        if not isinstance(row, Mapping):
            continue
        has = {k for k, v in row.items() if v is not None}
        votes["preferences" if has & {"chosen", "rejected"} else "rlvr" if "ground_truth" in has
              else "sft" if "messages" in has else None] += 1
    votes.pop(None, None)
    if not votes:
        raise ValueError(f"{path}: no row has messages, chosen/rejected or ground_truth; "
                         "cannot tell sft, preferences or rlvr rows (name the kind)")
    return votes.most_common(1)[0][0]


_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32 byte-order marks


def jsonl_rows(path: Path, bad_lines: list[tuple[str, str, str]],
               lines: list[int] | None = None) -> list[dict]:
    """The JSON objects of a JSON-lines file, one a line (their line numbers appended to
    ``lines``). A line that is blank, not UTF-8, not JSON (or nested too deeply to parse) or not
    an object is appended to ``bad_lines`` as ``(reason, "file:line", text)`` and skipped; a file
    in another encoding (UTF-16/32, NUL bytes), empty, or with no usable line is a ValueError
    naming it.

    Usage: ``rows = jsonl_rows(Path("sft.jsonl"), bad := [])``
    """
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"{path}: the file is empty")
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
        except RecursionError:
            bad_lines.append(("line is JSON nested too deeply", where, text[:200]))
            continue
        if not isinstance(row, dict):
            bad_lines.append((f"line is a JSON {type(row).__name__}, not an object", where, text[:200]))
            continue
        rows.append(row)
        if lines is not None:
            lines.append(number)
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


def read(kind: str, spec: SourceParams) -> tuple[list[dict], DataReport]:
    """One source's rows cleaned into ``kind``'s schema (``"auto"``: :func:`detect_kind`), bad
    lines and rows dropped and named, duplicate ids handled as ``spec.duplicate_ids`` says; no
    mix or limit. What :func:`load` and ``tulu-repro decontaminate`` read.

    Usage: ``rows, report = read("sft", SourceParams(path="sft.jsonl"))``
    """
    bad_lines: list[tuple[str, str, str]] = []
    locations: list[str] = []
    raw = raw_rows(kind, spec, bad_lines, locations)
    if kind == "auto":
        kind = spec.path.removeprefix(STANDIN_PREFIX) if spec.path.startswith(STANDIN_PREFIX) \
            else detect_kind(raw, spec.path)
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}; one of {', '.join(KINDS)} or auto")
    rows, report, kept_at = _clean(kind, raw, spec.path, locations)
    for reason, where, text in bad_lines:  # counted and shown with their file:line, as rows are
        report.rows_in += 1
        report.drop(reason, text, where)
    return _deduplicate(rows, report, kept_at, locations, spec.duplicate_ids), report


def _deduplicate(rows: list[dict], report: DataReport, kept_at: list[int], locations: Sequence[str],
                 policy: str) -> list[dict]:
    """``rows`` (read at positions ``kept_at``) less those whose id an earlier row has: counted, and
    dropped under ``keep_first`` with both places named."""
    first: dict[str, int] = {}
    out = []
    report.duplicates_kept = policy == "keep_all"
    for row, i in zip(rows, kept_at, strict=True):
        j = first.setdefault(row["id"], i)
        if j != i:
            report.duplicate_ids += 1
            if policy != "keep_all":
                earlier = _where(report.path, locations, j)
                report.drop(DUPLICATE_REASON, f"id {row['id']!r} (first at {earlier})",
                            _where(report.path, locations, i))
                continue
        out.append(row)
    report.rows_kept = len(out)
    return out


def load(kind: str, spec: SourceParams, seed: int = 0) -> Loaded:
    """Read and clean (:func:`read`), mix, limit and fingerprint one training dataset."""
    rows, report = read(kind, spec)
    kind = report.kind
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
