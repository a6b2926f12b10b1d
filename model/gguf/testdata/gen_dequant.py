#!/usr/bin/python3
"""Writes the dequantization test vectors of model/gguf (test tooling only).

For each ggml type, TYPE.bin holds a few blocks of deterministic random bytes
(scales kept finite) plus edge blocks, and TYPE.f32 the little-endian float32
values that llama.cpp's gguf-py (numpy) dequantizes them to. Run from the
repository root with the gguf-py of llama.cpp on the path:

    PYTHONPATH=/path/to/llama.cpp/gguf-py /usr/bin/python3 model/gguf/testdata/gen_dequant.py
"""
import sys
import types
from pathlib import Path

try:
    import yaml  # noqa: F401  (gguf-py imports it; it is not needed here)
except ImportError:
    sys.modules["yaml"] = types.ModuleType("yaml")

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = Path(__file__).resolve().parent / "dequant"
rng = np.random.default_rng(27)


def f16(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8)


def finite_f16(n, scale):
    return f16(rng.standard_normal(n) * scale)


def random_blocks(qtype, n):
    """n blocks of random bytes whose f16 fields are finite numbers."""
    _, size = GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    if qtype in (T.Q8_0, T.Q4_0, T.Q5_0):
        b[:, 0:2] = finite_f16(n, 0.05).reshape(n, 2)
    elif qtype in (T.Q4_K, T.Q5_K):
        b[:, 0:2] = finite_f16(n, 0.01).reshape(n, 2)
        b[:, 2:4] = finite_f16(n, 0.01).reshape(n, 2)
    elif qtype == T.Q6_K:
        b[:, 208:210] = finite_f16(n, 0.01).reshape(n, 2)
    return b


def edge_blocks(qtype):
    """Blocks with extreme scales and all-zero / all-one quants."""
    _, size = GGML_QUANT_SIZES[qtype]
    out = []
    for scale, fill in [(0.0, 0xFF), (-0.0, 0x00), (65504.0, 0xFF), (-65504.0, 0x00),
                        (2.0 ** -24, 0xFF), (1.0, 0x00), (1.0, 0xFF), (-1.0, 0x5A)]:
        b = np.full(size, fill, dtype=np.uint8)
        s = f16([scale])
        if qtype == T.Q6_K:
            b[208:210] = s
        else:
            b[0:2] = s
            if qtype in (T.Q4_K, T.Q5_K):
                b[2:4] = f16([-scale])
        out.append(b)
    return np.stack(out)


def plain(qtype):
    if qtype == T.F32:
        bits = rng.integers(0, 2 ** 32, size=64, dtype=np.uint64).astype(np.uint32)
        edges = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00000001, 0x7F7FFFFF], dtype=np.uint32)
        return np.concatenate([bits, edges]).view(np.uint8)
    if qtype == T.F16:
        v = rng.standard_normal(64).astype(np.float16).view(np.uint16)
        edges = np.array([0, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x03FF, 0x7BFF, 0x7E00, 0x7C01], dtype=np.uint16)
        return np.concatenate([v, edges]).view(np.uint8)
    if qtype == T.BF16:
        bits = rng.integers(0, 2 ** 16, size=64, dtype=np.uint32).astype(np.uint16)
        edges = np.array([0, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001], dtype=np.uint16)
        return np.concatenate([bits, edges]).view(np.uint8)
    raise ValueError(qtype)


def main():
    OUT.mkdir(exist_ok=True)
    for qtype in (T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q5_0, T.Q4_K, T.Q5_K, T.Q6_K):
        if qtype in (T.F32, T.F16, T.BF16):
            raw = plain(qtype)
        else:
            raw = np.concatenate([random_blocks(qtype, 6), edge_blocks(qtype)]).reshape(-1)
        vals = dequantize(raw, qtype).astype(np.float32, copy=False).reshape(-1)
        (OUT / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        (OUT / f"{qtype.name}.f32").write_bytes(vals.astype("<f4").tobytes())
        print(f"{qtype.name}: {raw.size} bytes -> {vals.size} values")


if __name__ == "__main__":
    main()
