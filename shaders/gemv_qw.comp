#version 450
// variants: gemv_qw_q8_0_xf32_yf32=-DQ8_0 gemv_qw_q8_0_xf32_yf16=-DQ8_0,-DY_F16 gemv_qw_q8_0_xf16_yf32=-DQ8_0,-DX_F16 gemv_qw_q8_0_xf16_yf16=-DQ8_0,-DX_F16,-DY_F16 gemv_qw_q4_k_xf32_yf32=-DQ4_K gemv_qw_q4_k_xf32_yf16=-DQ4_K,-DY_F16 gemv_qw_q4_k_xf16_yf32=-DQ4_K,-DX_F16 gemv_qw_q4_k_xf16_yf16=-DQ4_K,-DX_F16,-DY_F16 gemv_qw_q5_k_xf32_yf32=-DQ5_K gemv_qw_q5_k_xf32_yf16=-DQ5_K,-DY_F16 gemv_qw_q5_k_xf16_yf32=-DQ5_K,-DX_F16 gemv_qw_q5_k_xf16_yf16=-DQ5_K,-DX_F16,-DY_F16 gemv_qw_q6_k_xf32_yf32=-DQ6_K gemv_qw_q6_k_xf32_yf16=-DQ6_K,-DY_F16 gemv_qw_q6_k_xf16_yf32=-DQ6_K,-DX_F16 gemv_qw_q6_k_xf16_yf16=-DQ6_K,-DX_F16,-DY_F16 gemv_qw_norm_q8_0_f16=-DQ8_0,-DFUSED,-DNORM,-DY_F16 gemv_qw_norm_q8_0_f32=-DQ8_0,-DFUSED,-DNORM gemv_qw_glu_q8_0=-DQ8_0,-DFUSED,-DNORM,-DGLU,-DY_F16 gemv_qw_add_q8_0=-DQ8_0,-DFUSED,-DACC,-DX_F16 gemv_qw_norm_q4_k_f16=-DQ4_K,-DFUSED,-DNORM,-DY_F16 gemv_qw_norm_q4_k_f32=-DQ4_K,-DFUSED,-DNORM gemv_qw_glu_q4_k=-DQ4_K,-DFUSED,-DNORM,-DGLU,-DY_F16 gemv_qw_add_q4_k=-DQ4_K,-DFUSED,-DACC,-DX_F16 gemv_qw_norm_q5_k_f16=-DQ5_K,-DFUSED,-DNORM,-DY_F16 gemv_qw_norm_q5_k_f32=-DQ5_K,-DFUSED,-DNORM gemv_qw_glu_q5_k=-DQ5_K,-DFUSED,-DNORM,-DGLU,-DY_F16 gemv_qw_add_q5_k=-DQ5_K,-DFUSED,-DACC,-DX_F16 gemv_qw_norm_q6_k_f16=-DQ6_K,-DFUSED,-DNORM,-DY_F16 gemv_qw_norm_q6_k_f32=-DQ6_K,-DFUSED,-DNORM gemv_qw_glu_q6_k=-DQ6_K,-DFUSED,-DNORM,-DGLU,-DY_F16 gemv_qw_add_q6_k=-DQ6_K,-DFUSED,-DACC,-DX_F16
// gemv_qw.comp: the wide quantized matrix-vector product,
// y = x·Wᵀ (+ bias), f32 accumulation; W is dequantized in registers.
// Same bindings, push constants and results as gemv_q.comp (the reference
// kernel), for Q8_0, Q4_K, Q5_K and Q6_K weights only:
//   x [MM, K] (f32, or f16 with X_F16); W [N, K] as N rows of ggml blocks
//   (runtime.DType documents the layouts); bias [N] f32; y [MM, N] (f32,
//   or f16 with Y_F16) with row stride pc.ldy. Offsets: xOff, bOff, yOff in
//   elements (xOff a multiple of 8), wOff in bytes: a multiple of 16 for
//   Q4_K and Q5_K (their 144- and 176-byte blocks then start on 16-byte
//   boundaries), even for Q8_0 and Q6_K (34 and 210 bytes: 2-byte aligned).
//   pc.M must equal the spec constant MM (1 … 4).
//
// Work split. A workgroup owns R consecutive rows of W for all MM rows of
// x; its invocations stride over the rows' units, a unit being a whole
// scale group: one Q8_0 block (32 elements), or a quarter of a K-quant
// super-block (64 elements: Q4_K/Q5_K groups 2p and 2p+1, or Q6_K half hf,
// positions l0 … l0+15 of its four 32-element quarters). An invocation reads
// its unit of each of the R rows with wide loads first (the K-quants' 16-byte
// header and quants as uvec4; Q6_K and Q8_0, only 2-byte aligned, as 32-bit
// words shifted into place: run16, and 16-bit loads where a word would
// reach past the block), decodes the scales once per unit, then
// for each row of x loads the unit of x once (8 values at a time) and uses
// it for all R rows. A quant becomes a float with an OR into the mantissa
// of 2^23 and one subtraction (q4f: exact, no int-to-float conversion).
// Per scale group the products are summed, then scaled: dd·Σx·q − dm·Σx
// (dd, dm as ggml computes them, precise). Partial sums are reduced with
// subgroupAdd + shared memory (SUBGROUP) or a shared-memory tree. The 1D
// grid of ceil(N/R) workgroups is folded into x/y; rows past N read row
// N−1 and are not written. The workgroup size (spec constant 0) must be a
// power of two.
//
// FUSED: the decode step's fused mat-vecs, with gemv_fused.comp's contracts
// (bindings, push constants, grid of matrices), the weights of one type:
// NORM (gemv_qw_norm_<type>_f16/_f32): x f32 [M, K] (the residual stream) is
//   RMS-normalised first, in f32, and rounded to f16 (as RMSNorm into an f16
//   tensor), xn[m, k] = f16(x[m, k] * rsqrt(sum_k x[m, k]^2 / K + eps) *
//   nw[k]); with XSH each workgroup keeps xn in shared memory (XS uvec4
//   slots of 8 halves, >= M*K/8), else it normalises x as it reads it. Then
//   y_i[m, n] = xn[m, :] . W_i[n, :] (+ b_i[n]) for the matrices i < 3
//   (N_i = 0: none); workgroups [0, G0) take matrix 0, [G0, G1) matrix 1,
//   the rest matrix 2.
// GLU (gemv_qw_glu_<type>): NORM with W0 the gate and W1 the up projection
//   over the same rows, y_0[m, n] = silu(g) * u (f16), silu(g) = g / (1 +
//   exp(-g)).
// ACC (gemv_qw_add_<type>): x f16 [M, K]; y_0[m, n] += x[m, :] . W0[n, :]
//   (+ b_0[n]), y_0 f32.
// Bindings: 0 x, 1 nw (f32 [K]; NORM only), 2-4 W0..W2 (rows of blocks,
// offset 0), 5-7 b0..b2 (f32 [N_i]), 8-10 y0..y2 ([M, N_i]); unused ones are
// bound to valid buffers and never read or written. Per unit the weight
// loads branch on the workgroup's matrix (uniform).
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

layout(local_size_x = 64, local_size_x_id = 0) in;
layout(constant_id = 1) const uint R = 4;
layout(constant_id = 2) const bool SUBGROUP = false;
layout(constant_id = 3) const uint MM = 1;
layout(constant_id = 4) const uint XS = 1;      // NORM, XSH: shared uvec4 slots (>= MM*K/8)
layout(constant_id = 5) const bool XSH = false; // NORM: xn in shared memory

const uint WG = gl_WorkGroupSize.x;

#ifdef GLU
#define NW 2u // weight matrices read per workgroup
#else
#define NW 1u
#endif

#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

#ifdef FUSED
#ifdef NORM
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 1) readonly buffer NW4 { vec4 nw4[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
#endif
// Three views of each matrix's bytes (aliases of one binding).
layout(std430, set = 0, binding = 2) readonly buffer W0h { uint16_t wh0[]; };
layout(std430, set = 0, binding = 2) readonly buffer W0w { uint ww0[]; };
layout(std430, set = 0, binding = 2) readonly buffer W0v { uvec4 wv0[]; };
layout(std430, set = 0, binding = 3) readonly buffer W1h { uint16_t wh1[]; };
layout(std430, set = 0, binding = 3) readonly buffer W1w { uint ww1[]; };
layout(std430, set = 0, binding = 3) readonly buffer W1v { uvec4 wv1[]; };
layout(std430, set = 0, binding = 4) readonly buffer W2h { uint16_t wh2[]; };
layout(std430, set = 0, binding = 4) readonly buffer W2w { uint ww2[]; };
layout(std430, set = 0, binding = 4) readonly buffer W2v { uvec4 wv2[]; };
layout(std430, set = 0, binding = 5) readonly buffer B0 { float b0[]; };
layout(std430, set = 0, binding = 6) readonly buffer B1 { float b1[]; };
layout(std430, set = 0, binding = 7) readonly buffer B2 { float b2[]; };
#ifdef ACC
layout(std430, set = 0, binding = 8) buffer Y0 { YT y0[]; };
#else
layout(std430, set = 0, binding = 8) writeonly buffer Y0 { YT y0[]; };
#endif
layout(std430, set = 0, binding = 9) writeonly buffer Y1 { YT y1[]; };
layout(std430, set = 0, binding = 10) writeonly buffer Y2 { YT y2[]; };

layout(push_constant) uniform Push {
	uint M, K;
	uint N0, N1, N2;
	uint G0, G1;  // workgroups of matrix 0; of matrices 0 and 1
	uint hasBias; // bit i: b_i is added
	float eps;    // NORM
} pc;

#define XOFF 0u

uint whAt(uint mat, uint i) {
	if (mat == 0u) {
		return uint(wh0[i]);
	} else if (mat == 1u) {
		return uint(wh1[i]);
	}
	return uint(wh2[i]);
}

uint wwAt(uint mat, uint i) {
	if (mat == 0u) {
		return ww0[i];
	} else if (mat == 1u) {
		return ww1[i];
	}
	return ww2[i];
}

uvec4 wvAt(uint mat, uint i) {
	if (mat == 0u) {
		return wv0[i];
	} else if (mat == 1u) {
		return wv1[i];
	}
	return wv2[i];
}
#else
#ifdef X_F16
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
#endif
// Three views of the weight bytes (aliases of one binding).
layout(std430, set = 0, binding = 1) readonly buffer W16 { uint16_t wh[]; };
layout(std430, set = 0, binding = 1) readonly buffer W32 { uint ww[]; };
layout(std430, set = 0, binding = 1) readonly buffer W128 { uvec4 wv[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

#define XOFF pc.xOff
#define whAt(mat, i) uint(wh[i])
#define wwAt(mat, i) ww[i]
#define wvAt(mat, i) wv[i]
#endif

#if defined(Q8_0)
#define BB 34u
#define UE 32u
#elif defined(Q4_K)
#define BB 144u
#define UE 64u
#elif defined(Q5_K)
#define BB 176u
#define UE 64u
#elif defined(Q6_K)
#define BB 210u
#define UE 64u
#else
#error "define one of Q8_0, Q4_K, Q5_K, Q6_K"
#endif
// UPB is the number of units of a block.
#define UPB ((BB == 34u) ? 1u : 4u)

shared float red[NW * R * MM * WG];
#ifdef NORM
shared uvec4 xs[XS];
#endif

uint wrow[R];            // byte offsets of the workgroup's rows of W
float acc[NW * R * MM];  // partial sums: matrix w, row r, x row m at (w*R + r)*MM + m
#ifdef NORM
float scale[MM];         // the rows' rsqrt(mean square + eps)

// normed8 is xn[m, k .. k+8) (k a multiple of 8) packed as 8 halves.
uvec4 normed8(uint m, uint k) {
	const uint e = m * pc.K + k;
	const vec4 a = x4[e / 4u] * scale[m] * nw4[k / 4u];
	const vec4 b = x4[e / 4u + 1u] * scale[m] * nw4[k / 4u + 1u];
	return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
#endif

// loadX8 reads x[m, k … k+7] (normalised with NORM); k is a multiple of 8.
void loadX8(uint m, uint k, out vec4 a, out vec4 b) {
#if defined(NORM)
	const uvec4 u = XSH ? xs[(m * pc.K + k) / 8u] : normed8(m, k);
	a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
	b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
#elif defined(X_F16)
	const uvec4 u = x8[(XOFF + m * pc.K + k) / 8u];
	a = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
	b = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
#else
	const uint e = XOFF + m * pc.K + k;
	a = x4[e / 4u];
	b = x4[e / 4u + 1u];
#endif
}

// q4f returns the four bytes of w as floats less zp (exact): each byte is
// ORed into the mantissa of 2^23 and 2^23 + zp subtracted.
vec4 q4f(uint w, float zp) {
	const uint M = 0x4B000000u;
	return vec4(uintBitsToFloat(M | (w & 0xffu)), uintBitsToFloat(M | ((w >> 8) & 0xffu)),
		uintBitsToFloat(M | ((w >> 16) & 0xffu)), uintBitsToFloat(M | (w >> 24))) - (8388608.0 + zp);
}

// shift16 is the 32-bit word at byte offset 2 of the pair (lo, hi) when odd
// (the run starts 2 bytes into a word), else lo.
uint shift16(uint lo, uint hi, bool odd) { return odd ? (lo >> 16) | (hi << 16) : lo; }

// run16 returns the 16 bytes of matrix mat at even byte offset b as four
// little-endian words, from five 32-bit loads (the fifth repeats the fourth
// when b is a multiple of 4); it reads up to 2 bytes past the run (b+16,
// b+17).
uvec4 run16(uint mat, uint b) {
	const uint i = b >> 2;
	const bool odd = (b & 2u) != 0u;
	const uint a0 = wwAt(mat, i), a1 = wwAt(mat, i + 1u), a2 = wwAt(mat, i + 2u), a3 = wwAt(mat, i + 3u), a4 = wwAt(mat, (b + 14u) >> 2);
	return uvec4(shift16(a0, a1, odd), shift16(a1, a2, odd), shift16(a2, a3, odd), shift16(a3, a4, odd));
}

// halfAt widens the f16 of matrix mat at even byte offset b.
float halfAt(uint mat, uint b) { return unpackHalf2x16(whAt(mat, b >> 1)).x; }

#if defined(Q4_K) || defined(Q5_K)
// kScales returns group g's 6-bit scale and min from the header h of a
// Q4_K/Q5_K block (h.x: d, dmin; h.y, h.z, h.w: the 12 scale bytes).
uvec2 kScales(uvec4 h, uint g) {
	const uint k = 8u * (g & 3u);
	const uint a = bitfieldExtract(h.y, int(k), 8), b = bitfieldExtract(h.z, int(k), 8), c = bitfieldExtract(h.w, int(k), 8);
	return g < 4u ? uvec2(a & 63u, b & 63u) : uvec2((c & 15u) | ((a >> 6) << 4), (c >> 4) | ((b >> 6) << 4));
}
#endif

// unitAcc adds unit u of the workgroup's R rows of matrix mat, times every
// row of x, to acc[a0 + r*MM + m].
void unitAcc(uint mat, uint a0, uint u) {
	const uint blk = (u / UPB) * BB, j = u % UPB;
	const uint e0 = u * UE; // first element of the unit
#if defined(Q8_0)
	// d, then 32 int8 quants from byte 2.
	uvec4 qa[R], qb[R];
	float dd[R];
	[[unroll]] for (uint r = 0u; r < R; r++) {
		// The quants' 8 words start 2 bytes into word i when the block
		// starts on a word; their last 2 bytes (the block's) then come
		// from a 16-bit load, so that nothing past the block is read.
		const uint b = wrow[r] + blk, i = (b + 2u) >> 2;
		const bool odd = (b & 2u) == 0u;
		dd[r] = halfAt(mat, b);
		uint a[9];
		[[unroll]] for (uint k = 0u; k < 8u; k++) {
			a[k] = wwAt(mat, i + k);
		}
		a[8] = whAt(mat, (b + 32u) >> 1);
		qa[r] = uvec4(shift16(a[0], a[1], odd), shift16(a[1], a[2], odd), shift16(a[2], a[3], odd), shift16(a[3], a[4], odd));
		qb[r] = uvec4(shift16(a[4], a[5], odd), shift16(a[5], a[6], odd), shift16(a[6], a[7], odd), shift16(a[7], a[8], odd));
	}
	[[unroll]] for (uint m = 0u; m < MM; m++) {
		float s[R];
		[[unroll]] for (uint r = 0u; r < R; r++) {
			s[r] = 0.0;
		}
		[[unroll]] for (uint h = 0u; h < 4u; h++) {
			vec4 xa, xb;
			loadX8(m, e0 + 8u * h, xa, xb);
			[[unroll]] for (uint r = 0u; r < R; r++) {
				const uvec4 q = h < 2u ? qa[r] : qb[r];
				const uint w0 = (h & 1u) == 0u ? q.x : q.z, w1 = (h & 1u) == 0u ? q.y : q.w;
				s[r] += dot(xa, q4f(w0 ^ 0x80808080u, 128.0)) + dot(xb, q4f(w1 ^ 0x80808080u, 128.0));
			}
		}
		[[unroll]] for (uint r = 0u; r < R; r++) {
			acc[a0 + r * MM + m] += dd[r] * s[r];
		}
	}
#elif defined(Q4_K) || defined(Q5_K)
	// Unit j: groups 2j (low nibbles of quant bytes 32j … 32j+31) and
	// 2j+1 (their high nibbles); Q5_K's fifth bits are bits 2j and
	// 2j+1 of the 32 qh bytes.
	uvec4 qa[R], qb[R];
	float d0[R], m0[R], d1[R], m1[R];
#if defined(Q5_K)
	uvec4 ha[R], hb[R];
	const uint qo = 3u;
#else
	const uint qo = 1u;
#endif
	[[unroll]] for (uint r = 0u; r < R; r++) {
		const uint v = (wrow[r] + blk) >> 4; // uvec4 index of the block
		const uvec4 hd = wvAt(mat, v);
		qa[r] = wvAt(mat, v + qo + 2u * j);
		qb[r] = wvAt(mat, v + qo + 2u * j + 1u);
#if defined(Q5_K)
		ha[r] = wvAt(mat, v + 1u);
		hb[r] = wvAt(mat, v + 2u);
#endif
		const vec2 dm = unpackHalf2x16(hd.x);
		const uvec2 s0 = kScales(hd, 2u * j), s1 = kScales(hd, 2u * j + 1u);
		precise float pd0 = dm.x * float(s0.x), pm0 = dm.y * float(s0.y);
		precise float pd1 = dm.x * float(s1.x), pm1 = dm.y * float(s1.y);
		d0[r] = pd0;
		m0[r] = pm0;
		d1[r] = pd1;
		m1[r] = pm1;
	}
	[[unroll]] for (uint m = 0u; m < MM; m++) {
		float sa[R], sb[R];
		[[unroll]] for (uint r = 0u; r < R; r++) {
			sa[r] = 0.0;
			sb[r] = 0.0;
		}
		float sxa = 0.0, sxb = 0.0;
		[[unroll]] for (uint h = 0u; h < 4u; h++) {
			// Quant words 2h, 2h+1: elements 8h … 8h+7 of group 2j
			// (low nibbles) and of group 2j+1 (high nibbles).
			vec4 xa0, xa1, xb0, xb1;
			loadX8(m, e0 + 8u * h, xa0, xa1);
			loadX8(m, e0 + 32u + 8u * h, xb0, xb1);
			sxa += dot(xa0 + xa1, vec4(1.0));
			sxb += dot(xb0 + xb1, vec4(1.0));
			[[unroll]] for (uint r = 0u; r < R; r++) {
				const uvec4 q = h < 2u ? qa[r] : qb[r];
				const uint w0 = (h & 1u) == 0u ? q.x : q.z, w1 = (h & 1u) == 0u ? q.y : q.w;
				uint l0 = w0 & 0x0f0f0f0fu, l1 = w1 & 0x0f0f0f0fu;
				uint h0 = (w0 >> 4) & 0x0f0f0f0fu, h1 = (w1 >> 4) & 0x0f0f0f0fu;
#if defined(Q5_K)
				const uvec4 qh = h < 2u ? ha[r] : hb[r];
				const uint b0 = (h & 1u) == 0u ? qh.x : qh.z, b1 = (h & 1u) == 0u ? qh.y : qh.w;
				l0 |= ((b0 >> (2u * j)) & 0x01010101u) << 4;
				l1 |= ((b1 >> (2u * j)) & 0x01010101u) << 4;
				h0 |= ((b0 >> (2u * j + 1u)) & 0x01010101u) << 4;
				h1 |= ((b1 >> (2u * j + 1u)) & 0x01010101u) << 4;
#endif
				sa[r] += dot(xa0, q4f(l0, 0.0)) + dot(xa1, q4f(l1, 0.0));
				sb[r] += dot(xb0, q4f(h0, 0.0)) + dot(xb1, q4f(h1, 0.0));
			}
		}
		[[unroll]] for (uint r = 0u; r < R; r++) {
			acc[a0 + r * MM + m] += (d0[r] * sa[r] - m0[r] * sxa) + (d1[r] * sb[r] - m1[r] * sxb);
		}
	}
#else // Q6_K
	// Unit j: half hf = j/2, positions l0 = 16(j%2) … l0+15 of its four
	// quarters t (elements 128hf + 32t + l): low nibbles from ql byte
	// 64hf + l (t = 0, 2: low, high nibble) or 64hf + 32 + l (t = 1, 3),
	// high bit pairs from qh byte 128 + 32hf + l (shift 2t), scale
	// 8hf + l0/16 + 2t.
	const uint hf = j >> 1, l0 = 16u * (j & 1u);
	uvec4 qa[R], qb[R], qh[R];
	float ds[R][4];
	[[unroll]] for (uint r = 0u; r < R; r++) {
		const uint b = wrow[r] + blk;
		qa[r] = run16(mat, b + 64u * hf + l0);
		qb[r] = run16(mat, b + 64u * hf + 32u + l0);
		qh[r] = run16(mat, b + 128u + 32u * hf + l0);
		// The 8 scale bytes of half hf (at byte 192 + 8hf: 2-byte
		// aligned), then the ones of this unit: bytes l0/16 + 2t.
		const uint sb = b + 192u + 8u * hf, si = sb >> 2;
		const bool odd = (sb & 2u) != 0u;
		const uint c0 = wwAt(mat, si), c1 = wwAt(mat, si + 1u), c2 = wwAt(mat, (sb + 6u) >> 2);
		const uint s0 = shift16(c0, c1, odd), s1 = shift16(c1, c2, odd);
		const float d = halfAt(mat, b + 208u);
		[[unroll]] for (uint t = 0u; t < 4u; t++) {
			const int sc = bitfieldExtract(int(t < 2u ? s0 : s1), int(8u * (j & 1u) + 16u * (t & 1u)), 8);
			precise float p = d * float(sc);
			ds[r][t] = p;
		}
	}
	[[unroll]] for (uint m = 0u; m < MM; m++) {
		const uint xk = e0 - 64u * (j & 1u) + l0; // element 128hf + l0 of the block
		[[unroll]] for (uint t = 0u; t < 4u; t++) {
			float s[R];
			[[unroll]] for (uint r = 0u; r < R; r++) {
				s[r] = 0.0;
			}
			[[unroll]] for (uint h = 0u; h < 2u; h++) {
				vec4 x0, x1;
				loadX8(m, xk + 32u * t + 8u * h, x0, x1);
				[[unroll]] for (uint r = 0u; r < R; r++) {
					const uvec4 lw = (t & 1u) == 0u ? qa[r] : qb[r];
					const uint a0 = h == 0u ? lw.x : lw.z, a1 = h == 0u ? lw.y : lw.w;
					const uint b0 = h == 0u ? qh[r].x : qh[r].z, b1 = h == 0u ? qh[r].y : qh[r].w;
					const uint sh = 4u * (t >> 1), hs = 2u * t;
					const uint q0 = ((a0 >> sh) & 0x0f0f0f0fu) | (((b0 >> hs) << 4) & 0x30303030u);
					const uint q1 = ((a1 >> sh) & 0x0f0f0f0fu) | (((b1 >> hs) << 4) & 0x30303030u);
					s[r] += dot(x0, q4f(q0, 32.0)) + dot(x1, q4f(q1, 32.0));
				}
			}
			[[unroll]] for (uint r = 0u; r < R; r++) {
				acc[a0 + r * MM + m] += ds[r][t] * s[r];
			}
		}
	}
#endif
}

// reduceAcc sums acc[0 … count) over the workgroup into red[i*WG + 0 …
// parts) and returns parts (sumParts adds them up); red is free again after
// a barrier.
uint reduceAcc(uint tid, uint count) {
	if (SUBGROUP) {
		[[unroll]] for (uint i = 0u; i < NW * R * MM; i++) {
			if (i < count) {
				acc[i] = subgroupAdd(acc[i]);
			}
		}
		if (subgroupElect()) {
			[[unroll]] for (uint i = 0u; i < NW * R * MM; i++) {
				if (i < count) {
					red[i * WG + gl_SubgroupID] = acc[i];
				}
			}
		}
		barrier();
		return gl_NumSubgroups;
	}
	[[unroll]] for (uint i = 0u; i < NW * R * MM; i++) {
		if (i < count) {
			red[i * WG + tid] = acc[i];
		}
	}
	barrier();
	for (uint s = WG / 2u; s >= 8u; s >>= 1) {
		if (tid < s) {
			[[unroll]] for (uint i = 0u; i < NW * R * MM; i++) {
				if (i < count) {
					red[i * WG + tid] += red[i * WG + tid + s];
				}
			}
		}
		barrier();
	}
	return min(WG, 8u);
}

float sumParts(uint i, uint parts) {
	float s = 0.0;
	for (uint p = 0u; p < parts; p++) {
		s += red[i * WG + p];
	}
	return s;
}

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	const uint K = pc.K;
#ifdef FUSED
	uint mat, nb, N;
	if (g < pc.G0) {
		mat = 0u; nb = g * R; N = pc.N0;
	} else if (g < pc.G1) {
		mat = 1u; nb = (g - pc.G0) * R; N = pc.N1;
	} else {
		mat = 2u; nb = (g - pc.G1) * R; N = pc.N2;
	}
	const uint wOff = 0u;
#else
	const uint mat = 0u, nb = g * R, N = pc.N, wOff = pc.wOff;
#endif
	if (nb >= N) {
		return; // uniform over the workgroup
	}
	const uint rowBytes = (K / (UE * UPB)) * BB;
	[[unroll]] for (uint r = 0u; r < R; r++) {
		wrow[r] = wOff + min(nb + r, N - 1u) * rowBytes;
	}
	[[unroll]] for (uint i = 0u; i < NW * R * MM; i++) {
		acc[i] = 0.0;
	}

#ifdef NORM
	// The rows' mean squares, summed over the whole workgroup in 16-byte
	// loads and reduced like the products below: summing in every
	// subgroup alone needs no barrier but takes K/(4·subgroup) dependent
	// loads (32 for K = 4096 on a 32-wide subgroup).
	[[unroll]] for (uint m = 0u; m < MM; m++) {
		float s = 0.0;
		for (uint k = tid; k < K / 4u; k += WG) {
			const vec4 v = x4[(m * K) / 4u + k];
			s += dot(v, v);
		}
		acc[m] = s;
	}
	{
		const uint parts = reduceAcc(tid, MM);
		[[unroll]] for (uint m = 0u; m < MM; m++) {
			scale[m] = inversesqrt(sumParts(m, parts) / float(K) + pc.eps);
			acc[m] = 0.0;
		}
	}
	barrier(); // red is reused below
	if (XSH) {
		const uint k8 = K / 8u;
		for (uint e = tid; e < MM * k8; e += WG) {
			const uint m = e / k8;
			xs[e] = normed8(m, (e - m * k8) * 8u);
		}
		barrier();
	}
#endif

	for (uint u = tid; u < K / UE; u += WG) {
		unitAcc(mat, 0u, u);
#ifdef GLU
		unitAcc(1u, R * MM, u);
#endif
	}

	// Reduce the NW·R·MM partial sums over the workgroup.
	const uint parts = reduceAcc(tid, NW * R * MM);
	if (tid < R * MM) {
		const uint r = tid / MM, m = tid % MM;
		const uint n = nb + r;
		if (n < N) {
			float s = sumParts(tid, parts);
#ifdef FUSED
			if ((pc.hasBias & (1u << mat)) != 0u) {
				s += mat == 0u ? b0[n] : (mat == 1u ? b1[n] : b2[n]);
			}
			const uint o = m * N + n;
#if defined(GLU)
			const float up = sumParts(R * MM + tid, parts);
			y0[o] = YT(s / (1.0 + exp(-s)) * up);
#elif defined(ACC)
			y0[o] = y0[o] + s;
#else
			if (mat == 0u) {
				y0[o] = YT(s);
			} else if (mat == 1u) {
				y1[o] = YT(s);
			} else {
				y2[o] = YT(s);
			}
#endif
#else
			if (pc.hasBias != 0u) {
				s += bias[pc.bOff + n];
			}
			y[pc.yOff + m * pc.ldy + n] = YT(s);
#endif
		}
	}
}
