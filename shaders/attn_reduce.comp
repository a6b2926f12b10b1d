#version 450
// variants: attn_reduce_f32= attn_reduce_f16=-DOUT_F16
//
// attn_reduce.comp: merges the split-KV partials of attn.comp (flash-decoding).
// Split s holds a normalised partial output Op[s, Sq, Hq, D] (f32) and its
// natural-log LSE Lp[lseOff + s*Hq*Sq + h*Sq + i] (-inf: no keys). Then
//   lse = log sum_s exp(lse_s),  O = sum_s exp(lse_s - lse) * O_s
// (O = 0, lse = -inf when every split is empty). Bindings 0 and 1 are the same
// scratch buffer (vec4 and float views).
//
// One workgroup per output row (i*Hq + h; the 1D grid folded into 2D): its
// threads take the splits in parallel for the max and the sum (tree
// reductions in shared memory), then lanes = WG/D4 groups of D4 threads take
// every lanes-th split of each vec4 channel and add their partial outputs.
// A decode step has a few rows and tens to hundreds of splits, so the splits,
// not the rows, are what a workgroup must spread over its threads.
layout(local_size_x = 64, local_size_x_id = 0) in;
layout(constant_id = 1) const uint WRITE_LSE = 1;

layout(std430, set = 0, binding = 0) readonly buffer Pb { vec4 op[]; };
layout(std430, set = 0, binding = 1) readonly buffer Lpb { float lp[]; };
#ifdef OUT_F16
layout(std430, set = 0, binding = 2) writeonly buffer Ob { uvec2 ob[]; };
#else
layout(std430, set = 0, binding = 2) writeonly buffer Ob { vec4 ob[]; };
#endif
layout(std430, set = 0, binding = 3) writeonly buffer Lb { float lseb[]; };

layout(push_constant) uniform Push {
	uint Sq;
	uint Hq;
	uint D4;
	uint nsplit;
	uint lseOff;
} pc;

shared float red[gl_WorkGroupSize.x];
shared vec4 osh[gl_WorkGroupSize.x];

// reduce leaves in red[0] the max (op 0) or the sum (op 1) of red[0 … WG).
void reduce(uint t, uint op) {
	for (uint w = gl_WorkGroupSize.x / 2; w > 0; w >>= 1) {
		barrier();
		if (t < w) {
			red[t] = op == 0 ? max(red[t], red[t + w]) : red[t] + red[t + w];
		}
	}
	barrier();
}

void store(uint row, uint c, vec4 o) {
#ifdef OUT_F16
	o = clamp(o, vec4(-65504.0), vec4(65504.0));
	ob[row * pc.D4 + c] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
#else
	ob[row * pc.D4 + c] = o;
#endif
}

void main() {
	const uint WG = gl_WorkGroupSize.x;
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; // i*Hq + h
	uint rowsHD = pc.Sq * pc.Hq;
	if (row >= rowsHD) {
		return; // the whole workgroup
	}
	uint t = gl_LocalInvocationID.x;
	uint i = row / pc.Hq;
	uint h = row - i * pc.Hq;
	uint lbase = pc.lseOff + h * pc.Sq + i;
	uint lstride = pc.Hq * pc.Sq;
	float m = uintBitsToFloat(0xff800000u);
	for (uint s = t; s < pc.nsplit; s += WG) {
		m = max(m, lp[lbase + s * lstride]);
	}
	red[t] = m;
	reduce(t, 0);
	float M = red[0];
	barrier();
	float sum = 0.0;
	if (!isinf(M)) {
		for (uint s = t; s < pc.nsplit; s += WG) {
			sum += exp(lp[lbase + s * lstride] - M);
		}
	}
	red[t] = sum;
	reduce(t, 1);
	float lse = isinf(M) ? M : M + log(red[0]);
	if (pc.D4 >= WG) {
		// Wide heads: each thread its channels, every split.
		for (uint c = t; c < pc.D4; c += WG) {
			vec4 o = vec4(0.0);
			if (!isinf(M)) {
				for (uint s = 0; s < pc.nsplit; s++) {
					float w = exp(lp[lbase + s * lstride] - lse);
					if (w > 0.0) { // empty splits (w = 0) may hold anything
						o += w * op[(s * rowsHD + row) * pc.D4 + c];
					}
				}
			}
			store(row, c, o);
		}
	} else {
		uint lanes = WG / pc.D4;
		uint c = t % pc.D4;
		uint j = t / pc.D4;
		vec4 o = vec4(0.0);
		if (j < lanes && !isinf(M)) {
			for (uint s = j; s < pc.nsplit; s += lanes) {
				float w = exp(lp[lbase + s * lstride] - lse);
				if (w > 0.0) {
					o += w * op[(s * rowsHD + row) * pc.D4 + c];
				}
			}
		}
		osh[t] = o;
		barrier();
		if (t < pc.D4) {
			vec4 a = osh[t];
			for (uint k = 1; k < lanes; k++) {
				a += osh[t + k * pc.D4];
			}
			store(row, t, a);
		}
	}
	if (WRITE_LSE != 0 && t == 0) {
		lseb[h * pc.Sq + i] = lse;
	}
}
