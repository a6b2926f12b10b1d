#!/usr/bin/env bash
# bench/speed.sh — the speed suite on a lent NVIDIA GPU: our prefill and
# decode beside transformers (and llama.cpp's Vulkan backend) in one call.
#
# Run it from the repository root ON THE DEVICE MACHINE (torch, transformers;
# no Go toolchain). It expects the carry that bench/README.md "The speed
# suite" prepares in .devcarry (carry .devcarry and .gl):
#
#   .devcarry/bench/shareprefill         our binary (go build -trimpath -ldflags='-s -w')
#   .devcarry/bench/shareprefill-base    optional: an earlier build, timed beside it (A/B)
#   .devcarry/bench/COMMIT               what the binaries were built from
#   .devcarry/bench/bench-lm-8k.tar.xz   the long-context model
#   .devcarry/llamacpp                   optional: the llama.cpp kit (stage llamacpp)
#
# Usage: bench/speed.sh [stage ...]
#        (default: env vehicle prefill-lm decode-lm hf-lm prefill-8b decode-8b hf-8b)
#
#   env         nvidia-smi, versions, `shareprefill devices`
#   vehicle     the structured vehicle (bench gen-model --kind structured): bench prefill
#               --prompt structured --profile for dense,vs,flex,share at $VLENS, its attention
#               density (bench/peers/structure.py) and transformers' fp16 prefill of it
#   prefill-lm  bench prefill --profile on bench-lm-8k ($METHODS; share with the cluster file $CLUSTERS), ours and base
#   prefill-8b  the same on a random Llama-3-8B-shaped model (2 layers)
#   decode-lm, decode-8b   bench decode (ours only: older builds lack it)
#   hf-lm, hf-8b           transformers: prefill (SDPA bf16) and static-cache decode
#   llamacpp    llama.cpp Vulkan: prefill (llama-bench pp) and decode (tg at depth) on both shapes
#
# Results go to $OUT (the device tool's return folder; else out/speed): the
# log, and results.tar.gz (every JSON and Markdown report), remade after
# each stage so that a call cut short still returns what it finished.
# Environment: LMLENS, BIGLENS, DECLENS, GEN, REPS, METHODS, CLUSTERS, VMETHODS, VPEERS,
# LLAMACPP_MODELS, LLAMACPP_FA, LLAMACPP_UB,
# DEADLINE_S (stop starting stages after this many seconds; default 540).
set -uo pipefail

C=.devcarry/bench
BIN=$C/shareprefill
BASE=$C/shareprefill-base
RES=${OUT:-out/speed}
SCRATCH=${SCRATCH:-/tmp/speed}
LMLENS=${LMLENS:-4096,8192,16384}
BIGLENS=${BIGLENS:-4096,16384,65536}
DECLENS=${DECLENS:-4096,32768}
VLENS=${VLENS:-16384,32768,65536,131072}
GEN=${GEN:-64}
REPS=${REPS:-3}
METHODS=${METHODS:-dense}
DEADLINE_S=${DEADLINE_S:-540}
VMETHODS=${VMETHODS:-dense,vs,flex,share} # the vehicle's methods
VPEERS=${VPEERS:-1}                       # 0: the vehicle without transformers and its exact density
LLAMACPP_MODELS=${LLAMACPP_MODELS:-small,big}
LLAMACPP_FA=${LLAMACPP_FA:-1}    # llama.cpp flash attention: 1, 0 or "1,0"
LLAMACPP_UB=${LLAMACPP_UB:-2048} # llama.cpp ubatch sizes, e.g. "512,2048" (its best is the fair peer)
T0=$SECONDS
mkdir -p "$RES" "$SCRATCH/json"
exec > >(tee -a "$RES/log.txt") 2>&1

# Binaries may travel xz-compressed (the carry is limited to 64 MiB).
for b in shareprefill shareprefill-base; do
	if [[ -f $C/$b.xz && ! -x $SCRATCH/$b ]]; then
		xz -dc "$C/$b.xz" >"$SCRATCH/$b" && chmod +x "$SCRATCH/$b"
	fi
	[[ -x $SCRATCH/$b ]] && [[ ! -x $C/$b ]] && case $b in
		shareprefill) BIN=$SCRATCH/$b ;;
		shareprefill-base) BASE=$SCRATCH/$b ;;
		esac
done
[[ -x $BIN ]] || { echo "speed.sh: $BIN is missing: build the carry first (bench/README.md)" >&2; exit 1; }
# shellcheck source=bench/vk-setup.sh
source bench/vk-setup.sh
export SHAREPREFILL_COMMIT=${SHAREPREFILL_COMMIT:-$(cat $C/COMMIT 2>/dev/null || echo unknown)}
log() { printf '\n=== %s (+%ds)\n' "$*" "$((SECONDS - T0))"; }
pack() { tar -C "$SCRATCH" -czf "$RES/results.tar.gz" json 2>/dev/null; }
bins() { echo "ours:$BIN"; [[ -x $BASE ]] && echo "base:$BASE"; }

MLM=$SCRATCH/models/bench-lm-8k
M8B=$SCRATCH/models/llama3-8b-2l
MV=$SCRATCH/models/vehicle
lm_model() {
	[[ -f $MLM/config.json ]] && return
	mkdir -p "$SCRATCH/models"
	tar -C "$SCRATCH/models" -xJf $C/bench-lm-8k.tar.xz
}
big_model() {
	[[ -f $M8B/config.json ]] || $BIN bench gen-model --shape llama3-8b --layers 2 --out "$M8B"
}
share_flags() { [[ -n "${CLUSTERS:-}" ]] && echo "--clusters $CLUSTERS"; }

stage_env() {
	log env
	nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv || true
	python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' || true
	$BIN devices || true
}

prefill() { # model-dir lens tag [extra flags]
	for b in $(bins); do
		log "prefill $3 (${b%%:*})"
		local prof=--profile
		[[ ${b%%:*} == base ]] && prof="" # an older build may lack it
		# shellcheck disable=SC2046
		${b#*:} bench prefill --model "$1" --lens "$2" --methods "$METHODS" --reps "$REPS" $prof ${4:-} \
			--json "$SCRATCH/json/prefill-$3-${b%%:*}.json" --md "$SCRATCH/json/prefill-$3-${b%%:*}.md" --quiet
	done
}
stage_prefill_lm() { lm_model && prefill "$MLM" "$LMLENS" lm "$(share_flags)"; }
stage_prefill_8b() { big_model && prefill "$M8B" "$BIGLENS" 8b; }

decode() { # model-dir tag
	log "decode $2"
	$BIN bench decode --model "$1" --lens "$DECLENS" --gen "$GEN" --reps "$REPS" \
		--json "$SCRATCH/json/decode-$2.json" --md "$SCRATCH/json/decode-$2.md" --quiet
}
stage_decode_lm() { lm_model && decode "$MLM" lm; }
stage_decode_8b() { big_model && decode "$M8B" 8b; }

hf() { # model-dir prefill-lens tag
	log "transformers prefill $3"
	python3 bench/peers/hf_prefill.py --model "$1" --lens "$2" --dtype bf16 --reps "$REPS" --json "$SCRATCH/json/prefill-$3-hf.json"
	log "transformers decode $3 (static cache)"
	python3 bench/peers/hf_decode.py --model "$1" --lens "$DECLENS" --gen "$GEN" --reps "$REPS" --json "$SCRATCH/json/decode-$3-hf.json"
}
stage_hf_lm() { lm_model && hf "$MLM" "$LMLENS" lm; }
stage_hf_8b() { big_model && hf "$M8B" "$BIGLENS" 8b; }

stage_vehicle() {
	[[ -f $MV/config.json ]] || $BIN bench gen-model --kind structured --shape llama3-8b --layers 2 --out "$MV"
	log "vehicle: ours"
	$BIN bench prefill --model "$MV" --prompt structured --lens "$VLENS" --methods "$VMETHODS" --reps "$REPS" \
		--profile --json "$SCRATCH/json/prefill-vehicle.json" --md "$SCRATCH/json/prefill-vehicle.md" --quiet
	pack
	((VPEERS)) || return 0
	log "vehicle: transformers (fp16; dense time does not depend on the tokens)"
	python3 bench/peers/hf_prefill.py --model "$MV" --dtype fp16 --lens "$VLENS" --reps "$REPS" --json "$SCRATCH/json/prefill-vehicle-hf.json"
	pack
	log "vehicle: exact attention density (transformers, fp32 scores)"
	timeout 150 python3 bench/peers/structure.py --model "$MV" --lens "$VLENS" --json "$SCRATCH/json/structure.json"
}

stage_llamacpp() {
	local kit=.devcarry/llamacpp
	[[ -f $kit/run.sh ]] || { echo "speed.sh: no llama.cpp kit in $kit"; return; }
	lm_model
	log "llama.cpp Vulkan prefill"
	OUT=$SCRATCH/json/llamacpp LLAMACPP_KIT_BUDGET_S=$((DEADLINE_S - (SECONDS - T0) - 90)) \
		bash $kit/run.sh --models "$LLAMACPP_MODELS" --hf-dir "$MLM" --variants default --fa "$LLAMACPP_FA" --ub "$LLAMACPP_UB" \
		--small-sizes "$LMLENS" --big-sizes "$BIGLENS" --reps "$REPS"
	log "llama.cpp Vulkan decode (tg$GEN at depth)"
	local kb=${LLAMACPP_KIT_WORK:-/tmp/llamacpp-kit}
	for g in "$kb"/models/*.gguf; do
		env LD_LIBRARY_PATH="$kb/bin" ${VK_DRIVER_FILES:+VK_DRIVER_FILES="$VK_DRIVER_FILES"} \
			timeout 120 "$kb/bin/llama-bench" -m "$g" -p 0 -n "$GEN" -d "$DECLENS" -fa 1 -ngl 999 -r "$REPS" -o md \
			2>&1 | tee -a "$SCRATCH/json/llamacpp-decode.md"
	done
}

stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(env vehicle prefill-lm decode-lm hf-lm prefill-8b decode-8b hf-8b)
for s in "${stages[@]}"; do
	if ((SECONDS - T0 > DEADLINE_S)); then
		echo "speed.sh: deadline: stage $s not started"
		continue
	fi
	case $s in
	env | vehicle | prefill-lm | prefill-8b | decode-lm | decode-8b | hf-lm | hf-8b | llamacpp) "stage_${s//-/_}" || echo "speed.sh: stage $s failed" ;;
	*) echo "speed.sh: unknown stage $s" >&2 ;;
	esac
	pack
done
log "done"
for f in "$SCRATCH"/json/*.md; do
	[[ -f $f ]] && { echo; echo "## $(basename "$f")"; grep -v '^$' "$f" | head -40; }
done
pack
