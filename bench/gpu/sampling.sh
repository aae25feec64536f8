#!/usr/bin/env bash
# The torch sampling engine against Hugging Face generate on one GPU (issue 9), in one run on the same weights:
#   1. VectorLm.Bench sampling-cuda: engine tok/s (349M Llama, vocab 32000 and 259, prompts of 32 tokens, 256 new,
#      temperature 1, top-p 0.95, batches 1/8/64/256), swap vs memcpy, cache release; exports the models (HF folders)
#      and prompts;
#   2. the KV cache release again with PYTORCH_NO_CUDA_MEMORY_CACHING=1, so the freed bytes reach the driver;
#   3. sampling_hf.py: transformers generate, eager (dynamic cache) and compiled (static cache), on the exported folders;
#   4. merges the HF rows into bench/results/sampling-cuda.json (fields hf_eager_tok_s, hf_compiled_tok_s, ratios), with the
#      command (BENCH_ARGS and HF_ARGS included) and, when VECTORLM_COMMIT is set, the code's commit.
# Prepare with bench/gpu/carry.sh, then on the GPU machine from the repository root:
#   source bench/gpu/env.sh && CUDA_VISIBLE_DEVICES=0 bash bench/gpu/sampling.sh .device/app [results folder]
set -uo pipefail

if [[ $# -lt 1 || ! -f "$1/VectorLm.Bench.dll" ]]; then
  echo "usage: $0 <folder of the published VectorLm.Bench> [results folder]" >&2
  exit 2
fi
BENCH_DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RESULTS=${2:-$REPO/bench/results}
mkdir -p "$RESULTS"
export VECTORLM_BENCH_RESULTS=$RESULTS
PYTHON=${PYTHON:-python3}
DOTNET="${DOTNET_ROOT:-/tmp/dotnet}/dotnet"
EXPORT=${EXPORT:-/tmp/vectorlm-sampling-cuda}
BENCH_ARGS=${BENCH_ARGS:-}

echo "== machine"; nvidia-smi -L; uptime
echo "== 1. torch engine"
"$DOTNET" "$BENCH_DIR/VectorLm.Bench.dll" sampling-cuda --export "$EXPORT" $BENCH_ARGS || echo "engine benchmark FAILED ($?)"
echo "== 2. cache release without the caching allocator"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 VECTORLM_BENCH_RESULTS=/tmp/vectorlm-release "$DOTNET" "$BENCH_DIR/VectorLm.Bench.dll" sampling-cuda \
  --release-only --vocabs 32000 --batches 256 || echo "release measurement FAILED ($?)"
echo "== 3. Hugging Face generate"
"$PYTHON" "$HERE/sampling_hf.py" --export "$EXPORT" --out /tmp/vectorlm-hf.json ${HF_ARGS:-} || echo "HF benchmark FAILED ($?)"
echo "== 4. merge"
"$PYTHON" - "$RESULTS/sampling-cuda.json" /tmp/vectorlm-hf.json /tmp/vectorlm-release/sampling-cuda.json "$0 $*" <<'PY'
import json, sys, os
path, hf_path, release_path, command = sys.argv[1:5]
doc = json.load(open(path))
if os.path.exists(hf_path):
    hf = json.load(open(hf_path))
    by_key = {(r["vocab"], r["batch"]): r for r in hf["rows"]}
    for row in doc["rows"]:
        h = by_key.get((row["vocab"], row["batch"]), {})
        row["hf_eager_tok_s"] = h.get("hf_eager_tok_s")
        row["hf_compiled_tok_s"] = h.get("hf_compiled_tok_s")
        if h.get("hf_eager_tok_s"): row["vs_hf_eager"] = round(row["engine_tok_s"] / h["hf_eager_tok_s"], 2)
        if h.get("hf_compiled_tok_s"): row["vs_hf_compiled"] = round(row["engine_tok_s"] / h["hf_compiled_tok_s"], 2)
        if h.get("hf_compile_s"): row["hf_compile_s"] = h["hf_compile_s"]
    doc["hf"] = {k: hf[k] for k in ("torch", "transformers", "gpu")}
if os.path.exists(release_path):
    doc["cache_release_no_caching_allocator"] = json.load(open(release_path)).get("cache_release")
doc["command"] = "source bench/gpu/env.sh && CUDA_VISIBLE_DEVICES=0 " + " ".join(f"{k}='{os.environ[k]}'" for k in ("BENCH_ARGS", "HF_ARGS") if os.environ.get(k)) + " bash " + command
if os.environ.get("VECTORLM_COMMIT"): doc["code_commit"] = os.environ["VECTORLM_COMMIT"]
json.dump(doc, open(path, "w"), indent=2)
print(json.dumps(doc, indent=1))
PY
