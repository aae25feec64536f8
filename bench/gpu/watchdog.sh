#!/usr/bin/env bash
# The NCCL watchdog on 2 GPUs: (1) the worker's ordinary collectives on nccl with the watchdog polling (no false
# timeout); (2) rank 1 leaves mid-job while rank 0 is in NCCL all-reduces: rank 0 must fail by itself within the
# collective timeout (15 s here) plus the exit grace, with a message naming the collective and rank 1.
# On the GPU machine, from the repository root, with a .NET runtime in $DOTNET_ROOT:
#   bash bench/gpu/watchdog.sh <folder of the published VectorLm.Distributed.Worker> <output folder>
set -uo pipefail
WORKER=$1/VectorLm.Distributed.Worker.dll
OUT=${2:-.}
export DOTNET_ROOT=${DOTNET_ROOT:-/tmp/dotnet}
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} NCCL_NVLS_ENABLE=0 VECTORLM_TEST_BACKEND=nccl
unset RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT
nvidia-smi -L
echo "== 1. collectives on nccl"
timeout 120 "$DOTNET_ROOT/dotnet" "$WORKER" collectives 2 > "$OUT/collectives.log" 2>&1
c1=$?
cat "$OUT/collectives.log"
echo "== 2. rank 1 leaves; collective timeout 15 s"
s=$(date +%s.%N)
timeout 150 "$DOTNET_ROOT/dotnet" "$WORKER" rank1-leaves 2 15 > "$OUT/rank1-leaves.log" 2>&1
c2=$?
e=$(date +%s.%N)
cat "$OUT/rank1-leaves.log"
python3 - "$c1" "$c2" "$s" "$e" "$OUT" > "$OUT/watchdog.json" <<'PY'
import json, sys
c1, c2, s, e, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
log = open(f"{out}/rank1-leaves.log").read()
print(json.dumps({
  "command": "bash bench/gpu/watchdog.sh <published worker> <out>",
  "collectives_exit_code": c1,
  "rank1_leaves": {"collective_timeout_s": 15, "exit_code": c2, "wall_s_including_startup": round(e - s, 1),
                   "message_names_collective": "did not complete within 15 s" in log,
                   "message_names_rank_1": "Rank 1 of 2 closed its connection" in log},
}, indent=1))
PY
cat "$OUT/watchdog.json"
