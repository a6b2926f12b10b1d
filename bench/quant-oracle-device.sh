#!/usr/bin/env bash
# bench/quant-oracle-device.sh — issue 27's accuracy bar in ONE device call:
# llama.cpp's Vulkan backend as the logits oracle of our GGUF path, on the
# same GPU as ours. No Go and no g++ on the device: python3 + numpy, the
# llama.cpp kit and the prebuilt oracle of bench/quant-oracle-carry.sh.
#
#   bash bench/quant-oracle-device.sh        (repository root)
#   carry: .gl .devcarry/llamacpp .devcarry/llamacpp-tools .devcarry/lcgpu
#
# 1. unpacks the kit's libraries and llama-quantize (tools.tar.xz) with the
#    oracle beside them, and the model; converts bench-lm-8k to an f16 GGUF
#    (the kit's mkgguf.py) and quantizes it to Q8_0 and Q4_K_M;
# 2. for each llama.cpp setting in $VARIANTS and each file in $TYPES, with
#    every layer on the GPU (LLAMACPP_ORACLE_NGL=$NGL): the two prompts'
#    ids (llama.cpp's tokenizer, BOS added), every position's logits, a
#    greedy continuation of $GREEDY tokens, and the perplexity of $CHUNKS
#    windows of $CTX tokens of Mansfield Park by llama-perplexity's rule
#    (`llamacpp_oracle ppl`): the oracle directory of
#    `shareprefill bench accuracy --oracle` (see bench/peers/llamacpp-oracle.sh);
# 3. ours on the same GPU, files and ids: `shareprefill bench accuracy
#    --oracle CASES --oracle-weights $WEIGHTS`.
#
# Variants (llama.cpp's settings; each gets its own cases and report):
#   vk       the Vulkan backend's defaults;
#   vk-nodp  GGML_VK_DISABLE_INTEGER_DOT_PRODUCT=1: without the integer-dot
#            kernels (MMQ, MMVQ), which round the activations to 8 bits (Q8_1)
#            as the CPU backend does, and which the defaults take on NVIDIA for
#            batched matmuls of Q8_0/Q4_K weights; the weights are dequantized
#            to f16 instead. The fairer oracle for the 1e-2 bar: it runs first;
#   cpu      the CPU backend (sets NGL to 0): the local check of this script.
#
# $OUT (default out/quant-oracle-device) gets only small files: log.txt,
# env.txt, for each variant oracle-VARIANT.{md,json} (ours against
# llama.cpp) and llamacpp-VARIANT.json (device, perplexities, greedy tokens),
# and logs/. Logits and models stay in $SCRATCH (default /tmp/quant-oracle).
#
# Env: VARIANTS ("vk-nodp vk"), TYPES ("f16 Q8_0 Q4_K_M"), NGL (999),
# GREEDY (32), CTX (512), CHUNKS (40; 0: no perplexity), WEIGHTS (quantized;
# "quantized,f16" adds our f16-at-load run), PPL_WINDOWS (0: every window),
# BIN (our binary; default: .devcarry/lcgpu/shareprefill[.xz]), MODEL (an
# unpacked bench-lm-8k; default: from the carried tar), PY (python3),
# DEADLINE (s, default 115: no new variant or our run after it), OURS (1;
# 0: llama.cpp's side only).
# Timing (estimate, H100): setup and GGUFs 15–25 s, each variant's llama.cpp
# side 10–20 s (a process per prompt, shader compiles), ours 10–20 s.
set -uo pipefail
export PYTHONUNBUFFERED=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
C=.devcarry/lcgpu
KIT=.devcarry/llamacpp
TOOLS=.devcarry/llamacpp-tools/tools.tar.xz
O=${OUT:-out/quant-oracle-device}
S=${SCRATCH:-/tmp/quant-oracle}
VARIANTS=${VARIANTS:-vk-nodp vk}
TYPES=${TYPES:-f16 Q8_0 Q4_K_M}
NGL=${NGL:-999}
GREEDY=${GREEDY:-32}
CTX=${CTX:-512}
CHUNKS=${CHUNKS:-40}
WEIGHTS=${WEIGHTS:-quantized}
PPL_WINDOWS=${PPL_WINDOWS:-0}
if [ -z "${PY:-}" ]; then
	for PY in python3 /usr/bin/python3; do "$PY" -c 'import numpy' 2>/dev/null && break; done
fi
DEADLINE=${DEADLINE:-115}
OURS=${OURS:-1}
mkdir -p "$O/logs" "$S"
O=$(cd "$O" && pwd)

die() { echo "quant-oracle-device: $*" >&2; exit 1; }
step() { printf '\n=== %s (%d s)\n' "$*" "$SECONDS"; }
due() { [ "$SECONDS" -lt "$DEADLINE" ] || { echo "skipped: $1 (DEADLINE $DEADLINE s passed)"; return 1; }; }
untar() { # archive dir: tar, or python's tarfile where tar has no xz
	tar -xJf "$1" -C "$2" 2>/dev/null ||
		"$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
}
main() {
	for f in "$KIT/bin.tar.xz" "$KIT/mkgguf.py" "$TOOLS" "$C/llamacpp_oracle" "$C/prompts/kjv.txt" "$C/prompts/persuasion.txt"; do
		[ -e "$f" ] || die "$f is missing: carry .devcarry/llamacpp, .devcarry/llamacpp-tools and .devcarry/lcgpu (bench/quant-oracle-carry.sh makes the last)"
	done
	"$PY" -c 'import numpy' 2>/dev/null || die "no python3 with numpy (PY=$PY)"
	if ls .gl/*.deb >/dev/null 2>&1; then
		# shellcheck source=bench/vk-setup.sh
		. bench/vk-setup.sh
	fi

	step setup
	B=$S/bin
	if [ ! -x "$B/llama-quantize" ]; then
		rm -rf "$B" && mkdir -p "$B"
		if ! untar "$KIT/bin.tar.xz" "$B" || ! untar "$TOOLS" "$B"; then die "cannot unpack the kit into $B"; fi
	fi
	cp "$C/llamacpp_oracle" "$B/" || die "cannot copy the oracle into $B"
	export LD_LIBRARY_PATH="$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	if [ -z "${BIN:-}" ]; then
		BIN=$C/shareprefill
		if [ ! -x "$BIN" ] && [ -f "$C/shareprefill.xz" ]; then
			BIN=$S/shareprefill
			xz -dc "$C/shareprefill.xz" >"$BIN" 2>/dev/null ||
				"$PY" -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' "$C/shareprefill.xz" "$BIN"
			chmod +x "$BIN"
		fi
	fi
	export SHAREPREFILL_COMMIT=${SHAREPREFILL_COMMIT:-$(cat "$C/COMMIT" 2>/dev/null || echo unknown)}
	[ -x "$BIN" ] || die "no binary of ours: $C/shareprefill[.xz] (bench/quant-oracle-carry.sh) or BIN"
	M=${MODEL:-$S/models/bench-lm-8k}
	if [ ! -f "$M/config.json" ]; then
		[ -f "$C/bench-lm-8k.tar.xz" ] || die "$C/bench-lm-8k.tar.xz is missing (or set MODEL)"
		mkdir -p "$S/models"
		untar "$C/bench-lm-8k.tar.xz" "$S/models" || die "cannot unpack $C/bench-lm-8k.tar.xz"
	fi
	{
		echo "ours: $(cat "$C/COMMIT" 2>/dev/null || echo unknown); llama.cpp: $(head -1 "$KIT/VERSION")"
		echo "$(date -u +%FT%TZ); $(uname -srm); $(nproc) CPUs"
		command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
		"$B/llama-bench" --list-devices 2>&1 | grep -E "ggml_vulkan: [0-9]|Vulkan[0-9]"
		echo "with GGML_VK_DISABLE_INTEGER_DOT_PRODUCT=1 (vk-nodp):"
		GGML_VK_DISABLE_INTEGER_DOT_PRODUCT=1 "$B/llama-bench" --list-devices 2>&1 | grep -E "ggml_vulkan: [0-9]"
		"$BIN" devices 2>&1 | head -3
	} 2>&1 | tee "$O/env.txt"

	step "GGUF files: $TYPES"
	G=$S/models
	F16=$G/bench-lm-8k-f16.gguf
	[ -f "$F16" ] || "$PY" "$KIT/mkgguf.py" hf "$M" "$F16" >"$O/logs/mkgguf.log" 2>&1 || die "mkgguf.py failed: $(tail -3 "$O/logs/mkgguf.log")"
	for t in $TYPES; do
		g=$G/bench-lm-8k-$t.gguf
		if [ "$t" != f16 ] && [ ! -f "$g" ]; then
			"$B/llama-quantize" "$F16" "$g.part" "$t" "$(nproc)" >"$O/logs/quantize-$t.log" 2>&1 ||
				die "llama-quantize $t failed: $(tail -3 "$O/logs/quantize-$t.log")"
			mv "$g.part" "$g"
		fi
		ls -l "$g"
	done

	# oracle VARIANT: llama.cpp's cases for every type, in $S/VARIANT/cases (the
	# models are linked at ../models beside it, where case.json points).
	oracle() {
		local v=$1 ngl=$NGL t p name d log vocab
		local -a envs=()
		case $v in
		vk) ;;
		vk-nodp) envs=(GGML_VK_DISABLE_INTEGER_DOT_PRODUCT=1) ;;
		cpu) ngl=0 ;;
		*) echo "VARIANTS: unknown variant $v (vk, vk-nodp, cpu)"; return 1 ;;
		esac
		lc() { env "${envs[@]}" LLAMACPP_ORACLE_NGL="$ngl" "$B/llamacpp_oracle" "$@"; } # the oracle in this variant
		local R=$S/$v
		rm -rf "$R" && mkdir -p "$R/cases" && ln -s "$G" "$R/models"
		local -a summary=()
		for t in $TYPES; do
			local g=$G/bench-lm-8k-$t.gguf
			local greedy=()
			for p in "$C"/prompts/*.txt; do
				name=$t-$(basename "$p" .txt)
				d=$R/cases/$name
				log=$O/logs/oracle-$v-$name.log
				mkdir -p "$d" && cp "$p" "$d/text.txt"
				if ! lc tokenize "$g" "$d/text.txt" "$d/ids.json" 2>"$log" || ! lc logits "$g" "$d/ids.json" "$GREEDY" "$d" 2>>"$log"; then
					echo "llamacpp_oracle $v $name failed: $(tail -3 "$log")"
					return 1
				fi
				"$PY" bench/peers/llamacpp_cases.py logits "$d" "$name" "bench-lm-8k $t" "../../models/bench-lm-8k-$t.gguf" 1 || return 1
				greedy+=("\"$(basename "$p" .txt)\": $(cat "$d/greedy.json")")
				rm "$d/greedy.json"
				vocab=$(sed -n 's/.*"vocab": \([0-9]*\).*/\1/p' "$d/case.json")
			done
			local ppl=null
			if [ "$CHUNKS" -gt 0 ] && [ -f "$C/mansfieldpark-head.txt" ]; then
				name=$t-ppl
				d=$R/cases/$name
				log=$O/logs/oracle-$v-$name.log
				mkdir -p "$d" && cp "$C/mansfieldpark-head.txt" "$d/text.txt"
				if ! lc tokenize "$g" "$d/text.txt" "$d/ids.json" 2>"$log" || ! lc ppl "$g" "$d/ids.json" "$CTX" "$CHUNKS" "$d/ppl.json" 2>>"$log"; then
					echo "llamacpp_oracle ppl $v $t failed: $(tail -3 "$log")"
					return 1
				fi
				"$PY" bench/peers/llamacpp_cases.py pplj "$d" "$name" "bench-lm-8k $t" "../../models/bench-lm-8k-$t.gguf" "$d/ppl.json" "$CTX" "$CHUNKS" "$vocab" || return 1
				ppl=$(sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p' "$d/ppl.json")
			fi
			summary+=("\"$t\": {\"ppl\": $ppl, \"greedy\": {$(IFS=,; echo "${greedy[*]}")}}")
		done
		{
			echo "{"
			echo "  \"variant\": \"$v\", \"env\": \"${envs[*]}\", \"n_gpu_layers\": $ngl,"
			echo "  \"llama.cpp\": \"$(head -1 "$KIT/VERSION" | sed 's/"/\\"/g')\","
			echo "  \"device\": \"$(grep -h -m1 'GPU device' "$O"/logs/oracle-"$v"-*.log 2>/dev/null | head -1 | sed 's/^llamacpp_oracle: //; s/"/\\"/g')\","
			echo "  \"windows\": \"$CHUNKS × $CTX tokens of the head of mansfieldpark.txt, llama-perplexity's rule (llamacpp_oracle ppl)\","
			echo "  \"types\": {"
			local i sep
			for i in "${!summary[@]}"; do
				sep=,
				[ "$i" = $((${#summary[@]} - 1)) ] && sep=
				echo "    ${summary[$i]}$sep"
			done
			echo "  }"
			echo "}"
		} >"$O/llamacpp-$v.json"
		cat "$O/llamacpp-$v.json"
	}

	for v in $VARIANTS; do
		due "variant $v" || break
		step "llama.cpp ($v) on $TYPES"
		oracle "$v" || continue
		[ "$OURS" = 1 ] || continue
		due "ours against $v" || break
		step "ours against llama.cpp ($v): --oracle-weights $WEIGHTS"
		"$BIN" bench accuracy --oracle "$S/$v/cases" --oracle-weights "$WEIGHTS" --ppl-windows "$PPL_WINDOWS" \
			--json "$O/oracle-$v.json" --md "$O/oracle-$v.md" --force >"$O/logs/ours-$v.log" 2>&1
		echo "exit $?"
		if [ "$v" != cpu ]; then
			# The harness's headings name llama.cpp's CPU backend and llama-perplexity,
			# the references of bench/peers/llamacpp-oracle.sh: name this one instead.
			sed -i -e "s/llama\.cpp on the CPU on the same GGUF file/llama.cpp's Vulkan backend ($v) on the same GGUF file/" \
				-e "s/against llama\.cpp (CPU)/against llama.cpp Vulkan ($v)/" \
				-e "s/against llama-perplexity on/against llama.cpp Vulkan ($v), llama-perplexity's rule, on/" \
				"$O/oracle-$v.md" "$O/oracle-$v.json" 2>/dev/null
		fi
		grep '^bench: oracle' "$O/logs/ours-$v.log" || tail -5 "$O/logs/ours-$v.log"
		[ -f "$O/oracle-$v.md" ] && cat "$O/oracle-$v.md"
	done
	step "done: results in $O"
	du -sh "$O"
}

# The log goes to $O/log.txt too; a pipeline, so that a failure's last words reach both.
main 2>&1 | tee -a "$O/log.txt"
exit "${PIPESTATUS[0]}"
