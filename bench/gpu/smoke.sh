#!/usr/bin/env bash
# Run from the repository root after bench/gpu/carry.sh (and samples/Grpo published into .device/app the same way).
# Final-code smoke run on one H200: FineTune and a short GRPO run on CUDA (torch engine picked by Auto), option validation.
source bench/gpu/env.sh
cd .device/app
echo "# code of commit $(cat ../commit.txt), published with bench/gpu/carry.sh (+ samples/Grpo)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "== dotnet FineTune.dll --steps 60 --sample-every 30"
timeout 150 dotnet FineTune.dll --steps 60 --sample-every 30; echo "rc=$?"
echo "== dotnet FineTune.dll --steps -5"
timeout 60 dotnet FineTune.dll --steps -5; echo "rc=$?"
echo "== dotnet Grpo.dll --steps 40 --eval-every 20 --metrics-file \$OUT/grpo-metrics.jsonl"
timeout 240 dotnet Grpo.dll --steps 40 --eval-every 20 --metrics-file $OUT/grpo-metrics.jsonl; echo "rc=$?"
