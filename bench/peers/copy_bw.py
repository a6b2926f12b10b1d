"""Device-to-device copy bandwidth with PyTorch (the anchor for bench/copybw).

Counts bytes read plus bytes written, timed with CUDA events after a warm-up;
prints the median over reps in the same Markdown shape as bench/copybw.
Usage: python3 bench/peers/copy.py [--mib 1024] [--reps 20]
"""
import argparse

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    n = a.mib << 20
    src = torch.full((n // 2,), 1.0, dtype=torch.float16, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    times = []
    for _ in range(a.reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        dst.copy_(src)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    med = times[len(times) // 2]
    assert torch.equal(dst, src)
    print(f"| torch copy_ ({torch.cuda.get_device_name()}) | {a.mib} MiB | {2 * n} | {med * 1e3:.3f} ms | {2 * n / med / 1e9:.1f} |")


if __name__ == "__main__":
    main()
