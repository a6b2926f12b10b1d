#!/usr/bin/env bash
# bench/cm-last.sh — the shortest issue-11 measurement call: the harness's
# attention kernels beside SDPA/flex_attention (bench/run-h200.sh stages
# env kernels peers-kernels compare), then the coopmat kernel tests
# (SKIP_TESTS=1: none).
# Carry .gl .devcarry/bin .devcarry/bench (see bench/cm-final.sh).
set -u
export PYTHONUNBUFFERED=1 SHAREPREFILL_REQUIRE_VULKAN=1
. bench/vk-setup.sh
O=${OUT:-/tmp/out}; R=/tmp/res; mkdir -p "$O" $R
RES=$R SCRATCH=/tmp/scratch KLENS=${KLENS:-16384,32768,65536} REPS=${REPS:-5} KFLAGS="--matmul-m none --estimation=false" \
	timeout "${HARNESS_TIMEOUT:-150}" bash bench/run-h200.sh env kernels peers-kernels compare > "$O/harness.log" 2>&1
cp $R/compare.md $R/kernels.md $R/env.txt "$O/" 2>/dev/null
grep -E "^\| (16384|32768|65536) " $R/compare.md
[ -n "${SKIP_TESTS:-}" ] && exit 0
(cd runtime/kernels && timeout 150 ../../.devcarry/bin/kernels.test -test.count=1 -test.v \
	-test.run 'CoopMat|CMAttn|FlashAttention|SparseAttention|DecodeAttention' > "$O/tests.log" 2>&1; echo "exit $?" >> "$O/tests.log")
grep -E "^(--- FAIL|FAIL|PASS|ok|panic)|exit " "$O/tests.log" | head
