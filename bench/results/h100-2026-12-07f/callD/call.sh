#!/usr/bin/env bash
# session-6 call D: tests of the SwiGLU epilogue, the decode test fixes; bench-lm-8k dense GLU fused vs separate, share with the compaction bound
set -u
O=${OUT:-/tmp/out}; mkdir -p $O /tmp/r
. bench/vk-setup.sh
pk() { tar -C /tmp -czf $O/rd.tgz r 2>/dev/null; }
cat .devcarry/c7/COMMIT
xz -dc .devcarry/bench/shareprefill.xz > /tmp/sp; chmod +x /tmp/sp
mkdir -p /tmp/m && tar -C /tmp/m -xJf .devcarry/bench/bench-lm-8k.tar.xz
M=/tmp/m/bench-lm-8k; CL=bench/clusters-bench-lm-8k.json
mkdir -p /tmp/kt; for t in kernels model; do xz -dc .devcarry/kt/$t.test.xz > /tmp/kt/$t.test; chmod +x /tmp/kt/$t.test; done
(cd runtime/kernels && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 100 /tmp/kt/kernels.test -test.run 'NormMatVec|RopeKV|SwiGLU|MatMulAdd|PlanUnion|PlanSelect' 2>&1 > /tmp/r/kernels-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)|decode_test' /tmp/r/kernels-tests.txt | tail -12); pk
(cd model && SHAREPREFILL_REQUIRE_VULKAN=1 timeout 60 /tmp/kt/model.test -test.run 'GLU|Fused|Prefill' 2>&1 > /tmp/r/model-tests.txt; grep -E '^(--- FAIL|ok|FAIL|PASS|panic)' /tmp/r/model-tests.txt | tail -8); pk
pf() { local tag=$1 meth=$2; shift 2
  env "$@" timeout 80 /tmp/sp bench prefill --model $M --lens 8192,16384 --methods $meth --clusters $CL --reps 5 --profile --md /tmp/r/prefill-$tag.md --json /tmp/r/prefill-$tag.json --quiet > /tmp/r/prefill-$tag.log 2>&1
  echo "-- $tag"; grep -E '^\| (dense|share) \| (8192|16384) \|' /tmp/r/prefill-$tag.md | cut -c1-150; pk; }
pf new dense,share
pf glu-separate dense SHAREPREFILL_PREFILL_GLU=separate
pf new2 dense,share
pf glu-separate2 dense SHAREPREFILL_PREFILL_GLU=separate
echo "=== done ($SECONDS s)"
