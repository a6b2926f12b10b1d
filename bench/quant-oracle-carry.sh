#!/usr/bin/env bash
# bench/quant-oracle-carry.sh — builds, HERE (Go, g++ and the shared data
# needed), what bench/quant-oracle-device.sh needs on the device machine, in
# .devcarry/lcgpu (about 39 MiB; carry it with .gl, .devcarry/llamacpp and
# .devcarry/llamacpp-tools):
#
#   llamacpp_oracle       bench/peers/llamacpp_oracle.cpp compiled against the
#                         kit's prebuilt libraries (stripped; it needs them
#                         beside it at run time: the device script unpacks the kit)
#   shareprefill.xz       our binary (go build -buildvcs=true -trimpath -ldflags='-s -w'), xz-compressed
#   COMMIT                git rev-parse --short HEAD (+dirty)
#   bench-lm-8k.tar.xz    the model (reused from .devcarry/bench or .devcarry/acc if there)
#   prompts/              the two prompts of bench/peers/llamacpp-oracle.sh (Persuasion
#                         lines 200–226, KJV lines 1000–1007)
#   mansfieldpark-head.txt  the head of Mansfield Park, enough for the perplexity
#                         windows ($PPL_BYTES bytes, cut at a line end)
#
# Usage: bench/quant-oracle-carry.sh      (from the repository root)
# Env: KIT (default .devcarry/llamacpp), SRC (the kit's llama.cpp source tree;
# default /tmp/llamacpp-dl/src), SHARED (default ../shared), PPL_BYTES
# (default 100000: about 27,000 tokens, for 40 windows of 512).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
KIT=${KIT:-.devcarry/llamacpp}
SRC=${SRC:-/tmp/llamacpp-dl/src}
SHARED=${SHARED:-../shared}
PPL_BYTES=${PPL_BYTES:-100000}
D=.devcarry/lcgpu
CORPORA=$SHARED/data/corpora

die() { echo "quant-oracle-carry: $*" >&2; exit 1; }
[ -f "$KIT/bin.tar.xz" ] || die "KIT=$KIT has no bin.tar.xz (build the kit with ../shared/peers/llamacpp/build.sh)"
[ -f "$SRC/include/llama.h" ] || die "SRC=$SRC is not the kit's llama.cpp source tree (no include/llama.h)"
for f in austen/persuasion.txt kjv/kjv.txt austen/mansfieldpark.txt; do
	[ -f "$CORPORA/$f" ] || die "SHARED=$SHARED has no data/corpora/$f"
done
[ -f "$SHARED/models/bench-lm-8k/config.json" ] || die "SHARED=$SHARED has no models/bench-lm-8k"
mkdir -p "$D/prompts"

# 1. the oracle, against the kit's libraries (unpacked in a scratch folder).
LIB=$(mktemp -d)
trap 'rm -rf "$LIB"' EXIT
tar -xJf "$KIT/bin.tar.xz" -C "$LIB"
REL=$(find "$LIB" -maxdepth 1 -name 'libllama.vulkan.*.so' -printf '%f\n' | sed -n 's/^libllama\.vulkan\.\(.*\)\.so$/\1/p')
[ -n "$REL" ] || die "$KIT/bin.tar.xz has no libllama.vulkan.*.so"
echo "== compiling llamacpp_oracle against the kit ($REL)"
# shellcheck disable=SC2016 # $ORIGIN is the linker's, not the shell's
g++ -std=c++17 -O2 -DNDEBUG -I "$SRC/include" -I "$SRC/ggml/include" -o "$D/llamacpp_oracle" \
	bench/peers/llamacpp_oracle.cpp "$LIB/libllama.vulkan.$REL.so" "$LIB/libggml.vulkan.$REL.so" "$LIB/libggml-base.so" \
	-Wl,-rpath,'$ORIGIN' -pthread
strip "$D/llamacpp_oracle"

# 2. our binary.
echo "== building shareprefill"
go build -buildvcs=true -trimpath -ldflags='-s -w' -o "$D/shareprefill" ./cmd/shareprefill
xz -9 -T0 -f "$D/shareprefill"
c=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && c=$c+dirty
echo "$c" >"$D/COMMIT"

# 3. the model.
if [ ! -f "$D/bench-lm-8k.tar.xz" ]; then
	for t in .devcarry/bench/bench-lm-8k.tar.xz .devcarry/acc/bench-lm-8k.tar.xz; do
		[ -f "$t" ] && { cp "$t" "$D/"; break; }
	done
fi
[ -f "$D/bench-lm-8k.tar.xz" ] ||
	XZ_OPT=-T0 tar -C "$SHARED/models" -cJf "$D/bench-lm-8k.tar.xz" --exclude=training bench-lm-8k

# 4. the prompts (the same line ranges as bench/peers/llamacpp-oracle.sh) and the perplexity text.
sed -n '200,226p' "$CORPORA/austen/persuasion.txt" >"$D/prompts/persuasion.txt"
sed -n '1000,1007p' "$CORPORA/kjv/kjv.txt" >"$D/prompts/kjv.txt"
head -c "$PPL_BYTES" "$CORPORA/austen/mansfieldpark.txt" | sed '$d' >"$D/mansfieldpark-head.txt"
du -sh "$D" && ls -l "$D"
