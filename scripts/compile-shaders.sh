#!/usr/bin/env bash
# compile-shaders.sh — compile shaders/*.comp to SPIR-V and validate it.
#
# Usage: scripts/compile-shaders.sh [-o OUTDIR] [--no-prune] [shaders/X.comp ...]
#   -o OUTDIR    where the .spv files go (default: shaders/spv)
#   --no-prune   keep .spv files in OUTDIR that no source produces
#                (by default they are deleted when all shaders are compiled)
#   files        compile only these sources (default: every shaders/*.comp)
#
# Per shader:
#   * target env: vulkan1.2, or vulkan1.3 for cooperative-matrix shaders
#     (file name contains _cm1 / _cm2, or the source has
#     `#extension GL_KHR_cooperative_matrix` / `GL_NV_cooperative_matrix2`).
#     A header line `// target-env: vulkan1.3` overrides the choice.
#   * variants: a header line
#         // variants: matmul_f16=-DFLOAT16,-DBLOCK=64 matmul_f32=
#     produces one OUTDIR/<variant>.spv per entry; the text after `=` is a
#     comma-separated list of -D/-U options (may be empty). Without such a
#     line the output is OUTDIR/<file name without .comp>.spv.
#   * glslangValidator -V -g0 (no debug info), then spirv-val with the same
#     target env. Output is deterministic: same source + same glslang version
#     give the same bytes. A failed shader leaves its previous .spv untouched.
#
# Tools: $GLSLANG_VALIDATOR / $SPIRV_VAL, else .tools/bin/ (make tools), else
# PATH. glslang major version 15 is required so that output matches the
# committed .spv files.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR=shaders
OUT_DIR=
PRUNE=1
FILES=()
EXPLICIT=0

die() { echo "compile-shaders: ERROR: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
		-o) [ $# -ge 2 ] || die "-o needs a directory"; OUT_DIR="$2"; shift 2 ;;
		--no-prune) PRUNE=0; shift ;;
		-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		-*) die "unknown option $1" ;;
		*) FILES+=("$(realpath -m --relative-to="$REPO" "$1")"); EXPLICIT=1; shift ;;
	esac
done
# Relative paths given by the caller are relative to the caller's cwd; from
# here on everything is relative to the repository root.
[ -z "$OUT_DIR" ] || OUT_DIR="$(realpath -m "$OUT_DIR")"
cd "$REPO"
[ -n "$OUT_DIR" ] || OUT_DIR="$SRC_DIR/spv"

tool() { # tool ENVVAR NAME
	local v="${!1:-}"
	if [ -n "$v" ]; then echo "$v"; return; fi
	if [ -x "$REPO/.tools/bin/$2" ]; then echo "$REPO/.tools/bin/$2"; return; fi
	command -v "$2" || die "$2 not found; run 'make tools' (scripts/install-glslang.sh)"
}
GLSLANG="$(tool GLSLANG_VALIDATOR glslangValidator)"
SPIRV_VAL="$(tool SPIRV_VAL spirv-val)"
gv="$("$GLSLANG" --version 2>&1 | sed -n 's/^Glslang Version: [0-9]*:\([0-9.]*\).*/\1/p' | head -n1)"
[ "${gv%%.*}" = 15 ] || die "$GLSLANG is glslang '${gv:-unknown}', need 15.x; run 'make tools'"

if [ "$EXPLICIT" = 0 ]; then
	shopt -s nullglob
	FILES=("$SRC_DIR"/*.comp)
	shopt -u nullglob
	[ "${#FILES[@]}" -gt 0 ] || die "no $SRC_DIR/*.comp files"
fi
mkdir -p "$OUT_DIR"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/compile-shaders.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# variants_of FILE: prints "name<TAB>opt,opt" lines, one per output.
variants_of() {
	local f="$1" base line tok name opts
	base="$(basename "$f" .comp)"
	line="$(grep -m1 -E '^[[:space:]]*//[[:space:]]*variants:' "$f" || true)"
	if [ -z "$line" ]; then
		printf '%s\t\n' "$base"
		return
	fi
	line="${line#*variants:}"
	for tok in $line; do
		case "$tok" in
			*=*) name="${tok%%=*}"; opts="${tok#*=}" ;;
			*) name="$tok"; opts="" ;;
		esac
		printf '%s\t%s\n' "$name" "$opts"
	done
}

target_env_of() {
	local f="$1" b line
	b="$(basename "$f")"
	line="$(grep -m1 -E '^[[:space:]]*//[[:space:]]*target-env:' "$f" || true)"
	if [ -n "$line" ]; then
		line="${line#*target-env:}"
		echo $line
		return
	fi
	case "$b" in
		*_cm1* | *_cm2*) echo vulkan1.3; return ;;
	esac
	if grep -qE '^[[:space:]]*#[[:space:]]*extension[[:space:]]+GL_(KHR_cooperative_matrix|NV_cooperative_matrix2)([^A-Za-z0-9_]|$)' "$f"; then
		echo vulkan1.3
	else
		echo vulkan1.2
	fi
}

declare -A SEEN=()
FAILED=()
n=0
for f in "${FILES[@]}"; do
	[ -f "$f" ] || { echo "compile-shaders: $f: no such file" >&2; FAILED+=("$f"); continue; }
	case "$f" in *.comp) ;; *) echo "compile-shaders: $f: not a .comp file" >&2; FAILED+=("$f"); continue ;; esac
	env="$(target_env_of "$f")"
	case "$env" in
		vulkan1.[0-4]) ;;
		*) echo "compile-shaders: $f: bad target-env '$env'" >&2; FAILED+=("$f"); continue ;;
	esac
	while IFS=$'\t' read -r name opts; do
		label="$f"
		[ "$name" = "$(basename "$f" .comp)" ] || label="$f [$name]"
		if ! [[ "$name" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; then
			echo "compile-shaders: $f: bad variant name '$name'" >&2; FAILED+=("$f"); continue
		fi
		if [ -n "${SEEN[$name]:-}" ]; then
			echo "compile-shaders: $f: output $name.spv also produced by ${SEEN[$name]}" >&2; FAILED+=("$f"); continue
		fi
		SEEN[$name]="$f"
		args=()
		bad=0
		IFS=, read -r -a defs <<<"$opts"
		for d in "${defs[@]}"; do
			[ -n "$d" ] || continue
			case "$d" in
				-D?* | -U?*) args+=("$d") ;;
				*) echo "compile-shaders: $f: variant $name: only -D/-U options allowed, got '$d'" >&2; bad=1 ;;
			esac
		done
		[ "$bad" = 0 ] || { FAILED+=("$label"); continue; }
		tmp="$TMP/$name.spv"
		if ! "$GLSLANG" --quiet -V -g0 --target-env "$env" -I"$SRC_DIR" "${args[@]}" -o "$tmp" "$f" >"$TMP/log" 2>&1; then
			echo "compile-shaders: $label: glslangValidator failed:" >&2
			sed 's/^/    /' "$TMP/log" >&2
			FAILED+=("$label"); continue
		fi
		if ! "$SPIRV_VAL" --target-env "$env" "$tmp" >"$TMP/log" 2>&1; then
			echo "compile-shaders: $label: spirv-val --target-env $env failed:" >&2
			sed 's/^/    /' "$TMP/log" >&2
			FAILED+=("$label"); continue
		fi
		if ! cmp -s "$tmp" "$OUT_DIR/$name.spv" 2>/dev/null; then
			mv -f "$tmp" "$OUT_DIR/$name.spv"
		fi
		n=$((n + 1))
	done < <(variants_of "$f")
done

if [ "$EXPLICIT" = 0 ] && [ "$PRUNE" = 1 ] && [ "${#FAILED[@]}" = 0 ]; then
	shopt -s nullglob
	for s in "$OUT_DIR"/*.spv; do
		b="$(basename "$s" .spv)"
		if [ -z "${SEEN[$b]:-}" ]; then
			echo "compile-shaders: removing stale $s (no source produces it)"
			rm -f "$s"
		fi
	done
	shopt -u nullglob
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
	echo "compile-shaders: FAILED (${#FAILED[@]}):" >&2
	printf '  %s\n' "${FAILED[@]}" >&2
	exit 1
fi
echo "compile-shaders: $n SPIR-V module(s) up to date in $OUT_DIR (glslang $gv)"
