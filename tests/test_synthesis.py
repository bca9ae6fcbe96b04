"""Persona synthesis and the synthetic preference pipeline: templates, parsing, verifiable
constraints, judge parsing and retries, binarization, agreement, the tiny model end to end, the CLI."""

import json
import math
import random

import datasets
import pandas as pd
import pytest

from tulu_lib.cli import main
from tulu_lib.core.params import ParamsError, SourceParams, SynthesisParams, load_params
from tulu_lib.data import loader, preferences, synthesis
from tulu_lib.evals import verifiers
from tulu_lib.generation.types import Completion, SamplingParams

USER = [{"role": "user", "content": "Plan a week of meals."}]


class Scripted:
    """A fake Generator: ``reply(messages, sampling, index)`` -> text, or None for no completion."""

    def __init__(self, reply):
        self.reply, self.calls = reply, []

    def generate(self, prompts, sampling):
        self.calls.append((len(prompts), sampling))
        out = []
        for i, messages in enumerate(prompts):
            text = self.reply(messages, sampling, i)
            out.append([] if text is None else [Completion(text, True, len(text.split()))] * sampling.n)
        return out


def _ratings_json(h, i, o, t):
    return json.dumps({"helpfulness": h, "instruction_following": i, "honesty": o, "truthfulness": t})


# ----------------------------------------------------------------------------- personas


def test_builtin_personas_are_many_varied_and_drawn_with_a_seed():
    every = synthesis.builtin_personas()
    assert 50 <= len(every) <= 100 and len(set(every)) == len(every)
    assert all(10 < len(p) < 120 for p in every)
    assert synthesis.load_personas("builtin", 8, seed=1) == synthesis.load_personas("builtin", 8, seed=1)
    assert synthesis.load_personas("builtin", 8, seed=1) != synthesis.load_personas("builtin", 8, seed=2)
    assert len(synthesis.load_personas("builtin")) == len(every)


def test_hub_personas_read_the_persona_column_and_fail_clearly_offline(monkeypatch):
    asked = {}

    def fake_load(path, name=None, split=None):
        asked.update(path=path, name=name, split=split)
        return datasets.Dataset.from_dict({"persona": ["A potter", "A sailor", "A potter", "A judge"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    got = synthesis.load_personas("proj-persona/PersonaHub", seed=0)
    assert sorted(got) == ["A judge", "A potter", "A sailor"]
    assert asked == {"path": "proj-persona/PersonaHub", "name": "persona", "split": "train"}

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hugging Face Hub (offline mode is enabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"PersonaHub.*ConnectionError.*synthesis.personas: builtin"):
        synthesis.load_personas("proj-persona/PersonaHub", 4)


# ---------------------------------------------------------------------------- templates


def test_templates_carry_the_persona_the_rules_and_the_answer_prefix():
    persona = "A beekeeper who sells honey"
    for domain in synthesis.DOMAINS:
        (message,) = synthesis.writer_messages(domain, persona, "Answer in all capital letters.", "Do X.")
        assert message["role"] == "user" and persona in message["content"]
        assert synthesis.PREFIXES[domain] in message["content"]
    rule = "Answer in all capital letters."
    assert rule in synthesis.writer_messages("precise_if", persona, rule, "e")[0]["content"]
    with pytest.raises(ValueError, match="unknown synthesis domain 'poetry'"):
        synthesis.writer_messages("poetry", persona)


@pytest.mark.parametrize("text, domain, expect", [
    ("Math problem: A hive makes 3 kg of honey a week. How much in a year?", "math",
     ("A hive makes 3 kg of honey a week. How much in a year?", None)),
    ("Sure! **Coding problem:** Write a function `f(xs)` that sums a list.\n\n**Solution:** def f...", "code",
     ("Write a function `f(xs)` that sums a list.", None)),
    ("Write a limerick about my bees, please.", "precise_if",
     ("Write a limerick about my bees, please.", None)),
    ("", "math", (None, "empty")),
    ("Math problem:   ", "math", (None, "empty")),
    ("I'm sorry, but I can't help with that.", "math", (None, "refusal")),
    ("Math problem: 2+2?", "math", (None, "too short")),
    ("Math problem: " + "long " * 500, "math", (None, "too long")),
])
def test_parse_prompt(text, domain, expect):
    assert synthesis.parse_prompt(text, domain, max_chars=2000) == expect


def test_prompt_synthesis_counts_every_drop_by_reason():
    replies = iter(["Math problem: How many hexagonal cells fit in a frame of 40 by 20 cm?",
                    None,                                               # the backend failed this prompt
                    "Math problem: How many hexagonal cells fit in a frame of 40 by 20 cm?",  # duplicate
                    "As an AI, I cannot write problems.",
                    "Coding problem: Write `schedule(shifts)` returning the nurse with most nights.",
                    "Coding problem: ok",
                    "User instruction: Write a note to the hive inspectors about Tuesday's visit.",
                    "User instruction: " + "x" * 3000,
                    ""])
    writer = Scripted(lambda m, s, i: next(replies))
    synth = synthesis.synthesize_prompts(writer, ["A beekeeper", "A nurse"], ["math", "code", "precise_if"],
                                         per_domain=3, sampling=SamplingParams(32), seed=5)
    c = synth.counts
    assert c["requests"] == 9 and c["failed (no completion)"] == 1
    assert c["dropped: duplicate"] == 1 and c["dropped: refusal"] == 1 and c["dropped: too short"] == 1
    assert c["dropped: too long"] == 1 and c["dropped: empty"] == 1 and c["kept"] == 3
    assert c["kept: math"] == c["kept: code"] == c["kept: precise_if"] == 1
    assert c["generated"] == 8 and c["parsed"] == 4  # the duplicate parsed, then was dropped
    assert len(synth.outputs) == 9 and sum(o["kept"] for o in synth.outputs) == 3
    (if_row,) = [r for r in synth.prompts if r["domain"] == "precise_if"]
    assert if_row["dataset"] == "ifeval" and json.loads(if_row["ground_truth"])["func_name"]


# ------------------------------------------------------------------ verifiable constraints


def test_the_constraints_are_the_ifeval_taxonomy_that_ifeval_checks_implements():
    from tulu_lib.evals.ifeval_checks import IF_FUNCTIONS, IFEVAL_INSTRUCTIONS

    assert set(synthesis.CONSTRAINTS_BY_ID) == set(IFEVAL_INSTRUCTIONS)
    assert {c.func_name for c in synthesis.CONSTRAINTS} == set(IF_FUNCTIONS)


@pytest.mark.parametrize("constraint", synthesis.CONSTRAINTS, ids=lambda c: c.instruction_id)
def test_each_constraints_ground_truth_verifies_a_following_reply_and_rejects_a_violating_one(constraint):
    for seed in range(8):
        kwargs = constraint.draw(random.Random(seed), "Write a note to my neighbours.")
        truth = constraint.ground_truth(kwargs)
        assert json.loads(truth)["func_name"] == constraint.func_name
        follows, violates = constraint.examples(kwargs)
        assert verifiers.verify("ifeval", follows, truth), (kwargs, follows)
        assert not verifiers.verify("ifeval", violates, truth), (kwargs, violates)


def test_precise_if_prompts_carry_their_constraint_and_feed_rlvr():
    writer = Scripted(lambda m, s, i: f"User instruction: Write note number {i} to the parents.")
    synth = synthesis.synthesize_prompts(writer, synthesis.builtin_personas(), ["precise_if"], per_domain=40,
                                         sampling=SamplingParams(32), seed=3)
    assert synth.counts["kept"] == 40 and len({r["constraint"] for r in synth.prompts}) > 10
    rows = synthesis.rlvr_rows(synth.prompts)
    kept, report = loader.clean_rows("rlvr", rows, "test")
    assert len(kept) == 40 and not report.dropped
    for row in synth.prompts:
        c = synthesis.CONSTRAINTS_BY_ID[row["constraint"]]
        kwargs = {k: v for k, v in json.loads(row["ground_truth"]).items() if k != "func_name"}
        assert c.text(kwargs) in row["messages"][0]["content"]  # the prompt asks exactly what is verified
        follows, violates = c.examples(kwargs)
        assert verifiers.verify("ifeval", follows, row["ground_truth"])
        assert not verifiers.verify("ifeval", violates, row["ground_truth"])
        if row["constraint"] == "combination:repeat_prompt":  # the request itself, without the constraint
            assert kwargs["original_prompt"].startswith("Write note number")


def test_respond_turns_prompts_into_sft_rows_and_counts_failures():
    prompts = [{"id": f"p{i}", "messages": USER, "source": "persona_math"} for i in range(3)]
    gen = Scripted(lambda m, s, i: [None, "", "An answer."][i])
    rows, counts = synthesis.respond(gen, prompts, SamplingParams(16))
    assert counts == {"prompts": 3, "failed (no completion)": 1, "dropped: empty reply": 1, "cut off": 0,
                      "rows": 1}
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "An answer."}
    assert loader.clean_rows("sft", rows, "t")[1].rows_kept == 1


# --------------------------------------------------------------------------- the judge


@pytest.mark.parametrize("text, expect", [
    (_ratings_json(4, 5, 3, 2), (4, 5, 3, 2)),
    ("Here you go:\n```json\n{\"Helpfulness\": \"4\", \"Instruction Following\": 5, \"honesty\": 3.0, "
     "\"truthfulness\": \"2/5\"}\n```", (4, 5, 3, 2)),
    ("Helpfulness: 4\nInstruction following: 5\nHonesty: 3\nTruthfulness: 2", (4, 5, 3, 2)),
    ('{"helpfulness": 6, "instruction_following": 5, "honesty": 3, "truthfulness": 2}', None),  # out of range
    ('{"helpfulness": 4, "honesty": 3, "truthfulness": 2}', None),                            # one missing
    ("The response is good. 4/5", None),
    ("", None),
])
def test_parse_joint_judge_answers(text, expect):
    got = preferences.parse_judge(text)
    assert (None if got is None else tuple(got[a] for a in preferences.ASPECTS)) == expect


def test_parse_one_aspect_answers():
    assert preferences.parse_judge("Rating: 4. The reply is mostly right.", "honesty") == {"honesty": 4}
    assert preferences.parse_judge("**3** because it misses a step", "helpfulness") == {"helpfulness": 3}
    assert preferences.parse_judge("Rating: 7", "honesty") is None
    assert preferences.parse_judge("It is fine.", "honesty") is None
    (message,) = preferences.judge_messages(USER, "Monday: soup.", "honesty")
    assert "Rating: N" in message["content"] and "Monday: soup." in message["content"]
    (joint,) = preferences.judge_messages(USER, "Monday: soup.")
    assert all(a in joint["content"] for a in preferences.ASPECTS) and "JSON" in joint["content"]


def test_unparseable_judge_answers_are_retried_a_bounded_number_of_times_then_counted():
    prompts = {"p": {"id": "p", "messages": USER}}
    responses = [{"response_id": f"r{k}", "prompt_id": "p", "text": f"reply {k}"} for k in range(4)]

    def reply(messages, sampling, i):
        text = messages[0]["content"]
        if "reply 0" in text:
            return _ratings_json(5, 5, 5, 5)                                  # parses at once
        if "reply 1" in text:
            return _ratings_json(2, 2, 2, 2) if sampling.seed >= 1000 else "no idea"  # on the retry
        if "reply 2" in text:
            return None                                                        # the backend failed
        return "never a rating"                                                # always malformed

    judge = Scripted(reply)
    ratings, counts, log = preferences.judge_responses(judge, prompts, responses, retries=2,
                                                       sampling=SamplingParams(32, temperature=0.0), seed=0)
    assert set(ratings) == {"r0", "r1"} and ratings["r1"]["honesty"] == 2
    assert counts == {"requests": 4, "parsed on attempt 1": 1, "failed (no completion)": 1,
                      "parsed on attempt 2": 1, "unparseable after 3 attempts (skipped)": 1,
                      "responses rated": 2, "responses not rated": 2}
    assert [n for n, _ in judge.calls] == [4, 2, 1]  # everything, then only the unparsed ones
    assert [s.seed for _, s in judge.calls] == [0, 1000, 2000]
    assert judge.calls[0][1].temperature == 0.0
    assert judge.calls[1][1].temperature == preferences.RETRY_TEMPERATURE
    assert sum(1 for e in log if e["response_id"] == "r3") == 3


def test_per_aspect_judging_needs_all_four_aspects():
    prompts = {"p": {"id": "p", "messages": USER}}
    responses = [{"response_id": "r0", "prompt_id": "p", "text": "x"},
                 {"response_id": "r1", "prompt_id": "p", "text": "y"}]
    fours = Scripted(lambda m, s, i: "Rating: 4")
    ratings, counts, _ = preferences.judge_responses(fours, prompts, responses, mode="per_aspect", retries=0)
    assert counts["requests"] == 8 and ratings["r0"] == dict.fromkeys(preferences.ASPECTS, 4)
    ratings, _, _ = preferences.judge_responses(Scripted(lambda m, s, i: "Rating: 3" if i % 4 else "hm"),
                                                prompts, responses, mode="per_aspect", retries=0)
    assert ratings == {}  # the first aspect of each response never parsed
    with pytest.raises(ValueError, match="joint, per_aspect or expected"):
        preferences.judge_responses(Scripted(lambda m, s, i: ""), prompts, responses, mode="pairwise")


class Scored:
    """A fake judge with next-token probabilities: ``probs(text)`` -> p(" 1").." 5"" (None: 0 each)."""

    class tokenizer:  # noqa: N801 - stands in for a tokenizer instance
        @staticmethod
        def apply_chat_template(messages, tokenize, add_generation_prompt):
            return "<user>" + messages[0]["content"] + "<assistant>"

    def __init__(self, probs):
        self.probs, self.requests = probs, []

    def loglikelihood(self, requests):
        self.requests += requests
        out = []
        for context, continuation in requests:
            p = self.probs(context)
            q = 0.0 if p is None else p[int(continuation) - 1]
            out.append(math.log(q) if q else float("-inf"))
        return out


def test_expected_ratings_are_the_mean_rating_under_the_judges_probabilities():
    prompts = {"p": {"id": "p", "messages": USER}}
    responses = [{"response_id": f"r{k}", "prompt_id": "p", "text": f"reply {k}"} for k in range(3)]

    def probs(context):
        if "reply 0" in context:
            return [0.1, 0.2, 0.4, 0.2, 0.1]                      # symmetric: 3.0
        if "reply 1" in context:  # 0.02 of the mass on the digits; honesty leans high
            return [0, 0, 0.01, 0.005, 0.005] if "honesty" in context else [0.004] * 5
        return None if "truthfulness" in context else [0.2] * 5   # one aspect has no mass on 1-5

    judge = Scored(probs)
    ratings, counts, log = preferences.judge_responses(judge, prompts, responses, mode="expected")
    assert ratings["r0"] == dict.fromkeys(preferences.ASPECTS, 3.0)
    assert ratings["r1"]["honesty"] == pytest.approx(3 * 0.5 + 4 * 0.25 + 5 * 0.25)  # 3.75, renormalised
    assert ratings["r1"]["helpfulness"] == 3.0 and "r2" not in ratings
    assert counts == {"requests": 12, "scored (expected rating)": 11, "no probability on 1-5 (skipped)": 1,
                      "responses rated": 2, "responses not rated": 1}
    (entry,) = [e for e in log if e["response_id"] == "r1" and e["aspect"] == "honesty"]
    assert json.loads(entry["text"]) == {"1": 0.0, "2": 0.0, "3": 0.5, "4": 0.25, "5": 0.25, "mass": 0.02}
    # each question ends with the rating prefix and asks about one aspect; the continuations are " 1".." 5"
    assert len(judge.requests) == 3 * 4 * 5
    assert {c for _, c in judge.requests} == {f" {k}" for k in range(1, 6)}
    assert all(ctx.endswith("<assistant>" + preferences.RATING_PREFIX) for ctx, _ in judge.requests)
    pairs, _ = preferences.binarize([{"id": "p", "messages": USER}],
                                    [dict(r, model="m", on_policy=False, tokens=3) for r in responses],
                                    ratings, seed=0)
    assert [(p["chosen_mean"], p["rejected_mean"]) for p in pairs] == [(pytest.approx(3.1875), 3.0)]
    with pytest.raises(ValueError, match="next-token probabilities"):
        preferences.judge_responses(Scripted(lambda m, s, i: ""), prompts, responses, mode="expected")


def test_expected_ratings_of_a_real_judge_match_its_loglikelihoods(tiny_path):
    from tulu_lib.generation.backends import HFGenerator

    judge = HFGenerator.from_path(tiny_path, progress=False)
    prompts = {"p": {"id": "p", "messages": USER}}
    responses = [{"response_id": "r", "prompt_id": "p", "text": "Monday: soup. Tuesday: rice."}]
    ratings, counts, log = preferences.judge_responses(judge, prompts, responses, mode="expected")
    assert counts["responses rated"] == 1 and len(log) == 4
    messages = preferences.judge_messages(USER, responses[0]["text"], "honesty")
    context = judge.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    scores = judge.loglikelihood([(context + "Rating:", f" {k}") for k in range(1, 6)])
    weights = [math.exp(x) for x in scores]
    want = sum(k * w for k, w in enumerate(weights, start=1)) / sum(weights)
    assert ratings["r"]["honesty"] == pytest.approx(want, abs=1e-3) and 1 < want < 5


# ------------------------------------------------------------------------- binarization


def _rated(prompt_id, means_by_model, on_policy=("policy",)):
    responses, ratings = [], {}
    for k, (model, mean) in enumerate(means_by_model):
        rid = f"{prompt_id}#{k}"
        responses.append({"response_id": rid, "prompt_id": prompt_id, "model": model, "tokens": 10 + k,
                          "on_policy": model in on_policy, "text": f"{model} answers {prompt_id}"})
        ratings[rid] = dict.fromkeys(preferences.ASPECTS, mean)
    return responses, ratings


def test_binarization_takes_the_best_as_chosen_a_random_lower_as_rejected_and_drops_ties():
    prompts = [{"id": i, "messages": USER, "source": "persona_math", "domain": "math"} for i in "abcd"]
    responses, ratings = [], {}
    for pid, spec in {"a": [("m1", 2), ("policy", 5), ("m2", 3), ("m3", 1)],
                      "b": [("m1", 4), ("policy", 4)],          # a tie: no lower-rated response
                      "c": [("m1", 3)],                          # only one rated response
                      "d": [("m1", 3), ("policy", 3), ("m2", 1)]}.items():
        r, g = _rated(pid, spec)
        responses += r
        ratings.update(g)
    ratings["a#2"]["honesty"] = 4  # means: m1 2, policy 5, m2 3.25, m3 1
    pairs, counts = preferences.binarize(prompts, responses, ratings, seed=0, on_policy=True)
    assert counts == {"prompts": 4, "dropped: tie (no lower-rated response)": 1,
                      "dropped: fewer than 2 rated responses": 1, "pairs": 2}
    a = next(p for p in pairs if p["id"] == "synth/a")
    assert a["chosen_model"] == "policy" and a["chosen_on_policy"] and a["chosen_mean"] == 5
    assert a["rejected_mean"] < 5 and a["on_policy"] is True and a["chosen_ratings"]["honesty"] == 5
    assert a["chosen"] == [{"role": "assistant", "content": "policy answers a"}] and a["prompt"] == USER
    d = next(p for p in pairs if p["id"] == "synth/d")
    assert d["chosen_model"] in ("m1", "policy") and d["rejected_model"] == "m2"
    # the rejected one is a seeded draw among ALL lower-rated responses
    draws = {preferences.binarize(prompts[:1], responses, ratings, seed=s)[0][0]["rejected_model"]
             for s in range(30)}
    assert draws == {"m1", "m2", "m3"}
    again = preferences.binarize(prompts, responses, ratings, seed=0, on_policy=True)[0]
    assert again == pairs
    kept, report = loader.clean_rows("preferences", pairs, "t")
    assert len(kept) == 2 and not report.dropped


def test_unrated_responses_never_enter_a_pair():
    prompts = [{"id": "a", "messages": USER}]
    responses, ratings = _rated("a", [("m1", 5), ("m2", 1), ("m3", 3)])
    del ratings["a#0"], ratings["a#1"]
    pairs, counts = preferences.binarize(prompts, responses, ratings, seed=0)
    assert pairs == [] and counts["dropped: fewer than 2 rated responses"] == 1


# ------------------------------------------------------------------ pool and agreement


def test_pool_responses_count_failures_drop_duplicates_and_always_include_the_policy():
    spec = SynthesisParams(pool=("m1", "m2", "m3"), backends={"m3": "vllm"}, on_policy=True)
    pool = preferences.model_pool(spec, "/ckpt/sft")
    last = pool[-1]
    assert (last.name, last.model, last.backend, last.on_policy) == ("policy", "/ckpt/sft", "hf", True)
    assert pool[2].backend == "vllm"
    with pytest.raises(ValueError, match="policy"):
        preferences.model_pool(spec, None)
    made = []

    def factory(backend, model):
        made.append((backend, model))
        if model == "m1":
            return Scripted(lambda m, s, i: None if i == 0 else "same text")   # its first prompt: failed
        if model == "m2":
            return Scripted(lambda m, s, i: "same text" if i else "  ")       # a copy of m1's; then empty
        return Scripted(lambda m, s, i: f"{model} says {i}")

    prompts = [{"id": f"p{i}", "messages": USER} for i in range(6)]
    gens = preferences.Generators(factory)
    responses, counts = preferences.generate_responses(pool, prompts, gens, SamplingParams(16), seed=0)
    assert counts == {"requested": 24, "failed (no completion)": 1, "generated": 23, "dropped: empty": 1,
                      "dropped: duplicate": 5, "cut off": 0, "kept": 17, "kept: m1": 5, "kept: m3": 6,
                      "kept: policy": 6}
    assert made == [("hf", "m1"), ("hf", "m2"), ("vllm", "m3"), ("hf", "/ckpt/sft")] and gens.loads == 4
    assert {r["on_policy"] for r in responses if r["model"] == "policy"} == {True}
    # two of the pool per prompt: the policy always, one other drawn with the seed
    responses, counts = preferences.generate_responses(pool, prompts, preferences.Generators(factory),
                                                       SamplingParams(16, n=2), seed=0, models_per_prompt=2)
    assert counts["requested"] == 24 and counts["kept: policy"] == 6  # n=2 identical samples: one kept
    for prompt in prompts:
        assert sum(r["prompt_id"] == prompt["id"] and r["model"] == "policy" for r in responses) == 1


def test_an_openai_backend_skips_failed_prompts_and_caches_its_answers(monkeypatch, tmp_path):
    import tulu_lib.generation.backends

    made = []
    monkeypatch.setattr(tulu_lib.generation.backends, "make_generator",
                        lambda *a, **k: made.append((a, k)) or "gen")
    make = preferences.default_factory(base_url="http://localhost:9/v1", cache_dir=tmp_path)
    make("openai", "gpt-4o"), make("hf", "tiny-llama")
    (_, openai), (_, hf) = made
    assert openai["on_error"] == "skip" and openai["cache_dir"] == tmp_path / "endpoint"
    assert "on_error" not in hf and hf["base_url"] == "http://localhost:9/v1"


def test_constraint_pairs_reject_the_policys_reply_that_breaks_its_constraint_for_it_made_to_keep_it():
    """On-policy verifiable pairs on if_short prompts: a reply keeping its constraint gives no pair,
    a failed completion is counted, every other reply is the rejected side and the chosen side is
    the same reply made to keep the constraint; the RLVR verifier agrees on both sides."""
    from tulu_lib.data import standins

    rows = standins.if_short_rows()[:24]
    lowercase = [r for r in rows if json.loads(r["ground_truth"])["func_name"] == "validate_lowercase"]
    plain = "Bees make honey, and they live in hives."

    def reply(messages, sampling, i):
        if i == 0:
            return None
        return plain.lower().replace(",", "") if "lowercase" in messages[-1]["content"] else plain

    pairs, counts = preferences.constraint_pairs(Scripted(reply), rows, SamplingParams(max_new_tokens=32))
    kept = len([r for r in lowercase if r is not rows[0]])
    assert counts == {"prompts": 24, "no completion": 1, "kept the constraint already": kept,
                      "pairs": 23 - kept}
    assert kept and len(pairs) == 23 - kept
    for pair in pairs:
        truth = pair["ground_truth"]
        assert pair["rejected"][0]["content"] == plain and pair["source"] == "if_on_policy"
        assert verifiers.verify("ifeval", pair["chosen"][0]["content"], truth)
        assert not verifiers.verify("ifeval", pair["rejected"][0]["content"], truth)
        assert pair["prompt"] == next(r["messages"] for r in rows if f"if_on_policy/{r['id']}" == pair["id"])
    with pytest.raises(ValueError, match="constraint_pairs must be between 0 and 480"):
        SynthesisParams(constraint_pairs=481)


def test_judge_agreement_with_the_verifiers():
    table = pd.DataFrame({"response_id": list("abcdef"), "verified": [True, True, False, False, True, None],
                          "instruction_following": [5, 4, 2, 5, 1, 3]})
    a = preferences.judge_agreement(table, threshold=4)
    assert a["n"] == 5 and a["agreement"] == pytest.approx(3 / 5)
    assert a["kappa"] == pytest.approx((0.6 - 0.52) / (1 - 0.52))  # chance: .6 x .6 + .4 x .4
    assert a["verifier_pass"] == pytest.approx(3 / 5) and a["judge_pass"] == pytest.approx(3 / 5)
    assert a["paired"]["test"] == "McNemar exact"
    assert a["paired"]["b_only"] == 1 and a["paired"]["a_only"] == 1
    assert a["mean_rating_verified"] == pytest.approx(10 / 3)
    # verified 5, 4, 1 vs failed 2, 5: out-rates in 5>2, 4>2 (2 of 6), a tie 5=5 counts half
    assert a["auc"] == pytest.approx(2.5 / 6)
    line = preferences.agreement_line(a)
    assert "agreement 60%" in line and "probability 0.42" in line
    fractional = preferences.judge_agreement(table.assign(instruction_following=[3.6, 3.4, 3.1, 3.2, 3.5, 3]),
                                             threshold=3.45)
    assert fractional["auc"] == 1.0 and fractional["agreement"] == pytest.approx(4 / 5)
    assert preferences.judge_agreement(table.iloc[:0])["n"] == 0
    all_verified = preferences.judge_agreement(table.assign(verified=True, instruction_following=5))
    assert all_verified["agreement"] == 1
    assert math.isnan(all_verified["kappa"]) and math.isnan(all_verified["auc"])  # no failed responses
    assert "no agreement to measure" in preferences.agreement_line(preferences.judge_agreement(None))


def test_reused_prompts_come_from_sft_conversations_and_run_through_fake_backends():
    sft = [{"id": f"s{i}", "source": "math" if i % 2 else "chat",
            "messages": [{"role": "user", "content": f"Question {i % 5}?"},
                         {"role": "assistant", "content": "An answer."}]} for i in range(10)]
    sft.append({"id": "bad", "source": "chat", "messages": [{"role": "assistant", "content": "hi"}]})
    prompts, counts = preferences.select_prompts("reused", 3, seed=0, sft=sft)
    assert counts == {"dropped: no user turn before the reply": 1, "available": 10, "dropped: duplicate": 5,
                      "selected": 3}
    assert all(p["messages"][-1]["role"] == "user" and len(p["messages"]) == 1 for p in prompts)
    assert prompts == preferences.select_prompts("reused", 3, seed=0, sft=sft)[0]
    with pytest.raises(ValueError, match="needs the SFT conversations"):
        preferences.select_prompts("reused", 3, seed=0)

    def factory(backend, model):
        if model == "judge":
            return Scripted(lambda m, s, i: _ratings_json(*[5 if "strong" in m[0]["content"] else 2] * 4))
        return Scripted(lambda m, s, i: f"{model} {'strong' if model == 'm1' else 'weak'} answer {i}")

    spec = SynthesisParams(enabled=True, prompt_source="reused", prompts_per_domain=1,
                           domains=("math", "code"), pool=("m1", "m2"), on_policy=False, judge_model="judge")
    result = preferences.run(spec, seed=0, sft=sft, factory=factory, log=lambda s: None)
    assert "personas" not in result.counts and "prompts" not in result.counts
    assert result.counts["prompt selection"]["selected"] == 2 and len(result.pairs) == 2
    provenance = {(p["chosen_model"], p["rejected_model"], p["on_policy"]) for p in result.pairs}
    assert provenance == {("m1", "m2", False)}
    assert all(p["source"].startswith("reused_sft_") for p in result.pairs)
    assert result.agreement["n"] == 0  # reused prompts carry no verifiable constraint


# ------------------------------------------------------------------------------ params


def test_synthesis_params_validate(tmp_path):
    base = open("params/smoke.yaml").read()

    def error(*overrides):
        with pytest.raises(ParamsError) as info:
            load_params("params/smoke.yaml", list(overrides))
        return str(info.value)

    assert load_params("params/smoke.yaml").synthesis.enabled and "synthesis:" in base
    assert "judge_model is required" in error("synthesis.judge_model=null")
    assert "needs synthesis.base_url" in error("synthesis.backend=openai")
    assert "not a pool model" in error("synthesis.backends={m9: hf}")
    assert ">= 2 responses per prompt" in error("synthesis.on_policy=false")
    assert "unknown key" in error("synthesis.judge=tiny-llama")
    assert "choose one of" in error("synthesis.prompt_source=old")
    assert "next-token probabilities" in error("synthesis.judge_mode=expected", "synthesis.backend=openai",
                                               "synthesis.base_url=http://localhost:1/v1")
    assert not load_params("params/tulu3-8b.yaml").synthesis.enabled
    cpu = load_params("params/cpu.yaml").synthesis
    assert cpu.enabled and cpu.on_policy and cpu.judge_model == "smollm2-135m-instruct"
    assert cpu.prompts_per_domain * len(cpu.domains) <= 24 and cpu.max_new_tokens <= 128


# -------------------------------------------------------------------- tiny model, CLI


def test_the_pipeline_with_the_tiny_model_and_a_fake_judge_makes_pairs(tiny_path, tmp_path):
    from tulu_lib.generation.backends import make_generator

    rng = random.Random(0)
    judge = Scripted(lambda m, s, i: _ratings_json(*(rng.randint(1, 5) for _ in range(4))))
    spec = SynthesisParams(enabled=True, num_personas=4, prompts_per_domain=2, pool=("tiny-llama",),
                           judge_model="fake-judge", prompt_model="tiny-llama", samples_per_model=2,
                           temperature=1.0, max_new_tokens=12, judge_retries=0, constraint_pairs=4)
    factory = lambda backend, model: judge if model == "fake-judge" else make_generator(backend, model)  # noqa: E731
    result = preferences.run(spec, policy=tiny_path, seed=2, factory=factory, log=lambda s: None)
    assert result.counts["judge"]["responses rated"] == result.counts["responses"]["kept"] > 0
    judged = [p for p in result.pairs if p["source"] != "if_on_policy"]
    assert judged and all(p["chosen_mean"] > p["rejected_mean"] for p in judged)
    assert {p["chosen_model"] for p in judged} <= {"tiny-llama", "policy"}
    # + the policy's own if_short replies that break their constraint (a random tiny model: most)
    on_policy = [p for p in result.pairs if p["source"] == "if_on_policy"]
    made = result.counts["constraint pairs"]
    assert made["prompts"] == 4
    assert len(on_policy) == made["pairs"] == 4 - made.get("kept the constraint already", 0)
    assert on_policy
    assert all(verifiers.verify("ifeval", p["chosen"][0]["content"], p["ground_truth"]) for p in on_policy)
    assert "constraint pairs" in set(result.counts_table()["step"].str[3:])
    base = datasets.Dataset.from_list(loader.clean_rows("preferences", [
        {"id": "x", "prompt": USER, "chosen": [{"role": "assistant", "content": "a"}],
         "rejected": [{"role": "assistant", "content": "b"}], "source": "s"}], "t")[0])
    combined = preferences.append_pairs(base, result)
    assert len(combined) == 1 + len(result.pairs) and combined.column_names == base.column_names
    paths = preferences.save(result, tmp_path)
    lines = paths["preferences"].read_text().splitlines()
    assert len(lines) == len(result.pairs) and "chosen_model" in json.loads(lines[0])
    reread = loader.load_preferences(SourceParams(path=str(paths["preferences"])))
    assert len(reread.dataset) == len(result.pairs)
    saved = json.loads(paths["counts"].read_text())["counts"]
    assert saved["binarization"]["pairs"] + saved["constraint pairs"]["pairs"] == len(result.pairs)
    table = result.responses
    if_rows = table[table["domain"] == "precise_if"]
    assert if_rows["verified"].notna().all()
    assert table.loc[table["domain"] != "precise_if", "verified"].isna().all()


def test_cli_synthesize_on_the_tiny_model_finishes_and_counts_when_no_rating_parses(tmp_path, capsys):
    """Smoke params: a random tiny model writes, answers and judges; its ratings never parse, and the
    pipeline still finishes, writes its files and reports every step's counts."""
    out = tmp_path / "synth"
    assert main(["synthesize", "--params", "params/smoke.yaml", "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "the start model tiny-llama stands in" in shown and "binarization" in shown
    for name in ("preferences.jsonl", "prompts.jsonl", "counts.json", "rlvr_if.jsonl", "responses.jsonl"):
        assert (out / name).is_file()
    c = json.loads((out / "counts.json").read_text())["counts"]
    assert list(c) == [s for s in preferences.STEPS if s != "constraint pairs"]  # constraint_pairs: 0
    assert c["personas"]["loaded"] == 4 and c["prompts"]["requests"] == 6
    assert c["responses"]["requested"] == 2 * c["prompt selection"]["selected"] > 0  # tiny-llama + the policy
    assert c["judge"]["responses rated"] == 0 and c["judge"]["requests"] == c["responses"]["kept"] > 0
    assert c["judge"]["unparseable after 2 attempts (skipped)"] == c["judge"]["requests"]  # 1 retry each
    assert c["binarization"]["pairs"] == 0 and (out / "preferences.jsonl").read_text() == ""
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert len(prompts) == c["prompt selection"]["selected"]
    assert main(["synthesize", "--params", "params/smoke.yaml", "--out", str(out),
                 "--set", "synthesis.enabled=false"]) == 1
    assert "synthesis.enabled is false" in capsys.readouterr().err
