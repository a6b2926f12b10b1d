#!/usr/bin/env bash
# session-6 call A: h-est3 (new) vs main (base): bench-lm-8k share/dense 8K/16K with traces; device tests of the candidate
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/ra.tgz r 2>/dev/null; }
cat .devcarry/c7/COMMIT .devcarry/c7/COMMIT-base; nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
xz -dc .devcarry/bench/sp-base.xz > /tmp/spb; chmod +x /tmp/spb
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json; P=.devcarry/bench/prompt.txt
pf() { # tag bin
  timeout 100 $2 bench prefill --model $M --lens 8192,16384 --methods dense,share --clusters $CL --reps 5 --profile --md /tmp/r/prefill-$1.md --json /tmp/r/prefill-$1.json --quiet > /tmp/r/prefill-$1.log 2>&1
  echo "-- $1"; grep -E '^\| (dense|share) \| (8192|16384) \|' /tmp/r/prefill-$1.md | cut -c1-200; pk
}
echo "=== prefill ($SECONDS s)"
pf base /tmp/spb
pf new /tmp/sp
pf base2 /tmp/spb
pf new2 /tmp/sp
head -c 26000 $P > /tmp/p7k.txt
for b in new:/tmp/sp base:/tmp/spb; do
  timeout 60 ${b#*:} run --model $M --attn share --clusters $CL --prompt-file /tmp/p7k.txt --context 8192 --max-tokens 2 --temp 0 --profile /tmp/r/trace-share7k-${b%%:*}.json > /dev/null 2> /tmp/r/trace-share7k-${b%%:*}.txt
done
python3 - <<'PY'
import json,collections
for t in ("new","base"):
    try: ev=json.load(open(f"/tmp/r/trace-share7k-{t}.json"))
    except Exception as e: print(t,e); continue
    ev=ev["traceEvents"] if isinstance(ev,dict) else ev
    s=collections.Counter(); n=collections.Counter()
    for e in ev:
        if e.get("ph")=="X" and e.get("cat")=="gpu": s[e["name"]]+=e.get("dur",0); n[e["name"]]+=1
    print("--",t, " ".join(f"{k}={v/ max(1,n[k]):.1f}us" for k,v in s.most_common() if k.startswith(("est","plan"))))
PY
xz -9 /tmp/r/trace-*.json; pk
echo "=== tests ($SECONDS s)"
mkdir -p /tmp/kt
for t in kernels sharegpu; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
(cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 150 /tmp/kt/kernels.test -test.run 'Rope|NormMatVec|Est|Cover|Plan|LastBlock|TopK|Decode' 2>&1 > /tmp/r/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/kernels-tests.txt | tail -20); pk
(cd share/gpu && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 120 /tmp/kt/sharegpu.test 2>&1 > /tmp/r/sharegpu-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/sharegpu-tests.txt | tail -20); pk
echo "=== done ($SECONDS s)"
