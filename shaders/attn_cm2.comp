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
// reverse so the long causal rows start first, y = query heads). Every
// matrix is workgroup-scoped: the driver decides how they are spread over
// the invocations and stages tensor loads through shared memory itself.
//   Q (BR×D, A operand) is loaded once through a tensor layout over
//   Q[:, h, :] (rows past Sq read as 0).
//   Per KV tile of BC keys:
//     S = Q·Kᵀ (f32, BR×BC; K loaded transposed through a tensor layout
//     over K[:, hk, :], keys past Skv read as 0), scaled by scale·log2 e,
//     masked (-FLT_MAX) only on tiles that need it (the causal diagonal, the
//     ragged end);
//     the row max is reduced into a BR×16 matrix (every column of a row holds
//     the row's value): the running max m and sum l live in BR×16 matrices,
//     so the rescale factor exp2(m_old - m_new) costs 16 exponentials per
//     row, not BC;
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
// OPT (bits; the host passes the tuned default): 1 = issue the V load before
// S = Q·Kᵀ; 2 = fold the scale into the exponent (row max on raw scores,
// P = exp2(s·scale2 - m)); 4 = lazy rescale (the running max moves only when
// a row max grows by more than LAZY; one barrier per tile decides whether O
// is rescaled at all); 8 = load the next tile's K before this tile's
// softmax (software pipelining through a second K matrix); 16 = stale
// max: the running max of each row lives in shared memory and P =
// exp2(s·scale2 - m[row]) is one per-element operation; a tile where some
// score exceeds its row's max by more than LAZY (a workgroup flag) takes a
// slow path that recomputes S, raises the max to the tile's row max and
// rescales O and l; the common tile costs one row reduction (the sum)
// instead of two reductions and two broadcasts. (Bits 1, 2, 4 and 8 are
// ignored with 16.)
layout(constant_id = 5) const uint OPT = 0;
// PROBE (tuning only, 0 in use; wrong results otherwise): bit 0 = no
// exponentials; bit 1 = no reductions (no running max/sum, no rescale);
// bit 2 = no softmax at all (P = S).
layout(constant_id = 6) const uint PROBE = 0;
// G (GQA fold, dense only): a workgroup takes BR/G query positions of the G
// query heads h0..h0+G-1 that share one KV head. Matrix row r is position
// r/G, head h0 + r%G: Q, O are addressed through a 3-D tensor layout
// [Sq, Hq, D] (a slice's rows are its flattened outer dimensions). K/V
// traffic per query row is still one tile per BR rows; what changes is the
// causal extent of a workgroup (BR/G positions: fewer keys past the
// diagonal) and that the G heads read their K/V at the same time. G = 1 is
// the plain one-head tile.
layout(constant_id = 7) const uint G = 1;
const uint P = BR / G; // query positions per workgroup
const float LAZY = 8.0;

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

shared uint anyUp[2];
// OPT bit 16: per-row running max and rescale factor, overflow flags (three,
// so that a flag is cleared two barriers before it is set again).
shared float mSh[(OPT & 16) != 0 ? BR : 1];
shared float aSh[(OPT & 16) != 0 ? BR : 1];
shared uint ovf[3];

#define MAT_S coopmat<float, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseAccumulator>
#define MAT_R coopmat<float, gl_ScopeWorkgroup, BR, 16, gl_MatrixUseAccumulator>
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

// lseStore writes column 0 of the BR×16 LSE matrix for the rows below Sq
// (row r: position r0 + r/G of head h + r%G).
float lseStore(const in uint row, const in uint col, const in float v, const in uint r0, const in uint h) {
	const uint pos = r0 + row / G;
	if (WRITE_LSE != 0 && col == 0 && pos < pc.Sq) {
		lseb[pc.lseOff + (h + row % G) * pc.Sq + pos] = v;
	}
	return v;
}

// expStale: P = exp2(s·sc - m[row]) against the shared running max; flags
// the tile when a score exceeds its row's max by more than LAZY.
float expStale(const in uint row, const in uint col, const in float s, const in float sc, const in uint slot) {
	const float x = fma(s, sc, -mSh[row]);
	if (x > LAZY) {
		ovf[slot] = 1u;
	}
	return s <= NEG_MASK ? 0.0 : exp2(x); // masked: 0 even before a max is known
}

// expExact: P = exp2(s·sc - m[row]) (slow path, m just raised).
float expExact(const in uint row, const in uint col, const in float s, const in float sc) {
	return s <= NEG_MASK ? 0.0 : exp2(fma(s, sc, -mSh[row]));
}

float readM(const in uint row, const in uint col, const in float v) {
	return mSh[row];
}

// writeMA stores row's new max v and the factor exp2(old - v) (column 0).
float writeMA(const in uint row, const in uint col, const in float v) {
	if (col == 0) {
		const float old = mSh[row];
		mSh[row] = v;
		aSh[row] = exp2(old - v);
	}
	return v;
}

float scaleRow(const in uint row, const in uint col, const in float v) {
	return v * aSh[row];
}

// lseStale writes the LSE of column 0 from l and the shared max.
float lseStale(const in uint row, const in uint col, const in float v, const in uint r0, const in uint h) {
	const uint pos = r0 + row / G;
	if (WRITE_LSE != 0 && col == 0 && pos < pc.Sq) {
		lseb[pc.lseOff + (h + row % G) * pc.Sq + pos] = v > 0.0 ? (mSh[row] + log2(v)) * LN2 : uintBitsToFloat(0xff800000u);
	}
	return v;
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

	coopmat<float16_t, gl_ScopeWorkgroup, BR, D, gl_MatrixUseA> q;
	if (G == 1) {
		coopMatLoadTensorNV(q, qb, h * D, sliceTensorLayoutNV(tQ, r0, BR, 0, D));
	} else {
		coopMatLoadTensorNV(q, qb, 0, sliceTensorLayoutNV(tQ3, r0, P, h, G, 0, D));
	}

	if (gl_LocalInvocationIndex == 0) {
		anyUp[0] = 0;
		anyUp[1] = 0;
		ovf[0] = 0;
		ovf[1] = 0;
		ovf[2] = 0;
	}
	if ((OPT & 16) != 0) {
		for (uint r = gl_LocalInvocationIndex; r < BR; r += gl_WorkGroupSize.x) {
			mSh[r] = NEG_INIT;
		}
	}
	barrier();
	MAT_O o = MAT_O(0.0);
	MAT_R m = MAT_R(NEG_INIT);
	MAT_R l = MAT_R(0.0);
	const uint kvOff = hk * D;

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
	uint it = 0;
	coopmat<float16_t, gl_ScopeWorkgroup, D, BC, gl_MatrixUseB> kt;
	if ((OPT & 8) != 0 && have) {
		coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D), transposed);
	}
	[[dont_unroll]] while (have && (OPT & 16) != 0) {
		coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D), transposed);
		const bool needMask = st + BC > kend || (pc.causal != 0 && st + BC - 1 > posFirst);
		MAT_S s = coopMatMulAdd(q, kt, MAT_S(0.0));
		if (needMask) {
			coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
		}
		const uint slot = it % 3;
		coopMatPerElementNV(s, s, expStale, pc.scale2, slot);
		barrier();
		const bool slow = ovf[slot] != 0; // workgroup-uniform
		if (gl_LocalInvocationIndex == 0) {
			ovf[(it + 2) % 3] = 0;
		}
		if (slow) {
			// Raise the max to this tile's row max: S again (K is still
			// loaded), the new max and factor to shared memory, then P, O
			// and l against it.
			s = coopMatMulAdd(q, kt, MAT_S(0.0));
			if (needMask) {
				coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
			}
			MAT_R mt;
			coopMatReduceNV(mt, s, gl_CooperativeMatrixReduceRowNV, maxOp);
			MAT_R mo = MAT_R(0.0);
			coopMatPerElementNV(mo, mo, readM);
			MAT_R alpha;
			[[unroll]] for (uint i = 0; i < mt.length(); i++) {
				const float mn = max(mo[i], max(mt[i] * pc.scale2, NEG_INIT));
				alpha[i] = exp2(mo[i] - mn);
				mo[i] = mn;
			}
			barrier(); // every read of the old max is done
			coopMatPerElementNV(mo, mo, writeMA);
			barrier();
			coopMatPerElementNV(s, s, expExact, pc.scale2);
			coopMatPerElementNV(o, o, scaleRow);
			l = alpha * l;
		}
		MAT_R rs;
		coopMatReduceNV(rs, s, gl_CooperativeMatrixReduceRowNV, addOp);
		l += rs;
		const coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA> p =
			coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA>(s);
		coopmat<float16_t, gl_ScopeWorkgroup, BC, D, gl_MatrixUseB> vt;
		coopMatLoadTensorNV(vt, vb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D));
		o = coopMatMulAdd(p, vt, o);
		st += BC;
#ifdef SPARSE
		have = seek(e, st, e1, kend);
#else
		have = st < kend;
#endif
		it++;
	}
	[[dont_unroll]] while (have && (OPT & 16) == 0) {
		if ((OPT & 8) == 0) {
			coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D), transposed);
		}
		coopmat<float16_t, gl_ScopeWorkgroup, BC, D, gl_MatrixUseB> vt;
		if ((OPT & 1) != 0) {
			coopMatLoadTensorNV(vt, vb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D));
		}
		MAT_S s = coopMatMulAdd(q, kt, MAT_S(0.0));
		if ((OPT & 2) == 0) {
			s *= pc.scale2;
		}
		if (st + BC > kend || (pc.causal != 0 && st + BC - 1 > posFirst)) {
			coopMatPerElementNV(s, s, maskOp, st, posFirst, kend);
		}
		// The next tile (nst, nhave); with OPT bit 8 its K is loaded now,
		// ahead of this tile's softmax and P·V.
		uint nst = st + BC;
#ifdef SPARSE
		const bool nhave = seek(e, nst, e1, kend);
#else
		const bool nhave = nst < kend;
#endif
		if ((OPT & 8) != 0 && nhave) {
			coopMatLoadTensorNV(kt, kb, kvOff, sliceTensorLayoutNV(tKV, nst, BC, 0, D), transposed);
		}
		// sc: the factor that turns raw scores into log2 units (1 when s
		// is already scaled).
		const float sc = (OPT & 2) != 0 ? pc.scale2 : 1.0;

		bool rescale = true;
		MAT_R alpha;
		if ((PROBE & 6) == 0) {
			MAT_R mt;
			coopMatReduceNV(mt, s, gl_CooperativeMatrixReduceRowNV, maxOp);
			bool changed = false;
			[[unroll]] for (uint i = 0; i < mt.length(); i++) {
				const float mr = max(mt[i] * sc, NEG_INIT);
				// Lazy rescale (OPT bit 4): the running max moves only when
				// a row's max grows by more than LAZY (P stays <= 2^LAZY).
				const bool up = (OPT & 4) != 0 ? mr > m[i] + LAZY : mr > m[i];
				const float mn = up ? mr : m[i];
				alpha[i] = up ? exp2(m[i] - mn) : 1.0;
				changed = changed || up;
				m[i] = mn;
			}
			if ((OPT & 4) != 0) {
				// One workgroup-uniform answer: does any row rescale?
				if (changed) {
					atomicOr(anyUp[it & 1], 1u);
				}
				barrier();
				rescale = anyUp[it & 1] != 0;
				if (gl_LocalInvocationIndex == 0) {
					anyUp[(it + 1) & 1] = 0;
				}
			}
			MAT_S mb;
			coopMatReduceNV(mb, m, gl_CooperativeMatrixReduceRowNV, smear);
			[[unroll]] for (uint i = 0; i < s.length(); i++) {
				const float x = (OPT & 2) != 0 ? fma(s[i], sc, -mb[i]) : s[i] - mb[i];
				s[i] = (PROBE & 1) != 0 ? x : exp2(x);
			}
			MAT_R rs;
			coopMatReduceNV(rs, s, gl_CooperativeMatrixReduceRowNV, addOp);
			l = rescale ? alpha * l + rs : l + rs;
		} else if ((PROBE & 4) == 0) {
			// probe: exponentials without reductions
			[[unroll]] for (uint i = 0; i < s.length(); i++) {
				s[i] = (PROBE & 1) != 0 ? s[i] : exp2(s[i]);
			}
			rescale = false;
		} else {
			rescale = false;
		}
		const coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA> p =
			coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA>(s);

		if ((OPT & 1) == 0) {
			coopMatLoadTensorNV(vt, vb, kvOff, sliceTensorLayoutNV(tKV, st, BC, 0, D));
		}
		if (rescale) {
			MAT_O ad;
			coopMatReduceNV(ad, alpha, gl_CooperativeMatrixReduceRowNV, smear);
			o = coopMatMulAdd(p, vt, o * ad);
		} else {
			o = coopMatMulAdd(p, vt, o);
		}

		st = nst;
		have = nhave;
		it++;
	}

	MAT_R inv;
	[[unroll]] for (uint i = 0; i < l.length(); i++) {
		inv[i] = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
	}
	if (WRITE_LSE != 0 && (OPT & 16) != 0) {
		coopMatPerElementNV(l, l, lseStale, r0, h);
	} else if (WRITE_LSE != 0) {
		MAT_R lse;
		[[unroll]] for (uint i = 0; i < l.length(); i++) {
			lse[i] = l[i] > 0.0 ? (m[i] + log2(l[i])) * LN2 : uintBitsToFloat(0xff800000u);
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
