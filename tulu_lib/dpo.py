"""Preference tuning (paper §5, Table 20) on TRL, with an on-disk reference log-prob cache.

``dpo.loss`` picks the algorithm, each mapped onto a TRL loss (see :data:`TRL_LOSS`):

* ``dpo`` — DPO (Rafailov et al. 2023): TRL ``DPOTrainer``, ``loss_type="sigmoid"``;
  ``-log σ(β[(π_c − ref_c) − (π_r − ref_r)])`` on log-probs summed over the reply tokens;
* ``dpo_norm`` — length-normalized DPO, the paper's final choice (open-instruct's
  ``dpo_norm``): TRL ``DPOTrainer``, ``loss_type="sigmoid_norm"``; the same with every
  log-prob averaged over the reply's tokens (after truncation);
* ``simpo`` — SimPO (Meng et al. 2024), reference-free: TRL 1.16 has it only in
  ``trl.experimental.cpo.CPOTrainer`` (``loss_type="simpo"``, ``cpo_alpha=0`` for no
  behaviour-cloning term); ``-log σ(β(avg π_c − avg π_r) − γ)`` with TRL's default target
  margin γ = ``CPOConfig.simpo_gamma`` = 0.5 (:data:`SIMPO_GAMMA`), β from params. CPOTrainer
  tokenizes its own way: it prepends the tokenizer's BOS token, which the Tülu template lacks.

The reference model's log-probs are computed once per (reference checkpoint, scored rows,
tokenizer and chat template, max_length, dtype, TRL version) and kept on disk under
``<ref_cache_root>/<key>/`` (``ref_logps.parquet`` + ``complete.json``, written last); later
runs and every ablation on the same data read them and load no reference model at all.
TRL's own ``precompute_ref_log_probs`` cache is a ``datasets`` temp file keyed by a hash of
every weight, gone when the process ends for an in-memory dataset — hence this cache. TRL
consumes the values as the ``ref_chosen_logps`` / ``ref_rejected_logps`` columns that its
collator batches when ``precompute_ref_log_probs=True``; :class:`TuluDPOTrainer` overrides
the one method that would compute them (``_precompute_ref_logps``) to read them from the cache.

Chosen and rejected replies go through the model in one concatenated batch (TRL's way) or,
with ``separate_forward=True``, in two forward passes (open-instruct's memory saving, paper
Figure 17); the loss code is TRL's either way.

Usage::

    result = train_dpo(sft_checkpoint_dir, prefs.dataset, params.dpo, out_dir, seed=123)
    accelerate launch -m tulu_lib.dpo --params params/cpu.yaml --model SFT_DIR --out OUT_DIR
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch

from tulu_lib.chat_template import num_tokens
from tulu_lib.params import DPOParams, LaunchParams, OptimParams

TRL_LOSS = {"dpo": "sigmoid", "dpo_norm": "sigmoid_norm", "simpo": "simpo"}
SIMPO_GAMMA = 0.5  # TRL's CPOConfig.simpo_gamma default; the SimPO target reward margin γ
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
TOKEN_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
CACHE_FILE, COMPLETE_FILE = "ref_logps.parquet", "complete.json"


# ------------------------------------------------------------------------- TRL config


def _training_args(o: OptimParams, output_dir: str | Path, seed: int, launch: LaunchParams | None) -> dict:
    return dict(
        output_dir=str(output_dir), seed=seed, learning_rate=o.learning_rate,
        lr_scheduler_type=o.lr_scheduler, warmup_steps=o.warmup_ratio,  # < 1: a ratio (transformers 5)
        num_train_epochs=o.epochs, max_steps=o.max_steps,
        per_device_train_batch_size=o.per_device_batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps, weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm, gradient_checkpointing=o.gradient_checkpointing, bf16=o.bf16,
        logging_steps=o.logging_steps, save_steps=o.save_steps, save_only_model=False, report_to=[],
        deepspeed=launch.deepspeed if launch else None, dataloader_num_workers=0, max_length=o.max_length)


def dpo_config(params: DPOParams, output_dir: str | Path, seed: int, launch: LaunchParams | None = None):
    """TRL's config from params, in one place: ``DPOConfig`` (dpo, dpo_norm) or ``CPOConfig`` (simpo).

    bf16 and gradient checkpointing come from params explicitly (TRL turns both on by default).
    ``gradient_checkpointing`` is TRL's own field: newer transformers (5.23) call it
    ``activation_checkpointing`` and keep the old name as an alias; 5.17 knows only the old one.
    """
    args = _training_args(params.optim, output_dir, seed, launch)
    if params.loss == "simpo":
        from trl.experimental.cpo import CPOConfig

        return CPOConfig(**args, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=SIMPO_GAMMA,
                         beta=params.beta, remove_unused_columns=False)  # its collator needs the raw columns
    from trl import DPOConfig

    return DPOConfig(**args, loss_type=[TRL_LOSS[params.loss]], beta=params.beta,
                     precompute_ref_log_probs=params.cache_reference)


# ------------------------------------------------------------- separate forward passes


def forward_in_halves(model) -> None:
    """Run TRL's fused-head forward on the chosen half and the rejected half of a batch separately.

    TRL batches a preference batch as ``[chosen; rejected]`` and runs one forward; wrapped, the
    model runs two, each trimmed to its own longest sequence (the collator pads on the right),
    and returns the same outputs padded back, so TRL's loss code is untouched.
    """
    from trl.trainer.utils import FusedCausalLMOutput

    joint = model.forward

    @functools.wraps(joint)
    def forward(*args, fused_lm_head=False, **kwargs):
        if args or not fused_lm_head:  # TRL's preference forwards pass keyword arguments only
            return joint(*args, fused_lm_head=fused_lm_head, **kwargs)
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        half, width = ids.size(0) // 2, ids.size(1) - 1
        parts = []
        for rows in (slice(0, half), slice(half, None)):
            keep = int(mask[rows].sum(dim=1).max())
            part = {k: v[rows, :keep] if torch.is_tensor(v) and v.shape[:2] == ids.shape else v
                    for k, v in kwargs.items()}
            parts.append(joint(fused_lm_head=True, **part))
        fields = {}
        for name in ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask"):
            if getattr(parts[0], name) is not None:
                fields[name] = torch.cat([torch.cat([x, x.new_zeros(x.size(0), width - x.size(1))], dim=1)
                                          for x in (getattr(p, name) for p in parts)])
        aux = [p.aux_loss for p in parts if p.aux_loss is not None]
        loss = -fields["log_probs"].sum() / fields["label_mask"].sum().clamp(min=1)
        return FusedCausalLMOutput(loss=loss, aux_loss=sum(aux) if aux else None, **fields)

    model.forward = forward


class ForwardCounter:
    """Counts forward passes of models' backbones (a hook, so wrappers are counted per real pass)."""

    def __init__(self) -> None:
        self.calls = 0

    def attach(self, model) -> None:
        model.base_model.register_forward_hook(self._hook)

    def _hook(self, *_) -> None:
        self.calls += 1


# ------------------------------------------------------------------ reference cache


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheKey:
    """What reference log-probs depend on; any change gives a new cache folder."""

    reference: str  # assets.fingerprint: config.json + safetensors names/sizes/mtimes (no weights read)
    rows: str  # data.fingerprint of the scored rows (id, prompt, chosen, rejected), in order
    chat_template: str
    tokenizer: str  # the tokenizer's vocabulary/merges/normalizers
    max_length: int
    dtype: str  # reference weights' dtype and autocast
    trl: str  # TRL's tokenization and fused log-prob head

    def digest(self) -> str:
        return _sha(json.dumps(asdict(self), sort_keys=True))


def _load_reference(path: str, dtype: torch.dtype, device):
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    add_fused_lm_head(model)
    return model


@dataclass
class ReferenceCache:
    """Reference log-probs on disk: ``<root>/<key digest>/ref_logps.parquet`` + ``complete.json``.

    A folder is used only if ``complete.json`` is there and agrees with the parquet (row
    count, ids in order, finite values); anything else is rebuilt, with the reason printed.
    Builds happen in a temp folder renamed into place under a file lock, so concurrent runs
    and interrupted builds are safe. Under several processes the main one builds (a whole
    reference model on its device) while the others wait, then all read.
    """

    root: Path
    reference_dir: str
    separate_forward: bool = False

    def key(self, dataset: datasets.Dataset, tokenizer, max_length: int, dtype: str) -> CacheKey:
        import trl

        from tulu_lib import assets, data

        rows = dataset.select_columns([c for c in ("id", "prompt", "chosen", "rejected")
                                       if c in dataset.column_names])
        backend = getattr(tokenizer, "backend_tokenizer", None)
        return CacheKey(reference=assets.fingerprint(self.reference_dir), rows=data.fingerprint(rows),
                        chat_template=_sha(tokenizer.chat_template or ""),
                        tokenizer=_sha(backend.to_str() if backend else json.dumps(tokenizer.get_vocab())),
                        max_length=max_length, dtype=dtype, trl=trl.__version__)

    def read(self, key: CacheKey, ids: Sequence[str]) -> tuple[list[float], list[float]] | None:
        """The cached values for these rows, or None (and why) when missing, partial or corrupt."""
        import pyarrow.parquet as pq

        folder = Path(self.root) / key.digest()
        if not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / COMPLETE_FILE).read_text())
            table = pq.read_table(folder / CACHE_FILE).to_pydict()
            chosen, rejected = table[REF_COLUMNS[0]], table[REF_COLUMNS[1]]
            problem = ("row count differs" if not meta["rows"] == len(chosen) == len(rejected) == len(ids)
                       else "ids differ" if table["id"] != list(ids)
                       else "non-finite values" if not all(map(math.isfinite, chosen + rejected))
                       else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # missing complete.json, unreadable parquet
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem:
            print(f"[dpo] reference cache {folder} is unusable ({problem}); rebuilding", flush=True)
            return None
        return chosen, rejected

    def write(self, key: CacheKey, ids: Sequence[str], chosen: list[float], rejected: list[float],
              seconds: float) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        root = Path(self.root)
        root.mkdir(parents=True, exist_ok=True)
        target = root / key.digest()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            pq.write_table(pa.table({"id": list(ids), REF_COLUMNS[0]: pa.array(chosen, pa.float32()),
                                     REF_COLUMNS[1]: pa.array(rejected, pa.float32())}), tmp / CACHE_FILE)
            (tmp / COMPLETE_FILE).write_text(json.dumps(
                {"key": asdict(key), "rows": len(ids), "seconds": round(seconds, 3),
                 "separate_forward": self.separate_forward, "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
                indent=1))
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def load_or_compute(self, dataset: datasets.Dataset, tokenizer, collator, accelerator, *,
                        max_length: int, batch_size: int, dtype: torch.dtype,
                        counter: ForwardCounter) -> tuple[list[float], list[float], dict]:
        """Reference log-probs (summed over reply tokens) for TRL-tokenized rows, cached on disk."""
        from filelock import FileLock

        ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
        precision = f"{str(dtype).removeprefix('torch.')}, mixed precision {accelerator.mixed_precision}"
        key = self.key(dataset, tokenizer, max_length, precision)
        info = {"cache_dir": str(Path(self.root) / key.digest()), "key": asdict(key)}
        Path(self.root).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.root) / f"{key.digest()}.lock")):
            cached = self.read(key, ids)
            if cached is not None:
                return (*cached, {**info, "cache_hit": True})
            started = time.time()
            model = _load_reference(self.reference_dir, dtype, accelerator.device)
            counter.attach(model)
            if self.separate_forward:
                forward_in_halves(model)
            chosen, rejected = _score(model, dataset, collator, batch_size, accelerator)
            del model
            self.write(key, ids, chosen, rejected, time.time() - started)
        return chosen, rejected, {**info, "cache_hit": False}


@torch.no_grad()
def _score(model, dataset, collator, batch_size: int, accelerator) -> tuple[list[float], list[float]]:
    """Summed reply log-probs per pair, exactly as TRL's ``compute_ref_log_probs`` computes them."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset.select_columns(list(TOKEN_COLUMNS)), batch_size=batch_size,
                        collate_fn=collator, shuffle=False)
    chosen, rejected = [], []
    device = accelerator.device
    for batch in loader:
        ids = batch["input_ids"].to(device)
        labels = ids.masked_fill(batch["completion_mask"].to(device) == 0, -100)
        with accelerator.autocast():
            out = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device), labels=labels,
                        use_cache=False, fused_lm_head=True)
        c, r = out.log_probs.sum(dim=1).float().cpu().chunk(2)
        chosen += c.tolist()
        rejected += r.tolist()
    return chosen, rejected


# ------------------------------------------------------------------------- trainers


@functools.cache
def _dpo_trainer_class():  # built on first use: importing TRL takes seconds
    from trl import DPOTrainer

    class TuluDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer reading reference log-probs from a :class:`ReferenceCache`,
        optionally forwarding chosen and rejected separately; it counts reference forward passes."""

        def __init__(self, *args, reference_cache: ReferenceCache | None = None,
                     separate_forward: bool = False, **kwargs):
            self.reference_cache, self.reference_info = reference_cache, {}
            self.reference_forwards = ForwardCounter()
            if kwargs["args"].precompute_ref_log_probs and reference_cache is None:
                raise ValueError("precompute_ref_log_probs needs a reference_cache")
            super().__init__(*args, **kwargs)
            if self.ref_model is not None:  # no cache: TRL's in-step reference forward
                self.reference_forwards.attach(self.ref_model)
            if separate_forward:
                forward_in_halves(self.model)
                if self.ref_model is not None:
                    forward_in_halves(self.ref_model)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            with self.accelerator.main_process_first():  # the main process builds, the others read
                chosen, rejected, self.reference_info = self.reference_cache.load_or_compute(
                    dataset, self.processing_class, self.data_collator, self.accelerator,
                    max_length=self.args.max_length, batch_size=batch_size, dtype=self.model.dtype,
                    counter=self.reference_forwards)
            return dataset.add_column(REF_COLUMNS[0], chosen).add_column(REF_COLUMNS[1], rejected)

    return TuluDPOTrainer


def default_cache_root() -> Path:
    from tulu_lib.assets import cache_dir

    return cache_dir() / "dpo-reference-logps"


def build_trainer(model: str, dataset: datasets.Dataset, params: DPOParams, output_dir: str | Path, *,
                  seed: int, dtype: str = "float32", ref_cache_root: str | Path | None = None,
                  launch: LaunchParams | None = None, callbacks=(), separate_forward: bool = False):
    """The TRL trainer for ``params.loss``; the policy (and reference) load from the folder ``model``.

    For dpo/dpo_norm with ``params.cache_reference`` the reference log-probs are read from (or
    computed into) the on-disk cache here, before training; without it TRL keeps a reference
    model in memory and runs it every step.
    """
    from transformers import AutoModelForCausalLM

    from tulu_lib.assets import load_tokenizer, model_path

    path = model_path(model)
    tokenizer = load_tokenizer(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    config = dpo_config(params, output_dir, seed, launch)
    common = dict(model=policy, args=config, train_dataset=dataset, processing_class=tokenizer,
                  callbacks=list(callbacks))
    if params.loss == "simpo":
        from trl.experimental.cpo import CPOTrainer

        if separate_forward:
            raise ValueError("separate_forward applies to dpo/dpo_norm; TRL's CPOTrainer (simpo) "
                             "always forwards chosen and rejected together")
        trainer = CPOTrainer(**common)
        # CPOTrainer keeps pairs whose prompt fills max_length (no reply token left: SimPO's average
        # is 0/0 = NaN); drop them as TRL's DPOTrainer does.
        trainer.train_dataset = trainer.train_dataset.filter(
            lambda r: max(r["chosen_labels"]) >= 0 and max(r["rejected_labels"]) >= 0)
        return trainer
    cache = (ReferenceCache(Path(ref_cache_root or default_cache_root()), path, separate_forward)
             if params.cache_reference else None)
    return _dpo_trainer_class()(**common, reference_cache=cache, separate_forward=separate_forward)


# --------------------------------------------------------------------------- training


def truncation_stats(tokenizer, dataset: datasets.Dataset, max_length: int) -> dict:
    """Pairs whose prompt + reply exceeds ``max_length`` under the chat template (they are cut
    from the end), and pairs whose prompt alone fills it (TRL's DPOTrainer drops those)."""
    counts = {"pairs": len(dataset), "chosen_truncated": 0, "rejected_truncated": 0, "pairs_truncated": 0,
              "prompt_fills_max_length": 0}
    for row in dataset:
        long_chosen = num_tokens(tokenizer, row["prompt"] + row["chosen"]) > max_length
        long_rejected = num_tokens(tokenizer, row["prompt"] + row["rejected"]) > max_length
        counts["chosen_truncated"] += long_chosen
        counts["rejected_truncated"] += long_rejected
        counts["pairs_truncated"] += long_chosen or long_rejected
        prompt = num_tokens(tokenizer, row["prompt"], add_generation_prompt=True)
        counts["prompt_fills_max_length"] += prompt >= max_length
    return counts


def fits_max_length(dataset: datasets.Dataset, tokenizer, max_length: int, column: str = "prompt",
                    ) -> datasets.Dataset:
    """Rows whose prompt (``column``) leaves room for a reply token within ``max_length``: the pairs
    TRL trains on (it drops the others)."""
    return dataset.select([i for i, prompt in enumerate(dataset[column])
                           if num_tokens(tokenizer, prompt, add_generation_prompt=True) < max_length])


def drop_bad_pairs(dataset: datasets.Dataset) -> tuple[datasets.Dataset, dict[str, int]]:
    """The preference checks of :mod:`tulu_lib.data` (identical chosen and rejected, empty replies,
    prompts that differ, ...) on the pairs about to be trained: bad ones dropped, counted by reason."""
    from tulu_lib.data import clean_rows

    kept, report = clean_rows("preferences", dataset, "train_dpo")
    if not report.dropped:
        return dataset, {}
    print(f"[dpo] {report.summary()}", flush=True)
    return datasets.Dataset.from_list(kept), dict(report.dropped)


@dataclass
class DPOResult:
    checkpoint: Path  # final model + tokenizer
    log_history: list[dict]
    stats: dict  # loss, pairs trained, truncation counts, reference cache use, steps
    seconds: float


def train_dpo(model: str, dataset: datasets.Dataset, params: DPOParams, output_dir: str | Path, *,
              seed: int, dtype: str = "float32", ref_cache_root: str | Path | None = None,
              launch: LaunchParams | None = None, resume: bool = True, callbacks=(),
              separate_forward: bool = False) -> DPOResult:
    """Preference-tune the checkpoint folder ``model``; resumes from the newest checkpoint in ``output_dir``.

    ``ref_cache_root`` (default ``$TULU_REPRO_CACHE/dpo-reference-logps``) holds the reference
    log-probs, shared by every run and ablation with the same reference, data and max_length.
    Bad pairs are dropped first (:func:`drop_bad_pairs`); ``stats`` counts them and the pairs
    truncated at ``max_length``.
    """
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    dataset, bad = drop_bad_pairs(dataset)
    trainer = build_trainer(model, dataset, params, output_dir, seed=seed, dtype=dtype,
                            ref_cache_root=ref_cache_root, launch=launch, callbacks=callbacks,
                            separate_forward=separate_forward)
    last = get_last_checkpoint(str(output_dir)) if resume and output_dir.is_dir() else None
    started = time.time()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.time() - started
    final = output_dir / "final"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(final))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    counter = getattr(trainer, "reference_forwards", None)
    reference = ({"mode": "none (reference-free)"} if params.loss == "simpo" else
                 {"mode": "cache", **trainer.reference_info} if params.cache_reference else
                 {"mode": "in-step"})
    stats = {"loss": params.loss, "trl_loss": TRL_LOSS[params.loss], "beta": params.beta,
             "simpo_gamma": SIMPO_GAMMA if params.loss == "simpo" else None,
             "separate_forward": separate_forward, "bad_pairs_dropped": sum(bad.values()),
             "bad_pairs_by_reason": bad, "pairs_trained": len(trainer.train_dataset),
             **truncation_stats(trainer.processing_class, dataset, params.optim.max_length),
             "reference": {**reference, "forward_passes": counter.calls if counter else 0},
             "global_step": trainer.state.global_step, "resumed_from": last,
             "final_loss": losses[-1] if losses else None}
    return DPOResult(final, trainer.state.log_history, stats, seconds)


# ------------------------------------------------------------------------------ CLI


def run_dpo(params_file: str | Path, model: str | Path, data_dir: str | Path, output_dir: str | Path,
            overrides: list[str] = ()) -> DPOResult:
    """Train as the params say: in this process, or under ``accelerate launch`` when
    ``launch.num_processes`` > 1 (:mod:`tulu_lib.launch`). ``data_dir``: pairs saved with
    ``save_to_disk`` (the 01_data stage's ``preferences``)."""
    from tulu_lib.launch import launch
    from tulu_lib.params import load_params

    p = load_params(params_file, list(overrides))
    if p.launch.num_processes > 1:
        args = [*(a for o in overrides for a in ("--set", o)), "--model", str(model), "--data", str(data_dir)]
        d = launch("dpo", params_file, output_dir, args)
        return DPOResult(Path(d["checkpoint"]), d["log_history"], d["stats"], d["seconds"])
    return train_dpo(str(model), datasets.load_from_disk(str(data_dir)), p.dpo, output_dir, seed=p.seed,
                     dtype=p.model.dtype, launch=p.launch)


def main(argv: list[str] | None = None) -> int:
    """``[accelerate launch ...] -m tulu_lib.dpo --params FILE --model DIR --out DIR [--data DIR]``."""
    from accelerate import PartialState

    from tulu_lib.data import load_preferences
    from tulu_lib.launch import result_file
    from tulu_lib.params import load_params

    parser = argparse.ArgumentParser(prog="python -m tulu_lib.dpo", description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params YAML file")
    parser.add_argument("--model", required=True, help="starting checkpoint folder (the SFT model)")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, final/, dpo_result.json)")
    parser.add_argument("--data", help="pairs saved with save_to_disk (default: data.preferences)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override, e.g. dpo.loss=simpo (repeatable)")
    parser.add_argument("--ref-cache", help="reference log-prob cache root (default: in the model cache)")
    parser.add_argument("--separate-forward", action="store_true",
                        help="forward chosen and rejected replies separately (less peak memory)")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    args = parser.parse_args(argv)
    p = load_params(args.params, args.set)
    prefs = (datasets.load_from_disk(args.data) if args.data
             else load_preferences(p.data.preferences, seed=p.seed).dataset)
    result = train_dpo(args.model, prefs, p.dpo, args.out, seed=p.seed, dtype=p.model.dtype,
                       ref_cache_root=args.ref_cache, launch=p.launch, resume=not args.no_resume,
                       separate_forward=args.separate_forward)
    if PartialState().is_main_process:
        summary = {"checkpoint": str(result.checkpoint), "seconds": round(result.seconds, 1),
                   "stats": result.stats, "log_history": result.log_history}
        result_file("dpo", args.out).write_text(json.dumps(summary, indent=1, default=str))
        print(json.dumps(result.stats, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
