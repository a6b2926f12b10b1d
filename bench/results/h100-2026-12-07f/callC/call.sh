#!/usr/bin/env bash
# session-6 call C: device tests of the merged branches (plan6, fuse, attn); bench-lm-8k prefill base/new + knob A/B;
# D 64 / D 128 attention variants beside SDPA; transformers' prefill of bench-lm-8k; pipeline stats; traces
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/rc.tgz r 2>/dev/null; }
cat .devcarry/c7/COMMIT .devcarry/c7/COMMIT-base; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/c7/sp-base.xz > /tmp/spb; chmod +x /tmp/spb
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json; P=.devcarry/bench/prompt.txt
echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt
for t in kernels sharegpu model; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
(cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 240 /tmp/kt/kernels.test -test.run "$KT" 2>&1 > /tmp/r/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/kernels-tests.txt | tail -20); pk
(cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 100 /tmp/kt/sharegpu.test 2>&1 > /tmp/r/sharegpu-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/sharegpu-tests.txt | tail -20); pk
(cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 100 /tmp/kt/model.test -test.run "$MT" 2>&1 > /tmp/r/model-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/model-tests.txt | tail -20); pk
pf() { # tag bin methods [env...]
  local tag=$1 bin=$2 meth=$3; shift 3
  env "$@" timeout 100 $bin bench prefill --model $M --lens 8192,16384 --methods $meth --clusters $CL --reps 5 --profile --md /tmp/r/prefill-$tag.md --json /tmp/r/prefill-$tag.json --quiet > /tmp/r/prefill-$tag.log 2>&1
  echo "-- $tag"; grep -E '^\| (dense|share) \| (8192|16384) \|' /tmp/r/prefill-$tag.md | cut -c1-150; pk
}
echo "=== prefill ($SECONDS s)"
pf base /tmp/spb dense,share
pf new /tmp/sp dense,share
pf base2 /tmp/spb dense,share
pf new2 /tmp/sp dense,share
for kv in $KNOBS; do pf "new-$kv" /tmp/sp share SHAREPREFILL_$kv; done
pf new-PREFILL_ADD=separate /tmp/sp dense SHAREPREFILL_PREFILL_ADD=separate
echo "=== attention ($SECONDS s)"
ak() { # tag hq hkv d lens tiles
  if [ "$6" = default ]; then unset SHAREPREFILL_CM_ATTN_TILES; else export SHAREPREFILL_CM_ATTN_TILES=$6; fi
  timeout 60 /tmp/sp bench kernels --hq $2 --hkv $3 --d $4 --lens $5 --densities 1 --matmul-m none --estimation=false --reps 5 --md /tmp/r/attn-$1.md --quiet > /tmp/r/attn-$1.log 2>&1
  unset SHAREPREFILL_CM_ATTN_TILES
  echo "-- $1 ($6)"; grep -E '^\| [0-9]+ ' /tmp/r/attn-$1.md | head -4 | cut -c1-150
}
for t in $ATILES64; do ak "d64-${t//,/_}" 8 2 64 8192,16384 $t; done; pk
for t in $ATILES128; do ak "d128-${t//,/_}" 32 8 128 16384 $t; done; pk
timeout 60 python3 bench/peers/attention.py --lens 8192,16384 --hq 8 --hkv 2 --d 64 --reps 5 --json /tmp/r/sdpa64.json 2>&1 | tail -4 | tee /tmp/r/sdpa64.txt
timeout 60 python3 bench/peers/attention.py --lens 16384 --reps 5 --json /tmp/r/sdpa128.json 2>&1 | tail -3 | tee /tmp/r/sdpa128.txt; pk
echo "=== transformers prefill ($SECONDS s)"
timeout 120 python3 bench/peers/hf_prefill.py --model $M --lens 4096,8192,16384 --dtype bf16 --reps 5 --json /tmp/r/hf-prefill-lm.json 2>&1 | tail -5 | tee /tmp/r/hf-prefill-lm.txt; pk
pf new3 /tmp/sp dense
echo "=== pipeline stats, trace ($SECONDS s)"
SHAREPREFILL_VK_PIPELINE_STATS=1 timeout 60 /tmp/sp bench kernels --hq 8 --hkv 2 --d 64 --lens 8192 --densities 1 --matmul-m none --reps 1 --md /tmp/r/pstats.md --quiet > /tmp/r/pstats.log 2>&1
grep -iE "est_|qk_cm|attn_cm2" /tmp/r/pstats.log | head -30
head -c 26000 $P > /tmp/p7k.txt
timeout 60 /tmp/sp run --model $M --attn share --clusters $CL --prompt-file /tmp/p7k.txt --context 8192 --max-tokens 2 --temp 0 --profile /tmp/r/trace-share7k.json > /dev/null 2> /tmp/r/trace-share7k.txt
timeout 60 /tmp/sp run --model $M --prompt-file /tmp/p7k.txt --context 8192 --max-tokens 2 --temp 0 --profile /tmp/r/trace-dense7k.json > /dev/null 2> /tmp/r/trace-dense7k.txt
python3 - <<'PY'
import json,collections
for t in ("share7k","dense7k"):
    try: ev=json.load(open(f"/tmp/r/trace-{t}.json"))
    except Exception as e: print(t,e); continue
    ev=ev["traceEvents"] if isinstance(ev,dict) else ev
    s=collections.Counter(); n=collections.Counter()
    for e in ev:
        if e.get("ph")=="X" and e.get("cat")=="gpu": s[e["name"]]+=e.get("dur",0); n[e["name"]]+=1
    print("--",t, " ".join(f"{k}={v/max(1,n[k]):.1f}us×{n[k]}" for k,v in s.most_common(24)))
PY
xz -9 /tmp/r/trace-*.json; pk
echo "=== done ($SECONDS s)"
