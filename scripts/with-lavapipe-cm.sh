#!/usr/bin/env bash
# with-lavapipe-cm.sh — run a program on the private lavapipe installed by
# scripts/install-lavapipe-cm.sh (Mesa with VK_KHR_cooperative_matrix).
#
# Usage: scripts/with-lavapipe-cm.sh CMD [ARGS...]
#   CMD  a dynamically linked x86-64 ELF program (e.g. a Go binary or test
#        binary built here). A name without a slash is looked up first in the
#        prefix's usr/bin (so `with-lavapipe-cm.sh vulkaninfo` runs trixie's
#        vulkaninfo), then in PATH. Shell scripts cannot be run this way.
#
# The program runs through the prefix's own ld-linux-x86-64.so.2 with
# --library-path covering the prefix's lib dirs, so it and everything it
# dlopens (libvulkan.so.1, libvulkan_lvp.so, libLLVM, ...) use trixie's glibc,
# the prefix's Vulkan loader and lavapipe. VK_DRIVER_FILES/VK_ICD_FILENAMES
# name only the prefix's ICD JSON, and implicit layers (the system's Mesa
# device-select layer, built for bookworm) are disabled unless
# VK_LOADER_LAYERS_DISABLE is already set.
#
# Environment:
#   LVP_PREFIX   prefix (default <repo>/.tools/lvp)
#   LVP_VERBOSE=1 print the command line before running it
#
# Caveats: inside the program /proc/self/exe (Go's os.Executable) is the
# prefix's ld.so, not CMD, so a program that re-executes itself loses the
# wrapper; child processes inherit VK_* but run on the system's glibc.
set -euo pipefail

die() { echo "with-lavapipe-cm: ERROR: $*" >&2; exit 127; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P="${LVP_PREFIX:-$REPO/.tools/lvp}"
LDSO="$P/usr/lib64/ld-linux-x86-64.so.2"
ICD="$P/lvp_icd.json"
LVP="$P/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"

[ $# -ge 1 ] || die "usage: $0 CMD [ARGS...]"
[ -x "$LDSO" ] && [ -e "$LVP" ] && [ -f "$ICD" ] ||
	die "no private lavapipe in $P; run scripts/install-lavapipe-cm.sh first"
grep -qF "\"$LVP\"" "$ICD" ||
	die "$ICD does not point at $LVP (prefix moved?); re-run scripts/install-lavapipe-cm.sh"

cmd="$1"
name="$1"
shift
case "$cmd" in
	*/*) ;;
	*)
		if [ -x "$P/usr/bin/$cmd" ]; then
			cmd="$P/usr/bin/$cmd"
		else
			cmd="$(command -v -- "$cmd" 2>/dev/null)" || die "command not found: $name"
			case "$cmd" in */*) ;; *) die "not a program file: $cmd (a shell builtin or function?)" ;; esac
		fi
		;;
esac
[ -f "$cmd" ] && [ -x "$cmd" ] || die "not an executable file: $cmd"
# ld.so can only run ELF programs; give a clear error for scripts.
magic="$(head -c 4 "$cmd" | od -An -c | tr -d ' ')"
[ "$magic" = '177ELF' ] || die "$cmd is not an ELF binary (scripts cannot run through ld.so; wrap the binary they start instead)"

libpath=""
for d in usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib64 lib64; do
	[ -d "$P/$d" ] && [ ! -L "$P/$d" ] && libpath="${libpath:+$libpath:}$P/$d"
done

export VK_DRIVER_FILES="$ICD"
export VK_ICD_FILENAMES="$ICD"
export VK_LOADER_LAYERS_DISABLE="${VK_LOADER_LAYERS_DISABLE:-~implicit~}"
# LD_LIBRARY_PATH from the caller would put system libs before the prefix's.
unset LD_LIBRARY_PATH LD_PRELOAD

[ "${LVP_VERBOSE:-0}" != 1 ] ||
	echo "with-lavapipe-cm: VK_DRIVER_FILES=$ICD $LDSO --library-path $libpath $cmd $*" >&2
exec "$LDSO" --library-path "$libpath" "$cmd" "$@"
