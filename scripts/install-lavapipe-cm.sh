#!/usr/bin/env bash
# install-lavapipe-cm.sh — install a private, newer lavapipe (Mesa's CPU
# Vulkan driver) that exposes VK_KHR_cooperative_matrix.
#
# Debian 12 (bookworm) ships Mesa 22.3, whose lavapipe has no
# VK_KHR_cooperative_matrix, so the *_cm1 shaders cannot run on this
# GPU-less machine. Neither does trixie's own Mesa 25.0 (lavapipe got
# VK_KHR_cooperative_matrix after 25.0), but trixie-backports carries Mesa
# 26.x, built against trixie, whose lavapipe exposes VK_KHR_cooperative_matrix
# (and VK_NV_cooperative_matrix2). Its libraries need trixie's glibc. Same
# approach as install-glslang.sh:
#   1. a PRIVATE apt configuration (own sources.list, lists, cache, status,
#      preferences; /etc/apt and the system's dpkg database are never
#      touched) pointed at trixie + trixie-backports on the mirror the system
#      already uses, with source package mesa pinned to trixie-backports,
#   2. `apt-get download` mesa-vulkan-drivers, libvulkan1, vulkan-tools and
#      their Depends closure (libc6, libstdc++6, libLLVM, libdrm, libxcb*, ...),
#   3. `dpkg -x` them into a prefix,
#   4. write an ICD JSON whose library_path is the prefix's absolute
#      libvulkan_lvp.so.
# Programs then run through the prefix's own dynamic loader with
# scripts/with-lavapipe-cm.sh (ld-linux-x86-64.so.2 --library-path ...).
#
# Usage: scripts/install-lavapipe-cm.sh [PREFIX]
#   PREFIX        default: $LVP_PREFIX, else <repo>/.tools/lvp
# Environment:
#   LVP_FORCE=1   reinstall even when a working install is present
#   LVP_MESA_SUITE suite to take Mesa (src:mesa) from: trixie-backports
#                 (default, has VK_KHR_cooperative_matrix) or trixie (Mesa
#                 25.0, which lacks it); changing it forces a reinstall
#   DEBIAN_MIRROR Debian mirror URL instead of the one read from the system's
#                 apt sources
#
# Idempotent: when the prefix already holds a working install it only
# rewrites the ICD JSON (in case the checkout moved) and runs the self-test.
set -euo pipefail

die() { echo "install-lavapipe-cm: ERROR: $*" >&2; exit 1; }
log() { echo "install-lavapipe-cm: $*"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${1:-${LVP_PREFIX:-$REPO/.tools/lvp}}"
SUITE=trixie
MESA_SUITE="${LVP_MESA_SUITE:-trixie-backports}"
case "$MESA_SUITE" in
	trixie | trixie-backports) ;;
	*) die "LVP_MESA_SUITE must be trixie or trixie-backports (got '$MESA_SUITE')" ;;
esac
# Top-level packages; their Depends closure is resolved with apt-cache.
# vulkan-tools (vulkaninfo) is only for the self-test and diagnosis.
TOP_PKGS=(mesa-vulkan-drivers libvulkan1 vulkan-tools)

[ "$(uname -m)" = x86_64 ] || die "only x86-64 is supported (got $(uname -m))"
for t in apt-get apt-cache dpkg dpkg-deb sed grep; do
	command -v "$t" >/dev/null || die "missing required tool: $t"
done

mkdir -p "$(dirname "$PREFIX")"
PREFIX="$(cd "$(dirname "$PREFIX")" && pwd)/$(basename "$PREFIX")"

LDSO_REL=usr/lib64/ld-linux-x86-64.so.2
LIBDIR_REL=usr/lib/x86_64-linux-gnu
LVP_REL=$LIBDIR_REL/libvulkan_lvp.so
ICD_NAME=lvp_icd.json # written at $PREFIX/$ICD_NAME

libpath() { # libpath PREFIX: the --library-path for PREFIX
	local p="$1" d out=""
	for d in usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib64 lib64; do
		[ -d "$p/$d" ] && [ ! -L "$p/$d" ] && out="${out:+$out:}$p/$d"
	done
	echo "$out"
}

# run_in PREFIX PROGRAM ARGS... — run a prefix program through its own ld.so
# with the prefix's lavapipe as the only Vulkan driver.
run_in() {
	local p="$1" b="$2"
	shift 2
	VK_DRIVER_FILES="$p/$ICD_NAME" VK_ICD_FILENAMES="$p/$ICD_NAME" \
		VK_LOADER_LAYERS_DISABLE='~implicit~' \
		"$p/$LDSO_REL" --library-path "$(libpath "$p")" "$b" "$@"
}

missing_libs() { # missing_libs PREFIX: prints the ldd "not found" lines of lavapipe and the loader
	local p="$1" f
	for f in "$p/$LVP_REL" "$p/$LIBDIR_REL/libvulkan.so.1"; do
		"$p/$LDSO_REL" --library-path "$(libpath "$p")" --list "$f" 2>&1 | grep -E 'not found|error' || true
	done
}

write_icd() { # write_icd PREFIX: ICD JSON with the absolute lavapipe path
	local p="$1" api="" src
	for src in "$p"/usr/share/vulkan/icd.d/lvp_icd*.json; do
		[ -f "$src" ] || continue
		api="$(sed -n 's/.*"api_version"[^"]*"\([^"]*\)".*/\1/p' "$src" | head -n1)"
	done
	[ -n "$api" ] || api=1.4.0
	cat >"$p/$ICD_NAME.tmp" <<EOF
{
    "ICD": {
        "api_version": "$api",
        "library_arch": "64",
        "library_path": "$p/$LVP_REL"
    },
    "file_format_version": "1.0.1"
}
EOF
	mv -f "$p/$ICD_NAME.tmp" "$p/$ICD_NAME"
}

works() { # works PREFIX: true when PREFIX holds a loadable lavapipe and loader
	local p="$1"
	[ -x "$p/$LDSO_REL" ] && [ -e "$p/$LVP_REL" ] && [ -e "$p/$LIBDIR_REL/libvulkan.so.1" ] &&
		[ -e "$p/usr/bin/vulkaninfo" ] || return 1
	# A prefix installed for another LVP_MESA_SUITE is not what was asked for.
	[ ! -f "$p/.source" ] || grep -qx ".* mesa-from=$MESA_SUITE" "$p/.source" || return 1
	[ -z "$(missing_libs "$p")" ] || return 1
	write_icd "$p"
	run_in "$p" "$p/usr/bin/vulkaninfo" --summary 2>/dev/null | grep 'llvmpipe' >/dev/null
}

self_test() {
	local out
	out="$(run_in "$PREFIX" "$PREFIX/usr/bin/vulkaninfo" 2>&1)" || {
		echo "$out" | tail -n 20 >&2
		die "self-test: vulkaninfo failed through the prefix's loader"
	}
	log "device:    $(echo "$out" | sed -n 's/^[[:space:]]*deviceName[[:space:]]*= //p' | head -n1)"
	log "driver:    $(echo "$out" | sed -n 's/^[[:space:]]*driverInfo[[:space:]]*= //p' | head -n1)"
	log "apiVersion $(echo "$out" | sed -n 's/^[[:space:]]*apiVersion[[:space:]]*= //p' | head -n1)"
	if echo "$out" | grep 'VK_KHR_cooperative_matrix' >/dev/null; then
		log "self-test OK: VK_KHR_cooperative_matrix is exposed"
	else
		log "WARNING: lavapipe loads but does not expose VK_KHR_cooperative_matrix"
	fi
}

print_info() {
	[ -f "$PREFIX/.packages" ] &&
		log "mesa-vulkan-drivers $(sed -n 's/^mesa-vulkan-drivers=//p' "$PREFIX/.packages"), libvulkan1 $(sed -n 's/^libvulkan1=//p' "$PREFIX/.packages")"
	log "prefix: $PREFIX"
	log "ICD:    $PREFIX/$ICD_NAME"
	log "run:    scripts/with-lavapipe-cm.sh CMD [ARGS...]"
}

if [ "${LVP_FORCE:-0}" != 1 ] && works "$PREFIX"; then
	log "already installed in $PREFIX"
	print_info
	self_test
	exit 0
fi

[ "$(id -u)" = 0 ] || log "warning: not root; apt-get may refuse to run (it runs with private dirs only)"

# shellcheck source=debian-mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"

MIRROR="$(private_mirror)" || die "no usable Debian mirror"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

WORK="$(mktemp -d "${TMPDIR:-/tmp}/install-lavapipe-cm.XXXXXX")"
STAGE=""
trap 'rm -rf "$WORK"; [ -z "$STAGE" ] || rm -rf "$STAGE"' EXIT
mkdir -p "$WORK"/{lists/partial,cache/archives/partial,parts,prefs,debs}
: >"$WORK/status"
{
	echo "deb [arch=amd64 signed-by=$KEYRING target=Packages] $MIRROR $SUITE main"
	[ "$MESA_SUITE" = "$SUITE" ] ||
		echo "deb [arch=amd64 signed-by=$KEYRING target=Packages] $MIRROR $MESA_SUITE main"
} >"$WORK/sources.list"
# Backports are NotAutomatic (priority 100): pin only src:mesa there, so
# everything else (glibc, LLVM, ...) stays plain trixie.
cat >"$WORK/prefs/mesa.pref" <<EOF
Package: src:mesa
Pin: release n=$MESA_SUITE
Pin-Priority: 990
EOF

private_apt_opts "$WORK"

log "fetching $SUITE and $MESA_SUITE package lists from $MIRROR (private apt dirs: $WORK)"
private_update "$WORK" "$MIRROR" "$SUITE" "$MESA_SUITE" || die "could not fetch the package lists"

# Resolve the Depends/PreDepends closure of the top-level packages.
mapfile -t PKGS < <(private_closure "${TOP_PKGS[@]}")
[ "${#PKGS[@]}" -ge "${#TOP_PKGS[@]}" ] || die "apt-cache could not resolve ${TOP_PKGS[*]} in $SUITE"
# grep reads all its input (no -q): under pipefail, grep -q leaving at the
# first match can kill the writer with SIGPIPE and fail the check at random.
for need in "${TOP_PKGS[@]}" libc6 libstdc++6 libgcc-s1; do
	printf '%s\n' "${PKGS[@]}" | grep -x "$need" >/dev/null || die "dependency resolution did not include $need (got: ${PKGS[*]})"
done
printf '%s\n' "${PKGS[@]}" | grep '^libllvm' >/dev/null || die "dependency resolution did not include a libllvmNN (got: ${PKGS[*]})"
cand="$(apt-cache "${APT_OPTS[@]}" policy mesa-vulkan-drivers | sed -n 's/^ *Candidate: //p')"
[ -n "$cand" ] && [ "$cand" != "(none)" ] || die "no mesa-vulkan-drivers candidate in $SUITE/$MESA_SUITE"
case "$MESA_SUITE:$cand" in
	trixie-backports:*bpo13*) ;;
	trixie-backports:*) die "mesa-vulkan-drivers candidate $cand is not from trixie-backports (pin failed?)" ;;
esac
log "mesa-vulkan-drivers candidate: $cand (from $MESA_SUITE)"
log "downloading ${#PKGS[@]} packages: ${PKGS[*]}"
STAGE="$PREFIX.new.$$"
private_extract "$WORK" "$STAGE" "${PKGS[@]}" || die "fetching or unpacking the packages failed"
echo "$MIRROR $SUITE mesa-from=$MESA_SUITE" >"$STAGE/.source"

[ -x "$STAGE/$LDSO_REL" ] || die "extracted prefix has no $LDSO_REL (libc6 missing?)"
[ -e "$STAGE/$LVP_REL" ] || die "extracted prefix has no $LVP_REL (mesa-vulkan-drivers layout changed?)"
miss="$(missing_libs "$STAGE")"
[ -z "$miss" ] || die "libraries missing from the prefix (ldd of libvulkan_lvp.so / libvulkan.so.1):
$miss"
works "$STAGE" || {
	run_in "$STAGE" "$STAGE/usr/bin/vulkaninfo" --summary >&2 || true
	die "extracted lavapipe does not enumerate through the prefix's loader (see above)"
}
rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX"
STAGE=""
write_icd "$PREFIX" # the staged one named the staging dir
log "installed into $PREFIX"
print_info
self_test
