"""PyTorch attention peers of `shareprefill bench kernels`, on the same shapes and masks.

For every sequence length n in the mask manifest written by
`shareprefill bench kernels --json K.json` (K.masks/masks.json), this times

  * sdpa: torch.nn.functional.scaled_dot_product_attention, causal, dense, with
    native GQA (enable_gqa=True) where the installed torch has it, else with the
    KV heads expanded beforehand (outside the timed region; the row says so);
  * flex: torch.nn.attention.flex_attention compiled with torch.compile, with a
    BlockMask built from our exported CSR mask (docs/benchmarks.md#peers): the diagonal block
    of each row is a partial block (causal mask_mod), every other listed block a
    full block. Same (n, density) mask, same block size, same heads as ours.

Inputs are random fp16 (or --dtype bf16) [1, H, n, D] tensors. Timing follows
docs/benchmarks.md#timing-rules: CUDA events, >= 3 warm-ups (torch.compile happens there), the
median and p20/p80 of --reps runs, the L2 flushed (a 256 MiB buffer zeroed,
outside the events) before every run. Dense-equivalent TFLOP/s = 2*Hq*n^2*D/t,
actual = 4*B^2*D*sum(full + 0.5*diagonal blocks)/t, as ours.

Output: --json FILE in the report envelope of bench/harness (bench "kernels",
impl "torch", results.attention rows with our field names), so
`shareprefill bench compare OURS.json FILE` joins them by (n, mask).

Usage: python3 bench/peers/sdpa_flex.py --masks out/kernels.masks --json out/kernels-torch.json
       [--reps 10] [--warmup 3] [--dtype fp16|bf16] [--no-flex] [--no-sdpa] [--flush-mib 256]
"""
import argparse
import datetime
import inspect
import json
import os
import platform
import subprocess
import sys


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    x = p / 100 * (len(sorted_vals) - 1)
    i = int(x)
    if i >= len(sorted_vals) - 1:
        return sorted_vals[-1]
    fr = x - i
    return sorted_vals[i] * (1 - fr) + sorted_vals[i + 1] * fr


def stat(ms):
    s = sorted(ms)
    return {"median_ms": percentile(s, 50), "p20_ms": percentile(s, 20), "p80_ms": percentile(s, 80),
            "min_ms": s[0], "reps": len(s)}


def nvidia_smi():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit,persistence_mode",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
        return out.splitlines()[0] if out else ""
    except Exception:  # noqa: BLE001 - nvidia-smi is optional
        return ""


def device_info(torch):
    smi = nvidia_smi()
    parts = [p.strip() for p in smi.split(",")] if smi else []
    props = torch.cuda.get_device_properties(0)
    return {
        "name": torch.cuda.get_device_name(0),
        "vendor": "NVIDIA" if torch.version.hip is None else "AMD",
        "driver": "CUDA driver " + (parts[1] if len(parts) > 1 else "unknown"),
        "driver_version": parts[1] if len(parts) > 1 else "",
        "api": ("CUDA " + str(torch.version.cuda)) if torch.version.hip is None else ("HIP " + str(torch.version.hip)),
        "memory_bytes": props.total_memory,
        "nvidia_smi": smi,
    }


def versions(torch):
    v = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import triton  # noqa: PLC0415

        v["triton"] = triton.__version__
    except Exception:  # noqa: BLE001
        v["triton"] = None
    return v


def commit():
    c = os.environ.get("SHAREPREFILL_COMMIT", "").strip()
    if c:
        return c
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


class Timer:
    def __init__(self, torch, warmup, reps, flush_mib):
        self.torch, self.warmup, self.reps = torch, warmup, reps
        self.flush = torch.empty(flush_mib << 18, dtype=torch.float32, device="cuda") if flush_mib > 0 else None

    def time(self, fn):
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        ms = []
        for _ in range(self.reps):
            if self.flush is not None:
                self.flush.zero_()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            ms.append(s.elapsed_time(e))
        return stat(ms)


def load_npy(path):
    import numpy as np  # noqa: PLC0415

    return np.load(path)


def block_mask_from_csr(torch, np, flex_mod, row_ptr, cols, hq, nb, block, n):
    """BlockMask from our per-head CSR: diagonal = partial block, the rest full."""
    counts = np.diff(row_ptr).astype(np.int64)
    rows = np.repeat(np.arange(hq * nb, dtype=np.int64), counts)
    pos = np.arange(len(cols), dtype=np.int64) - row_ptr[:-1].astype(np.int64)[rows]
    r = rows % nb
    h = rows // nb
    diag = cols.astype(np.int64) == r
    part_n = np.zeros((hq, nb), dtype=np.int32)
    part_n[h[diag], r[diag]] = 1
    part_i = np.zeros((hq, nb, nb), dtype=np.int32)
    part_i[:, np.arange(nb), 0] = np.arange(nb, dtype=np.int32)[None, :]
    # Off-diagonal blocks keep their order; the diagonal (last in a sorted row) is dropped.
    full_n = (counts.reshape(hq, nb) - part_n).astype(np.int32)
    off = ~diag
    # Position among the off-diagonal entries of the row: pos minus diagonals before it (none: it is last).
    full_i = np.zeros((hq, nb, nb), dtype=np.int32)
    full_i[h[off], r[off], pos[off]] = cols[off]
    t = lambda a: torch.from_numpy(a).to("cuda").unsqueeze(0)  # noqa: E731
    BlockMask = flex_mod.BlockMask

    def causal(b, hh, q, k):
        return q >= k

    kw = {}
    params = inspect.signature(BlockMask.from_kv_blocks).parameters
    if "BLOCK_SIZE" in params:
        kw["BLOCK_SIZE"] = block
    if "mask_mod" in params:
        kw["mask_mod"] = causal
    if "seq_lengths" in params:
        kw["seq_lengths"] = (n, n)
    return BlockMask.from_kv_blocks(t(part_n), t(part_i), t(full_n), t(full_i), **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--masks", required=True, help="mask directory written by `shareprefill bench kernels` (masks.json)")
    ap.add_argument("--json", required=True, help="output report")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    ap.add_argument("--flush-mib", type=int, default=256)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-sdpa", action="store_true")
    args = ap.parse_args()

    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    if not torch.cuda.is_available():
        sys.exit("sdpa_flex.py: no CUDA device")
    with open(os.path.join(args.masks, "masks.json")) as f:
        man = json.load(f)
    hq, hkv, d, block = man["hq"], man["hkv"], man["d"], man["block"]
    dt = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    timer = Timer(torch, max(args.warmup, 1), args.reps, args.flush_mib)
    notes = []
    # enable_gqa arrived in torch 2.5; older versions expand the KV heads (outside the timing).
    gqa_native = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)
    flex_mod, flex_fn = None, None
    if not args.no_flex:
        try:
            import torch.nn.attention.flex_attention as flex_mod  # noqa: PLC0415

            import torch._dynamo  # noqa: PLC0415

            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            flex_fn = torch.compile(flex_mod.flex_attention, dynamic=False)
        except Exception as e:  # noqa: BLE001
            notes.append(f"flex_attention unavailable: {e!r}")
            flex_mod = None
    rows = []
    by_n = {}
    for m in man["masks"]:
        by_n.setdefault(m["n"], []).append(m)
    for n in sorted(by_n):
        g = torch.Generator(device="cuda").manual_seed(n)
        q = torch.randn(1, hq, n, d, dtype=dt, device="cuda", generator=g)
        k = torch.randn(1, hkv, n, d, dtype=dt, device="cuda", generator=g)
        v = torch.randn(1, hkv, n, d, dtype=dt, device="cuda", generator=g)
        dense_flops = 2 * hq * n * n * d
        ref = None
        if not args.no_sdpa:
            kw = {"is_causal": True}
            kk, vv, how = k, v, "native GQA"
            if hq != hkv:
                if gqa_native:
                    kw["enable_gqa"] = True
                else:
                    kk, vv, how = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1), "KV expanded"
            try:
                fn = lambda: F.scaled_dot_product_attention(q, kk, vv, **kw)  # noqa: E731
                st = timer.time(fn)
            except Exception:  # noqa: BLE001 - enable_gqa not supported by the chosen backend
                kk, vv, how = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1), "KV expanded"
                kw.pop("enable_gqa", None)
                fn = lambda: F.scaled_dot_product_attention(q, kk, vv, **kw)  # noqa: E731
                st = timer.time(fn)
            ref = fn()
            row = {"kind": "sdpa", "n": n, "hq": hq, "hkv": hkv, "d": d, "block": block, "density": 1,
                   "computed_density": 1, **st, "timer": "cuda-event", "gqa": how}
            row["tflops_dense_eq"] = row["tflops_actual"] = dense_flops / (st["median_ms"] * 1e-3) / 1e12
            rows.append(row)
            print(f"sdpa n={n}: {st['median_ms']:.3f} ms ({row['tflops_dense_eq']:.1f} TFLOP/s, {how})", flush=True)
        if flex_mod is None:
            continue
        for m in by_n[n]:
            rp = load_npy(os.path.join(args.masks, m["row_ptr"]))
            cols = load_npy(os.path.join(args.masks, m["cols"]))
            bm = block_mask_from_csr(torch, np, flex_mod, rp, cols, hq, m["nb"], block, n)
            kw = {"block_mask": bm}
            if hq != hkv:
                kw["enable_gqa"] = True
            fn = lambda: flex_fn(q, k, v, **kw)  # noqa: E731
            st = timer.time(fn)
            full = m["blocks"] - m["diagonal_blocks"]
            actual = 4 * block * block * d * (full + 0.5 * m["diagonal_blocks"])
            row = {"kind": "flex", "n": n, "hq": hq, "hkv": hkv, "d": d, "block": block, "density": m["density"],
                   "computed_density": m["computed_density"], "blocks": m["blocks"], **st, "timer": "cuda-event",
                   "mask": m["row_ptr"].removesuffix("_row_ptr.npy"), "backend": "triton (torch.compile)",
                   "tflops_actual": actual / (st["median_ms"] * 1e-3) / 1e12,
                   "tflops_dense_eq": dense_flops / (st["median_ms"] * 1e-3) / 1e12}
            if m["density"] >= 1 and ref is not None:
                o = fn()
                row["check_rel_err_vs_sdpa"] = ((o.float() - ref.float()).norm() / ref.float().norm()).item()
            rows.append(row)
            print(f"flex n={n} d={m['density']}: {st['median_ms']:.3f} ms (computed density {m['computed_density']:.3f})",
                  flush=True)
            del bm
        del q, k, v, ref
        torch.cuda.empty_cache()
    rep = {
        "bench": "kernels", "impl": "torch", "device": device_info(torch), "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": versions(torch),
        "params": {"masks": args.masks, "reps": args.reps, "warmup": args.warmup, "dtype": args.dtype,
                   "flush_mib": args.flush_mib, "hq": hq, "hkv": hkv, "d": d, "block": block},
        "results": {"attention": rows},
        "notes": notes + ["timer: CUDA events; median of reps after warm-ups; L2 flushed before every run",
                          "TFLOP/s: dense-equivalent = 2*Hq*n^2*D/t; actual = 4*B^2*D*sum(full + 0.5*diag)/t"],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rep, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
