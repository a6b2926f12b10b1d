#!/usr/bin/env bash
# bench/accuracy-device.sh — issue 23 in ONE device call (H100 or H200, no
# network, no Go): bench-lm-8k's accuracy suite and the logits oracle, with
# results written under $OUT as they come.
#
#   1. calibrate: the extra cluster files of the ablations from the carried
#      calibration text (Austen's Persuasion, training text): clusters from
#      pooled maps (no autoencoder) and autoencoder clusters cut at 4 and 8
#      clusters (the carried main file has 2);
#   2. oracle: bench/peers/hf_oracle.py (transformers fp32, with its fp16 as
#      the control) on random-weight Llama-3.2-1B and MHA-d64 shapes at
#      64–8K tokens and on bench-lm-8k with held-out Go text at 512–16K,
#      then `shareprefill bench accuracy --oracle` on the same cases;
#   3. suite: `shareprefill bench accuracy --suite bench-lm-8k` (retrieval
#      in the trained format at 4K–16K, perplexity at 8K and 16K, the
#      ablations), stopping new jobs when the deadline nears; accuracy.json
#      and accuracy.md are rewritten after every job.
#
# Build the carry here (repo root): bench/accuracy-carry.sh, which fills
# .devcarry/acc (binary, COMMIT, bench-lm-8k.tar.xz, heldout.json,
# calib.txt; about 51 MiB). Device call (repo root):
#   bash bench/accuracy-device.sh        carry: .gl .devcarry/acc
#
# Environment: DEADLINE (s, default 450: everything ends by then), SKIP
# (stage names: calibrate oracle suite), SUITE_FLAGS (extra flags for the
# suite, e.g. "--samples 50"), ORACLE_LENS, ORACLE_MODEL_LENS.
#
# Runtime (estimate, H100; bench/RESULTS.md: bench-lm-8k dense prefill
# 37 ms at 8K and 92 ms at 16K on the H200): setup 10 s, calibrate 20 s,
# oracle 60–90 s, suite up to the deadline — dense, share and flex with
# perplexity about 30 s each, each ablation about 12 s (200 samples), vs
# (host planning 0.3–0.8 s per prefill) and the secret2/secret-multi tasks
# last, cut by the deadline if need be (listed as skipped in the report).
set -u
export PYTHONUNBUFFERED=1
. bench/vk-setup.sh
C=.devcarry/acc
BIN=$C/shareprefill
O=${OUT:-/tmp/out}
S=${SCRATCH:-/tmp/acc-scratch}
DEADLINE=${DEADLINE:-450}
mkdir -p "$O" "$S/models"
export SHAREPREFILL_COMMIT=${SHAREPREFILL_COMMIT:-$(cat $C/COMMIT 2>/dev/null || echo unknown)}
step() { echo; echo "=== $* ($SECONDS s)"; }
go_on() { case " ${SKIP:-} " in *" $1 "*) return 1 ;; esac; [ "$SECONDS" -lt $((DEADLINE - $2)) ] || { echo "skipped: $1 (deadline)"; return 1; }; }

[ -x $BIN ] || { echo "accuracy-device.sh: $BIN is missing: run bench/accuracy-carry.sh here first" >&2; exit 1; }
step setup
{
	echo "commit $SHAREPREFILL_COMMIT, $(date -u +%FT%TZ)"
	nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>&1
	python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
	$BIN devices 2>&1 | head -3
} | tee "$O/env.txt"
M=$S/models/bench-lm-8k
if [ ! -f $M/config.json ]; then
	tar -C $S/models -xJf $C/bench-lm-8k.tar.xz 2>/dev/null ||
		python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" $C/bench-lm-8k.tar.xz $S/models
fi
CL=bench/clusters-bench-lm-8k.json
mkdir -p "$O/clusters"

if go_on calibrate 300; then
	step "calibrate: pooled maps, autoencoder cut at 4 and 8 clusters"
	for spec in "pooled --representation pooled --target-clusters 2" "k4 --target-clusters 4" "k8 --target-clusters 8"; do
		set -- $spec
		name=$1; shift
		timeout 60 $BIN calibrate --model $M --data $C/calib.txt --length 8192 --block 128 "$@" \
			--out "$O/clusters/clusters-$name.json" > "$O/clusters/calibrate-$name.log" 2>&1 || echo "calibrate $name failed: $(tail -2 "$O/clusters/calibrate-$name.log")"
	done
	ls -la "$O/clusters"
fi

if go_on oracle 250; then
	step "oracle: transformers fp32/fp16 references, then ours on the same cases"
	timeout 180 python3 bench/peers/hf_oracle.py --out $S/oracle --lens "${ORACLE_LENS:-64,256,1024,4096,8192}" \
		--model $M --heldout $C/heldout.json --model-lens "${ORACLE_MODEL_LENS:-512,2048,8192,16384}" \
		--ours $BIN --json "$O/oracle.json" --md "$O/oracle.md" > "$O/oracle.log" 2>&1
	echo "exit $?"
	grep -vi warn "$O/oracle.log" | tail -30
fi

if go_on suite 60; then
	budget=$((DEADLINE - SECONDS - 40))
	step "suite bench-lm-8k (budget ${budget} s for starting jobs)"
	alt=""
	[ -f "$O/clusters/clusters-k4.json" ] && alt="k4=$O/clusters/clusters-k4.json"
	[ -f "$O/clusters/clusters-k8.json" ] && alt="${alt:+$alt,}k8=$O/clusters/clusters-k8.json"
	pooled=""
	[ -f "$O/clusters/clusters-pooled.json" ] && pooled="--clusters-pooled $O/clusters/clusters-pooled.json"
	# shellcheck disable=SC2086
	timeout $((DEADLINE - SECONDS)) $BIN bench accuracy --suite bench-lm-8k --model $M --heldout $C/heldout.json --clusters $CL \
		$pooled ${alt:+--clusters-alt $alt} --budget ${budget}s ${SUITE_FLAGS:-} \
		--json "$O/accuracy.json" --md "$O/accuracy.md" --plots "$O/plots" 2> "$O/accuracy.log"
	echo "exit $?"
	grep -E "done in|skipped" "$O/accuracy.log" | tail -30
fi
step "done: results in $O"
ls -la "$O"
