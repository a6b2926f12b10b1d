#!/usr/bin/env python3
"""Issue 27's tables from the files of bench/speed.sh's stage quant.

  quant_summary.py DIR > summary.md

DIR holds, per model key K (8b, 8b32, small): decode-K-ours.json (bench
decode), decode-K-llamacpp.jsonl (llama-bench -p 0 -n G -d N -o jsonl),
prefill-K-TAG-ours.json (bench prefill), prefill-K-llamacpp-ubU.jsonl
(llama-bench -p N -n 0 -ub U -o jsonl) and inspect-K.txt (shareprefill
inspect). Missing or unreadable files leave their cells empty and are named
under the tables, so a run cut short still gives a summary. Times are medians
(llama.cpp: the median of llama-bench's samples_ns, as the kit's bench.py).
Standard library only.
"""
from __future__ import annotations

import glob
import json
import os
import re
import statistics
import sys

NAMES = {"8b": "8B-shaped, 2 layers", "8b32": "8B-shaped, 32 layers (copies)", "small": "bench-lm-8k"}
problems: list[str] = []


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{os.path.basename(path)}: {e}")
        return None


def load_jsonl(path):
    rows = []
    try:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    problems.append(f"{os.path.basename(path)}:{i}: {e}")
    except OSError as e:
        problems.append(f"{os.path.basename(path)}: {e}")
    return rows


def median_ns(row):
    s = row.get("samples_ns") or [row["avg_ns"]]
    return statistics.median(s)


def keys(pattern, rx):
    """The model keys of the files that pattern globs and rx matches (group 1), in NAMES order."""
    ms = (re.match(rx, os.path.basename(p)) for p in glob.glob(pattern))
    return sorted({m.group(1) for m in ms if m}, key=lambda k: (list(NAMES).index(k) if k in NAMES else 99, k))


def fmt(x, spec=".2f"):
    return "–" if x is None else format(x, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def decode_table(d):
    out = ["### Decode, tokens/s (issue 27: ours ≥ 0.8× llama.cpp)", "",
           "| model | context | ours | llama.cpp tg at depth | ours ÷ llama.cpp |", "|---|---|---|---|---|"]
    for k in keys(os.path.join(d, "decode-*-*"), r"decode-(.+?)-(ours\.json|llamacpp\.jsonl)$"):
        ours = {}
        for p in glob.glob(os.path.join(d, f"decode-{k}-ours.json")):
            for r in (load_json(p) or {}).get("results", {}).get("decode", []):
                ours[r["n"]] = r["tokens_per_s"]
        theirs = {}
        for r in [r for p in glob.glob(os.path.join(d, f"decode-{k}-llamacpp.jsonl")) for r in load_jsonl(p)]:
            if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0:
                theirs[r.get("n_depth", 0)] = r["n_gen"] / (median_ns(r) / 1e9)
        for n in sorted(set(ours) | set(theirs)):
            o, t = ours.get(n), theirs.get(n)
            out.append(f"| {NAMES.get(k, k)} | {n} | {fmt(o, '.1f')} | {fmt(t, '.1f')} | {fmt(ratio(o, t))} |")
    return out


def prefill_table(d):
    out = ["### Prefill, ms (issue 27: dense ≥ 0.8× llama.cpp's speed; share faster than llama.cpp from 32K)", "",
           "| model | n | ours dense | ours share | llama.cpp FA on, best ubatch | dense speed ÷ llama.cpp | share speed ÷ llama.cpp |",
           "|---|---|---|---|---|---|---|"]
    for k in keys(os.path.join(d, "prefill-*-*"), r"prefill-(.+?)-(.+-ours\.json|llamacpp-ub\d+\.jsonl)$"):
        ours = {}  # (method, n) -> ms
        for p in sorted(glob.glob(os.path.join(d, f"prefill-{k}-*-ours.json"))):
            for r in (load_json(p) or {}).get("results", {}).get("prefill", []):
                if r.get("median_ms"):
                    ours[(r["method"], r["n"])] = r["median_ms"]
        best = {}  # n -> (ms, ubatch)
        for p in sorted(glob.glob(os.path.join(d, f"prefill-{k}-llamacpp-ub*.jsonl"))):
            for r in load_jsonl(p):
                if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0:
                    ms = median_ns(r) / 1e6
                    n = r["n_prompt"]
                    if n not in best or ms < best[n][0]:
                        best[n] = (ms, r.get("n_ubatch"))
        for n in sorted({n for _, n in ours} | set(best)):
            dn, sh = ours.get(("dense", n)), ours.get(("share", n))
            lb = best.get(n)
            lms = lb[0] if lb else None
            cell = f"{lms:.2f} (ub {lb[1]})" if lb else "–"
            out.append(f"| {NAMES.get(k, k)} | {n} | {fmt(dn)} | {fmt(sh)} | {cell} | {fmt(ratio(lms, dn))} | {fmt(ratio(lms, sh))} |")
    return out


def memory_table(d):
    out = ["### Memory plan (`shareprefill inspect`; issue 27: the 8B model in Q4_K_M plans ≤ 6.5 GiB at 8K)", "",
           "| model | plan | fits the device |", "|---|---|---|"]
    for p in sorted(glob.glob(os.path.join(d, "inspect-*.txt"))):
        k = os.path.basename(p)[len("inspect-"):-len(".txt")]
        plan = fits = "–"
        with open(p, errors="replace") as f:
            for line in f:
                m = re.match(r"(device memory at context \d+)\s+(.*)", line)
                if m:
                    plan = f"{m.group(1)}: {m.group(2).strip()}"
                m = re.match(r"fits the device\s+(.*)", line)
                if m:
                    fits = m.group(1).strip()
        out.append(f"| {NAMES.get(k, k)} | {plan} | {fits} |")
    return out


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: quant_summary.py DIR (the quant stage's json/quant)", file=sys.stderr)
        return 2
    d = argv[1]
    lines = ["## Quantized GGUF: ours and llama.cpp Vulkan on the same files (bench/speed.sh quant)", ""]
    for t in (decode_table(d), prefill_table(d), memory_table(d)):
        lines += t + [""]
    if problems:
        lines += ["Unreadable: " + "; ".join(problems), ""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
