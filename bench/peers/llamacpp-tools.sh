#!/usr/bin/env bash
# llama.cpp's llama-quantize and test-backend-ops for the device, as one small
# carry file beside the llama.cpp kit (bench/speed.sh stages quant and
# llamacpp-ops; see bench/README.md "Quantized weights against llama.cpp").
#
#   bench/peers/llamacpp-tools.sh [OUT.tar.xz]    (from the repository root)
#
# Compiles both tools from the kit's matching llama.cpp source tree against
# the kit's prebuilt libraries (the same ABI; the tools add no library), strips
# them and packs them with a VERSION line into OUT (default
# .devcarry/llamacpp-tools/tools.tar.xz, about 1 MiB). On the device, unpack it
# next to the kit's libraries (bench/speed.sh does).
#
# Env: KIT (the kit of ../shared/peers/llamacpp/build.sh; default
# .devcarry/llamacpp), SRC (its llama.cpp source tree; default
# /tmp/llamacpp-dl/src, where build.sh leaves it), WORK (build directory;
# default /tmp/llamacpp-tools). Needs g++ (C++17), xz, binutils (strip).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${KIT:-$ROOT/.devcarry/llamacpp}
SRC=${SRC:-/tmp/llamacpp-dl/src}
WORK=${WORK:-/tmp/llamacpp-tools}
OUTF=${1:-$ROOT/.devcarry/llamacpp-tools/tools.tar.xz}

die() { echo "llamacpp-tools: $*" >&2; exit 1; }
[ -f "$KIT/bin.tar.xz" ] || die "KIT=$KIT has no bin.tar.xz (build the kit with ../shared/peers/llamacpp/build.sh)"
[ -f "$SRC/include/llama.h" ] && [ -f "$SRC/tests/test-backend-ops.cpp" ] && [ -d "$SRC/tools/quantize" ] ||
	die "SRC=$SRC is not the kit's llama.cpp source tree (../shared/peers/llamacpp/build.sh leaves it in /tmp/llamacpp-dl/src)"

LIB=$WORK/lib
TOOLS=$WORK/tools
rm -rf "$LIB" "$TOOLS" && mkdir -p "$LIB" "$TOOLS"
tar -xJf "$KIT/bin.tar.xz" -C "$LIB"
REL=$(ls "$LIB" | sed -n 's/^libllama\.vulkan\.\(.*\)\.so$/\1/p')
[ -n "$REL" ] || die "$KIT/bin.tar.xz has no libllama.vulkan.*.so"
INC=(-I "$SRC/include" -I "$SRC/ggml/include" -I "$SRC/common" -I "$SRC/vendor")
RPATH=(-Wl,-rpath,'$ORIGIN' -pthread)

echo "== compiling llama-quantize"
g++ -std=c++17 -O2 -DNDEBUG "${INC[@]}" -o "$TOOLS/llama-quantize" \
	"$SRC/tools/quantize/main.cpp" "$SRC/tools/quantize/quantize.cpp" \
	"$LIB/libllama-common.so" "$LIB/libllama.vulkan.$REL.so" "$LIB/libggml.vulkan.$REL.so" "$LIB/libggml-base.so" "${RPATH[@]}"
echo "== compiling test-backend-ops (public ggml API only)"
g++ -std=c++17 -O2 -DNDEBUG "${INC[@]}" -o "$TOOLS/test-backend-ops" \
	"$SRC/tests/test-backend-ops.cpp" "$LIB/libggml.vulkan.$REL.so" "$LIB/libggml-base.so" "${RPATH[@]}"
strip "$TOOLS/llama-quantize" "$TOOLS/test-backend-ops"

# The device must provide these symbol versions (the kit needs glibc ≥ 2.34, GLIBCXX ≥ 3.4.30).
for f in "$TOOLS"/*; do objdump -T "$f" | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+'; done | sort -V -u |
	awk -F_ '{m[$1]=$0} END{for(k in m) print "   needs", m[k]}' | sort
{
	echo "llama-quantize and test-backend-ops from $(head -1 "$KIT/VERSION")"
	echo "source HEAD $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown); g++ $(g++ -dumpfullversion) -O2; linked against the kit's libraries ($REL)"
} >"$TOOLS/TOOLS-VERSION"
mkdir -p "$(dirname "$OUTF")"
tar -C "$TOOLS" -cf - . | xz -9 -T2 >"$OUTF.part" && mv "$OUTF.part" "$OUTF"
ls -l "$OUTF"
