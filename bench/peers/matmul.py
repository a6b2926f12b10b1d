"""cuBLAS fp16 GEMM with PyTorch: the anchor for the matmul rows of
`shareprefill bench kernels`.

For each shape MxNxK it times ``y = x @ w.T`` with x [M, K] and w [N, K] in
fp16 (cuBLAS accumulates in fp32, output fp16), using CUDA events after a
warm-up, and prints the median over reps as a Markdown table. With --json FILE
it writes the rows as JSON (the format of the retired bench/matmul tool, see
bench/RESULTS.md).

Usage: python3 bench/peers/matmul.py [--shapes 1x4096x4096,...] [--reps 20] [--json FILE]
"""
import argparse
import json


def llama_shapes():
    nk = ["4096x4096", "14336x4096", "4096x14336", "128256x4096"]
    return ",".join(f"{m}x{s}" for m in (1, 512, 8192) for s in nk)


def parse_shapes(text):
    out = []
    for f in text.split(","):
        f = f.strip()
        if not f:
            continue
        m, n, k = (int(v) for v in f.split("x"))
        if min(m, n, k) <= 0:
            raise SystemExit(f"bad shape {f!r}")
        out.append((m, n, k))
    return out


def bench(torch, m, n, k, reps, warmup):
    g = torch.Generator(device="cuda").manual_seed(m * 1_000_003 + n * 1009 + k)
    x = torch.empty(m, k, dtype=torch.float16, device="cuda").uniform_(-1, 1, generator=g)
    w = torch.empty(n, k, dtype=torch.float16, device="cuda").uniform_(-1, 1, generator=g) / k**0.5
    for _ in range(warmup):
        y = x @ w.T
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        y = x @ w.T
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))  # ms
    # Spot check against an fp32 product of a few rows.
    rows = torch.tensor([0, m - 1], device="cuda").unique()
    ref = x[rows].float() @ w.float().T
    err = ((y[rows].float() - ref).norm() / ref.norm()).item()
    times.sort()
    med = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    return {
        "m": m, "n": n, "k": k, "variant": "cublas",
        "median_ms": med, "min_ms": times[0],
        "tflops": 2 * m * n * k / (med * 1e-3) / 1e12,
        "timer": "cuda-event", "check_rel_err": err,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=llama_shapes())
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    import torch

    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    rows = []
    print("| M | N | K | variant | median ms | min ms | TFLOP/s | timer | check err |")
    print("|---:|---:|---:|---|---:|---:|---:|---|---:|")
    for m, n, k in parse_shapes(a.shapes):
        r = bench(torch, m, n, k, a.reps, a.warmup)
        rows.append(r)
        print(f"| {m} | {n} | {k} | cublas | {r['median_ms']:.4f} | {r['min_ms']:.4f} | "
              f"{r['tflops']:.3g} | {r['timer']} | {r['check_rel_err']:.1e} |", flush=True)
        torch.cuda.empty_cache()
    if a.json:
        rep = {"impl": "torch-cublas", "device": torch.cuda.get_device_name(),
               "x_dtype": "f16", "y_dtype": "f16", "rows": rows}
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
