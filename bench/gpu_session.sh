#!/usr/bin/env bash
# One GPU session's checks, for a machine that has PyTorch but nothing of ours and no network:
# the GPU check (bench/gpu_check.sh, <= 400 s) and then, in the time left, the zero-shot network
# size sweep on the real scans (bench/zeroshot_net_size.py). Files land in $OUT (default
# outputs/gpu_session): gpu_check.json, gpu_check.log, zeroshot_net_size.json, nvidia_smi.csv.
#
#   bash bench/gpu_session.sh --prepare   # HERE, once: wheels -> .whl/, the scans -> .gpu/
#   bash bench/gpu_session.sh             # THERE (repo root; carry .whl and .gpu), ~9.5 min
#
# --prepare needs this repo's .venv, ../shared/data and the package index; .whl/ and .gpu/ are
# listed in .git/info/exclude so that they travel only when carried.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
    set -e
    mkdir -p .git/info .whl .gpu
    for d in /.whl/ /.gpu/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
    plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
    # what the device's image lacks (its python is 3.12): Hydra, fastMRI, the wavelets
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp $plat -d .whl hydra-core==1.3.2 omegaconf==2.3.0 fastmri==0.3.0 \
        ptwt PyWavelets
    .venv/bin/python -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # sdist only
    .venv/bin/python bench/zeroshot_net_size.py --save-scans .gpu/scans.pt
    du -sh .whl .gpu
    exit 0
fi
PY=${PY:-python3}
OUT=${OUT:-outputs/gpu_session}
TOTAL_S=${TOTAL_S:-550}
mkdir -p "$OUT"
T0=$(date +%s)
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site ${WHEELS:-.whl/*.whl} || exit 1
# the project itself: conf/ becomes the package unrolled.conf only in an install (setup.py)
$PY -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . \
    > "$OUT/pip_project.log" 2>&1 || { tail -5 "$OUT/pip_project.log"; exit 1; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 WANDB_MODE=offline HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1
$PY -c "import torch, hydra, fastmri, unrolled.methods.cs; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1
GPU_CHECK_TIMEOUT=${GPU_CHECK_TIMEOUT:-400} bash bench/gpu_check.sh \
    ${GPU_ARGS:---budget-s 330 --compile-timeout 110} --out "$OUT/gpu_check.json" \
    > /dev/null 2> "$OUT/gpu_check.log"
echo "gpu_check rc=$? after $(( $(date +%s) - T0 )) s"
tail -3 "$OUT/gpu_check.log"
LEFT=$(( TOTAL_S - ($(date +%s) - T0) ))
echo "zero-shot size sweep: $LEFT s left"
timeout --signal=TERM --kill-after=5 $(( LEFT > 10 ? LEFT : 10 )) $PY bench/zeroshot_net_size.py \
    --scans-file .gpu/scans.pt --device "${SWEEP_DEVICE:-cuda}" --budget-s $(( LEFT - 40 )) \
    --json "$OUT/zeroshot_net_size.json" ${SWEEP_ARGS:-} 2>&1 | grep -v Warning | cut -c1-400 | tail -30
echo "done after $(( $(date +%s) - T0 )) s"
