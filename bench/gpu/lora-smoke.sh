#!/usr/bin/env bash
# Run from the repository root after bench/gpu/carry.sh (and samples/Grpo published into .device/app the same way).
# LoRA from outside the tests on one GPU: both samples with --lora-rank, the torch engine picked by Auto on CUDA.
source bench/gpu/env.sh
cd .device/app
echo "# code of commit $(cat ../commit.txt)"
echo "== dotnet FineTune.dll --steps 60 --sample-every 30 --lora-rank 8"
timeout 150 dotnet FineTune.dll --steps 60 --sample-every 30 --lora-rank 8; echo "rc=$?"
echo "== dotnet Grpo.dll --steps 20 --eval-every 10 --lora-rank 16"
timeout 200 dotnet Grpo.dll --steps 20 --eval-every 10 --lora-rank 16; echo "rc=$?"
