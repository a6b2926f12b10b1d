#!/usr/bin/python3
"""Writes the quantization test vectors of model/gguf (test tooling only).

For each type gguf.Quantize encodes, quant/TYPE.f32 holds little-endian
float32 inputs (random blocks at several scales, then edge blocks: zeros,
halves that round away from zero, tiny and huge scales, f16-subnormal
scales) and quant/TYPE.bin the bytes llama.cpp's gguf-py (numpy, bit-exact
with ggml's quantize_row_*_ref) quantizes them to. Run from the repository
root with the gguf-py of llama.cpp on the path:

    PYTHONPATH=/path/to/llama.cpp/gguf-py /usr/bin/python3 model/gguf/testdata/gen_quant.py
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
from gguf.quants import quantize

OUT = Path(__file__).resolve().parent / "quant"
rng = np.random.default_rng(2727)


def blocks_q8_0():
    rows = []
    for scale in (1e-3, 0.02, 1.0, 300.0):
        rows.append(rng.standard_normal((4, 32)) * scale)
    edge = []
    edge.append(np.zeros(32))                       # d = 0: all quants 0
    edge.append(np.arange(32) - 15.5)               # amax 16.5
    h = np.full(32, 0.5)                            # amax 127 -> d = 1: halves
    h[0] = 127.0
    h[1:16] = np.arange(15) + 0.5
    h[16:31] = -(np.arange(15) + 0.5)
    edge.append(h)
    edge.append(np.full(32, -3.0))                  # constant block
    edge.append(rng.standard_normal(32) * 1e-6)     # d is an f16 subnormal
    edge.append(rng.standard_normal(32) * 1e-12)    # d underflows f16 to 0
    big = rng.standard_normal(32) * 1e6
    big[5] = 8.0e6                                  # d near f16's limit
    edge.append(big)
    one = np.zeros(32)
    one[31] = -1e-30                                # one tiny value
    edge.append(one)
    rows.append(np.stack(edge))
    return np.concatenate(rows).astype(np.float32)


def main():
    OUT.mkdir(exist_ok=True)
    for qtype, make in ((T.Q8_0, blocks_q8_0),):
        x = make().reshape(-1)
        raw = quantize(x.reshape(1, -1), qtype).reshape(-1)
        (OUT / f"{qtype.name}.f32").write_bytes(x.astype("<f4").tobytes())
        (OUT / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        print(f"{qtype.name}: {x.size} values -> {raw.size} bytes")


if __name__ == "__main__":
    main()
