#!/usr/bin/env bash
# bench/cm-final4.sh — issue 11, round 4, the short measurement call: device
# tests of the coopmat kernels, attn_cm2 with the stale-max softmax (OPT 16)
# beside the previous default and SDPA, the harness's attention benchmark
# (dense + block-sparse vs SDPA and flex_attention on the same masks) with
# the fastest dense configuration, and the 8B matmuls (new 128×128 default)
# beside cuBLAS. Build and carry as bench/cm-round4.sh says.
set -u
export PYTHONUNBUFFERED=1 SHAREPREFILL_REQUIRE_VULKAN=1
. bench/vk-setup.sh
O=${OUT:-/tmp/out}; mkdir -p "$O"; B=.devcarry/bin
DEADLINE=${DEADLINE:-400}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv,noheader
(cd runtime/kernels && timeout 150 ../../$B/kernels.test -test.count=1 -test.v \
	-test.run "${TESTS_RUN:-TestFlashAttentionCoopMat|TestSparseAttentionCoopMat|TestMatMulCoopMat$|TestCMAttn}" > "$O/tests.log" 2>&1; echo "exit $?" >> "$O/tests.log")
grep -E "^(--- FAIL|FAIL|PASS|ok|panic)|exit |differs|error" "$O/tests.log" | head -20
echo "tests done ($SECONDS s)"
export ATTN_LENS=16k ATTN_CFGS=${ATTN_CFGS:-128,128,1,cm2 128,128,1,cm2,16 128,64,1,cm2,16 64,64,1,cm2,16 128,64,1,cm2,16,4 128,128,1,cm2,16,4}
STAGES=attn bash bench/cm-tune.sh > "$O/sweep.log" 2>&1
grep -E "^## |^\| [0-9]" "$O/sweep.log"
best=${BEST:-$(awk '/^## SHAREPREFILL_CM_ATTN_TILES=/{c=substr($0, 31)} /PyTorch SDPA|torch/{c=""} /^\| [0-9]+ \|/ && c!="" {if ($8+0 > b) {b=$8+0; bc=c}} END{print bc}' "$O/sweep.log")}
echo "best dense configuration: $best ($SECONDS s)"
S=""; for m in 2048 8192; do for nk in 4096x4096 14336x4096 4096x14336 128256x4096; do S="$S,${m}x${nk}"; done; done; S=${S#,}
{ timeout 60 $B/matmul -shapes "$S" -reps 10; timeout 60 python3 bench/peers/matmul.py --shapes "$S" --reps 10; } > "$O/matmul.md" 2>&1
grep -E "^\| [0-9]" "$O/matmul.md"
echo "matmul done ($SECONDS s)"
if [ "$SECONDS" -lt $((DEADLINE - 90)) ]; then
	SHAREPREFILL_CM_ATTN_TILES=$best SKIP_TESTS=1 HARNESS_TIMEOUT=$((DEADLINE - SECONDS)) KLENS=${KLENS:-16384,32768} bash bench/cm-last.sh
fi
echo "done ($SECONDS s)"
