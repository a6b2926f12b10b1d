#!/usr/bin/env bash
# session-6 call B: the f16 Llama-3-8B-shaped model (2 layers) decode at 4K/32K, ours vs llama.cpp Vulkan in one call (issue 22);
# model decode/prefill tests on the device
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/rb.tgz r 2>/dev/null; }
cat .devcarry/c7/COMMIT; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
QB=/tmp/lb; mkdir -p $QB && tar -xJf .devcarry/llamacpp/bin.tar.xz -C $QB
M=/tmp/m8b; timeout 120 /tmp/sp bench gen-model --shape llama3-8b --layers 2 --out $M > /tmp/r/genmodel.log 2>&1; tail -2 /tmp/r/genmodel.log
S=/tmp/m8b-hf; mkdir -p $S && ln -sf $M/config.json $M/*.safetensors $S/ && cp .devcarry/c7/tok/* $S/
timeout 150 python3 .devcarry/llamacpp/mkgguf.py hf $S /tmp/8b-f16.gguf > /tmp/r/mkgguf.log 2>&1; tail -2 /tmp/r/mkgguf.log; ls -la /tmp/8b-f16.gguf
dec() { # tag lens reps
  timeout 120 /tmp/sp bench decode --model $M --lens $2 --gen 64 --reps $3 --warmup 2 --md /tmp/r/dec-$1.md --json /tmp/r/dec-$1.json --quiet > /tmp/r/dec-$1.log 2>&1
  echo "-- $1: $(grep -E '^\| [0-9]' /tmp/r/dec-$1.md | head -2 | cut -d'|' -f2-5 | tr '\n' ' ')"
}
lc() { LD_LIBRARY_PATH=$QB timeout 120 $QB/llama-bench -m /tmp/8b-f16.gguf -p 0 -n 64 -d 4096,32768 -fa 1 -ngl 999 -r 5 -o md 2>&1 | grep -E 'tg64|error|fail' | tee -a /tmp/r/llamacpp-8b-f16-$1.md; }
echo "=== 8B f16 decode ($SECONDS s)"
dec 8b-1 4096,32768 5; pk
lc 1; pk
dec 8b-2 4096,32768 5; pk
lc 2; pk
echo "=== model tests ($SECONDS s)"
xz -dc .devcarry/kt/model.test.xz > /tmp/model.test; chmod +x /tmp/model.test
(cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 150 /tmp/model.test -test.run 'Decode|SplitKV|Prefill|Quant|GGUF|Engine' 2>&1 > /tmp/r/model-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/model-tests.txt | tail -20); pk
echo "=== done ($SECONDS s)"
