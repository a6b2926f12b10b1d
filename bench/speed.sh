#!/usr/bin/env bash
# bench/speed.sh — the speed suite on a lent NVIDIA GPU: our prefill and
# decode beside transformers (and llama.cpp's Vulkan backend) in one call.
#
# Run it from the repository root ON THE DEVICE MACHINE (torch, transformers;
# no Go toolchain). It expects the carry that bench/README.md "The speed
# suite" prepares in .devcarry (carry .devcarry and .gl):
#
#   .devcarry/bench/shareprefill         our binary (go build -buildvcs=true -trimpath -ldflags='-s -w')
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
#   quant       issue 27: ours and llama.cpp Vulkan on the SAME Q4_K_M GGUF files (llama-quantize
#               of f16 GGUFs): decode, dense and share prefill, the 32-layer 8B plan at 8K context;
#               needs the kit and .devcarry/llamacpp-tools/tools.tar.xz (bench/peers/llamacpp-tools.sh)
#   llamacpp-ops  llama.cpp test-backend-ops perf, MUL_MAT and FLASH_ATTN_EXT at Llama-3-8B's shapes
#
# Results go to $OUT (the device tool's return folder; else out/speed): the
# log, and results.tar.gz (every JSON and Markdown report), remade after
# each stage so that a call cut short still returns what it finished.
# Environment: LMLENS, BIGLENS, DECLENS, GEN, REPS, METHODS, CLUSTERS, VMETHODS, VPEERS,
# LLAMACPP_MODELS, LLAMACPP_FA, LLAMACPP_UB, QMODELS, QTYPE, QLENS, QLMLENS, QDECLENS, QFULL*, QUB, QSTEP_S,
# OPS_MM, OPS_FA, OPS_S, PY, WARMUP,
# DEADLINE_S (stop starting stages, and the steps of quant, after this many seconds; default 540).
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
WARMUP=${WARMUP:-1}               # our warm-up runs per cell (quant)
QMODELS=${QMODELS:-8b,8b32,small} # quant: 8b (2 layers), 8b32 (its 32-layer copy: plan, runs), small (bench-lm-8k)
QTYPE=${QTYPE:-Q4_K_M}            # quant: llama-quantize type
QLENS=${QLENS:-4096,32768,65536}  # quant: prefill lengths of 8b
QLMLENS=${QLMLENS:-8192,16384}    # quant: prefill lengths of small
QDECLENS=${QDECLENS:-4096,32768}  # quant: decode contexts (ours: bench decode; llama.cpp: tg$GEN at depth)
QFULLLEN=${QFULLLEN:-8192}        # quant, 8b32: the plan's context and one dense prefill
QFULLDEC=${QFULLDEC:-4096}        # quant, 8b32: one decode context
QUB=${QUB:-512,2048}              # quant: llama.cpp ubatch sizes (one llama-bench process each)
QSTEP_S=${QSTEP_S:-240}           # quant: seconds one step (a model's decode or prefill, one side) may take
OPS_MM=${OPS_MM:-'type_a=(f16|q8_0|q4_K|q6_K),type_b=f32,m=(4096|14336),n=(1|512),k=(4096|14336),'} # llamacpp-ops: -p of MUL_MAT
OPS_FA=${OPS_FA:-'hsk=128,hsv=128,nh=8,nr23=\[4,1\],'}   # and for FLASH_ATTN_EXT (Llama-3-8B: D 128, 8 KV heads, GQA 4)
OPS_S=${OPS_S:-100}                                        # llamacpp-ops: seconds per op at most
PY=${PY:-python3}                 # a python3 with numpy (the kit's mkgguf.py)
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
pack() { tar -C "$SCRATCH" -czf "$RES/results.tar.gz.part" json 2>/dev/null && mv -f "$RES/results.tar.gz.part" "$RES/results.tar.gz"; }
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

# --- issue 27: quantized GGUF weights, ours and llama.cpp on the same files ---
QB=$SCRATCH/quant
QJ=$SCRATCH/json/quant
KB=${LLAMACPP_KIT_WORK:-/tmp/llamacpp-kit}
due() { # step: false, with a note, once the deadline has passed
	((SECONDS - T0 <= DEADLINE_S)) && return
	echo "speed.sh: deadline: $1 not started"
	return 1
}
cap() { # seconds: at most $1, and no later than 60 s past the deadline (at least 20)
	local b=$((DEADLINE_S + 60 - (SECONDS - T0)))
	((b > $1)) && b=$1
	((b < 20)) && b=20
	echo "$b"
}
qtools() { # llama.cpp: the kit's libraries and llama-bench, llama-quantize and test-backend-ops, in $QB/bin
	[[ ${LLAMACPP_KIT_ALLOW_CPU:-0} == 1 ]] && export GGML_VK_VISIBLE_DEVICES=${GGML_VK_VISIBLE_DEVICES:-0}
	[[ -x $QB/bin/llama-quantize ]] && return
	local kit=.devcarry/llamacpp tools=.devcarry/llamacpp-tools/tools.tar.xz
	[[ -f $kit/bin.tar.xz ]] || { echo "speed.sh: no llama.cpp kit in $kit"; return 1; }
	[[ -f $tools ]] || { echo "speed.sh: no $tools (bench/peers/llamacpp-tools.sh makes it)"; return 1; }
	mkdir -p "$QB/bin" && tar -xJf $kit/bin.tar.xz -C "$QB/bin" && tar -xJf $tools -C "$QB/bin" || return 1
	cat "$QB/bin/TOOLS-VERSION"
	lcpp 60 llama-bench --list-devices 2>&1 | grep -E "ggml_vulkan: [0-9]|Vulkan[0-9]" | tee "$QJ/llamacpp-devices.txt"
}
lcpp() { # seconds tool args...: a llama.cpp tool with the kit's libraries, killed after seconds
	local s=$1 t=$2
	shift 2
	timeout -k 10 "$s" env LD_LIBRARY_PATH="$QB/bin" "$QB/bin/$t" "$@"
}
qgguf() { # key: the $QTYPE GGUF of model key (8b, 8b32, small), made once; prints its path
	local f16 src g=$QB/models/$1-$QTYPE.gguf
	[[ -f $g ]] && { echo "$g"; return; }
	mkdir -p "$QB/models"
	case $1 in
	8b)
		# $M8B's weights with bench-lm-8k's tokenizer (padded to 128256 ids by mkgguf.py): gen-model's
		# byte tokenizer has no merges, which llama.cpp needs, and the dummy merges of the kit's
		# `mkgguf.py random` name tokens it lacks, which our GGUF reader refuses.
		f16=$QB/models/8b-f16.gguf
		if [[ ! -f $f16 ]]; then
			big_model >&2 && lm_model >&2 || return 1
			src=$QB/models/8b-hf
			mkdir -p "$src" && ln -sf "$M8B"/config.json "$M8B"/*.safetensors "$src/" &&
				cp "$MLM"/tokenizer.json "$MLM"/tokenizer_config.json "$src/" || return 1
			"$PY" .devcarry/llamacpp/mkgguf.py hf "$src" "$f16" >&2 || return 1
		fi
		;;
	small)
		lm_model >&2
		f16=$KB/models/bench-lm-8k-f16.gguf
		[[ -f $f16 ]] || f16=$QB/models/small-f16.gguf
		[[ -f $f16 ]] || "$PY" .devcarry/llamacpp/mkgguf.py hf "$MLM" "$f16" >&2 || return 1
		;;
	8b32)
		src=$(qgguf 8b) || return 1
		"$PY" bench/peers/gguf_layers.py "$src" "$g.part" --layers 32 >&2 && mv "$g.part" "$g" && echo "$g"
		return
		;;
	*) echo "speed.sh: QMODELS: unknown model $1 (8b, 8b32, small)" >&2; return 1 ;;
	esac
	local t=$SECONDS
	lcpp "$(cap 300)" llama-quantize "$f16" "$g.part" "$QTYPE" "$(nproc)" >"$QJ/quantize-$1.log" 2>&1 &&
		mv "$g.part" "$g" || { echo "speed.sh: llama-quantize failed: $QJ/quantize-$1.log" >&2; return 1; }
	echo "quantized $f16 to $QTYPE in $((SECONDS - t)) s: $(du -h "$g" | cut -f1)" >&2
	echo "$g"
}
ended() { # what: after a step, note its exit status if it failed ($? of the step)
	local rc=$?
	((rc == 0)) && return
	echo "speed.sh: $1 exited $rc$( ((rc == 124 || rc == 137)) && echo ': timed out')"
}
qinspect() { # key file context
	log "quant: inspect $1 $QTYPE at context $3"
	$BIN inspect --model "$2" --context "$3" 2>&1 | tee "$QJ/inspect-$1.txt"
	pack
}
qdecode() { # key file lens
	due "decode $1" || return 0
	log "quant: decode $1 $QTYPE at $3 (ours)"
	timeout -k 10 "$(cap "$QSTEP_S")" $BIN bench decode --model "$2" --lens "$3" --gen "$GEN" --reps "$REPS" --warmup "$WARMUP" \
		--json "$QJ/decode-$1-ours.json" --md "$QJ/decode-$1-ours.md" --quiet
	ended "decode $1 (ours)"
	pack
	due "llama.cpp decode $1" || return 0
	log "quant: decode $1 $QTYPE at $3 (llama.cpp tg$GEN at depth)"
	lcpp "$(cap "$QSTEP_S")" llama-bench -m "$2" -p 0 -n "$GEN" -d "$3" -fa 1 -ngl 999 -r "$REPS" -o jsonl -oe md \
		>"$QJ/decode-$1-llamacpp.jsonl" 2>"$QJ/decode-$1-llamacpp.log"
	ended "decode $1 (llama.cpp)" | tee -a "$QJ/decode-$1-llamacpp.log"
	grep '^|' "$QJ/decode-$1-llamacpp.log"
	pack
}
qprefill() { # key file lens methods tag [extra flags]
	due "prefill $1 $4" || return 0
	log "quant: prefill $1 $QTYPE $4 at $3 (ours)"
	# shellcheck disable=SC2086
	timeout -k 10 "$(cap "$QSTEP_S")" $BIN bench prefill --model "$2" --lens "$3" --methods "$4" --reps "$REPS" --warmup "$WARMUP" ${6:-} \
		--json "$QJ/prefill-$1-$5-ours.json" --md "$QJ/prefill-$1-$5-ours.md" --quiet
	ended "prefill $1 $4 (ours)"
	pack
}
qllamapp() { # key file lens
	local ub b
	for ub in ${QUB//,/ }; do
		due "llama.cpp prefill $1 ub $ub" || return 0
		log "quant: prefill $1 $QTYPE at $3 (llama.cpp pp, FA on, ubatch $ub)"
		b=$((ub > 2048 ? ub : 2048))
		lcpp "$(cap "$QSTEP_S")" llama-bench -m "$2" -p "$3" -n 0 -fa 1 -ub "$ub" -b "$b" -ngl 999 -r "$REPS" -o jsonl -oe md \
			>"$QJ/prefill-$1-llamacpp-ub$ub.jsonl" 2>"$QJ/prefill-$1-llamacpp-ub$ub.log"
		ended "prefill $1 (llama.cpp, ubatch $ub)" | tee -a "$QJ/prefill-$1-llamacpp-ub$ub.log"
		grep '^|' "$QJ/prefill-$1-llamacpp-ub$ub.log"
		pack
	done
}
qsummary() {
	"$PY" bench/peers/quant_summary.py "$QJ" >"$QJ/summary.md" 2>"$QJ/summary.err" || cat "$QJ/summary.err"
	pack
}
stage_quant() {
	mkdir -p "$QJ"
	qtools || return 1
	local m g g8
	# The most important figures first: the 8B shape's decode and dense prefill, ours and llama.cpp.
	for m in ${QMODELS//,/ }; do
		due "quant $m" || break
		log "quant: $m $QTYPE GGUF"
		g=$(qgguf "$m") || continue
		case $m in
		8b)
			g8=$g
			qinspect 8b "$g" "$QFULLLEN"
			qdecode 8b "$g" "$QDECLENS"
			qprefill 8b "$g" "$QLENS" dense dense
			qllamapp 8b "$g" "$QLENS"
			;;
		8b32)
			qinspect 8b32 "$g" "$QFULLLEN"
			qprefill 8b32 "$g" "$QFULLLEN" dense dense
			qdecode 8b32 "$g" "$QFULLDEC"
			qllamapp 8b32 "$g" "$QFULLLEN"
			;;
		small)
			qinspect small "$g" "$QFULLLEN"
			qdecode small "$g" "$QDECLENS"
			qprefill small "$g" "$QLMLENS" dense,share dense-share "--clusters bench/clusters-bench-lm-8k.json"
			qllamapp small "$g" "$QLMLENS"
			;;
		esac
		qsummary
	done
	# SharePrefill on the 8B shape last: random weights, no cluster file (every head plans alone).
	[[ -n ${g8:-} ]] && qprefill 8b "$g8" "$QLENS" share share
	qsummary
	cat "$QJ/summary.md"
}

stage_llamacpp_ops() { # test-backend-ops perf on the Vulkan device, Llama-3-8B shapes
	mkdir -p "$QJ"
	qtools || return 1
	local op p sb=()
	command -v stdbuf >/dev/null && sb=(stdbuf -oL -eL) # lines survive the timeout
	for op in MUL_MAT FLASH_ATTN_EXT; do
		due "test-backend-ops $op" || return 0
		p=$OPS_MM
		[[ $op == FLASH_ATTN_EXT ]] && p=$OPS_FA
		log "llama.cpp test-backend-ops perf -o $op -p '$p' (at most $OPS_S s)"
		timeout -k 10 "$(cap "$OPS_S")" env LD_LIBRARY_PATH="$QB/bin" "${sb[@]}" "$QB/bin/test-backend-ops" perf -b Vulkan0 -o "$op" -p "$p" >"$SCRATCH/json/llamacpp-ops-$op.txt" 2>&1
		ended "test-backend-ops $op" | tee -a "$SCRATCH/json/llamacpp-ops-$op.txt"
		grep -E "^ +$op\(" "$SCRATCH/json/llamacpp-ops-$op.txt" | sed "s/\x1b\[[0-9;]*m//g" | head -60
		pack
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
	env | vehicle | prefill-lm | prefill-8b | decode-lm | decode-8b | hf-lm | hf-8b | llamacpp | quant | llamacpp-ops) "stage_${s//-/_}" || echo "speed.sh: stage $s failed" ;;
	*) echo "speed.sh: unknown stage $s" >&2 ;;
	esac
	pack
done
log "done"
for f in "$SCRATCH"/json/*.md; do
	[[ -f $f ]] && { echo; echo "## $(basename "$f")"; grep -v '^$' "$f" | head -40; }
done
pack
