#version 450
// plan_compact.comp: CSR columns from row bitmaps (docs/algorithm.md#block-lists).
//
// Row r of head h writes the set bits of rowbits[h][r] (words 0..r/32),
// ascending, to cols[rowPtr[h·nb + r] ...]: the layout
// kernels.SparseAttention reads (columns strictly ascending and causal, so
// the diagonal, when listed, comes last).
// Bindings: 0 rowbits u32 [Hq, nb, nbw]; 1 rowPtr i32 [Hq·nb+1]; 2 cols i32.
// Grid: (nb, Hq): one workgroup per (row, head); invocation t handles words
// t, t+LOCAL, … with a workgroup scan of their bit counts.
// Spec constant 0: local size (a power of two).
layout(local_size_x = 64, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Rb { uint rowbits[]; };
layout(std430, set = 0, binding = 1) readonly buffer Pb { int rowPtr[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Cb { int cols[]; };

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint nbw;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
shared uint sc[LOCAL];

void main() {
	uint r = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	uint nwr = r / 32u + 1u;
	uint rowBase = (h * pc.nb + r) * pc.nbw;
	int pos = rowPtr[h * pc.nb + r];
	for (uint s = 0u; s < nwr; s += LOCAL) {
		uint w = s + lin;
		uint bits = w < nwr ? rowbits[rowBase + w] : 0u;
		uint c = uint(bitCount(bits));
		// Inclusive Hillis–Steele scan of the bit counts.
		sc[lin] = c;
		barrier();
		for (uint st = 1u; st < LOCAL; st <<= 1) {
			uint add = lin >= st ? sc[lin - st] : 0u;
			barrier();
			sc[lin] += add;
			barrier();
		}
		int at = pos + int(sc[lin] - c);
		while (bits != 0u) {
			int b = findLSB(bits);
			cols[at++] = int(32u * w) + b;
			bits &= bits - 1u;
		}
		pos += int(sc[LOCAL - 1u]);
		barrier();
	}
}
