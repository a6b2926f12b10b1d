"""Hugging Face transformers greedy decode with a static KV cache: the peer of
`shareprefill bench decode`.

For each prompt length n, model.generate(cache_implementation="static",
do_sample=False) is timed with CUDA events for G new tokens and for 1 new
token (min_new_tokens forces the length); the decode rate is
(G − 1) / (t_G − t_1), which leaves out the prefill and the first token as
ours does. --compile adds torch.compile of the forward pass (mode
"reduce-overhead", CUDA graphs), the configuration transformers documents for
fast static-cache decoding; its compile time is excluded by the warm-up.

Output: --json FILE in the report envelope of bench/harness (bench "decode",
impl "transformers", results.decode rows with n, gen, tokens_per_s,
ms_per_token).

Usage: python3 bench/peers/hf_decode.py --model DIR --json out/decode-hf.json
       [--lens 4096,32768] [--gen 128] [--dtype bf16|fp16] [--reps 3] [--warmup 1] [--compile]
"""
import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_prefill import parse_lens  # noqa: E402
from sdpa_flex import commit, device_info  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--lens", default="4096,32768")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if args.gen < 2:
        sys.exit("hf_decode.py: --gen must be at least 2")

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    if not torch.cuda.is_available():
        sys.exit("hf_decode.py: no CUDA device")
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dt, attn_implementation="sdpa").to("cuda").eval()
    if args.compile:
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    cfg = model.config
    method = f"hf-static-{args.dtype}" + ("-compiled" if args.compile else "")
    rows, skipped = [], []

    def timed(x, new):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, cache_implementation="static", pad_token_id=0)
        e.record()
        e.synchronize()
        if out.shape[1] != x.shape[1] + new:
            raise RuntimeError(f"generated {out.shape[1] - x.shape[1]} tokens, asked {new}")
        return s.elapsed_time(e)

    for n in parse_lens(args.lens):
        rng = random.Random(args.seed * 1000003 + n)
        ids = ([cfg.bos_token_id] if isinstance(cfg.bos_token_id, int) else []) + [rng.randrange(cfg.vocab_size) for _ in range(n)]
        x = torch.tensor([ids[:n]], dtype=torch.long, device="cuda")
        try:
            with torch.inference_mode():
                for _ in range(args.warmup):
                    timed(x, args.gen)
                    timed(x, 1)
                rates = []
                for _ in range(args.reps):
                    tg, t1 = timed(x, args.gen), timed(x, 1)
                    rates.append((args.gen - 1) / ((tg - t1) * 1e-3))
        except Exception as e:  # noqa: BLE001
            skipped.append({"what": method, "n": n, "reason": repr(e)[:300]})
            print(f"{method} n={n}: skipped: {e!r}", flush=True)
            torch.cuda.empty_cache()
            continue
        med = statistics.median(rates)
        rows.append({"method": method, "n": n, "gen": args.gen, "tokens_per_s": med, "ms_per_token": 1e3 / med,
                     "reps": len(rates), "rates": rates})
        print(f"{method} n={n}: {med:.1f} tokens/s", flush=True)
    rep = {
        "bench": "decode", "impl": "transformers", "device": device_info(torch), "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__},
        "params": vars(args),
        "results": {"model": args.model, "decode": rows, "skipped": skipped},
        "notes": ["rate = (gen − 1) / (t(generate gen tokens) − t(generate 1 token)), CUDA events, static cache, greedy; median of reps"],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rep, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
