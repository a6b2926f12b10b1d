#version 450
// variants: blockmap_cm_dense=-DBLOCKMAP blockmap_cm_csr=-DBLOCKMAP,-DCSR est_last_cm_stats=-DSTATS est_last_cm_stats_lse=-DSTATS,-DLSE_TAIL est_last_cm_vs=-DVS
//
// qk_cm.comp: the score passes of the pivot block map and of the last-block
// estimate with KHR cooperative matrices (16×16×16 f16×f16→f32, subgroup
// scope). Same bindings and results as blockmap.comp (BLOCKMAP, CSR; also
// its push constants and grid) and est_last.comp (STATS, VS, whose push
// constants add kpw and whose grid packs kpw key blocks per workgroup, see
// below); only the arithmetic of
// s = scale·q·k differs: the products q·k of the f16 inputs are exact in
// f32 and accumulated in f32 by the matrix unit, then scaled (the scalar
// kernels scale q first and add the products in order), so scores differ by
// a few f32 ulps of the dot product.
//
// Workgroup = NSG = TR/16 subgroups; subgroup s owns query rows 16s..16s+15
// of a row pass of TR rows and keeps them in registers as D/16 A fragments
// (unscaled f16, staged through shared memory). Per K tile of TC keys (f16,
// zero beyond the block, staged in shared memory with padded rows) a
// subgroup computes its 16×TC scores as TC/16 accumulator fragments.
//
// BLOCKMAP (docs/algorithm.md#pivot-map). Grid (nb, nb, nheads) = (c or CSR
//   slot, r, head index), as blockmap.comp:
//     out[x][r, c] = (1/|r|) Σ_{i∈r} Σ_{j∈c, j≤i} exp(scale·q_i·k_j − ℓ_i).
//   exp is taken on the accumulator components themselves: their row and
//   column (implementation-defined) are probed once by loading a matrix of
//   element indices from shared memory. Each invocation sums its
//   components; one shared-memory tree reduction per workgroup. Sub-tiles
//   above the diagonal of a diagonal block are skipped (per workgroup and
//   per subgroup). Dense: c > r writes 0. CSR: only listed blocks are
//   written (the caller zero-fills first); columns outside [0, nb) are
//   ignored. A head index outside [0, Hq) writes NaN, and so does a driver
//   whose accumulator length() differs from NE.
//   Bindings: 0 q f16 [S, Hq, D]; 1 k f16 [S, Hkv, D]; 2 lse f32 [Hq, S];
//   3 heads i32 [nheads]; dense: 4 out f32 [nheads, nb, nb]; CSR: 4 rowptr
//   i32 [nheads, nb+1] (absolute offsets into cols), 5 cols i32, 6 out.
// STATS / VS (docs/algorithm.md#last-block-estimates). Grid (⌈nb/kpw⌉, Hq)
//   with push constant kpw ≥ 1: workgroup (x, h) takes key blocks
//   c = x·kpw .. min(x·kpw + kpw, nb) − 1 in turn, each as est_last.comp's
//   workgroup (c, h) does (same outputs, kpw = 1 is its grid): the
//   W = min(B, S) window rows i_t = S−W+t against key block c. When W ≤ TR
//   the query fragments are loaded once for all kpw blocks. Each subgroup
//   stores its scores to a TR×TC f32 tile in shared memory, and the row
//   statistics (STATS: block-local max and Σexp per row, each row as RP
//   segments of one invocation each, combined per row) or P = exp(s − ℓ_t)
//   with its column and diagonal sums (VS: each column or diagonal by one
//   invocation) are taken from that tile (no atomics).
//   Bindings: 0 q, 1 k; STATS: 2 stats vec2 [Hq, nb, W]; VS: 2 lse f32
//   [Hq, W], 3 v f32 [Hq, S], 4 vblk f32 [Hq, nb], 5 spart f32 [Hq, nb, 2B].
//   STATS with LSE_TAIL (est_last_cm_stats_lse): the last workgroup of each
//   head also combines the statistics into ℓ (est_lse.glsl): 3 lse f32
//   [Hq, W]; 4 counter u32 [Hq] (0 before the first use, reset after).
// Only the loops over the D/16 fragments are unrolled by hint (their
// fragments live in registers); the loops over key fragments and
// accumulator components are left to the driver: lavapipe compiles the
// fully unrolled shader an order of magnitude slower.
// Spec constants: 0 local size (= NSG · subgroup size, full subgroups of
//   the size the host requires), 1 TR (16, 32, 64 or 128), 2 TC (multiple
//   of 16), 3 D (multiple of 16), 4 NE = 256 / subgroup size (accumulator
//   components per invocation), 5 BS = B (STATS / VS only).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint TR = 64;  // query rows per pass, 16 per subgroup
layout(constant_id = 2) const uint TC = 32;  // keys per K tile
layout(constant_id = 3) const uint D = 128;  // head dim
layout(constant_id = 4) const uint NE = 8;   // accumulator components per invocation
layout(constant_id = 5) const uint BS = 64;  // block size (STATS / VS)

const uint LOCAL = gl_WorkGroupSize.x;
const uint NSG = TR / 16;
const uint D8 = D / 8;
const uint DF = D / 16;
const uint CF = TC / 16;
const uint KS = D / 4 + 2; // f16vec4 row stride of the K / Q staging (16 bytes of padding)

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec4 q8[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec4 k8[]; };

#ifdef BLOCKMAP
layout(std430, set = 0, binding = 2) readonly buffer Lb { float lse[]; };
layout(std430, set = 0, binding = 3) readonly buffer Hb { int heads[]; };
#ifdef CSR
layout(std430, set = 0, binding = 4) readonly buffer Rb { int rowptr[]; };
layout(std430, set = 0, binding = 5) readonly buffer Cb { int cols[]; };
layout(std430, set = 0, binding = 6) writeonly buffer Ob { float outm[]; };
#else
layout(std430, set = 0, binding = 4) writeonly buffer Ob { float outm[]; };
#endif
layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	uint Hkv;
	uint B;
	uint nb;
	uint nheads;
	float scale;
} pc;
#else
#ifdef STATS
#ifdef LSE_TAIL
layout(std430, set = 0, binding = 2) coherent buffer Sb { vec2 stats[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Lob { float lseOut[]; };
layout(std430, set = 0, binding = 4) coherent buffer Cnb { uint lctr[]; };
#else
layout(std430, set = 0, binding = 2) writeonly buffer Sb { vec2 stats[]; };
#endif
#else
layout(std430, set = 0, binding = 2) readonly buffer Lb { float lse[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Vb { float v[]; };
layout(std430, set = 0, binding = 4) writeonly buffer VBb { float vblk[]; };
layout(std430, set = 0, binding = 5) writeonly buffer SPb { float spart[]; };
#endif
layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	uint Hkv;
	uint nb;
	uint W;
	float scale;
	uint kpw; // key blocks per workgroup (0 means 1)
} pc;
#endif

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

shared f16vec4 ksh[TC * KS]; // K tile; Q staging (TC rows a pass)
shared float lsh[TR];        // ℓ of the pass rows (BLOCKMAP, VS)
#ifdef BLOCKMAP
shared float red[NSG * 256]; // per-subgroup layout probe, then the workgroup sum
#else
const uint SS = TC + 4; // f32 row stride of the score tile
const float NEG = -3.0e38;
shared float ssh[TR * SS];
#ifdef STATS
shared float rowm[BS];
shared float rowl[BS];
// Each row of a score tile is taken as RP segments of SEG columns by RP
// invocations (at least 2, so that CPU devices with fewer invocations than
// rows run the same path), their (max, Σexp) combined per row.
const uint RP = LOCAL / TR > 2u ? LOCAL / TR : 2u;
const uint SEG = (TC + RP - 1) / RP;
shared vec2 rpart[TR * RP];
#else
shared float colacc[BS];
shared float slacc[2 * BS + TR];
shared float red[LOCAL];
#endif
#endif

MATA qf[DF];

#if defined(STATS) && defined(LSE_TAIL)
#define LSE_SCRATCH ssh // TR·(TC+4) ≥ LOCAL floats, free after the score tiles
#include "est_lse.glsl"
#endif

void stageRow(uint dst, uvec4 w) {
	ksh[dst] = f16vec4(unpackFloat2x16(w.x), unpackFloat2x16(w.y));
	ksh[dst + 1] = f16vec4(unpackFloat2x16(w.z), unpackFloat2x16(w.w));
}

// loadQ puts rows row0 + [0, TR) of query head h into the subgroups' A
// fragments (rows at or past rend are zero). Ends with a barrier.
void loadQ(uint row0, uint rend, uint h) {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	for (uint pass = 0; pass < TR; pass += TC) {
		const uint np = min(TC, TR - pass);
		for (uint idx = tid; idx < np * D8; idx += LOCAL) {
			const uint rr = idx / D8;
			const uint cc = idx - rr * D8;
			const uint row = row0 + pass + rr;
			stageRow(rr * KS + 2 * cc, row < rend ? q8[(row * pc.Hq + h) * D8 + cc] : uvec4(0));
		}
		barrier();
		if (sg * 16 >= pass && sg * 16 < pass + np) {
			[[unroll]] for (uint df = 0; df < DF; df++) {
				coopMatLoad(qf[df], ksh, (sg * 16 - pass) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
			}
		}
		barrier();
	}
}

// loadK stages keys key0 + [0, TC) of KV head hk (keys at or past kend are
// zero). Ends with a barrier.
void loadK(uint key0, uint kend, uint hk) {
	const uint tid = gl_LocalInvocationIndex;
	for (uint idx = tid; idx < TC * D8; idx += LOCAL) {
		const uint j = idx / D8;
		const uint cc = idx - j * D8;
		const uint key = key0 + j;
		stageRow(j * KS + 2 * cc, key < kend ? k8[(key * pc.Hkv + hk) * D8 + cc] : uvec4(0));
	}
	barrier();
}

// scores returns the unscaled q·k of the subgroup's 16 rows against keys
// cf·16 .. cf·16+15 of the staged tile.
ACC scores(uint cf) {
	ACC s = ACC(0.0);
	[[unroll]] for (uint df = 0; df < DF; df++) {
		MATB kt;
		coopMatLoad(kt, ksh, cf * 16 * KS + df * 4, KS, gl_CooperativeMatrixLayoutColumnMajor);
		s = coopMatMulAdd(qf[df], kt, s);
	}
	return s;
}

#ifdef BLOCKMAP
void main() {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	const uint lane = gl_SubgroupInvocationID;
	uint c = gl_WorkGroupID.x;
	const uint r = gl_WorkGroupID.y;
	const uint hi = gl_WorkGroupID.z;
	const uint nb = pc.nb;
#ifdef CSR
	const int beg = rowptr[hi * (nb + 1) + r];
	const int end = rowptr[hi * (nb + 1) + r + 1];
	if (int(c) >= end - beg) {
		return; // uniform: the whole workgroup leaves
	}
	const int cc = cols[beg + int(c)];
	if (cc < 0 || uint(cc) >= nb) {
		return;
	}
	c = uint(cc);
#endif
	const uint outIdx = (hi * nb + r) * nb + c;
	const int hh = heads[hi];
	if (c > r || hh < 0 || uint(hh) >= pc.Hq) {
		if (tid == 0) {
			outm[outIdx] = c > r ? 0.0 : uintBitsToFloat(0x7FC00000u);
		}
		return;
	}
	const uint h = uint(hh);
	const uint kvh = h / (pc.Hq / pc.Hkv);
	const uint r0 = r * pc.B;
	const uint c0 = c * pc.B;
	const uint nr = min(pc.B, pc.S - r0);
	const uint nk = min(pc.B, pc.S - c0);

	// Layout probe: component i of this invocation is element rowOf[i],
	// colOf[i] of every accumulator.
	for (uint e = lane; e < 256; e += gl_SubgroupSize) {
		red[sg * 256 + e] = float(e);
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	ACC probe;
	coopMatLoad(probe, red, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
	const bool lenOK = uint(probe.length()) == NE;
	uint rowOf[NE], colOf[NE];
	for (uint i = 0; i < NE; i++) {
		const uint e = lenOK ? uint(probe[i]) : 0;
		rowOf[i] = e / 16;
		colOf[i] = e % 16;
	}

	float part = 0.0;
	for (uint qt = 0; qt < nr; qt += TR) {
		loadQ(r0 + qt, r0 + nr, h);
		for (uint x = tid; x < TR; x += LOCAL) {
			lsh[x] = qt + x < nr ? lse[h * pc.S + r0 + qt + x] : 0.0;
		}
		barrier();
		float lrow[NE];
		for (uint i = 0; i < NE; i++) {
			lrow[i] = lsh[sg * 16 + rowOf[i]];
		}
		const uint sr = qt + sg * 16; // block-local first row of this subgroup
		for (uint kt = 0; kt < nk; kt += TC) {
			if (c == r && kt > qt + TR - 1) {
				break; // this and later tiles lie above the diagonal (uniform)
			}
			loadK(c0 + kt, c0 + nk, kvh);
			if (sr < nr && !(c == r && kt > sr + 15)) { // subgroup-uniform
				const bool full = sr + 16 <= nr && kt + TC <= nk && (c != r || kt + TC - 1 <= sr);
				for (uint cf = 0; cf < CF; cf++) {
					const ACC s = scores(cf);
					for (uint i = 0; i < NE; i++) {
						const uint ii = sr + rowOf[i];
						const uint j = kt + cf * 16 + colOf[i];
						if (full || (ii < nr && j < nk && (c != r || j <= ii))) {
							part += exp(s[i] * pc.scale - lrow[i]);
						}
					}
				}
			}
			barrier(); // before the next tile overwrites ksh
		}
	}

	barrier();
	red[tid] = part;
	barrier();
	for (uint st = LOCAL / 2; st > 0; st >>= 1) {
		if (tid < st) {
			red[tid] += red[tid + st];
		}
		barrier();
	}
	if (tid == 0) {
		outm[outIdx] = lenOK ? red[0] / float(nr) : uintBitsToFloat(0x7FC00000u);
	}
}
#else
// initBlock clears the accumulators of one key block. Ends with a barrier.
void initBlock() {
	const uint tid = gl_LocalInvocationIndex;
#ifdef STATS
	for (uint x = tid; x < BS; x += LOCAL) {
		rowm[x] = NEG;
		rowl[x] = 0.0;
	}
#else
	for (uint x = tid; x < BS; x += LOCAL) {
		colacc[x] = 0.0;
	}
	for (uint x = tid; x < 2 * BS + TR; x += LOCAL) {
		slacc[x] = 0.0;
	}
#endif
	barrier();
}

// loadRows puts window rows qt + [0, TR) of head h into the A fragments
// and, for VS, their ℓ into lsh. Ends with a barrier.
void loadRows(uint qt, uint h) {
	loadQ(pc.S - pc.W + qt, pc.S, h);
#ifdef VS
	const uint tid = gl_LocalInvocationIndex;
	for (uint x = tid; x < TR; x += LOCAL) {
		lsh[x] = qt + x < pc.W ? lse[h * pc.W + qt + x] : 0.0;
	}
	barrier();
#endif
}

// keyBlock computes and writes the outputs of key block c for head h (KV
// head kvh): STATS its row statistics, VS its V column sums, block sum and
// slash partials. With onePass the caller has loaded the window rows
// (loadRows(0, h)); otherwise each row pass loads its own. Ends with a
// barrier.
void keyBlock(uint c, uint h, uint kvh, bool onePass) {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	const uint S = pc.S;
	const uint W = pc.W;
	const uint i0 = S - W;
	const float scale = pc.scale;
	const uint c0 = c * BS;
	const uint nk = min(BS, S - c0);
	initBlock();
	for (uint qt = 0; qt < W; qt += TR) {
		if (!onePass) {
			loadRows(qt, h);
		}
		for (uint kt = 0; kt < nk; kt += TC) {
			if (c0 + kt > i0 + qt + TR - 1) {
				break; // every key of this and later tiles is after every row (uniform)
			}
			loadK(c0 + kt, c0 + nk, kvh);
			for (uint cf = 0; cf < CF; cf++) {
				coopMatStore(scores(cf), ssh, sg * 16 * SS + cf * 16, SS, gl_CooperativeMatrixLayoutRowMajor);
			}
			barrier();
#ifdef STATS
			// Segment p of row x of the tile: its max and Σexp(s − max).
			// Row x starts at column x mod SEG of its segment: the rows of
			// a subgroup then read distinct banks (the row stride SS is 4
			// mod 32 words, so reading one column of 32 rows hit 8 banks 4
			// times each).
			for (uint e = tid; e < TR * RP; e += LOCAL) {
				const uint x = e % TR;
				const uint y0 = (e / TR) * SEG;
				const uint t = qt + x;
				float mx = NEG;
				float l = 0.0;
				if (t < W) {
					for (uint u = 0; u < SEG; u++) {
						const uint y = y0 + (u + x) % SEG;
						const uint jl = kt + y;
						if (y < TC && jl < nk && c0 + jl <= i0 + t) {
							mx = max(mx, ssh[x * SS + y] * scale);
						}
					}
					if (mx > NEG) {
						for (uint u = 0; u < SEG; u++) {
							const uint y = y0 + (u + x) % SEG;
							const uint jl = kt + y;
							if (y < TC && jl < nk && c0 + jl <= i0 + t) {
								l += exp(ssh[x * SS + y] * scale - mx);
							}
						}
					}
				}
				rpart[e] = vec2(mx, l);
			}
			barrier();
			// Row x: the block-local running max and Σexp with the tile's
			// segments.
			for (uint x = tid; x < TR; x += LOCAL) {
				const uint t = qt + x;
				float mx = NEG;
				for (uint p = 0; p < RP; p++) {
					mx = max(mx, rpart[p * TR + x].x);
				}
				if (t < W && mx > NEG) {
					const float m = rowm[t];
					const float nm = max(m, mx);
					float l = rowl[t] * exp(m - nm);
					for (uint p = 0; p < RP; p++) {
						const vec2 sp = rpart[p * TR + x];
						if (sp.x > NEG) {
							l += sp.y * exp(sp.x - nm);
						}
					}
					rowm[t] = nm;
					rowl[t] = l;
				}
			}
#else
			// P in place, then column and diagonal sums of the tile.
			for (uint e = tid; e < TR * TC; e += LOCAL) {
				const uint x = e / TC;
				const uint y = e - x * TC;
				const uint t = qt + x;
				const uint jl = kt + y;
				const bool valid = t < W && jl < nk && c0 + jl <= i0 + t;
				ssh[x * SS + y] = valid ? exp(ssh[x * SS + y] * scale - lsh[x]) : 0.0;
			}
			barrier();
			for (uint y = tid; y < TC; y += LOCAL) {
				if (kt + y < BS) {
					float cs = 0.0;
					for (uint x = 0; x < TR; x++) {
						cs += ssh[x * SS + y];
					}
					colacc[kt + y] += cs;
				}
			}
			// Diagonal dd covers rows a0 .. a1 − 1; those with dd > 0 start
			// at the (dd mod length)-th of them, so that neighbouring
			// diagonals read distinct banks (as the rows above).
			for (uint g = tid; g < TR + TC - 1; g += LOCAL) {
				const int dd = int(g) - int(TC - 1); // x − y on this diagonal
				const int idx = int(qt) - int(kt) + int(BS) - 1 + dd;
				const int a0 = max(0, dd);
				const int a1 = min(int(TR), int(TC) + dd);
				const int len = a1 - a0; // ≥ 1
				const int rot = dd > 0 ? dd % len : 0;
				float ds = 0.0;
				for (int i = 0; i < len; i++) {
					int a = a0 + i + rot;
					if (a >= a1) {
						a -= len;
					}
					ds += ssh[uint(a) * SS + uint(a - dd)];
				}
				if (idx >= 0 && idx < int(2 * BS + TR)) {
					slacc[idx] += ds;
				}
			}
#endif
			barrier();
		}
	}
	const float invW = 1.0 / float(W);
#ifdef STATS
	for (uint x = tid; x < W; x += LOCAL) {
		stats[(h * pc.nb + c) * W + x] = vec2(rowm[x], rowl[x]);
	}
#else
	float part = 0.0;
	for (uint x = tid; x < nk; x += LOCAL) {
		const float cs = colacc[x];
		v[h * S + c0 + x] = cs * invW;
		part += cs;
	}
	for (uint x = tid; x < 2 * BS; x += LOCAL) {
		spart[(h * pc.nb + c) * 2 * BS + x] = x < W + BS - 1 ? slacc[x] * invW : 0.0;
	}
	red[tid] = part;
	barrier();
	for (uint st = LOCAL / 2; st > 0; st >>= 1) {
		if (tid < st) {
			red[tid] += red[tid + st];
		}
		barrier();
	}
	if (tid == 0) {
		vblk[h * pc.nb + c] = red[0] * invW;
	}
#endif
	barrier(); // before the next block clears the accumulators (VS: reuses red)
}

// Workgroup (x, h) takes key blocks x·kpw .. min(x·kpw + kpw, nb) − 1 of
// query head h, one after the other.
void main() {
	const uint h = gl_WorkGroupID.y;
	const uint kvh = h / (pc.Hq / pc.Hkv);
	const uint kpw = max(pc.kpw, 1u);
	const uint cbeg = gl_WorkGroupID.x * kpw;
	const uint cend = min(cbeg + kpw, pc.nb);
	// One row pass (W ≤ TR: every block of at most 128 tokens): the query
	// fragments are loaded once for all of the workgroup's key blocks.
	const bool onePass = pc.W <= TR;
	if (onePass) {
		loadRows(0, h);
	}
	for (uint c = cbeg; c < cend; c++) {
		keyBlock(c, h, kvh, onePass);
	}
#ifdef LSE_TAIL
	lseTail(h);
#endif
}
#endif
