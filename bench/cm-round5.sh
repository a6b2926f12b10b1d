#!/usr/bin/env bash
# bench/cm-round5.sh — issue 11, round 5, in one device call (H100 or H200):
#   1. the coopmat device tests on this commit (every tuned configuration,
#      including the attn_cm2 workgroup sizes below);
#   2. attn_cm2 at 16K with the workgroup size decoupled from BR
#      (SHAREPREFILL_CM_ATTN_TILES=BR,BC,RF,cm2,FOLD,WG) and each pipeline's
#      register/spill statistics, beside SDPA (default backend);
#   3. block-sparse at 16K/32K with the two fastest dense configurations,
#      densities 0.1, 0.05 and 0 (column 0 and the diagonal only: the fixed
#      cost of a row tile), and the dense kernel without the diagonal mask
#      (PROBE 2);
#   4. matmul_cm1 tiles (BK 64, 8 subgroups of 64×32 or 32×64), probe modes
#      of the 128×128 tile, the per-repetition times of the shapes that show
#      slow repetitions, and cuBLAS on the same shapes.
# Stages run in this order; one that would start after DEADLINE seconds
# (default 540) is skipped.
#
# Build here (repo root):
#   mkdir -p .devcarry/bin; F='-ldflags=-s -w'
#   go test -c "$F" -o .devcarry/bin/kernels.test ./runtime/kernels
#   for b in attention matmul; do go build "$F" -o .devcarry/bin/$b ./bench/$b; done
# device run: bash bench/cm-round5.sh   (carry .gl .devcarry/bin)
# env: ATTN_CFGS, SPARSE_CFGS (default: the two fastest of ATTN_CFGS),
# MM_TILES, MM_SHAPES, DEADLINE, SKIP (stage names to skip).
set -u
export PYTHONUNBUFFERED=1 SHAREPREFILL_REQUIRE_VULKAN=1
. bench/vk-setup.sh
B=.devcarry/bin; O=${OUT:-/tmp/out}; mkdir -p "$O"
DEADLINE=${DEADLINE:-540}
ATTN_CFGS=${ATTN_CFGS:-128,128,1,cm2 128,128,1,cm2,1,512 64,128,1,cm2,1,256 64,64,1,cm2,1,256 128,64,1,cm2,1,512 64,128,1,cm2 64,64,1,cm2}
MM_TILES=${MM_TILES:-128,128,32,64,64,8,1 128,128,64,64,64,8,1 128,128,32,64,32,8,1 128,128,32,32,64,8,1 128,128,64,64,32,8,1}
MM_SHAPES=${MM_SHAPES:-8192x4096x4096,8192x14336x4096}
step() { echo; echo "=== $* ($SECONDS s)"; }
go_on() { case " ${SKIP:-} " in *" $1 "*) return 1;; esac; [ "$SECONDS" -lt "$2" ] || { echo "skipped: $1 (deadline)"; return 1; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader

if go_on tests $((DEADLINE - 300)); then
	step "coopmat device tests"
	(cd runtime/kernels && timeout 200 ../../$B/kernels.test -test.count=1 -test.v \
		-test.run 'CoopMat|CMAttn|CMTile|FlashAttention|SparseAttention|DecodeAttention' > "$O/tests.log" 2>&1; echo "exit $?" >> "$O/tests.log")
	grep -E "^(--- FAIL|FAIL|PASS|ok|panic)|exit |differs" "$O/tests.log" | head -20
	grep -cE "^--- PASS" "$O/tests.log"
fi

if go_on attn $((DEADLINE - 200)); then
	step "attn_cm2 workgroup sizes, 16K dense (with pipeline statistics)"
	for c in $ATTN_CFGS; do
		echo "## SHAREPREFILL_CM_ATTN_TILES=$c"
		SHAREPREFILL_VK_PIPELINE_STATS=1 SHAREPREFILL_CM_ATTN_TILES=$c timeout 60 $B/attention -lens 16k -densities "" -reps 3 > "$O/attn-$c.log" 2>&1
		grep -E '^\| [0-9]' "$O/attn-$c.log"
		grep -iE '^\| attn_cm2.*(register|local|spill)' "$O/attn-$c.log" | head -4
	done 2>&1 | tee "$O/attn.md"
	timeout 90 python3 bench/peers/attention.py --lens 16k --reps 5 2>&1 | grep -E '^\| [0-9]' | tee -a "$O/attn.md"
fi

# The two fastest dense configurations whose BR and BC divide 128.
best2=${SPARSE_CFGS:-$(awk '/^## SHAREPREFILL_CM_ATTN_TILES=/{c=substr($0, 31)} /^\| [0-9]+ \|/ && c!="" {print $8, c; c=""}' "$O/attn.md" 2>/dev/null | sort -rn | awk '{split($2, f, ","); if (128 % f[1] == 0 && 128 % f[2] == 0) print $2}' | head -2)}
if go_on sparse $((DEADLINE - 120)); then
	step "block-sparse, B 128 (configurations: $(echo $best2))"
	for c in $best2; do
		echo "## SHAREPREFILL_CM_ATTN_TILES=$c"
		SHAREPREFILL_CM_ATTN_TILES=$c timeout 120 $B/attention -lens 16k,32k -densities 0.1,0.05,0 -reps 3 2>&1 | grep -E '^\| [0-9]'
		echo "## same, dense without the diagonal mask (PROBE 2, wrong results)"
		SHAREPREFILL_CM_ATTN_PROBE=2 SHAREPREFILL_CM_ATTN_TILES=$c timeout 60 $B/attention -lens 16k -densities "" -reps 3 2>&1 | grep -E '^\| [0-9]'
	done 2>&1 | tee "$O/sparse.md"
fi

if go_on matmul $((DEADLINE - 90)); then
	step "matmul_cm1 tiles ($MM_SHAPES)"
	for t in $MM_TILES; do
		echo "## SHAREPREFILL_CM_TILE=$t"
		SHAREPREFILL_VK_PIPELINE_STATS=1 SHAREPREFILL_CM_TILE=$t timeout 60 $B/matmul -variant coopmat -shapes "$MM_SHAPES" -reps 10 > "$O/mm-$t.log" 2>&1
		grep -E '^\| [0-9]' "$O/mm-$t.log"
		grep -iE '^\| matmul_cm1.*(register|local|spill)' "$O/mm-$t.log" | head -3
	done 2>&1 | tee "$O/matmul.md"
	timeout 60 python3 bench/peers/matmul.py --shapes "$MM_SHAPES" --reps 10 2>&1 | grep -E '^\| [0-9]' | tee -a "$O/matmul.md"
fi

if go_on probe $((DEADLINE - 60)); then
	step "matmul_cm1 128x128 probes (1: L2-resident inputs, 2: no global loads, 3: products + barriers)"
	for pr in 0 1 2 3; do
		echo "## SHAREPREFILL_CM_PROBE=$pr"
		SHAREPREFILL_CM_PROBE=$pr SHAREPREFILL_CM_TILE=128,128,32,64,64,8,1 timeout 40 $B/matmul -variant coopmat -shapes 8192x4096x4096 -reps 10 -check 0 2>&1 | grep -E '^\| 8192'
	done 2>&1 | tee "$O/probe.md"
fi

if go_on slowreps $((DEADLINE - 45)); then
	step "per-repetition times (default routing), shapes that showed slow repetitions, twice"
	timeout 60 $B/matmul -shapes 8192x4096x14336,2048x128256x4096,8192x4096x14336,2048x128256x4096 -reps 20 -each -check 0 2>&1 | grep -E '^\| [0-9]|reps ms' | tee "$O/slowreps.md"
	nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader
fi
step done
