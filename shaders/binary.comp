#version 450
// variants: binary_f32= binary_f16=-DF16
// binary.comp: out[i] = a[i] OP b[i] (+ optional scale), elementwise.
//   OP (spec constant 1): 0 add, 1 mul.  Result: out = (a OP b) * pc.scale.
// Workgroup size: spec constant 0. Grid: 1D folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 64, local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0;

#ifdef F16
#define T float16_t
#else
#define T float
#endif

layout(std430, set = 0, binding = 0) readonly buffer A { T a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { T b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { T o[]; };

layout(push_constant) uniform Push {
	uint n;
	float scale;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
		float x = float(a[i]);
		float y = float(b[i]);
		float r = OP == 0 ? x + y : x * y;
		o[i] = T(r * pc.scale);
	}
}
