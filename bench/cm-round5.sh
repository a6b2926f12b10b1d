#!/usr/bin/env bash
# bench/cm-round5.sh — issue 11, round 5, in one device call (H100 or H200):
#   0. the driver's workgroup-scope cooperative-matrix list (shareprefill
#      devices: granularities per workgroup size);
#   1. the coopmat device tests on this commit;
#   2. the GPU clock during a cold start of a shape (no warm-up), the
#      per-repetition times with and without the time-based warm-up;
#   3. every 8B matmul shape beside cuBLAS;
#   4. attn_cm2 128×128 with its row statistics at the driver's column
#      granularity (BR×32 at 256 invocations) against BR×16, beside SDPA;
#   5. block-sparse at 16K/32K, densities 0.1, 0.05 and 0.001 (column 0 and
#      the diagonal only: the fixed cost of a row tile);
#   6. the harness (bench/cm-last.sh: dense + block-sparse beside SDPA and
#      flex_attention on the same masks).
# Stages run in this order; one that would start after its deadline
# (DEADLINE, default 540 s, less what it needs) is skipped.
#
# Build here (repo root):
#   mkdir -p .devcarry/bin .devcarry/bench; F='-ldflags=-s -w'
#   go test -c "$F" -o .devcarry/bin/kernels.test ./runtime/kernels
#   for b in attention matmul; do go build "$F" -o .devcarry/bin/$b ./bench/$b; done
#   go build -trimpath "$F" -o .devcarry/bench/shareprefill ./cmd/shareprefill
#   git rev-parse --short HEAD > .devcarry/bench/COMMIT
# device run: bash bench/cm-round5.sh   (carry .gl .devcarry/bin .devcarry/bench)
#   4b. dense attention at 64K and 128K beside SDPA;
#   4c. the block-sparse walk of this commit against the one before
#      (.devcarry/bin/attention-old, built from the previous commit);
# env: DEADLINE, SKIP (stage names: tests clock shapes rowstat long walk
# sparse harness), KLENS (harness lengths), TESTS_RUN (test regexp).
# Round 5's other calls also ran matmul_cm1 with 16-byte shared stores,
# attn_cm2 with workgroup sizes apart from BR and attn_cm2 loading Q for
# every KV tile (commits 9b060b0, 5b039b7, 3b0ddfd; all three removed,
# see bench/RESULTS.md).
set -u
export PYTHONUNBUFFERED=1 SHAREPREFILL_REQUIRE_VULKAN=1
. bench/vk-setup.sh
B=.devcarry/bin; O=${OUT:-/tmp/out}; mkdir -p "$O"
DEADLINE=${DEADLINE:-540}
SHAPES8B=2048x4096x4096,2048x14336x4096,2048x4096x14336,2048x128256x4096,8192x4096x4096,8192x14336x4096,8192x4096x14336,8192x128256x4096
step() { echo; echo "=== $* ($SECONDS s)"; }
go_on() { case " ${SKIP:-} " in *" $1 "*) return 1;; esac; [ "$SECONDS" -lt $((DEADLINE - $2)) ] || { echo "skipped: $1 (deadline)"; return 1; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader
.devcarry/bench/shareprefill devices 2>&1 | grep -E "cooperative|^ *\[|\*" | head -8

if go_on tests 300; then
	step "coopmat device tests"
	(cd runtime/kernels && timeout 240 ../../$B/kernels.test -test.count=1 -test.v \
		-test.run "${TESTS_RUN:-CoopMat|CMAttn|CMTile|FlashAttention|SparseAttention|DecodeAttention}" > "$O/tests.log" 2>&1; echo "exit $?" >> "$O/tests.log")
	grep -E "^(--- FAIL|FAIL|ok|panic)|^exit |differs|SIGSEGV" "$O/tests.log" | head -20
	echo "passed: $(grep -cE '^--- PASS' "$O/tests.log"), skipped: $(grep -cE '^--- SKIP' "$O/tests.log")"
fi

if go_on clock 200; then
	step "SM clock during a cold shape (no warm-up), then with the 250 ms warm-up"
	nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,clocks_throttle_reasons.active --format=csv,noheader -lms 25 > "$O/clock.csv" 2>&1 &
	smi=$!
	timeout 60 $B/matmul -shapes 8192x4096x14336,2048x128256x4096,8192x4096x14336 -reps 20 -each -check 0 -warmup-ms 0 2>&1 | grep -E '^\| [0-9]|reps ms' | tee "$O/cold.md"
	kill $smi; wait $smi 2>/dev/null
	awk -F', ' '{print $2}' "$O/clock.csv" | sort | uniq -c | sort -rn | head -8
	echo "## with -warmup-ms 250 (default)"
	timeout 60 $B/matmul -shapes 8192x4096x14336,2048x128256x4096,8192x4096x14336 -reps 20 -each -check 0 2>&1 | grep -E '^\| [0-9]|reps ms' | tee "$O/warm.md"
fi

if go_on shapes 120; then
	step "every 8B shape, default tiles (10 reps) and cuBLAS"
	timeout 120 $B/matmul -shapes "$SHAPES8B" -reps 10 2>&1 | grep -E '^\| [0-9]' | tee "$O/shapes.md"
	timeout 90 python3 bench/peers/matmul.py --shapes "$SHAPES8B" --reps 10 2>&1 | grep -E '^\| [0-9]' | tee -a "$O/shapes.md"
fi

if go_on rowstat 110; then
	step "attn_cm2 128x128, row statistics BR x 32 (the driver's granularity at 256 invocations) vs BR x 16, A B A B, then SDPA"
	for rw in "" 16 "" 16; do
		echo "## SHAREPREFILL_CM2_ROWSTAT=${rw:-(default)}"
		SHAREPREFILL_VK_PIPELINE_STATS=1 SHAREPREFILL_CM2_ROWSTAT=$rw timeout 60 $B/attention -lens 16k -densities "" -reps 3 > "$O/attn.log" 2>&1
		grep -oE 'tiles: dense [^,]*' "$O/attn.log"
		grep -E '^\| [0-9]' "$O/attn.log"
		grep -iE '^\| attn_cm2.*(register|local)' "$O/attn.log" | head -2
	done 2>&1 | tee "$O/rowstat.md"
	timeout 90 python3 bench/peers/attention.py --lens 16k --reps 5 2>&1 | grep -E '^\| [0-9]' | tee -a "$O/rowstat.md"
fi

if go_on long 100; then
	step "dense attention at 64K and 128K, default routing, beside SDPA"
	timeout 120 $B/attention -lens 64k,128k -densities "" -reps 2 2>&1 | grep -E 'tiles: dense|^\| [0-9]' | tee "$O/long.md"
	timeout 120 python3 bench/peers/attention.py --lens 64k,128k --reps 3 2>&1 | grep -E '^\| [0-9]' | tee -a "$O/long.md"
fi

if go_on walk 100 && [ -x $B/attention-old ]; then
	step "block-sparse walk: $B/attention-old (the previous commit's kernel) vs $B/attention, A B A B"
	for bin in attention-old attention attention-old attention; do
		echo "## $bin"
		timeout 60 $B/$bin -lens 16k,32k -densities 0.1,0.05,0.001 -reps 3 2>&1 | grep -E '^\| [0-9]+ \| 0'
	done 2>&1 | tee "$O/walk.md"
fi

if go_on sparse 80; then
	step "block-sparse, B 128, routed tiles: 16K/32K at 0.1, 0.05, 0.001"
	timeout 120 $B/attention -lens 16k,32k -densities 0.1,0.05,0.001 -reps 3 2>&1 | grep -E 'tiles: dense|^\| [0-9]' | tee "$O/sparse.md"
fi

if go_on harness 60; then
	step "harness: dense + block-sparse vs SDPA and flex_attention (16K, 32K)"
	SKIP_TESTS=1 HARNESS_TIMEOUT=$((DEADLINE - 20 - SECONDS)) KLENS=${KLENS:-16384,32768} bash bench/cm-last.sh
fi
step done
