#version 450
// variants: rmsnorm_f32_f32= rmsnorm_f32_f16=-DOUT_F16 rmsnorm_f16_f32=-DIN_F16 rmsnorm_f16_f16=-DIN_F16,-DOUT_F16
// rmsnorm.comp: y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w[:], per row.
//   x [M, H] (f32 or f16, IN_F16), w [H] f32, y [M, H] (f32 or f16, OUT_F16).
//   All arithmetic in f32; y is rounded once at the end.
// One workgroup per row (row = wg.x + wg.y * numWG.x, so M may exceed the
// x-dimension limit); workgroup size = spec constant 0, a power of two.
// VEC (spec constant 1; H a multiple of 4): x and w are read 4 elements a
// load (16 bytes of f32, 8 of f16) and f32 outputs written 4 at a time; f16
// outputs are stored one by one (the same conversion as without VEC).
// SUBGROUP (spec constant 2; the workgroup size a multiple of the subgroup
// size): the sum of squares is reduced with subgroupAdd and one barrier;
// otherwise with a shared-memory tree (no subgroup size assumed).
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const bool VEC = false;
layout(constant_id = 2) const bool SUBGROUP = false;

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
#ifdef IN_F16
layout(std430, set = 0, binding = 0) readonly buffer XV { uvec2 xv[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer XV { vec4 xv[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 1) readonly buffer WV { vec4 wv[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { TO y[]; };
layout(std430, set = 0, binding = 2) writeonly buffer YV { vec4 yv[]; };

layout(push_constant) uniform Push {
	uint M;
	uint H;
	float eps;
} pc;

shared float red[gl_WorkGroupSize.x];

// load4 is x[4*i .. 4*i+4) (VEC only).
vec4 load4(uint i) {
#ifdef IN_F16
	const uvec2 u = xv[i];
	return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
#else
	return xv[i];
#endif
}

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	const uint WG = gl_WorkGroupSize.x;
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.H;
	float s = 0.0;
	if (VEC) {
		for (uint i = t; i < pc.H / 4; i += WG) {
			const vec4 v = load4(base / 4 + i);
			s += dot(v, v);
		}
	} else {
		for (uint i = t; i < pc.H; i += WG) {
			float v = float(x[base + i]);
			s += v * v;
		}
	}
	float total;
	if (SUBGROUP) {
		s = subgroupAdd(s);
		if (subgroupElect()) {
			red[gl_SubgroupID] = s;
		}
		barrier();
		total = 0.0;
		for (uint p = 0; p < gl_NumSubgroups; p++) {
			total += red[p];
		}
	} else {
		red[t] = s;
		barrier();
		for (uint k = WG / 2; k > 0; k >>= 1) {
			if (t < k) {
				red[t] += red[t + k];
			}
			barrier();
		}
		total = red[0];
	}
	float scale = inversesqrt(total / float(pc.H) + pc.eps);
	if (VEC) {
		for (uint i = t; i < pc.H / 4; i += WG) {
			const vec4 v = load4(base / 4 + i) * scale * wv[i];
#ifdef OUT_F16
			[[unroll]] for (uint e = 0; e < 4; e++) {
				y[base + 4 * i + e] = TO(v[e]);
			}
#else
			yv[base / 4 + i] = v;
#endif
		}
	} else {
		for (uint i = t; i < pc.H; i += WG) {
			y[base + i] = TO(float(x[base + i]) * scale * w[i]);
		}
	}
}
