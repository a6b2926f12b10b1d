#version 450
// variants: gemv_xf32_yf32= gemv_xf32_yf16=-DY_F16 gemv_xf16_yf32=-DX_F16 gemv_xf16_yf16=-DX_F16,-DY_F16
// gemv.comp: matrix-vector product for few rows, y = x·Wᵀ (+ bias), f32
// accumulation. Same buffers and push constants as matmul.comp, but
// pc.M ≤ MMAX (4): the host loops over M in chunks of 4.
//   x [M, K] (f32, or f16 with X_F16); W [N, K] f16; bias [N] f32; y [M, N]
//   (f32, or f16 with Y_F16) with row stride pc.ldy; element offsets xOff,
//   wOff, bOff, yOff.
//
// One workgroup owns NR consecutive rows of W (= NR output columns) for all
// M ≤ 4 rows of x. Its invocations stride over K; partial sums are reduced
// with subgroupAdd + shared memory (SUBGROUP) or a shared-memory tree only.
// The 1D grid of ceil(N/NR) workgroups is folded into x/y.
// VEC: K, xOff and wOff are multiples of 8, so W and x are read 16 bytes at
// a time through aliased uvec4 / vec4 views of the same bindings.
// The workgroup size (spec constant 0) must be a power of two.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;
layout(constant_id = 2) const bool VEC = false;
layout(constant_id = 3) const bool SUBGROUP = false;

#define MMAX 4
const uint WG = gl_WorkGroupSize.x;

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

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

shared float red[NR * MMAX * WG];

void unpack8(uvec4 u, out float v[8]) {
	vec2 p;
	p = unpackHalf2x16(u.x); v[0] = p.x; v[1] = p.y;
	p = unpackHalf2x16(u.y); v[2] = p.x; v[3] = p.y;
	p = unpackHalf2x16(u.z); v[4] = p.x; v[5] = p.y;
	p = unpackHalf2x16(u.w); v[6] = p.x; v[7] = p.y;
}

void loadX8(uint e, out float v[8]) { // e: element index, multiple of 8
#ifdef X_F16
	unpack8(x8[e / 8], v);
#else
	vec4 a = x4[e / 4], b = x4[e / 4 + 1];
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

	float acc[NR * MMAX];
	[[unroll]] for (uint i = 0; i < NR * MMAX; i++) {
		acc[i] = 0.0;
	}
	// Rows past N read row N-1 (valid memory); their sums are discarded.
	uint wrow[NR];
	[[unroll]] for (uint r = 0; r < NR; r++) {
		wrow[r] = pc.wOff + min(nb + r, N - 1) * K;
	}

	if (VEC) {
		for (uint k = tid * 8; k < K; k += WG * 8) {
			float wv[NR][8];
			[[unroll]] for (uint r = 0; r < NR; r++) {
				unpack8(w8[(wrow[r] + k) / 8], wv[r]);
			}
			[[unroll]] for (uint m = 0; m < MMAX; m++) {
				if (m < M) {
					float xv[8];
					loadX8(pc.xOff + m * K + k, xv);
					[[unroll]] for (uint r = 0; r < NR; r++) {
						float s = acc[r * MMAX + m];
						[[unroll]] for (uint e = 0; e < 8; e++) {
							s = fma(xv[e], wv[r][e], s);
						}
						acc[r * MMAX + m] = s;
					}
				}
			}
		}
	} else {
		for (uint k = tid; k < K; k += WG) {
			float wv[NR];
			[[unroll]] for (uint r = 0; r < NR; r++) {
				wv[r] = float(w[wrow[r] + k]);
			}
			[[unroll]] for (uint m = 0; m < MMAX; m++) {
				if (m < M) {
					const float xv = float(x[pc.xOff + m * K + k]);
					[[unroll]] for (uint r = 0; r < NR; r++) {
						acc[r * MMAX + m] = fma(xv, wv[r], acc[r * MMAX + m]);
					}
				}
			}
		}
	}

	// Reduce the NR·MMAX partial sums over the workgroup.
	uint parts = WG; // partial sums per value left in red[i*WG + 0 .. parts)
	if (SUBGROUP) {
		[[unroll]] for (uint i = 0; i < NR * MMAX; i++) {
			if (i % MMAX < M) { // uniform: skip the rows past M
				acc[i] = subgroupAdd(acc[i]);
			}
		}
		if (subgroupElect()) {
			[[unroll]] for (uint i = 0; i < NR * MMAX; i++) {
				red[i * WG + gl_SubgroupID] = acc[i];
			}
		}
		parts = gl_NumSubgroups;
		barrier();
	} else {
		[[unroll]] for (uint i = 0; i < NR * MMAX; i++) {
			red[i * WG + tid] = acc[i];
		}
		barrier();
		for (uint s = WG / 2; s >= 8; s >>= 1) {
			if (tid < s) {
				[[unroll]] for (uint i = 0; i < NR * MMAX; i++) {
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
			for (uint p = 0; p < parts; p++) {
				s += red[tid * WG + p];
			}
			if (pc.hasBias != 0) {
				s += bias[pc.bOff + n];
			}
			y[pc.yOff + m * pc.ldy + n] = YT(s);
		}
	}
}
