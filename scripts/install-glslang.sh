#!/usr/bin/env bash
# install-glslang.sh — install a private glslang 15 + SPIRV-Tools toolchain.
#
# Debian 12 (bookworm) ships glslang 12, which cannot compile
# GL_KHR_cooperative_matrix. Debian 13 (trixie) ships glslang 15, but its
# binaries need glibc >= 2.38. So we:
#   1. point a PRIVATE apt configuration (own sources.list, lists, cache,
#      empty sources.list.d and preferences; /etc/apt is never touched) at
#      trixie on the same mirror the system already uses,
#   2. `apt-get download` glslang-tools, spirv-tools and their runtime
#      dependencies (libc6, libstdc++6, libgcc-s1, ...),
#   3. `dpkg -x` them into a prefix, and
#   4. write wrapper scripts that run the binaries through the prefix's own
#      dynamic loader: ld-linux-x86-64.so.2 --library-path <prefix libs>.
#
# Usage: scripts/install-glslang.sh [PREFIX]
#   PREFIX       default: $GLSLANG_PREFIX, else <repo>/.tools/glslang
# Environment:
#   GLSLANG_BINDIR   where the wrappers go (default <repo>/.tools/bin)
#   GLSLANG_FORCE=1  reinstall even when a working install is present
#   DEBIAN_MIRROR    Debian mirror URL to use instead of the one read from
#                    the system's apt sources (e.g. when the system uses a
#                    proxy-only or non-Debian mirror)
#
# Idempotent: when the prefix already holds a working glslang 15 it only
# refreshes the wrappers, prints the versions and runs the self-test.
set -euo pipefail

die() { echo "install-glslang: ERROR: $*" >&2; exit 1; }
log() { echo "install-glslang: $*"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${1:-${GLSLANG_PREFIX:-$REPO/.tools/glslang}}"
BINDIR="${GLSLANG_BINDIR:-$REPO/.tools/bin}"
SUITE=trixie
WANT_MAJOR=15
# The glslang-tools version the committed shaders/spv/*.spv were built with.
TESTED_GLSLANG_PKG="15.1.0+1.4.309.0-1"
# Top-level packages; their Depends closure is resolved with apt-cache.
TOP_PKGS=(glslang-tools spirv-tools)
# Wrappers written into $BINDIR: name -> binary under $PREFIX/usr/bin.
WRAPPERS=(glslangValidator spirv-val spirv-dis spirv-opt spirv-as)

[ "$(uname -m)" = x86_64 ] || die "only x86-64 is supported (got $(uname -m))"
for t in apt-get apt-cache dpkg dpkg-deb realpath; do
	command -v "$t" >/dev/null || die "missing required tool: $t"
done

mkdir -p "$(dirname "$PREFIX")" "$BINDIR"
PREFIX="$(cd "$(dirname "$PREFIX")" && pwd)/$(basename "$PREFIX")"
BINDIR="$(cd "$BINDIR" && pwd)"

LDSO_REL=usr/lib64/ld-linux-x86-64.so.2
LIBDIR_REL=usr/lib/x86_64-linux-gnu

# run_in PREFIX BINARY ARGS... — run a prefix binary through its own ld.so.
run_in() {
	local p="$1" b="$2"
	shift 2
	"$p/$LDSO_REL" --library-path "$p/$LIBDIR_REL" "$p/usr/bin/$b" "$@"
}

glslang_version() { # prints e.g. 15.2.0, or nothing
	run_in "$1" glslangValidator --version 2>/dev/null |
		sed -n 's/^Glslang Version: [0-9]*:\([0-9.]*\).*/\1/p' | head -n1
}

works() { # works PREFIX: true when PREFIX holds a runnable glslang $WANT_MAJOR
	local v
	[ -x "$1/$LDSO_REL" ] && [ -e "$1/usr/bin/glslang" ] || return 1
	v="$(glslang_version "$1")"
	[ "${v%%.*}" = "$WANT_MAJOR" ] && run_in "$1" spirv-val --version >/dev/null 2>&1
}

# Find a Debian mirror URL from the system's apt sources (one-line *.list
# and deb822 *.sources). Prefer an entry whose suite is the release codename
# itself (not -security/-updates).
find_mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then
		echo "${DEBIAN_MIRROR%/}"
		return
	fi
	local codename
	codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
	[ -n "$codename" ] || codename=bookworm
	local files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	local f
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ "${#files[@]}" -gt 0 ] || return 0
	awk -v cn="$codename" '
		function emit(u) { sub(/\/+$/, "", u); print u; done = 1; exit }
		function check(   a) {
			if (types ~ /[ \t]deb([ \t]|$)/ && suites ~ ("[ \t]" cn "[ \t]") && uris != "") {
				split(uris, a, /[ \t]+/); emit(a[1])
			}
			uris = ""; suites = ""; types = ""
		}
		FNR == 1 { if (prev ~ /\.sources$/) check(); prev = FILENAME }
		/^[ \t]*#/ { next }
		FILENAME ~ /\.sources$/ {
			if ($0 ~ /^[ \t]*$/) { check(); next }
			if (tolower($1) == "types:")  { types = $0 " " }
			if (tolower($1) == "uris:")   { uris = $0; sub(/^[^:]*:[ \t]*/, "", uris) }
			if (tolower($1) == "suites:") { suites = " " $0 " " }
			next
		}
		$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i+1) == cn) emit($i)
		}
		END { if (!done && prev ~ /\.sources$/) check() }
	' "${files[@]}"
}

write_wrappers() {
	local p="$1" rel w
	# Relative path from the wrapper dir to the prefix when possible, so the
	# tree keeps working when the checkout is copied or moved.
	rel="$(realpath -m --relative-to="$BINDIR" "$p")"
	local pline
	# shellcheck disable=SC2016
	pline='p="$(cd "$(dirname "$0")" && pwd)/'"$rel"'"'
	case "$rel" in ../../* | /*) pline="p=\"$p\"" ;; esac
	for w in "${WRAPPERS[@]}"; do
		local tgt="$w"
		[ "$w" = glslangValidator ] && tgt=glslang
		[ -e "$p/usr/bin/$tgt" ] || die "binary $tgt missing from $p/usr/bin"
		cat >"$BINDIR/$w.tmp" <<EOF
#!/bin/sh
# Generated by scripts/install-glslang.sh — runs trixie's $w through its
# private glibc (the system's glibc is too old).
$pline
exec "\$p/$LDSO_REL" --library-path "\$p/$LIBDIR_REL" "\$p/usr/bin/$tgt" "\$@"
EOF
		chmod 755 "$BINDIR/$w.tmp"
		mv -f "$BINDIR/$w.tmp" "$BINDIR/$w"
	done
}

self_test() {
	local t
	t="$(mktemp -d "${TMPDIR:-/tmp}/glslang-selftest.XXXXXX")"
	cat >"$t/cm.comp" <<'EOF'
#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(std430, binding = 0) readonly buffer A { float16_t a[]; };
layout(std430, binding = 1) writeonly buffer C { float c[]; };
void main() {
	coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma;
	coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb;
	coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc =
		coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
	coopMatLoad(ma, a, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
	coopMatLoad(mb, a, 256, 16, gl_CooperativeMatrixLayoutColumnMajor);
	acc = coopMatMulAdd(ma, mb, acc);
	coopMatStore(acc, c, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
EOF
	local i
	for i in 1 2; do
		"$BINDIR/glslangValidator" --quiet -V -g0 --target-env vulkan1.3 \
			"$t/cm.comp" -o "$t/cm$i.spv" >"$t/log" 2>&1 ||
			{ cat "$t/log" >&2; die "self-test: GL_KHR_cooperative_matrix shader failed to compile"; }
	done
	"$BINDIR/spirv-val" --target-env vulkan1.3 "$t/cm1.spv" ||
		die "self-test: spirv-val rejected the coopmat shader"
	"$BINDIR/spirv-dis" "$t/cm1.spv" -o "$t/cm1.spvasm" || die "self-test: spirv-dis failed"
	grep -q 'OpCapability CooperativeMatrixKHR' "$t/cm1.spvasm" ||
		die "self-test: spirv-dis output lacks OpCapability CooperativeMatrixKHR"
	cmp -s "$t/cm1.spv" "$t/cm2.spv" || die "self-test: compiling twice gave different bytes"
	rm -rf "$t"
	log "self-test OK (GL_KHR_cooperative_matrix compiles, validates under vulkan1.3, output is deterministic)"
}

print_versions() {
	log "glslangValidator: $("$BINDIR/glslangValidator" --version 2>&1 | head -n1)"
	log "spirv-val:        $("$BINDIR/spirv-val" --version 2>&1 | head -n1)"
	log "spirv-opt:        $("$BINDIR/spirv-opt" --version 2>&1 | head -n1)"
	[ -f "$PREFIX/.packages" ] && log "packages: $(tr '\n' ' ' <"$PREFIX/.packages")"
	log "prefix: $PREFIX"
	log "wrappers: $BINDIR/{$(IFS=,; echo "${WRAPPERS[*]}")}"
}

if [ "${GLSLANG_FORCE:-0}" != 1 ] && works "$PREFIX"; then
	log "glslang $(glslang_version "$PREFIX") already installed in $PREFIX"
	write_wrappers "$PREFIX"
	print_versions
	self_test
	exit 0
fi

[ "$(id -u)" = 0 ] || log "warning: not root; apt-get may refuse to run (it runs with private dirs only)"

MIRROR="$(find_mirror || true)"
[ -n "$MIRROR" ] || die "could not find a Debian mirror in /etc/apt/sources.list{,.d/*}; set DEBIAN_MIRROR=<url>"
case "$MIRROR" in
	http://* | https://*) ;;
	*) die "unsupported mirror URI '$MIRROR' from the system sources; set DEBIAN_MIRROR=<http(s) url>" ;;
esac

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || [ -f /etc/apt/trusted.gpg.d/debian-archive-trixie-stable.asc ] ||
	log "warning: no trixie archive key found; install a newer debian-archive-keyring if apt reports NO_PUBKEY"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/install-glslang.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{lists/partial,cache/archives/partial,parts,prefs,debs}
: >"$WORK/status"
echo "deb [arch=amd64 signed-by=$KEYRING target=Packages] $MIRROR $SUITE main" >"$WORK/sources.list"

APT_OPTS=(
	-o "Dir::Etc::SourceList=$WORK/sources.list"
	-o "Dir::Etc::SourceParts=$WORK/parts"
	-o "Dir::Etc::Preferences=/dev/null"
	-o "Dir::Etc::PreferencesParts=$WORK/prefs"
	-o "Dir::State::Lists=$WORK/lists"
	-o "Dir::State::status=$WORK/status"
	-o "Dir::Cache=$WORK/cache"
	-o "Dir::Cache::pkgcache="
	-o "Dir::Cache::srcpkgcache="
	-o "APT::Architectures::=amd64"
	-o "Acquire::Languages=none"
	-o "APT::Sandbox::User=root"
)

log "fetching $SUITE package lists from $MIRROR (private apt dirs: $WORK)"
apt-get -q "${APT_OPTS[@]}" update >"$WORK/update.log" 2>&1 || {
	cat "$WORK/update.log" >&2
	die "apt-get update for $SUITE failed"
}
if grep -qE '^E: |^W: (Failed to fetch|GPG error|.*NO_PUBKEY|.*not signed)' "$WORK/update.log" ||
	! compgen -G "$WORK/lists/*_dists_${SUITE}_main_binary-amd64_Packages*" >/dev/null; then
	cat "$WORK/update.log" >&2
	die "apt-get update for $SUITE from $MIRROR failed (see above; NO_PUBKEY means debian-archive-keyring lacks the $SUITE keys)"
fi
grep -E '^W: ' "$WORK/update.log" >&2 || true

# Resolve the Depends/PreDepends closure of the top-level packages.
mapfile -t PKGS < <(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances "${TOP_PKGS[@]}" |
	grep -E '^[a-z0-9]' | grep -v '^<' | sort -u)
[ "${#PKGS[@]}" -ge "${#TOP_PKGS[@]}" ] || die "apt-cache could not resolve ${TOP_PKGS[*]} in $SUITE"
for need in glslang-tools spirv-tools libc6 libstdc++6 libgcc-s1; do
	printf '%s\n' "${PKGS[@]}" | grep -qx "$need" || die "dependency resolution did not include $need (got: ${PKGS[*]})"
done
cand="$(apt-cache "${APT_OPTS[@]}" policy glslang-tools | sed -n 's/^ *Candidate: //p')"
if [ "$cand" != "$TESTED_GLSLANG_PKG" ]; then
	log "WARNING: $SUITE now has glslang-tools $cand, this script was tested with $TESTED_GLSLANG_PKG;"
	log "WARNING: compiled SPIR-V may differ from the committed shaders/spv (check with scripts/check-shaders.sh)"
fi
log "downloading: ${PKGS[*]}"
(cd "$WORK/debs" && apt-get -q "${APT_OPTS[@]}" download "${PKGS[@]}") >"$WORK/download.log" 2>&1 || {
	cat "$WORK/download.log" >&2
	die "apt-get download failed"
}

STAGE="$PREFIX.new.$$"
rm -rf "$STAGE"
mkdir -p "$STAGE"
: >"$STAGE/.packages"
for deb in "$WORK"/debs/*.deb; do
	dpkg -x "$deb" "$STAGE" || die "dpkg -x $(basename "$deb") failed"
	dpkg-deb -f "$deb" Package Version | paste -sd= | sed 's/^Package: //; s/=Version: /=/' >>"$STAGE/.packages"
done
sort -o "$STAGE/.packages" "$STAGE/.packages"
# Docs, manpages, headers and static libs are not needed.
rm -rf "$STAGE/usr/share/doc" "$STAGE/usr/share/man" "$STAGE/usr/share/lintian" \
	"$STAGE/usr/include" "$STAGE/$LIBDIR_REL"/*.a "$STAGE/$LIBDIR_REL/cmake" "$STAGE/$LIBDIR_REL/pkgconfig"
echo "$MIRROR $SUITE" >"$STAGE/.source"

works "$STAGE" || {
	run_in "$STAGE" glslangValidator --version >&2 || true
	rm -rf "$STAGE"
	die "extracted glslang does not run through its private ld.so (or is not version $WANT_MAJOR)"
}
rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX"
write_wrappers "$PREFIX"
log "installed into $PREFIX"
print_versions
self_test
