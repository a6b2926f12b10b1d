"""PyTorch SDPA causal fp16 attention: an anchor for the dense attention rows
of `shareprefill bench kernels` (sdpa_flex.py is the one the harness joins).

For each length S it times torch.nn.functional.scaled_dot_product_attention
(is_causal=True, fp16, [1, H, S, D] layout) with Hq query heads and Hkv
key/value heads (enable_gqa=True where the installed torch has it, else the
KV heads are expanded beforehand, outside the timed region), with CUDA events
after a warm-up, and prints the median over reps as a Markdown table. Causal
FLOPs are counted as 4*S^2*D*Hq/2. With --json FILE it writes the rows as JSON
(kind "sdpa"; the format of the retired bench/attention tool, see
bench/RESULTS.md).

--backend picks SDPA's implementation (torch.nn.attention.sdpa_kernel):
"default" (PyTorch's choice; on the H100 it matched the cuDNN backend),
"flash" (FlashAttention-2: warp-level mma.sync, the instruction class that
Vulkan cooperative matrices reach), "cudnn", "efficient" or "math"; with a
named backend the KV heads are expanded outside the timed region.

Usage: python3 bench/peers/attention.py [--lens 4k,8k,16k,32k,64k] [--hq 32]
       [--hkv 8] [--d 128] [--reps 5] [--warmup 2] [--backend default]
       [--json FILE]
"""
import argparse
import contextlib
import inspect
import json


def parse_lens(text):
    out = []
    for f in text.split(","):
        f = f.strip().lower()
        if not f:
            continue
        mul = 1
        if f.endswith("k"):
            mul, f = 1024, f[:-1]
        v = int(f) * mul
        if v <= 0:
            raise SystemExit(f"bad length {f!r}")
        out.append(v)
    return out


def median(ts):
    ts = sorted(ts)
    n = len(ts)
    return ts[n // 2] if n % 2 else (ts[n // 2 - 1] + ts[n // 2]) / 2


def bench(torch, F, S, hq, hkv, d, reps, warmup, gqa_native, backend="default"):
    g = torch.Generator(device="cuda").manual_seed(S)
    q = torch.randn(1, hq, S, d, dtype=torch.float16, device="cuda", generator=g)
    k = torch.randn(1, hkv, S, d, dtype=torch.float16, device="cuda", generator=g)
    v = torch.randn(1, hkv, S, d, dtype=torch.float16, device="cuda", generator=g)
    kw = {"is_causal": True}
    if hq != hkv:
        if gqa_native and backend == "default":
            kw["enable_gqa"] = True
        else:
            k = k.repeat_interleave(hq // hkv, dim=1)
            v = v.repeat_interleave(hq // hkv, dim=1)
    ctx = contextlib.nullcontext()
    if backend != "default":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx = sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                           "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[backend])
    with ctx:
        for _ in range(warmup):
            o = F.scaled_dot_product_attention(q, k, v, **kw)
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            o = F.scaled_dot_product_attention(q, k, v, **kw)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))  # ms
    # Spot check: the last query row of every head against fp32 math.
    kk = k if k.shape[1] == hq else k.repeat_interleave(hq // hkv, dim=1)
    vv = v if v.shape[1] == hq else v.repeat_interleave(hq // hkv, dim=1)
    sc = (q[:, :, -1:, :].float() @ kk.float().transpose(-1, -2)) / d**0.5
    ref = torch.softmax(sc, dim=-1) @ vv.float()
    err = ((o[:, :, -1:, :].float() - ref).norm() / ref.norm()).item()
    med = median(times)
    flops = 4 * S * S * d * hq / 2
    return {
        "kind": "sdpa" if backend == "default" else "sdpa-" + backend, "s": S, "hq": hq, "hkv": hkv, "d": d,
        "density": 1, "actual_density": 1,
        "median_ms": med, "min_ms": min(times),
        "tflops": flops / (med * 1e-3) / 1e12,
        "timer": "cuda-event", "check_rel_err": err,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lens", default="4k,8k,16k,32k,64k")
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--hkv", type=int, default=8)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--backend", default="default", choices=["default", "flash", "cudnn", "efficient", "math"])
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.hq % a.hkv:
        raise SystemExit("--hq must be a multiple of --hkv")
    import torch
    import torch.nn.functional as F

    try:
        gqa_native = "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):
        gqa_native = False
    if not gqa_native:
        try:  # builtins may hide their signature: probe once
            t = torch.zeros(1, 2, 4, 8, dtype=torch.float16, device="cuda")
            F.scaled_dot_product_attention(t, t[:, :1], t[:, :1], is_causal=True, enable_gqa=True)
            gqa_native = True
        except (TypeError, RuntimeError):
            gqa_native = False
    dev = torch.cuda.get_device_name()
    print(f"device: {dev}; torch {torch.__version__}; GQA: {'enable_gqa' if gqa_native else 'expanded KV'}\n")
    print(f"PyTorch SDPA ({a.backend} backend) causal, Hq={a.hq} Hkv={a.hkv} D={a.d}, fp16; FLOPs = 4*S^2*D*Hq/2\n")
    print("| S | median ms | min ms | TFLOP/s | timer | check err |")
    print("|---:|---:|---:|---:|---|---:|")
    rows = []
    for S in parse_lens(a.lens):
        try:
            r = bench(torch, F, S, a.hq, a.hkv, a.d, a.reps, a.warmup, gqa_native, a.backend)
        except RuntimeError as e:  # a backend that cannot take these inputs
            print(f"| {S} | - | - | - | {a.backend}: {str(e).splitlines()[0][:80]} | - |", flush=True)
            continue
        rows.append(r)
        print(f"| {S} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | {r['tflops']:.3g} | "
              f"{r['timer']} | {r['check_rel_err']:.1e} |", flush=True)
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"impl": "pytorch-sdpa", "device": dev, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
