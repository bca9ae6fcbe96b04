"""RL with verifiable rewards (paper §6): what PPO (:mod:`tulu_lib.train.ppo`) and GRPO
(:mod:`tulu_lib.train.grpo`) share — the verifiable reward, the recorded training replies, the
prompts that fit, and the stage's checkpoint selection and readings.

The reward is the paper's: α (10) when ``verifiers.verify`` confirms the reply, else 0, and
the non-EOS penalty (−10) for a reply cut off before its end-of-sequence token (``null``
turns that rule off, as open-instruct's ``non_stop_penalty`` switch does). There is
one reward function per verifiable domain (gsm8k, MATH, ifeval); each scores only its own
rows (``None`` elsewhere), so TRL logs the mean verifiable reward per domain, and each
logs its domain's response length, truncated fraction and verified fraction (replies that
earned α) through TRL's ``log_metric``, so a reward change splits into "finished more often"
and "solved more often". The trainer adds the KL to the reference per domain.
The KL coefficient β comes from params (the paper: 0.05 for 8B; TRL's default is 0). The
paper trained with PPO and a value model (the 8B/70B params: ``rlvr.algorithm: ppo``); GRPO is
the ``cpu`` default's algorithm.

Usage::

    held_out, train_rows = split_held_out(prompts, params.rlvr.held_out_per_domain)
    scores = verifiable_accuracy(generator, held_out_rows)
    table = score_checkpoints(lambda path: generator_for(params, path), out_dir, held_out_rows)
    best = best_checkpoint(table, params.rlvr.select_on)   # the paper: best on MATH + IFEval
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from tulu_lib.core import checkpoints as ckpt
from tulu_lib.core import stats
from tulu_lib.core.hashing import selection_benchmarks
from tulu_lib.core.params import LaunchParams, Params, RLVRParams
from tulu_lib.core.stats import two_sample_comparison, verdict
from tulu_lib.evals import verifiers
from tulu_lib.evals.suite import average_score, evaluate_model
from tulu_lib.generation.types import Generator, SamplingParams

DOMAINS = ("gsm8k", "MATH", "ifeval")


def _completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return completion[-1]["content"]
    return completion


class DomainReward:
    """TRL reward function for one domain: α / 0 / non-EOS penalty, ``None`` off-domain.

    With ``record`` (a JSONL path), every scored reply appends one line: the optimizer step,
    domain, reward, verified and truncated (:func:`rollout_records` reads them back).
    """

    def __init__(self, domain: str, alpha: float, non_eos_penalty: float | None,
                 eos_token_ids: Sequence[int], rules: str = "corrected", record: Path | None = None):
        self.domain, self.alpha, self.penalty, self.rules = domain, alpha, non_eos_penalty, rules
        self.eos, self.record = set(eos_token_ids), record
        self.__name__ = domain  # TRL names the logged metric rewards/<name>/mean

    def __call__(self, prompts, completions, completion_ids, dataset, ground_truth, id=None,
                 log_metric=None, trainer_state=None, **_) -> list[float | None]:
        out: list[float | None] = []
        lengths, truncated, earned = [], [], []
        for i, (completion, ids, domain, truth) in enumerate(
                zip(completions, completion_ids, dataset, ground_truth, strict=True)):
            if domain != self.domain:
                out.append(None)
                continue
            finished = bool(ids) and ids[-1] in self.eos
            value = verifiers.reward(domain, _completion_text(completion), truth,
                                   finished=finished or self.penalty is None,
                                   alpha=self.alpha, non_eos_penalty=self.penalty or 0.0,
                                   row_id=id[i] if id else None, rules=self.rules)
            out.append(value)
            lengths.append(len(ids))
            truncated.append(0.0 if finished else 1.0)
            earned.append(1.0 if value == self.alpha else 0.0)
        if log_metric and lengths:
            log_metric(f"{self.domain}/response_length", sum(lengths) / len(lengths))
            log_metric(f"{self.domain}/truncated_fraction", sum(truncated) / len(truncated))
            log_metric(f"{self.domain}/verified_fraction", sum(earned) / len(earned))
        if self.record and lengths:
            step = trainer_state.global_step if trainer_state is not None else -1
            lines = [json.dumps({"step": step, "domain": self.domain, "reward": r, "verified": v,
                                 "truncated": t}) + "\n"
                     for r, v, t in zip((x for x in out if x is not None), earned, truncated, strict=True)]
            with open(self.record, "a") as f:  # whole lines, one write
                f.write("".join(lines))
        return out


def reward_functions(params: RLVRParams, eos_token_ids: Sequence[int],
                     record: Path | None = None) -> list[DomainReward]:
    return [DomainReward(d, params.alpha, params.non_eos_penalty, eos_token_ids, params.verifier_rules,
                         record) for d in DOMAINS]


ROLLOUTS = "rollout_rewards.rank{rank}.jsonl"  # in the run's output folder, one file per process


def _keep_records_until(output_dir: Path, step: int) -> None:
    """On resume from the checkpoint at ``step``: drop recorded replies of later steps (they are
    generated again) and a line cut off mid-write."""
    for path in output_dir.glob(ROLLOUTS.format(rank="*")):
        kept = []
        for line in path.read_text().splitlines(keepends=True):
            try:
                if line.endswith("\n") and json.loads(line)["step"] < step:
                    kept.append(line)
            except (ValueError, KeyError):
                pass
        path.write_text("".join(kept))


def rollout_record(output_dir: Path, last: str | None) -> Path:
    """This process's reply record in ``output_dir`` (:class:`DomainReward`), its lines of steps
    from the checkpoint ``last`` on dropped (a resume generates them again)."""
    from accelerate import PartialState

    output_dir.mkdir(parents=True, exist_ok=True)
    if PartialState().is_main_process:
        _keep_records_until(output_dir, ckpt.step(last) if last else 0)
    PartialState().wait_for_everyone()
    return output_dir / ROLLOUTS.format(rank=PartialState().process_index)


def rollout_records(output_dir: str | Path):
    """Every training reply's step, domain, reward, verified, truncated (all processes)."""

    rows = [json.loads(line) for path in sorted(Path(output_dir).glob(ROLLOUTS.format(rank="*")))
            for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["step", "domain", "reward", "verified", "truncated"])


@dataclass(frozen=True)
class Schedule:
    """How long RLVR trains, in the release's arithmetic (:func:`release_schedule`)."""

    episodes: int  # total_episodes: replies to sample in all
    replies_per_rollout: int  # per-device batch x accumulation x processes (rollout batch x samples)
    epochs_per_rollout: int  # PPO epochs (GRPO: 1)
    rollouts: int
    optimizer_steps: int  # what the learning-rate schedule runs over
    warmup_steps: int


def release_schedule(episodes: int, replies_per_rollout: int, epochs_per_rollout: int,
                     warmup_ratio: float) -> Schedule:
    """open-instruct's RLVR schedule (``ppo_vllm_thread_ray_gtrl.py`` at 9b39f557):
    ``num_training_steps = total_episodes // (rollout_batch_size * number_samples_per_prompt)``
    rollouts (line 326), the scheduler over ``num_training_steps * num_train_epochs (1) * num_epochs``
    optimizer steps (line 609; one mini-batch per rollout, as the Tülu 3 commands have it) with
    ``int(steps * warmup_ratio)`` warm-up steps (lines 611-612), linear decay to 0 (transformers'
    ``get_scheduler``, which the release calls)."""
    rollouts = episodes // replies_per_rollout
    if rollouts < 1:
        raise ValueError(f"rlvr.total_episodes ({episodes}) is fewer than one rollout's replies "
                         f"({replies_per_rollout}: per-device batch x accumulation x processes)")
    steps = rollouts * epochs_per_rollout
    warmup = int(steps * warmup_ratio)
    return Schedule(episodes, replies_per_rollout, epochs_per_rollout, rollouts, steps, warmup)


def schedule(params: RLVRParams, launch: LaunchParams | None = None) -> Schedule | None:
    """The release's schedule for ``params`` (None without ``total_episodes``): replies per rollout
    from the per-device batch, accumulation steps and ``launch``'s processes; PPO's epochs."""
    if params.total_episodes is None:
        return None
    world = launch.num_machines * launch.num_processes if launch else 1
    replies = params.optim.per_device_batch_size * params.optim.gradient_accumulation_steps * world
    epochs = params.ppo.ppo_epochs if params.algorithm == "ppo" else 1
    return release_schedule(params.total_episodes, replies, epochs, params.optim.warmup_ratio)


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id generation stops at: the model's ``generation_config.eos_token_id`` (an int or a
    list, e.g. Llama 3's ``<|eot_id|>`` and ``<|end_of_text|>``) plus the tokenizer's EOS."""
    config = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if config is None else [config] if isinstance(config, int) else list(config)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def fit_prompts(rows: datasets.Dataset, tokenizer, max_prompt_tokens: int) -> tuple[datasets.Dataset, int]:
    """Drop RLVR prompts whose chat-formatted length exceeds ``max_prompt_tokens``; return the
    kept rows and how many were dropped.

    open-instruct drops prompts over ``max_prompt_token_length`` (2048 for Tülu 3) instead of
    cutting them; TRL's GRPO keeps whole prompts, and one 6,298-token IFEval prompt of the
    stand-in mix took a CPU run (8 replies of 128 tokens) from 3 GB to an OOM kill at 24 GB.
    Usage: ``kept, dropped = fit_prompts(rows, tokenizer, optim.max_length - max_new_tokens)``.
    """
    lengths = [len(tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)) for m in rows["messages"]]
    keep = [i for i, n in enumerate(lengths) if n <= max_prompt_tokens]
    if not keep:
        raise ValueError(f"every RLVR prompt is longer than {max_prompt_tokens} tokens (shortest "
                         f"{min(lengths)}): raise rlvr.optim.max_length or lower rlvr.max_new_tokens")
    return rows.select(keep), len(rows) - len(keep)


def to_grpo_dataset(rows: datasets.Dataset) -> datasets.Dataset:
    """RLVR rows (messages, ground_truth, dataset) → GRPO's conversational ``prompt`` column."""
    return rows.map(lambda r: {"prompt": r["messages"]}, remove_columns=["messages"])


def verifiable_accuracy(generator: Generator, rows: datasets.Dataset, max_new_tokens: int = 256,
                        ) -> list[dict]:
    """Greedy accuracy per domain on RLVR-format rows, with n and a 95% interval."""
    outs = generator.generate(rows["messages"], SamplingParams(max_new_tokens=max_new_tokens))
    hits: dict[str, list[bool]] = {}
    for row, (completion,) in zip(rows, outs, strict=True):
        hits.setdefault(row["dataset"], []).append(
            verifiers.verify(row["dataset"], completion.text, row["ground_truth"]))
    table = []
    for domain, h in sorted(hits.items()):
        low, high = stats.wilson_interval(sum(h), len(h))
        table.append({"domain": domain, "n": len(h), "accuracy": sum(h) / len(h),
                      "ci95_low": low, "ci95_high": high})
    return table


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """The whole ``checkpoint-<step>`` folders a run saved, by step (:mod:`tulu_lib.core.checkpoints`)."""
    found = [(ckpt.step(p), p) for p in Path(output_dir).glob("checkpoint-*")
             if ckpt.step(p) is not None and ckpt.complete(p)]
    return sorted(found)


def score_checkpoints(generator_for: Callable[[str], Generator], output_dir: str | Path,
                      held_out: datasets.Dataset, max_new_tokens: int = 256):
    """Held-out verifiable accuracy of every saved checkpoint: one row per (step, domain)."""

    rows = []
    for step, path in checkpoints(output_dir):
        for r in verifiable_accuracy(generator_for(str(path)), held_out, max_new_tokens):
            rows.append({"step": step, "checkpoint": str(path), **r})
    return pd.DataFrame(rows)


def eval_checkpoints(p: Params, output_dir: str | Path, cache_root: str | Path):
    """Every saved checkpoint scored on the evaluation benchmarks behind ``rlvr.select_on``
    (:func:`tulu_lib.core.hashing.selection_benchmarks`: MATH → ``math`` or ``math500``) exactly as
    05_eval scores them (:func:`tulu_lib.evals.suite.evaluate_model`: the same items, prompts,
    scorer and item cache, so 05_eval reuses the kept checkpoint's items): one row per (step,
    domain) in :func:`score_checkpoints`' columns, plus the benchmark. The paper selected this way,
    on the evaluations it reports: the chosen checkpoint's scores are not held out."""
    chosen = selection_benchmarks(p.to_dict())
    requested = {name: p.eval.benchmarks[name] for name in chosen.values()}
    rows = []
    for step, path in checkpoints(output_dir):
        results = {r["benchmark"]: r for r in evaluate_model(str(path), p, cache_root, benchmarks=requested)}
        for domain, name in chosen.items():
            r = results[name]
            rows.append({"step": step, "checkpoint": str(path), "domain": domain, "benchmark": name,
                         "n": r["n"], "accuracy": r["score"] / 100, "ci95_low": r["ci95_low"] / 100,
                         "ci95_high": r["ci95_high"] / 100})
    return pd.DataFrame(rows)


def selection_scores(p: Params, output_dir: str | Path, held_out_scores, cache_root: str | Path):
    """The table the kept checkpoint is chosen from, by ``rlvr.select_with``: :func:`eval_checkpoints`
    (``eval``, the paper's way) or the held-out scores already computed (``held_out``, cheaper: no
    evaluation items, and not the reported ones); then :func:`best_checkpoint` on it."""
    if p.rlvr.select_with == "eval":
        return eval_checkpoints(p, output_dir, cache_root)
    return held_out_scores.assign(benchmark="held-out training prompts")


def best_checkpoint(scores, select_on: Sequence[str]) -> tuple[int, Path]:
    """The step (and folder) with the highest mean accuracy over ``select_on`` (held-out prompts or
    evaluation benchmarks: :func:`selection_scores`).

    The paper evaluated every 100 steps and kept the best checkpoint on MATH + IFEval; ties
    go to the earliest step (the least drift from the starting model).
    """
    chosen = scores[scores["domain"].isin(select_on)]
    if chosen.empty:
        raise ValueError(f"no scores for {list(select_on)}: domains scored are "
                         f"{sorted(scores['domain'].unique())}")
    mean = chosen.groupby("step")["accuracy"].mean()
    step = int(mean[mean == mean.max()].index.min())
    return step, Path(scores.loc[scores["step"] == step, "checkpoint"].iloc[0])


def run_summary(runs: dict):
    """Per run (label → TRL log DataFrame): mean verifiable reward per domain and KL, last half of steps."""

    rows = []
    for label, logs in runs.items():
        last = logs[logs["step"] > logs["step"].max() / 2] if len(logs) > 1 else logs
        row = {"run": label, "steps": int(logs["step"].max())}
        for column in sorted(c for c in logs if c.startswith("rewards/") and c.endswith("/mean")):
            row[f"reward {column.split('/')[1]}"] = last[column].mean()
        row["reward (all)"], row["KL"] = last["reward"].mean(), last.get("kl", pd.Series(dtype=float)).mean()
        rows.append(row)
    return pd.DataFrame(rows)


def held_out_average(table) -> tuple[float, float, float]:
    """Mean held-out accuracy over domains (percent) and its 95% interval, from
    :func:`verifiable_accuracy` rows (the paper's unweighted average, as in evaluation)."""

    a = average_score([{"score": 100 * r["accuracy"], "ci95_low": 100 * r["ci95_low"],
                        "ci95_high": 100 * r["ci95_high"]} for r in table.to_dict("records")])
    return a["average"], a["ci95_low"], a["ci95_high"]


def reward_change(records, quantity: str = "reward", seed: int = 0) -> dict:
    """``quantity`` (reward, verified or truncated) of the training replies of the first quarter of
    steps against the last quarter: :func:`tulu_lib.core.stats.two_sample_comparison` (different
    prompts and replies: unpaired), in reward units for the reward, in pp for the fractions."""

    steps = sorted(records["step"].unique())
    k = max(1, len(steps) // 4)
    first, last = (records[records["step"].isin(span)][quantity] for span in (steps[:k], steps[-k:]))
    out = two_sample_comparison(first.to_numpy(), last.to_numpy(), seed=seed,
                                scale=1.0 if quantity == "reward" else 100.0)
    return {**out, "quantity": quantity, "steps_a": f"{steps[0]}-{steps[k - 1]}" if steps else "",
            "steps_b": f"{steps[-k]}-{steps[-1]}" if steps else ""}


def reward_reading(change: dict, held: dict) -> str:
    """Figure 19's reading: did the training reward rise (:func:`reward_change` for reward,
    verified, truncated), and held-out accuracy before/after (mean, low, high)."""

    def part(c, unit):
        p = f"p {c['p']:.2g}" if c["p"] >= 0.001 else "p < 0.001"
        return (f"{c['mean_a']:.1f} → {c['mean_b']:.1f}{unit} ({c['diff']:+.1f} [{c['ci_low']:.1f}, "
                f"{c['ci_high']:.1f}], {p}, {c['n_a']} vs {c['n_b']} replies, detectable ≥ {c['mde']:.1f})")

    r = change["reward"]
    head = verdict(r, +1, None) if r.get("n") else "Untested (no recorded replies)"
    shown = "; ".join([f"mean reward {part(r, '')}", f"verified {part(change['verified'], '%')}",
                       f"cut off {part(change['truncated'], '%')}"]) if r.get("n") else "no replies recorded"
    return (f"{head}. Paper: RLVR raises the verifiable reward on the training prompts. Ours (small "
            f"scale), first vs last quarter of steps ({r['test']}): {shown}. Held-out accuracy (mean "
            "over domains, 95% interval): "
            + ", ".join(f"{w} {m:.1f} [{lo:.1f}, {hi:.1f}]" for w, (m, lo, hi) in held.items()) + ".")


def logs_table(log_history: list[dict]):
    """The steps of a run's TRL log history (the rows with a loss or a KL), as a table."""

    return pd.DataFrame([h for h in log_history if "loss" in h or "kl" in h])


def needs_reward_model(r: RLVRParams) -> bool:
    """Whether the stage's run or one of its ablation arms needs a reward model: PPO's value model
    from one, its score in the reward, or an ablation arm that trains either."""
    value_from_rm = r.ppo.value_model == "reward_model" or bool(r.ppo.reward_model_multiplier)
    return ((r.algorithm == "ppo" and value_from_rm) or r.ablate_value_init
            or bool(r.ablate_reward_model_score) or (r.compare_algorithms and value_from_rm))


def with_reward_model(p: Params, path: str | Path) -> Params:
    """``p`` with ``rlvr.ppo.reward_model`` set to ``path`` (a reward model trained for the run)."""
    return dataclasses.replace(p, rlvr=dataclasses.replace(
        p.rlvr, ppo=dataclasses.replace(p.rlvr.ppo, reward_model=str(path))))


def split_held_out(prompts: datasets.Dataset, per_domain: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The first ``per_domain`` prompts of each domain (``dataset`` column), kept out of training
    and scored before and after RLVR, and the rest, which RLVR trains on."""
    held, train, seen = [], [], {}
    for i, domain in enumerate(prompts["dataset"]):
        seen[domain] = seen.get(domain, 0) + 1
        (held if seen[domain] <= per_domain else train).append(i)
    return prompts.select(held), prompts.select(train)


def final_kl(logs) -> float:
    """The last logged KL of a run (NaN at β = 0, where TRL computes none)."""
    kl = logs["kl"].dropna() if "kl" in logs else ()
    return float(kl.iloc[-1]) if len(kl) else math.nan


def kl_reading(summary) -> str:
    """Figure 20's finding against ours: from SFT, more KL at the same β (reward about the same)."""
    by = summary.set_index("run")
    sft, dpo = by.loc["from SFT"], by.loc["from DPO"]
    verdict = ("Agrees" if sft["KL"] > dpo["KL"] else "Does not agree" if sft["KL"] < dpo["KL"]
               else "No difference")
    return (f"{verdict} with the paper (small scale): KL from SFT "
            f"{sft['KL']:.2e} vs from DPO {dpo['KL']:.2e}; mean reward {sft['reward (all)']:.2f} vs "
            f"{dpo['reward (all)']:.2f}.")
