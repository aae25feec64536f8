"""PyTorch reference for `VectorLm.Bench training --device cuda`: the same 350M Llama (transformers LlamaForCausalLM,
init std 0.02), batch 8 x 1024 of random tokens, AdamW (betas 0.9/0.95, weight decay 0.1 on matrices, default foreach
implementation), clip_grad_norm 1.0, loss.item() once per step; median step time per precision.

usage: python3 training_pytorch.py OUT.json [--steps 10] [--precisions 32-true,tf32,bf16-mixed,bf16-true]
"""
import argparse, json, statistics, time
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--sequence", type=int, default=1024)
p.add_argument("--precisions", default="32-true,tf32,bf16-mixed,bf16-true")
a = p.parse_args()

config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=24,
                     num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=a.sequence,
                     rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.02)
dev = torch.device("cuda")


def measure(precision):
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.manual_seed(1)
    model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa").to(dev)
    if precision == "bf16-true":
        model = model.to(torch.bfloat16)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "norm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, config.vocab_size, (a.batch, a.sequence), generator=g).to(dev)
    labels = torch.randint(0, config.vocab_size, (a.batch, a.sequence), generator=g).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, config.vocab_size), labels.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    n = sum(p.numel() for p in model.parameters())
    del model, opt
    torch.cuda.empty_cache()
    return statistics.median(times), n


rows = []
for precision in a.precisions.split(","):
    ms, n = measure(precision)
    print(f"pytorch 350M {precision}: {ms:.1f} ms ({n / 1e6:.1f}M parameters)", flush=True)
    rows.append({"config": "350M", "precision": precision, "pytorch_ms": round(ms, 2),
                 "pytorch_tok_s": round(a.batch * a.sequence / ms * 1000), "params_M": round(n / 1e6, 2)})
setup = {"torch": torch.__version__, "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name(0),
         "batch": a.batch, "sequence": a.sequence, "steps": a.steps, "warmup": a.warmup}
with open(a.out, "w") as f:
    json.dump({"setup": setup, "rows": rows}, f, indent=2)
