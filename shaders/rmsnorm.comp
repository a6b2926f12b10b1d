#version 450
// variants: rmsnorm_f32_f32= rmsnorm_f32_f16=-DOUT_F16 rmsnorm_f16_f32=-DIN_F16 rmsnorm_f16_f16=-DIN_F16,-DOUT_F16
// rmsnorm.comp: y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w[:], per row.
//   x [M, H] (f32 or f16, IN_F16), w [H] f32, y [M, H] (f32 or f16, OUT_F16).
//   All arithmetic in f32; y is rounded once at the end.
// One workgroup per row (row = wg.x + wg.y * numWG.x, so M may exceed the
// x-dimension limit); workgroup size = spec constant 0, a power of two.
// The sum of squares is reduced in shared memory (no subgroup size assumed).
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;

#ifdef IN_F16
#define TI float16_t
#else
#define TI float
#endif
#ifdef OUT_F16
#define TO float16_t
#else
#define TO float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { TI x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { TO y[]; };

layout(push_constant) uniform Push {
	uint M;
	uint H;
	float eps;
} pc;

shared float red[gl_WorkGroupSize.x];

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.H;
	float s = 0.0;
	for (uint i = t; i < pc.H; i += gl_WorkGroupSize.x) {
		float v = float(x[base + i]);
		s += v * v;
	}
	red[t] = s;
	barrier();
	for (uint k = gl_WorkGroupSize.x / 2; k > 0; k >>= 1) {
		if (t < k) {
			red[t] += red[t + k];
		}
		barrier();
	}
	float scale = inversesqrt(red[0] / float(pc.H) + pc.eps);
	for (uint i = t; i < pc.H; i += gl_WorkGroupSize.x) {
		y[base + i] = TO(float(x[base + i]) * scale * w[i]);
	}
}
