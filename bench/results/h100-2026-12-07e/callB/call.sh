#!/usr/bin/env bash
# session-5 call B: rmsnorm/argmax/slice; small decode interleaved with llama.cpp (#22); 8b32 decode knobs + slice (#27)
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/rb.tgz r 2>/dev/null; }
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/bench/sp-base.xz > /tmp/spb; chmod +x /tmp/spb
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; P=.devcarry/bench/prompt.txt
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
dec() { # tag bin model lens reps [env...]
  local tag=$1 bin=$2 mod=$3 lens=$4 reps=$5; shift 5
  env "$@" timeout 120 $bin bench decode --model $mod --lens $lens --gen 64 --reps $reps --warmup 2 --md /tmp/r/dec-$tag.md --quiet > /tmp/r/dec-$tag.log 2>&1
  echo "-- $tag: $(grep -E '^\| [0-9]' /tmp/r/dec-$tag.md | head -2 | cut -d'|' -f2-5 | tr '\n' ' ')"
}
QB=/tmp/lb; mkdir -p $QB && tar -xJf .devcarry/llamacpp/bin.tar.xz -C $QB
timeout 60 python3 .devcarry/llamacpp/mkgguf.py hf $M /tmp/small-f16.gguf > /tmp/r/mkgguf.log 2>&1
lc() { LD_LIBRARY_PATH=$QB timeout 100 $QB/llama-bench -m $1 -p 0 -n 64 -d $2 -fa 1 -ngl 999 -r 5 -o md 2>&1 | grep -E 'tg64' | tee -a /tmp/r/llamacpp-$3.md; }
echo "=== small decode, interleaved ($SECONDS s)"
for i in 1 2; do
  dec small-new-$i /tmp/sp $M 4096,32768 5
  lc /tmp/small-f16.gguf 4096,32768 small
  dec small-kv2-$i /tmp/sp $M 4096,32768 5 SHAREPREFILL_DECODE_ATTN=splitkv2
  dec small-base-$i /tmp/spb $M 4096,32768 5
done
dec small-kv2-s64 /tmp/sp $M 4096 5 SHAREPREFILL_DECODE_ATTN=splitkv2 SHAREPREFILL_DECODE_SPLIT=64
dec small-kv2-s128 /tmp/sp $M 4096 5 SHAREPREFILL_DECODE_ATTN=splitkv2 SHAREPREFILL_DECODE_SPLIT=128
pk
echo "=== prefill lm ($SECONDS s)"
CL=bench/clusters-bench-lm-8k.json
pf() { # tag bin [env...]
  local tag=$1 bin=$2; shift 2
  env "$@" timeout 120 $bin bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 5 --profile --md /tmp/r/prefill-$tag.md --json /tmp/r/prefill-$tag.json --quiet > /tmp/r/prefill-$tag.log 2>&1
  echo "-- $tag"; grep -E '^\| (dense|share) \| (8192|16384) \|' /tmp/r/prefill-$tag.md
}
pf new /tmp/sp
pf base /tmp/spb
pf new-probes /tmp/sp SHAREPREFILL_COVER=probes
head -c 26000 $P > /tmp/p7k.txt
timeout 60 /tmp/sp run --model $M --attn share --clusters $CL --prompt-file /tmp/p7k.txt --context 8192 --max-tokens 2 --temp 0 --profile /tmp/r/trace-share8k.json > /dev/null 2> /tmp/r/trace-share8k.txt
tail -3 /tmp/r/trace-share8k.txt; xz -9 /tmp/r/trace-share8k.json; pk
echo "=== 8b32 ($SECONDS s)"
OUT=/tmp/r/speed REPS=3 QMODELS=8b32 QFULLLEN=8192 QFULLDEC=4096 QUB=2048 DEADLINE_S=150 bash bench/speed.sh quant > /tmp/r/quant.log 2>&1
grep -E '^\| 8B' /tmp/speed/json/quant/summary.md | head -3; cp -r /tmp/speed/json/quant /tmp/r/quant 2>/dev/null; rm -rf /tmp/r/speed; pk
G=/tmp/speed/quant/models/8b32-Q4_K_M.gguf
dec 8b-new /tmp/sp $G 4096 3
dec 8b-nf1 /tmp/sp $G 4096 3 SHAREPREFILL_DECODE_NORMFUSE=1
dec 8b-nf1-kv2 /tmp/sp $G 4096 3 SHAREPREFILL_DECODE_NORMFUSE=1 SHAREPREFILL_DECODE_ATTN=splitkv2
dec 8b-kv2 /tmp/sp $G 4096 3 SHAREPREFILL_DECODE_ATTN=splitkv2
for q in slice,64,2,1 slice,64,2,2 slice,64,2,4 slice,32,2,2; do
  dec 8b-nf1-kv2-$q /tmp/sp $G 4096 3 SHAREPREFILL_DECODE_NORMFUSE=1 SHAREPREFILL_DECODE_ATTN=splitkv2 SHAREPREFILL_GEMVQ=$q
done
dec 8b-base /tmp/spb $G 4096 3
lc $G 4096 8b32; pk
echo "=== kernels q4_k/q6_k ($SECONDS s)"
for q in wide slice,64,2,2 slice,64,2,4; do
  env SHAREPREFILL_GEMVQ=$q timeout 60 /tmp/sp bench kernels --matmul-types q4_k,q6_k --quant-m 1 --lens none --matmul-m none --estimation=false --reps 10 --md /tmp/r/kq-$q.md --quiet > /tmp/r/kq-$q.log 2>&1
  echo "-- $q"; grep -E '^\| q[46]_k' /tmp/r/kq-$q.md | head -6
done
pk
head -c 16000 $P > /tmp/p4k.txt
SHAREPREFILL_DECODE_NORMFUSE=1 SHAREPREFILL_DECODE_ATTN=splitkv2 timeout 90 /tmp/sp run --model $G --prompt-file /tmp/p4k.txt --context 8192 --max-tokens 32 --temp 0 --profile /tmp/r/trace-8b32-nf1.json > /dev/null 2> /tmp/r/trace-8b32.txt
xz -9 /tmp/r/trace-8b32-nf1.json
head -c 20000 $P > /tmp/p5k.txt
SHAREPREFILL_DECODE_ATTN=splitkv2 timeout 60 /tmp/sp run --model $M --prompt-file /tmp/p5k.txt --context 8192 --max-tokens 64 --temp 0 --profile /tmp/r/trace-decode.json > /dev/null 2> /tmp/r/trace-decode.txt
xz -9 /tmp/r/trace-decode.json; pk
echo "=== done ($SECONDS s)"
