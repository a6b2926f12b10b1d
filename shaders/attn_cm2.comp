#version 450
// variants: attn_cm2_f32= attn_cm2_f16=-DOUT_F16 attn_cm2_sparse_f32=-DSPARSE attn_cm2_sparse_f16=-DSPARSE,-DOUT_F16
//
// attn_cm2.comp: flash attention with NV cooperative-matrix-2
// (VK_NV_cooperative_matrix2) workgroup-scope matrices. Same bindings, push
// constants, layouts, masks and results as attn.comp / attn_cm1.comp (dense
// causal/non-causal prefill, chunked prefill via q0, block-sparse CSR with
// -DSPARSE, LSE); the approach follows llama.cpp's flash_attn_cm2.comp.
//
// One workgroup owns BR query rows of one head (grid x = row tiles in
// reverse so the long causal rows start first, y = query heads), or with
// the GQA fold G > 1 (dense only) BR/G positions of G heads (y = head
// groups). Every matrix is workgroup-scoped: the driver decides how they
// are spread over the invocations and stages tensor loads through shared
// memory itself.
//   Q (BR×D, A operand) is loaded once through a tensor layout over
//   Q[:, h, :] (rows past Sq read as 0).
//   Per KV tile of BC keys:
//     S = Q·Kᵀ (f32, BR×BC; K loaded transposed through a tensor layout
//     over K[:, hk, :], keys past Skv read as 0), scaled by scale·log2 e,
//     masked (-FLT_MAX) only on tiles that need it (the causal diagonal, the
//     ragged end);
//     the row max is reduced into a BR×RW matrix (RW = 16 or 32; every column
//     of a row holds the row's value): the running max m and sum l live in
//     BR×RW matrices, so the rescale factor exp2(m_old - m_new) costs RW
//     exponentials per row, not BC;
//     P = exp2(S - m) (m smeared back to BR×BC); the row sums l add up the
//     f32 probabilities (a row reduction: summing the f16 P through P·1 on
//     the tensor cores was tried and misses the 1e-4 LSE tolerance); P is
//     converted to an f16 A operand for P·V;
//     O (f32, BR×D) *= exp2(m_old - m_new) (smeared to BR×D), O += P·V.
// The end divides O by l (0 for a row without allowed keys, LSE -inf),
// clamps f16 output to ±65504 and stores O through a tensor layout that
// clips rows past Sq; LSE is written by a per-element operation on column 0.
//
// Masked scores are -FLT_MAX, m starts at -FLT_MAX/2 (no NaN, exact zeros).
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BR = 128;      // query rows per workgroup
layout(constant_id = 2) const uint BC = 64;       // keys per KV tile, multiple of 16
layout(constant_id = 3) const uint D = 128;       // head dim, multiple of 16
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy
// G (GQA fold, dense only): a workgroup takes BR/G query positions of the G
// query heads h0..h0+G-1 that share one KV head. Matrix row r is position
// r/G, head h0 + r%G: Q, O are addressed through a 3-D tensor layout
// [Sq, Hq, D] (a slice's rows are its flattened outer dimensions). K/V
// traffic per query row is still one tile per BR rows; what changes is the
// causal extent of a workgroup (BR/G positions: fewer keys past the
// diagonal) and that the G heads read their K/V at the same time. G = 1 is
// the plain one-head tile.
layout(constant_id = 5) const uint G = 1;
// RW: columns of the per-row statistics matrices (m, l, the row max of a
// tile, the rescale factor): 16, or the driver's column granularity for
// the workgroup size where that is larger (32 at 256 invocations on the
// H100). Every column of a row holds the row's value.
layout(constant_id = 6) const uint RW = 16;
// OPT: variants for tuning, a bit set (cm2Opt on the host; the default 0 is
// the kernel described above).
//   1 (fs): the scale folded into the exponent. S stays in raw score units:
//     the row max, m and the mask work on raw scores, the rescale factor is
//     exp2((m_old - m_new)·c) and P = exp2(fma(s, c, -m·c)) with c =
//     scale·log2 e, which drops the pass S *= c. The host uses it only for
//     2⁻⁴⁰ ≤ c ≤ 1: then no product overflows, a masked score
//     (-FLT_MAX) gives an argument below -FLT_MAX·c/2 (P exactly 0) even
//     against the initial m, and the row max is the max of the scaled
//     scores (c > 0).
//   2 (pipe, dense only): software pipelining. S of the next KV tile (Q·Kᵀ
//     on the next K) is computed before this tile's softmax, in the same
//     straight-line code, so the compiler can interleave those MMAs with
//     the softmax's exponentials; the next tile's scale and mask follow
//     this tile's P·V. The last tile's look-ahead product (keys at or past
//     kend, read as 0 past Skv) is computed and dropped. Costs a second
//     BR×BC f32 matrix of registers.
layout(constant_id = 7) const uint OPT = 0;
const uint P = BR / G; // query positions per workgroup
const bool FS = (OPT & 1) != 0;
#ifdef SPARSE
const bool PIPE = false;
#else
const bool PIPE = (OPT & 2) != 0;
#endif

const float NEG_MASK = -3.402823466e38; // -FLT_MAX: masked score
const float NEG_INIT = -1.701411733e38; // -FLT_MAX/2: initial running max
const float LN2 = 0.69314718055994531;

#ifdef OUT_F16
#define OT float16_t
#else
#define OT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer Qb { float16_t qb[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { float16_t kb[]; };
layout(std430, set = 0, binding = 2) readonly buffer Vb { float16_t vb[]; };
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

#define MAT_S coopmat<float, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseAccumulator>
#define MAT_R coopmat<float, gl_ScopeWorkgroup, BR, RW, gl_MatrixUseAccumulator>
#define MAT_O coopmat<float, gl_ScopeWorkgroup, BR, D, gl_MatrixUseAccumulator>

float maxOp(const in float a, const in float b) {
	return max(a, b);
}

float addOp(const in float a, const in float b) {
	return a + b;
}

float smear(const in float a, const in float b) {
	return a;
}

// maskOp: key st + col is allowed for the query at position pos0 + row/G
// when it is below kend and, causal, not after the query.
float maskOp(const in uint row, const in uint col, const in float s, const in uint st, const in uint pos0, const in uint kend) {
	const uint key = st + col;
	return (key >= kend || (pc.causal != 0 && key > pos0 + row / G)) ? NEG_MASK : s;
}

// lseStore writes column 0 of the BR×RW LSE matrix for the rows below Sq
// (row r: position r0 + r/G of head h + r%G).
float lseStore(const in uint row, const in uint col, const in float v, const in uint r0, const in uint h) {
	const uint pos = r0 + row / G;
	if (WRITE_LSE != 0 && col == 0 && pos < pc.Sq) {
		lseb[pc.lseOff + (h + row % G) * pc.Sq + pos] = v;
	}
	return v;
}

#ifdef SPARSE
// nextBlock moves e forward from an entry whose column index c has been
// read already to the first allowed block that starts below kend, setting
// st to its first key and bend to its end (clipped to kend); false when
// the row's list is done. Keeping the block's bounds in registers, and
// reading the next entry's index before a tile's products (cPeek in
// main), leaves no global load between the tiles of the walk.
bool nextBlock(inout int e, out uint st, out uint bend, int e1, uint kend, int c) {
	st = 0;
	bend = 0;
	while (e < e1) {
		if (c >= 0) {
			const uint bs = uint(c) * pc.B;
			if (bs < kend) {
				st = bs;
				bend = min(bs + pc.B, kend);
				return true;
			}
		}
		e++;
		c = e < e1 ? cols[e] : -1;
	}
	return false;
}
#endif

void main() {
	const uint r0 = (pc.nRowTiles - 1 - gl_WorkGroupID.x) * P;
	const uint h = gl_WorkGroupID.y * G; // first query head
	const uint hk = h / (pc.Hq / pc.Hkv);
	const uint posFirst = pc.q0 + r0;
	const uint posLast = pc.q0 + min(r0 + P, pc.Sq) - 1;
	const uint kend = pc.causal != 0 ? min(pc.Skv, posLast + 1) : pc.Skv;

	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tQ = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tKV = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tO = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tQ = setTensorLayoutDimensionNV(tQ, pc.Sq, D);
	tQ = setTensorLayoutStrideNV(tQ, pc.Hq * D, 1);
	tKV = setTensorLayoutDimensionNV(tKV, pc.Skv, D);
	tKV = setTensorLayoutStrideNV(tKV, pc.Hkv * D, 1);
	tO = setTensorLayoutDimensionNV(tO, pc.Sq, D);
	tO = setTensorLayoutStrideNV(tO, pc.Hq * D, 1);
	tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);
	tensorLayoutNV<3, gl_CooperativeMatrixClampModeConstantNV> tQ3 = createTensorLayoutNV(3, gl_CooperativeMatrixClampModeConstantNV);
	tQ3 = setTensorLayoutDimensionNV(tQ3, pc.Sq, pc.Hq, D);

#ifdef SPARSE
	// The row's list bounds are read before the Q load, so the two
	// latencies overlap; its first entry right after.
	const uint qblk = posFirst / pc.B;
	int e = rowPtr[h * pc.nb + qblk];
	const int e1 = rowPtr[h * pc.nb + qblk + 1];
#endif

	coopmat<float16_t, gl_ScopeWorkgroup, BR, D, gl_MatrixUseA> q;
	if (G == 1) {
		coopMatLoadTensorNV(q, qb, h * D, sliceTensorLayoutNV(tQ, r0, BR, 0, D));
	} else {
		coopMatLoadTensorNV(q, qb, 0, sliceTensorLayoutNV(tQ3, r0, P, h, G, 0, D));
	}

	MAT_O o = MAT_O(0.0);
	MAT_R m = MAT_R(NEG_INIT);
	MAT_R l = MAT_R(0.0);
	const uint kvOff = hk * D;

#ifdef SPARSE
	uint st, bend;
	bool have = nextBlock(e, st, bend, e1, kend, e < e1 ? cols[e] : -1);
#else
	uint st = 0;
	bool have = st < kend;
#endif

	MAT_S s;
	if (PIPE && have) {
		// The first tile's scores; the loop computes each next one.
		coopmat<float16_t, gl_ScopeWorkgroup, D, BC, gl_MatrixUseB> kt;
		coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D), transposed);
		s = coopMatMulAdd(q, kt, MAT_S(0.0));
		if (!FS) {
			s *= pc.scale2;
		}
		if (st + BC > kend || (pc.causal != 0 && st + BC - 1 > posFirst)) {
			coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
		}
	}

	[[dont_unroll]] while (have) {
#ifdef SPARSE
		const int cPeek = e + 1 < e1 ? cols[e + 1] : -1; // used after this tile
#endif
		MAT_S sn; // PIPE: the next tile's raw scores
		if (PIPE) {
			coopmat<float16_t, gl_ScopeWorkgroup, D, BC, gl_MatrixUseB> kt;
			coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st + BC, BC, 0, D), transposed);
			sn = coopMatMulAdd(q, kt, MAT_S(0.0));
		} else {
			coopmat<float16_t, gl_ScopeWorkgroup, D, BC, gl_MatrixUseB> kt;
			coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D), transposed);
			s = coopMatMulAdd(q, kt, MAT_S(0.0));
			if (!FS) {
				s *= pc.scale2;
			}
			if (st + BC > kend || (pc.causal != 0 && st + BC - 1 > posFirst)) {
				coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
			}
		}

		MAT_R mt = MAT_R(0.0);
		coopMatReduceNV(mt, s, gl_CooperativeMatrixReduceRowNV, maxOp);
		MAT_R alpha;
		MAT_R nm; // -m in the units of the exponent
		[[unroll]] for (uint i = 0; i < mt.length(); i++) {
			const float mn = max(m[i], mt[i]);
			if (FS) {
				alpha[i] = exp2((m[i] - mn) * pc.scale2);
				nm[i] = -mn * pc.scale2;
			} else {
				alpha[i] = exp2(m[i] - mn);
				nm[i] = -mn;
			}
			m[i] = mn;
		}
		MAT_S mb = MAT_S(0.0);
		coopMatReduceNV(mb, nm, gl_CooperativeMatrixReduceRowNV, smear);
		if (FS) {
			[[unroll]] for (uint i = 0; i < s.length(); i++) {
				s[i] = exp2(fma(s[i], pc.scale2, mb[i]));
			}
		} else {
			[[unroll]] for (uint i = 0; i < s.length(); i++) {
				s[i] = exp2(s[i] + mb[i]);
			}
		}
		MAT_R rs = MAT_R(1.0);
		coopMatReduceNV(rs, s, gl_CooperativeMatrixReduceRowNV, addOp);
		l = alpha * l + rs;
		const coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA> p =
			coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA>(s);

		coopmat<float16_t, gl_ScopeWorkgroup, BC, D, gl_MatrixUseB> vt;
		coopMatLoadTensorNV(vt, vb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D));
		MAT_O ad;
		coopMatReduceNV(ad, alpha, gl_CooperativeMatrixReduceRowNV, smear);
		o = coopMatMulAdd(p, vt, o * ad);

		st += BC;
#ifdef SPARSE
		if (st >= bend) {
			e++;
			have = nextBlock(e, st, bend, e1, kend, cPeek);
		}
#else
		have = st < kend;
#endif
		if (PIPE && have) {
			s = sn;
			if (!FS) {
				s *= pc.scale2;
			}
			if (st + BC > kend || (pc.causal != 0 && st + BC - 1 > posFirst)) {
				coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
			}
		}
	}

	MAT_R inv;
	[[unroll]] for (uint i = 0; i < l.length(); i++) {
		inv[i] = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
	}
	if (WRITE_LSE != 0) {
		MAT_R lse;
		[[unroll]] for (uint i = 0; i < l.length(); i++) {
			const float ms = FS ? m[i] * pc.scale2 : m[i];
			lse[i] = l[i] > 0.0 ? (ms + log2(l[i])) * LN2 : uintBitsToFloat(0xff800000u);
		}
		coopMatPerElementNV(lse, lse, lseStore, r0, h);
	}
	MAT_O id;
	coopMatReduceNV(id, inv, gl_CooperativeMatrixReduceRowNV, smear);
	o = o * id;
#ifdef OUT_F16
	[[unroll]] for (uint i = 0; i < o.length(); i++) {
		o[i] = clamp(o[i], -65504.0, 65504.0);
	}
#endif
	const coopmat<OT, gl_ScopeWorkgroup, BR, D, gl_MatrixUseAccumulator> ot =
		coopmat<OT, gl_ScopeWorkgroup, BR, D, gl_MatrixUseAccumulator>(o);
	if (G == 1) {
		coopMatStoreTensorNV(ot, ob, h * D, sliceTensorLayoutNV(tO, r0, BR, 0, D));
	} else {
		coopMatStoreTensorNV(ot, ob, 0, sliceTensorLayoutNV(tQ3, r0, P, h, G, 0, D));
	}
}
