"""Attention structure of a model on the GPU: the 95 %-mass block density per head.

The check of the structured vehicle (`shareprefill bench gen-model --kind
structured`, docs/benchmarks.md#the-structured-vehicle) at lengths the CPU
check (`shareprefill bench density`) cannot reach. It loads the model
directory with transformers' LlamaForCausalLM (fp16 weights, SDPA only for the
forward pass that gives each layer's input, captured by a forward pre-hook),
then, per layer, computes the queries and keys as the model does
(input_layernorm, q_proj/k_proj, RoPE with model.model.rotary_emb.inv_freq in
the rotate_half layout) in float32 and the causal softmax one query block of
B rows at a time (never n x n), and reports per head:

  density  sum over query blocks r of k(r), the fewest B-token key blocks
           holding --mass (0.95) of block r's attention, divided by the causal
           blocks sum(r + 1), as `shareprefill bench density` defines it;
  sink     mean attention on token 0; local: within distance < B;
  stripe   mean attention on the stripe tokens (structure.json's
           stripe_tokens), when the model has a structure.json.

Prompt: --prompt structured (default) rebuilds StructuredPrompt of
bench/harness/structured.go exactly (stateless splitmix64 draws, integer
arithmetic), so the tokens are those `shareprefill bench prefill --prompt
structured` and `bench density` use; --prompt random draws seeded ids.
`--print-prompt N` prints the first N structured ids as JSON and exits
without importing torch (the Go tests compare it with StructuredPrompt).

Output: Markdown on stdout; --json FILE in the report envelope of
bench/harness (bench "density", impl "transformers", results.rows with n,
layer, head, kind, density, sink, local, stripe; results.layers with the
mean, min and max per n and layer, layer -1 being all layers).

Usage: python3 bench/peers/structure.py --model DIR [--lens 16k,32k,64k,128k]
       [--layers 0,1] [--json out/structure.json] [--per-head]
"""
import argparse
import datetime
import json
import math
import os
import platform
import sys

MASK64 = (1 << 64) - 1
PHI = 0x9E3779B97F4A7C15
BOS, STRIPE_A, STRIPE_B = 256, 0x1E, 0x1D
ALPHABET = [0x0A] + list(range(0x20, 0x7F))


def prompt_draw(seed, stream, i):
    """promptDraw of bench/harness/structured.go: splitmix64's output function."""
    z = (seed * PHI + stream * 0xD1B54A32D192ED03 + i + PHI) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def structured_prompt(n, seed, a_every=2048, b_every=16384):
    """StructuredPrompt of bench/harness/structured.go, token for token."""
    out = [BOS] if n > 0 else []
    i = 1
    while len(out) < n:
        j = i - 1
        if j % a_every == prompt_draw(seed, 2, j // a_every) % a_every:
            out.append(STRIPE_A)
        elif j % b_every == prompt_draw(seed, 3, j // b_every) % b_every:
            out.append(STRIPE_B)
        else:
            out.append(ALPHABET[prompt_draw(seed, 1, i) % len(ALPHABET)])
        i += 1
    return out


def parse_ints(text):
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


def layer_density(torch, q, k, n, block, mass, stripe_idx):
    """Per-head density, sink, local and stripe shares of one layer.

    q: (Hq, n, D) float32 with RoPE; k: (Hkv, n, D) float32 with RoPE.
    """
    hq, _, d = q.shape
    hkv = k.shape[0]
    g = hq // hkv
    nb = (n + block - 1) // block
    scale = 1.0 / math.sqrt(d)
    kept = torch.zeros(hq, dtype=torch.float64, device=q.device)
    sink = torch.zeros(hq, dtype=torch.float64, device=q.device)
    local = torch.zeros(hq, dtype=torch.float64, device=q.device)
    stripe = torch.zeros(hq, dtype=torch.float64, device=q.device)
    for r in range(nb):
        q0, q1 = r * block, min(n, (r + 1) * block)
        m, nk = q1 - q0, q1
        qb = q[:, q0:q1].reshape(hkv, g, m, d)
        s = torch.einsum("kgmd,knd->kgmn", qb, k[:, :nk]) * scale  # (Hkv, G, m, nk)
        rows = torch.arange(q0, q1, device=q.device)
        cols = torch.arange(nk, device=q.device)
        s.masked_fill_(cols[None, :] > rows[:, None], float("-inf"))
        p = torch.softmax(s, dim=-1).reshape(hq, m, nk)
        del s
        pad = (r + 1) * block - nk
        pm = torch.nn.functional.pad(p, (0, pad)) if pad else p
        bmass = pm.reshape(hq, m, r + 1, block).sum(dim=(1, 3))  # (Hq, r+1)
        srt, _ = torch.sort(bmass, dim=1, descending=True)
        cum = torch.cumsum(srt, dim=1)
        kept += ((cum < mass * m * (1 - 1e-6)).sum(dim=1) + 1).clamp(max=r + 1).double()
        valid = rows >= 1  # row 0 attends only to itself
        sink += p[:, :, 0][:, valid].sum(dim=1).double()
        lo = max(0, q0 - block + 1)
        near = (rows[:, None] - cols[None, lo:] < block) & (cols[None, lo:] <= rows[:, None])
        local += (p[:, :, lo:] * near[None]).sum(dim=2)[:, valid].sum(dim=1).double()
        if stripe_idx is not None:
            idx = stripe_idx[stripe_idx < nk]
            stripe += p[:, :, idx].sum(dim=2)[:, valid].sum(dim=1).double()
        del p, pm
    causal = nb * (nb + 1) / 2
    rows_n = n - 1
    return ((kept / causal).tolist(), (sink / rows_n).tolist(), (local / rows_n).tolist(),
            (stripe / rows_n).tolist() if stripe_idx is not None else [None] * hq)


def measure(torch, model, ids, layers, block, mass, stripe_idx, device):
    """Yield (layer, (density, sink, local, stripe) per head) for each layer.

    model is a LlamaForCausalLM (or anything with its module names); each
    layer's input is captured by a forward pre-hook during one forward pass,
    independent of how the installed transformers returns hidden states.
    """
    cfg = model.config
    hq, hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // hq
    n = len(ids)
    captured = {}

    def grab(layer):
        def hook(module, args, kwargs=None):
            h = (kwargs or {}).get("hidden_states", args[0] if args else None)
            captured[layer] = h.detach()
        return hook

    handles = []
    for layer in layers:
        mod = model.model.layers[layer]
        try:
            handles.append(mod.register_forward_pre_hook(grab(layer), with_kwargs=True))
        except TypeError:  # torch < 2.0: positional arguments only
            handles.append(mod.register_forward_pre_hook(grab(layer)))
    with torch.inference_mode():
        try:
            model.model(input_ids=torch.tensor([ids], dtype=torch.long, device=device), use_cache=False)
        finally:
            for hd in handles:
                hd.remove()
        # RoPE as the model applies it (rotate_half layout), in float32.
        rot = model.model.rotary_emb
        ang = torch.arange(n, device=device, dtype=torch.float32)[:, None] * rot.inv_freq.float()[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        scaling = float(getattr(rot, "attention_scaling", 1.0))
        cos, sin = ang.cos() * scaling, ang.sin() * scaling

        def rope(t):  # t: (heads, n, D)
            half = t.shape[-1] // 2
            return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin

        def proj(lin, h):
            return torch.nn.functional.linear(h, lin.weight.float(), None if lin.bias is None else lin.bias.float())

        for layer in layers:
            blk = model.model.layers[layer]
            h = blk.input_layernorm(captured.pop(layer)[0]).float()
            q = rope(proj(blk.self_attn.q_proj, h).view(n, hq, d).transpose(0, 1))
            k = rope(proj(blk.self_attn.k_proj, h).view(n, hkv, d).transpose(0, 1))
            del h
            out = layer_density(torch, q.contiguous(), k.contiguous(), n, block, mass, stripe_idx)
            del q, k
            yield layer, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="model directory (bench gen-model --kind structured)")
    ap.add_argument("--lens", default="16k,32k,64k,128k")
    ap.add_argument("--layers", default="all", help="comma-separated layer indices or all")
    ap.add_argument("--prompt", choices=["structured", "random"], default="structured")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stripe-a-every", type=int, default=2048)
    ap.add_argument("--stripe-b-every", type=int, default=16384)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--mass", type=float, default=0.95)
    ap.add_argument("--json", default="")
    ap.add_argument("--per-head", action="store_true", help="print the per-head table too")
    ap.add_argument("--print-prompt", type=int, default=0, metavar="N",
                    help="print the first N structured prompt ids as JSON and exit (no torch)")
    args = ap.parse_args()
    if args.print_prompt > 0:
        print(json.dumps(structured_prompt(args.print_prompt, args.seed, args.stripe_a_every, args.stripe_b_every)))
        return
    if not args.model:
        sys.exit("structure.py: --model is required")

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import LlamaForCausalLM  # noqa: PLC0415

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sdpa_flex import commit, device_info  # noqa: PLC0415

    if not torch.cuda.is_available():
        sys.exit("structure.py: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float16, attn_implementation="sdpa")
    model = model.to("cuda").eval()
    cfg = model.config
    hq = cfg.num_attention_heads
    layers = list(range(cfg.num_hidden_layers)) if args.layers == "all" else parse_ints(args.layers)
    structure = None
    spath = os.path.join(args.model, "structure.json")
    if os.path.exists(spath):
        with open(spath) as f:
            structure = json.load(f)
    kinds = {}
    if structure:
        for h in structure["heads"]:
            kinds[(h["layer"], h["head"])] = h["kind"]
    rows, summary = [], []
    for n in parse_ints(args.lens):
        if args.prompt == "structured":
            ids = structured_prompt(n, args.seed, args.stripe_a_every, args.stripe_b_every)
        else:
            import random  # noqa: PLC0415

            rng = random.Random(args.seed * 1000003 + n)
            ids = [cfg.bos_token_id] + [rng.randrange(cfg.vocab_size) for _ in range(n - 1)]
        stripe_idx = None
        if structure:
            st = set(structure["stripe_tokens"])
            stripe_idx = torch.tensor([j for j, t in enumerate(ids) if t in st], dtype=torch.long, device="cuda")
        for layer, (dens, sink, local, stripe) in measure(torch, model, ids, layers, args.block, args.mass,
                                                           stripe_idx, "cuda"):
            for i in range(hq):
                rows.append({"n": n, "layer": layer, "head": i, "kind": kinds.get((layer, i), ""),
                             "density": dens[i], "sink": sink[i], "local": local[i], "stripe": stripe[i]})
            summary.append({"n": n, "layer": layer, "heads": hq, "density": sum(dens) / hq,
                            "min": min(dens), "max": max(dens)})
            print(f"n={n} layer {layer}: mean density {sum(dens) / hq:.3f} (min {min(dens):.3f}, "
                  f"max {max(dens):.3f})", flush=True)
        all_n = [r["density"] for r in rows if r["n"] == n]
        summary.append({"n": n, "layer": -1, "heads": len(all_n), "density": sum(all_n) / len(all_n),
                        "min": min(all_n), "max": max(all_n)})
        torch.cuda.empty_cache()

    print(f"\n### {args.mass:.0%}-mass block density (B = {args.block}), {args.prompt} prompt\n")
    print("| n | layer | heads | mean density | min | max |\n|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['n']} | {'all' if s['layer'] < 0 else s['layer']} | {s['heads']} | {s['density']:.3f} | "
              f"{s['min']:.3f} | {s['max']:.3f} |")
    if args.per_head:
        print("\n| n | layer | head | kind | density | sink | local <B | stripe |\n|---|---|---|---|---|---|---|---|")
        for r in rows:
            st = "" if r["stripe"] is None else f"{r['stripe']:.3f}"
            print(f"| {r['n']} | {r['layer']} | {r['head']} | {r['kind']} | {r['density']:.3f} | {r['sink']:.3f} | "
                  f"{r['local']:.3f} | {st} |")
    if args.json:
        rep = {
            "bench": "density", "impl": "transformers", "device": device_info(torch), "commit": commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
            "params": {"model": args.model, "lens": parse_ints(args.lens), "layers": layers, "prompt": args.prompt,
                       "seed": args.seed, "block": args.block, "mass": args.mass,
                       "stripe_a_every": args.stripe_a_every, "stripe_b_every": args.stripe_b_every},
            "results": {"rows": rows, "layers": summary},
            "notes": ["exact float32 attention (no TF32) from fp16 weights, one query block at a time; the forward "
                      "pass that gives each layer's input uses SDPA"],
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
