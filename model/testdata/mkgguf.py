#!/usr/bin/python3
"""Converts a Hugging Face Llama checkpoint to GGUF with llama.cpp's gguf-py
(test tooling: an independent writer for the GGUF tests of model/gguf,
model and tokenizer; the product never runs it).

    PYTHONPATH=/path/to/llama.cpp/gguf-py /usr/bin/python3 model/testdata/mkgguf.py \
        SRC_DIR OUT.gguf [--outtype f16|q8_0] [--spm tokenizer.model]

It does what convert_hf_to_gguf.py does for LlamaForCausalLM, without torch:
llama tensor names, the Q/K rows permuted for ggml's RoPE (LlamaModel.permute),
norms in F32; --outtype q8_0 quantizes every matrix whose rows are a multiple
of 32 to Q8_0 (gguf-py's quantizer, bit-exact with ggml's) and keeps the
others F16, as llama-quantize falls back. With --spm, the vocabulary comes
from a SentencePiece model file (tokenizer.ggml.model "llama": pieces, scores
and piece types, as _set_vocab_sentencepiece); without it from tokenizer.json
as a byte-level BPE (model "gpt2", pre-tokenizer "llama-bpe").

model/testdata/stories260k-q8_0.gguf was made from the shared data with
    mkgguf.py stories260K-hf stories260k-q8_0.gguf --outtype q8_0 --spm stories260K-llama2c/tok512.model
"""
import argparse
import json
import struct
import sys
import types
from pathlib import Path

try:
    import yaml  # noqa: F401  (gguf-py imports it; it is not needed here)
except ImportError:
    sys.modules["yaml"] = types.ModuleType("yaml")

import numpy as np
import gguf


def read_safetensors(src: Path):
    out = {}
    for f in sorted(src.glob("*.safetensors")):
        raw = f.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        hdr = json.loads(raw[8:8 + n])
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            s, e = v["data_offsets"]
            b = np.frombuffer(raw[8 + n + s:8 + n + e], dtype=np.uint8)
            dt = v["dtype"]
            if dt == "F32":
                a = b.view(np.float32)
            elif dt == "F16":
                a = b.view(np.float16).astype(np.float32)
            elif dt == "BF16":
                a = (b.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                raise ValueError(f"{k}: dtype {dt}")
            out[k] = a.reshape(v["shape"])
    return out


def permute(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def proto_fields(buf):
    """(field, wire type, value) of a protobuf message; value is bytes for
    length-delimited fields, an int for varints, raw bytes for fixed32."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield field, wt, v


def sentencepiece(path: Path):
    """pieces, scores, types and add_dummy_prefix of a sentencepiece ModelProto."""
    pieces, scores, kinds, add_prefix = [], [], [], True
    for field, _, v in proto_fields(path.read_bytes()):
        if field == 1:  # SentencePiece
            piece, score, kind = "", 0.0, 1
            for f2, _, v2 in proto_fields(v):
                if f2 == 1:
                    piece = v2.decode("utf-8")
                elif f2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    kind = v2
            pieces.append(piece)
            scores.append(score)
            kinds.append(kind)
        elif field == 3:  # NormalizerSpec
            for f2, _, v2 in proto_fields(v):
                if f2 == 3:
                    add_prefix = bool(v2)
    return pieces, scores, kinds, add_prefix


def add_vocab(w, src: Path, cfg: dict, spm: Path | None):
    tcfg = {}
    if (src / "tokenizer_config.json").exists():
        tcfg = json.loads((src / "tokenizer_config.json").read_text())
    if spm is not None:
        pieces, scores, kinds, add_prefix = sentencepiece(spm)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(pieces)
        w.add_token_scores(scores)
        w.add_token_types(kinds)
        w.add_add_space_prefix(add_prefix)
        vocab = {p: i for i, p in enumerate(pieces)}
        unk = [i for i, k in enumerate(kinds) if k == gguf.TokenType.UNKNOWN]
        if unk:
            w.add_unk_token_id(unk[0])
    else:
        tj = json.loads((src / "tokenizer.json").read_text())
        vocab = dict(tj["model"]["vocab"])
        added = {t["content"]: t for t in tj.get("added_tokens", [])}
        for t in added.values():
            vocab.setdefault(t["content"], t["id"])
        rev = {i: t for t, i in vocab.items()}
        n = max(cfg["vocab_size"], max(vocab.values()) + 1)
        toks, kinds = [], []
        for i in range(n):
            t = rev.get(i)
            if t is None:
                toks.append(f"[PAD{i}]"); kinds.append(gguf.TokenType.UNUSED)
            elif t in added:
                toks.append(t)
                kinds.append(gguf.TokenType.CONTROL if added[t].get("special") else gguf.TokenType.USER_DEFINED)
            else:
                toks.append(t); kinds.append(gguf.TokenType.NORMAL)
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        w.add_token_list(toks)
        w.add_token_types(kinds)
        w.add_token_merges(merges)

    def named(key):
        v = tcfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        return vocab.get(v) if v is not None else None
    bos = named("bos_token") if named("bos_token") is not None else cfg.get("bos_token_id")
    eos = named("eos_token") if named("eos_token") is not None else cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if bos is not None:
        w.add_bos_token_id(int(bos))
    if eos is not None:
        w.add_eos_token_id(int(eos))
    if "add_bos_token" in tcfg:
        w.add_add_bos_token(bool(tcfg["add_bos_token"]))
    if "add_eos_token" in tcfg:
        w.add_add_eos_token(bool(tcfg["add_eos_token"]))


def convert(src: Path, out: Path, outtype: str, spm: Path | None):
    cfg = json.loads((src / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"], cfg["architectures"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(src.name)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if outtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    add_vocab(w, src, cfg, spm)

    st = read_safetensors(src)
    plan = [("token_embd.weight", "model.embed_tokens.weight")]
    for i in range(cfg["num_hidden_layers"]):
        b, h = f"blk.{i}.", f"model.layers.{i}."
        plan += [
            (b + "attn_norm.weight", h + "input_layernorm.weight"),
            (b + "attn_q.weight", h + "self_attn.q_proj.weight"),
            (b + "attn_k.weight", h + "self_attn.k_proj.weight"),
            (b + "attn_v.weight", h + "self_attn.v_proj.weight"),
            (b + "attn_output.weight", h + "self_attn.o_proj.weight"),
            (b + "ffn_norm.weight", h + "post_attention_layernorm.weight"),
            (b + "ffn_gate.weight", h + "mlp.gate_proj.weight"),
            (b + "ffn_up.weight", h + "mlp.up_proj.weight"),
            (b + "ffn_down.weight", h + "mlp.down_proj.weight"),
        ]
    plan.append(("output_norm.weight", "model.norm.weight"))
    if "lm_head.weight" in st and not cfg.get("tie_word_embeddings", False):
        plan.append(("output.weight", "lm_head.weight"))
    for name, hf in plan:
        a = np.ascontiguousarray(st[hf], dtype=np.float32)
        if name.endswith("attn_q.weight"):
            a = permute(a, heads)
        elif name.endswith("attn_k.weight"):
            a = permute(a, kv_heads)
        if a.ndim == 1:
            w.add_tensor(name, a)
        elif outtype == "q8_0" and a.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=["f16", "q8_0"], default="f16")
    ap.add_argument("--spm", type=Path)
    a = ap.parse_args()
    convert(a.src, a.out, a.outtype, a.spm)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
