#version 450
// variants: gemv_norm_f16=-DNORM,-DY_F16 gemv_norm_f32=-DNORM gemv_norm_glu=-DNORM,-DGLU,-DY_F16 gemv_add=-DACC gemv_norm_rope=-DNORM,-DY_F16,-DROPE
//
// gemv_fused.comp: the matrix-vector products of a decode step (M <= 4 rows
// of x) with the operations around them fused in, so that a layer takes
// fewer dispatches and barriers. Same kernel structure as gemv.comp (one
// workgroup owns NR consecutive rows of a weight matrix for all M rows of x;
// partial sums are reduced over the workgroup), f32 accumulation.
//
// NORM (gemv_norm_f16, gemv_norm_f32): x f32 [M, K] (the residual stream) is
//   RMS-normalised first, in f32, and rounded to f16 (as RMSNorm into an f16
//   tensor):
//     xn[m, k] = f16(x[m, k] * rsqrt(sum_k x[m, k]^2 / K + eps) * nw[k])
//   With XSH, each workgroup stores xn in shared memory (XS uvec4 slots of
//   8 halves, M*K/8 of them) and the products read it from there, as gemv
//   reads an f16 x; otherwise the products normalise x on the fly.
//   Then, for each weight matrix i < 3 (e.g. q, k and v; N_i = 0: none):
//     y_i[m, n] = xn[m, :] . W_i[n, :] (+ b_i[n])
//   y_i f16 (gemv_norm_f16) or f32 (gemv_norm_f32). The workgroups of matrix
//   0 come first (G0 of them), then matrix 1 (up to G1), then matrix 2.
// GLU (gemv_norm_glu): NORM with two matrices over the same rows, W0 the gate
//   and W1 the up projection, and the SwiGLU product as the epilogue:
//     y_0[m, n] = silu(g) * u,  g = xn . W0[n, :],  u = xn . W1[n, :]
//   silu(g) = g / (1 + exp(-g)); y_0 f16.
// ROPE (gemv_norm_rope): NORM with f16 outputs for the q, k and v of a decode
//   step and the step's RoPE and KV-cache append as the epilogue. At the
//   position p = pos[0] + m of row m (binding 12, read when the dispatch
//   runs): q (y_0 [M, N_0]) rotated, the rotated k into the K cache row p
//   (y_1, [rows, N_1]) and v into the V cache row p (y_2, [rows, N_2]);
//   rows p >= cacheRows are skipped. The rotation is rope_kv.comp's on the
//   f16-rounded products (Hugging Face layout: in each head of D = 2*halfD
//   columns, column i pairs with i + halfD; inv_freq f32 [halfD] at binding
//   11), operation for operation, so the results equal NormMatVec followed
//   by RopeKV bit for bit. The workgroups of q and k own whole pairs: row
//   slot v of a matrix is pair v/2's column (v even) or its partner (v odd),
//   and NR is even.
// ACC (gemv_add): x f16 [M, K]; the residual add as the epilogue:
//     y_0[m, n] += x[m, :] . W0[n, :] (+ b_0[n])   (y_0 f32)
//
// Bindings: 0 x, 1 nw (f32 [K]; NORM only), 2-4 W0..W2 (f16 [N_i, K]),
// 5-7 b0..b2 (f32 [N_i]), 8-10 y0..y2 ([M, N_i]). Unused bindings are bound
// to valid buffers and never read or written. All element offsets are 0.
// VEC: K is a multiple of 8: x, nw and W are read 16 bytes at a time.
// The workgroup size (spec constant 0) must be a power of two.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;
layout(constant_id = 2) const bool VEC = false;
layout(constant_id = 3) const bool SUBGROUP = false;
layout(constant_id = 4) const uint XS = 1;       // NORM, XSH: shared uvec4 slots (>= M*K/8)
layout(constant_id = 5) const bool XSH = false;  // NORM: xn in shared memory (needs VEC)
layout(constant_id = 6) const uint MMAX = 4;     // rows of x: pc.M must equal it (1 … 4)
const uint WG = gl_WorkGroupSize.x;

#ifdef GLU
#define NW 2 // weight matrices read per workgroup
#else
#define NW 1
#endif

#ifdef NORM
#define XT float
#else
#define XT float16_t
#endif
#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { XT x[]; };
#ifdef NORM
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer NWb { float nw[]; };
layout(std430, set = 0, binding = 1) readonly buffer NW4 { vec4 nw4[]; };
layout(std430, set = 0, binding = 2) readonly buffer W0 { float16_t w0[]; };
layout(std430, set = 0, binding = 2) readonly buffer W08 { uvec4 w08[]; };
layout(std430, set = 0, binding = 3) readonly buffer W1 { float16_t w1[]; };
layout(std430, set = 0, binding = 3) readonly buffer W18 { uvec4 w18[]; };
layout(std430, set = 0, binding = 4) readonly buffer W2 { float16_t w2[]; };
layout(std430, set = 0, binding = 4) readonly buffer W28 { uvec4 w28[]; };
layout(std430, set = 0, binding = 5) readonly buffer B0 { float b0[]; };
layout(std430, set = 0, binding = 6) readonly buffer B1 { float b1[]; };
layout(std430, set = 0, binding = 7) readonly buffer B2 { float b2[]; };
#ifdef ROPE
layout(std430, set = 0, binding = 11) readonly buffer F { float inv_freq[]; };
layout(std430, set = 0, binding = 12) readonly buffer P { int pos[]; };
#endif
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
	uint G0, G1;   // workgroups of matrix 0; of matrices 0 and 1
	uint hasBias;  // bit i: b_i is added
	float eps;     // NORM
#ifdef ROPE
	uint halfD;     // D/2 of the q and k heads
	uint cacheRows; // rows of the K and V caches
#endif
} pc;

shared float red[NW * NR * MMAX * WG];
#ifdef NORM
shared uvec4 xs[XS];
#endif

void unpack8(uvec4 u, out float v[8]) {
	vec2 p;
	p = unpackHalf2x16(u.x); v[0] = p.x; v[1] = p.y;
	p = unpackHalf2x16(u.y); v[2] = p.x; v[3] = p.y;
	p = unpackHalf2x16(u.z); v[4] = p.x; v[5] = p.y;
	p = unpackHalf2x16(u.w); v[6] = p.x; v[7] = p.y;
}

// loadW8 reads W_mat[e .. e+8) (e a multiple of 8).
void loadW8(uint mat, uint e, out float v[8]) {
	if (mat == 0) {
		unpack8(w08[e / 8], v);
	} else if (mat == 1) {
		unpack8(w18[e / 8], v);
	} else {
		unpack8(w28[e / 8], v);
	}
}

float loadW(uint mat, uint e) {
	if (mat == 0) {
		return float(w0[e]);
	} else if (mat == 1) {
		return float(w1[e]);
	}
	return float(w2[e]);
}

float scale[MMAX];            // NORM: the rows' rsqrt(mean square + eps)
float acc[NW * NR * MMAX];   // the workgroup's partial sums (row r, x row m at r*MMAX + m)

#ifdef NORM
// normed8 is xn[m, k .. k+8) (k a multiple of 8) packed as 8 halves.
uvec4 normed8(uint m, uint k) {
	const uint e = m * pc.K + k;
	vec4 a = x4[e / 4] * scale[m] * nw4[k / 4];
	vec4 b = x4[e / 4 + 1] * scale[m] * nw4[k / 4 + 1];
	return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
#endif

// loadX8 reads the (normalised) x[m, k .. k+8) (k a multiple of 8).
void loadX8(uint m, uint k, out float v[8]) {
#ifdef NORM
	unpack8(XSH ? xs[(m * pc.K + k) / 8] : normed8(m, k), v);
#else
	unpack8(x8[(m * pc.K + k) / 8], v);
#endif
}

float loadX(uint m, uint k) {
#ifdef NORM
	const float v = x[m * pc.K + k] * scale[m] * nw[k];
	return unpackHalf2x16(packHalf2x16(vec2(v, 0.0))).x;
#else
	return float(x[m * pc.K + k]);
#endif
}

// reduceParts sums acc[0 .. count) over the workgroup into
// red[i * WG + 0 .. parts) and returns parts (sumParts adds them up).
uint reduceParts(uint tid, uint count) {
	if (SUBGROUP) {
		[[unroll]] for (uint i = 0; i < NW * NR * MMAX; i++) {
			if (i < count) {
				acc[i] = subgroupAdd(acc[i]);
			}
		}
		if (subgroupElect()) {
			[[unroll]] for (uint i = 0; i < NW * NR * MMAX; i++) {
				if (i < count) {
					red[i * WG + gl_SubgroupID] = acc[i];
				}
			}
		}
		barrier();
		return gl_NumSubgroups;
	}
	[[unroll]] for (uint i = 0; i < NW * NR * MMAX; i++) {
		if (i < count) {
			red[i * WG + tid] = acc[i];
		}
	}
	barrier();
	for (uint s = WG / 2; s >= 8; s >>= 1) {
		if (tid < s) {
			[[unroll]] for (uint i = 0; i < NW * NR * MMAX; i++) {
				if (i < count) {
					red[i * WG + tid] += red[i * WG + tid + s];
				}
			}
		}
		barrier();
	}
	return min(WG, 8u);
}

// rowOf is the weight row of row slot v (< N) of matrix mat: v itself, or
// with ROPE, for q and k, pair v/2's column (v even) or its partner.
uint rowOf(uint mat, uint v) {
#ifdef ROPE
	if (mat < 2) {
		const uint pr = v / 2;
		const uint h = pr / pc.halfD;
		return h * 2 * pc.halfD + (pr - h * pc.halfD) + (v & 1) * pc.halfD;
	}
#endif
	return v;
}

// addBias is s + b_mat[n] where matrix mat has a bias, else s.
float addBias(uint mat, uint n, float s) {
	if ((pc.hasBias & (1u << mat)) != 0) {
		s += mat == 0 ? b0[n] : (mat == 1 ? b1[n] : b2[n]);
	}
	return s;
}

#ifdef ROPE
float reduce_2pi(float a) { // rope_kv.comp's
	precise float k = roundEven(a * 0.15915493667125702);
	precise float r = a - k * 6.25;
	r = r - k * 0.0322265625;
	r = r - k * 0.000946044921875;
	r = r - k * 1.2699757462542038e-05;
	return r;
}

// roundF16 rounds v through an f16 conversion, the same conversion as the
// unfused kernels' stores (packHalf2x16 may round differently: on NVIDIA it
// gave q and K values one f16 step apart from NormMatVec + RopeKV).
float roundF16(float v) {
	return float(float16_t(v));
}
#endif

float sumParts(uint i, uint parts) {
	float s = 0.0;
	for (uint p = 0; p < parts; p++) {
		s += red[i * WG + p];
	}
	return s;
}

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	const uint M = pc.M, K = pc.K;
	uint mat, nb, N;
	if (g < pc.G0) {
		mat = 0; nb = g * NR; N = pc.N0;
	} else if (g < pc.G1) {
		mat = 1; nb = (g - pc.G0) * NR; N = pc.N1;
	} else {
		mat = 2; nb = (g - pc.G1) * NR; N = pc.N2;
	}
	if (nb >= N) {
		return; // uniform over the workgroup
	}

	[[unroll]] for (uint i = 0; i < NW * NR * MMAX; i++) {
		acc[i] = 0.0;
	}

#ifdef NORM
	// The rows' mean squares, summed over the whole workgroup (16 bytes a
	// load where VEC: one load per invocation for K = 4·WG) and reduced
	// like the products below. Summing in every subgroup alone needs no
	// barrier but takes K/subgroup dependent loads (16 for K = 512 on a
	// 32-wide subgroup), which a latency-bound decode step pays in full.
	[[unroll]] for (uint m = 0; m < MMAX; m++) {
		float s = 0.0;
		if (VEC) {
			for (uint k = tid; k < K / 4; k += WG) {
				const vec4 v = x4[(m * K) / 4 + k];
				s += dot(v, v);
			}
		} else {
			for (uint k = tid; k < K; k += WG) {
				const float v = x[m * K + k];
				s = fma(v, v, s);
			}
		}
		acc[m] = s;
	}
	{
		const uint parts = reduceParts(tid, MMAX);
		[[unroll]] for (uint m = 0; m < MMAX; m++) {
			scale[m] = inversesqrt(sumParts(m, parts) / float(K) + pc.eps);
			acc[m] = 0.0;
		}
	}
	barrier(); // red is reused below
	if (XSH) {
		const uint k8 = K / 8;
		for (uint e = tid; e < M * k8; e += WG) {
			const uint m = e / k8;
			xs[e] = normed8(m, (e - m * k8) * 8);
		}
		barrier();
	}
#endif

	// Rows past N read row N-1 (valid memory); their sums are discarded.
	uint wrow[NR];
	[[unroll]] for (uint r = 0; r < NR; r++) {
		wrow[r] = rowOf(mat, min(nb + r, N - 1)) * K;
	}

	if (VEC) {
		for (uint k = tid * 8; k < K; k += WG * 8) {
			float wv[NW * NR][8];
			[[unroll]] for (uint r = 0; r < NR; r++) {
				loadW8(mat, wrow[r] + k, wv[r]);
#ifdef GLU
				loadW8(1, wrow[r] + k, wv[NR + r]);
#endif
			}
			[[unroll]] for (uint m = 0; m < MMAX; m++) {
				if (m < M) {
					float xv[8];
					loadX8(m, k, xv);
					[[unroll]] for (uint r = 0; r < NW * NR; r++) {
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
			float wv[NW * NR];
			[[unroll]] for (uint r = 0; r < NR; r++) {
				wv[r] = loadW(mat, wrow[r] + k);
#ifdef GLU
				wv[NR + r] = loadW(1, wrow[r] + k);
#endif
			}
			[[unroll]] for (uint m = 0; m < MMAX; m++) {
				if (m < M) {
					const float xv = loadX(m, k);
					[[unroll]] for (uint r = 0; r < NW * NR; r++) {
						acc[r * MMAX + m] = fma(xv, wv[r], acc[r * MMAX + m]);
					}
				}
			}
		}
	}

	const uint parts = reduceParts(tid, NW * NR * MMAX);
	if (tid < NR * MMAX) {
		const uint r = tid / MMAX, m = tid % MMAX;
		const uint v = nb + r;
		if (m < M && v < N) {
			const uint n = rowOf(mat, v);
			float s = addBias(mat, n, sumParts(tid, parts));
			const uint o = m * N + n;
#if defined(ROPE)
			const int p = pos[0] + int(m);
			const bool inCache = p >= 0 && uint(p) < pc.cacheRows;
			if (mat == 2) {
				if (inCache) {
					y2[uint(p) * N + n] = YT(s);
				}
			} else {
				// The pair (x0, x1) of columns (i, i + halfD), rounded to
				// f16 as the unfused products are stored.
				const uint np = rowOf(mat, v ^ 1u);
				const float sp = addBias(mat, np, sumParts((r ^ 1u) * MMAX + m, parts));
				const bool first = (v & 1) == 0;
				const float x0 = roundF16(first ? s : sp);
				const float x1 = roundF16(first ? sp : s);
				const uint i = (v / 2) % pc.halfD;
				precise float a = float(p) * inv_freq[i];
				float rr = reduce_2pi(a);
				float c = cos(rr);
				float sn = sin(rr);
				// precise: no fused multiply-add, so that the rotation
				// rounds as rope_kv.comp's does (NVIDIA's compiler contracts
				// the two kernels' products differently otherwise).
				precise float y = first ? x0 * c - x1 * sn : x1 * c + x0 * sn;
				if (mat == 0) {
					y0[o] = YT(y);
				} else if (inCache) {
					y1[uint(p) * N + n] = YT(y);
				}
			}
#elif defined(GLU)
			const float u = sumParts(NR * MMAX + tid, parts);
			y0[o] = YT(s / (1.0 + exp(-s)) * u);
#elif defined(ACC)
			y0[o] = y0[o] + s;
#else
			if (mat == 0) {
				y0[o] = YT(s);
			} else if (mat == 1) {
				y1[o] = YT(s);
			} else {
				y2[o] = YT(s);
			}
#endif
		}
	}
}
