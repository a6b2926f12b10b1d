#!/bin/sh
# Encodes the same text with the same tokenizer.json with shareprefill's Go
# tokenizer and with @lenml/tokenizers (transformers.js port) on Node, each
# on one core, checks that both give the same ids and prints the speed
# ratio.
#
# usage: bench/tokenizer/run.sh            (Llama 3 tokenizer, KJV Bible)
# env:   TOK=path/tokenizer.json[.gz] TEXT=path/text RUNS=3
#        SHAREPREFILL_SHARED=/path/to/shared (default: ../shared beside the repo)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHAREPREFILL_SHARED:-$root/../shared}
[ -d "$shared/data" ] && shared=$shared/data
TOK=${TOK:-$shared/tokenizers/llama3/tokenizer.json.gz}
TEXT=${TEXT:-$shared/corpora/kjv/kjv.txt}
RUNS=${RUNS:-3}

if [ ! -d "$here/node_modules/@lenml/tokenizers" ]; then
	(cd "$here" && npm install --no-audit --no-fund >/dev/null)
fi
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c 0"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/gobench" ./bench/tokenizer)

echo "== date $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3), node $(node --version)"
echo "== tokenizer $TOK"
echo "== text $TEXT ($(wc -c <"$TEXT") bytes)"
GOMAXPROCS=1 $pin "$tmp/gobench" -tok "$TOK" -text "$TEXT" -runs "$RUNS" -out "$tmp/go.ids" | tee "$tmp/go.txt"
(cd "$here" && $pin node lenml.mjs "$TOK" "$TEXT" "$tmp/js.ids" "$RUNS") | tee "$tmp/js.txt"

n=$(wc -l <"$tmp/go.ids")
if cmp -s "$tmp/go.ids" "$tmp/js.ids"; then
	echo "ids: identical ($n ids)"
else
	line=$(cmp "$tmp/go.ids" "$tmp/js.ids" 2>/dev/null | sed -n 's/.*line \([0-9]*\).*/\1/p')
	line=${line:-1}
	echo "ids: DIFFER at index $((line - 1)): go $(sed -n "${line}p" "$tmp/go.ids") js $(sed -n "${line}p" "$tmp/js.ids") (go $n ids, js $(wc -l <"$tmp/js.ids") ids)"
fi
awk '/^RESULT go/ {gw=$4; gc=$6} /^RESULT lenml/ {jw=$4; jc=$6}
	END {printf "ratio go/lenml: %.1fx by CPU time (%.2f vs %.2f MB/s), %.1fx by wall time (%.2f vs %.2f MB/s)\n", gc/jc, gc, jc, gw/jw, gw, jw}' "$tmp/go.txt" "$tmp/js.txt"
