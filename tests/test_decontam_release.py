"""decontam's ``rule="release"``: open-instruct 9b39f557 ``decontamination/search.py`` by hand.

Facts used (release source): ``search.py:ngram_match`` L97-L136 — per query field, score(doc) =
|tokens of the field covered by its n-grams found in doc| / |field tokens| (L130), averaged over
the item's fields (L136, a field without a hit counts 0); ``get_ngram_mapping`` L30-L35 maps each
n-gram TEXT to its token positions, so a repeated n-gram keeps its last occurrence; ``main`` L306
``score > args.match_threshold`` (strict); ``index.py:read_dataset`` L55-L64 indexes every
``role == user`` message as its own document; search.py L238 DROP's fields are passage and question.
"""

from __future__ import annotations

import random

import pytest

from tulu_lib.data import decontam
from tulu_lib.data.decontam import normalize, user_turns

W = [f"w{i}" for i in range(400)]


def row(i, *turns, source="s"):
    messages = []
    for t in turns:
        messages += [{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
    return {"id": f"r{i}", "source": source, "messages": messages}


def run(rows, bench, **kw):
    return decontam.decontaminate(rows, bench, num_proc=1, progress=False, **kw)


def words(a, b):
    return " ".join(W[a:b])


def test_release_is_the_default_rule():
    result = run([row(0, words(0, 20))], {"b": [("i", words(0, 20))]})
    assert result.stats["rule"] == "release"
    with pytest.raises(ValueError, match="rule"):
        run([row(0, "x")], {"b": [("i", "y")]}, rule="spacy")


def test_just_over_and_just_under_half_of_the_tokens():
    # item: 20 tokens. 11 verbatim tokens = 4 8-grams covering 11 tokens: 11/20 = 0.55 > 0.5.
    # 10 tokens = 3 8-grams covering 10: 10/20 = 0.5, not > 0.5. 9 tokens: 0.45.
    rows = [row(0, words(0, 11)), row(1, words(0, 10)), row(2, words(11, 20))]
    result = run(rows, {"b": [("i", words(0, 20))]})
    assert list(result.removed["id"]) == ["r0"]
    assert result.removed["overlap"].item() == pytest.approx(0.55)


def test_exactly_half_is_not_a_match():
    # 10 of 20 tokens covered = 0.5: release needs > 0.5; below the threshold it is a match.
    rows = [row(0, words(0, 10))]
    bench = {"b": [("i", words(0, 20))]}
    assert run(rows, bench).removed.empty
    assert run(rows, bench, overlap_threshold=0.49).removed["overlap"].item() == pytest.approx(0.5)


def test_a_match_split_across_two_user_turns_is_not_a_match():
    # turn 1 covers tokens 0-7 (8/20), turn 2 covers 8-15 (8/20): each 0.4 on its own;
    # joined (ngram_fraction's one text per row) the 16 tokens would cover 0.8.
    rows = [row(0, words(0, 8), words(8, 16)), row(1, words(0, 8) + " " + words(8, 16))]
    result = run(rows, {"b": [("i", words(0, 20))]})
    assert list(result.removed["id"]) == ["r1"]
    assert result.removed["overlap"].item() == pytest.approx(0.8)
    old = run(rows, {"b": [("i", words(0, 20))]}, rule="ngram_fraction")
    assert set(old.removed["id"]) == {"r0", "r1"}  # 9 of 13 8-grams in the joined user text


def test_gapped_coverage_counts_tokens_not_ngrams():
    # tokens 0-7 and 12-19 present, 8-11 missing: 2 8-grams, 16 of 20 tokens covered = 0.8
    result = run([row(0, words(0, 8) + " gap " + words(12, 20))], {"b": [("i", words(0, 20))]})
    assert result.removed["overlap"].item() == pytest.approx(0.8)


def test_drop_passage_and_question_are_averaged():
    passage, question = words(100, 120), words(150, 160)
    bench = {"drop": [("d", (passage, question))]}
    rows = [
        row(0, passage),  # passage 1.0, question 0 -> 0.5: not a match
        row(1, passage + " " + words(150, 158)),  # 1.0 and 8/10 -> 0.9
        row(2, words(100, 111) + " " + question),  # 11/20 and 1.0 -> 0.775
        row(3, question),  # 0 and 1.0 -> 0.5
    ]
    result = run(rows, bench).removed.set_index("id")
    assert set(result.index) == {"r1", "r2"}
    assert result.loc["r1", "overlap"] == pytest.approx(0.9)
    assert result.loc["r2", "overlap"] == pytest.approx(0.775)


def test_repeated_ngram_covers_only_its_last_occurrence():
    # item = A B A (A: 8 tokens, B: 4): 20 tokens; the 8-gram A occurs at 0 and 12. A document
    # holding only A covers positions 12-19 (the dict keeps the last), 8/20 = 0.4 -> with
    # threshold 0.3 it matches at 0.4, not 0.8.
    a, b = words(0, 8), words(8, 12)
    result = run([row(0, a)], {"b": [("i", f"{a} {b} {a}")]}, overlap_threshold=0.3)
    assert result.removed["overlap"].item() == pytest.approx(0.4)


def test_short_items_never_match_under_release():
    result = run([row(0, "Inflation")], {"tiny": [("t", "Inflation")]})
    assert result.removed.empty
    assert list(run([row(0, "Inflation")], {"tiny": [("t", "Inflation")]},
                    rule="ngram_fraction").removed["id"]) == ["r0"]


def test_remove_false_reports_and_removes_nothing():
    rows = [row(0, words(0, 20)), row(1, words(200, 230))]
    result = run(rows, {"b": [("i", words(0, 20))]}, remove=False)
    assert len(result.dataset) == 2 and list(result.removed["id"]) == ["r0"]
    assert result.stats["rows_removed"] == 0 and result.stats["rows_overlapping"] == 1
    assert result.table["n_items_overlapped"].sum() == 1


def test_params_switches():
    from tulu_lib.core.params import load_params

    assert load_params("params/cpu.yaml").decontamination.rule == "release"
    for name in ("params/tulu3-8b.yaml", "params/tulu3-70b.yaml"):
        dc = load_params(name).decontamination
        assert dc.rule == "release" and dc.remove is False
    with pytest.raises(ValueError, match="rule"):
        load_params("params/cpu.yaml", ["decontamination.rule=spacy"])


def _release_reference(rows, items, n, threshold):
    """search.py:ngram_match on token lists, one document per user turn."""
    found = {}
    for r in rows:
        for turn in user_turns(r):
            doc = normalize(turn).split()
            doc_grams = {tuple(doc[k:k + n]) for k in range(len(doc) - n + 1)}
            for item_id, fields in items:
                shares = []
                for field in fields:
                    tokens = normalize(field).split()
                    mapping = {tuple(tokens[k:k + n]): range(k, k + n)
                               for k in range(len(tokens) - n + 1)}
                    covered = set().union(*[p for g, p in mapping.items() if g in doc_grams])
                    shares.append(len(covered) / len(tokens))
                score = sum(shares) / len(shares)
                if score > threshold:
                    key = (r["id"], item_id)
                    found[key] = max(found.get(key, 0.0), round(score, 9))
    return found


def test_matches_brute_force_reference():
    n, rng = 3, random.Random(11)
    vocab = ["Alpha", "beta,", "ALPHA.", "gamma?", "Delta", "delta!"]

    def text(lo, hi):
        return " ".join(rng.choices(vocab, k=rng.randint(lo, hi)))

    items = [(f"q{i}", tuple(text(1, 15) for _ in range(rng.choice((1, 2))))) for i in range(40)]
    rows = [row(i, *(text(0, 25) for _ in range(rng.randint(1, 3)))) for i in range(120)]
    bench = {"b": [(i, f[0] if len(f) == 1 else f) for i, f in items]}
    result = run(rows, bench, ngram=n, overlap_threshold=0.4)
    got = {(r.id, r.item_id): round(r.overlap, 9) for r in result.removed.itertuples()}
    expected = _release_reference(rows, items, n, 0.4)
    assert got == expected and len(expected) > 30
    assert sum(v < 1 for v in expected.values()) > 10


def test_drop_reaches_decontamination_as_passage_and_question():
    """The release's search.py scores DROP's passage and question separately and averages."""
    from tulu_lib.evals.registry import benchmark_texts, load_benchmark

    (item_id, fields), = benchmark_texts(["drop"])["drop"][:1]
    row = load_benchmark("drop", limit=1)[0]
    assert item_id == row["id"] and fields == (row["passage"], row["question"])
    (_, text), = benchmark_texts(["gsm8k"])["gsm8k"][:1]
    assert isinstance(text, str)
