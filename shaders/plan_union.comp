#version 450
// variants: plan_union= plan_union_scan=-DSCAN plan_union_csr=-DSCAN,-DCOMPACT plan_union_csr_vs=-DSCAN,-DCOMPACT,-DVSSEL
// plan_union.comp: the final block set of every (head, query block) as a
// bitmap, and its size (docs/algorithm.md#final-lists).
//
// Row r of head h lists the causal columns c ≤ r of
//   mode 0 (dense, pivot):  every causal block;
//   mode 1 (vertical-slash): the VS set;
//   mode 2 (shared):        the cluster's pattern ∪ the VS set;
//   mode 3 (query-aware):   the query-aware cut ∪ the VS set.
// The VS set of a head is a column bitmap V and an offset bitmap O on the
// block grid (share.VSSet): c ∈ V, or r − c ∈ O. With vsRows = 3 the last
// block row reads its offsets from a third bitmap (MInference's mapping,
// whose partial last block row meets other diagonals).
// Bindings: 0 hplan i32 [Hq, 4] (mode, cluster; read unless mode ≥ 0 in the
//   push constants); 1 vsbits u32 [Hq, vsRows, nbw]; 2 pattern u32
//   [K, nb, nbw]; 3 qabits u32 [Hq, nb, nbw] (read only when qa ≠ 0);
//   4 rowbits u32 [Hq, nb, nbw]
//   (words 0..r/32 of row r written); 5 rowcnt i32 [Hq·nb].
// Grid: (nb, Hq): one workgroup per (row, head). Spec constant 0: local size
// (a power of two).
//
// SCAN (plan_union_scan) also does plan_scan.comp's work, saving its
// dispatch and barrier: every workgroup publishes its row size and counts
// itself done on an atomic counter; the last one to finish (it sees every
// row size) writes the CSR row pointers and the heads' block counts, and
// resets the counter to 0 for the next use. No workgroup waits for another.
// Extra bindings: 6 rowPtr i32 [Hq·nb+1]; 7 stats i32 [L, Hq, 16] (word 4
// of row `layer`); 8 counter u32 [1] (0 before the first use). Extra push
// constant: layer. rowcnt is read back by the last workgroup.
//
// COMPACT (plan_union_csr, with SCAN) also does plan_compact.comp's work in
// that last workgroup: as it walks its rows for the row pointers, each
// invocation writes the columns of its rows (its run of ⌈Hq·nb/LOCAL⌉
// rows, their set bits ascending) from the row bitmaps the other
// workgroups wrote. That saves the compaction's dispatch and barrier but
// runs the whole compaction in one workgroup, so the host takes it only
// while a run's rows hold few blocks (kernels.PlanUnionCSR). Extra binding:
// 9 cols i32 (rowPtr[Hq·nb] elements).
//
// VSSEL (plan_union_csr_vs, with SCAN and COMPACT, vsRows = 2, mode −1)
// also does plan_topk.comp's work for the SharePrefill plan: the VS set of
// head h is the top-k of v[h] (columns) and of s[h] (offsets) with entry
// 0 forced and k = max(hplan[h].nv or .ns, 1), ties in index order,
// exactly as plan_topk's rank shortcut selects it. Every workgroup of
// head h ranks the head's nb − 1 ≤ LOCAL candidates of both vectors
// itself (nb − 1 shared reads per candidate) and keeps the bitmaps in
// shared memory; the workgroups of row 0 write them to vsbits for later
// readers (the pivots' row cover). Saves plan_topk's dispatch and barrier.
// Binding 1 vsbits is then written, not read; extra bindings: 10 v f32
// [Hq, nb]; 11 s f32 [Hq, nb].
layout(local_size_x = 64, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Pb { int hplan[]; };
#ifdef VSSEL
layout(std430, set = 0, binding = 1) writeonly buffer Vb { uint vsbits[]; };
layout(std430, set = 0, binding = 10) readonly buffer X0 { uint xv[]; };
layout(std430, set = 0, binding = 11) readonly buffer X1 { uint xs[]; };
#else
layout(std430, set = 0, binding = 1) readonly buffer Vb { uint vsbits[]; };
#endif
layout(std430, set = 0, binding = 2) readonly buffer Cb { uint pattern[]; };
layout(std430, set = 0, binding = 3) readonly buffer Qb { uint qabits[]; };
#ifdef COMPACT
layout(std430, set = 0, binding = 4) coherent buffer Rb { uint rowbits[]; };
layout(std430, set = 0, binding = 9) writeonly buffer Colb { int cols[]; };
#else
layout(std430, set = 0, binding = 4) writeonly buffer Rb { uint rowbits[]; };
#endif
#ifdef SCAN
layout(std430, set = 0, binding = 5) coherent buffer Nb { int rowcnt[]; };
layout(std430, set = 0, binding = 6) writeonly buffer RPb { int rowPtr[]; };
layout(std430, set = 0, binding = 7) writeonly buffer Tb { int stats[]; };
layout(std430, set = 0, binding = 8) coherent buffer Cnb { uint counter[]; };
#else
layout(std430, set = 0, binding = 5) writeonly buffer Nb { int rowcnt[]; };
#endif

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint nbw;
	uint vsRows;
	int mode; // ≥ 0: every head has this mode (hplan is not read)
	uint qa;  // 0: qabits is not bound to a full buffer; mode 3 reads no cut
#ifdef SCAN
	uint layer;
#endif
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
shared uint red[LOCAL];
#ifdef SCAN
const uint MAXH = 64u; // kernels.PlanMaxHeads
shared int headStart[MAXH + 1u];
shared bool last;

// scanRows is plan_scan.comp run by the last workgroup: row pointers from
// the row sizes, each head's blocks from its first row pointers.
void scanRows(uint lin) {
	uint rows = pc.Hq * pc.nb;
	uint chunk = (rows + LOCAL - 1u) / LOCAL;
	uint i0 = min(lin * chunk, rows), i1 = min(i0 + chunk, rows);
	int s = 0;
	for (uint i = i0; i < i1; i++) {
		s += rowcnt[i];
	}
	red[lin] = uint(s);
	barrier();
	for (uint st = 1u; st < LOCAL; st <<= 1) {
		uint add = lin >= st ? red[lin - st] : 0u;
		barrier();
		red[lin] += add;
		barrier();
	}
	int run = int(red[lin]) - s;
	if (lin == LOCAL - 1u) {
		rowPtr[rows] = int(red[lin]);
		if (pc.Hq <= MAXH) {
			headStart[pc.Hq] = int(red[lin]);
		}
	}
	for (uint i = i0; i < i1; i++) {
		if (i % pc.nb == 0u && i / pc.nb < MAXH) {
			headStart[i / pc.nb] = run;
		}
		rowPtr[i] = run;
#ifdef COMPACT
		// Row i is row i mod nb of head i / nb: its words 0..r/32 hold
		// its causal columns (the union masked them).
		uint nwr = (i % pc.nb) / 32u + 1u;
		int at = run;
		for (uint w = 0u; w < nwr; w++) {
			uint bits = rowbits[i * pc.nbw + w];
			while (bits != 0u) {
				cols[at++] = int(32u * w) + findLSB(bits);
				bits &= bits - 1u;
			}
		}
#endif
		run += rowcnt[i];
	}
	barrier();
	for (uint h = lin; h < pc.Hq; h += LOCAL) {
		int b = 0;
		if (pc.Hq <= MAXH) {
			b = headStart[h + 1u] - headStart[h];
		} else {
			for (uint r = 0u; r < pc.nb; r++) {
				b += rowcnt[h * pc.nb + r];
			}
		}
		stats[(pc.layer * pc.Hq + h) * 16u + 4u] = b;
	}
}
#endif

#ifdef VSSEL
// The head's VS bitmaps: columns in words 0..VSW−1, offsets from VSW
// (nb ≤ LOCAL + 1, so nbw ≤ VSW), and the candidates' keys.
const uint VSW = (LOCAL + 32u) / 32u;
shared uint vsel[2u * VSW];
shared uint selKey[2u * LOCAL];
#define VSB(i) vsel[i]

// selectVS fills vsel with head h's VS set (plan_topk.comp's rankSelect
// with F = 1 and len = nb for both vectors). Every invocation must call
// it; it ends with a barrier.
void selectVS(uint h, uint lin) {
	uint nb = pc.nb, nc = nb - 1u;
	for (uint i = lin; i < 2u * VSW; i += LOCAL) {
		vsel[i] = i == 0u || i == VSW ? 1u : 0u; // entry 0 is forced
	}
	if (lin < nc) {
		uint bv = xv[h * nb + 1u + lin], bs = xs[h * nb + 1u + lin];
		selKey[lin] = (bv & 0x80000000u) != 0u ? 0u : bv; // negatives and −0 count as 0
		selKey[LOCAL + lin] = (bs & 0x80000000u) != 0u ? 0u : bs;
	}
	barrier();
	if (lin < nc) {
		for (uint w = 0u; w < 2u; w++) {
			uint kEff = min(uint(max(hplan[h * 4u + 2u + w], 1)), nb);
			uint need = kEff > 1u ? kEff - 1u : 0u;
			uint key = selKey[w * LOCAL + lin];
			uint rank = 0u;
			for (uint j = 0u; j < nc; j++) {
				uint kj = selKey[w * LOCAL + j];
				rank += uint(kj > key || (kj == key && j < lin));
			}
			if (rank < need) {
				uint i = 1u + lin;
				atomicOr(vsel[w * VSW + i / 32u], 1u << (i % 32u));
			}
		}
	}
	barrier();
}
#else
#define VSB(i) vsbits[i]
#endif

// window returns 32 bits of bitmap row `base` (nbw words) at positions
// [p, p+32), reading zeros outside [0, 32·nbw).
uint window(uint base, int p) {
	if (p < 0) {
		return p <= -32 ? 0u : VSB(base) << uint(-p);
	}
	uint wi = uint(p) >> 5, sh = uint(p) & 31u;
	if (wi >= pc.nbw) {
		return 0u;
	}
	uint x = VSB(base + wi) >> sh;
	if (sh != 0u && wi + 1u < pc.nbw) {
		x |= VSB(base + wi + 1u) << (32u - sh);
	}
	return x;
}

void main() {
	uint r = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	uint nb = pc.nb, nbw = pc.nbw;
	int mode = pc.mode >= 0 ? pc.mode : hplan[h * 4u];
	uint ci = mode == 2 ? uint(hplan[h * 4u + 1u]) : 0u;
#ifdef VSSEL
	selectVS(h, lin);
	if (r == 0u) {
		for (uint i = lin; i < 2u * nbw; i += LOCAL) {
			vsbits[h * 2u * nbw + i] = vsel[(i / nbw) * VSW + i % nbw];
		}
	}
	uint vcol = 0u, voff = VSW;
#else
	uint vcol = (h * pc.vsRows) * nbw;
	uint voff = (h * pc.vsRows + (pc.vsRows == 3u && r == nb - 1u ? 2u : 1u)) * nbw;
#endif
	uint nwr = r / 32u + 1u;
	uint cnt = 0u;
	for (uint w = lin; w < nwr; w += LOCAL) {
		uint mask = w < r / 32u ? 0xFFFFFFFFu : ((r & 31u) == 31u ? 0xFFFFFFFFu : (1u << ((r & 31u) + 1u)) - 1u);
		uint bits;
		if (mode == 0) {
			bits = mask;
		} else {
			// Columns c = 32w + i have offsets r − c = base − i: the 32
			// offsets below base+1, bit-reversed.
			int base = int(r) - int(32u * w);
			bits = VSB(vcol + w) | bitfieldReverse(window(voff, base - 31));
			if (mode == 2) {
				bits |= pattern[(ci * nb + r) * nbw + w];
			} else if (mode == 3 && pc.qa != 0u) {
				bits |= qabits[(h * nb + r) * nbw + w];
			}
			bits &= mask;
		}
		rowbits[(h * nb + r) * nbw + w] = bits;
		cnt += uint(bitCount(bits));
	}
	red[lin] = cnt;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	if (lin == 0u) {
		rowcnt[h * nb + r] = int(red[0]);
	}
#ifdef SCAN
	memoryBarrierBuffer();
	barrier();
	if (lin == 0u) {
		last = atomicAdd(counter[0], 1u) == pc.Hq * nb - 1u;
	}
	barrier();
	if (last) {
		memoryBarrierBuffer();
		scanRows(lin);
		if (lin == 0u) {
			counter[0] = 0u;
		}
	}
#endif
}
