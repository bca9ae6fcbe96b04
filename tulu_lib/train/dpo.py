"""Preference tuning (paper §5, Table 20) on TRL, with an on-disk reference log-prob cache.

``dpo.loss`` picks the algorithm, each mapped onto a TRL loss (see :data:`TRL_LOSS`):

* ``dpo`` — DPO (Rafailov et al. 2023): TRL ``DPOTrainer``, ``loss_type="sigmoid"``;
  ``-log σ(β[(π_c − ref_c) − (π_r − ref_r)])`` on log-probs summed over the reply tokens;
* ``dpo_norm`` — length-normalized DPO, the paper's final choice (open-instruct's
  ``dpo_norm``): TRL ``DPOTrainer``, ``loss_type="sigmoid_norm"``; the same with every
  log-prob averaged over the reply's tokens (after truncation);
* ``simpo`` — SimPO (Meng et al. 2024), reference-free, as open-instruct's ``simpo_loss``:
  ``-log σ(β(avg π_c − avg π_r − γ/β))`` with ``dpo.gamma_beta_ratio`` = γ/β. TRL 1.16 has
  SimPO only in ``trl.experimental.cpo.CPOTrainer``, which tokenizes its own way (it
  prepends a BOS token the Tülu template lacks, and masks earlier assistant turns); here it
  is TRL's ``sigmoid_norm`` loss with the margin in the reference columns
  (:class:`TuluPreferenceCollator`): ref_chosen = γ/β · |chosen tokens|, ref_rejected = 0,
  so every loss shares one tokenization.

Each loss takes its own β (and SimPO's γ/β) from ``dpo.per_loss`` (:meth:`DPOParams.settled`).
Multi-turn pairs train every assistant turn, as the release labels them: the earlier
replies in the prompt join both completion masks (:class:`TuluPreferenceCollator`).

The reference model's log-probs are computed once per (reference checkpoint, scored rows,
tokenizer and chat template, max_length, dtype, TRL version) and kept on disk under
``<ref_cache_root>/<key>/`` (``ref_logps.parquet`` + ``complete.json``, written last); later
runs and every ablation on the same data read them and load no reference model at all.
TRL's own ``precompute_ref_log_probs`` cache is a ``datasets`` temp file keyed by a hash of
every weight, gone when the process ends for an in-memory dataset — hence this cache. TRL
consumes the values as the ``ref_chosen_logps`` / ``ref_rejected_logps`` columns that its
collator batches when ``precompute_ref_log_probs=True``; :class:`TuluDPOTrainer` overrides
the one method that computes them (``_precompute_ref_logps``) to read them from the cache, and
on a miss lets TRL compute them: every rank scores its shard of the pairs (a DeepSpeed
inference engine under ZeRO-3), TRL gathers them, the main process writes the cache.

Chosen and rejected replies go through the model in one concatenated batch (TRL's way) or,
with ``separate_forward=True``, in two forward passes (open-instruct's memory saving, paper
Figure 17); the loss code is TRL's either way.

Usage::

    result = train_dpo(sft_checkpoint_dir, prefs.dataset, params.dpo, out_dir, seed=123)
    tulu-repro launch dpo --params params/cpu.yaml --model SFT_DIR --out OUT_DIR
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch

from tulu_lib.core import assets, hashing
from tulu_lib.core.assets import cache_dir, load_tokenizer, model_path
from tulu_lib.core.chat_template import num_tokens
from tulu_lib.core.checkpoints import last_complete
from tulu_lib.core.params import DPOParams, LaunchParams
from tulu_lib.data.loader import clean_rows
from tulu_lib.train.common import TrainResult, parameter_layout, train_resuming, training_args

TRL_LOSS = {"dpo": "sigmoid", "dpo_norm": "sigmoid_norm", "simpo": "sigmoid_norm"}  # simpo: + margin
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
EARLIER_TURNS = "prompt_assistant_mask"  # 1 on the prompt's earlier assistant-reply tokens
CACHE_FILE, COMPLETE_FILE = "ref_logps.parquet", "complete.json"
TOKENIZATION = "every assistant turn"  # in the cache key: the masks the reference was scored on


# ------------------------------------------------------------------------- TRL config


def dpo_config(params: DPOParams, output_dir: str | Path, seed: int, launch: LaunchParams | None = None):
    """TRL's ``DPOConfig`` from (settled) params, in one place.

    bf16 and gradient checkpointing come from params explicitly (TRL turns both on by default).
    ``gradient_checkpointing`` is TRL's own field: newer transformers (5.23) call it
    ``activation_checkpointing`` and keep the old name as an alias; 5.17 knows only the old one.
    SimPO "precomputes" its reference columns: the collator fills in the margin.
    """
    from trl import DPOConfig

    return DPOConfig(**training_args(params.optim, output_dir, seed, launch),
                     max_length=params.optim.max_length, loss_type=[TRL_LOSS[params.loss]], beta=params.beta,
                     precompute_ref_log_probs=params.cache_reference or params.loss == "simpo")


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
    """Counts forward passes of a model's backbone (a hook, so wrappers are counted per real pass)."""

    def __init__(self) -> None:
        self.calls = 0

    def attach(self, model):
        """Start counting ``model``'s passes; returns the hook handle (``.remove()`` stops)."""
        return model.base_model.register_forward_hook(self._hook)

    def _hook(self, *_) -> None:
        self.calls += 1


# ------------------------------------------------------------------------- tokenization


def earlier_turns_mask(row: dict, tokenizer) -> dict:
    """``{EARLIER_TURNS: mask}`` over a tokenized pair's ``prompt_ids``: 1 on the reply tokens of the
    prompt's earlier assistant turns (the Tülu template's ``{% generation %}`` spans), else 0.

    open-instruct labels every assistant turn of chosen and rejected; TRL trains the final reply only.
    """
    if not any(m["role"] == "assistant" for m in row["prompt"]):
        return {EARLIER_TURNS: []}
    out = tokenizer.apply_chat_template(list(row["prompt"]) + list(row["chosen"]), tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    n = len(row["prompt_ids"])
    if list(out["input_ids"][:n]) != list(row["prompt_ids"]):
        raise ValueError(f"pair {row.get('id')!r}: the prompt does not tokenize as a prefix of "
                         "prompt + chosen")
    return {EARLIER_TURNS: list(out["assistant_masks"][:n])}


@functools.cache
def _collator_class():  # built on first use: importing TRL takes seconds
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    @dataclass
    class TuluPreferenceCollator(DataCollatorForPreference):
        """TRL's preference collator (``[chosen; rejected]``, right-padded, prompt first) plus:

        * the prompt's earlier assistant replies (:data:`EARLIER_TURNS`) join the completion
          mask of both rows, so every assistant turn is trained, as open-instruct does;
        * with ``simpo_gamma_beta_ratio`` the reference columns carry SimPO's margin:
          ref_chosen = γ/β · |chosen mask|, ref_rejected = 0, which turns TRL's ``sigmoid_norm``
          into ``-log σ(β(avg π_c − avg π_r − γ/β))`` (open-instruct's ``simpo_loss``).
        """

        simpo_gamma_beta_ratio: float | None = None

        def torch_call(self, examples: list[dict]) -> dict:
            out = super().torch_call(examples)
            mask, half = out["completion_mask"], len(examples)
            for i, example in enumerate(examples):
                if any(turns := example.get(EARLIER_TURNS) or ()):
                    m = torch.tensor(turns[:mask.size(1)], dtype=mask.dtype)
                    mask[i, :len(m)] |= m
                    mask[i + half, :len(m)] |= m
            if self.simpo_gamma_beta_ratio is not None:
                chosen = mask[:half].sum(dim=1).to(torch.float32)
                out[REF_COLUMNS[0]] = self.simpo_gamma_beta_ratio * chosen
                out[REF_COLUMNS[1]] = torch.zeros(half)
            return out

    return TuluPreferenceCollator


# ------------------------------------------------------------------ reference cache


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheKey:
    """What reference log-probs depend on; any change gives a new cache folder."""

    reference: str  # assets.fingerprint: config.json + safetensors names/sizes/mtimes (no weights read)
    rows: str  # hashing.rows_fingerprint of the scored rows (id, prompt, chosen, rejected), in order
    chat_template: str
    tokenizer: str  # the tokenizer's vocabulary/merges/normalizers
    max_length: int
    dtype: str  # reference weights' dtype and autocast
    trl: str  # TRL's tokenization and fused log-prob head
    tokenization: str = TOKENIZATION  # which reply tokens are scored

    def digest(self) -> str:
        return hashing.reference_key(asdict(self))


@dataclass
class ReferenceCache:
    """Reference log-probs on disk: ``<root>/<key digest>/ref_logps.parquet`` + ``complete.json``.

    A folder is used only if ``complete.json`` is there and agrees with the parquet: its size
    and content hash as written (checked in that order, before it is read), row count, ids in
    order, finite values; anything else is rebuilt, with the reason printed.
    Builds happen in a temp folder renamed into place under a file lock, so concurrent runs
    and interrupted builds are safe. Only the main process reads and writes it.
    """

    root: Path
    reference_dir: str
    separate_forward: bool = False

    def lock(self, key: CacheKey):
        from filelock import FileLock

        Path(self.root).mkdir(parents=True, exist_ok=True)
        return FileLock(str(Path(self.root) / f"{key.digest()}.lock"))

    def key(self, dataset: datasets.Dataset, tokenizer, max_length: int, dtype: str) -> CacheKey:
        import trl


        rows = dataset.select_columns([c for c in ("id", "prompt", "chosen", "rejected")
                                       if c in dataset.column_names])
        backend = getattr(tokenizer, "backend_tokenizer", None)
        return CacheKey(reference=assets.fingerprint(self.reference_dir), rows=hashing.rows_fingerprint(rows),
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
            problem = self._altered(folder, meta)
            if problem is None:
                table = pq.read_table(folder / CACHE_FILE).to_pydict()
                chosen, rejected = table[REF_COLUMNS[0]], table[REF_COLUMNS[1]]
                problem = ("row count differs" if not meta["rows"] == len(chosen) == len(rejected) == len(ids)
                           else "ids differ" if table["id"] != list(ids)
                           else "non-finite values" if not all(map(math.isfinite, chosen + rejected))
                           else None)
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as exc:  # a missing or bad file
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if problem:
            print(f"[dpo] reference cache {folder} is unusable ({problem}); rebuilding", flush=True)
            return None
        return chosen, rejected

    @staticmethod
    def _altered(folder: Path, meta: dict) -> str | None:
        """How the parquet differs from the size and content hash ``complete.json`` recorded when it
        was written (the size first: no hashing when it differs), or None."""
        path, size, digest = folder / CACHE_FILE, meta.get("size"), meta.get("sha256")
        if size is None or digest is None:
            return f"no content hash in {COMPLETE_FILE} (written before they were recorded)"
        if path.stat().st_size != size:
            return f"{CACHE_FILE} is {path.stat().st_size} bytes, {size} as written"
        if hashing.file_digest(path) != digest:
            return f"{CACHE_FILE} was altered after it was written (its content hash differs)"
        return None

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
                {"key": asdict(key), "rows": len(ids), "size": (tmp / CACHE_FILE).stat().st_size,
                 "sha256": hashing.file_digest(tmp / CACHE_FILE), "seconds": round(seconds, 3),
                 "separate_forward": self.separate_forward, "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
                indent=1))
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


# ------------------------------------------------------------------------- trainers


@functools.cache
def _dpo_trainer_class():  # built on first use: importing TRL takes seconds
    from trl import DPOTrainer

    class TuluDPOTrainer(DPOTrainer):
        """TRL's DPOTrainer with :class:`TuluPreferenceCollator` (every assistant turn; SimPO's
        margin), reference log-probs from a :class:`ReferenceCache`, optionally forwarding chosen
        and rejected separately; it counts reference forward passes."""

        def __init__(self, *, model, args, processing_class, reference_cache: ReferenceCache | None = None,
                     separate_forward: bool = False, simpo_gamma_beta_ratio: float | None = None, **kwargs):
            self.reference_cache, self.reference_info = reference_cache, {}
            self.reference_forwards, self._halves = ForwardCounter(), separate_forward
            simpo = simpo_gamma_beta_ratio is not None
            if args.precompute_ref_log_probs and (reference_cache is None) != simpo:
                raise ValueError("precomputed reference columns come from a reference_cache or, for "
                                 "SimPO, from simpo_gamma_beta_ratio: give exactly one")
            model.config.pad_token_id = processing_class.pad_token_id  # as TRL does for its own collator
            collator = _collator_class()(
                pad_token_id=processing_class.pad_token_id, max_length=args.max_length,
                truncation_mode=args.truncation_mode, simpo_gamma_beta_ratio=simpo_gamma_beta_ratio)
            super().__init__(model=model, args=args, processing_class=processing_class,
                             data_collator=collator, **kwargs)
            self._forward_in_halves()
            if self.ref_model is not None:  # no cache: TRL's in-step reference forward
                self.reference_forwards.attach(self.ref_model)
                if separate_forward:
                    forward_in_halves(self.ref_model)

        def _forward_in_halves(self) -> None:
            """With separate_forward, wrap the policy once TRL has given it its fused head (in
            ``__init__``, before the reference pass, which scores with the policy's weights)."""
            if self._halves:
                forward_in_halves(self.model)
                self._halves = False

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            prepared = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            return prepared.map(earlier_turns_mask, fn_kwargs={"tokenizer": processing_class},
                                desc=f"Marking earlier assistant turns in {dataset_name}")

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if EARLIER_TURNS not in self._signature_columns:
                self._signature_columns.append(EARLIER_TURNS)

        def _release_precompute_engine(self):
            """Under ZeRO-3, TRL scores the reference with a DeepSpeed inference engine around the
            policy itself; its ZeRO-3 hooks stay on the policy, where the training engine then
            installs its own, and the first training step fails in DeepSpeed's parameter trace
            ("pop from an empty deque"). The scores are kept here: the engine's hooks go."""
            engine = getattr(self, "_precompute_engine", None)
            if engine is not None:
                engine.destroy()
                self._precompute_engine = None

        def _precompute_ref_logps(self, dataset, name, batch_size):
            """Reference log-probs from the cache; on a miss TRL scores them across all ranks."""
            from accelerate.utils import broadcast_object_list

            self._forward_in_halves()
            if self.reference_cache is None:  # SimPO: the collator supplies the margin columns
                return dataset
            cache, main = self.reference_cache, self.accelerator.is_main_process
            ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]
            precision = (f"{str(self.model.dtype).removeprefix('torch.')}, "
                         f"mixed precision {self.accelerator.mixed_precision}")
            key = cache.key(dataset, self.processing_class, self.args.max_length, precision)
            self.reference_info = {"cache_dir": str(Path(cache.root) / key.digest()), "key": asdict(key)}
            found = [None]
            if main:
                with cache.lock(key):
                    found = [cache.read(key, ids)]
            broadcast_object_list(found, from_process=0)
            self.reference_info["cache_hit"] = found[0] is not None
            if found[0] is None:
                started, hook = time.time(), self.reference_forwards.attach(self.model)
                scored = super()._precompute_ref_logps(dataset, name, batch_size)
                hook.remove()
                self._release_precompute_engine()
                found = [(scored[REF_COLUMNS[0]], scored[REF_COLUMNS[1]])]
                if main:
                    with cache.lock(key):
                        cache.write(key, ids, *found[0], time.time() - started)
                self.accelerator.wait_for_everyone()
            chosen, rejected = found[0]
            return dataset.add_column(REF_COLUMNS[0], chosen).add_column(REF_COLUMNS[1], rejected)

    return TuluDPOTrainer


def default_cache_root() -> Path:

    return cache_dir() / "dpo-reference-logps"


def build_trainer(model: str, dataset: datasets.Dataset, params: DPOParams, output_dir: str | Path, *,
                  seed: int, dtype: str = "float32", ref_cache_root: str | Path | None = None,
                  launch: LaunchParams | None = None, callbacks=(), separate_forward: bool = False):
    """The TRL trainer for ``params.loss`` (β, γ/β from ``params.per_loss``); the policy (and
    reference) load from the folder ``model``.

    For dpo/dpo_norm with ``params.cache_reference`` the reference log-probs are read from (or
    computed into) the on-disk cache here, before training; without it TRL keeps a reference
    model in memory and runs it every step. SimPO has no reference. The config is built before
    the model: with a ZeRO-3 config that registers DeepSpeed, so ``from_pretrained`` loads
    the weights partitioned across ranks (transformers' ``zero.Init``), never whole on one.
    """
    from transformers import AutoModelForCausalLM


    params, path = params.settled(), model_path(model)
    config = dpo_config(params, output_dir, seed, launch)
    tokenizer = load_tokenizer(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    simpo = params.loss == "simpo"
    cache = (ReferenceCache(Path(ref_cache_root or default_cache_root()), path, separate_forward)
             if params.cache_reference and not simpo else None)
    return _dpo_trainer_class()(model=policy, args=config, train_dataset=dataset, processing_class=tokenizer,
                                callbacks=list(callbacks), reference_cache=cache,
                                separate_forward=separate_forward,
                                simpo_gamma_beta_ratio=params.gamma_beta_ratio if simpo else None)


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
    """The preference checks of :mod:`tulu_lib.data.loader` (identical chosen and rejected, empty replies,
    prompts that differ, ...) on the pairs about to be trained: bad ones dropped, counted by reason."""

    kept, report = clean_rows("preferences", dataset, "train_dpo")
    if not report.dropped:
        return dataset, {}
    print(f"[dpo] {report.summary()}", flush=True)
    return datasets.Dataset.from_list(kept), dict(report.dropped)


def train_dpo(model: str, dataset: datasets.Dataset, params: DPOParams, output_dir: str | Path, *,
              seed: int, dtype: str = "float32", ref_cache_root: str | Path | None = None,
              launch: LaunchParams | None = None, resume: bool = True, callbacks=(),
              separate_forward: bool = False) -> TrainResult:
    """Preference-tune the checkpoint folder ``model``; resumes from the newest checkpoint in ``output_dir``.

    ``ref_cache_root`` (default ``$TULU_REPRO_CACHE/dpo-reference-logps``) holds the reference
    log-probs, shared by every run and ablation with the same reference, data and max_length.
    Bad pairs are dropped first (:func:`drop_bad_pairs`); ``stats`` counts them and the pairs
    truncated at ``max_length``.
    """
    output_dir = Path(output_dir)
    dataset, bad = drop_bad_pairs(dataset)
    trainer = build_trainer(model, dataset, params, output_dir, seed=seed, dtype=dtype,
                            ref_cache_root=ref_cache_root, launch=launch, callbacks=callbacks,
                            separate_forward=separate_forward)
    loaded = parameter_layout(trainer.model)  # under ZeRO-3: partitioned at load, never whole
    last = last_complete(output_dir) if resume and output_dir.is_dir() else None
    started = time.time()
    train_resuming(trainer, last)  # ends at max_steps even when resumed from a checkpoint there
    seconds = time.time() - started
    final = output_dir / "final"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(final))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    counter = getattr(trainer, "reference_forwards", None)
    params = params.settled()
    reference = ({"mode": "none (reference-free)"} if params.loss == "simpo" else
                 {"mode": "cache", **trainer.reference_info} if params.cache_reference else
                 {"mode": "in-step"})
    stats = {"loss": params.loss, "trl_loss": TRL_LOSS[params.loss], "beta": params.beta,
             "gamma_beta_ratio": params.gamma_beta_ratio if params.loss == "simpo" else None,
             "separate_forward": separate_forward, "bad_pairs_dropped": sum(bad.values()),
             "bad_pairs_by_reason": bad, "pairs_trained": len(trainer.train_dataset),
             **truncation_stats(trainer.processing_class, dataset, params.optim.max_length),
             "reference": {**reference, "forward_passes": counter.calls if counter else 0},
             "global_step": trainer.state.global_step, "resumed_from": last, "loaded": loaded,
             "final_loss": losses[-1] if losses else None}
    return TrainResult(final, trainer.state.log_history, stats, seconds)
