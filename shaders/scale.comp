#version 450
// variants: scale_f32= scale_f16=-DF16
// scale.comp: out[i] = a[i] * pc.scale + pc.bias, elementwise (in place allowed
// by binding the same range twice is NOT allowed; use distinct tensors).
// Workgroup size: spec constant 0. Grid: 1D folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 64, local_size_x_id = 0) in;

#ifdef F16
#define T float16_t
#else
#define T float
#endif

layout(std430, set = 0, binding = 0) readonly buffer A { T a[]; };
layout(std430, set = 0, binding = 1) writeonly buffer O { T o[]; };

layout(push_constant) uniform Push {
	uint n;
	float scale;
	float bias;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
		o[i] = T(float(a[i]) * pc.scale + pc.bias);
	}
}
