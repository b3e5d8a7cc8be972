#!/usr/bin/env bash
# GPU check of our knee network and fastMRI's E2E-VarNet: prints ONE JSON on stdout
# (progress on stderr). Under 8 minutes on one H100/H200; offline. See bench/gpu_check.py.
#   bash bench/gpu_check.sh [--out bench/results/gpu_check.json]
#   bash bench/gpu_check.sh --dry-run      # CPU, tiny sizes, seconds: checks the code path
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
export WANDB_MODE=offline HF_HUB_OFFLINE=1
# a hard cap on the whole check, 470 s (the script also budgets its compile step);
# GPU_CHECK_TIMEOUT=SECONDS changes it (a dry run on a loaded CPU may need more)
exec timeout --signal=TERM --kill-after=10 "${GPU_CHECK_TIMEOUT:-470}" "$PY" bench/gpu_check.py "$@"
