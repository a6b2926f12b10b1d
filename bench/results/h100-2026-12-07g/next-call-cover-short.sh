#!/usr/bin/env bash
# session-7 call C: the γ-cover spread over workgroups (est_cover_hist) against est_cover_sg: bench kernels' cover row,
# device tests (Cover, NormMatVecRopeKV; share/gpu with the default and with hist), bench-lm-8k prefill A/B.
set -u
O=${OUT:-/tmp/out}; R=$O/r; mkdir -p $R
DL=${DL:-200}
ok() { [ $SECONDS -lt $DL ] || { echo "skip $1 ($SECONDS s)"; return 1; }; }
. bench/vk-setup.sh
cat .devcarry/c8/COMMIT; nvidia-smi --query-gpu=name --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/bench/holdout-go.txt.xz > /tmp/holdout-go.txt
[ -d /tmp/m/bench-lm-8k ] || { mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz; }
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
kb() { local tag=$1; shift; ok "kernels $tag" || return 0
  env "$@" timeout 40 /tmp/sp bench kernels --hq 8 --hkv 2 --d 64 --block 128 --lens 8192 --densities 1 --matmul-m none --reps 9 --md $R/$tag.md --quiet > $R/$tag.log 2>&1
  echo "-- $tag"; grep -iE "cover|last-block" $R/$tag.md | cut -c1-140; }
pf() { local tag=$1; shift; ok "prefill $tag" || return 0
  env "$@" timeout 60 /tmp/sp bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 7 --profile $PF_EXTRA --md $R/prefill-$tag.md --quiet > $R/prefill-$tag.log 2>&1
  echo "-- $tag ($SECONDS s)"; grep -E '^\| (dense|share) \| [0-9]+ \|' $R/prefill-$tag.md | cut -c1-150; }
echo "=== cover kernels ($SECONDS s)"
kb cover-sg SHAREPREFILL_COVER=sg
kb cover-hist SHAREPREFILL_COVER=hist

echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt; for t in kernels sharegpu; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
(cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/kernels.test -test.run 'Cover|NormMatVecRopeKV|EstShape' 2>&1 > $R/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)|decode_test|est_test' $R/kernels-tests.txt | head -20)

echo "=== prefill ($SECONDS s)"
PF_EXTRA= pf sg SHAREPREFILL_COVER=sg
PF_EXTRA= pf hist SHAREPREFILL_COVER=hist





ok "share/gpu hist" && (cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 SHAREPREFILL_COVER=hist timeout 40 /tmp/kt/sharegpu.test 2>&1 > $R/sharegpu-hist.txt; echo "share/gpu hist:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/sharegpu-hist.txt | head -10)
tar -C $O -cJf $O/r.tar.xz r && rm -rf $R
echo "=== done ($SECONDS s)"
