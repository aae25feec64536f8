#!/usr/bin/env bash
# VectorLm nccl backend on a machine with 2+ GPUs: correctness of every NCCL collective, the 1 GiB all-reduce bus
# bandwidth against PyTorch's dist.all_reduce in the same run, and the desync check under VECTORLM_DESYNC_DEBUG=1.
#
# The GPU machine has no .NET SDK. On the dev machine, bench/gpu/carry.sh publishes the bench into .device/app with
# -p:VectorLmTorch=system (no libtorch in the output: TorchSharp loads the installed PyTorch's CUDA libtorch) and packs
# a .NET runtime; carry .device, then on the GPU machine, from the repository root:
#   source bench/gpu/env.sh && bash bench/gpu/nccl.sh .device/app   # results in bench/results/collectives-nccl.json
# Environment: DOTNET_ROOT (default: /tmp/dotnet, where env.sh unpacks it), PYTHON (default: python3), CUDA_VISIBLE_DEVICES to pick 2 GPUs.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/VectorLm.Bench.dll" ]]; then
  echo "usage: $0 <folder of the published VectorLm.Bench (holding VectorLm.Bench.dll)> [results folder]" >&2
  exit 2
fi
BENCH_DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export VECTORLM_BENCH_RESULTS=${2:-$REPO/bench/results}
PYTHON=${PYTHON:-python3}
export DOTNET_ROOT=${DOTNET_ROOT:-/tmp/dotnet}
DOTNET="$DOTNET_ROOT/dotnet"
[[ -x "$DOTNET" ]] || { echo "no .NET runtime at $DOTNET_ROOT (set DOTNET_ROOT)" >&2; exit 2; }

TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
NCCL_LIB=$("$PYTHON" -c 'import os, nvidia.nccl as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$TORCH_LIB${NCCL_LIB:+:$NCCL_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
unset RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT

echo "== machine"
nvidia-smi -L
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version(), "gpus", torch.cuda.device_count())'
"$DOTNET" --list-runtimes
if (( $("$PYTHON" -c 'import torch; print(torch.cuda.device_count())') < 2 )); then
  echo "need at least 2 GPUs" >&2; exit 2
fi

echo "== 1. correctness of every NCCL collective, bandwidth 1 MB..1 GiB, PyTorch dist.all_reduce 1 GiB (same run)"
"$DOTNET" "$BENCH_DIR/VectorLm.Bench.dll" collectives nccl --torch-script "$HERE/torch_allreduce.py" --python "$PYTHON"

echo "== 2. desync detection on nccl (VECTORLM_DESYNC_DEBUG=1): Barrier on rank 0, AllReduce on rank 1 must fail"
set +e
OUT=$(VECTORLM_DESYNC_DEBUG=1 VECTORLM_COLLECTIVE_TIMEOUT=120 timeout 300 "$DOTNET" "$BENCH_DIR/VectorLm.Bench.dll" collectives nccl-desync 2>&1)
CODE=$?
set -e
echo "$OUT"
if [[ $CODE -ne 0 ]] && grep -q "collective desync at collective #0" <<<"$OUT" && grep -q "AllReduce(Sum) float32\[4\]" <<<"$OUT"; then
  echo "desync check: OK (exit $CODE, error names both calls)"
else
  echo "desync check: FAILED (exit $CODE)" >&2; exit 1
fi

echo "== done: results in $VECTORLM_BENCH_RESULTS/collectives-nccl.json"
