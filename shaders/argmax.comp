#version 450
// argmax.comp: idx[r] = argmax_j x[r, j], ties to the lowest j; x [M, N] f32,
// idx i32 [M]. NaN never wins (an all-NaN row gives 0); -0 == +0 is a tie.
// One workgroup per row (row = wg.x + wg.y * numWG.x); workgroup size = spec
// constant 0, a power of two; strided scan (VEC, spec constant 1, N a
// multiple of 4: 16 bytes a load), then the invocations' bests are merged
// with subgroup max/min and one barrier (SUBGROUP, spec constant 2: the
// workgroup is whole subgroups) or a shared-memory tree.
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC = false;
layout(constant_id = 2) const bool SUBGROUP = false;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 1) writeonly buffer I { int idx[]; };

layout(push_constant) uniform Push {
	uint M;
	uint N;
} pc;

shared float sval[gl_WorkGroupSize.x];
shared uint sidx[gl_WorkGroupSize.x];

#define NEG_INF uintBitsToFloat(0xff800000u)
#define NONE 0xffffffffu

float best = NEG_INF;
uint bi = NONE;

// see takes x[i] = v in ascending i: only a strictly greater value (or the
// first -inf) replaces the current best, so ties keep the lowest index.
void see(float v, uint i) {
	if (v > best || (v == best && bi == NONE)) {
		best = v;
		bi = i;
	}
}

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	const uint WG = gl_WorkGroupSize.x;
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.N;
	if (VEC) {
		for (uint i = t; i < pc.N / 4; i += WG) {
			const vec4 v = x4[base / 4 + i];
			[[unroll]] for (uint e = 0; e < 4; e++) {
				see(v[e], 4 * i + e);
			}
		}
	} else {
		for (uint i = t; i < pc.N; i += WG) {
			see(x[base + i], i);
		}
	}
	if (SUBGROUP) {
		// The subgroup's best value, then the lowest index that holds it
		// (invocations that found nothing take no part).
		const float m = subgroupMax(bi == NONE ? NEG_INF : best);
		const uint i = subgroupMin(bi != NONE && best == m ? bi : NONE);
		if (subgroupElect()) {
			sval[gl_SubgroupID] = m;
			sidx[gl_SubgroupID] = i;
		}
		barrier();
		if (t == 0) {
			best = NEG_INF;
			bi = NONE;
			for (uint s = 0; s < gl_NumSubgroups; s++) {
				const float v2 = sval[s];
				const uint i2 = sidx[s];
				if (i2 != NONE && (bi == NONE || v2 > best || (v2 == best && i2 < bi))) {
					best = v2;
					bi = i2;
				}
			}
			idx[row] = int(bi == NONE ? 0u : bi);
		}
		return;
	}
	sval[t] = best;
	sidx[t] = bi;
	barrier();
	for (uint k = WG / 2; k > 0; k >>= 1) {
		if (t < k) {
			float v2 = sval[t + k];
			uint i2 = sidx[t + k];
			float v1 = sval[t];
			uint i1 = sidx[t];
			// i2 == NONE (nothing found) never wins.
			if (i2 != NONE && (i1 == NONE || v2 > v1 || (v2 == v1 && i2 < i1))) {
				sval[t] = v2;
				sidx[t] = i2;
			}
		}
		barrier();
	}
	if (t == 0) {
		uint b = sidx[0];
		idx[row] = int(b == NONE ? 0u : b);
	}
}
