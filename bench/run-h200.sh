#!/usr/bin/env bash
# bench/run-h200.sh — the cross-vendor benchmark: ours (Vulkan) then the
# PyTorch peers on the same machine, joined into ratio tables.
#
# Run it from the repository root ON THE DEVICE MACHINE (an NVIDIA H200 with
# torch, transformers and numpy). It runs no Go toolchain: it expects what
# bench/README.md "Building the carry" prepares on the dev machine in
# .devcarry/bench (carry that one path, about 51 MiB):
#
#   shareprefill          the bench build (go build -buildvcs=true -tags plots -trimpath -ldflags='-s -w')
#   COMMIT                git rev-parse --short HEAD (+dirty)
#   bench-lm-8k.tar.xz    the long-context model (or an unpacked bench-lm-8k/)
#   corpus-go.txt         bench-lm-8k's held-out Go files (perplexity, prompt text)
#
# Usage: bench/run-h200.sh [stage ...]      (default: every stage, in order)
#
#   env          nvidia-smi, driver, torch/triton/transformers versions  → env.txt
#   kernels      shareprefill bench kernels (attention, 8B matmuls, estimation) → kernels.{json,md}
#   peers-kernels  bench/peers/sdpa_flex.py on the exported masks          → kernels-torch.json
#   gen-8b       bench gen-model --shape llama3-8b --layers 2 (random weights) into $SCRATCH
#   prefill-8b   bench prefill on it, then bench/peers/hf_prefill.py       → prefill-8b{,-hf}.json
#   prefill-lm   the same on bench-lm-8k with held-out Go text            → prefill-lm{,-hf}.json
#   accuracy     bench accuracy on bench-lm-8k (perplexity, secret, passkey, kv) → accuracy.json
#                (the full suite with intervals and ablations: bench/accuracy-device.sh)
#   compare      shareprefill bench compare over every pair               → compare.md
#
# Each stage fits one 10-minute device call at the default sizes; run them in
# separate calls if needed (later stages read earlier results from $RES and
# $SCRATCH, which survive between calls while the machine stays warm).
#
# Environment:
#   CARRY     the carried folder (default .devcarry/bench)
#   RES       results directory (default: $OUT, the device tool's return folder, else out/h200)
#   SCRATCH   big intermediate files: masks, models (default: out/scratch; never returned)
#   QUICK=1   short lengths everywhere (a smoke run of a few minutes)
#   KLENS PLENS8B PLENSLM ALENS   override the length lists; SAMPLES (secret), DEPTHS, TRIALS (passkey, kv) the retrieval samples
#   KFLAGS    extra flags for bench kernels (e.g. "--matmul-m none")
#   METHODS   attention methods (default dense,vs,flex,share)
#   CLUSTERS  SharePrefill cluster file for bench-lm-8k (method share; default: none)
#   REPS      timed runs of the kernel benchmarks (default 10)
set -euo pipefail

C=${CARRY:-.devcarry/bench}
BIN=$C/shareprefill
RES=${RES:-${OUT:-out/h200}}
SCRATCH=${SCRATCH:-out/scratch}
METHODS=${METHODS:-dense,vs,flex,share}
REPS=${REPS:-10}
if [[ "${QUICK:-0}" == 1 ]]; then
	KLENS=${KLENS:-4096,16384}
	PLENS8B=${PLENS8B:-2048,8192}
	PLENSLM=${PLENSLM:-4096,16384}
	ALENS=${ALENS:-4096,8192}
	DEPTHS=${DEPTHS:-0,0.5,1} TRIALS=${TRIALS:-1}
else
	KLENS=${KLENS:-4096,8192,16384,32768,65536}
	PLENS8B=${PLENS8B:-1024,4096,8192,16384,32768,65536}
	PLENSLM=${PLENSLM:-2048,4096,8192,16384}
	ALENS=${ALENS:-4096,8192,16384}
	DEPTHS=${DEPTHS:-0,0.25,0.5,0.75,1} TRIALS=${TRIALS:-2}
fi
M8B=$SCRATCH/models/llama3-8b-2l
MLM=$SCRATCH/models/bench-lm-8k
CORPUS=$C/corpus-go.txt

[[ -x $BIN ]] || { echo "run-h200.sh: $BIN is missing: build the carry first (bench/README.md)" >&2; exit 1; }
export SHAREPREFILL_COMMIT=${SHAREPREFILL_COMMIT:-$(cat $C/COMMIT 2>/dev/null || echo unknown)}
mkdir -p "$RES" "$SCRATCH/models"
log() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

lm_model() {
	if [[ -d $C/bench-lm-8k ]]; then
		MLM=$C/bench-lm-8k
	elif [[ ! -f $MLM/config.json ]]; then
		[[ -f $C/bench-lm-8k.tar.xz ]] || { echo "run-h200.sh: no $C/bench-lm-8k{,.tar.xz}" >&2; exit 1; }
		tar -C "$SCRATCH/models" -xJf $C/bench-lm-8k.tar.xz 2>/dev/null ||
			python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" $C/bench-lm-8k.tar.xz "$SCRATCH/models"
	fi
}
share_flags() { if [[ -n "${CLUSTERS:-}" ]]; then echo "--clusters $CLUSTERS"; fi; }

stage_env() {
	log env
	{
		echo "date: $(date -u +%FT%TZ)  commit: $SHAREPREFILL_COMMIT"
		nvidia-smi --query-gpu=name,driver_version,persistence_mode,power.limit,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
		python3 -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 || true
		python3 -c 'import triton; print("triton", triton.__version__)' 2>&1 || true
		python3 -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 || true
		$BIN devices 2>&1 || true
	} | tee "$RES/env.txt"
}

stage_kernels() {
	log "kernels: ours"
	# shellcheck disable=SC2086
	$BIN bench kernels --lens "$KLENS" --reps "$REPS" ${KFLAGS:-} --json "$RES/kernels.json" --md "$RES/kernels.md" \
		--masks "$SCRATCH/kernels.masks" --plots "$RES/plots/kernels"
}

stage_peers_kernels() {
	log "kernels: torch SDPA and flex_attention on the same masks"
	python3 bench/peers/sdpa_flex.py --masks "$SCRATCH/kernels.masks" --reps "$REPS" --json "$RES/kernels-torch.json"
}

stage_gen_8b() {
	log "random Llama-3-8B-shaped model, 2 layers"
	[[ -f $M8B/config.json ]] || $BIN bench gen-model --shape llama3-8b --layers 2 --out "$M8B"
}

stage_prefill_8b() {
	stage_gen_8b
	log "prefill, 8B shapes: ours"
	$BIN bench prefill --model "$M8B" --lens "$PLENS8B" --methods "$METHODS" --json "$RES/prefill-8b.json" \
		--md "$RES/prefill-8b.md" --plots "$RES/plots/prefill-8b"
	log "prefill, 8B shapes: transformers"
	python3 bench/peers/hf_prefill.py --model "$M8B" --lens "$PLENS8B" --dtype bf16 --json "$RES/prefill-8b-hf.json"
}

stage_prefill_lm() {
	lm_model
	log "prefill, bench-lm-8k: ours"
	# shellcheck disable=SC2046
	$BIN bench prefill --model "$MLM" --corpus "$CORPUS" --lens "$PLENSLM" --methods "$METHODS" $(share_flags) \
		--json "$RES/prefill-lm.json" --md "$RES/prefill-lm.md" --plots "$RES/plots/prefill-lm"
	log "prefill, bench-lm-8k: transformers"
	python3 bench/peers/hf_prefill.py --model "$MLM" --corpus "$CORPUS" --lens "$PLENSLM" --dtype bf16 --json "$RES/prefill-lm-hf.json"
}

stage_accuracy() {
	lm_model
	log "accuracy, bench-lm-8k"
	# shellcheck disable=SC2046
	$BIN bench accuracy --model "$MLM" --heldout "$CORPUS" --lens "$ALENS" --methods "$METHODS" $(share_flags) \
		--tasks secret,passkey,kv --samples "${SAMPLES:-20}" --depths "$DEPTHS" --trials "$TRIALS" --ppl-lens "$ALENS" --ppl-windows 4 --ablations none \
		--json "$RES/accuracy.json" --md "$RES/accuracy.md" --plots "$RES/plots/accuracy"
}

stage_compare() {
	log "ours vs peers"
	files=()
	for f in kernels kernels-torch prefill-8b prefill-8b-hf prefill-lm prefill-lm-hf; do
		[[ -f $RES/$f.json ]] && files+=("$RES/$f.json")
	done
	$BIN bench compare --md "$RES/compare.md" "${files[@]}"
}

stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(env kernels peers-kernels prefill-8b prefill-lm accuracy compare)
for s in "${stages[@]}"; do
	case $s in
	env | kernels | peers-kernels | gen-8b | prefill-8b | prefill-lm | accuracy | compare) "stage_${s//-/_}" ;;
	*) echo "run-h200.sh: unknown stage $s" >&2; exit 2 ;;
	esac
done
log "done: results in $RES"
