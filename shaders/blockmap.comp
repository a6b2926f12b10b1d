#version 450
// variants: blockmap_dense= blockmap_csr=-DCSR
// blockmap.comp: exact block attention map of chosen heads (docs/algorithm.md#pivot-map).
//
//   Â[h][r, c] = (1/|r|) Σ_{i∈r} Σ_{j∈c, j≤i} exp(s_ij − ℓ_i),  s_ij = scale·q_i·k_j,
//
// with ℓ_i the final per-row log-sum-exp of the attention kernel. Scores are
// recomputed; memory is O(nb²) per head.
//
// Bindings: 0 q f16 [S, Hq, D]; 1 k f16 [S, Hkv, D]; 2 lse f32 [Hq, S];
//   3 heads i32 [nheads] (query-head indices);
//   dense: 4 out f32 [nheads, nb, nb]
//   CSR:   4 rowptr i32 [nheads, nb+1] (absolute offsets into cols), 5 cols i32, 6 out.
// Grid: (⌈nb/kpw⌉, nb, nheads) = (slot group, r, head index), push constant
//   kpw ≥ 1 (0 means 1): workgroup (x, r, hi) takes the slots (dense: key
//   block c = slot; CSR: listed block slot of row r) x·kpw .. x·kpw+kpw−1
//   in turn, each exactly as the kpw = 1 grid's workgroup (slot, r, hi)
//   does (same bits): it walks T×T sub-tiles of the block pair with Q and K
//   sub-tiles in shared memory and reduces Σexp in shared memory (no
//   atomics). Dense: c > r writes 0. CSR: only listed blocks are
//   written (the caller zero-fills first). A head index outside [0, Hq)
//   writes NaN so misuse is visible.
// Spec constants: 0 local size (= T·T, a power of two), 1 T, 2 D.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint T = 16;
layout(constant_id = 2) const uint D = 64;

layout(std430, set = 0, binding = 0) readonly buffer Qb { float16_t q[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { float16_t k[]; };
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
	uint kpw; // slots (key blocks) per workgroup (0 means 1)
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
const uint DP = D + 1; // padded row stride in shared memory

shared float qs[T * DP];
shared float ks[T * DP];
shared float red[LOCAL];

// block computes and writes slot s of row r of head slot hi (workgroup-
// uniform; the per-block body of the kpw = 1 grid).
void block(uint s, uint r, uint hi) {
	uint lin = gl_LocalInvocationIndex;
	uint c = s;
	uint nb = pc.nb;
#ifdef CSR
	int beg = rowptr[hi * (nb + 1) + r];
	int cc = cols[beg + int(s)];
	if (cc < 0 || uint(cc) >= nb) {
		return;
	}
	c = uint(cc);
#endif
	uint outIdx = (hi * nb + r) * nb + c;
	int hh = heads[hi];
	if (c > r || hh < 0 || uint(hh) >= pc.Hq) {
		if (lin == 0) {
			outm[outIdx] = c > r ? 0.0 : uintBitsToFloat(0x7FC00000u);
		}
		return;
	}
	uint h = uint(hh);
	uint kvh = h / (pc.Hq / pc.Hkv);
	uint ti = lin / T;
	uint tj = lin % T;
	uint r0 = r * pc.B;
	uint c0 = c * pc.B;
	uint nr = min(pc.B, pc.S - r0);
	uint nk = min(pc.B, pc.S - c0);
	float acc = 0.0;
	for (uint qt = 0; qt < nr; qt += T) {
		for (uint kt = 0; kt < nk; kt += T) {
			if (c == r && kt > qt + T - 1) {
				continue; // sub-tile entirely above the diagonal (uniform)
			}
			for (uint x = lin; x < T * D; x += LOCAL) {
				uint row = x / D;
				uint d = x - row * D;
				uint i = qt + row;
				uint j = kt + row;
				qs[row * DP + d] = i < nr ? float(q[((r0 + i) * pc.Hq + h) * D + d]) * pc.scale : 0.0;
				ks[row * DP + d] = j < nk ? float(k[((c0 + j) * pc.Hkv + kvh) * D + d]) : 0.0;
			}
			barrier();
			uint i = qt + ti;
			uint j = kt + tj;
			if (ti < T && i < nr && j < nk && c0 + j <= r0 + i) {
				float s = 0.0;
				for (uint d = 0; d < D; d++) {
					s += qs[ti * DP + d] * ks[tj * DP + d];
				}
				acc += exp(s - lse[h * pc.S + r0 + i]);
			}
			barrier();
		}
	}
	barrier(); // the previous block's last read of red[0] is done
	red[lin] = acc;
	barrier();
	for (uint st = LOCAL / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	if (lin == 0) {
		outm[outIdx] = red[0] / float(nr);
	}
}

// Workgroup (x, r, hi) takes slots x·kpw .. min(x·kpw + kpw, n) − 1 of row
// r in turn (dense: n = nb, key block c = slot; CSR: n the row's listed
// blocks).
void main() {
	uint r = gl_WorkGroupID.y;
	uint hi = gl_WorkGroupID.z;
	uint kpw = max(pc.kpw, 1u);
	uint sbeg = gl_WorkGroupID.x * kpw;
#ifdef CSR
	int beg = rowptr[hi * (pc.nb + 1) + r];
	uint n = uint(max(rowptr[hi * (pc.nb + 1) + r + 1] - beg, 0));
#else
	uint n = pc.nb;
#endif
	uint send = min(sbeg + kpw, n);
	for (uint s = sbeg; s < send; s++) {
		block(s, r, hi);
	}
}
