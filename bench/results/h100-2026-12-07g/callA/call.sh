#!/usr/bin/env bash
# session-7 call A: bench-lm-8k prefill base (9db7671) vs new (early flush, stacked QKV + RopeQKV) with traces;
# estimate ablation; cover WG; device tests; transformers prefill. Stages are skipped past DL seconds.
set -u
O=${OUT:-/tmp/out}; R=$O/r; mkdir -p $R
DL=${DL:-330}
ok() { [ $SECONDS -lt $DL ] || { echo "skip $1 ($SECONDS s)"; return 1; }; }
. bench/vk-setup.sh
cat .devcarry/c8/COMMIT .devcarry/c8/COMMIT-base; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
for b in bench/shareprefill:sp c8/sp-base:spb c8/sp-abl:spa; do xz -dc .devcarry/${b%%:*}.xz > /tmp/${b#*:}; chmod +x /tmp/${b#*:}; done
xz -dc .devcarry/bench/holdout-go.txt.xz > /tmp/holdout-go.txt
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
pf() { # tag bin methods lens [extra args...]
  local tag=$1 bin=$2 meth=$3 lens=$4; shift 4
  ok "prefill $tag" || return 0
  timeout 60 $bin bench prefill --model $M --lens $lens --methods $meth --clusters $CL --reps 7 --profile "$@" --md $R/prefill-$tag.md --json $R/prefill-$tag.json --quiet > $R/prefill-$tag.log 2>&1
  echo "-- $tag ($SECONDS s)"; grep -E '^\| (dense|share) \| [0-9]+ \|' $R/prefill-$tag.md | cut -c1-160
}
kb() { # tag env...
  local tag=$1; shift
  ok "kernels $tag" || return 0
  env "$@" timeout 40 /tmp/spa bench kernels --hq 8 --hkv 2 --d 64 --block 128 --lens 8192 --densities 1 --matmul-m none --reps 9 --json $R/$tag.json --md $R/$tag.md --quiet > $R/$tag.log 2>&1
  echo "-- $tag"; grep -iE "last-block|cover" $R/$tag.md | head -3 | cut -c1-160
}
echo "=== prefill A/B ($SECONDS s)"
mkdir -p $R/tr-new $R/tr-new-holdout
pf base /tmp/spb dense,share 8192,16384
pf new /tmp/sp dense,share 8192,16384 --traces $R/tr-new
echo "=== estimate ablation ($SECONDS s)"
for a in 0 1 2 4 5 3; do kb abl$a SHAREPREFILL_EST_ABLATE=$a; done
kb cover1024 SHAREPREFILL_COVER=sg,1024
echo "=== prefill repeats ($SECONDS s)"
pf base2 /tmp/spb dense,share 8192,16384
pf new2 /tmp/sp dense,share 8192,16384
SHAREPREFILL_PREFILL_QKV=separate pf new-QKV=separate /tmp/sp dense,share 8192,16384
echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt
for t in kernels model; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
ok tests && (cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/kernels.test -test.run 'NormMatVecRopeKV|RopeKV|RopeQKV|MatMulAdd' 2>&1 > $R/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/kernels-tests.txt | tail -20)
ok tests && (cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/model.test -test.run 'QKV|Fuse|PrefillWaits|Logits' 2>&1 > $R/model-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/model-tests.txt | tail -20)
echo "=== transformers prefill ($SECONDS s)"
ok hf && timeout 60 python3 bench/peers/hf_prefill.py --model $M --lens 8192,16384 --dtype bf16 --reps 5 --json $R/hf-prefill-lm.json 2>&1 | tail -4 | tee $R/hf-prefill-lm.txt
pf new3 /tmp/sp dense 8192,16384
pf new-holdout /tmp/sp dense,share 8192,16384 --corpus /tmp/holdout-go.txt --traces $R/tr-new-holdout
xz -9 $R/tr-*/*.json 2>/dev/null
echo "=== done ($SECONDS s)"
