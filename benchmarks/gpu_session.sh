#!/usr/bin/env bash
# One prepared GPU session (about 8 minutes): the CUDA figures of benchmarks/throughput.py.
#
#     bash benchmarks/gpu_session.sh            # from the repository root; results in $OUT (default /tmp/ptychodus_gpu_out)
#
# Written for a machine without internet access: nothing is installed. The package is taken from this
# checkout (PYTHONPATH), torch and the other dependencies from whatever `python` has. Each stage has its
# own time limit, and the benchmark rewrites its JSON after every (N, gridsize), so a stage that is cut
# short still leaves what it measured. Stages:
#   0. machine and versions (nvidia-smi, torch, CUDA, cuDNN), missing dependencies reported
#   1. N = 64, 128 x gridsize 1, 2; fp32, bf16, bf16+cl, bf16+cl+graphs; with --profile   (<= 240 s)
#   2. torch.compile: N = 64 x gridsize 1, 2; bf16+cl next to bf16+cl+compile               (<= 150 s)
#   3. the CUDA-only tests: no host sync in the training step, CUDA graphs and bf16 vs fp32  (<= 90 s)
#   4. the iterative reconstructor against pty-chi LSQML/ePIE on the GPU, images case        (<= 240 s)
#      (skipped with a message when pty-chi is not importable there)
#   5. one scan across GPUs: a 40,000-pattern N = 64 scan in HDF5, iterative on 1 GPU and on every
#      GPU of the machine under torchrun (patterns/s, peak memory); skipped on a one-GPU machine (<= 200 s)
# Then copy $OUT/throughput_cuda*.json to benchmarks/results/ and the tables into docs/performance.md.

set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/ptychodus_gpu_out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
STAGE1_S="${STAGE1_S:-240}"
STAGE2_S="${STAGE2_S:-150}"
STAGE3_S="${STAGE3_S:-90}"
STAGE4_S="${STAGE4_S:-240}"
STAGE5_S="${STAGE5_S:-200}"
started=$(date +%s)

log() { echo "[$(( $(date +%s) - started ))s] $*" | tee -a "$OUT/session.log"; }

log "stage 0: machine"
{
    nvidia-smi || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv || true
    echo "nproc: $(nproc)"; uptime
    "$PYTHON" - <<'EOF'
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
          "available", torch.cuda.is_available())
    if torch.cuda.is_available():
        print("gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
except Exception as exc:  # report and let the stages fail visibly
    print("torch import failed:", exc)
missing = []
for name in ("numpy", "scipy", "skimage", "pluggy", "triton", "ptychodus_torch_plugin"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f"{name} ({type(exc).__name__}: {exc})")
print("missing:", ", ".join(missing) or "none", "(triton is only needed by +compile)")
EOF
} 2>&1 | tee "$OUT/machine.txt"

log "stage 1: eager variants and CUDA graphs, with profiles (limit ${STAGE1_S}s)"
timeout -k 15 "$STAGE1_S" "$PYTHON" benchmarks/throughput.py --device cuda --sizes 64,128 --gridsizes 1,2 \
    --variants fp32,bf16,bf16+cl,bf16+cl+graphs --profile --json "$OUT/throughput_cuda.json" \
    2>&1 | tee "$OUT/throughput_cuda.log"
log "stage 1 exit status ${PIPESTATUS[0]} (124 = time limit)"

log "stage 2: torch.compile (limit ${STAGE2_S}s)"
timeout -k 15 "$STAGE2_S" "$PYTHON" benchmarks/throughput.py --device cuda --sizes 64 --gridsizes 1,2 \
    --variants bf16+cl,bf16+cl+compile --repeats 2 --json "$OUT/throughput_cuda_compile.json" \
    2>&1 | tee "$OUT/throughput_cuda_compile.log"
log "stage 2 exit status ${PIPESTATUS[0]} (124 = time limit)"

log "stage 3: CUDA-only tests (limit ${STAGE3_S}s)"
timeout -k 10 "$STAGE3_S" "$PYTHON" -m pytest -q -p no:cacheprovider tests/training/test_cuda_paths.py \
    tests/physics/test_physics_device.py tests/reconstructors/test_iterative_cuda.py 2>&1 | tee "$OUT/cuda_tests.log"
log "stage 3 exit status ${PIPESTATUS[0]} (124 = time limit)"

log "stage 4: iterative vs pty-chi on the GPU (limit ${STAGE4_S}s)"
timeout -k 15 "$STAGE4_S" "$PYTHON" benchmarks/compare_ptychi.py --device cuda --cases images --skip-pinn \
    --epochs 100 --json "$OUT/compare_ptychi_cuda.json" 2>&1 | tee "$OUT/compare_ptychi_cuda.log"
log "stage 4 exit status ${PIPESTATUS[0]} (124 = time limit)"

GPUS=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)
if [ "${GPUS:-0}" -ge 2 ]; then
    log "stage 5: one scan across $GPUS GPUs (limit ${STAGE5_S}s)"
    timeout -k 15 "$STAGE5_S" "$PYTHON" benchmarks/large_scan.py --accelerator cuda --sizes 40000 --patch-size 64 \
        --ranks "1,$GPUS" --epochs 5 --threads "$(nproc)" --memory-budget 16GiB --data-dir "$OUT/large_scans" \
        --json "$OUT/large_scan_cuda.json" 2>&1 | tee "$OUT/large_scan_cuda.log"
    log "stage 5 exit status ${PIPESTATUS[0]} (124 = time limit)"
else
    log "stage 5 skipped: ${GPUS:-0} GPU(s) on this machine (one scan across GPUs needs 2 or more)"
fi

nvidia-smi --query-gpu=temperature.gpu,clocks.sm,power.draw --format=csv 2>&1 | tee -a "$OUT/machine.txt" || true
log "done; results in $OUT"
ls -l "$OUT"
