#!/usr/bin/env bash
# Installs rlhf_gym and its test tools into the current Python environment.
#
# Without a GPU it pins torch==2.13.0 first, so pip never pulls the multi-GB CUDA build; on machines whose
# package index serves only CUDA builds, point TORCH_INDEX_URL at a CPU wheel index. With a GPU, pip's
# default (CUDA) build is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "install: GPU found, using pip's default torch build"
elif ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "install: no GPU, installing the CPU build of torch"
  "$PY" -m pip install --quiet "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
"$PY" -m pip install --quiet -e ".[dev]"
echo "install: done ($("$PY" -c 'import torch, rlhf_gym; print("rlhf_gym", rlhf_gym.__version__, "torch", torch.__version__)'))"
