#version 450
// est_pool.comp: mean-pool rows of a [S, H, D] f16 tensor in groups of L
// consecutive rows starting at row `start`:
//   out[g][h][d] = mean_{i ∈ [start+gL, min(start+(g+1)L, S))} x[i][h][d] · mul
// (the last partial group over its valid rows). Output f32 [ngroups, H, D].
// Used for k̄_c (start 0, L = B), Q̄_r (start 0, L = B) and the last-window
// q̄ (start S−W, L = W, one group).
// Grid: 1D over ngroups·H·D invocations, folded into 2D (Device.Groups1D).
// Spec constant 0: local size.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 64, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Xb { float16_t x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Ob { float o[]; };

layout(push_constant) uniform Push {
	uint S;
	uint H;
	uint D;
	uint L;
	uint start;
	uint ngroups;
	float mul;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	uint n = pc.ngroups * pc.H * pc.D;
	uint HD = pc.H * pc.D;
	for (uint e = gid; e < n; e += total) {
		uint g = e / HD;
		uint hd = e - g * HD;
		uint lo = pc.start + g * pc.L;
		uint hi = min(lo + pc.L, pc.S);
		float acc = 0.0;
		for (uint i = lo; i < hi; i++) {
			acc += float(x[i * HD + hd]);
		}
		o[e] = acc * pc.mul / float(hi - lo);
	}
}
