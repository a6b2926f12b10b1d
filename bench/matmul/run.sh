#!/usr/bin/env bash
# run.sh — benchmark our Linear kernels against cuBLAS (PyTorch) in one device
# run and print the ratios.
#
# Usage (from the repo root):
#   go build -o .devcarry/matmul ./bench/matmul          # here (needs cgo + Vulkan headers)
#   bench/matmul/run.sh [-b BIN] [-o OUTDIR] [-- extra bench flags]   # on the GPU machine
#
#   -b BIN     the bench binary (default .devcarry/matmul; falls back to `go run ./bench/matmul`)
#   -o OUTDIR  where ours_<variant>.json, cublas.json and ratios.md go
#              (default $OUT, else /tmp/matmul-bench)
#   env SHAPES    comma-separated MxNxK list (default: Llama-8B shapes at M = 1, 512, 8192)
#   env REPS      timed repetitions per shape (default 20)
#   env VARIANTS  space-separated bench -variant values (default "auto tiled":
#                 MatMul's own choice — GEMV for M ≤ 4, cooperative matrices when
#                 the device has them, else tiled — and the scalar tiled kernel)
#
# Ratios are ours ÷ cuBLAS in TFLOP/s (higher is better; 1.0 = parity).
set -euo pipefail
BIN=.devcarry/matmul
OUTDIR="${OUT:-/tmp/matmul-bench}"
while [ $# -gt 0 ]; do
	case "$1" in
		-b) BIN="$2"; shift 2 ;;
		-o) OUTDIR="$2"; shift 2 ;;
		--) shift; break ;;
		-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) break ;;
	esac
done
mkdir -p "$OUTDIR"
REPS="${REPS:-20}"
VARIANTS="${VARIANTS:-auto tiled}"
SHAPES_ARGS=()
PY_SHAPES=()
if [ -n "${SHAPES:-}" ]; then
	SHAPES_ARGS=(-shapes "$SHAPES")
	PY_SHAPES=(--shapes "$SHAPES")
fi
if [ -x "$BIN" ]; then
	BENCH=("$BIN")
else
	BENCH=(go run ./bench/matmul)
fi

for v in $VARIANTS; do
	echo "## ours -variant $v (Vulkan, f16 x, f16 W, f32 accumulate, f16 y)"
	"${BENCH[@]}" "${SHAPES_ARGS[@]}" -reps "$REPS" -variant "$v" -json "$OUTDIR/ours_$v.json" "$@"
	echo
done
echo "## cuBLAS (torch x @ w.T, fp16)"
python3 bench/peers/matmul.py "${PY_SHAPES[@]}" --reps "$REPS" --json "$OUTDIR/cublas.json"
echo
: >"$OUTDIR/ratios.md"
for v in $VARIANTS; do
	python3 - "$OUTDIR/ours_$v.json" "$OUTDIR/cublas.json" <<'PY' | tee -a "$OUTDIR/ratios.md"
import json, sys
ours, peer = (json.load(open(p)) for p in sys.argv[1:3])
peer_rows = {(r["m"], r["n"], r["k"]): r for r in peer["rows"]}
print(f"## ratios: {ours['impl']} on {ours['device']} / {peer['impl']} on {peer['device']}")
print("| M | N | K | ours ms | cuBLAS ms | ours TFLOP/s | cuBLAS TFLOP/s | TFLOP/s ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in ours["rows"]:
    p = peer_rows.get((r["m"], r["n"], r["k"]))
    if p is None:
        continue
    print(f"| {r['m']} | {r['n']} | {r['k']} | {r['median_ms']:.4f} | {p['median_ms']:.4f} | "
          f"{r['tflops']:.3g} | {p['tflops']:.3g} | {r['tflops'] / p['tflops']:.3f} |")
print()
PY
done
