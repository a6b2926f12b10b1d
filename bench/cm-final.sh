#!/usr/bin/env bash
# bench/cm-final.sh — the issue-11 measurement call on the H200: coopmat
# kernel tests, the harness's attention kernels (dense + block-sparse on
# random causal masks) beside SDPA and flex_attention on the same masks
# (bench/run-h200.sh stages kernels, peers-kernels, compare), and the 8B
# matmuls at M = 2048 and 8192 beside cuBLAS. Results to $OUT.
#
# Build here: the binaries of bench/cm-tune.sh in .devcarry/bin, plus
#   go build -trimpath -ldflags='-s -w' -o .devcarry/bench/shareprefill ./cmd/shareprefill
#   git rev-parse --short HEAD > .devcarry/bench/COMMIT
# device run: bash bench/cm-final.sh   (carry .gl .devcarry/bin .devcarry/bench)
set -u
export PYTHONUNBUFFERED=1
O=${OUT:-/tmp/out}; mkdir -p "$O"
. bench/vk-setup.sh
STAGES="tests attn" ATTN_CFGS="128,64,1,cmr-cv 128,32,1,cm1" bash bench/cm-tune.sh > "$O/tune.log" 2>&1
grep -E "^(S=|PASS|FAIL|exit|---)" "$O/tune.log"
SKIP_TESTS=1 HARNESS_TIMEOUT=400 bash bench/cm-last.sh
[ -n "${SKIP_MM:-}" ] && exit 0
S=""; for m in 2048 8192; do for nk in 4096x4096 14336x4096 4096x14336 128256x4096; do S="$S,${m}x${nk}"; done; done; S=${S#,}
{ timeout 120 .devcarry/bin/matmul -shapes "$S" -reps 10; timeout 100 python3 bench/peers/matmul.py --shapes "$S" --reps 10; } > "$O/matmul.md" 2>&1
cat "$O/matmul.md" | grep -E "^\|"
