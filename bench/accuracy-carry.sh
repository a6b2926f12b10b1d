#!/usr/bin/env bash
# bench/accuracy-carry.sh — builds, HERE (Go and the shared data needed),
# what bench/accuracy-device.sh needs on the device machine, in
# .devcarry/acc (about 51 MiB; carry it with .gl):
#
#   shareprefill          the bench build (go build -buildvcs=true -tags plots -trimpath -ldflags='-s -w')
#   COMMIT                git rev-parse --short HEAD (+dirty)
#   bench-lm-8k.tar.xz    the model (51 MiB of bf16 shards; 36 MiB in xz)
#   heldout.json          its held-out documents (KJV and Austen chapters,
#                         Go files of go1.26.8) and needle words, from
#                         training/holdout.txt: shareprefill bench accuracy --write-heldout
#   calib.txt             calibration text for the extra cluster files
#                         (Austen's Persuasion: training text, not held out)
#
# Usage: bench/accuracy-carry.sh [SHARED]   (SHARED defaults to ../shared)
set -euo pipefail
SH=${1:-../shared}
go version | grep -q "go1.26.8" || echo "accuracy-carry.sh: warning: the held-out Go files are those of go1.26.8; this is $(go version)" >&2
D=.devcarry/acc
mkdir -p $D
go build -buildvcs=true -tags plots -trimpath -ldflags='-s -w' -o $D/shareprefill ./cmd/shareprefill
c=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] && c=$c+dirty
echo "$c" > $D/COMMIT
[ -f $D/bench-lm-8k.tar.xz ] || XZ_OPT=-T0 tar -C "$SH/models" -cJf $D/bench-lm-8k.tar.xz --exclude=training bench-lm-8k
$D/shareprefill bench accuracy --write-heldout $D/heldout.json --holdout-list "$SH/models/bench-lm-8k/training/holdout.txt" \
	--corpora "$SH/data/corpora" --goroot "$(go env GOROOT)"
cp "$SH/data/corpora/austen/persuasion.txt" $D/calib.txt
du -sh $D
