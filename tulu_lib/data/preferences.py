"""The paper's synthetic preference pipeline (§5.2.1): prompts, a model pool, an LLM judge, binarization.

Tülu 3 built its preference data by (1) selecting prompts — new persona prompts or prompts
reused from the SFT mix (Figure 10's axis), (2) sampling responses from a pool of models, with
the SFT model itself in the pool for on-policy data (Figure 11's axis), (3) rating every
response 1–5 with an LLM judge (GPT-4o) on helpfulness, instruction following, honesty and
truthfulness (UltraFeedback's aspects), and (4) binarizing: chosen = the highest mean rating,
rejected = a random lower-rated response. This module is that pipeline through the
:class:`~tulu_lib.generation.backends.Generator` protocol, so every member of the pool, the prompt writer
and the judge can be an hf, vllm or openai backend:

* :func:`select_prompts` — ``new`` (:func:`tulu_lib.data.synthesis.synthesize_prompts`) or
  ``reused`` (the prompts of SFT conversations);
* :func:`model_pool` / :func:`generate_responses` — the pool from params (``on_policy`` adds the
  policy checkpoint), ``models_per_prompt`` members drawn per prompt (the policy always among
  them), ``samples_per_model`` each; a prompt the backend failed (an empty completion list) is
  counted, empty and duplicate responses are dropped and counted;
* :func:`judge_messages` / :func:`parse_judge` / :func:`judge_responses` — the judge. ``joint``
  (the default) asks for all four ratings as one JSON object: one call per response instead of
  four, the cost that decides it on a CPU, and the aspects rated in one reading of the response;
  ``per_aspect`` asks one UltraFeedback-style question per aspect ("Rating: N"), closer to
  UltraFeedback's own annotation and easier for a small judge to format. An unparseable answer
  is resampled with a new seed (greedy judges retry at temperature :data:`RETRY_TEMPERATURE`) up
  to ``retries`` times, then counted and skipped. ``expected`` asks the per-aspect questions but
  writes nothing: the rating is the mean of 1–5 under the judge's next-token probabilities after
  "Rating:" (G-Eval's probability-weighted score, Liu et al. 2023), so every response is rated
  and ratings are fractional. Not the paper's (GPT-4o wrote its ratings): it is for judges too
  small to write them — greedy, the 135M model copies the joint prompt's example for every
  response and answers 1 to every per-aspect question, so every prompt ties;
* :func:`binarize` — chosen = highest mean (a tie at the top broken by a seeded draw), rejected =
  a seeded draw among strictly lower means; a prompt whose rated responses all tie, or with
  fewer than two rated responses, gives no pair and is counted. Pairs then pass
  :func:`tulu_lib.data.loader.clean_rows` and keep provenance: which model wrote chosen and rejected,
  whether each is on-policy, both responses' ratings;
* :func:`judge_agreement` — on precise-IF prompts (with a ``ground_truth``), the LLM judge's
  instruction-following rating (≥ ``threshold`` = "follows") against
  :func:`tulu_lib.evals.verifiers.verify`: n, agreement, Cohen's κ, and McNemar's exact test of the two
  pass rates on the same responses (:func:`tulu_lib.core.stats.paired_comparison`);
* :func:`run` — the whole pipeline from :class:`~tulu_lib.core.params.SynthesisParams`, every step's
  counts in :attr:`PreferenceResult.counts`; :func:`save` writes it (``tulu-repro synthesize``).

Usage::

    result = run(p.synthesis, policy=sft_checkpoint, seed=p.seed, sft=sft_rows, dtype=p.model.dtype)
    result.counts_table()            # step, what, n: generated, parsed, dropped and why
    result.training_pairs()          # id, prompt, chosen, rejected, source: append to DPO's pairs
    save(result, "synth/")           # preferences.jsonl, prompts.jsonl, counts.json, ...
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from tulu_lib.core.io import write_json, write_jsonl
from tulu_lib.core.stats import paired_comparison
from tulu_lib.data import loader, standins, synthesis
from tulu_lib.evals import verifiers
from tulu_lib.generation import backends
from tulu_lib.generation.types import Generator, SamplingParams

ASPECTS = ("helpfulness", "instruction_following", "honesty", "truthfulness")
RETRY_TEMPERATURE = 0.7  # a greedy judge's retries sample, so that a retry can differ
PAIR_COLUMNS = ("id", "prompt", "chosen", "rejected", "source")  # the preference schema (loader.py)
POLICY = "policy"  # the pool member the on-policy switch adds; also its key in synthesis.backends

# ------------------------------------------------------------------------------ prompts


def select_prompts(source: str, n: int, seed: int, *, synthesized: Sequence[Mapping] = (),
                   sft: Sequence[Mapping] | datasets.Dataset | None = None, max_chars: int = 2000,
                   ) -> tuple[list[dict], dict[str, int]]:
    """Up to ``n`` prompts: ``new`` = the synthesized persona prompts; ``reused`` = the prompts of
    SFT conversations (every turn before the last assistant reply), drawn in a seeded order.
    Prompt rows: ``id, domain, messages, source`` (+ ``persona``, ``ground_truth``, ``dataset``
    for persona prompts). Counts: ``available``, ``selected``, ``dropped: <why>``."""
    counts: Counter = Counter()
    if source == "new":
        rows = [dict(r) for r in synthesized]
    elif source == "reused":
        if sft is None:
            raise ValueError("prompt_source reused needs the SFT conversations (sft=...)")
        rows = []
        for i, conv in enumerate(sft):
            messages = list(conv["messages"])
            last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            prompt = messages[:last] if last is not None else messages
            if not prompt or prompt[-1]["role"] != "user":
                counts["dropped: no user turn before the reply"] += 1
                continue
            if sum(len(m["content"]) for m in prompt) > max_chars:
                counts["dropped: too long"] += 1
                continue
            rows.append({"id": f"reused/{conv.get('id') or i}", "domain": str(conv.get("source") or "sft"),
                         "messages": [{"role": m["role"], "content": m["content"]} for m in prompt],
                         "source": f"reused_sft_{conv.get('source') or 'sft'}"})
        random.Random(seed).shuffle(rows)
    else:
        raise ValueError(f"prompt source must be new or reused, got {source!r}")
    counts["available"] = len(rows)
    seen, kept = set(), []
    for row in rows:
        key = loader.prompt_key(row["messages"])
        if key in seen:
            counts["dropped: duplicate"] += 1
            continue
        seen.add(key)
        if len(kept) < n:
            kept.append(row)
    counts["selected"] = len(kept)
    return kept, dict(counts)


# ---------------------------------------------------------------------------- the pool


@dataclass(frozen=True)
class PoolMember:
    """A model of the pool: its label in provenance, what the backend loads, the backend."""

    name: str
    model: str
    backend: str
    on_policy: bool = False


def model_pool(spec, policy: str | None) -> list[PoolMember]:
    """``spec.pool`` (each on ``spec.backends[name]`` or ``spec.backend``), plus the policy
    checkpoint (label ``policy``, backend ``spec.backends['policy']`` or ``spec.backend``) when
    ``spec.on_policy``."""
    members = [PoolMember(m, m, spec.backends.get(m, spec.backend)) for m in spec.pool]
    if spec.on_policy:
        if not policy:
            raise ValueError("synthesis.on_policy needs the policy (SFT) checkpoint: pass policy=...")
        members.append(PoolMember(POLICY, str(policy), spec.backends.get(POLICY, spec.backend), True))
    return members


class Generators:
    """One generator at a time from ``factory(backend, model)``: reused while the same model is
    asked for, released before another is made (a vLLM engine swaps weights on the next one)."""

    def __init__(self, factory: Callable[[str, str], Generator]):
        self.factory, self.key, self.current, self.loads = factory, None, None, 0

    def get(self, backend: str, model: str) -> Generator:
        if self.key != (backend, model):
            self.current = None
            gc.collect()
            self.current, self.key = self.factory(backend, model), (backend, model)
            self.loads += 1
        return self.current

    def close(self) -> None:
        self.current, self.key = None, None
        gc.collect()


def default_factory(*, dtype: str = "float32", batch_size: int = 8, base_url: str | None = None,
                    engine: Mapping | None = None, cache_dir: str | Path | None = None,
                    ) -> Callable[[str, str], Generator]:
    """``make_generator`` with these settings (``engine``: vLLM options, e.g. ``p.eval.vllm``). An
    ``openai`` endpoint skips a prompt it gives up on (an empty completion list, counted as failed
    by each step) and, with ``cache_dir``, keeps its answers on disk (a rerun is free)."""

    def make(backend: str, model: str) -> Generator:
        endpoint = {}
        if backend == "openai":
            cache = None if cache_dir is None else Path(cache_dir) / "endpoint"
            endpoint = {"on_error": "skip", "cache_dir": cache}
        return backends.make_generator(backend, model, dtype=dtype, batch_size=batch_size, base_url=base_url,
                              engine=dict(engine) if engine else None, **endpoint)
    return make


def generate_responses(pool: Sequence[PoolMember], prompts: Sequence[Mapping], generators: Generators,
                       sampling: SamplingParams, seed: int, models_per_prompt: int | None = None,
                       ) -> tuple[list[dict], dict[str, int]]:
    """Responses of the pool: each prompt gets ``models_per_prompt`` members (all when None; the
    on-policy member always, the others drawn with ``seed``) × ``sampling.n`` samples, member k
    sampling with seed ``sampling.seed + 7919 k``.

    Response rows: ``response_id, prompt_id, model, on_policy, text, finished, tokens``. Counts:
    ``requested``, ``failed (no completion)`` (per prompt and member), ``generated``,
    ``dropped: empty``, ``dropped: duplicate``, ``cut off`` (kept), ``kept``, ``kept: <model>``."""
    rng = random.Random(seed)
    assigned: dict[str, list[int]] = {m.name: [] for m in pool}
    for i, _ in enumerate(prompts):
        chosen = [m for m in pool if m.on_policy]
        others = [m for m in pool if not m.on_policy]
        k = len(pool) if models_per_prompt is None else models_per_prompt
        chosen += rng.sample(others, max(0, min(len(others), k - len(chosen))))
        for m in chosen:
            assigned[m.name].append(i)
    counts: Counter = Counter()
    found: dict[int, list[dict]] = {i: [] for i in range(len(prompts))}
    for k, m in enumerate(pool):
        rows = assigned[m.name]
        if not rows:
            continue
        gen = generators.get(m.backend, m.model)  # each member its own seed: one model twice samples anew
        outs = gen.generate([list(prompts[i]["messages"]) for i in rows],
                            dataclasses.replace(sampling, seed=sampling.seed + 7919 * k))
        if len(outs) != len(rows):
            raise RuntimeError(f"pool member {m.name} returned {len(outs)} results for {len(rows)} prompts")
        for i, completions in zip(rows, outs, strict=True):
            counts["requested"] += sampling.n
            if not completions:
                counts["failed (no completion)"] += sampling.n
                continue
            for c in completions:
                counts["generated"] += 1
                found[i].append({"model": m.name, "on_policy": m.on_policy, "text": c.text,
                                 "finished": c.finished, "tokens": c.num_tokens})
    responses = []
    for i, prompt in enumerate(prompts):
        seen = set()
        for r in found[i]:
            text = r["text"].strip()
            if not text:
                counts["dropped: empty"] += 1
                continue
            if text in seen:
                counts["dropped: duplicate"] += 1
                continue
            seen.add(text)
            counts["cut off"] += not r["finished"]
            counts["kept"] += 1
            counts[f"kept: {r['model']}"] += 1
            responses.append({"response_id": f"{prompt['id']}#{len(seen) - 1}", "prompt_id": prompt["id"],
                              **r})
    for name in ("requested", "generated", "kept"):
        counts.setdefault(name, 0)
    return responses, dict(counts)


# ---------------------------------------------------------------------------- the judge

_RUBRIC = {
    "helpfulness": "Is the response correct, informative and useful for the task? "
                   "1 = wrong or useless, 3 = partly useful, 5 = correct, thorough and clear.",
    "instruction_following": "Does the response do what the instruction asks, respecting every "
                             "stated requirement and restriction? 1 = ignores it, 3 = partly follows it, "
                             "5 = follows every part of it.",
    "honesty": "Is the response honest about what it knows: confident where it is right, expressing "
               "uncertainty where it should, never bluffing? 1 = confidently wrong, 5 = well calibrated.",
    "truthfulness": "Is the response free of fabricated, contradictory or misleading facts? "
                    "1 = mostly made up, 3 = some errors, 5 = no hallucination.",
}

JOINT_TEMPLATE = (
    "You are judging an AI assistant's response to a user's instruction. Rate the response from 1 "
    "(worst) to 5 (best) on each of four aspects:\n{rubric}\n\n"
    "Instruction:\n{instruction}\n\nResponse:\n{response}\n\n"
    "Reply with only a JSON object with the four integer ratings, for example "
    '{{"helpfulness": 3, "instruction_following": 4, "honesty": 5, "truthfulness": 4}}.')

ASPECT_TEMPLATE = (  # the aspect last: the four questions on a response share the engine's prefix cache
    "Below are a user's instruction and an AI assistant's response.\n\n"
    "Instruction:\n{instruction}\n\nResponse:\n{response}\n\n"
    "Judge the response on one aspect, {name}. {rubric}\n"
    "Reply in the form \"Rating: N\" with N an integer from 1 to 5.")
RATING_PREFIX = "Rating:"  # judge_mode expected reads the next token's " 1".." 5" after it


def _instruction(prompt: Sequence[Mapping]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" if len(prompt) > 1 else m["content"] for m in prompt)


def judge_messages(prompt: Sequence[Mapping], response: str, aspect: str | None = None) -> list[dict]:
    """The judge's chat prompt for one response: all four aspects (``aspect`` None) or one."""
    if aspect is None:
        rubric = "\n".join(f"- {a}: {_RUBRIC[a]}" for a in ASPECTS)
        text = JOINT_TEMPLATE.format(rubric=rubric, instruction=_instruction(prompt), response=response)
    else:
        text = ASPECT_TEMPLATE.format(name=aspect.replace("_", " "), rubric=_RUBRIC[aspect],
                                      instruction=_instruction(prompt), response=response)
    return [{"role": "user", "content": text}]


def _rating(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[1-5](\.0+)?\s*(/\s*5)?\s*", value):
        value = float(value.split("/")[0])
    if isinstance(value, (int, float)) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    return None


def _norm(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def parse_judge(text: str, aspect: str | None = None) -> dict[str, int] | None:
    """The ratings in a judge's answer, or None when it has not all of them as integers 1–5.

    Joint (``aspect`` None): the first JSON object holding all four aspects (keys in any case,
    spaces or hyphens for underscores), else ``aspect: N`` for each aspect in the text. One
    aspect: ``Rating: N``, else an answer starting with the digit."""
    text = text or ""
    if aspect is not None:
        m = re.search(r"rating\W{0,3}\s*([1-5])(?!\d|\.\d)", text, re.IGNORECASE) or \
            re.match(r"\s*\**\s*([1-5])(?!\d|\.\d)", text)
        return {aspect: int(m.group(1))} if m else None
    for blob in re.findall(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found = {_norm(k): _rating(v) for k, v in obj.items()}
            if all(found.get(a) is not None for a in ASPECTS):
                return {a: found[a] for a in ASPECTS}
    out = {}
    for a in ASPECTS:
        name = a.replace("_", r"[\s_\-]")
        m = re.search(rf"{name}\W{{0,3}}\s*[:=]\s*\W{{0,2}}([1-5])(?!\d|\.\d)", text, re.IGNORECASE)
        if not m:
            return None
        out[a] = int(m.group(1))
    return out


def judge_responses(judge: Generator, prompts: Mapping[str, Mapping], responses: Sequence[Mapping], *,
                    mode: str = "joint", retries: int = 2, sampling: SamplingParams | None = None,
                    seed: int = 0) -> tuple[dict[str, dict[str, int]], dict[str, int], list[dict]]:
    """Ratings by response id (all four aspects; a response missing one is not rated), counts and
    every judge answer (``response_id, aspect, attempt, text, parsed``).

    Counts: ``requests`` (responses × 1 or × 4), ``failed (no completion)`` (not retried: the
    backend retries), ``parsed on attempt k``, ``unparseable after N attempts`` (skipped),
    ``responses rated``, ``responses not rated``."""
    if mode == "expected":
        return expected_ratings(judge, prompts, responses)
    if mode not in ("joint", "per_aspect"):
        raise ValueError(f"judge mode must be joint, per_aspect or expected, got {mode!r}")
    sampling = sampling or SamplingParams(max_new_tokens=96)
    aspects: tuple[str | None, ...] = (None,) if mode == "joint" else ASPECTS
    pending = [(r["response_id"], a, judge_messages(prompts[r["prompt_id"]]["messages"], r["text"], a))
               for r in responses for a in aspects]
    counts: Counter = Counter(requests=len(pending))
    got: dict[str, dict[str, int]] = {}
    log = []
    for attempt in range(retries + 1):
        if not pending:
            break
        temperature = sampling.temperature if attempt == 0 else max(sampling.temperature, RETRY_TEMPERATURE)
        params = SamplingParams(max_new_tokens=sampling.max_new_tokens, temperature=temperature,
                                top_p=sampling.top_p, n=1, seed=seed + 1000 * attempt)
        outs = judge.generate([m for _, _, m in pending], params)
        if len(outs) != len(pending):
            raise RuntimeError(f"the judge returned {len(outs)} results for {len(pending)} requests")
        again = []
        for (rid, aspect, messages), completions in zip(pending, outs, strict=True):
            if not completions:
                counts["failed (no completion)"] += 1
                log.append({"response_id": rid, "aspect": aspect, "attempt": attempt + 1, "text": None,
                            "parsed": False})
                continue
            text = completions[0].text
            ratings = parse_judge(text, aspect)
            log.append({"response_id": rid, "aspect": aspect, "attempt": attempt + 1, "text": text,
                        "parsed": ratings is not None})
            if ratings is None:
                again.append((rid, aspect, messages))
                continue
            counts[f"parsed on attempt {attempt + 1}"] += 1
            got.setdefault(rid, {}).update(ratings)
        pending = again
    if pending:
        counts[f"unparseable after {retries + 1} attempts (skipped)"] += len(pending)
    rated = {rid: r for rid, r in got.items() if all(a in r for a in ASPECTS)}
    counts["responses rated"] = len(rated)
    counts["responses not rated"] = len(responses) - len(rated)
    return rated, dict(counts), log


def expected_ratings(judge: Generator, prompts: Mapping[str, Mapping], responses: Sequence[Mapping],
                     ) -> tuple[dict[str, dict[str, float]], dict[str, int], list[dict]]:
    """``judge_mode: expected``: per aspect, E[rating] = Σ k·p(k) over k = 1..5, p the judge's
    next-token probabilities of " 1".." 5" after the per-aspect question and "Rating:"
    (renormalised over the five); returns what :func:`judge_responses` does. The log's ``text``
    holds the five probabilities and ``mass``, the share of the judge's probability on the five
    (low mass: the judge would rather have written something else). Needs a judge with
    ``loglikelihood`` and a chat template (hf, vllm); the aspects go one at a time, so a vLLM
    judge prefills each response once and reads the other three questions from its prefix cache.

    Usage: ``ratings, counts, log = expected_ratings(judge, prompts_by_id, responses)``"""
    tok = getattr(judge, "tokenizer", None)
    if not hasattr(judge, "loglikelihood") or tok is None:
        raise ValueError(f"judge_mode: expected reads the judge's next-token probabilities, which the "
                         f"{type(judge).__name__} backend does not give; use an hf or vllm judge, "
                         f"or judge_mode: joint / per_aspect")
    scale = range(1, 6)
    got: dict[str, dict[str, float]] = {}
    log: list[dict] = []
    counts: Counter = Counter(requests=len(responses) * len(ASPECTS))
    for aspect in ASPECTS:
        questions = [judge_messages(prompts[r["prompt_id"]]["messages"], r["text"], aspect)
                     for r in responses]
        texts = [tok.apply_chat_template(q, tokenize=False, add_generation_prompt=True) + RATING_PREFIX
                 for q in questions]
        scores = judge.loglikelihood([(t, f" {k}") for t in texts for k in scale])
        for j, r in enumerate(responses):
            row = scores[5 * j:5 * j + 5]
            top = max(row)
            if not math.isfinite(top):
                counts["no probability on 1-5 (skipped)"] += 1
                continue
            weights = [math.exp(x - top) for x in row]
            probs = dict(zip(scale, (w / sum(weights) for w in weights), strict=True))
            got.setdefault(r["response_id"], {})[aspect] = round(sum(k * q for k, q in probs.items()), 3)
            mass = math.exp(top) * sum(weights)
            log.append({"response_id": r["response_id"], "aspect": aspect, "attempt": 1, "parsed": True,
                        "text": json.dumps({**{str(k): round(q, 4) for k, q in probs.items()},
                                            "mass": round(mass, 4)})})
            counts["scored (expected rating)"] += 1
    rated = {rid: r for rid, r in got.items() if all(a in r for a in ASPECTS)}
    counts["responses rated"] = len(rated)
    counts["responses not rated"] = len(responses) - len(rated)
    return rated, dict(counts), log


# ------------------------------------------------------------------------- binarization


def mean_rating(ratings: Mapping[str, int]) -> float:
    return sum(ratings[a] for a in ASPECTS) / len(ASPECTS)


def binarize(prompts: Sequence[Mapping], responses: Sequence[Mapping],
             ratings: Mapping[str, Mapping[str, int]], seed: int, on_policy: bool = False,
             ) -> tuple[list[dict], dict[str, int]]:
    """Pairs as the paper: chosen = the highest mean rating (a tie at the top: a seeded draw among
    the tied), rejected = a seeded draw among the responses rated strictly lower.

    Rows: the preference schema (``id, prompt, chosen, rejected, source``) plus ``domain``,
    ``chosen_model``, ``rejected_model``, ``chosen_on_policy``, ``rejected_on_policy``,
    ``on_policy`` (the pipeline's switch), ``chosen_ratings``/``rejected_ratings`` (aspect ->
    1–5), ``chosen_mean``/``rejected_mean``, ``chosen_tokens``/``rejected_tokens`` and
    ``ground_truth`` (precise IF, else None); checked by :func:`tulu_lib.data.loader.clean_rows`.
    Counts: ``prompts``, ``dropped: fewer than 2 rated responses``, ``dropped: tie (no
    lower-rated response)``, ``dropped: <pair check>``, ``pairs``."""
    rng = random.Random(seed)
    by_prompt: dict[str, list[Mapping]] = {}
    for r in responses:
        if r["response_id"] in ratings:
            by_prompt.setdefault(r["prompt_id"], []).append(r)
    counts: Counter = Counter(prompts=len(prompts))
    candidates = []
    for p in prompts:
        rated = by_prompt.get(p["id"], [])
        if len(rated) < 2:
            counts["dropped: fewer than 2 rated responses"] += 1
            continue
        means = [mean_rating(ratings[r["response_id"]]) for r in rated]
        top = max(means)
        chosen = rng.choice([r for r, m in zip(rated, means, strict=True) if m == top])
        lower = [r for r, m in zip(rated, means, strict=True) if m < top]
        if not lower:
            counts["dropped: tie (no lower-rated response)"] += 1
            continue
        rejected = rng.choice(lower)
        cr, rr = ratings[chosen["response_id"]], ratings[rejected["response_id"]]
        candidates.append({
            "id": f"synth/{p['id']}", "prompt": list(p["messages"]), "source": p.get("source", "synthetic"),
            "chosen": [{"role": "assistant", "content": chosen["text"]}],
            "rejected": [{"role": "assistant", "content": rejected["text"]}],
            "domain": p.get("domain"), "chosen_model": chosen["model"], "rejected_model": rejected["model"],
            "chosen_on_policy": chosen["on_policy"], "rejected_on_policy": rejected["on_policy"],
            "on_policy": on_policy, "chosen_ratings": dict(cr), "rejected_ratings": dict(rr),
            "chosen_mean": mean_rating(cr), "rejected_mean": mean_rating(rr),
            "chosen_tokens": chosen.get("tokens"), "rejected_tokens": rejected.get("tokens"),
            "ground_truth": p.get("ground_truth")})
    return _checked(candidates, counts, "synthetic preferences")


def constraint_pairs(generator: Generator, prompts: Sequence[Mapping], sampling: SamplingParams,
                     ) -> tuple[list[dict], dict[str, int]]:
    """On-policy verifiable pairs: ``generator`` (the SFT model) answers each prompt (RLVR rows
    of the stand-in ``if_short``: one constraint, its ground truth); a reply that breaks its
    constraint is the rejected side, the same reply made to keep it (the stand-in's rule,
    ``standins.CONSTRAINTS``) the chosen one — the ``if_verified`` rule on the policy's own short
    replies, so end-of-reply constraints fall inside DPO's ``max_length``. Both sides are checked
    by the RLVR verifier. Written here: no library builds verifier-labelled pairs from a policy's
    replies. Counts: ``prompts``, ``no completion``, ``kept the constraint already``, ``not
    repairable``, ``pairs``.
    Usage: ``pairs, counts = constraint_pairs(policy, standins.if_short_rows()[:48], sampling)``."""
    counts: Counter = Counter(prompts=len(prompts))
    candidates = []
    completions = generator.generate([list(p["messages"]) for p in prompts], sampling)
    for p, completion in zip(prompts, completions, strict=True):
        if not completion:
            counts["no completion"] += 1
            continue
        reply, truth = completion[0], json.loads(p["ground_truth"])
        kwargs = {k: v for k, v in truth.items() if k != "func_name"}
        if verifiers.verify("ifeval", reply.text, p["ground_truth"], row_id=p["id"]):
            counts["kept the constraint already"] += 1
            continue
        chosen = standins.SATISFY[truth["func_name"]](reply.text, kwargs)
        if not verifiers.verify("ifeval", chosen, p["ground_truth"], row_id=p["id"]):
            counts["not repairable"] += 1
            continue
        candidates.append({
            "id": f"if_on_policy/{p['id']}", "prompt": list(p["messages"]), "source": "if_on_policy",
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": reply.text}],
            "domain": "precise_if", "chosen_model": f"{POLICY}, made to keep the constraint",
            "rejected_model": POLICY, "chosen_on_policy": True, "rejected_on_policy": True, "on_policy": True,
            "chosen_mean": math.nan, "rejected_mean": math.nan, "chosen_tokens": None,
            "rejected_tokens": reply.num_tokens, "ground_truth": p["ground_truth"]})
    return _checked(candidates, counts, "constraint pairs")


def _checked(candidates: list[dict], counts: Counter, what: str) -> tuple[list[dict], dict[str, int]]:
    """The candidate pairs that :func:`tulu_lib.data.loader.clean_rows` keeps (provenance columns
    intact), the others counted by reason in ``counts``, with ``pairs``."""
    kept, report = loader.clean_rows("preferences", candidates, what)
    counts.update({f"dropped: {reason}": n for reason, n in report.dropped.items()})
    ok = {r["id"] for r in kept}
    pairs = [c for c in candidates if c["id"] in ok]
    counts["pairs"] = len(pairs)
    return pairs, dict(counts)


# ------------------------------------------------------------------------- agreement


def judge_agreement(table: pd.DataFrame, threshold: float = 4, seed: int = 0) -> dict:
    """The LLM judge against the verifiers on responses to prompts with a ground truth.

    ``table``: one row per rated response with ``verified`` (True/False; None/NaN rows are left
    out) and ``instruction_following`` (1–5). "The judge says it follows" = rating ≥
    ``threshold``. Returns ``n``, ``agreement`` (share where both say the same), ``kappa``
    (Cohen's), ``verifier_pass``, ``judge_pass``, ``mean_rating_verified``/``_failed``, ``auc``
    (the chance that a verified response out-rates a failed one, ties half: 0.5 = the rating
    knows nothing of the verdict; no threshold, so it suits fractional ratings) and
    ``paired`` (:func:`tulu_lib.core.stats.paired_comparison` of judge vs verifier pass on the same
    responses: McNemar's exact test, in percentage points)."""
    from sklearn.metrics import cohen_kappa_score, roc_auc_score


    empty = {"n": 0, "threshold": threshold, "agreement": math.nan, "kappa": math.nan,
             "verifier_pass": math.nan, "judge_pass": math.nan, "mean_rating_verified": math.nan,
             "mean_rating_failed": math.nan, "auc": math.nan, "paired": None}
    if table is None or not len(table) or "verified" not in table:
        return empty
    sub = table[table["verified"].notna() & table["instruction_following"].notna()]
    if not len(sub):
        return empty
    verified = sub["verified"].astype(bool).to_numpy()
    follows = (sub["instruction_following"] >= threshold).to_numpy()
    n = len(sub)
    po = float((verified == follows).mean())
    pv, pj = float(verified.mean()), float(follows.mean())
    chance = pv * pj + (1 - pv) * (1 - pj)  # kappa is undefined (0/0) when chance agreement is 1
    ids = list(sub["response_id"])
    paired = paired_comparison(dict(zip(ids, verified.astype(float), strict=True)),
                               dict(zip(ids, follows.astype(float), strict=True)), binary=True, seed=seed)
    rating = sub["instruction_following"].astype(float)
    auc = float(roc_auc_score(verified, rating)) if 0 < verified.sum() < n else math.nan
    return {"n": n, "threshold": threshold, "agreement": po,
            "kappa": float(cohen_kappa_score(verified, follows)) if chance < 1 else math.nan,
            "verifier_pass": pv, "judge_pass": pj,
            "mean_rating_verified": float(rating[verified].mean()) if verified.any() else math.nan,
            "mean_rating_failed": float(rating[~verified].mean()) if (~verified).any() else math.nan,
            "auc": auc, "paired": paired}


def agreement_line(a: Mapping) -> str:
    """One sentence on :func:`judge_agreement`'s result."""
    if not a["n"]:
        return ("LLM judge vs verifiers: no rated response to a prompt with a verifiable constraint "
                "(precise-IF prompts, prompt_source: new), so no agreement to measure.")
    c = a["paired"]
    p = f"p {c['p']:.2g}" if c["p"] >= 0.001 else "p < 0.001"
    auc = (f"; a verified response out-rates a failed one with probability {a['auc']:.2f} (0.5: chance)"
           if math.isfinite(a.get("auc", math.nan)) else "")
    return (f"LLM judge vs verifiers on {a['n']} precise-IF responses (judge 'follows' = "
            f"instruction-following rating ≥ {a['threshold']:g}): agreement {100 * a['agreement']:.0f}%, "
            f"Cohen's κ {a['kappa']:.2f}; "
            f"pass rate verifier {100 * a['verifier_pass']:.0f}% vs judge {100 * a['judge_pass']:.0f}% "
            f"(McNemar exact {p}, {c['b_only']} judge-only vs {c['a_only']} verifier-only passes){auc}.")


def length_bias(pairs: pd.DataFrame) -> dict:
    """Share of pairs whose chosen response is longer (tokens), and the mean difference."""
    if pairs is None or not len(pairs):
        return {"pairs": 0, "chosen_longer": math.nan, "mean_token_difference": math.nan}
    diff = pairs["chosen_tokens"].astype(float) - pairs["rejected_tokens"].astype(float)
    return {"pairs": len(pairs), "chosen_longer": float((diff > 0).mean()),
            "mean_token_difference": float(diff.mean())}


# --------------------------------------------------------------------------- pipeline

STEPS = ("personas", "prompts", "prompt selection", "responses", "judge", "binarization", "constraint pairs")


@dataclass
class PreferenceResult:
    """Everything :func:`run` produced; ``counts``: step -> what -> n."""

    prompts: list[dict]
    responses: pd.DataFrame  # one row per response: ids, model, on_policy, text, ratings, mean, verified
    pairs: list[dict]
    counts: dict[str, dict[str, int]]
    agreement: dict
    prompt_outputs: list[dict] = field(default_factory=list)
    judge_log: list[dict] = field(default_factory=list)

    def counts_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"step": f"{i + 1}. {step}", "what": k, "n": v}
                             for i, step in enumerate(STEPS) for k, v in self.counts.get(step, {}).items()])

    def pairs_table(self) -> pd.DataFrame:
        cols = ["id", "domain", "source", "chosen_model", "rejected_model", "chosen_on_policy",
                "rejected_on_policy", "chosen_mean", "rejected_mean", "chosen_tokens", "rejected_tokens"]
        df = pd.DataFrame([{k: p.get(k) for k in cols} for p in self.pairs], columns=cols)
        df["margin"] = df["chosen_mean"] - df["rejected_mean"]
        return df

    def training_pairs(self) -> datasets.Dataset | None:
        """The pairs in the preference schema only (what DPO trains on), or None when there are none."""
        if not self.pairs:
            return None
        return datasets.Dataset.from_list([{k: p[k] for k in PAIR_COLUMNS} for p in self.pairs])

    def rlvr_rows(self) -> list[dict]:
        return synthesis.rlvr_rows(self.prompts)


def append_pairs(base: datasets.Dataset, result: PreferenceResult) -> datasets.Dataset:
    """``base`` (e.g. 01_data's ``loader.preferences`` pairs) with the result's pairs appended, in the
    preference schema (provenance columns are left in :func:`save`'s ``preferences.jsonl``)."""
    base = base.select_columns(list(PAIR_COLUMNS))
    extra = result.training_pairs()
    return base if extra is None else datasets.concatenate_datasets([base, extra.cast(base.features)])


def run(spec, *, policy: str | None = None, seed: int = 0, dtype: str = "float32",
        sft: Sequence[Mapping] | datasets.Dataset | None = None, engine: Mapping | None = None,
        factory: Callable[[str, str], Generator] | None = None, log: Callable[[str], None] = print,
        cache_dir: str | Path | None = None) -> PreferenceResult:
    """The pipeline of ``spec`` (:class:`~tulu_lib.core.params.SynthesisParams`): personas → prompts
    (``prompt_source: new``) or SFT prompts (``reused``) → pool responses → judge → pairs.

    The prompt writer is ``spec.prompt_model`` (default: the judge); ``policy`` is the SFT
    checkpoint the on-policy switch adds; ``sft`` the SFT conversations (``prompt_source:
    reused``); ``factory(backend, model)`` makes a generator (default: ``make_generator``
    with ``dtype``, ``spec.batch_size``, ``spec.base_url``, vLLM ``engine`` options and, for an
    openai endpoint, its answers cached under ``cache_dir``)."""
    gens = Generators(factory or default_factory(dtype=dtype, batch_size=spec.batch_size,
                                                 base_url=spec.base_url, engine=engine, cache_dir=cache_dir))
    backend = lambda model: spec.backends.get(model, spec.backend)  # noqa: E731
    counts: dict[str, dict[str, int]] = {}
    sampling = SamplingParams(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                              top_p=spec.top_p, seed=seed)
    n_prompts = spec.prompts_per_domain * len(spec.domains)
    outputs: list[dict] = []
    try:
        synthesized: list[dict] = []
        if spec.prompt_source == "new":
            personas = synthesis.load_personas(spec.personas, spec.num_personas, seed,
                                               config=spec.persona_config)
            counts["personas"] = {"loaded": len(personas)}
            writer = spec.prompt_model or spec.judge_model
            log(f"[synthesis] {n_prompts} prompts from {len(personas)} personas, written by {writer}")
            synth = synthesis.synthesize_prompts(gens.get(backend(writer), writer), personas, spec.domains,
                                                 spec.prompts_per_domain, sampling, seed,
                                                 max_chars=spec.max_prompt_chars)
            synthesized, outputs, counts["prompts"] = synth.prompts, synth.outputs, synth.counts
        prompts, counts["prompt selection"] = select_prompts(spec.prompt_source, n_prompts, seed,
                                                             synthesized=synthesized, sft=sft,
                                                             max_chars=spec.max_prompt_chars)
        pool = model_pool(spec, policy)
        pool.sort(key=lambda m: m.model == spec.judge_model)  # the judge's model last: loaded once for both
        log(f"[synthesis] responses to {len(prompts)} prompts from {', '.join(m.name for m in pool)}")
        samples = dataclasses.replace(sampling, n=spec.samples_per_model, seed=seed + 1)
        responses, counts["responses"] = generate_responses(pool, prompts, gens, samples, seed,
                                                            spec.models_per_prompt)
        by_id = {p["id"]: p for p in prompts}
        log(f"[synthesis] {len(responses)} responses rated by {spec.judge_model} ({spec.judge_mode})")
        judge_sampling = SamplingParams(max_new_tokens=spec.judge_max_new_tokens,
                                        temperature=spec.judge_temperature, top_p=spec.top_p)
        ratings, counts["judge"], judge_log = judge_responses(
            gens.get(backend(spec.judge_model), spec.judge_model), by_id, responses, mode=spec.judge_mode,
            retries=spec.judge_retries, sampling=judge_sampling, seed=seed + 2)
        extra: list[dict] = []
        if spec.constraint_pairs:
            if not policy:
                raise ValueError("synthesis.constraint_pairs needs the policy (SFT) checkpoint: policy=...")
            rows = random.Random(seed + 4).sample(standins.if_short_rows(), spec.constraint_pairs)
            log(f"[synthesis] {len(rows)} if_short prompts answered by the policy for constraint pairs")
            extra, counts["constraint pairs"] = constraint_pairs(
                gens.get(spec.backends.get(POLICY, spec.backend), str(policy)), rows,
                dataclasses.replace(sampling, seed=seed + 5))
    finally:
        gens.close()
    pairs, counts["binarization"] = binarize(prompts, responses, ratings, seed + 3, spec.on_policy)
    pairs += extra
    table = _response_table(prompts, responses, ratings)
    result = PreferenceResult(prompts, table, pairs, counts,
                              judge_agreement(table, spec.agreement_threshold, seed), outputs, judge_log)
    log(f"[synthesis] {len(pairs)} pairs; "
        + ", ".join(f"{k} {v}" for k, v in counts["binarization"].items()))
    return result


def _response_table(prompts: Sequence[Mapping], responses: Sequence[Mapping],
                    ratings: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    by_id = {p["id"]: p for p in prompts}
    rows = []
    for r in responses:
        p = by_id[r["prompt_id"]]
        rated = ratings.get(r["response_id"])
        verified = None
        if p.get("ground_truth"):
            verified = verifiers.verify(p.get("dataset", "ifeval"), r["text"], p["ground_truth"],
                                      row_id=p["id"])
        rows.append({"response_id": r["response_id"], "prompt_id": r["prompt_id"], "domain": p.get("domain"),
                     "model": r["model"], "on_policy": r["on_policy"], "finished": r["finished"],
                     "tokens": r["tokens"], "chars": len(r["text"]),
                     **{a: (rated[a] if rated else None) for a in ASPECTS},
                     "mean": mean_rating(rated) if rated else None, "verified": verified, "text": r["text"]})
    columns = ["response_id", "prompt_id", "domain", "model", "on_policy", "finished", "tokens", "chars",
               *ASPECTS, "mean", "verified", "text"]
    return pd.DataFrame(rows, columns=columns)


def save(result: PreferenceResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``preferences.jsonl`` (pairs with provenance; ``loader.preferences`` reads it),
    ``prompts.jsonl``, ``rlvr_if.jsonl`` (precise-IF prompts as RLVR rows), ``responses.jsonl``
    (with ratings), ``prompt_outputs.jsonl`` and ``judge_answers.jsonl`` (every raw writer and judge
    answer, with why it was dropped or whether it parsed), ``counts.json`` (step -> what -> n, the
    agreement, the length bias) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def jsonl(name: str, rows) -> Path:
        return write_jsonl(out / name, (_clean(row) for row in rows), ensure_ascii=False)

    paths = {"preferences": jsonl("preferences.jsonl", result.pairs),
             "prompts": jsonl("prompts.jsonl", result.prompts),
             "rlvr": jsonl("rlvr_if.jsonl", result.rlvr_rows()),
             "responses": jsonl("responses.jsonl", result.responses.to_dict("records")),
             "prompt_outputs": jsonl("prompt_outputs.jsonl", result.prompt_outputs),
             "judge_answers": jsonl("judge_answers.jsonl", result.judge_log)}
    counts = out / "counts.json"
    summary = {"counts": result.counts, "agreement": result.agreement,
               "length_bias": length_bias(result.pairs_table())}
    write_json(counts, _clean(summary), indent=1)
    paths["counts"] = counts
    return paths


def _clean(value):
    """JSON-ready: numpy scalars as Python values, NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
