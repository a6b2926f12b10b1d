#version 450
// variants: attn_cmr_f32= attn_cmr_f16=-DOUT_F16 attn_cmr_sparse_f32=-DSPARSE attn_cmr_sparse_f16=-DSPARSE,-DOUT_F16 attn_cmr_cv_f32=-DCM2_CONV attn_cmr_cv_f16=-DCM2_CONV,-DOUT_F16 attn_cmr_cv_sparse_f32=-DCM2_CONV,-DSPARSE attn_cmr_cv_sparse_f16=-DCM2_CONV,-DSPARSE,-DOUT_F16
//
// attn_cmr.comp: flash attention with KHR cooperative matrices and the
// softmax in registers. Same bindings, push constants, layouts, masks and
// results as attn_cm1.comp / attn.comp (dense causal/non-causal prefill,
// chunked prefill via q0, block-sparse CSR with -DSPARSE, LSE).
//
// Workgroup = NSG subgroups; subgroup s owns RF·16 consecutive query rows of
// one head (BR = NSG·RF·16 rows; grid x = row tiles in reverse so the long
// causal rows start first, y = query heads). Q stays in registers as RF·D/16
// A fragments. Per KV tile of BC keys:
//   1. the tile's K and V rows were fetched from global memory into
//      registers during the previous tile's products; they are stored into
//      the one shared stage (two barriers per tile) and the next tile's
//      loads are issued at once;
//   2. S = Q·Kᵀ: RF·BC/16 f32 accumulator fragments; every K fragment loaded
//      from shared memory serves RF row fragments;
//   3. softmax on the accumulator components themselves: scale·log2(e),
//      masks, the running row max m and the row sums l are kept per
//      component (every component of a row holds the same m; l holds that
//      component's share of the row sum and is reduced once at the end);
//      the row max of a tile is reduced over the components of a row:
//      within an invocation by xor steps over component indices (bit set W)
//      and across invocations by subgroupShuffleXor over groups of G lanes.
//      The layout of accumulator components is implementation-defined, so
//      it is probed at the start (a matrix of element indices loaded from
//      shared memory gives each component's row and column), W and G are
//      derived from it and verified for every component of every
//      invocation (NVIDIA: two rows per invocation, G = 4; AMD RDNA3: one
//      column per invocation, W = 0, G = 16); when no such structure holds,
//      reductions go through a 16×16 f32 shared scratch per subgroup
//      instead (correct for any layout);
//   4. O (RF·D/16 f32 fragments) *= alpha per component, then O += P·V with
//      P in f16: through a per-subgroup shared scratch (KHR), or converted
//      in registers from the accumulator to an A operand with -DCM2_CONV
//      (VK_NV_cooperative_matrix2 conversions).
// The end reduces l per row, divides (0 for a row without allowed keys, LSE
// -inf), clamps f16 output to ±65504 and stores O straight from the
// fragments (through the scratch, with guards, for rows past Sq).
//
// Masked scores are -FLT_MAX, m starts at -FLT_MAX/2 (no NaN, exact zeros).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_vote : require
#extension GL_EXT_control_flow_attributes : enable
#ifdef CM2_CONV
#extension GL_NV_cooperative_matrix2 : require
#endif

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BR = 128;      // rows per workgroup = NSG·RF·16
layout(constant_id = 2) const uint BC = 32;       // keys per KV tile, multiple of 16
layout(constant_id = 3) const uint D = 128;       // head dim, multiple of 16
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy
layout(constant_id = 5) const uint RF = 1;        // 16-row fragments per subgroup
layout(constant_id = 6) const uint GENERIC = 0;   // 1: always the shared-memory reductions (tests)
// NE: accumulator components per invocation, 256 / subgroup size (the host
// sets it; register arrays are sized by it). A driver whose length()
// differs gets NaN output, which the tests catch.
layout(constant_id = 7) const uint NE = 8;
layout(constant_id = 8) const uint PROBE = 0;
// OPT: variants for tuning, a bit set (cm2Opt on the host; 0 is the kernel
// described above). 1 (fs): the scale folded into the exponent, as in
// attn_cm2.comp: scores, the row max and m stay in raw units, the rescale
// factor is exp2((m_old - m_new)·c) and P = exp2(fma(s, c, -m·c)) with
// c = scale·log2 e (the host uses it only for 2⁻⁴⁰ ≤ c ≤ 1).
layout(constant_id = 9) const uint OPT = 0;
const bool FS = (OPT & 1) != 0;

const uint WG = gl_WorkGroupSize.x;
const uint NSG = BR / (16 * RF);
const uint D8 = D / 8;
const uint DF = D / 16;
const uint CF = BC / 16;
const uint KS = D / 4 + 2;                  // f16vec4 row stride of K/V/Q staging (16 bytes of padding)
const uint PS = BC + 8;                     // f16 row stride of P
const uint LKV = (BC * D8 + WG - 1) / WG;   // uvec4 of K (and of V) per invocation per tile
const uint QROWS = 2 * BC;                  // Q rows staged per pass through kv

const float NEG_MASK = -3.402823466e38; // -FLT_MAX: masked score
const float NEG_INIT = -1.701411733e38; // -FLT_MAX/2: initial running max
const float LN2 = 0.69314718055994531;

#ifdef OUT_F16
#define OT float16_t
#else
#define OT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec4 q8[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec4 k8[]; };
layout(std430, set = 0, binding = 2) readonly buffer Vb { uvec4 v8[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Ob { OT ob[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Lb { float lseb[]; };
#ifdef SPARSE
layout(std430, set = 0, binding = 5) readonly buffer Rb { int rowPtr[]; };
layout(std430, set = 0, binding = 6) readonly buffer Cb { int cols[]; };
#endif

layout(push_constant) uniform Push {
	uint Sq;
	uint Skv;
	uint q0;
	uint Hq;
	uint Hkv;
	float scale2;        // scale * log2(e)
	uint causal;
	uint lseOff;         // element offset of LSE in binding 4
	uint tilesPerSplit;  // unused (must be 0)
	uint nRowTiles;      // gl_NumWorkGroups.x
	uint B;              // SPARSE: block size
	uint nb;             // SPARSE: blocks per head in rowPtr
} pc;

shared f16vec4 kv[2 * BC * KS]; // K rows [0, BC), V rows [BC, 2BC); Q staging at the start
shared float red[NSG * 256];    // per-subgroup 16×16 f32: layout probe, generic reductions, partial output tiles
shared float redRow[NSG * 16];
#ifndef CM2_CONV
shared float16_t psh[NSG * 16 * PS];
#endif

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

MATA qf[RF * DF];
ACC of[RF * DF];
ACC sf[RF * CF];
uint rowOf[NE]; // row (0..15) of each accumulator component of this invocation
uint colOf[NE];
float mrun[RF * NE]; // running max per component
float lrun[RF * NE]; // this component's share of the row sum
uvec4 pk[LKV], pv[LKV];
bool fastRed;
uint WBITS; // component-index xor steps that stay in a row (bit set; subgroup-uniform)
uint G;     // lanes that share a row table: xor group size (subgroup-uniform)

// rowReduce combines v over all components of each row (max when isMax,
// else sum) and leaves the row's result in every component of that row.
void rowReduce(inout float v[NE], const bool isMax) {
	if (fastRed) {
		[[unroll]] for (uint w = 1; w < NE; w <<= 1) {
			if ((WBITS & w) != 0) {
				float t[NE];
				[[unroll]] for (uint i = 0; i < NE; i++) {
					t[i] = v[i];
				}
				[[unroll]] for (uint i = 0; i < NE; i++) {
					if ((i ^ w) < NE) {
						v[i] = isMax ? max(t[i], t[i ^ w]) : t[i] + t[i ^ w];
					}
				}
			}
		}
		// Across lanes, one representative per orbit (its W bits clear),
		// then the representatives' results go back to their orbits.
		[[unroll]] for (uint x = 1; x < 32; x <<= 1) {
			if (x < G) {
				[[unroll]] for (uint i = 0; i < NE; i++) {
					if ((i & WBITS) == 0) {
						const float o = subgroupShuffleXor(v[i], x);
						v[i] = isMax ? max(v[i], o) : v[i] + o;
					}
				}
			}
		}
		[[unroll]] for (uint w = 1; w < NE; w <<= 1) {
			if ((WBITS & w) != 0) {
				[[unroll]] for (uint i = 0; i < NE; i++) {
					if ((i & w) != 0) {
						v[i] = v[i ^ w];
					}
				}
			}
		}
		return;
	}
	const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
	ACC t;
	[[unroll]] for (uint i = 0; i < NE; i++) {
		t[i] = v[i];
	}
	coopMatStore(t, red, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	for (uint r = lane; r < 16; r += gl_SubgroupSize) {
		float a = red[sg * 256 + r * 16];
		for (uint c = 1; c < 16; c++) {
			const float b = red[sg * 256 + r * 16 + c];
			a = isMax ? max(a, b) : a + b;
		}
		redRow[sg * 16 + r] = a;
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	[[unroll]] for (uint i = 0; i < NE; i++) {
		v[i] = redRow[sg * 16 + rowOf[i]];
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
}

void fetch(uint start, uint kend, uint hk) {
	const uint tid = gl_LocalInvocationID.x;
	[[unroll]] for (uint l = 0; l < LKV; l++) {
		const uint idx = tid + l * WG;
		const uint j = idx / D8;
		const uint c = idx - j * D8;
		const uint key = start + j;
		uvec4 kw = uvec4(0), vw = uvec4(0);
		if ((LKV * WG == BC * D8 || idx < BC * D8) && key < kend) {
			const uint g = (key * pc.Hkv + hk) * D8 + c;
			kw = k8[g];
			vw = v8[g];
		}
		pk[l] = kw;
		pv[l] = vw;
	}
}

void stageRow(uint dst, uvec4 w) {
	kv[dst] = f16vec4(unpackFloat2x16(w.x), unpackFloat2x16(w.y));
	kv[dst + 1] = f16vec4(unpackFloat2x16(w.z), unpackFloat2x16(w.w));
}

void stash() {
	const uint tid = gl_LocalInvocationID.x;
	[[unroll]] for (uint l = 0; l < LKV; l++) {
		const uint idx = tid + l * WG;
		if (LKV * WG == BC * D8 || idx < BC * D8) {
			const uint j = idx / D8;
			const uint c = idx - j * D8;
			stageRow(j * KS + 2 * c, pk[l]);
			stageRow((BC + j) * KS + 2 * c, pv[l]);
		}
	}
}

// compute runs steps 2-4 on the staged tile of keys [start, start+BC).
void compute(uint start, uint kend, uint posFirst, uint rowPos0) {
	const uint sg = gl_SubgroupID;
	// S = Q·Kᵀ. Plain nested loops with constant bounds: an interleaved
	// order was 5-10 % slower on the H200, and a single flattened loop with
	// computed indices was not unrolled by the NVIDIA compiler (fragment
	// arrays then live in local memory, several times slower).
	[[unroll]] for (uint cf = 0; cf < CF; cf++) {
		[[unroll]] for (uint rf = 0; rf < RF; rf++) {
			sf[rf * CF + cf] = ACC(0.0);
		}
		[[unroll]] for (uint df = 0; df < DF; df++) {
			MATB kt;
			coopMatLoad(kt, kv, cf * 16 * KS + df * 4, KS, gl_CooperativeMatrixLayoutColumnMajor);
			[[unroll]] for (uint rf = 0; rf < RF; rf++) {
				sf[rf * CF + cf] = coopMatMulAdd(qf[rf * DF + df], kt, sf[rf * CF + cf]);
			}
		}
	}
	const bool needMask = start + BC > kend || (pc.causal != 0 && start + BC - 1 > posFirst);
	// FS: raw scores (c is applied in the exponent).
	const float sc = FS ? 1.0 : pc.scale2;
	if ((PROBE & 2) == 0)
	[[unroll]] for (uint rf = 0; rf < RF; rf++) {
		float mt[NE];
		[[unroll]] for (uint i = 0; i < NE; i++) {
			mt[i] = NEG_INIT;
		}
		[[unroll]] for (uint cf = 0; cf < CF; cf++) {
			[[unroll]] for (uint i = 0; i < NE; i++) {
				float s = sf[rf * CF + cf][i] * sc;
				if (needMask) {
					const uint key = start + cf * 16 + colOf[i];
					if (key >= kend || (pc.causal != 0 && key > rowPos0 + rf * 16 + rowOf[i])) {
						s = NEG_MASK;
					}
				}
				sf[rf * CF + cf][i] = s;
				mt[i] = max(mt[i], s);
			}
		}
		rowReduce(mt, true);
		float al[NE];
		[[unroll]] for (uint i = 0; i < NE; i++) {
			const float mNew = max(mrun[rf * NE + i], mt[i]);
			al[i] = exp2((mrun[rf * NE + i] - mNew) * (FS ? pc.scale2 : 1.0));
			mrun[rf * NE + i] = mNew;
			lrun[rf * NE + i] *= al[i];
		}
		if (FS) {
			float nm[NE]; // -m·c
			[[unroll]] for (uint i = 0; i < NE; i++) {
				nm[i] = -mrun[rf * NE + i] * pc.scale2;
			}
			[[unroll]] for (uint cf = 0; cf < CF; cf++) {
				[[unroll]] for (uint i = 0; i < NE; i++) {
					const float p = exp2(fma(sf[rf * CF + cf][i], pc.scale2, nm[i]));
					sf[rf * CF + cf][i] = p;
					lrun[rf * NE + i] += p;
				}
			}
		} else {
			[[unroll]] for (uint cf = 0; cf < CF; cf++) {
				[[unroll]] for (uint i = 0; i < NE; i++) {
					const float p = exp2(sf[rf * CF + cf][i] - mrun[rf * NE + i]);
					sf[rf * CF + cf][i] = p;
					lrun[rf * NE + i] += p;
				}
			}
		}
		[[unroll]] for (uint df = 0; df < DF; df++) {
			[[unroll]] for (uint i = 0; i < NE; i++) {
				of[rf * DF + df][i] *= al[i];
			}
		}
	}
	// O += P·V.
	[[unroll]] for (uint rf = 0; rf < RF; rf++) {
		MATA pa[CF];
#ifdef CM2_CONV
		[[unroll]] for (uint cf = 0; cf < CF; cf++) {
			pa[cf] = MATA(sf[rf * CF + cf]);
		}
#else
		[[unroll]] for (uint cf = 0; cf < CF; cf++) {
			coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> ph =
				coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(sf[rf * CF + cf]);
			coopMatStore(ph, psh, sg * 16 * PS + cf * 16, PS, gl_CooperativeMatrixLayoutRowMajor);
		}
		subgroupMemoryBarrierShared();
		subgroupBarrier();
		[[unroll]] for (uint cf = 0; cf < CF; cf++) {
			coopMatLoad(pa[cf], psh, sg * 16 * PS + cf * 16, PS, gl_CooperativeMatrixLayoutRowMajor);
		}
		subgroupMemoryBarrierShared();
		subgroupBarrier();
#endif
		[[unroll]] for (uint df = 0; df < DF; df++) {
			[[unroll]] for (uint cf = 0; cf < CF; cf++) {
				MATB vt;
				coopMatLoad(vt, kv, (BC + cf * 16) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
				of[rf * DF + df] = coopMatMulAdd(pa[cf], vt, of[rf * DF + df]);
			}
		}
	}
}

#ifdef SPARSE
// seek moves (e, st) forward to the next tile of an allowed block (st = 0
// means "start of entry e's block"); false when the row's list is done.
bool seek(inout int e, inout uint st, int e1, uint kend) {
	while (e < e1) {
		const int c = cols[e];
		if (c >= 0) {
			const uint bs = uint(c) * pc.B;
			if (st < bs) {
				st = bs;
			}
			if (st < bs + pc.B && st < kend) {
				return true;
			}
		}
		e++;
		st = 0;
	}
	return false;
}
#endif

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint sg = gl_SubgroupID;
	const uint lane = gl_SubgroupInvocationID;
	const uint r0 = (pc.nRowTiles - 1 - gl_WorkGroupID.x) * BR;
	const uint h = gl_WorkGroupID.y;
	const uint hk = h / (pc.Hq / pc.Hkv);
	const uint rows = pc.Sq;

	const uint posFirst = pc.q0 + r0;
	const uint posLast = pc.q0 + min(r0 + BR, rows) - 1;
	const uint kend = pc.causal != 0 ? min(pc.Skv, posLast + 1) : pc.Skv;
	const uint sr0 = r0 + sg * 16 * RF; // first row of this subgroup
	const uint rowPos0 = pc.q0 + sr0;

	if (uint(sf[0].length()) != NE) {
		// Not the layout the host assumed: poison this tile's output.
		for (uint e = tid; e < BR * D; e += WG) {
			const uint rr = r0 + e / D;
			if (rr < rows) {
				ob[(rr * pc.Hq + h) * D + e % D] = OT(uintBitsToFloat(0x7fc00000u));
			}
		}
		return;
	}
	// Layout probe: component -> (row, column), then verify (WBITS, G).
	const uint pb = sg * 256;
	for (uint e = lane; e < 256; e += gl_SubgroupSize) {
		red[pb + e] = float(e);
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	{
		ACC probe;
		coopMatLoad(probe, red, pb, 16, gl_CooperativeMatrixLayoutRowMajor);
		[[unroll]] for (uint i = 0; i < NE; i++) {
			const uint e = uint(probe[i]);
			rowOf[i] = e / 16;
			colOf[i] = e % 16;
		}
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	{
		// W: the xor steps over component indices that stay within a row
		// in every invocation; the orbit of a component under W has
		// 2^|W| components, so G = 16 / 2^|W| lanes must hold the rest of
		// the row, each with the same row table (checked by shuffles).
		WBITS = 0;
		uint orbit = 1;
		[[unroll]] for (uint w = 1; w < NE; w <<= 1) {
			bool same = w < NE;
			[[unroll]] for (uint i = 0; i < NE; i++) {
				same = same && (i ^ w) < NE && rowOf[i ^ w] == rowOf[i];
			}
			if (subgroupAll(same)) {
				WBITS |= w;
				orbit *= 2;
			}
		}
		G = 16 / orbit;
		bool ok = NE * gl_SubgroupSize == 256 && G <= gl_SubgroupSize;
		[[unroll]] for (uint x = 1; x < 32; x <<= 1) {
			if (x < G) {
				[[unroll]] for (uint i = 0; i < NE; i++) {
					const uint o = subgroupShuffleXor(rowOf[i], x);
					ok = ok && o == rowOf[i];
				}
			}
		}
		fastRed = subgroupAll(ok) && GENERIC == 0;
	}

	// Q tile -> shared (QROWS rows per pass) -> A fragments.
	for (uint pass = 0; pass < BR; pass += QROWS) {
		const uint np = min(QROWS, BR - pass);
		for (uint idx = tid; idx < np * D8; idx += WG) {
			const uint rr = idx / D8;
			const uint c = idx - rr * D8;
			uvec4 w = uvec4(0);
			if (r0 + pass + rr < rows) {
				w = q8[((r0 + pass + rr) * pc.Hq + h) * D8 + c];
			}
			stageRow(rr * KS + 2 * c, w);
		}
		barrier();
		[[unroll]] for (uint rf = 0; rf < RF; rf++) {
			const uint lr = sg * 16 * RF + rf * 16; // local row of this fragment
			if (lr >= pass && lr < pass + np) {
				[[unroll]] for (uint df = 0; df < DF; df++) {
					coopMatLoad(qf[rf * DF + df], kv, (lr - pass) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
				}
			}
		}
		barrier();
	}
	[[unroll]] for (uint i = 0; i < RF * DF; i++) {
		of[i] = ACC(0.0);
	}
	[[unroll]] for (uint i = 0; i < RF * NE; i++) {
		mrun[i] = NEG_INIT;
		lrun[i] = 0.0;
	}

#ifdef SPARSE
	const uint qblk = posFirst / pc.B;
	int e = rowPtr[h * pc.nb + qblk];
	const int e1 = rowPtr[h * pc.nb + qblk + 1];
	uint st = 0;
	bool have = seek(e, st, e1, kend);
#else
	uint st = 0;
	bool have = st < kend;
#endif
	if (have) {
		fetch(st, kend, hk);
	}
	while (have) {
		barrier(); // the previous tile's products are done with kv
		stash();
		barrier();
		const uint cur = st;
		st += BC;
#ifdef SPARSE
		have = seek(e, st, e1, kend);
#else
		have = st < kend;
#endif
		if (have) {
			fetch(st, kend, hk); // in flight during the products
		}
		compute(cur, kend, posFirst, rowPos0);
	}

	// Row sums, 1/l, LSE, output.
	const uint ostride = pc.Hq * D;
	[[unroll]] for (uint rf = 0; rf < RF; rf++) {
		float l[NE];
		[[unroll]] for (uint i = 0; i < NE; i++) {
			l[i] = lrun[rf * NE + i];
		}
		rowReduce(l, false);
		float inv[NE];
		[[unroll]] for (uint i = 0; i < NE; i++) {
			inv[i] = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
			const uint row = sr0 + rf * 16 + rowOf[i];
			if (WRITE_LSE != 0 && colOf[i] == 0 && row < rows) {
				lseb[pc.lseOff + h * pc.Sq + row] = l[i] > 0.0 ? (mrun[rf * NE + i] * (FS ? pc.scale2 : 1.0) + log2(l[i])) * LN2 : uintBitsToFloat(0xff800000u);
			}
		}
		[[unroll]] for (uint df = 0; df < DF; df++) {
			[[unroll]] for (uint i = 0; i < NE; i++) {
#ifdef OUT_F16
				of[rf * DF + df][i] = clamp(of[rf * DF + df][i] * inv[i], -65504.0, 65504.0);
#else
				of[rf * DF + df][i] *= inv[i];
#endif
			}
		}
		const uint fr0 = sr0 + rf * 16;
		// Workgroup-uniform choice: the scratch path has subgroup barriers,
		// which some drivers (lavapipe) mishandle when only some subgroups
		// of a workgroup reach them.
		if (r0 + BR <= rows) {
			[[unroll]] for (uint df = 0; df < DF; df++) {
				coopmat<OT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> ot =
					coopmat<OT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(of[rf * DF + df]);
				coopMatStore(ot, ob, (fr0 * pc.Hq + h) * D + df * 16, ostride, gl_CooperativeMatrixLayoutRowMajor);
			}
		} else {
			[[unroll]] for (uint df = 0; df < DF; df++) {
				coopMatStore(of[rf * DF + df], red, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
				subgroupMemoryBarrierShared();
				subgroupBarrier();
				for (uint e2 = lane; e2 < 256; e2 += gl_SubgroupSize) {
					const uint rr = e2 / 16, c = e2 % 16;
					if (fr0 + rr < rows) {
						ob[((fr0 + rr) * pc.Hq + h) * D + df * 16 + c] = OT(red[sg * 256 + e2]);
					}
				}
				subgroupMemoryBarrierShared();
				subgroupBarrier();
			}
		}
	}
}
