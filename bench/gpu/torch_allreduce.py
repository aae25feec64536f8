"""PyTorch's dist.all_reduce bus bandwidth, the reference for VectorLm's nccl backend.

Started by `VectorLm.Bench collectives nccl --torch-script this.py` through torchrun, right after VectorLm's own
measurement, so both run on the same machine in the same run. Rank 0 writes one JSON row to --out.
busbw as nccl-tests defines it: bytes / time * 2(n-1)/n.
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=1 << 30)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    n = dist.get_world_size()
    x = torch.zeros(args.bytes // 4, dtype=torch.float32, device="cuda")

    for _ in range(5):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(args.iters):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.iters
    # The slowest rank's time, as the C# side reports.
    t = torch.tensor([seconds], device="cuda", dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    seconds = t.item()
    if dist.get_rank() == 0:
        row = {
            "backend": "torch-nccl",
            "bytes": args.bytes,
            "busbw_gbs": args.bytes / seconds * 2 * (n - 1) / n / 1e9,
            "time_ms": round(seconds * 1e3, 4),
            "torch": torch.__version__,
            "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        }
        with open(args.out, "w") as f:
            json.dump(row, f)
        print(f"torch {torch.__version__}: all_reduce {args.bytes} bytes, busbw {row['busbw_gbs']:.1f} GB/s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
