"""Assembles scaling-cuda.json from the rank-0 files of `VectorLm.Bench training --device cuda --scaling` runs and
checks that the two-node run gave the same losses as the single launch of the same world size.

usage: python3 training_scaling.py OUT.json COMMANDS.txt RUN.json...
"""
import json, sys, datetime, subprocess

out, commands, runs = sys.argv[1], sys.argv[2], [json.load(open(f)) for f in sys.argv[3:]]
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
            diffs = [abs(a - b) for ra, rb in zip(single["losses_by_rank"], r["losses_by_rank"]) for a, b in zip(ra, rb)]
            row["max_loss_difference"] = max(diffs)
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
        "2 nodes x 1 GPU: two launchers on the one machine (--nnodes 2 --node-rank 0|1), CUDA_VISIBLE_DEVICES=0 and 1; losses compared with the single 2-GPU launch step by step, rank by rank",
        "4-GPU rows were not run: only 1- and 2-GPU machines were lent in this session",
    ],
}, open(out, "w"), indent=2)
print(json.dumps(rows, indent=1))
