#!/usr/bin/env python3
"""Write the case.json of an oracle case from llama.cpp's outputs.

Used by bench/peers/llamacpp-oracle.sh; the format is the one
`shareprefill bench accuracy --oracle DIR` reads (bench/harness/oracle.go,
OracleCase). Standard library only.

  llamacpp_cases.py logits DIR NAME SHAPE MODEL STRIDE
      DIR holds ids.json, greedy.json and ref_logits.f32 (every position)
      from `llamacpp_oracle logits`, and text.txt; keeps the logits of every
      STRIDE-th position and the last (STRIDE 1: all).
  llamacpp_cases.py ppl DIR NAME SHAPE MODEL LOG CTX CHUNKS VOCAB
      DIR holds ids.json (`llamacpp_oracle tokenize` of text.txt, BOS first);
      LOG is llama-perplexity's output with --ppl-output-type 1 for CHUNKS
      windows of CTX tokens. Cuts ids.json to CHUNKS*CTX tokens and stores
      each window's summed NLL.
  llamacpp_cases.py pplj DIR NAME SHAPE MODEL PPL_JSON CTX CHUNKS VOCAB
      The same from `llamacpp_oracle ppl`'s JSON (window_nll, ppl) instead
      of llama-perplexity's log (bench/quant-oracle-device.sh).

MODEL is the GGUF file relative to DIR.
"""
import json
import os
import re
import sys


def logits_case(d, name, shape, model, stride):
    stride = int(stride)
    ids = json.load(open(os.path.join(d, "ids.json")))
    greedy = json.load(open(os.path.join(d, "greedy.json")))
    path = os.path.join(d, "ref_logits.f32")
    raw = open(path, "rb").read()
    if len(raw) % (4 * len(ids)):
        sys.exit("%s: %d bytes is not %d rows of float32" % (path, len(raw), len(ids)))
    vocab = len(raw) // (4 * len(ids))
    pos = list(range(0, len(ids), stride))
    if pos[-1] != len(ids) - 1:
        pos.append(len(ids) - 1)
    if len(pos) < len(ids):
        row = 4 * vocab
        open(path, "wb").write(b"".join(raw[p * row:(p + 1) * row] for p in pos))
    case = dict(name=name, kind="llamacpp", shape=shape, n=len(ids), model=model, vocab=vocab,
                positions=pos, nll=False, greedy=greedy, text="text.txt")
    json.dump(case, open(os.path.join(d, "case.json"), "w"), indent=1)


def ppl_case(d, name, shape, model, log, ctx, chunks, vocab):
    ctx, chunks, vocab = int(ctx), int(chunks), int(vocab)
    text = open(log, encoding="utf-8", errors="replace").read()
    # --ppl-output-type 1 prints, per window: its first token's index, the
    # perplexity so far, the mean NLL so far and that mean's standard error.
    means = [float(m) for m in re.findall(r"^\s*\d+\s+[\d.]+\s+([\d.]+)\s+\S+\s*$", text, re.M)]
    if len(means) != chunks:
        sys.exit("%s: %d windows in the log, want %d" % (log, len(means), chunks))
    final = float(re.search(r"Final estimate: PPL = ([\d.]+)", text).group(1))
    first = ctx // 2
    per = ctx - 1 - first  # predictions of positions first .. ctx-2
    cum = [m * per * (k + 1) for k, m in enumerate(means)]
    window_nll = [round(x, 6) for x in [cum[0]] + [cum[k] - cum[k - 1] for k in range(1, len(cum))]]
    write_ppl_case(d, name, shape, model, ctx, chunks, vocab, window_nll, final)


def pplj_case(d, name, shape, model, path, ctx, chunks, vocab):
    ctx, chunks, vocab = int(ctx), int(chunks), int(vocab)
    got = json.load(open(path))
    window_nll = [round(x, 6) for x in got["window_nll"]]
    if len(window_nll) != chunks:
        sys.exit("%s: %d windows, want %d" % (path, len(window_nll), chunks))
    write_ppl_case(d, name, shape, model, ctx, chunks, vocab, window_nll, got["ppl"])


def write_ppl_case(d, name, shape, model, ctx, chunks, vocab, window_nll, final):
    first = ctx // 2
    ids = json.load(open(os.path.join(d, "ids.json")))
    if len(ids) < ctx * chunks:
        sys.exit("%s: %d tokens, fewer than %d windows of %d" % (d, len(ids), chunks, ctx))
    ids = ids[:ctx * chunks]
    json.dump(ids, open(os.path.join(d, "ids.json"), "w"))
    case = dict(name=name, kind="llamacpp", shape=shape, n=len(ids), model=model, vocab=vocab, positions=[],
                nll=False, text="text.txt",
                ppl=dict(window=ctx, first=first, bos=ids[0], window_nll=window_nll, ref_ppl=final))
    json.dump(case, open(os.path.join(d, "case.json"), "w"), indent=1)
    print("%s: perplexity %.4f over %d windows of %d tokens" % (name, final, chunks, ctx))


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "logits":
        logits_case(*sys.argv[2:])
    elif len(sys.argv) == 10 and sys.argv[1] == "ppl":
        ppl_case(*sys.argv[2:])
    elif len(sys.argv) == 10 and sys.argv[1] == "pplj":
        pplj_case(*sys.argv[2:])
    else:
        sys.exit(__doc__)
