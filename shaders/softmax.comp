#version 450
// softmax.comp: y[r, :] = softmax(x[r, :]) with max subtraction, f32.
//   x, y [M, N] f32 (y may alias x). One workgroup per row (row = wg.x +
//   wg.y * numWG.x); workgroup size = spec constant 0, a power of two.
// Pass 1: each invocation keeps an online (max, sum of exp(x - max)) over a
// strided slice of the row; the pairs are merged in shared memory.
// Pass 2: y = exp(x - max) / sum. -inf entries give 0; a row that is all
// -inf gives NaN (0/0), as torch.softmax does.

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
	uint M;
	uint N;
} pc;

shared float smax[gl_WorkGroupSize.x];
shared float ssum[gl_WorkGroupSize.x];

#define NEG_INF uintBitsToFloat(0xff800000u)

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.N;
	float m = NEG_INF;
	float s = 0.0;
	for (uint i = t; i < pc.N; i += gl_WorkGroupSize.x) {
		float v = x[base + i];
		if (v > m) {
			s = s * exp(m - v) + 1.0;
			m = v;
		} else if (v != NEG_INF) {
			s += exp(v - m);
		}
	}
	smax[t] = m;
	ssum[t] = s;
	barrier();
	for (uint k = gl_WorkGroupSize.x / 2; k > 0; k >>= 1) {
		if (t < k) {
			float m1 = smax[t], m2 = smax[t + k];
			float s1 = ssum[t], s2 = ssum[t + k];
			float mm = max(m1, m2);
			if (mm != NEG_INF) {
				s1 = s1 * exp(m1 - mm) + s2 * exp(m2 - mm);
			}
			smax[t] = mm;
			ssum[t] = s1;
		}
		barrier();
	}
	m = smax[0];
	float inv = 1.0 / ssum[0];
	for (uint i = t; i < pc.N; i += gl_WorkGroupSize.x) {
		y[base + i] = exp(x[base + i] - m) * inv;
	}
}
