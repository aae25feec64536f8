#!/usr/bin/env bash
# Training on the GPU machine, in one job (see README.md): PyTorch's reference step per precision, VectorLm's Trainer
# step per precision (training-cuda.json), then data-parallel scaling on 1 and 2 GPUs and the 2-GPU job as two "nodes"
# of one GPU each (scaling-cuda.json). Run from the repository root after `source bench/gpu/env.sh`.
#   bash bench/gpu/training.sh APP_DIR OUT_DIR
# APP_DIR holds the published VectorLm.Bench (carry.sh); OUT_DIR receives training-cuda.json, scaling-cuda.json,
# pytorch.json and training.log.
set -uo pipefail
APP=${1:?published app folder}
OUT=${2:?output folder}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
LOG="$OUT/training.log"
WORK=$(mktemp -d)
BENCH=(dotnet "$APP/VectorLm.Bench.dll" training --device cuda)
: > "$WORK/commands.txt"
run() { echo "+ $*" | tee -a "$LOG" "$WORK/commands.txt"; "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$LOG" 2>&1
status=0

# 1. PyTorch reference, then the SDK at the same precisions (the bench folds PyTorch's figures into its rows).
CUDA_VISIBLE_DEVICES=0 run "$PYTHON" "$HERE/training_pytorch.py" "$OUT/pytorch.json" || status=1
CUDA_VISIBLE_DEVICES=0 VECTORLM_BENCH_RESULTS="$OUT" run "${BENCH[@]}" --pytorch "$OUT/pytorch.json" || status=1

# 2. Scaling: 1 GPU, 2 GPUs in one launch, 2 "nodes" of 1 GPU (two launchers, one GPU each).
CUDA_VISIBLE_DEVICES=0 run "${BENCH[@]}" --scaling --nproc-per-node 1 --out "$WORK/g1.json" || status=1
CUDA_VISIBLE_DEVICES=0,1 run "${BENCH[@]}" --scaling --nproc-per-node 2 --out "$WORK/g2.json" || status=1
CUDA_VISIBLE_DEVICES=0,1 run "${BENCH[@]}" --scaling --nproc-per-node 2 --out "$WORK/g2-repeat.json" || status=1
PORT=29577
echo "+ two launchers: CUDA_VISIBLE_DEVICES=0|1 ${BENCH[*]} --scaling --nproc-per-node 1 --nnodes 2 --node-rank 0|1 --master-addr 127.0.0.1 --master-port $PORT" \
  | tee -a "$LOG" "$WORK/commands.txt"
CUDA_VISIBLE_DEVICES=0 NCCL_DEBUG=INFO "${BENCH[@]}" --scaling --nproc-per-node 1 --nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port $PORT \
  --out "$WORK/n2.json" > "$WORK/node0.log" 2>&1 &
node0=$!
CUDA_VISIBLE_DEVICES=1 "${BENCH[@]}" --scaling --nproc-per-node 1 --nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port $PORT \
  --out "$WORK/n2-node1.json" > "$WORK/node1.log" 2>&1 || status=1
wait $node0 || status=1
# NCCL's choice of transport between the two "nodes" (P2P over NVLink, SHM, or the network) explains their speed.
grep -E "via |Channel 00|NCCL version" "$WORK/node0.log" | head -8 | sed 's/^/[node0 nccl] /' >> "$LOG"
grep -v "NCCL INFO" "$WORK/node0.log" | sed 's/^/[node0] /' >> "$LOG"; sed 's/^/[node1] /' "$WORK/node1.log" >> "$LOG"

files=()
for f in g1 g2 n2; do [ -s "$WORK/$f.json" ] && files+=("$WORK/$f.json"); done
repeat=(); [ -s "$WORK/g2-repeat.json" ] && repeat=(--repeat "$WORK/g2-repeat.json")
run "$PYTHON" "$HERE/training_scaling.py" "$OUT/scaling-cuda.json" "$WORK/commands.txt" "${repeat[@]}" "${files[@]}" || status=1
rm -rf "$WORK"
exit $status
