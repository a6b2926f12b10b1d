#!/usr/bin/env bash
# session-5 call A: base (4768038, knobs) vs new (norm change) decode; knob sweeps; prefill lm share/dense + trace (#21);
# D=64 attention tiles + SDPA (#22); 8B Q4_K_M 32-layer decode, knobs, trace + llama.cpp (#27)
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/ra.tgz r 2>/dev/null; }
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/bench/sp-base.xz > /tmp/spb; chmod +x /tmp/spb
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json; P=.devcarry/bench/prompt.txt
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv > /tmp/r/gpu.txt 2>&1; cat /tmp/r/gpu.txt
dec() { # tag bin lens reps [env...]
  local tag=$1 bin=$2 lens=$3 reps=$4; shift 4
  env "$@" timeout 90 $bin bench decode --model $M --lens $lens --gen 64 --reps $reps --md /tmp/r/dec-$tag.md --quiet > /tmp/r/dec-$tag.log 2>&1
  echo "-- $tag: $(grep -E '^\| [0-9]' /tmp/r/dec-$tag.md | head -2 | tr '\n' ' ')"
}
echo "=== decode f16 small ($SECONDS s)"
dec base /tmp/spb 4096,32768 5
dec new /tmp/sp 4096,32768 5
QB=/tmp/lb; mkdir -p $QB && tar -xJf .devcarry/llamacpp/bin.tar.xz -C $QB
timeout 60 python3 .devcarry/llamacpp/mkgguf.py hf $M /tmp/small-f16.gguf > /tmp/r/mkgguf.log 2>&1
LD_LIBRARY_PATH=$QB timeout 100 $QB/llama-bench -m /tmp/small-f16.gguf -p 0 -n 64 -d 4096,32768 -fa 1 -ngl 999 -r 5 -o md 2>&1 | grep -E '^\|' | tee /tmp/r/llamacpp-decode-small-f16.md; pk
for kv in GEMV=64 GEMV=64,1 GEMV=64,4 GEMV=32,2 GEMV=256,1 DECODE_SPLIT=64 DECODE_SPLIT=128 DECODE_SPLIT=512; do
  dec "new-$kv" /tmp/sp 4096 3 SHAREPREFILL_$kv
done
dec new-again /tmp/sp 4096 3
timeout 60 /tmp/sp run --model $M --prompt-file $P --context 8192 --max-tokens 64 --temp 0 --profile /tmp/r/trace-decode.json > /dev/null 2> /tmp/r/trace-decode.txt; pk
echo "=== prefill ($SECONDS s)"
timeout 120 /tmp/sp bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 5 --profile --md /tmp/r/prefill-lm.md --json /tmp/r/prefill-lm.json --quiet > /tmp/r/prefill-lm.log 2>&1
grep -E '^\|' /tmp/r/prefill-lm.md | grep -v -- '---' | head -16
timeout 60 /tmp/sp run --model $M --attn share --clusters $CL --prompt-file $P --context 8192 --max-tokens 2 --temp 0 --profile /tmp/r/trace-share8k.json > /dev/null 2> /tmp/r/trace-share8k.txt
xz -9 /tmp/r/trace-*.json; pk
echo "=== attention D64 ($SECONDS s)"
for t in default 128,128,1,cm2,4 128,64,2,cm2 256,64,2,cm2; do
  if [ $t = default ]; then unset SHAREPREFILL_CM_ATTN_TILES; else export SHAREPREFILL_CM_ATTN_TILES=$t; fi
  timeout 60 /tmp/sp bench kernels --hq 8 --hkv 2 --d 64 --lens 8192,16384 --densities 1 --matmul-m none --estimation=false --reps 5 --md /tmp/r/attn64-$t.md --quiet > /tmp/r/attn64-$t.log 2>&1
  echo "-- $t"; grep -E '^\| (8192|16384)' /tmp/r/attn64-$t.md | head -4
done
unset SHAREPREFILL_CM_ATTN_TILES
timeout 60 python3 bench/peers/attention.py --lens 8192,16384 --hq 8 --hkv 2 --d 64 --reps 5 --json /tmp/r/sdpa64.json 2>&1 | tail -6 | tee /tmp/r/sdpa64.txt; pk
echo "=== quant 8b32 ($SECONDS s)"
OUT=/tmp/r/speed REPS=3 QMODELS=8b32 QFULLLEN=8192 QFULLDEC=4096 QUB=2048 DEADLINE_S=200 bash bench/speed.sh quant > /tmp/r/quant.log 2>&1
cat /tmp/speed/json/quant/summary.md 2>/dev/null | head -20; cp -r /tmp/speed/json/quant /tmp/r/quant 2>/dev/null; rm -rf /tmp/r/speed; pk
G=/tmp/speed/quant/models/8b32-Q4_K_M.gguf
M=$G
dec 8b-base /tmp/spb 4096 3
dec 8b-new /tmp/sp 4096 3
for kv in DECODE_NORMFUSE=64 DECODE_SPLIT=64 DECODE_SPLIT=1024; do
  dec "8b-new-$kv" /tmp/sp 4096 3 SHAREPREFILL_$kv
done
head -c 16000 $P > /tmp/p4k.txt
timeout 90 /tmp/sp run --model $G --prompt-file /tmp/p4k.txt --context 8192 --max-tokens 32 --temp 0 --profile /tmp/r/trace-8b32.json > /dev/null 2> /tmp/r/trace-8b32.txt
tail -5 /tmp/r/trace-8b32.txt; xz -9 /tmp/r/trace-8b32.json; pk
echo "=== done ($SECONDS s)"
