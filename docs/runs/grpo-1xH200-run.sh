#!/usr/bin/env bash
# GRPO throughput run of samples/Grpo (published from branch grpo) with a 349M Llama on 1 and 2 H200s.
set -uo pipefail
mkdir -p /tmp/dotnet && tar -xJf .carry-runtime/dotnet-runtime.tar.xz -C /tmp/dotnet
export DOTNET_ROOT=/tmp/dotnet PATH=/tmp/dotnet:$PATH NCCL_NVLS_ENABLE=0
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))'):${LD_LIBRARY_PATH:-}
app=.carry-grpo/app/Grpo.dll
cfg=.carry-grpo/config-350m.json
nproc > $OUT/machine.txt; nvidia-smi --query-gpu=name,memory.total --format=csv >> $OUT/machine.txt
nvidia-smi --query-gpu=index,memory.used --format=csv,noheader -lms 500 > $OUT/gpu-memory.csv &
smi=$!
common="--model-config $cfg --warm-start-steps 3 --steps 8 --prompts-per-step 32 --group-size 8 --eval-every 100 --eval-prompts 40"
echo "== 1 GPU" > $OUT/log.txt
CUDA_VISIBLE_DEVICES=0 timeout 150 dotnet $app $common --metrics-file $OUT/gpu1.jsonl >> $OUT/log.txt 2>&1; echo "rc=$?" >> $OUT/log.txt
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
echo "== 2 GPUs" >> $OUT/log.txt
timeout 85 dotnet $app $common --world-size 2 --metrics-file $OUT/gpu2.jsonl >> $OUT/log.txt 2>&1; echo "rc=$?" >> $OUT/log.txt
fi
kill $smi
