#version 450
// est_softmax.comp: pooled block scores with a row softmax
// (docs/algorithm.md#query-aware-gate, docs/algorithm.md#query-aware-selection).
//   out[h][r][c] = softmax_{c < ncols(r)} (scale · qbar[r][h] · kbar[c][h/G]),
//   ncols(r) = r+1 when causal (block-causal mask, zeros above the
//   diagonal), nb otherwise. f32 throughout.
// Bindings: 0 qbar f32 [nrows, Hq, D]; 1 kbar f32 [nb, Hkv, D];
//   2 out f32 [Hq, nrows, nb] (written, then normalised in place by the same
//   invocation, so it is not writeonly).
// Grid: (nrows, Hq), one workgroup per output row. Spec constants: 0 local
//   size (power of two), 1 D.
layout(local_size_x = 64, local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64;

layout(std430, set = 0, binding = 0) readonly buffer Qb { float qbar[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { float kbar[]; };
layout(std430, set = 0, binding = 2) buffer Ob { float o[]; };

layout(push_constant) uniform Push {
	uint nrows;
	uint nb;
	uint Hq;
	uint Hkv;
	uint causal;
	float scale;
} pc;

shared float qrow[D];
shared float red[gl_WorkGroupSize.x];

float reduceMax(float v) {
	uint lin = gl_LocalInvocationIndex;
	red[lin] = v;
	barrier();
	for (uint st = gl_WorkGroupSize.x / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] = max(red[lin], red[lin + st]);
		}
		barrier();
	}
	float r = red[0];
	barrier();
	return r;
}

float reduceSum(float v) {
	uint lin = gl_LocalInvocationIndex;
	red[lin] = v;
	barrier();
	for (uint st = gl_WorkGroupSize.x / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	float r = red[0];
	barrier();
	return r;
}

void main() {
	uint r = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	uint LOCAL = gl_WorkGroupSize.x;
	uint kvh = h / (pc.Hq / pc.Hkv);
	uint nb = pc.nb;
	uint ncols = pc.causal != 0 ? min(r + 1, nb) : nb;
	uint base = (h * pc.nrows + r) * nb;
	for (uint d = lin; d < D; d += LOCAL) {
		qrow[d] = qbar[(r * pc.Hq + h) * D + d] * pc.scale;
	}
	barrier();
	float mx = -3.0e38;
	for (uint c = lin; c < nb; c += LOCAL) {
		if (c < ncols) {
			float s = 0.0;
			for (uint d = 0; d < D; d++) {
				s += qrow[d] * kbar[(c * pc.Hkv + kvh) * D + d];
			}
			o[base + c] = s;
			mx = max(mx, s);
		} else {
			o[base + c] = 0.0;
		}
	}
	float M = reduceMax(mx);
	float sum = 0.0;
	for (uint c = lin; c < ncols; c += LOCAL) {
		float e = exp(o[base + c] - M);
		o[base + c] = e;
		sum += e;
	}
	float inv = 1.0 / reduceSum(sum);
	for (uint c = lin; c < ncols; c += LOCAL) {
		o[base + c] *= inv;
	}
}
