#!/usr/bin/env bash
# bench/cm-round4.sh — issue 11, round 4, in one device call (H200 or
# H100): the attn_cm2 sweep (GQA fold, tiles) beside the SDPA backends
# (default = PyTorch's pick, flash = FlashAttention-2 on mma.sync, cudnn,
# efficient); then the harness's attention benchmark (dense + block-sparse
# on random causal masks, beside SDPA and flex_attention on the same masks)
# with the fastest dense configuration of the sweep
# (SHAREPREFILL_CM_ATTN_TILES; block-sparse ignores the fold and falls back
# to the routed tiles where BR or BC does not divide B); then the coopmat
# device tests, probes, pipeline statistics and the matmul sweep.
#
# Build here (repo root):
#   mkdir -p .devcarry/bin .devcarry/bench; F='-ldflags=-s -w'
#   go test -c "$F" -o .devcarry/bin/kernels.test ./runtime/kernels
#   for b in cmpeak attention matmul; do go build "$F" -o .devcarry/bin/$b ./bench/$b; done
#   go build -trimpath "$F" -o .devcarry/bench/shareprefill ./cmd/shareprefill
#   git rev-parse --short HEAD > .devcarry/bench/COMMIT
# device run: bash bench/cm-round4.sh   (carry .gl .devcarry/bin .devcarry/bench)
# env: ATTN_CFGS (as bench/cm-tune.sh), BEST (skip the choice), KLENS.
set -u
export PYTHONUNBUFFERED=1 SHAREPREFILL_REQUIRE_VULKAN=1
. bench/vk-setup.sh
O=${OUT:-/tmp/out}; mkdir -p "$O"
export ATTN_LENS=${ATTN_LENS:-16k} ATTN_CFGS=${ATTN_CFGS:-128,128,1,cm2 128,128,1,cm2,4 128,64,1,cm2,4 256,64,2,cm2 128,64,2,cm2 128,128,2,cm2 256,128,2,cm2}
export PROBE_MM=${PROBE_MM:-} PROBE_ATTN=${PROBE_ATTN:-0 1 8 16 32 64 56} PROBE_ATTN_TILES=${PROBE_ATTN_TILES:-128,128,1,cm2}
export STATS_ATTN_TILES=${STATS_ATTN_TILES:-128,128,1,cm2 128,128,1,cm2,4 256,64,2,cm2}
export MM2_TILES=${MM2_TILES:-128,128,128,32,8 256,128,256,32,8 256,128,128,64,8}
export MM_TILES=${MM_TILES:-256,128,32,64,64,8,1 128,128,32,64,64,8,1 128,128,32,64,64,8,2} MM_SHAPES=${MM_SHAPES:-8192x4096x4096,8192x14336x4096}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader
# Stages run in order of importance; one that would start after DEADLINE
# seconds (default 540: the device tool's 600-s limit less the tail) is
# skipped, so a short device call still returns the most useful part.
DEADLINE=${DEADLINE:-540}
left() { [ "$SECONDS" -lt "$1" ]; }
STAGES="attn anchors" bash bench/cm-tune.sh > "$O/sweep.log" 2>&1
# The best dense configuration: the "## SHAREPREFILL_CM_ATTN_TILES=cfg" line
# followed by the highest TFLOP/s row.
best=${BEST:-$(awk '/^## SHAREPREFILL_CM_ATTN_TILES=/{c=substr($0, 31)} /PyTorch SDPA|torch/{c=""} /^\| [0-9]+ \|/ && c!="" {if ($8+0 > b) {b=$8+0; bc=c}} END{print bc}' "$O/sweep.log")}
grep -E "^## |^\| [0-9]|backend" "$O/sweep.log"
echo "best dense configuration: $best ($SECONDS s)"
if left $((DEADLINE - 120)); then
	TESTS_RUN=${TESTS_RUN:-CoopMat|CMAttn} STAGES="tests" timeout $((DEADLINE - 60 - SECONDS)) bash bench/cm-tune.sh > "$O/tests-stage.log" 2>&1
	grep -E "^(--- FAIL|FAIL|PASS|ok|panic)|exit |differs" "$O/tests.log" | head -20
fi
if left $((DEADLINE - 100)); then
	SHAREPREFILL_CM_ATTN_TILES=$best SKIP_TESTS=1 HARNESS_TIMEOUT=$((DEADLINE - 30 - SECONDS)) KLENS=${KLENS:-16384,32768,65536} bash bench/cm-last.sh
	echo "harness done ($SECONDS s)"
fi
for st in probe stats matmul2 matmul; do
	left $((DEADLINE - 30)) || { echo "skipped: $st (deadline)"; continue; }
	STAGES=$st timeout $((DEADLINE - SECONDS)) bash bench/cm-tune.sh > "$O/$st.log" 2>&1
	grep -vE "^\|---" "$O/$st.log" | grep -E "^=== |^## |^\| " | head -40
done
