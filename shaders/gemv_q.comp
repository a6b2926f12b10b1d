#version 450
// variants: gemv_q8_0_xf32_yf32=-DQ8_0 gemv_q8_0_xf32_yf16=-DQ8_0,-DY_F16 gemv_q8_0_xf16_yf32=-DQ8_0,-DX_F16 gemv_q8_0_xf16_yf16=-DQ8_0,-DX_F16,-DY_F16 gemv_q4_0_xf32_yf32=-DQ4_0 gemv_q4_0_xf32_yf16=-DQ4_0,-DY_F16 gemv_q4_0_xf16_yf32=-DQ4_0,-DX_F16 gemv_q4_0_xf16_yf16=-DQ4_0,-DX_F16,-DY_F16 gemv_q5_0_xf32_yf32=-DQ5_0 gemv_q5_0_xf32_yf16=-DQ5_0,-DY_F16 gemv_q5_0_xf16_yf32=-DQ5_0,-DX_F16 gemv_q5_0_xf16_yf16=-DQ5_0,-DX_F16,-DY_F16 gemv_q4_k_xf32_yf32=-DQ4_K gemv_q4_k_xf32_yf16=-DQ4_K,-DY_F16 gemv_q4_k_xf16_yf32=-DQ4_K,-DX_F16 gemv_q4_k_xf16_yf16=-DQ4_K,-DX_F16,-DY_F16 gemv_q5_k_xf32_yf32=-DQ5_K gemv_q5_k_xf32_yf16=-DQ5_K,-DY_F16 gemv_q5_k_xf16_yf32=-DQ5_K,-DX_F16 gemv_q5_k_xf16_yf16=-DQ5_K,-DX_F16,-DY_F16 gemv_q6_k_xf32_yf32=-DQ6_K gemv_q6_k_xf32_yf16=-DQ6_K,-DY_F16 gemv_q6_k_xf16_yf32=-DQ6_K,-DX_F16 gemv_q6_k_xf16_yf16=-DQ6_K,-DX_F16,-DY_F16
// gemv_q.comp: matrix-vector product with a block-quantized weight,
// y = x·Wᵀ (+ bias), f32 accumulation; W is dequantized in registers.
//   x [M, K] (f32, or f16 with X_F16); W [N, K] as N rows of K/BE ggml
//   blocks of one type (Q8_0, Q4_0, Q5_0, Q4_K, Q5_K or Q6_K: quant.glsl);
//   bias [N] f32; y [M, N] (f32, or f16 with Y_F16) with row stride pc.ldy.
//   pc.M ≤ MMAX (4): the host loops over M in chunks of 4. Offsets: xOff,
//   bOff, yOff in elements (xOff a multiple of 8), wOff in bytes (even).
//
// One workgroup owns NR consecutive rows of W (= NR output columns) for all
// M ≤ 4 rows of x. Its invocations stride over the rows' 8-element units
// (quant.glsl): an invocation decodes unit u of each of its NR rows into
// integer quants q with one scale dd and offset dm, and adds
// dd·Σ x·q − dm·Σ x for each row of x, so the scales multiply once per 8
// elements. Partial sums are reduced with subgroupAdd + shared memory
// (SUBGROUP) or a shared-memory tree only. The 1D grid of ceil(N/NR)
// workgroups is folded into x/y. The workgroup size (spec constant 0) must
// be a power of two.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;
layout(constant_id = 2) const bool SUBGROUP = false;

#define MMAX 4
const uint WG = gl_WorkGroupSize.x;

#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

#ifdef X_F16
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer W { uint16_t wq[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

#include "quant.glsl"

shared float red[NR * MMAX * WG];

// loadX8 reads x[e … e+7]; e is a multiple of 8.
void loadX8(uint e, out float v[8]) {
#ifdef X_F16
	const uvec4 u = x8[e / 8u];
	vec2 p;
	p = unpackHalf2x16(u.x); v[0] = p.x; v[1] = p.y;
	p = unpackHalf2x16(u.y); v[2] = p.x; v[3] = p.y;
	p = unpackHalf2x16(u.z); v[4] = p.x; v[5] = p.y;
	p = unpackHalf2x16(u.w); v[6] = p.x; v[7] = p.y;
#else
	const vec4 a = x4[e / 4u], b = x4[e / 4u + 1u];
	v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
	v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
#endif
}

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	const uint nb = g * NR;
	const uint M = pc.M, N = pc.N, K = pc.K;
	if (nb >= N) {
		return; // uniform over the workgroup
	}
	const uint rowBytes = (K / BE) * BB;

	float acc[NR * MMAX];
	[[unroll]] for (uint i = 0u; i < NR * MMAX; i++) {
		acc[i] = 0.0;
	}
	// Rows past N read row N-1 (valid memory); their sums are discarded.
	uint wrow[NR];
	[[unroll]] for (uint r = 0u; r < NR; r++) {
		wrow[r] = pc.wOff + min(nb + r, N - 1u) * rowBytes;
	}

	for (uint u = tid; u < K / 8u; u += WG) {
		const uint blk = (u / UPB) * BB, j = u % UPB;
		float q[NR][8], dd[NR], dm[NR];
		[[unroll]] for (uint r = 0u; r < NR; r++) {
			decodeUnit(wrow[r] + blk, j, q[r], dd[r], dm[r]);
		}
		[[unroll]] for (uint m = 0u; m < MMAX; m++) {
			if (m < M) {
				float xv[8];
				loadX8(pc.xOff + m * K + 8u * u, xv);
				float sx = 0.0;
				[[unroll]] for (uint t = 0u; t < 8u; t++) {
					sx += xv[t];
				}
				[[unroll]] for (uint r = 0u; r < NR; r++) {
					float s = 0.0;
					[[unroll]] for (uint t = 0u; t < 8u; t++) {
						s = fma(xv[t], q[r][t], s);
					}
					acc[r * MMAX + m] += dd[r] * s - dm[r] * sx;
				}
			}
		}
	}

	// Reduce the NR·MMAX partial sums over the workgroup.
	uint parts; // partial sums per value left in red[i*WG + 0 .. parts)
	if (SUBGROUP) {
		[[unroll]] for (uint i = 0u; i < NR * MMAX; i++) {
			if (i % MMAX < M) { // uniform: skip the rows past M
				acc[i] = subgroupAdd(acc[i]);
			}
		}
		if (subgroupElect()) {
			[[unroll]] for (uint i = 0u; i < NR * MMAX; i++) {
				red[i * WG + gl_SubgroupID] = acc[i];
			}
		}
		parts = gl_NumSubgroups;
		barrier();
	} else {
		[[unroll]] for (uint i = 0u; i < NR * MMAX; i++) {
			red[i * WG + tid] = acc[i];
		}
		barrier();
		for (uint s = WG / 2u; s >= 8u; s >>= 1) {
			if (tid < s) {
				[[unroll]] for (uint i = 0u; i < NR * MMAX; i++) {
					red[i * WG + tid] += red[i * WG + tid + s];
				}
			}
			barrier();
		}
		parts = min(WG, 8u);
	}
	if (tid < NR * MMAX) {
		const uint r = tid / MMAX, m = tid % MMAX;
		const uint n = nb + r;
		if (m < M && n < N) {
			float s = 0.0;
			for (uint p = 0u; p < parts; p++) {
				s += red[tid * WG + p];
			}
			if (pc.hasBias != 0u) {
				s += bias[pc.bOff + n];
			}
			y[pc.yOff + m * pc.ldy + n] = YT(s);
		}
	}
}
