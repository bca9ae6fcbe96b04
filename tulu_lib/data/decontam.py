"""N-gram decontamination of post-training data against evaluation benchmarks (Tülu 3, §C).

Two overlap rules (``decontaminate(rule=...)``), both on normalised text (see :func:`normalize`)
cut into 8-grams:

* ``rule="release"`` (default) — open-instruct's ``decontamination/search.py:ngram_match`` (with
  ``index.py:read_dataset``): every user turn of a training row is its own document; an eval
  item's score against a document is, per field of the item, the fraction of the field's TOKENS
  covered by its 8-grams found in that document, averaged over the item's fields (DROP: passage
  and question); the item overlaps the row when its score against some turn is STRICTLY greater
  than ``overlap_threshold`` (0.5). Items are ``(item_id, text)`` or ``(item_id, (field, ...))``.
* ``rule="ngram_fraction"`` — this repo's earlier rule: an item overlaps a row when at least
  ``overlap_threshold`` of the item's distinct 8-grams occur in the row's user turns joined
  together (fields joined too); short items match exactly.

A training source is *flagged* for a benchmark when more than ``flag_threshold`` (2%) of the
benchmark's items overlap some row of that source. Exact matches (normalised user text ==
normalised eval prompt) are reported too. ``remove=False`` reports everything and removes nothing.

Where the release rule here differs from the release (not removable without its stack):

* Tokens: the release counts spaCy ``en_core_web_lg`` tokens (punctuation is a token) and finds an
  8-gram in a document with an Elasticsearch ``match_phrase`` (standard analyzer: the index's
  ``tulu_analyzer`` is defined but not assigned to the ``text`` field), capped at the top
  ``search_size`` (100) documents per 8-gram. spaCy is not installed here; both sides use this
  module's tokenizer (lower-cased letter/number runs, close to the standard analyzer) and every
  document is searched.
* Kept from the release: a repeated 8-gram of a field covers only the tokens of its LAST
  occurrence (the release maps n-gram text -> token positions in a dict); a field of fewer than 8
  tokens contributes 0, so such items never match.

Usage::

    from tulu_lib.data.decontam import BenchmarkIndex, decontaminate
    index = BenchmarkIndex.build({"gsm8k": [("test-0", "Janet's ducks lay 16 eggs ..."), ...]})
    result = decontaminate(train_dataset, index, num_proc=2)
    result.table[result.table.flagged]; result.save("runs/decontam/sft")

Decisions (not fixed by the paper):

* Normalisation: lower-case, then every character that is not a Unicode letter, mark or number
  (punctuation, symbols, whitespace) becomes a separator; tokens are the remaining runs, and the
  normalised text is the tokens joined by single spaces (``"x+y=3"`` -> ``"x y 3"``).
* (``ngram_fraction``) An eval item with fewer than ``ngram`` tokens has no n-gram to share, so it
  matches a training row only exactly (the row's whole normalised user text is the item). Matching it as a
  substring flagged innocent rows: MMLU items such as "Inflation" or "−4 + (−3) =" matched code
  and essays in the stand-in SFT mix.
* ``removal="overlapping"`` (default) drops every training row that overlaps any eval item;
  ``removal="flagged"`` drops overlapping rows only from sources flagged for that benchmark.
  The paper's wording allows both.
* Rows without user text (no ``messages``, an unknown role, null content, ...) cannot be scanned:
  they are dropped (``unscanned="drop"``, the default; ``"keep"`` keeps them), counted and named
  in ``DecontamResult.skipped``, never passed on unchecked. ``tulu-repro decontaminate`` and 01_data
  read their rows through :mod:`tulu_lib.data.loader`, which drops malformed rows (named by
  ``file:line``) before they get here.
* Hashes: each token gets a stable 64-bit blake2b hash; an n-gram's hash is a polynomial of its
  token hashes (mod 2**64) seeded with its length, so results do not depend on the process or
  on ``PYTHONHASHSEED``. Training tokens that appear in no benchmark cannot be part of a matching
  n-gram, so windows containing them are skipped before any lookup.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import multiprocessing as mp
import shutil
import tempfile
import time
import unicodedata
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

__all__ = [
    "BenchmarkIndex",
    "DecontamResult",
    "decontaminate",
    "load_result",
    "ngrams",
    "normalize",
    "user_text",
    "user_turns",
]

REMOVAL_MODES = ("overlapping", "flagged")
RULES = ("release", "ngram_fraction")
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the n-gram polynomial hash
_CHUNK_ROWS = 4096  # rows per work unit (a worker holds ~100 MiB of temporaries per 4096 rows)
_TABLE_COLUMNS = [
    "source", "benchmark", "n_train_rows", "n_benchmark_items", "n_items_overlapped",
    "overlap_pct", "flagged", "n_train_rows_matched",
]
_REMOVED_COLUMNS = ["id", "source", "benchmark", "item_id", "overlap", "match"]
_STR_COLUMNS = {"id": str, "source": str, "benchmark": str, "item_id": str, "match": str}


# --------------------------------------------------------------------------------------------
# Text normalisation and hashing
# --------------------------------------------------------------------------------------------
class _SeparatorTable(dict):
    """``str.translate`` table: letters, marks and numbers map to themselves, all else to " "."""

    def __missing__(self, code: int) -> int:
        value = code if unicodedata.category(chr(code))[0] in "LMN" else 32
        self[code] = value
        return value


_SEPARATORS = _SeparatorTable()


def _spaced(text: str) -> str:
    """Lower-cased ``text`` with every separator character replaced by one space."""
    return text.lower().translate(_SEPARATORS)


def normalize(text: str) -> str:
    """Lower-case, turn punctuation/symbols into separators, collapse whitespace."""
    return " ".join(_spaced(text).split())


def _token_hash(token: str) -> int:
    """Stable non-zero 64-bit hash of one normalised token (0 marks 'not in any benchmark')."""
    value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return value or 1


def _window_hashes(tokens: np.ndarray, length: int) -> np.ndarray:
    """Hash of every ``length``-token window of ``tokens`` (uint64 token hashes, wraps mod 2**64)."""
    count = len(tokens) - length + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.full(count, length, dtype=np.uint64)
    for k in range(length):
        hashes *= _MUL
        hashes += tokens[k : k + count]
    return hashes


def _tokenize(spaced: list[str]) -> tuple[pa.Array, np.ndarray]:
    """Tokens of texts produced by :func:`_spaced` (split on spaces) and each token's row."""
    pieces = pc.split_pattern(pa.array(spaced, pa.large_string()), " ")
    nonempty = pc.greater(pc.binary_length(pieces.flatten()), 0)
    tokens = pieces.flatten().filter(nonempty)
    return tokens, pc.list_parent_indices(pieces).filter(nonempty).to_numpy().astype(np.int64)


def _row_windows(tok: np.ndarray, tok_row: np.ndarray, n_rows: int, n: int):
    """Row and hash of every ``n``-token window that lies inside one row and contains no 0
    token (a token in no benchmark). ``tok_row`` (sorted) is each token's row."""
    rows, grams, _ = _row_windows_at(tok, tok_row, n_rows, n)
    return rows, grams


def _row_windows_at(tok: np.ndarray, tok_row: np.ndarray, n_rows: int, n: int):
    """:func:`_row_windows` plus each window's first token position within its row."""
    slots = np.zeros(len(tok) + n_rows, dtype=np.uint64)
    slots[np.arange(len(tok)) + tok_row] = tok  # rows back to back, each followed by a 0 slot
    sizes = np.bincount(tok_row, minlength=n_rows) + 1
    slot_row = np.repeat(np.arange(n_rows), sizes)
    zeros = np.concatenate(([0], np.cumsum(slots == 0)))
    start = np.flatnonzero(zeros[n:] == zeros[:-n])
    first_slot = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    row = slot_row[start]
    return row, _window_hashes(slots, n)[start], start - first_slot[row]


def _bitmap(hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """One-hash Bloom filter (bit array, bits) over sorted n-gram ``hashes``."""
    bits = int(min(30, max(16, math.ceil(math.log2(32 * len(hashes) + 1)))))
    bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
    top = hashes >> np.uint64(64 - bits)
    np.bitwise_or.at(bitmap, (top >> np.uint64(3)).astype(np.intp),
                     np.left_shift(np.uint8(1), (top & np.uint64(7)).astype(np.uint8)))
    return bitmap, bits


def _lookup_in(hashes: np.ndarray, bitmap: np.ndarray, bits: int, grams: np.ndarray):
    """Positions in ``grams`` found in sorted ``hashes``, and their indices there."""
    top = grams >> np.uint64(64 - bits)
    byte = bitmap[(top >> np.uint64(3)).astype(np.intp)]
    maybe = np.flatnonzero((byte >> (top & np.uint64(7)).astype(np.uint8)) & 1)
    maybe = maybe[np.argsort(grams[maybe])]  # sorted queries: searchsorted stays in cache
    found = np.searchsorted(hashes, grams[maybe])
    found[found == len(hashes)] = 0
    hit = hashes[found] == grams[maybe]
    return maybe[hit], found[hit]


def ngrams(text: str, n: int = 8) -> set[int]:
    """Stable 64-bit hashes of the distinct word n-grams of ``normalize(text)``; empty for a
    text of fewer than ``n`` tokens (such eval items are matched exactly instead)."""
    hashes = np.array([_token_hash(t) for t in _spaced(text).split()], dtype=np.uint64)
    return set(_window_hashes(hashes, n).tolist())


# --------------------------------------------------------------------------------------------
# Training-row schema helpers
# --------------------------------------------------------------------------------------------
def _user_turns(messages: Any) -> str:
    if not isinstance(messages, (list, tuple)):
        return ""
    return "\n".join(
        m["content"]
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
    )


def _user_turn_list(messages: Any) -> list[str]:
    if not isinstance(messages, (list, tuple)):
        return []
    return [m["content"] for m in messages
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)]


def user_turns(row: Mapping[str, Any]) -> list[str]:
    """The non-blank user turns of a row, each a separate document as in the release's
    ``decontamination/index.py:read_dataset`` (``role:user`` messages); same schemas as
    :func:`user_text`, which joins them."""
    for key in ("messages", "chosen"):
        turns = [t for t in _user_turn_list(row.get(key)) if t.strip()]
        if turns:
            return turns
    prompt = row.get("prompt")
    turns = [prompt] if isinstance(prompt, str) else _user_turn_list(prompt)
    return [t for t in turns if t.strip()]


def user_text(row: Mapping[str, Any]) -> str:
    """User-turn text of a Tülu 3 row: SFT/RLVR ``messages``, else preference ``chosen``, else
    ``prompt`` (a string or a list of messages). Returns "" when the row has no user turn."""
    for key in ("messages", "chosen"):
        text = _user_turns(row.get(key))
        if text.strip():
            return text
    prompt = row.get("prompt")
    return prompt if isinstance(prompt, str) else _user_turns(prompt)


def _source(row: Mapping[str, Any]) -> str:
    """``source`` column, else RLVR ``dataset`` (lists joined with '+'), else 'unknown'."""
    for key in ("source", "dataset"):
        value = row.get(key)
        if isinstance(value, (list, tuple)):
            value = "+".join(map(str, value))
        if value:
            return str(value)
    return "unknown"


def _row_id(row: Mapping[str, Any], source: str, index: int) -> str:
    """The row's ``id``, else the stable ``f"{source}#{row index}"``."""
    value = row.get("id")
    return str(value) if value not in (None, "") else f"{source}#{index}"


# --------------------------------------------------------------------------------------------
# Benchmark index
# --------------------------------------------------------------------------------------------
@dataclass
class BenchmarkIndex:
    """Every benchmark item's n-grams, indexed once: n-gram hash -> items, plus exact texts.

    Items are numbered globally; ``item_bench[i]`` is the benchmark of item ``i``. The n-gram
    table is in CSR form: ``hashes`` (sorted, distinct) and ``items[offsets[j]:offsets[j+1]]``
    are the items containing ``hashes[j]``. ``bitmap`` is a one-hash Bloom filter over
    ``hashes`` that rejects most non-benchmark n-grams with one memory read.
    """

    ngram: int
    names: list[str]
    item_ids: list[str]
    item_bench: np.ndarray  # int32, per item
    item_ngrams: np.ndarray  # int32, distinct n-grams per item (0: shorter than ngram)
    item_len: np.ndarray  # int64, tokens per item
    vocab: pa.Array  # benchmark tokens; position p has token hash tok_hash[p + 1]
    tok_hash: np.ndarray  # uint64, [0] = 0 for tokens in no benchmark
    hashes: np.ndarray  # uint64, sorted distinct n-gram hashes
    offsets: np.ndarray  # int64, len(hashes) + 1
    items: np.ndarray  # int32
    exact: dict[str, tuple[int, ...]]  # normalised item text -> items
    bitmap: np.ndarray  # uint8 bit array of 2**bitmap_bits bits
    bitmap_bits: int
    # rule="release": per field, each distinct n-gram's LAST start position (CSR like above)
    field_item: np.ndarray  # int32, per field: its item
    field_len: np.ndarray  # int64, tokens per field
    item_fields: np.ndarray  # int32, fields per item
    r_hashes: np.ndarray  # uint64, sorted distinct per-field n-gram hashes
    r_offsets: np.ndarray  # int64, len(r_hashes) + 1
    r_field: np.ndarray  # int32
    r_start: np.ndarray  # int64
    r_bitmap: np.ndarray
    r_bitmap_bits: int

    @classmethod
    def build(cls, benchmarks: Mapping[str, Sequence[tuple[str, str]]], ngram: int = 8):
        """Index ``{benchmark: [(item_id, text or (field, ...)), ...]}``; raises ValueError when
        empty. A multi-field item (DROP's passage and question) is one text, its fields joined by a
        newline, for ``rule="ngram_fraction"``, and separate fields for ``rule="release"``."""
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        if not benchmarks:
            raise ValueError("no benchmarks given")
        for name, items in benchmarks.items():
            if not items:
                raise ValueError(f"benchmark {name!r} has no items")
        item_ids, item_bench, spaced, field_spaced, field_item = [], [], [], [], []
        for b, items in enumerate(benchmarks.values()):
            for item_id, text in items:
                fields = [text] if isinstance(text, str) else list(text)
                field_spaced += [_spaced(f) for f in fields]
                field_item += [len(item_ids)] * len(fields)
                item_ids.append(str(item_id))
                item_bench.append(b)
                spaced.append(_spaced("\n".join(fields)))
        tokens, tok_row = _tokenize(spaced)
        item_len = np.bincount(tok_row, minlength=len(item_ids))
        exact: dict[str, list[int]] = {}
        for i in np.flatnonzero(item_len).tolist():
            exact.setdefault(" ".join(spaced[i].split()), []).append(i)
        if not item_len.any():
            raise ValueError("no benchmark item has any token")
        if not item_len.all():
            empty = [item_ids[i] for i in np.flatnonzero(item_len == 0)[:5]]
            warnings.warn(f"{(item_len == 0).sum()} benchmark item(s) have no tokens and can "
                          f"never match, e.g. {empty}", stacklevel=2)
        encoded = tokens.dictionary_encode()
        vocab = encoded.dictionary
        tok_hash = np.array([0] + [_token_hash(t) for t in vocab.to_pylist()], dtype=np.uint64)
        tok = tok_hash[encoded.indices.to_numpy().astype(np.int64) + 1]
        owners, grams = _row_windows(tok, tok_row, len(item_ids), ngram)
        order = np.lexsort((owners, grams))
        grams, owners = grams[order], owners[order]
        first = np.ones(len(grams), dtype=bool)  # drop repeated (n-gram, item) pairs
        first[1:] = (grams[1:] != grams[:-1]) | (owners[1:] != owners[:-1])
        grams, owners = grams[first], owners[first].astype(np.int32)
        hashes, starts = np.unique(grams, return_index=True)
        offsets = np.append(starts, len(grams)).astype(np.int64)
        bitmap, bits = _bitmap(hashes)
        release = _release_table(field_spaced, vocab, tok_hash, ngram)
        return cls(
            ngram=ngram,
            names=list(benchmarks),
            item_ids=item_ids,
            item_bench=np.array(item_bench, dtype=np.int32),
            item_ngrams=np.bincount(owners, minlength=len(item_ids)).astype(np.int32),
            item_len=item_len,
            vocab=vocab,
            tok_hash=tok_hash,
            hashes=hashes,
            offsets=offsets,
            items=owners,
            exact={k: tuple(v) for k, v in exact.items()},
            bitmap=bitmap,
            bitmap_bits=bits,
            field_item=np.array(field_item, dtype=np.int32),
            item_fields=np.bincount(field_item, minlength=len(item_ids)).astype(np.int32),
            **release,
        )

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def benchmark_sizes(self) -> dict[str, int]:
        """Number of items per benchmark."""
        counts = np.bincount(self.item_bench, minlength=len(self.names))
        return dict(zip(self.names, counts.tolist(), strict=False))

    def _lookup(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``grams`` that are benchmark n-grams, and their indices in ``hashes``."""
        return _lookup_in(self.hashes, self.bitmap, self.bitmap_bits, grams)


def _release_table(field_spaced: list[str], vocab: pa.Array, tok_hash: np.ndarray, n: int) -> dict:
    """Per-field n-gram table of ``rule="release"``: for every distinct n-gram of a field, the
    start of its LAST occurrence — search.py:get_ngram_mapping builds ``{ngram text: token
    positions}``, so a repeated n-gram keeps the positions of its last occurrence."""
    tokens, tok_row = _tokenize(field_spaced)
    tok = tok_hash[pc.index_in(tokens, value_set=vocab).fill_null(-1).to_numpy() + 1]
    fields, grams, starts = _row_windows_at(tok, tok_row, len(field_spaced), n)
    order = np.lexsort((starts, fields, grams))
    fields, grams, starts = fields[order], grams[order], starts[order]
    last = np.ones(len(grams), dtype=bool)
    last[:-1] = (grams[1:] != grams[:-1]) | (fields[1:] != fields[:-1])
    fields, grams, starts = fields[last].astype(np.int32), grams[last], starts[last].astype(np.int64)
    hashes, first = np.unique(grams, return_index=True)
    bitmap, bits = _bitmap(hashes)
    return {"field_len": np.bincount(tok_row, minlength=len(field_spaced)).astype(np.int64),
            "r_hashes": hashes, "r_offsets": np.append(first, len(grams)).astype(np.int64),
            "r_field": fields, "r_start": starts, "r_bitmap": bitmap, "r_bitmap_bits": bits}


# --------------------------------------------------------------------------------------------
# Scanning training rows (runs in worker processes)
# --------------------------------------------------------------------------------------------
def _match_rows(index: BenchmarkIndex, spaced: list[str], threshold: float) -> list[tuple]:
    """``(row, item, overlap fraction, exact)`` for every overlapping pair; ``spaced`` holds
    the rows' texts after :func:`_spaced`."""
    tokens, tok_row = _tokenize(spaced)
    vocab_pos = pc.index_in(tokens, value_set=index.vocab).fill_null(-1).to_numpy()
    n_rows = len(spaced)
    per_row = np.bincount(tok_row, minlength=n_rows)
    rows, grams = _row_windows(index.tok_hash[vocab_pos + 1], tok_row, n_rows, index.ngram)
    pos, found = index._lookup(grams)
    n_hashes = len(index.hashes)
    keys = np.unique(rows[pos] * n_hashes + found)  # distinct (row, benchmark n-gram) pairs
    rows, grams = keys // n_hashes, keys % n_hashes
    first = index.offsets[grams]
    count = index.offsets[grams + 1] - first
    item_pos = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    row_item = np.repeat(rows, count) * index.n_items + index.items[item_pos]
    row_item, shared = np.unique(row_item, return_counts=True)
    rows, items = row_item // index.n_items, row_item % index.n_items
    fraction = shared / index.item_ngrams[items]
    keep = fraction >= threshold
    rows, items, fraction = rows[keep].tolist(), items[keep].tolist(), fraction[keep].tolist()
    # Exact matches: a long item sharing all its n-grams with a row of its length (confirmed on
    # the text), or a row shorter than one n-gram whose whole text is a (short) item.
    same_length = (per_row[rows] == index.item_len[items]).tolist()
    exact = [
        whole and share == 1.0 and i in index.exact.get(" ".join(spaced[r].split()), ())
        for r, i, share, whole in zip(rows, items, fraction, same_length, strict=True)
    ]
    for r in np.flatnonzero((per_row > 0) & (per_row < index.ngram)).tolist():
        for i in index.exact.get(" ".join(spaced[r].split()), ()):
            rows.append(r)
            items.append(i)
            fraction.append(1.0)
            exact.append(True)
    return list(zip(rows, items, fraction, exact, strict=True))


def _match_docs_release(index: BenchmarkIndex, spaced: list[str], threshold: float) -> list[tuple]:
    """``(doc, item, score, exact)`` for every pair whose score is STRICTLY above ``threshold``.

    Mirrors search.py:ngram_match: a field's score against a document is |tokens covered by the
    field's n-grams found in the document| / |field tokens|; an item's score is the mean over
    its fields (a field with no hit counts 0); ``score > match_threshold`` is a match.
    """
    n, n_fields = index.ngram, len(index.field_item)
    tokens, tok_row = _tokenize(spaced)
    vocab_pos = pc.index_in(tokens, value_set=index.vocab).fill_null(-1).to_numpy()
    per_doc = np.bincount(tok_row, minlength=len(spaced))
    docs, grams = _row_windows(index.tok_hash[vocab_pos + 1], tok_row, len(spaced), n)
    pos, found = _lookup_in(index.r_hashes, index.r_bitmap, index.r_bitmap_bits, grams)
    n_hashes = len(index.r_hashes)
    keys = np.unique(docs[pos] * n_hashes + found)  # distinct (doc, n-gram) pairs
    docs, grams = keys // n_hashes, keys % n_hashes
    first = index.r_offsets[grams]
    count = index.r_offsets[grams + 1] - first
    entry = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
    pair = np.repeat(docs, count) * n_fields + index.r_field[entry]  # (doc, field)
    start = index.r_start[entry]
    order = np.lexsort((start, pair))
    pair, start = pair[order], start[order]
    covered = np.full(len(pair), n, dtype=np.int64)  # tokens a window adds beyond the previous
    same = pair[1:] == pair[:-1]
    covered[:-1][same] = np.minimum(n, start[1:] - start[:-1])[same]
    pairs, group = np.unique(pair, return_inverse=True)
    tokens_covered = np.bincount(group, weights=covered, minlength=len(pairs))
    doc, field = pairs // n_fields, pairs % n_fields
    item = index.field_item[field].astype(np.int64)
    share = tokens_covered / index.field_len[field] / index.item_fields[item]
    doc_items, group = np.unique(doc * index.n_items + item, return_inverse=True)
    score = np.bincount(group, weights=share, minlength=len(doc_items))
    keep = score > threshold
    doc_items, score = doc_items[keep], score[keep]
    docs, items = (doc_items // index.n_items).tolist(), (doc_items % index.n_items).tolist()
    exact = [
        s >= 1.0 and per_doc[d] == index.item_len[i] and i in index.exact.get(" ".join(spaced[d].split()), ())
        for d, i, s in zip(docs, items, score.tolist(), strict=True)
    ]
    return list(zip(docs, items, score.tolist(), exact, strict=True))


def _scan_release(index: BenchmarkIndex, threshold: float, rows: list[dict]) -> tuple[list, list]:
    """Local row numbers without user turns, and ``(row, item, best score, exact)`` matches:
    each user turn is scored as its own document and a row keeps its best turn per item."""
    spaced, doc_row, skipped = [], [], []
    for i, row in enumerate(rows):
        turns = user_turns(row)
        if not turns:
            skipped.append(i)
        spaced += [_spaced(t) for t in turns]
        doc_row += [i] * len(turns)
    best: dict[tuple[int, int], tuple[float, bool]] = {}
    if spaced:
        for d, item, score, exact in _match_docs_release(index, spaced, threshold):
            key = (doc_row[d], item)
            old = best.get(key, (-1.0, False))
            best[key] = (max(old[0], score), old[1] or exact)
    return skipped, [(r, item, score, exact) for (r, item), (score, exact) in sorted(best.items())]


def _scan(state: tuple, start: int, stop: int) -> dict:
    """Scan rows ``[start, stop)``: source counts, skipped rows and matches."""
    view, index, threshold, rule = state
    batch = view[start:stop]
    rows = [dict(zip(batch, values, strict=False)) for values in zip(*batch.values(), strict=False)]
    sources = [_source(row) for row in rows]
    if rule == "release":
        skipped_local, found = _scan_release(index, threshold, rows)
        return {"start": start, "n": len(rows), "sources": Counter(sources),
                "skipped": [_row_id(rows[i], sources[i], start + i) for i in skipped_local],
                "skipped_rows": [start + i for i in skipped_local],
                "matches": [(start + i, _row_id(rows[i], sources[i], start + i), sources[i], item,
                             score, exact) for i, item, score, exact in found]}
    spaced, local, skipped, skipped_rows = [], [], [], []
    for i, row in enumerate(rows):
        text = user_text(row)
        if text.strip():
            spaced.append(_spaced(text))
            local.append(i)
        else:
            skipped.append(_row_id(row, sources[i], start + i))
            skipped_rows.append(start + i)
    matches = []
    if spaced:
        for r, item, fraction, exact in _match_rows(index, spaced, threshold):
            i = local[r]
            matches.append((start + i, _row_id(rows[i], sources[i], start + i), sources[i],
                            item, fraction, exact))
    return {"start": start, "n": len(rows), "sources": Counter(sources), "skipped": skipped,
            "skipped_rows": skipped_rows, "matches": matches}


_WORKER_STATE: tuple | None = None


def _init_worker(state: tuple) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state


def _scan_in_worker(span: tuple[int, int]) -> dict:
    return _scan(_WORKER_STATE, *span)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class DecontamResult:
    """Output of :func:`decontaminate`.

    ``dataset``: kept rows. ``table``: one row per (source, benchmark). ``removed``: one row per
    (removed training row, eval item it overlaps) that caused the removal (with ``remove=False``:
    the rows that would have been removed; none were). ``skipped``:
    ``{"count", "examples", "kept"}`` for rows without user text (dropped unless
    ``unscanned="keep"`` or ``remove=False``). ``stats``: sizes, timing, params.
    """

    dataset: datasets.Dataset
    table: pd.DataFrame
    removed: pd.DataFrame
    skipped: dict
    stats: dict

    def flagged(self) -> pd.DataFrame:
        """The flagged (source, benchmark) rows of ``table``."""
        return self.table[self.table.flagged].reset_index(drop=True)

    def save(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write ``dataset/``, ``contamination.csv``, ``removed.csv``, ``summary.json``.

        Everything is written to a temporary folder next to ``out_dir`` and renamed into place
        only when complete, so an interrupted save never leaves a folder that looks finished.
        """
        out = Path(out_dir)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            self.dataset.save_to_disk(str(tmp / "dataset"))
            self.table.to_csv(tmp / "contamination.csv", index=False)
            self.removed.to_csv(tmp / "removed.csv", index=False)
            summary = {"stats": self.stats, "skipped": self.skipped,
                       "flagged": self.flagged()[["source", "benchmark", "overlap_pct"]]
                       .to_dict("records")}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
                out.rename(old)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return out


def load_result(out_dir: str | Path) -> DecontamResult:
    """Read a folder written by :meth:`DecontamResult.save`; refuses one without summary.json."""
    out = Path(out_dir)
    if not (out / "summary.json").is_file():
        raise FileNotFoundError(f"{out} is not a finished decontamination result (no summary.json)")
    summary = json.loads((out / "summary.json").read_text())
    read = dict(dtype=_STR_COLUMNS, keep_default_na=False)
    return DecontamResult(
        dataset=datasets.load_from_disk(str(out / "dataset")),
        table=pd.read_csv(out / "contamination.csv", **read),
        removed=pd.read_csv(out / "removed.csv", **read),
        skipped=summary["skipped"],
        stats=summary["stats"],
    )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def _as_dataset(train: datasets.Dataset | Iterable[dict]) -> datasets.Dataset:
    if isinstance(train, datasets.Dataset):
        return train
    rows = list(train)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return datasets.Dataset.from_dict({k: [row.get(k) for row in rows] for k in keys})


def decontaminate(
    train: datasets.Dataset | Iterable[dict],
    benchmarks: BenchmarkIndex | Mapping[str, Sequence[tuple[str, str]]],
    *,
    ngram: int = 8,
    overlap_threshold: float = 0.5,
    flag_threshold: float = 0.02,
    removal: str = "overlapping",
    num_proc: int = 2,
    progress: bool = True,
    rule: str = "release",
    remove: bool = True,
    unscanned: str = "drop",
) -> DecontamResult:
    """Find training rows whose user turns overlap benchmark items, flag sources, remove rows.

    ``benchmarks`` is ``{name: [(item_id, text or (field, ...)), ...]}`` or a prebuilt
    :class:`BenchmarkIndex` (its ``ngram`` must equal ``ngram``). ``rule``: ``"release"``
    (open-instruct's search.py: per user turn, token coverage averaged over fields, strictly
    above ``overlap_threshold``) or ``"ngram_fraction"`` (see the module docstring).
    ``remove=False`` reports the overlap (``table``, ``removed`` = the rows that would go) and
    returns the dataset unchanged. Rows without user text cannot be scanned: ``unscanned="drop"``
    (default) drops them, ``"keep"`` keeps them; both count and name them in ``skipped``. Rows are
    scanned in chunks by ``num_proc`` forked worker processes that share the index built in this
    process.
    """
    if unscanned not in ("drop", "keep"):
        raise ValueError(f"unscanned must be drop or keep, got {unscanned!r}")
    if removal not in REMOVAL_MODES:
        raise ValueError(f"removal must be one of {REMOVAL_MODES}, got {removal!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not 0 < overlap_threshold <= 1 or not 0 <= flag_threshold < 1:
        raise ValueError("need 0 < overlap_threshold <= 1 and 0 <= flag_threshold < 1")
    began = time.perf_counter()
    if isinstance(benchmarks, BenchmarkIndex):
        index = benchmarks
        if index.ngram != ngram:
            raise ValueError(f"index was built with ngram={index.ngram}, not {ngram}")
    else:
        index = BenchmarkIndex.build(benchmarks, ngram=ngram)
    ds = _as_dataset(train)
    if len(ds) == 0:
        raise ValueError("training dataset is empty")
    wanted = ("id", "source", "dataset", "messages", "chosen", "prompt")
    view = ds.select_columns([c for c in wanted if c in ds.column_names]).with_format(None)
    n = len(ds)
    step = min(_CHUNK_ROWS, max(1, math.ceil(n / (4 * max(1, num_proc)))))
    spans = [(a, min(a + step, n)) for a in range(0, n, step)]
    state = (view, index, overlap_threshold, rule)
    parts: list[dict] = []
    with tqdm(total=n, unit="row", desc="decontaminate", disable=not progress) as bar:
        if num_proc > 1 and len(spans) > 1 and "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")  # workers inherit the index instead of unpickling it
            gc.freeze()  # else the workers' garbage collection touches (copies) every object
            try:
                with ctx.Pool(num_proc, initializer=_init_worker, initargs=(state,)) as pool:
                    for part in pool.imap_unordered(_scan_in_worker, spans):
                        parts.append(part)
                        bar.update(part["n"])
            finally:
                gc.unfreeze()
        else:
            for span in spans:
                parts.append(_scan(state, *span))
                bar.update(parts[-1]["n"])

    parts.sort(key=lambda p: p["start"])
    source_rows = sum((p["sources"] for p in parts), Counter())
    skipped_ids = [s for p in parts for s in p["skipped"]]
    skipped_rows = np.array([r for p in parts for r in p["skipped_rows"]], dtype=np.int64)
    found = [m for p in parts for m in p["matches"]]
    columns = zip(*found, strict=True) if found else [[]] * 6
    rows, ids, sources, items, overlap, exact = (list(c) for c in columns)
    items = np.array(items, dtype=np.int64)
    matches = pd.DataFrame({
        "row": np.array(rows, dtype=np.int64),
        "id": pd.Series(ids, dtype=str),
        "source": pd.Series(sources, dtype=str),
        "benchmark": pd.Series([index.names[b] for b in index.item_bench[items]], dtype=str),
        "item": items,
        "item_id": pd.Series([index.item_ids[i] for i in items], dtype=str),
        "overlap": np.array(overlap, dtype=np.float64),
        "match": pd.Series(["exact" if e else "ngram" for e in exact], dtype=str),
    })

    sizes = index.benchmark_sizes()
    grid = pd.MultiIndex.from_product([sorted(source_rows), index.names],
                                      names=["source", "benchmark"])
    counts = (
        matches.groupby(["source", "benchmark"])
        .agg(n_items_overlapped=("item", "nunique"), n_train_rows_matched=("row", "nunique"))
        .reindex(grid, fill_value=0)
        .reset_index()
    )
    counts["n_train_rows"] = counts["source"].map(source_rows)
    counts["n_benchmark_items"] = counts["benchmark"].map(sizes)
    share = counts["n_items_overlapped"] / counts["n_benchmark_items"]
    counts["overlap_pct"] = 100 * share
    counts["flagged"] = share > flag_threshold
    table = counts[_TABLE_COLUMNS]

    if removal == "flagged":
        flagged = table.loc[table.flagged, ["source", "benchmark"]]
        matches = matches.merge(flagged, on=["source", "benchmark"])
    matches = matches.sort_values(["row", "item"], kind="stable")
    overlapping = matches["row"].unique()
    removed_rows = overlapping if remove else overlapping[:0]
    drop_unscanned = remove and unscanned == "drop"
    gone = np.union1d(removed_rows, skipped_rows) if drop_unscanned else removed_rows
    kept = ds.select(np.setdiff1d(np.arange(n), gone)) if len(gone) else ds
    seconds = time.perf_counter() - began
    stats = {
        "rows_in": n,
        "rows_out": len(kept),
        "rows_removed": int(len(removed_rows)),
        "rows_overlapping": int(len(overlapping)),
        "rows_skipped": len(skipped_ids),
        "rows_unscanned_dropped": len(skipped_ids) if drop_unscanned else 0,
        "seconds": round(seconds, 3),
        "rows_per_s": round(n / seconds, 1),
        "num_proc": num_proc,
        "ngram": ngram,
        "overlap_threshold": overlap_threshold,
        "flag_threshold": flag_threshold,
        "removal": removal,
        "rule": rule,
        "remove": remove,
        "unscanned": unscanned,
        "benchmark_items": sizes,
    }
    return DecontamResult(
        dataset=kept,
        table=table,
        removed=matches[_REMOVED_COLUMNS].reset_index(drop=True),
        skipped={"count": len(skipped_ids), "examples": skipped_ids[:5], "kept": not drop_unscanned},
        stats=stats,
    )
