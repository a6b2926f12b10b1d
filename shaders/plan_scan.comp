#version 450
// plan_scan.comp: CSR row pointers from row sizes (docs/algorithm.md#block-lists).
//
// rowPtr[i] = Σ_{j < i} rowcnt[j] for i = 0..rows (rows = Hq·nb, row r of
// head h at index h·nb + r: the layout kernels.SparseAttention reads), and,
// when withStats ≠ 0, the blocks of each head into word 4 of its statistics
// record stats[(layer·Hq + h)·16 + 4].
// Bindings: 0 rowcnt i32 [rows]; 1 rowPtr i32 [rows+1]; 2 stats i32.
// Grid: (1): one workgroup; each invocation scans a contiguous run, the
// runs' offsets come from a parallel scan, and a head's blocks are the
// difference of its first row pointers (up to 64 heads; more heads sum
// their rows).
// Spec constant 0: local size.
layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Cb { int rowcnt[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Pb { int rowPtr[]; };
layout(std430, set = 0, binding = 2) buffer Sb { int stats[]; };

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint layer;
	uint withStats;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
const uint MAXH = 64u; // kernels.PlanMaxHeads
shared int part[LOCAL];
shared int headStart[MAXH + 1u];

void main() {
	uint lin = gl_LocalInvocationIndex;
	uint rows = pc.Hq * pc.nb;
	uint chunk = (rows + LOCAL - 1u) / LOCAL;
	uint i0 = min(lin * chunk, rows), i1 = min(i0 + chunk, rows);
	int s = 0;
	for (uint i = i0; i < i1; i++) {
		s += rowcnt[i];
	}
	// Inclusive Hillis–Steele scan of the invocations' sums.
	part[lin] = s;
	barrier();
	for (uint st = 1u; st < LOCAL; st <<= 1) {
		int add = lin >= st ? part[lin - st] : 0;
		barrier();
		part[lin] += add;
		barrier();
	}
	int run = part[lin] - s;
	if (lin == LOCAL - 1u) {
		rowPtr[rows] = part[lin];
		if (pc.Hq <= MAXH) {
			headStart[pc.Hq] = part[lin];
		}
	}
	for (uint i = i0; i < i1; i++) {
		if (i % pc.nb == 0u && i / pc.nb < MAXH) {
			headStart[i / pc.nb] = run;
		}
		rowPtr[i] = run;
		run += rowcnt[i];
	}
	if (pc.withStats != 0u) {
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
}
