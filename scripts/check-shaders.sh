#!/usr/bin/env bash
# check-shaders.sh — verify the committed shaders/spv/*.spv match their sources.
#
# Recompiles every shaders/*.comp (all variants) into a temporary directory
# with scripts/compile-shaders.sh and fails, listing the files, when
#   * a committed .spv differs from the freshly compiled one (stale: run
#     `make shaders`),
#   * a committed .spv has no source (orphan: delete it), or
#   * a source output has no committed .spv (missing: run `make shaders`),
#   * or any shader fails to compile/validate.
# Read-only: never touches shaders/spv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SPV_DIR=shaders/spv

TMP="$(mktemp -d "${TMPDIR:-/tmp}/check-shaders.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if ! scripts/compile-shaders.sh --no-prune -o "$TMP/spv" >"$TMP/log" 2>&1; then
	cat "$TMP/log" >&2
	echo "check-shaders: FAIL: shaders do not compile (see above)" >&2
	exit 1
fi

stale=() orphan=() missing=()
shopt -s nullglob
for f in "$TMP"/spv/*.spv; do
	b="$(basename "$f")"
	if [ ! -f "$SPV_DIR/$b" ]; then
		missing+=("$SPV_DIR/$b")
	elif ! cmp -s "$f" "$SPV_DIR/$b"; then
		stale+=("$SPV_DIR/$b")
	fi
done
for f in "$SPV_DIR"/*.spv; do
	b="$(basename "$f")"
	[ -f "$TMP/spv/$b" ] || orphan+=("$f")
done
shopt -u nullglob

rc=0
if [ "${#stale[@]}" -gt 0 ]; then
	echo "check-shaders: stale .spv (differs from freshly compiled source; run 'make shaders'):" >&2
	printf '  %s\n' "${stale[@]}" >&2
	rc=1
fi
if [ "${#missing[@]}" -gt 0 ]; then
	echo "check-shaders: missing .spv (source has no committed SPIR-V; run 'make shaders'):" >&2
	printf '  %s\n' "${missing[@]}" >&2
	rc=1
fi
if [ "${#orphan[@]}" -gt 0 ]; then
	echo "check-shaders: orphan .spv (no shaders/*.comp produces it; delete it):" >&2
	printf '  %s\n' "${orphan[@]}" >&2
	rc=1
fi
if [ "$rc" = 0 ]; then
	n="$(find "$TMP/spv" -name '*.spv' | wc -l)"
	echo "check-shaders: OK ($n SPIR-V module(s) match their sources)"
fi
exit "$rc"
