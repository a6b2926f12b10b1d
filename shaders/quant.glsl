// quant.glsl: ggml block formats, decoded 8 elements at a time. Included by
// gemv_q.comp, dequant.comp and embed_q.comp (not a module of its own).
//
// The includer defines exactly one of Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K and
// declares the block bytes as a 16-bit view
//     layout(...) readonly buffer ... { uint16_t wq[]; };
// Blocks are byte for byte ggml's (runtime.DType's documentation gives the
// layouts). Every block size is even, so a block starts on a 16-bit boundary
// whatever the row length; the decoders read 16-bit words only.
//
// A block is BE elements in BB bytes, split into BE/8 units of 8 consecutive
// elements; all 8 share one scale. decodeUnit(base, j, q, dd, dm) decodes
// unit j of the block at byte offset base: element 8j+t is
//     dd·q[t] − dm
// where dd is the unit's f32 scale (d, or d·sc for the K-quants) and dm its
// f32 offset (0, or dmin·m for Q4_K/Q5_K), both computed as ggml computes
// them (each product rounded to f32, never fused: precise), and q[t] the
// integer quant less the type's zero point, exactly as a float.

#extension GL_EXT_shader_16bit_storage : require

#if defined(Q8_0)
#define BE 32u
#define BB 34u
#elif defined(Q4_0)
#define BE 32u
#define BB 18u
#elif defined(Q5_0)
#define BE 32u
#define BB 22u
#elif defined(Q4_K)
#define BE 256u
#define BB 144u
#elif defined(Q5_K)
#define BE 256u
#define BB 176u
#elif defined(Q6_K)
#define BE 256u
#define BB 210u
#else
#error "define one of Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K"
#endif

// UPB is the number of 8-element units of a block.
#define UPB (BE / 8u)

// u16at is the 16-bit little-endian word at even byte offset b.
uint u16at(uint b) { return uint(wq[b >> 1]); }

// u32at is the 32-bit little-endian word at even byte offset b.
uint u32at(uint b) { return u16at(b) | (u16at(b + 2u) << 16); }

// byteAt is the byte at offset b.
uint byteAt(uint b) { return (u16at(b & ~1u) >> ((b & 1u) * 8u)) & 0xffu; }

// halfAt widens the f16 at even byte offset b (exact).
float halfAt(uint b) { return unpackHalf2x16(u16at(b)).x; }

// load8 returns the 8 bytes at even byte offset b as two little-endian words.
uvec2 load8(uint b) { return uvec2(u32at(b), u32at(b + 4u)); }

// nib8 spreads the nibbles at bit shift sh (0 or 4) of the 8 bytes w into
// q[0..7].
void nib8(uvec2 w, uint sh, out uint q[8]) {
	[[unroll]] for (uint t = 0u; t < 4u; t++) {
		q[t] = (w.x >> (8u * t + sh)) & 0xfu;
		q[t + 4u] = (w.y >> (8u * t + sh)) & 0xfu;
	}
}

#if defined(Q4_K) || defined(Q5_K)
// kScaleMin unpacks group g's 6-bit scale and min from the 12 scale bytes
// at byte offset s: bytes 0–3 hold scales 0–3, bytes 4–7 mins 0–3, bytes
// 8–11 the low 4 bits of scales and mins 4–7, whose top 2 bits are the top
// bits of bytes 0–3 and 4–7.
void kScaleMin(uint s, uint g, out uint sc, out uint m) {
	if (g < 4u) {
		sc = byteAt(s + g) & 63u;
		m = byteAt(s + g + 4u) & 63u;
	} else {
		const uint lo = byteAt(s + g + 4u);
		sc = (lo & 0xfu) | ((byteAt(s + g - 4u) >> 6) << 4);
		m = (lo >> 4) | ((byteAt(s + g) >> 6) << 4);
	}
}
#endif

void decodeUnit(uint base, uint j, out float q[8], out float dd, out float dm) {
	uint u[8];
#if defined(Q8_0)
	// d, then 32 int8 quants.
	dd = halfAt(base);
	dm = 0.0;
	const uvec2 w = load8(base + 2u + 8u * j);
	[[unroll]] for (uint t = 0u; t < 4u; t++) {
		q[t] = float(bitfieldExtract(int(w.x), int(8u * t), 8));
		q[t + 4u] = float(bitfieldExtract(int(w.y), int(8u * t), 8));
	}
#elif defined(Q4_0) || defined(Q5_0)
	// d, [qh: 32 fifth bits,] 16 bytes: low nibbles elements 0–15, high
	// nibbles 16–31. Unit j reads bytes 8(j&1)… at nibble j>>1.
	dd = halfAt(base);
	dm = 0.0;
#if defined(Q4_0)
	nib8(load8(base + 2u + 8u * (j & 1u)), 4u * (j >> 1), u);
	[[unroll]] for (uint t = 0u; t < 8u; t++) {
		q[t] = float(int(u[t]) - 8);
	}
#else
	nib8(load8(base + 6u + 8u * (j & 1u)), 4u * (j >> 1), u);
	const uint qh = u32at(base + 2u) >> (8u * j); // fifth bits of elements 8j…
	[[unroll]] for (uint t = 0u; t < 8u; t++) {
		q[t] = float(int(u[t] | (((qh >> t) & 1u) << 4)) - 16);
	}
#endif
#elif defined(Q4_K) || defined(Q5_K)
	// d, dmin, 12 scale bytes, [32 bytes of fifth bits,] 128 nibble bytes.
	// Unit j is elements 8(j%4)… of group g = j/4, whose nibbles are
	// those of bytes 32(g/2) + 8(j%4)… at shift 4(g%2).
	const uint g = j >> 2, e0 = 8u * (j & 3u);
	uint sc, m;
	kScaleMin(base + 4u, g, sc, m);
	precise float pd = halfAt(base) * float(sc), pm = halfAt(base + 2u) * float(m);
	dd = pd;
	dm = pm;
#if defined(Q4_K)
	nib8(load8(base + 16u + 32u * (g >> 1) + e0), 4u * (g & 1u), u);
	[[unroll]] for (uint t = 0u; t < 8u; t++) {
		q[t] = float(u[t]);
	}
#else
	nib8(load8(base + 48u + 32u * (g >> 1) + e0), 4u * (g & 1u), u);
	const uvec2 h = load8(base + 16u + e0); // bit g of byte e: element e of group g
	[[unroll]] for (uint t = 0u; t < 4u; t++) {
		q[t] = float(u[t] | (((h.x >> (8u * t + g)) & 1u) << 4));
		q[t + 4u] = float(u[t + 4u] | (((h.y >> (8u * t + g)) & 1u) << 4));
	}
#endif
#else // Q6_K
	// 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d.
	// Unit j is in half hf = j/16 at r0 = 8(j%16): element r of a half takes
	// its low nibble from byte 64hf + r%64 (shift 4(r/64)), its high bits
	// from byte 128 + 32hf + r%32 (shift 2(r/32)), its scale from byte
	// 192 + 8hf + r/16.
	const uint hf = j >> 4, r0 = 8u * (j & 15u);
	nib8(load8(base + 64u * hf + (r0 & 63u)), 4u * (r0 >> 6), u);
	const uvec2 h = load8(base + 128u + 32u * hf + (r0 & 31u));
	const uint hs = 2u * (r0 >> 5);
	[[unroll]] for (uint t = 0u; t < 4u; t++) {
		q[t] = float(int(u[t] | (((h.x >> (8u * t + hs)) & 3u) << 4)) - 32);
		q[t + 4u] = float(int(u[t + 4u] | (((h.y >> (8u * t + hs)) & 3u) << 4)) - 32);
	}
	precise float pd = halfAt(base + 208u) * float(bitfieldExtract(int(byteAt(base + 192u + 8u * hf + (r0 >> 4))), 0, 8));
	dd = pd;
	dm = 0.0;
#endif
}
