#!/usr/bin/env bash
# llama.cpp on the CPU as the oracle of shareprefill's GGUF path (issue 27).
#
#   bench/peers/llamacpp-oracle.sh [OUT]        (from the repository root)
#   bench/peers/llamacpp-oracle.sh testdata     (remakes bench/harness/testdata/llamacpp)
#
# Builds, against the llama.cpp kit's prebuilt libraries, llama-quantize and
# llama-perplexity from the kit's matching source tree and our own driver
# bench/peers/llamacpp_oracle.cpp (tokenize; every position's logits and a
# greedy continuation of given ids). Then it converts bench-lm-8k to an f16
# GGUF (the kit's mkgguf.py), quantizes it to each of $TYPES with
# llama-quantize and, for each file, runs on the CPU:
#   - llama-perplexity on $CHUNKS windows of $CTX tokens of $TEXT (its
#     default rule: the text tokenised once with BOS; window w = tokens
#     [w·CTX, (w+1)·CTX) with its first token replaced by BOS; the
#     predictions of positions CTX/2 … CTX−2 scored), per-window NLL kept;
#   - the logits of every position of each prompt in $PROMPTS and a greedy
#     continuation of $GREEDY tokens.
# It writes OUT/cases/, the oracle directory of
# `shareprefill bench accuracy --oracle OUT/cases` (case.json, ids.json,
# ref_logits.f32, greedy_logits.f32, the text; see bench/README.md), and
# OUT/llamacpp.json (versions, commands, perplexities). Models go to
# OUT/models/, tools to OUT/bin/. (The same cases with llama.cpp on a GPU,
# in one device call: bench/quant-oracle-device.sh, whose oracle runs with
# LLAMACPP_ORACLE_NGL layers offloaded; unset here: the CPU alone.)
#
# "testdata" writes instead, for TestRunOracleLlamaCpp, two small cases on
# the committed model/testdata/stories260k-q8_0.gguf (Q8_0): the logits at
# every 8th position and a greedy continuation of 16 tokens of a TinyStories
# prompt, and llama-perplexity on 4 windows of 128 tokens of the TinyStories
# sample.
#
# Env: KIT (the kit of ../shared/peers/llamacpp/build.sh: bin.tar.xz,
# mkgguf.py, gguf-py, VERSION; default .devcarry/llamacpp), SRC (the
# matching llama.cpp source tree; default /tmp/llamacpp-dl/src, where
# build.sh leaves it), MODEL (default ../shared/models/bench-lm-8k), TEXT
# (default ../shared/data/corpora/austen/mansfieldpark.txt), CORPORA
# (default ../shared/data/corpora), TYPES (default "f16 Q8_0 Q4_K_M"),
# CHUNKS (40), CTX (512), GREEDY (32), PY (a python3 with numpy; Debian:
# apt-get install python3-numpy). Needs g++ (C++17), xz, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TESTDATA=
if [ "${1:-}" = testdata ]; then TESTDATA=$ROOT/bench/harness/testdata/llamacpp; shift; fi
OUT=$(mkdir -p "${1:-$ROOT/.devcarry/llamacpp-oracle}" && cd "${1:-$ROOT/.devcarry/llamacpp-oracle}" && pwd)
KIT=${KIT:-$ROOT/.devcarry/llamacpp}
SRC=${SRC:-/tmp/llamacpp-dl/src}
MODEL=${MODEL:-$ROOT/../shared/models/bench-lm-8k}
TEXT=${TEXT:-$ROOT/../shared/data/corpora/austen/mansfieldpark.txt}
CORPORA=${CORPORA:-$ROOT/../shared/data/corpora}
TYPES=${TYPES:-f16 Q8_0 Q4_K_M}
CHUNKS=${CHUNKS:-40}
CTX=${CTX:-512}
GREEDY=${GREEDY:-32}
THREADS=${THREADS:-$(nproc)}

die() { echo "llamacpp-oracle: $*" >&2; exit 1; }
[ -f "$KIT/bin.tar.xz" ] || die "KIT=$KIT has no bin.tar.xz (build the kit with ../shared/peers/llamacpp/build.sh)"
[ -f "$SRC/include/llama.h" ] && [ -d "$SRC/tools/perplexity" ] || die "SRC=$SRC is not the llama.cpp source tree of the kit"
[ -f "$MODEL/config.json" ] || die "MODEL=$MODEL has no config.json"
[ -f "$TEXT" ] || die "TEXT=$TEXT does not exist"
if [ -z "${PY:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
  done
fi
[ -n "${PY:-}" ] || die "no python3 with numpy (Debian: apt-get install python3-numpy; or set PY)"

# 1. tools: the kit's libraries, and the tools compiled from the matching source.
BIN=$OUT/bin
STAMP=$(stat -c %s-%Y "$KIT/bin.tar.xz")
if [ "$(cat "$BIN/.stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$BIN" && mkdir -p "$BIN"
  tar -xJf "$KIT/bin.tar.xz" -C "$BIN"
  echo "$STAMP" > "$BIN/.stamp"
fi
REL=$(ls "$BIN" | sed -n 's/^libllama\.vulkan\.\(.*\)\.so$/\1/p')
[ -n "$REL" ] || die "$KIT/bin.tar.xz has no libllama.vulkan.*.so"
INC=(-I "$SRC/include" -I "$SRC/ggml/include" -I "$SRC/common" -I "$SRC/vendor")
LIBS=("$BIN/libllama-common.so" "$BIN/libllama.vulkan.$REL.so" "$BIN/libggml.vulkan.$REL.so" "$BIN/libggml-base.so" -Wl,-rpath,'$ORIGIN' -pthread)
tool() { # name, sources...
  local name=$1; shift
  local newest
  newest=$(ls -t "$@" "$BIN/.stamp" | head -1)
  [ -x "$BIN/$name" ] && [ "$BIN/$name" -nt "$newest" ] && return
  echo "== compiling $name"
  g++ -std=c++17 -O2 -DNDEBUG "${INC[@]}" -o "$BIN/$name" "$@" "${LIBS[@]}"
}
tool llama-quantize "$SRC/tools/quantize/main.cpp" "$SRC/tools/quantize/quantize.cpp"
tool llama-perplexity "$SRC/tools/perplexity/main.cpp" "$SRC/tools/perplexity/perplexity.cpp"
tool llamacpp_oracle "$ROOT/bench/peers/llamacpp_oracle.cpp"

export LD_LIBRARY_PATH="$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
CASES=$ROOT/bench/peers/llamacpp_cases.py

if [ -n "$TESTDATA" ]; then
  g=$ROOT/model/testdata/stories260k-q8_0.gguf
  rel=../../models/stories260k-q8_0.gguf # the test links the file there
  sample=$CORPORA/tinystories/tinystories_sample.txt
  rm -rf "$TESTDATA" && mkdir -p "$TESTDATA/stories-q8_0-story" "$TESTDATA/stories-q8_0-ppl"
  d=$TESTDATA/stories-q8_0-story
  head -c 300 "$sample" > "$d/text.txt"
  "$BIN/llamacpp_oracle" tokenize "$g" "$d/text.txt" "$d/ids.json"
  "$BIN/llamacpp_oracle" logits "$g" "$d/ids.json" 16 "$d"
  "$PY" "$CASES" logits "$d" stories-q8_0-story "stories260K Q8_0" "$rel" 8
  rm "$d/greedy.json"
  d=$TESTDATA/stories-q8_0-ppl
  cp "$sample" "$d/text.txt"
  "$BIN/llamacpp_oracle" tokenize "$g" "$d/text.txt" "$d/ids.json"
  "$BIN/llama-perplexity" -m "$g" -f "$d/text.txt" -c 128 -b 128 --chunks 4 --ppl-output-type 1 -dev none -ngl 0 \
    -t "$THREADS" > "$OUT/perplexity-stories.log" 2>&1 || die "llama-perplexity failed: $OUT/perplexity-stories.log"
  "$PY" "$CASES" ppl "$d" stories-q8_0-ppl "stories260K Q8_0" "$rel" "$OUT/perplexity-stories.log" 128 4 512
  du -sh "$TESTDATA"
  exit 0
fi

# 2. the GGUF files.
mkdir -p "$OUT/models" "$OUT/cases" "$OUT/logs"
F16=$OUT/models/bench-lm-8k-f16.gguf
[ -f "$F16" ] || "$PY" "$KIT/mkgguf.py" hf "$MODEL" "$F16"
for t in $TYPES; do
  g=$OUT/models/bench-lm-8k-$t.gguf
  [ "$t" = f16 ] || [ -f "$g" ] || "$BIN/llama-quantize" "$F16" "$g" "$t" "$THREADS" > "$OUT/logs/quantize-$t.log" 2>&1 \
    || die "llama-quantize $t failed: $OUT/logs/quantize-$t.log"
done

# 3. the prompts: fixed line ranges of the corpora (none in the perplexity windows).
PROMPTS=$OUT/prompts
mkdir -p "$PROMPTS"
sed -n '200,226p' "$CORPORA/austen/persuasion.txt" > "$PROMPTS/persuasion.txt"
sed -n '1000,1007p' "$CORPORA/kjv/kjv.txt" > "$PROMPTS/kjv.txt"

# 4. llama.cpp's measurements, one case directory each.
summary=()
for t in $TYPES; do
  g=$OUT/models/bench-lm-8k-$t.gguf
  for p in "$PROMPTS"/*.txt; do
    name=$t-$(basename "$p" .txt)
    d=$OUT/cases/$name
    rm -rf "$d" && mkdir -p "$d"
    cp "$p" "$d/text.txt"
    "$BIN/llamacpp_oracle" tokenize "$g" "$d/text.txt" "$d/ids.json" 2>> "$OUT/logs/oracle-$name.log"
    "$BIN/llamacpp_oracle" logits "$g" "$d/ids.json" "$GREEDY" "$d" 2>> "$OUT/logs/oracle-$name.log" \
      || die "llamacpp_oracle logits failed: $OUT/logs/oracle-$name.log"
    "$PY" "$CASES" logits "$d" "$name" "bench-lm-8k $t" "../../models/bench-lm-8k-$t.gguf" 1
    rm "$d/greedy.json"
    vocab=$(sed -n 's/.*"vocab": \([0-9]*\).*/\1/p' "$d/case.json")
  done
  name=$t-ppl
  d=$OUT/cases/$name
  rm -rf "$d" && mkdir -p "$d"
  cp "$TEXT" "$d/text.txt"
  echo "== llama-perplexity $t ($CHUNKS × $CTX tokens)"
  opts=(-c "$CTX" -b "$CTX" --chunks "$CHUNKS" --ppl-output-type 1 -dev none -ngl 0 -t "$THREADS")
  "$BIN/llama-perplexity" -m "$g" -f "$d/text.txt" "${opts[@]}" > "$OUT/logs/perplexity-$t.log" 2>&1 \
    || die "llama-perplexity failed: $OUT/logs/perplexity-$t.log"
  "$BIN/llamacpp_oracle" tokenize "$g" "$d/text.txt" "$d/ids.json" 2>> "$OUT/logs/oracle-$name.log"
  "$PY" "$CASES" ppl "$d" "$name" "bench-lm-8k $t" "../../models/bench-lm-8k-$t.gguf" "$OUT/logs/perplexity-$t.log" "$CTX" "$CHUNKS" "$vocab"
  ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/logs/perplexity-$t.log")
  summary+=("\"$t\": {\"ppl\": $ppl, \"command\": \"llama-perplexity -m bench-lm-8k-$t.gguf -f $(basename "$TEXT") ${opts[*]}\"}")
done

{
  echo "{"
  echo "  \"llama.cpp\": \"$(head -1 "$KIT/VERSION" | sed 's/"/\\"/g')\","
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"host\": \"$(uname -srm), $(nproc) CPUs; llama.cpp on the CPU, $THREADS threads\","
  echo "  \"windows\": \"$CHUNKS × $CTX tokens of $(basename "$TEXT"), llama-perplexity's default rule\","
  echo "  \"types\": {"
  for i in "${!summary[@]}"; do
    sep=,; [ "$i" = $(( ${#summary[@]} - 1 )) ] && sep=
    echo "    ${summary[$i]}$sep"
  done
  echo "  }"
  echo "}"
} > "$OUT/llamacpp.json"
cat "$OUT/llamacpp.json"
