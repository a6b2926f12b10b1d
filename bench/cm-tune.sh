#!/usr/bin/env bash
# bench/cm-tune.sh — one device call of cooperative-matrix tuning (issue 11):
# the tensor-core ceiling through Vulkan (bench/cmpeak) beside cuBLAS, the
# coopmat kernel tests on the device, a dense-attention sweep over kernels
# and tiles beside SDPA, and matmul tiles beside cuBLAS. Results go to $OUT.
#
# Build here (repo root), then run there through the device tool:
#   mkdir -p .devcarry/bin; F='-ldflags=-s -w'
#   go test -c "$F" -o .devcarry/bin/kernels.test ./runtime/kernels
#   for b in cmpeak attention matmul; do go build "$F" -o .devcarry/bin/$b ./bench/$b; done
#   device run: bash bench/cm-tune.sh   (carry .gl and .devcarry/bin)
# env: STAGES (default "peak tests attn matmul"; also "probe", "stats",
# "anchors", "matmul2"), ATTN_CFGS (BR,BC,RF,KIND[,FOLD] list for
# SHAREPREFILL_CM_ATTN_TILES), ATTN_LENS (default 16k), MM_TILES
# (SHAREPREFILL_CM_TILE list), MM2_TILES (SHAREPREFILL_CM2_TILE list),
# MM_SHAPES, STATS_ATTN_TILES (list), ANCHOR_BACKENDS (SDPA backends).
set -u
export PYTHONUNBUFFERED=1
. bench/vk-setup.sh
B=.devcarry/bin; O=${OUT:-/tmp/out}; mkdir -p "$O"
export SHAREPREFILL_REQUIRE_VULKAN=1
STAGES=${STAGES:-peak tests attn matmul}
ATTN_CFGS=${ATTN_CFGS:-128,64,1,cmr-cv 128,32,1,cmr 128,32,1,cmr-cv 64,32,2,cmr 64,32,2,cmr-cv 128,32,2,cmr-cv 128,32,1,cm1}
ATTN_LENS=${ATTN_LENS:-16k}
MM_SHAPES=${MM_SHAPES:-8192x4096x4096,8192x14336x4096}
MM_TILES=${MM_TILES:-256,128,32,64,64,8,1 128,256,32,64,64,8,1 256,128,32,64,64,4,1}
step() { echo; echo "=== $* ($(date +%T))"; }
has() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
if has peak; then
	step "tensor-core ceiling (cmpeak) and cuBLAS"
	timeout 120 $B/cmpeak -reps 5 2>&1 | tee "$O/peak.md"
	timeout 60 python3 bench/peers/matmul.py --shapes 8192x8192x8192,16384x16384x8192 --reps 10 2>&1 | tee -a "$O/peak.md"
fi
if has tests; then
	step "coopmat kernel tests"
	(cd runtime/kernels && timeout 240 ../../$B/kernels.test -test.count=1 -test.v \
		-test.run "${TESTS_RUN:-CoopMat|CMAttn|CMTile|FlashAttention|SparseAttention|DecodeAttention}" > "$O/tests.log" 2>&1; echo "exit $?" >> "$O/tests.log")
	grep -E "^(--- FAIL|FAIL|PASS|ok|panic)|exit |attn.*differs|error" "$O/tests.log" | head -40
fi
if has attn; then
	step "dense attention sweep ($ATTN_LENS)"
	for c in $ATTN_CFGS; do
		echo "## SHAREPREFILL_CM_ATTN_TILES=$c"
		SHAREPREFILL_CM_ATTN_TILES=$c timeout 90 $B/attention -lens "$ATTN_LENS" -densities "${ATTN_DENS:-}" -reps 3 2>&1 | grep -vE '^\|---' | tail -n +1
	done 2>&1 | tee "$O/attn.md"
	timeout 90 python3 bench/peers/attention.py --lens "$ATTN_LENS" --reps 5 2>&1 | tee -a "$O/attn.md"
fi
if has matmul; then
	step "matmul tiles ($MM_SHAPES)"
	for t in $MM_TILES; do
		echo "## SHAREPREFILL_CM_TILE=$t"
		SHAREPREFILL_CM_TILE=$t timeout 60 $B/matmul -variant coopmat -shapes "$MM_SHAPES,$MM_SHAPES" -reps 10 2>&1
	done 2>&1 | tee "$O/matmul.md"
	timeout 60 python3 bench/peers/matmul.py --shapes "$MM_SHAPES" --reps 10 2>&1 | tee -a "$O/matmul.md"
fi
if has probe; then
	step "probe modes (where the time goes; results of probes are wrong by design)"
	for pr in ${PROBE_MM:-0 1 2 3}; do
		echo "## matmul SHAREPREFILL_CM_PROBE=$pr tile ${PROBE_MM_TILE:-256,128,32,64,64,8,1}"
		SHAREPREFILL_CM_PROBE=$pr SHAREPREFILL_CM_TILE=${PROBE_MM_TILE:-256,128,32,64,64,8,1} timeout 60 $B/matmul -variant coopmat -shapes 8192x4096x4096 -reps 10 -check 0 2>&1 | grep -E '^\| 8192'
	done
	for pr in ${PROBE_ATTN:-0 1 2 3}; do
		echo "## attention SHAREPREFILL_CM_ATTN_PROBE=$pr tiles ${PROBE_ATTN_TILES:-128,64,1,cmr-cv}"
		SHAREPREFILL_CM_ATTN_PROBE=$pr SHAREPREFILL_CM_ATTN_TILES=${PROBE_ATTN_TILES:-128,64,1,cmr-cv} timeout 60 $B/attention -lens 16k -densities "" -reps 3 2>&1 | grep -E '^\| [0-9]'
	done
fi
if has matmul2; then
	step "coopmat2 matmul tiles ($MM_SHAPES)"
	for t in ${MM2_TILES:-128,128,128,32,8 256,128,256,32,8}; do
		echo "## SHAREPREFILL_CM2_TILE=$t"
		SHAREPREFILL_CM2_TILE=$t timeout 60 $B/matmul -variant coopmat2 -shapes "$MM_SHAPES" -reps 10 2>&1 | grep -E '^\| [0-9]'
	done 2>&1 | tee "$O/matmul2.md"
fi
if has anchors; then
	step "SDPA backends ($ATTN_LENS)"
	for be in ${ANCHOR_BACKENDS:-default flash cudnn efficient}; do
		timeout 120 python3 bench/peers/attention.py --lens "$ATTN_LENS" --reps 5 --backend "$be" 2>&1 | grep -E 'backend|^\| [0-9]'
	done 2>&1 | tee "$O/anchors.md"
fi
if has stats; then
	step "pipeline statistics (VK_KHR_pipeline_executable_properties)"
	for st in ${STATS_ATTN_TILES:-128,64,1,cmr-cv}; do
		echo "## $st"
		SHAREPREFILL_VK_PIPELINE_STATS=1 SHAREPREFILL_CM_ATTN_TILES=$st timeout 60 $B/attention -lens 4k -densities "" -reps 1 2>&1 | grep -E '^\|'
	done 2>&1 | tee "$O/stats-attn.md"
	SHAREPREFILL_VK_PIPELINE_STATS=1 timeout 60 $B/matmul -shapes 2048x4096x4096 -reps 1 2>&1 | grep -E '^\| (shader|matmul|---)' | tee "$O/stats-matmul.md"
fi
step done
