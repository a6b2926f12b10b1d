#version 450
// variants: matmul_cm1_yf32= matmul_cm1_yf16=-DY_F16 matmul_cm1_glu_yf16=-DY_F16,-DGLU
// matmul_cm1.comp: cooperative-matrix (VK_KHR_cooperative_matrix) matmul
//   y = x·Wᵀ (+ bias), or y += x·Wᵀ (+ bias) with ACC, f16 inputs, f32
//   accumulation.
//   x [M, K] f16, row-major, K contiguous
//   W [N, K] f16, row-major, K contiguous
//   bias [N] f32 (read only when pc.hasBias != 0)
//   y [M, N] (f32, or f16 with Y_F16), row stride pc.ldy
// Element offsets xOff, wOff, bOff, yOff come from the push constants (same
// layout as matmul.comp), so the host can bind aligned sub-ranges in chunks.
//
// One workgroup computes a BM×BN tile of y with (BM/WM)·(BN/WN) subgroups;
// subgroup s owns a WM×WN sub-tile held as (WM/16)·(WN/16) 16×16 f32
// accumulator fragments. K is walked in BK-wide slabs staged in shared memory
// as f16: A rows [m][k] and W rows [n][k] as f16vec4, rows padded by 16 bytes
// (BK = 32: 80-byte stride, so the eight 16-byte row pieces a fragment load
// touches at a time fall in distinct banks). Shared memory is
// double buffered: the next slab is loaded from global memory into registers
// while the current one is multiplied, then stored into the other buffer;
// one barrier per slab. With NST = 1 (spec constant 8) there is one buffer
// and two barriers per slab, which leaves room for larger BK. W fragments are loaded column-major, which turns the
// [n][k] rows into the K×N B operand.
//
// VEC (spec constant 6): K, xOff and wOff are multiples of 8; global loads are
// then 16 bytes wide. Otherwise elements are gathered one by one. Rows past M
// or N and columns past K load as zeros; stores are guarded.
//
// Workgroups are numbered linearly (x + y·gridX, the host folds big grids)
// and mapped to tiles in groups of GM tile rows (spec constant 7): the
// workgroups resident at one time share a few rows of x and sweep W together,
// so both stay in L2.
//
// Epilogue: with DIRECT (spec constant 10, the host's default) a tile
// wholly inside y, with no bias and y's offset and rows 16-byte aligned,
// stores each fragment converted to y's type with one coopMatStore (with
// ACC, y's old values loaded as a fragment and added in f32 first). In
// other tiles (and all of them without DIRECT), each subgroup stores one
// fragment at a time through a private 1 KiB f32 shared-memory scratch, then its invocations add the bias and
// write 4 outputs each; with ACC (spec constant 9) they add y's old values
// last, y = y + (x·Wᵀ + bias) in f32, read through the read-only views YR
// and YR4 by the invocation that writes them (MatMulAdd: an f32 y equals
// MatMul into an f32 temporary followed by add_inplace bit for bit).
//
// GLU (the matmul_cm1_glu variant: MatMulSwiGLU): W is [2N, K], gate rows
// [0, N) stacked over up rows [N, 2N), and y [M, N] = SiLU(x·Wgᵀ) ⊙ x·Wuᵀ
// (N = pc.N features). A BN-wide tile of the product covers BN/2 features
// from nf0: B-slab row r (16-row block b = r/16) holds gate row
// nf0 + (b/2)·16 + r%16 when b is even and up row N + (the same) when b is
// odd, so with WN a multiple of 32 every subgroup holds gate and up of the
// same 16 features in fragments j (even) and j + 1. The epilogue combines
// them element by element (accumulators of one type map elements to
// invocations alike): g and u rounded to f16 first, as MatMul's f16 outputs
// are, then g / (1 + exp(-g)) · u in f32 as swiglu.comp computes it (gluAct,
// glu.glsl), so the
// result equals MatMul into f16 gate and up followed by SwiGLU bit for bit
// (up to the driver compiling the same expression alike). No bias, no ACC.
// (Shared arrays have the fragments' component types,
// f16 and f32, as llama.cpp's coopmat shaders do.)
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable
#ifdef GLU
#extension GL_GOOGLE_include_directive : require
#include "glu.glsl"
#endif

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint WM = 64;
layout(constant_id = 5) const uint WN = 64;
layout(constant_id = 6) const bool VEC = false;
layout(constant_id = 7) const uint GM = 8;
layout(constant_id = 8) const uint NST = 2; // shared stages: 2, or 1 (two barriers per slab)
layout(constant_id = 9) const bool ACC = false; // y += x·Wᵀ (+ bias)
layout(constant_id = 10) const bool DIRECT = true; // whole fragments stored straight to y (see the epilogue)

const uint WG = gl_WorkGroupSize.x;
const uint FM = WM / 16; // fragments per subgroup along M
const uint FN = WN / 16; // ... along N
const uint WARPS_N = BN / WN;
const uint C8 = BK / 8;      // uvec4 (global loads) per slab row
const uint SA = BK / 4 + 2;  // padded row stride in f16vec4
const uint UA = BM * C8;     // uvec4 per A slab
const uint UB = BN * C8;
const uint LA = (UA + WG - 1) / WG;
const uint LB = (UB + WG - 1) / WG;
const uint BOFF = BM * SA;   // B slab offset inside a stage
const uint STAGE = (BM + BN) * SA;
const uint NSG = (BM / WM) * (BN / WN); // subgroups

#ifdef Y_F16
#define YT float16_t
const uint YA = 8; // y elements in 16 bytes
#else
#define YT float
const uint YA = 4;
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { float16_t x[]; };
layout(std430, set = 0, binding = 0) readonly buffer X8 { uvec4 x8[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 1) readonly buffer W8 { uvec4 w8[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };
#ifdef Y_F16
layout(std430, set = 0, binding = 3) writeonly buffer Y4 { uvec2 y4[]; };
#else
layout(std430, set = 0, binding = 3) writeonly buffer Y4 { vec4 y4[]; };
#endif
// Read-only views of y for ACC.
layout(std430, set = 0, binding = 3) readonly buffer YR { YT yr[]; };
#ifdef Y_F16
layout(std430, set = 0, binding = 3) readonly buffer YR4 { uvec2 yr4[]; };
#else
layout(std430, set = 0, binding = 3) readonly buffer YR4 { vec4 yr4[]; };
#endif

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

shared f16vec4 sh[NST * STAGE];
shared float scratch[NSG * 256];

uvec4 ra[LA];
uvec4 rb[LB];

uint pack2(float16_t a, float16_t b) {
	return packFloat2x16(f16vec2(a, b));
}

// gatherX / gatherW read 8 elements starting at (row, gk) one by one, zero
// beyond K (scalar path: any K and offsets).
uvec4 gatherX(uint row, uint gk) {
	float16_t v[8];
	[[unroll]] for (uint e = 0; e < 8; e++) {
		v[e] = gk + e < pc.K ? x[pc.xOff + row * pc.K + gk + e] : float16_t(0.0);
	}
	return uvec4(pack2(v[0], v[1]), pack2(v[2], v[3]), pack2(v[4], v[5]), pack2(v[6], v[7]));
}

uvec4 gatherW(uint row, uint gk) {
	float16_t v[8];
	[[unroll]] for (uint e = 0; e < 8; e++) {
		v[e] = gk + e < pc.K ? w[pc.wOff + row * pc.K + gk + e] : float16_t(0.0);
	}
	return uvec4(pack2(v[0], v[1]), pack2(v[2], v[3]), pack2(v[4], v[5]), pack2(v[6], v[7]));
}

// fetch loads the slab at k0 into registers.
void fetch(uint k0, uint m0, uint n0) {
	const uint tid = gl_LocalInvocationID.x;
	[[unroll]] for (uint l = 0; l < LA; l++) {
		const uint u = tid + l * WG;
		const uint gm = m0 + u / C8, gk = k0 + (u % C8) * 8;
		uvec4 v = uvec4(0);
		if ((LA * WG == UA || u < UA) && gm < pc.M && gk < pc.K) {
			v = VEC ? x8[(pc.xOff + gm * pc.K + gk) / 8] : gatherX(gm, gk);
		}
		ra[l] = v;
	}
	[[unroll]] for (uint l = 0; l < LB; l++) {
		const uint u = tid + l * WG;
		const uint gk = k0 + (u % C8) * 8;
#ifdef GLU
		// n0 is the tile's first product column, 2·nf0; see the header.
		const uint r = u / C8, b = r / 16;
		const uint feat = n0 / 2 + (b / 2) * 16 + r % 16;
		const uint gn = feat + (b % 2) * pc.N;
		const bool inN = feat < pc.N;
#else
		const uint gn = n0 + u / C8;
		const bool inN = gn < pc.N;
#endif
		uvec4 v = uvec4(0);
		if ((LB * WG == UB || u < UB) && inN && gk < pc.K) {
			v = VEC ? w8[(pc.wOff + gn * pc.K + gk) / 8] : gatherW(gn, gk);
		}
		rb[l] = v;
	}
}

// stash stores the registers into shared stage st.
void stash(uint st) {
	const uint tid = gl_LocalInvocationID.x;
	const uint base = st * STAGE;
	[[unroll]] for (uint l = 0; l < LA; l++) {
		const uint u = tid + l * WG;
		if (LA * WG == UA || u < UA) {
			const uint o = base + (u / C8) * SA + (u % C8) * 2;
			sh[o] = f16vec4(unpackFloat2x16(ra[l].x), unpackFloat2x16(ra[l].y));
			sh[o + 1] = f16vec4(unpackFloat2x16(ra[l].z), unpackFloat2x16(ra[l].w));
		}
	}
	[[unroll]] for (uint l = 0; l < LB; l++) {
		const uint u = tid + l * WG;
		if (LB * WG == UB || u < UB) {
			const uint o = base + BOFF + (u / C8) * SA + (u % C8) * 2;
			sh[o] = f16vec4(unpackFloat2x16(rb[l].x), unpackFloat2x16(rb[l].y));
			sh[o + 1] = f16vec4(unpackFloat2x16(rb[l].z), unpackFloat2x16(rb[l].w));
		}
	}
}

void main() {
	const uint M = pc.M, N = pc.N, K = pc.K;
#ifdef GLU
	const uint nTN = (N + BN / 2 - 1) / (BN / 2); // BN/2 features a tile
#else
	const uint nTN = (N + BN - 1) / BN;
#endif
	const uint nTM = (M + BM - 1) / BM;
	const uint L = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (L >= nTM * nTN) {
		return; // workgroup-uniform
	}
	// Grouped tile order: GM tile rows at a time, rows fastest.
	const uint grp = L / (GM * nTN);
	const uint first = grp * GM;
	const uint gsz = min(nTM - first, GM);
	const uint rem = L - grp * GM * nTN;
	const uint m0 = (first + rem % gsz) * BM;
	const uint n0 = (rem / gsz) * BN;

	const uint warp = gl_SubgroupID;
	const uint wm = warp / WARPS_N, wn = warp % WARPS_N;
	const uint aRow = (wm * WM) * SA;
	const uint bRow = BOFF + (wn * WN) * SA;

	coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[FM * FN];
	[[unroll]] for (uint i = 0; i < FM * FN; i++) {
		acc[i] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
	}

	const uint nk = (K + BK - 1) / BK;
	fetch(0, m0, n0);
	stash(0);
	barrier();
	for (uint kt = 0; kt < nk; kt++) {
		const uint cur = (kt % NST) * STAGE;
		const bool more = kt + 1 < nk;
		if (more) {
			fetch((kt + 1) * BK, m0, n0); // in flight during the products
		}
		[[unroll]] for (uint kk = 0; kk < BK / 16; kk++) {
			coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a[FM];
			coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> b[FN];
			[[unroll]] for (uint i = 0; i < FM; i++) {
				coopMatLoad(a[i], sh, cur + aRow + i * 16 * SA + kk * 4, SA, gl_CooperativeMatrixLayoutRowMajor);
			}
			[[unroll]] for (uint j = 0; j < FN; j++) {
				coopMatLoad(b[j], sh, cur + bRow + j * 16 * SA + kk * 4, SA, gl_CooperativeMatrixLayoutColumnMajor);
			}
			[[unroll]] for (uint i = 0; i < FM; i++) {
				[[unroll]] for (uint j = 0; j < FN; j++) {
					acc[i * FN + j] = coopMatMulAdd(a[i], b[j], acc[i * FN + j]);
				}
			}
		}
		if (more) {
			if (NST == 1) {
				barrier(); // everyone is done reading the only stage
			}
			stash((kt + 1) % NST);
		}
		barrier();
	}

	// Epilogue. Fragment j of subgroup column wn holds product columns
	// n0 + wn·WN + j·16 on; with GLU, output (feature) columns are half
	// those (JSTEP: fragment pairs, gate j and up j + 1, the features of
	// the tile from n0/2; see the header).
#ifdef GLU
	const uint JSTEP = 2;
	// act = SiLU(g)·u over each fragment pair, g and u rounded to f16
	// first, into the gate fragment.
	[[unroll]] for (uint i = 0; i < FM; i++) {
		[[unroll]] for (uint j = 0; j < FN; j += 2) {
			[[unroll]] for (uint e = 0; e < uint(acc[i * FN + j].length()); e++) {
				acc[i * FN + j][e] = gluAct(acc[i * FN + j][e], acc[i * FN + j + 1][e]);
			}
		}
	}
#else
	const uint JSTEP = 1;
#endif
	const uint tn0 = n0 / JSTEP, tnw = BN / JSTEP; // the tile's first output column and width
	// DIRECT: a tile wholly inside y, with no bias and y's rows and offset
	// 16-byte aligned, stores each fragment straight to y with one
	// coopMatStore (converted to y's type; with ACC y's old values are
	// loaded as a fragment and added in f32 first): the same values as the
	// scratch path below, without its shared-memory round trips and
	// barriers. The choice is made once per workgroup tile: made per
	// fragment, with the scratch path inside the branch, lavapipe (Mesa
	// 26.1) wrote wrong values for a subgroup's later scratch-path
	// fragments (TestMatMulCoopMatStore).
	if (DIRECT && pc.hasBias == 0 && m0 + BM <= M && tn0 + tnw <= N && pc.ldy % YA == 0 && pc.yOff % YA == 0) {
		[[unroll]] for (uint i = 0; i < FM; i++) {
			[[unroll]] for (uint j = 0; j < FN; j += JSTEP) {
				const uint fn = tn0 + (wn * WN + j * 16) / JSTEP;
				const uint o0 = pc.yOff + (m0 + wm * WM + i * 16) * pc.ldy + fn;
				if (ACC) {
					coopmat<YT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> old;
					coopMatLoad(old, yr, o0, pc.ldy, gl_CooperativeMatrixLayoutRowMajor);
#ifdef Y_F16
					acc[i * FN + j] = acc[i * FN + j] + coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(old);
#else
					acc[i * FN + j] = acc[i * FN + j] + old;
#endif
				}
#ifdef Y_F16
				coopMatStore(coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(acc[i * FN + j]), y, o0, pc.ldy, gl_CooperativeMatrixLayoutRowMajor);
#else
				coopMatStore(acc[i * FN + j], y, o0, pc.ldy, gl_CooperativeMatrixLayoutRowMajor);
#endif
			}
		}
		return;
	}
	// Otherwise through a per-subgroup 16×16 f32 scratch.
	const uint scr = warp * 256;
	const uint lane = gl_SubgroupInvocationID;
	const uint SG = gl_SubgroupSize;
	[[unroll]] for (uint i = 0; i < FM; i++) {
		[[unroll]] for (uint j = 0; j < FN; j += JSTEP) {
			const uint fn = tn0 + (wn * WN + j * 16) / JSTEP;
			const uint fm = m0 + wm * WM + i * 16;
			coopMatStore(acc[i * FN + j], scratch, scr, 16, gl_CooperativeMatrixLayoutRowMajor);
			subgroupBarrier();
			for (uint e = lane; e < 64; e += SG) {
				const uint gm = fm + e / 4;
				const uint gn = fn + (e % 4) * 4;
				if (gm < M && gn < N) {
					vec4 v = vec4(scratch[scr + e * 4], scratch[scr + e * 4 + 1], scratch[scr + e * 4 + 2], scratch[scr + e * 4 + 3]);
					if (pc.hasBias != 0) {
						[[unroll]] for (uint c = 0; c < 4; c++) {
							if (gn + c < N) {
								v[c] += bias[pc.bOff + gn + c];
							}
						}
					}
					const uint o = pc.yOff + gm * pc.ldy + gn;
					const bool whole = gn + 3 < N && o % 4 == 0;
					if (ACC) {
						if (whole) {
#ifdef Y_F16
							const uvec2 h = yr4[o / 4];
							v += vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
#else
							v += yr4[o / 4];
#endif
						} else {
							[[unroll]] for (uint c = 0; c < 4; c++) {
								if (gn + c < N) {
									v[c] += float(yr[o + c]);
								}
							}
						}
					}
					if (whole) {
#ifdef Y_F16
						y4[o / 4] = uvec2(packFloat2x16(f16vec2(v.xy)), packFloat2x16(f16vec2(v.zw)));
#else
						y4[o / 4] = v;
#endif
					} else {
						[[unroll]] for (uint c = 0; c < 4; c++) {
							if (gn + c < N) {
								y[o + c] = YT(v[c]);
							}
						}
					}
				}
			}
			subgroupBarrier();
		}
	}
}
