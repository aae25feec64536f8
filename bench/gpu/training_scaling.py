"""Assembles scaling-cuda.json from the rank-0 files of `VectorLm.Bench training --device cuda --scaling` runs and
checks that the two-node run gave the same losses as the single launch of the same world size.

usage: python3 training_scaling.py OUT.json COMMANDS.txt [--repeat RUN.json] RUN.json...
--repeat names a second single launch of a multi-GPU row: their loss difference is the run-to-run noise (CUDA's
attention and embedding backward kernels accumulate with atomics, so two identical launches differ in the last bits).
"""
import json, sys, datetime, subprocess

args = sys.argv[3:]
repeat = None
if args and args[0] == "--repeat":
    repeat, args = json.load(open(args[1])), args[2:]
out, commands, runs = sys.argv[1], sys.argv[2], [json.load(open(f)) for f in args]


def max_diff(a, b):
    return max(abs(x - y) for ra, rb in zip(a["losses_by_rank"], b["losses_by_rank"]) for x, y in zip(ra, rb))

one = next(r for r in runs if r["gpus"] == 1 and r["nodes"] == 1)
rows, notes = [], []
for r in runs:
    row = {k: r[k] for k in ("gpus", "nodes", "tok_s", "step_ms", "precision", "batch_per_gpu", "sequence", "steps")}
    row["speedup"] = round(r["tok_s"] / one["tok_s"], 3)
    row["efficiency"] = round(row["speedup"] / r["gpus"], 3)
    if r["nodes"] > 1:
        single = next((s for s in runs if s["gpus"] == r["gpus"] and s["nodes"] == 1), None)
        if single is not None:
            row["same_losses_as_single_launch"] = single["losses_by_rank"] == r["losses_by_rank"]
            row["tok_s_vs_single_launch"] = round(r["tok_s"] / single["tok_s"], 3)
            row["max_loss_difference"] = max_diff(single, r)
            if repeat is not None and repeat["gpus"] == r["gpus"]:
                row["run_to_run_max_loss_difference"] = max_diff(single, repeat)
    row["rank0_losses"] = r["losses_by_rank"][0]
    rows.append(row)
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.split("\n")[0]
except FileNotFoundError:
    gpu = "none (no nvidia-smi)"
json.dump({
    "benchmark": "scaling-cuda",
    "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    "machine": {"gpu": gpu, "gpus": len(set(r["gpus"] for r in runs))},
    "rows": rows,
    "commands": open(commands).read().splitlines(),
    "notes": [
        "350M Llama, bf16-mixed, Trainer.Step (AdamW, clip 1.0), batch 8 x 1024 per GPU (weak scaling): tok_s = gpus x 8192 / step_ms; step_ms = the slowest rank's median over the measured steps after 5 warm-up steps",
        "gradients are averaged by one NCCL all-reduce per dtype after the backward (TorchSharp 0.107 has no gradient hooks to overlap it with the backward)",
        "2 nodes x 1 GPU: two launchers on the one machine (--nnodes 2 --node-rank 0|1), CUDA_VISIBLE_DEVICES=0 and 1; losses compared with the single 2-GPU launch step by step, rank by rank; run_to_run_max_loss_difference compares two single 2-GPU launches (the noise floor: CUDA backward kernels with atomics are not bit-reproducible)",
        "4-GPU rows were not run: only 1- and 2-GPU machines were lent in this session",
    ],
}, open(out, "w"), indent=2)
print(json.dumps(rows, indent=1))
