#!/usr/bin/env bash
# Installs rlhf_gym and its test tools into the current Python environment.
#
#   bash scripts/install.sh            # the exact versions the test suite was run with (constraints.txt)
#   bash scripts/install.sh --newest   # the newest versions pyproject.toml allows (or RLHF_GYM_NEWEST=1)
#
# Without a GPU it pins torch's CPU build first, so pip never pulls the multi-GB CUDA build; on machines whose
# package index serves only CUDA builds, point TORCH_INDEX_URL at a CPU wheel index. With a GPU, pip's
# default (CUDA) build is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NEWEST=${RLHF_GYM_NEWEST:-0}
for arg in "$@"; do
  case "$arg" in
    --newest) NEWEST=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$NEWEST" = 1 ]; then
  CONSTRAINTS=()
  TORCH_PIN="torch==2.13.0"  # the CPU build: an unpinned torch is the CUDA one
  echo "install: newest allowed versions (no constraints file)"
else
  CONSTRAINTS=(-c constraints.txt)
  TORCH_PIN="torch==$(sed -n 's/^torch==//p' constraints.txt)"
  echo "install: pinned versions from constraints.txt"
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "install: GPU found, using pip's default torch build"
elif ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "install: no GPU, installing the CPU build of torch ($TORCH_PIN)"
  "$PY" -m pip install --quiet "$TORCH_PIN" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
"$PY" -m pip install --quiet -e ".[dev]" ${CONSTRAINTS[@]+"${CONSTRAINTS[@]}"}
echo "install: done ($("$PY" -c 'import torch, rlhf_gym; print("rlhf_gym", rlhf_gym.__version__, "torch", torch.__version__)'))"
