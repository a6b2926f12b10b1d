#!/usr/bin/env bash
# Carry layout (ignored, rebuilt by hand): .gl (the loader .debs, see bench/vk-setup.sh), .devcarry/bench/{shareprefill.xz (this
# commit, go build -buildvcs=true -trimpath -ldflags="-s -w"), bench-lm-8k.tar.xz, holdout-go.txt.xz}, .devcarry/c9/{sp-base.xz
# (26f473b, the eighth session's end), COMMIT, COMMIT-base}, .devcarry/kt/{kernels,sharegpu,model}.test.xz (go test -c).
# Run: DL=SECONDS bash THIS (carry .gl .devcarry).
# Ninth-session call: base (26f473b, /tmp/spb) against new (the fused gate|up SwiGLU matmul, est_cover_sg dropping the
# entries below its bracket, cooperative-matrix matmul fragments stored straight to memory), each new part also
# switched off by its knob in the same binary; the kernels' device tests; transformers' prefill.
set -u
O=${OUT:-/tmp/out}; R=$O/r; mkdir -p $R
DL=${DL:-200}
ok() { [ $SECONDS -lt $DL ] || { echo "skip $1 ($SECONDS s)"; return 1; }; }
. bench/vk-setup.sh
cat .devcarry/c9/COMMIT; nvidia-smi --query-gpu=name --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/c9/sp-base.xz > /tmp/spb; chmod +x /tmp/spb; cat .devcarry/c9/COMMIT-base
xz -dc .devcarry/bench/holdout-go.txt.xz > /tmp/holdout-go.txt
[ -d /tmp/m/bench-lm-8k ] || { mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz; }
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
kb() { local tag=$1; shift; ok "kernels $tag" || return 0
  env "$@" timeout 40 ${SP:-/tmp/sp} bench kernels --hq 8 --hkv 2 --d 64 --block 128 --lens 8192,16384 --densities 1 --matmul-m none --reps 9 --md $R/$tag.md --quiet > $R/$tag.log 2>&1
  echo "-- $tag"; grep -iE "cover|last-block" $R/$tag.md | cut -c1-140; }
pf() { local tag=$1; shift; ok "prefill $tag" || return 0
  env "$@" timeout 60 ${SP:-/tmp/sp} bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 7 --profile $PF_EXTRA --md $R/prefill-$tag.md --quiet > $R/prefill-$tag.log 2>&1
  echo "-- $tag ($SECONDS s)"; grep -E '^\| (dense|share) \| [0-9]+ \|' $R/prefill-$tag.md | cut -c1-150; }
echo "=== estimate kernels ($SECONDS s)"
SP=/tmp/spb kb base
kb new
kb new-scan SHAREPREFILL_COVER=sg-scan
kb new-sg128 SHAREPREFILL_COVER=sg,128
kb new-sg512 SHAREPREFILL_COVER=sg,512
echo "=== prefill ($SECONDS s)"
PF_EXTRA= SP=/tmp/spb pf base
PF_EXTRA= pf new
PF_EXTRA= pf new-mlpsep SHAREPREFILL_PREFILL_MLP=separate
PF_EXTRA= pf new-scan SHAREPREFILL_COVER=sg-scan
PF_EXTRA= pf new-scratch SHAREPREFILL_MATMUL_STORE=scratch
echo "=== traces ($SECONDS s)"
for b in base new; do ok "trace $b" || break; B=/tmp/sp; [ $b = base ] && B=/tmp/spb
  timeout 60 $B bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 3 --traces $R/tr-$b --md $R/tr-$b.md --quiet > $R/tr-$b.log 2>&1; done
echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt; for t in kernels sharegpu model; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
ok "kernel tests" && (cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 120 /tmp/kt/kernels.test -test.v -test.run "Cover|MatMul|SwiGLU|MLP|GLU|Tables" 2>&1 > $R/kernels-tests.txt; grep -cE '^\s*--- PASS' $R/kernels-tests.txt; grep -E '^\s*--- FAIL|^(ok|FAIL|PASS|panic)' $R/kernels-tests.txt | head -20)
ok "share/gpu" && (cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/sharegpu.test 2>&1 > $R/sharegpu.txt; echo "share/gpu:"; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' $R/sharegpu.txt | head -10)
ok "model tests" && (cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 90 /tmp/kt/model.test -test.v -test.run 'Prefill|Fuse|MLP|Logits|Structure|Waits' 2>&1 > $R/model-tests.txt; echo "model:"; grep -cE '^\s*--- PASS' $R/model-tests.txt; grep -E '^\s*--- FAIL|^(ok|FAIL|PASS|panic)' $R/model-tests.txt | head -10)
echo "=== repeats ($SECONDS s)"
PF_EXTRA= SP=/tmp/spb pf base2
PF_EXTRA= pf new2
PF_EXTRA= pf new-mlpsep2 SHAREPREFILL_PREFILL_MLP=separate
PF_EXTRA="--corpus /tmp/holdout-go.txt" SP=/tmp/spb pf go-base
PF_EXTRA="--corpus /tmp/holdout-go.txt" pf go-new
SP=/tmp/spb kb base2
kb new2
ok hf && timeout 60 python3 bench/peers/hf_prefill.py --model $M --lens 8192,16384 --dtype bf16 --reps 5 --json $R/hf-prefill-lm.json 2>&1 | tail -4 | tee $R/hf-prefill-lm.txt
for f in $R/tr-*/*.json; do [ -f $f ] && xz $f; done
tar -C $O -cJf $O/r.tar.xz r && rm -rf $R
echo "=== done ($SECONDS s)"
