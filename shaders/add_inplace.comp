#version 450
// variants: add_inplace_f32_f32= add_inplace_f32_f16=-DX_F16 add_inplace_f16_f16=-DACC_F16,-DX_F16
// add_inplace.comp: acc[i] += x[i] (the residual add of a forward pass), in
// f32, rounded once to acc's type. acc is bound read-write (binding 0).
// 1D grid folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;

#ifdef ACC_F16
#define TA float16_t
#else
#define TA float
#endif
#ifdef X_F16
#define TX float16_t
#else
#define TX float
#endif

layout(std430, set = 0, binding = 0) buffer A { TA acc[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { TX x[]; };

layout(push_constant) uniform Push {
	uint n;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
		acc[i] = TA(float(acc[i]) + float(x[i]));
	}
}
