"""Hugging Face transformers generate on the models and prompts that `VectorLm.Bench sampling-cuda` exported.

For every exported folder (vocab<N>/, bf16 safetensors written by LlamaModel.SaveTo) and batch: LlamaForCausalLM in
bf16 on one GPU, do_sample with temperature 1 and top-p 0.95 (top-k off), exactly --new tokens (min_new_tokens), and
  * eager: the default dynamic cache;
  * compiled: cache_implementation="static", which makes generate compile the decoding forward (torch.compile,
    CUDA graphs); the first call of each shape compiles and is reported separately.
Writes a JSON list of rows {vocab, batch, hf_eager_tok_s, hf_compiled_tok_s, hf_compile_s}.
"""
import argparse, json, os, time

import torch
from transformers import LlamaForCausalLM


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--compiled", default="32000:64,32000:256", help="vocab:batch pairs run with the compiled static cache")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    prompts = json.load(open(os.path.join(args.export, "prompts.json")))
    compiled = {tuple(int(x) for x in p.split(":")) for p in args.compiled.split(",") if p}
    rows = []
    for key, ids in prompts.items():
        vocab = int(key[len("vocab"):])
        folder = os.path.join(args.export, key)
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
        for batch in [int(b) for b in args.batches.split(",")]:
            inputs = torch.tensor(ids[:batch], dtype=torch.long, device="cuda")
            mask = torch.ones_like(inputs)
            common = dict(input_ids=inputs, attention_mask=mask, do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                          max_new_tokens=args.new, min_new_tokens=args.new, pad_token_id=0)
            row = {"vocab": vocab, "batch": batch}
            with torch.inference_mode():
                model.generate(**{**common, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
                times = []
                for _ in range(args.repeats):
                    out, dt = timed(lambda: model.generate(**common, cache_implementation="dynamic"))
                    times.append(dt)
                new = (out.shape[1] - inputs.shape[1]) * batch
                row["hf_eager_tok_s"] = round(new / sorted(times)[len(times) // 2], 1)
                if (vocab, batch) in compiled:
                    _, compile_s = timed(lambda: model.generate(**common, cache_implementation="static"))
                    times = []
                    for _ in range(args.repeats):
                        out, dt = timed(lambda: model.generate(**common, cache_implementation="static"))
                        times.append(dt)
                    new = (out.shape[1] - inputs.shape[1]) * batch
                    row["hf_compiled_tok_s"] = round(new / sorted(times)[len(times) // 2], 1)
                    row["hf_compile_s"] = round(compile_s, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
        del model
        torch.cuda.empty_cache()
    json.dump({"torch": torch.__version__, "transformers": __import__("transformers").__version__,
               "gpu": torch.cuda.get_device_name(0), "rows": rows}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
