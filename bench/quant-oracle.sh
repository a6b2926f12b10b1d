#!/usr/bin/env bash
# Accuracy of shareprefill's GGUF path against llama.cpp (issue 27): logits,
# greedy tokens, tokenizer ids and perplexity on bench-lm-8k in f16, Q8_0
# and Q4_K_M, ours with the quantized matrices on the device and with them
# dequantized to f16 at load. Accuracy only: no timings.
#
#   bench/quant-oracle.sh [OUT]          (from the repository root; default out/quant-oracle)
#
# 1. bench/peers/llamacpp-oracle.sh OUT/llamacpp: llama.cpp on the CPU (see
#    that script for KIT, SRC, MODEL, TEXT, TYPES, CHUNKS, CTX, GREEDY);
# 2. `shareprefill bench accuracy --oracle OUT/llamacpp/cases
#    --oracle-weights quantized,f16 --ppl-windows $WINDOWS` on the default
#    Vulkan device (SHAREPREFILL_DEVICE), writing OUT/oracle.{json,md}.
# 3. the control, bench/harness's TestOracleControl (a test, so that no
#    binary links the float64 reference) on the cases matching
#    $CONTROL_CASES (default '*-kjv,*-ppl'; empty: none) with
#    $CONTROL_WINDOWS windows (default 1): llama.cpp's and our logits and
#    perplexity against the float64 CPU forward pass of each file's exactly
#    dequantized weights, writing OUT/control.md (minutes per case).
# WINDOWS (default 0: all of llama-perplexity's windows) caps the windows
# our side scores; llama.cpp's perplexity is then taken over the same ones
# (lavapipe on 2 busy cores needs about a minute per 512-token window: use 4).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/out/quant-oracle}
WINDOWS=${WINDOWS:-0}
mkdir -p "$OUT"
"$ROOT/bench/peers/llamacpp-oracle.sh" "$OUT/llamacpp"
(cd "$ROOT" && go build -o "$OUT/shareprefill" ./cmd/shareprefill)
"$OUT/shareprefill" bench accuracy --oracle "$OUT/llamacpp/cases" --oracle-weights quantized,f16 \
  --ppl-windows "$WINDOWS" --json "$OUT/oracle.json" --md "$OUT/oracle.md" --force
CONTROL_CASES=${CONTROL_CASES-*-kjv,*-ppl}
if [ -n "$CONTROL_CASES" ]; then
  (cd "$ROOT" && go test ./bench/harness -count=1 -run '^TestOracleControl$' -timeout 0 -args \
    -oracle-control "$OUT/llamacpp/cases" -oracle-cases "$CONTROL_CASES" -oracle-windows "${CONTROL_WINDOWS:-1}" \
    -oracle-md "$OUT/control.md")
fi
echo "llama.cpp: $OUT/llamacpp/llamacpp.json; ours against it: $OUT/oracle.md; the control: $OUT/control.md"
