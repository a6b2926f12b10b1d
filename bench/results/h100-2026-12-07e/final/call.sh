#!/usr/bin/env bash
# session-5 final call (lean): device tests of the new defaults, then final figures beside llama.cpp
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/re.tgz r 2>/dev/null; }
cat .devcarry/bench/COMMIT; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
xz -dc .devcarry/kt/kernels.test.xz > /tmp/kernels.test; chmod +x /tmp/kernels.test
(cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 90 /tmp/kernels.test -test.run 'Decode|RMSNorm|Argmax|NormMatVec|MatVecAdd|Gemv|Cover|TopK|Plan|LastBlock|Tuning' 2>&1 > /tmp/r/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/kernels-tests.txt | tail -20)
pk
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
dec() { # tag model lens reps [env...]
  local tag=$1 mod=$2 lens=$3 reps=$4; shift 4
  env "$@" timeout 90 /tmp/sp bench decode --model $mod --lens $lens --gen 64 --reps $reps --warmup 2 --md /tmp/r/dec-$tag.md --json /tmp/r/dec-$tag.json --quiet > /tmp/r/dec-$tag.log 2>&1
  echo "-- $tag: $(grep -E '^\| [0-9]' /tmp/r/dec-$tag.md | head -2 | cut -d'|' -f2-5 | tr '\n' ' ')"
}
QB=/tmp/lb; mkdir -p $QB && tar -xJf .devcarry/llamacpp/bin.tar.xz -C $QB
timeout 60 python3 .devcarry/llamacpp/mkgguf.py hf $M /tmp/small-f16.gguf > /tmp/r/mkgguf.log 2>&1
lc() { LD_LIBRARY_PATH=$QB timeout 80 $QB/llama-bench -m $1 -p 0 -n 64 -d $2 -fa 1 -ngl 999 -r 5 -o md 2>&1 | grep -E 'tg64' | tee -a /tmp/r/llamacpp-$3.md; }
echo "=== small decode ($SECONDS s)"
dec small-1 $M 4096,32768 5
lc /tmp/small-f16.gguf 4096,32768 small
dec small-2 $M 4096,32768 5
pk
echo "=== prefill lm ($SECONDS s)"
timeout 90 /tmp/sp bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 5 --profile --md /tmp/r/prefill.md --json /tmp/r/prefill.json --quiet > /tmp/r/prefill.log 2>&1
grep -E '^\| (dense|share) \| (8192|16384) \|' /tmp/r/prefill.md; pk
echo "=== 8b32 ($SECONDS s)"
OUT=/tmp/r/speed REPS=3 QMODELS=8b32,8b QLENS=4096 QFULLLEN=8192 QFULLDEC=4096 QUB=" " DEADLINE_S=150 bash bench/speed.sh quant > /tmp/r/quant.log 2>&1
grep -E '^\| 8B' /tmp/speed/json/quant/summary.md | head -3; cp -r /tmp/speed/json/quant /tmp/r/quant 2>/dev/null; rm -rf /tmp/r/speed; pk
echo "=== done ($SECONDS s)"
