"""Hugging Face transformers dense prefill: the peer of `shareprefill bench prefill`.

Loads the same model directory with AutoModelForCausalLM (torch_dtype bf16 by
default, or fp16) on CUDA and times one forward pass over a prompt of n tokens
(the whole prefill: every layer, last-position logits only where the installed
transformers supports logits_to_keep, use_cache=False unless --use-cache) with
CUDA events, median of --reps after --warmup runs, per length and per attention
implementation (--attn sdpa,eager,flash_attention_2; the ones that fail to load
are reported as skipped).

Prompt tokens: the tokens of --corpus (tokenized with the model's tokenizer,
repeated to the length) when given, else seeded random ids, as
`shareprefill bench prefill` does. Dense attention time does not depend on the
token values.

Output: --json FILE in the report envelope of bench/harness (bench "prefill",
impl "transformers", results.prefill rows with method "hf-<attn>-<dtype>",
n, median_ms, p20_ms, p80_ms, ...), so `shareprefill bench compare` joins it
with ours by n.

Usage: python3 bench/peers/hf_prefill.py --model DIR --json out/prefill-hf.json
       [--lens 1024,2048,4096,8192] [--dtype bf16|fp16] [--attn sdpa] [--reps 5] [--warmup 1]
       [--corpus FILE] [--use-cache]
"""
import argparse
import datetime
import inspect
import json
import os
import platform
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdpa_flex import commit, device_info, stat  # noqa: E402


def parse_lens(text):
    out = []
    for f in text.split(","):
        f = f.strip().lower()
        if not f:
            continue
        mul = 1
        if f.endswith("k"):
            mul, f = 1024, f[:-1]
        out.append(int(f) * mul)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--lens", default="1024,2048,4096,8192")
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--attn", default="sdpa", help="comma-separated attn_implementation values")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", default="")
    ap.add_argument("--use-cache", action="store_true")
    args = ap.parse_args()

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import AutoConfig, AutoModelForCausalLM  # noqa: PLC0415

    if not torch.cuda.is_available():
        sys.exit("hf_prefill.py: no CUDA device")
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    cfg = AutoConfig.from_pretrained(args.model)
    vocab = cfg.vocab_size
    lens = parse_lens(args.lens)
    corpus = None
    if args.corpus:
        from transformers import AutoTokenizer  # noqa: PLC0415

        tok = AutoTokenizer.from_pretrained(args.model)
        with open(args.corpus, encoding="utf-8", errors="replace") as f:
            corpus = tok(f.read())["input_ids"]
    rows, skipped, notes, kw = [], [], [], {}
    for attn in [a.strip() for a in args.attn.split(",") if a.strip()]:
        try:
            model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dt, attn_implementation=attn)
            model = model.to("cuda").eval()
        except Exception as e:  # noqa: BLE001
            skipped.append({"what": f"hf {attn}", "reason": repr(e)})
            print(f"skipping attn_implementation={attn}: {e!r}", flush=True)
            continue
        fwd = inspect.signature(model.forward).parameters
        kw = {"use_cache": args.use_cache}
        if "logits_to_keep" in fwd:
            kw["logits_to_keep"] = 1
        elif "num_logits_to_keep" in fwd:
            kw["num_logits_to_keep"] = 1
        else:
            notes.append("this transformers computes logits for every position (no logits_to_keep)")
        method = f"hf-{attn}-{args.dtype}"
        for n in lens:
            if corpus:
                ids = (corpus * (n // len(corpus) + 1))[:n]
            else:
                rng = random.Random(args.seed * 1000003 + n)
                ids = ([cfg.bos_token_id] if isinstance(cfg.bos_token_id, int) else []) + [
                    rng.randrange(vocab) for _ in range(n)]
                ids = ids[:n]
            x = torch.tensor([ids], dtype=torch.long, device="cuda")
            try:
                with torch.inference_mode():
                    for _ in range(args.warmup):
                        model(input_ids=x, **kw)
                    torch.cuda.synchronize()
                    ms = []
                    for _ in range(args.reps):
                        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s.record()
                        model(input_ids=x, **kw)
                        e.record()
                        e.synchronize()
                        ms.append(s.elapsed_time(e))
            except torch.cuda.OutOfMemoryError as e:
                skipped.append({"what": method, "n": n, "reason": f"out of memory: {e}"})
                torch.cuda.empty_cache()
                continue
            st = stat(ms)
            rows.append({"method": method, "n": n, **st, "tokens_per_s": n / (st["median_ms"] * 1e-3),
                         "density": 1, "timer": "cuda-event", "attn_implementation": attn, "dtype": args.dtype})
            print(f"{method} n={n}: {st['median_ms']:.2f} ms", flush=True)
        del model
        torch.cuda.empty_cache()
    rep = {
        "bench": "prefill", "impl": "transformers", "device": device_info(torch), "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"python": platform.python_version(), "torch": torch.__version__,
                 "transformers": transformers.__version__},
        "params": {"model": args.model, "lens": lens, "dtype": args.dtype, "attn": args.attn, "reps": args.reps,
                   "warmup": args.warmup, "use_cache": args.use_cache, "corpus": args.corpus, "forward_kwargs": kw},
        "results": {"model": args.model, "tokens": "corpus " + args.corpus if corpus else "random",
                    "prefill": rows, "skipped": skipped},
        "notes": notes + ["timer: CUDA events around model(input_ids); median of reps after warm-ups"],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rep, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
