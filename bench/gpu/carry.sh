#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for a run on the GPU machine, which has no .NET and no package registry:
#   .device/dotnet-runtime.tar.xz  the .NET runtime of this machine (no SDK), about 26 MB
#   .device/app/                   VectorLm.Bench and samples/FineTune published against the GPU machine's own libtorch (VectorLmTorch=system)
# On the GPU machine, bench/gpu/env.sh unpacks the runtime and sets DOTNET_ROOT, PATH and LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device
if [ ! -s .device/dotnet-runtime.tar.xz ]; then
  root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  (cd "$root" && tar -cf - --exclude=./sdk --exclude=./packs --exclude=./templates --exclude=./sdk-manifests \
      --exclude=./metadata --exclude=./shared/Microsoft.AspNetCore.App .) | xz -T2 -6 > .device/dotnet-runtime.tar.xz
fi
rm -rf .device/app
dotnet publish bench/VectorLm.Bench -c Release -r linux-x64 --self-contained false -p:VectorLmTorch=system \
  -p:VectorLmSkipGlibcxxPatch=true -o .device/app -v q -nologo
dotnet publish samples/FineTune -c Release -r linux-x64 --self-contained false -p:VectorLmTorch=system \
  -p:VectorLmSkipGlibcxxPatch=true -o .device/app -v q -nologo
# The device call carries at most 64 MiB: keep the x86-64 Linux llama.cpp builds for AVX2/AVX-512 and drop the rest.
(cd .device/app && find runtimes -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} + \
  && rm -rf runtimes/linux-x64/native/noavx runtimes/linux-x64/native/avx ./*.pdb ./*.xml \
  && find . -maxdepth 1 -type d -name '??' -exec rm -rf {} + && rm -rf pt-BR zh-Hans zh-Hant)
du -sh .device/*
