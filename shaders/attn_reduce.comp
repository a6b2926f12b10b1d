#version 450
// variants: attn_reduce_f32= attn_reduce_f16=-DOUT_F16
//
// attn_reduce.comp: merges the split-KV partials of attn.comp (flash-decoding).
// Split s holds a normalised partial output Op[s, Sq, Hq, D] (f32) and its
// natural-log LSE Lp[lseOff + s*Hq*Sq + h*Sq + i] (-inf: no keys). Then
//   lse = log sum_s exp(lse_s),  O = sum_s exp(lse_s - lse) * O_s
// (O = 0, lse = -inf when every split is empty). Bindings 0 and 1 are the same
// scratch buffer (vec4 and float views). One thread per (row, vec4 chunk),
// 1D grid folded into 2D.
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

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint rowsHD = pc.Sq * pc.Hq;
	if (gid >= rowsHD * pc.D4) {
		return;
	}
	uint row = gid / pc.D4; // i*Hq + h
	uint c = gid - row * pc.D4;
	uint i = row / pc.Hq;
	uint h = row - i * pc.Hq;
	uint lbase = pc.lseOff + h * pc.Sq + i;
	uint lstride = pc.Hq * pc.Sq;
	float M = uintBitsToFloat(0xff800000u);
	for (uint s = 0; s < pc.nsplit; s++) {
		M = max(M, lp[lbase + s * lstride]);
	}
	vec4 o = vec4(0.0);
	float lse = M;
	if (!isinf(M)) {
		float sum = 0.0;
		for (uint s = 0; s < pc.nsplit; s++) {
			sum += exp(lp[lbase + s * lstride] - M);
		}
		lse = M + log(sum);
		for (uint s = 0; s < pc.nsplit; s++) {
			float w = exp(lp[lbase + s * lstride] - lse);
			if (w > 0.0) {
				o += w * op[(s * rowsHD + row) * pc.D4 + c];
			}
		}
	}
#ifdef OUT_F16
	o = clamp(o, vec4(-65504.0), vec4(65504.0));
	ob[row * pc.D4 + c] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
#else
	ob[row * pc.D4 + c] = o;
#endif
	if (WRITE_LSE != 0 && c == 0) {
		lseb[h * pc.Sq + i] = lse;
	}
}
