#version 450
// variants: matmul_xf32_yf32= matmul_xf32_yf16=-DY_F16 matmul_xf16_yf32=-DX_F16 matmul_xf16_yf16=-DX_F16,-DY_F16 matmul_glu_xf16_yf16=-DX_F16,-DY_F16,-DGLU
// matmul.comp: tiled scalar matmul  y = x·Wᵀ (+ bias), or y += x·Wᵀ (+ bias)
// with ACC, f32 accumulation.
//   x [M, K] (f32, or f16 with X_F16), row-major, K contiguous
//   W [N, K] f16, row-major, K contiguous
//   bias [N] f32 (read only when pc.hasBias != 0)
//   y [M, N] (f32, or f16 with Y_F16), row stride pc.ldy
// Every buffer is addressed with an element offset from the push constants
// (xOff, wOff, bOff, yOff), so the host can bind 256-byte-aligned sub-ranges
// and process big tensors in chunks.
//
// One workgroup computes a BM×BN tile of y (grid x over N, y over M). The K
// dimension is walked in BK-wide slabs staged in shared memory as f32,
// transposed to [k][m] / [k][n] and read as vec4. Each invocation keeps a
// TM×TN block of accumulators in registers made of (TM/4)×(TN/4) 4×4
// sub-blocks; sub-block (i, j) covers rows 4·(ty + i·BM/TM) .. +3 and
// columns 4·(tx + j·BN/TN) .. +3, so neighbouring invocations read
// neighbouring vec4s of shared memory. TM and TN must be multiples of 4; the
// workgroup size (spec constant 0) must be (BM/TM)·(BN/TN).
// VEC (spec constant 6): K, xOff and wOff are multiples of 8; global loads
// are then 16 bytes wide (aliased views of the bindings) and the next slab is
// prefetched into registers while the current one is multiplied. Otherwise
// loads are scalar. Tails in M, N, K are guarded (zero fill).
// ACC (spec constant 7): accumulate into y, y = y + (x·Wᵀ + bias), the
// product and bias summed in f32 first and y added last, so that an f32 y
// equals MatMul into an f32 temporary followed by add_inplace bit for bit
// (MatMulAdd: the residual add in the epilogue). y is read through the
// read-only view YR, one element by the invocation that writes it.
// GLU (the matmul_glu variant: MatMulSwiGLU, the reference of
// matmul_cm1_glu): W is [2N, K], gate rows [0, N) stacked over up rows
// [N, 2N), and y [M, N] = SiLU(x·Wgᵀ) ⊙ x·Wuᵀ (N = pc.N features). A
// BN-wide tile of the product covers BN/2 features from nf0 = n0/2, in
// groups of four product columns: B-slab row r holds gate row
// nf0 + 2·(r/4) + r%2 when r%4 < 2 and up row N + (the same) otherwise, so
// every 4-column sub-block of an invocation holds gate (columns 0, 1) and up
// (2, 3) of two features, for every tile. The epilogue rounds g and u to f16
// first, as MatMul's f16 outputs are, then computes g / (1 + exp(-g)) · u in
// f32 as swiglu.comp does (gluAct, glu.glsl): the result equals MatMul into
// f16 gate and up followed by SwiGLU bit for bit. No bias, no ACC.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#ifdef GLU
#extension GL_GOOGLE_include_directive : require
#include "glu.glsl"
#endif

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 8;
layout(constant_id = 5) const uint TN = 8;
layout(constant_id = 6) const bool VEC = false;
layout(constant_id = 7) const bool ACC = false;

const uint WG = gl_WorkGroupSize.x;
const uint BMT = BM / TM; // invocations along M
const uint BNT = BN / TN; // invocations along N
const uint BM4 = BM / 4, BN4 = BN / 4;
const uint TM4 = TM / 4, TN4 = TN / 4;
const uint UA = BM * BK / 8; // 8-element load units per slab (VEC)
const uint UB = BN * BK / 8;
const uint LA = (UA + WG - 1) / WG; // units per invocation
const uint LB = (UB + WG - 1) / WG;

#ifdef X_F16
#define XT float16_t
#else
#define XT float
#endif
#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { XT x[]; };
#ifdef X_F16
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 1) readonly buffer W8 { uvec4 w8[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };
layout(std430, set = 0, binding = 3) readonly buffer YR { YT yr[]; }; // ACC only

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

shared vec4 As[BK * BM4]; // [k][m/4]
shared vec4 Bs[BK * BN4]; // [k][n/4]

void stA(uint k, uint m, float v) { As[k * BM4 + m / 4][m % 4] = v; }
void stB(uint k, uint n, float v) { Bs[k * BN4 + n / 4][n % 4] = v; }

void unpack8(uvec4 u, inout float v[8]) {
	vec2 p;
	p = unpackHalf2x16(u.x); v[0] = p.x; v[1] = p.y;
	p = unpackHalf2x16(u.y); v[2] = p.x; v[3] = p.y;
	p = unpackHalf2x16(u.z); v[4] = p.x; v[5] = p.y;
	p = unpackHalf2x16(u.w); v[6] = p.x; v[7] = p.y;
}

// wRow returns the row of W that B-slab row r of the tile at product
// column n0 holds, and whether it is inside W (false: zeros).
bool wRow(uint n0, uint r, out uint row) {
#ifdef GLU
	const uint feat = n0 / 2 + 2 * (r / 4) + r % 2;
	row = feat + (r % 4 < 2 ? 0 : pc.N);
	return feat < pc.N;
#else
	row = n0 + r;
	return row < pc.N;
#endif
}

float ra[LA][8];
float rb[LB][8];

// fetch loads the slab at k0 into ra/rb (VEC only).
void fetch(uint k0, uint m0, uint n0) {
	const uint tid = gl_LocalInvocationID.x;
	const uint C = BK / 8;
	[[unroll]] for (uint l = 0; l < LA; l++) {
		const uint u = tid + l * WG;
		const uint gm = m0 + u / C, gk = k0 + (u % C) * 8;
		if (u < UA && gm < pc.M && gk < pc.K) {
			const uint e = pc.xOff + gm * pc.K + gk;
#ifdef X_F16
			unpack8(x8[e / 8], ra[l]);
#else
			const vec4 a = x4[e / 4], b = x4[e / 4 + 1];
			ra[l][0] = a.x; ra[l][1] = a.y; ra[l][2] = a.z; ra[l][3] = a.w;
			ra[l][4] = b.x; ra[l][5] = b.y; ra[l][6] = b.z; ra[l][7] = b.w;
#endif
		} else {
			[[unroll]] for (uint e = 0; e < 8; e++) {
				ra[l][e] = 0.0;
			}
		}
	}
	[[unroll]] for (uint l = 0; l < LB; l++) {
		const uint u = tid + l * WG;
		const uint gk = k0 + (u % C) * 8;
		uint gn;
		const bool inN = wRow(n0, u / C, gn);
		if (u < UB && inN && gk < pc.K) {
			unpack8(w8[(pc.wOff + gn * pc.K + gk) / 8], rb[l]);
		} else {
			[[unroll]] for (uint e = 0; e < 8; e++) {
				rb[l][e] = 0.0;
			}
		}
	}
}

// stash stores ra/rb into shared memory (VEC only).
void stash() {
	const uint tid = gl_LocalInvocationID.x;
	const uint C = BK / 8;
	[[unroll]] for (uint l = 0; l < LA; l++) {
		const uint u = tid + l * WG;
		if (u < UA) {
			[[unroll]] for (uint e = 0; e < 8; e++) {
				stA((u % C) * 8 + e, u / C, ra[l][e]);
			}
		}
	}
	[[unroll]] for (uint l = 0; l < LB; l++) {
		const uint u = tid + l * WG;
		if (u < UB) {
			[[unroll]] for (uint e = 0; e < 8; e++) {
				stB((u % C) * 8 + e, u / C, rb[l][e]);
			}
		}
	}
}

// loadScalar stages the slab at k0 with scalar loads (any K and offsets):
// neighbouring invocations read neighbouring k of one row.
void loadScalar(uint k0, uint m0, uint n0) {
	const uint tid = gl_LocalInvocationID.x;
	for (uint idx = tid; idx < BM * BK; idx += WG) {
		const uint r = idx / BK, c = idx % BK;
		const uint gm = m0 + r, gk = k0 + c;
		float v = 0.0;
		if (gm < pc.M && gk < pc.K) {
			v = float(x[pc.xOff + gm * pc.K + gk]);
		}
		stA(c, r, v);
	}
	for (uint idx = tid; idx < BN * BK; idx += WG) {
		const uint r = idx / BK, c = idx % BK;
		const uint gk = k0 + c;
		uint gn;
		const bool inN = wRow(n0, r, gn);
		float v = 0.0;
		if (inN && gk < pc.K) {
			v = float(w[pc.wOff + gn * pc.K + gk]);
		}
		stB(c, r, v);
	}
}

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint tx = tid % BNT;
	const uint ty = tid / BNT;
	const uint m0 = gl_WorkGroupID.y * BM;
	const uint n0 = gl_WorkGroupID.x * BN;
	const uint M = pc.M, N = pc.N, K = pc.K;

	vec4 acc[TM4 * TN4 * 4]; // [i][j][row in sub-block] = 4 columns
	[[unroll]] for (uint i = 0; i < TM4 * TN4 * 4; i++) {
		acc[i] = vec4(0.0);
	}

	if (VEC) {
		fetch(0, m0, n0);
	}
	for (uint k0 = 0; k0 < K; k0 += BK) {
		if (VEC) {
			stash();
		} else {
			loadScalar(k0, m0, n0);
		}
		barrier();
		if (VEC && k0 + BK < K) {
			fetch(k0 + BK, m0, n0); // in flight during the products below
		}
		for (uint k = 0; k < BK; k++) {
			vec4 a[TM4];
			vec4 b[TN4];
			[[unroll]] for (uint i = 0; i < TM4; i++) {
				a[i] = As[k * BM4 + ty + i * BMT];
			}
			[[unroll]] for (uint j = 0; j < TN4; j++) {
				b[j] = Bs[k * BN4 + tx + j * BNT];
			}
			[[unroll]] for (uint i = 0; i < TM4; i++) {
				[[unroll]] for (uint j = 0; j < TN4; j++) {
					const uint o = (i * TN4 + j) * 4;
					acc[o + 0] = fma(vec4(a[i].x), b[j], acc[o + 0]);
					acc[o + 1] = fma(vec4(a[i].y), b[j], acc[o + 1]);
					acc[o + 2] = fma(vec4(a[i].z), b[j], acc[o + 2]);
					acc[o + 3] = fma(vec4(a[i].w), b[j], acc[o + 3]);
				}
			}
		}
		barrier();
	}

#ifdef GLU
	// Sub-block (i, j): columns 0, 1 gate and 2, 3 up of features
	// nf0 + 2·(tx + j·BNT) + c, c = 0, 1.
	[[unroll]] for (uint j = 0; j < TN4; j++) {
		[[unroll]] for (uint c = 0; c < 2; c++) {
			const uint gn = n0 / 2 + 2 * (tx + j * BNT) + c;
			if (gn >= N) {
				continue;
			}
			[[unroll]] for (uint i = 0; i < TM4; i++) {
				[[unroll]] for (uint r = 0; r < 4; r++) {
					const uint gm = m0 + 4 * (ty + i * BMT) + r;
					if (gm < M) {
						const vec4 a = acc[(i * TN4 + j) * 4 + r];
						y[pc.yOff + gm * pc.ldy + gn] = YT(gluAct(a[c], a[c + 2]));
					}
				}
			}
		}
	}
	return;
#endif
	[[unroll]] for (uint j = 0; j < TN4; j++) {
		[[unroll]] for (uint c = 0; c < 4; c++) {
			const uint gn = n0 + 4 * (tx + j * BNT) + c;
			if (gn >= N) {
				continue;
			}
			const float bv = pc.hasBias != 0 ? bias[pc.bOff + gn] : 0.0;
			[[unroll]] for (uint i = 0; i < TM4; i++) {
				[[unroll]] for (uint r = 0; r < 4; r++) {
					const uint gm = m0 + 4 * (ty + i * BMT) + r;
					if (gm < M) {
						const uint o = pc.yOff + gm * pc.ldy + gn;
						float v = acc[(i * TN4 + j) * 4 + r][c] + bv;
						if (ACC) {
							v += float(yr[o]);
						}
						y[o] = YT(v);
					}
				}
			}
		}
	}
}
