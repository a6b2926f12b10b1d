#version 450
// argmax.comp: idx[r] = argmax_j x[r, j], ties to the lowest j; x [M, N] f32,
// idx i32 [M]. NaN never wins (an all-NaN row gives 0); -0 == +0 is a tie.
// One workgroup per row (row = wg.x + wg.y * numWG.x); workgroup size = spec
// constant 0, a power of two; strided scan, shared-memory reduction.

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer I { int idx[]; };

layout(push_constant) uniform Push {
	uint M;
	uint N;
} pc;

shared float sval[gl_WorkGroupSize.x];
shared uint sidx[gl_WorkGroupSize.x];

#define NEG_INF uintBitsToFloat(0xff800000u)

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.N;
	float best = NEG_INF;
	uint bi = 0xffffffffu;
	// Ascending scan: only a strictly greater value (or the first -inf)
	// replaces the current best, so ties keep the lowest index.
	for (uint i = t; i < pc.N; i += gl_WorkGroupSize.x) {
		float v = x[base + i];
		if (v > best || (v == best && bi == 0xffffffffu)) {
			best = v;
			bi = i;
		}
	}
	sval[t] = best;
	sidx[t] = bi;
	barrier();
	for (uint k = gl_WorkGroupSize.x / 2; k > 0; k >>= 1) {
		if (t < k) {
			float v2 = sval[t + k];
			uint i2 = sidx[t + k];
			float v1 = sval[t];
			uint i1 = sidx[t];
			// i2 == ~0 (nothing found) never wins.
			if (i2 != 0xffffffffu && (i1 == 0xffffffffu || v2 > v1 || (v2 == v1 && i2 < i1))) {
				sval[t] = v2;
				sidx[t] = i2;
			}
		}
		barrier();
	}
	if (t == 0) {
		uint b = sidx[0];
		idx[row] = int(b == 0xffffffffu ? 0u : b);
	}
}
