#!/usr/bin/env bash
# Carry layout (ignored, rebuilt by hand): .gl (the loader .debs, see bench/vk-setup.sh), .devcarry/bench/{shareprefill.xz (this
# commit, go build -trimpath -ldflags="-s -w"), bench-lm-8k.tar.xz, holdout-go.txt.xz}, .devcarry/c8/{sp-base.xz (c32eb7c), COMMIT,
# COMMIT-base}, .devcarry/kt/{kernels,sharegpu,model}.test.xz (go test -c). Run: DL=SECONDS bash bench/results/h100-2026-12-08/callA/call.sh (it read the base binary from .devcarry/c8)
# session-8 call A: base (c32eb7c, /tmp/spb) against new (main + h-stats: the estimate's statistics in registers, K
# tiles fetched ahead): the estimate kernels, est_cover_hist against est_cover_sg, device tests, bench-lm-8k prefill
# A/B; then dense attention at D 64 with tiles of 64 rows (two workgroups a multiprocessor) against SDPA.
set -u
O=${OUT:-/tmp/out}; R=$O/r; mkdir -p $R
DL=${DL:-200}
ok() { [ $SECONDS -lt $DL ] || { echo "skip $1 ($SECONDS s)"; return 1; }; }
. bench/vk-setup.sh
cat .devcarry/c8/COMMIT; nvidia-smi --query-gpu=name --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/c8/sp-base.xz > /tmp/spb; chmod +x /tmp/spb; cat .devcarry/c8/COMMIT-base
xz -dc .devcarry/bench/holdout-go.txt.xz > /tmp/holdout-go.txt
[ -d /tmp/m/bench-lm-8k ] || { mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz; }
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
kb() { local tag=$1; shift; ok "kernels $tag" || return 0
  env "$@" timeout 40 ${SP:-/tmp/sp} bench kernels --hq 8 --hkv 2 --d 64 --block 128 --lens 8192,16384 --densities 1 --matmul-m none --reps 9 --md $R/$tag.md --quiet > $R/$tag.log 2>&1
  echo "-- $tag"; grep -iE "cover|last-block" $R/$tag.md | cut -c1-140; }
at() { local tag=$1; shift; ok "attn $tag" || return 0
  env "$@" timeout 40 /tmp/sp bench kernels ${AT128:---hq 8 --hkv 2 --d 64 --lens 8192,16384} --block 128 --densities 1 --estimation=false --matmul-m none --reps 9 --md $R/attn-$tag.md --quiet > $R/attn-$tag.log 2>&1
  echo "-- attn $tag"; grep -E "^\| [0-9]+ \| dense" $R/attn-$tag.md | head -4 | cut -c1-160; tail -2 $R/attn-$tag.log; }
pf() { local tag=$1; shift; ok "prefill $tag" || return 0
  env "$@" timeout 60 ${SP:-/tmp/sp} bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 7 --profile $PF_EXTRA --md $R/prefill-$tag.md --quiet > $R/prefill-$tag.log 2>&1
  echo "-- $tag ($SECONDS s)"; grep -E '^\| (dense|share) \| [0-9]+ \|' $R/prefill-$tag.md | cut -c1-150; }
echo "=== estimate kernels ($SECONDS s)"
SP=/tmp/spb kb base
kb new
kb new-nopf SHAREPREFILL_EST_PREFETCH=off
kb new-hist SHAREPREFILL_COVER=hist
echo "=== prefill ($SECONDS s)"
PF_EXTRA= SP=/tmp/spb pf base
PF_EXTRA= pf new
PF_EXTRA= pf new-hist SHAREPREFILL_COVER=hist
echo "=== attention D 64 ($SECONDS s)"
ok sdpa && timeout 60 python3 bench/peers/attention.py --hq 8 --hkv 2 --d 64 --lens 8k,16k --reps 9 > $R/sdpa.txt 2>&1; tail -4 $R/sdpa.txt
at default
at 64x128fs SHAREPREFILL_CM_ATTN_TILES=64,128,1,cm2,1,fs
at 64x64fs SHAREPREFILL_CM_ATTN_TILES=64,64,1,cm2,1,fs
at 64x128fspipe SHAREPREFILL_CM_ATTN_TILES=64,128,1,cm2,1,fs+pipe
echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt; for t in kernels sharegpu model; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
ok "kernel tests" && (cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/kernels.test -test.run "Cover|NormMatVecRopeKV|Est|LastBlock|QK|BlockMap|Plan" 2>&1 > $R/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)|decode_test|est_test' $R/kernels-tests.txt | head -20)
ok "share/gpu" && (cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/sharegpu.test 2>&1 > $R/sharegpu-default.txt; echo "share/gpu default:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/sharegpu-default.txt | head -10)
ok "share/gpu hist" && (cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 SHAREPREFILL_COVER=hist timeout 60 /tmp/kt/sharegpu.test 2>&1 > $R/sharegpu-hist.txt; echo "share/gpu hist:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/sharegpu-hist.txt | head -10)
ok "model tests" && (cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 90 /tmp/kt/model.test -test.run 'Prefill|Decode|Engine|Logits|Record' 2>&1 > $R/model-tests.txt; echo "model:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/model-tests.txt | head -10)
ok "attn tests" && (cd runtime/kernels && for tl in 64,128,1,cm2,1,fs; do SHAREPREFILL_CM_ATTN_TILES=$tl SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/kernels.test -test.run 'TestFlashAttention$|TestSparseAttentionRandom|TestChunkedPrefill|TestFlashAttentionCoopMat' 2>&1 > $R/attn-tests-$tl.txt; echo "attn tests $tl:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/attn-tests-$tl.txt | head -6; done)
echo "=== repeats ($SECONDS s)"
PF_EXTRA= SP=/tmp/spb pf base2
PF_EXTRA= pf new2
PF_EXTRA= pf new-hist2 SHAREPREFILL_COVER=hist
PF_EXTRA="--corpus /tmp/holdout-go.txt" SP=/tmp/spb pf go-base
PF_EXTRA="--corpus /tmp/holdout-go.txt" pf go-new-hist SHAREPREFILL_COVER=hist
SP=/tmp/spb kb base2
kb new2
at 64x64fspipe SHAREPREFILL_CM_ATTN_TILES=64,64,1,cm2,1,fs+pipe
at 64x128 SHAREPREFILL_CM_ATTN_TILES=64,128,1,cm2
ok sdpa128 && timeout 60 python3 bench/peers/attention.py --hq 32 --hkv 8 --d 128 --lens 16k --reps 5 > $R/sdpa128.txt 2>&1; tail -3 $R/sdpa128.txt
AT128="--hq 32 --hkv 8 --d 128 --lens 16384" at d128-default
AT128="--hq 32 --hkv 8 --d 128 --lens 16384" at d128-64x128 SHAREPREFILL_CM_ATTN_TILES=64,128,1,cm2
PF_EXTRA= pf new-pf-off SHAREPREFILL_EST_PREFETCH=off
tar -C $O -cJf $O/r.tar.xz r && rm -rf $R
echo "=== done ($SECONDS s)"
