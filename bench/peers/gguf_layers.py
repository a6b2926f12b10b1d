#!/usr/bin/env python3
"""Write a GGUF file with more (or fewer) decoder layers by repeating those of another.

  gguf_layers.py IN.gguf OUT.gguf --layers N

Layer i of OUT is a byte copy of layer i mod L of IN (L = IN's block count);
every other tensor and every metadata value is copied unchanged, except
<arch>.block_count, which becomes N. Quantized blocks are copied as they are, so a
2-layer Q4_K_M file made by llama-quantize becomes an N-layer one whose layers
keep the types llama-quantize chose for layers 0 and 1. For Llama-3-8B's shapes
and N = 32 that is the same number of Q4_K and Q6_K matrices as llama-quantize's
own 32-layer Q4_K_M mix (attn_v and ffn_down take Q6_K in 16 of the 32 layers),
so the file has the real model's size without quantizing 8 billion weights.
It is for speed and memory runs only: the layers are random copies.

Standard library only (GGUF version 2 or 3, little-endian).
"""
from __future__ import annotations

import argparse
import os
import re
import struct
import sys

MAGIC = b"GGUF"
# GGUF metadata value types: fixed sizes of the scalar ones.
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY, UINT32, UINT64 = 8, 9, 4, 10
BLOCK = re.compile(rb"^blk\.(\d+)\.(.+)$")


class Reader:
    def __init__(self, f):
        self.f = f

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise ValueError(f"truncated at byte {self.f.tell()}: wanted {n} more")
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.read(8))[0]

    def string(self) -> bytes:
        return self.read(self.u64())

    def value(self, typ: int) -> bytes:
        """The raw bytes of one value of type typ."""
        if typ in SCALAR:
            return self.read(SCALAR[typ])
        if typ == STRING:
            s = self.string()
            return struct.pack("<Q", len(s)) + s
        if typ == ARRAY:
            et, n = self.u32(), self.u64()
            return struct.pack("<IQ", et, n) + b"".join(self.value(et) for _ in range(n))
        raise ValueError(f"unknown GGUF value type {typ}")


def pack_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def copy_range(src, dst, off: int, n: int):
    """Copy n bytes of src from off to dst's current position."""
    src.seek(off)
    left = n
    while left:
        b = src.read(min(left, 64 << 20))
        if not b:
            raise ValueError(f"truncated tensor data at byte {src.tell()}")
        dst.write(b)
        left -= len(b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, required=True, help="decoder layers of OUT (≥ 1)")
    a = ap.parse_args(argv)
    if a.layers < 1:
        ap.error(f"--layers {a.layers}: want ≥ 1")

    with open(a.src, "rb") as f:
        r = Reader(f)
        if r.read(4) != MAGIC:
            raise SystemExit(f"{a.src}: not a GGUF file")
        version = r.u32()
        if version not in (2, 3):
            raise SystemExit(f"{a.src}: GGUF version {version}: want 2 or 3")
        n_tensors, n_kv = r.u64(), r.u64()
        kvs = []  # (key, type, raw value)
        alignment, arch = 32, None
        for _ in range(n_kv):
            key = r.string()
            typ = r.u32()
            raw = r.value(typ)
            kvs.append((key, typ, raw))
            if key == b"general.alignment" and typ == UINT32:
                alignment = struct.unpack("<I", raw)[0]
            if key == b"general.architecture" and typ == STRING:
                arch = raw[8:]
        if arch is None:
            raise SystemExit(f"{a.src}: no general.architecture")
        bc_key = arch + b".block_count"
        infos = []  # (name, dims, type, offset)
        for _ in range(n_tensors):
            name = r.string()
            dims = [r.u64() for _ in range(r.u32())]
            infos.append((name, dims, r.u32(), r.u64()))
        data0 = align(f.tell(), alignment)
        size = os.fstat(f.fileno()).st_size

        # Each tensor's stored size: up to the next tensor's offset (aligned), or the file's end.
        offs = sorted({off for _, _, _, off in infos}) + [size - data0]
        span = {o: offs[i + 1] - o for i, o in enumerate(offs[:-1])}
        layers = {}
        head, tail = [], []  # tensors before and after the blocks, in file order
        for name, dims, typ, off in infos:
            m = BLOCK.match(name)
            if m:
                layers.setdefault(int(m.group(1)), []).append((m.group(2), dims, typ, off))
            elif layers:
                tail.append((name, dims, typ, off))
            else:
                head.append((name, dims, typ, off))
        n_src = len(layers)
        if n_src == 0 or sorted(layers) != list(range(n_src)):
            raise SystemExit(f"{a.src}: want layers blk.0 … blk.N-1, found {sorted(layers)[:8]}")
        blocks = []
        for i in range(a.layers):
            for suffix, dims, typ, off in layers[i % n_src]:
                blocks.append((b"blk.%d." % i + suffix, dims, typ, off))
        plan = head + blocks + tail

        if not any(k == bc_key for k, _, _ in kvs):
            raise SystemExit(f"{a.src}: no {bc_key.decode()}")
        tmp = a.out + ".part"
        with open(tmp, "wb") as o:
            o.write(MAGIC + struct.pack("<IQQ", version, len(plan), len(kvs)))
            for key, typ, raw in kvs:
                if key == bc_key:
                    raw = struct.pack("<Q" if typ == UINT64 else "<I", a.layers)
                o.write(pack_string(key) + struct.pack("<I", typ) + raw)
            rel = 0
            for name, dims, typ, off in plan:
                o.write(pack_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims))
                o.write(struct.pack("<IQ", typ, rel))
                rel += align(span[off], alignment)
            o.write(b"\0" * (align(o.tell(), alignment) - o.tell()))
            for _, _, _, off in plan:
                copy_range(f, o, data0 + off, span[off])
                o.write(b"\0" * (align(span[off], alignment) - span[off]))
        os.replace(tmp, a.out)
    print(f"wrote {a.out}: {a.layers} layers from {n_src} of {a.src} ({os.path.getsize(a.out) / 2**30:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
