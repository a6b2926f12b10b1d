#!/usr/bin/env bash
# bench/h200-batch.sh — the one-call H200 session behind bench/RESULTS.md:
# the test binaries of runtime, kernels, model and share/gpu on the NVIDIA
# Vulkan driver; matmul vs cuBLAS; attention vs SDPA; accuracy/density of
# every method on bench-lm-8k with a cluster file calibrated in the same run;
# the HF transformers oracle. Outputs go to $OUT (at most 8 files).
#
# Build here (repo root), then run it there through the device tool:
#   mkdir -p .devcarry/bin .devcarry/data; F='-ldflags=-s -w'
#   for p in runtime runtime/kernels model share/gpu; do go test -c "$F" -o .devcarry/bin/$(basename $p).test ./$p; done
#   for b in matmul attention oracle sparseeval; do go build "$F" -o .devcarry/bin/$b ./bench/$b; done
#   go build "$F" -o .devcarry/bin/shareprefill ./cmd/shareprefill
#   tar -C .devcarry -cJf .devcarry/bin.tar.xz bin
#   tar -C ../shared/models -cJf .devcarry/lm.tar.xz bench-lm-8k/{config.json,model*.safetensors*,tokenizer.json,tokenizer_config.json}
#   head -c 250000 ../shared/data/corpora/austen/persuasion.txt > .devcarry/data/calib.txt
#   head -c 250000 ../shared/data/corpora/austen/emma.txt > .devcarry/data/eval.txt
#   device run: bash bench/h200-batch.sh   (carry .gl, .devcarry/bin.tar.xz, .devcarry/lm.tar.xz, .devcarry/data)
set -u
export PYTHONUNBUFFERED=1
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
W=/tmp/w; mkdir -p $W; tar -C $W -xJf .devcarry/bin.tar.xz; tar -C $W -xJf .devcarry/lm.tar.xz
B=$W/bin; O=${OUT:-/tmp/out}; mkdir -p "$O"
step() { echo; echo "=== $* ($(date +%T))"; }
step devices; $B/shareprefill devices | head -14
export SHAREPREFILL_REQUIRE_VULKAN=1
for t in runtime kernels model gpu; do
  case $t in model) dir=model;; gpu) dir=share/gpu;; kernels) dir=runtime/kernels;; *) dir=runtime;; esac
  step "test $t"
  (cd $dir && timeout 100 $B/$t.test -test.count=1 -test.v > $W/test-$t.log 2>&1; echo "exit $?" >> $W/test-$t.log)
  grep -E "^(--- FAIL|FAIL|PASS|panic)|exit " $W/test-$t.log | tail -4
  { echo "##### $t"; cat $W/test-$t.log; } >> "$O/tests.log"
done
step matmul
S=""; for m in 1 512 8192; do for nk in 4096x4096 14336x4096 4096x14336 128256x4096; do S="$S,${m}x${nk}"; done; done; S=${S#,}
timeout 120 $B/matmul -shapes "$S" -reps 10 > "$O/matmul.md" 2>&1
timeout 50 $B/matmul -variant tiled -shapes 8192x4096x4096,8192x14336x4096 -reps 5 >> "$O/matmul.md" 2>&1
timeout 100 python3 bench/peers/matmul.py --shapes "$S" --reps 10 >> "$O/matmul.md" 2>&1
tail -40 "$O/matmul.md"
step attention
timeout 150 $B/attention -lens 4k,16k,32k,64k,128k -densities 1,0.5,0.2,0.1,0.05 -reps 3 > "$O/attn.md" 2>&1
timeout 90 python3 bench/peers/attention.py --lens 4k,16k,32k,64k,128k --reps 5 >> "$O/attn.md" 2>&1
tail -40 "$O/attn.md"
step "bench-lm-8k: calibrate + accuracy/density"
LM=$W/bench-lm-8k
timeout 120 $B/shareprefill calibrate --model $LM --data .devcarry/data/calib.txt --length 8192 --block 128 --out "$O/clusters-bench-lm-8k.json" > $W/cal.txt 2>&1
tail -16 $W/cal.txt
timeout 150 $B/sparseeval -model $LM -corpus .devcarry/data/eval.txt -lens 8192,16384 -methods dense,vs,flex,share -clusters "$O/clusters-bench-lm-8k.json" -reps 3 > "$O/accuracy.md" 2>&1
cat $W/cal.txt >> "$O/accuracy.md"; tail -14 "$O/accuracy.md"
step "HF oracle"
timeout 200 python3 bench/peers/hf_oracle.py --out $W/oracle --n 64 > "$O/oracle.md" 2>&1
timeout 100 $B/oracle -dir $W/oracle >> "$O/oracle.md" 2>&1
tail -10 "$O/oracle.md"
step done
