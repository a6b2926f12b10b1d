#version 450
// variants: swiglu_f32_f32= swiglu_f32_f16=-DOUT_F16 swiglu_f16_f32=-DIN_F16 swiglu_f16_f16=-DIN_F16,-DOUT_F16
// swiglu.comp: out[r, j] = silu(gate[r, j]) * up[r, j], silu(g) = g / (1 + exp(-g)),
// in f32. gate element (r, j) is at r * g_stride + g_off + j, up at
// r * u_stride + u_off + j (gate and up may be the same fused [M, 2F]
// buffer: g_off = 0, u_off = F, strides 2F). out is contiguous [M, F].
// One invocation per output element; 1D grid folded into 2D, grid-stride loop.
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

layout(std430, set = 0, binding = 0) readonly buffer G { TI gate[]; };
layout(std430, set = 0, binding = 1) readonly buffer U { TI up[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { TO o[]; };

layout(push_constant) uniform Push {
	uint M;
	uint F;
	uint g_stride;
	uint g_off;
	uint u_stride;
	uint u_off;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	uint n = pc.M * pc.F;
	for (uint e = gid; e < n; e += total) {
		uint r = e / pc.F;
		uint j = e - r * pc.F;
		float g = float(gate[r * pc.g_stride + pc.g_off + j]);
		float u = float(up[r * pc.u_stride + pc.u_off + j]);
		// exp(-g) overflows to +inf for g < -88: g / inf = -0, the right limit.
		o[e] = TO(g / (1.0 + exp(-g)) * u);
	}
}
