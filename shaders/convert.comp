#version 450
// variants: convert_f32_f16=-DSRC_F32,-DDST_F16 convert_f16_f32=-DSRC_F16,-DDST_F32 convert_bf16_f16=-DSRC_BF16,-DDST_F16 convert_bf16_f32=-DSRC_BF16,-DDST_F32
// convert.comp: dst[i] = convert(src[i]). f16 rounds to nearest even (the
// hardware conversion); bf16 sources are read as raw 16-bit words.
// Workgroup size: spec constant 0. Grid: 1D folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 64, local_size_x_id = 0) in;

#if defined(SRC_F32)
#define S float
#elif defined(SRC_F16)
#define S float16_t
#else
#define S uint16_t
#endif
#if defined(DST_F16)
#define D float16_t
#else
#define D float
#endif

layout(std430, set = 0, binding = 0) readonly buffer Src { S src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { D dst[]; };

layout(push_constant) uniform Push {
	uint n;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
#ifdef SRC_BF16
		float x = uintBitsToFloat(uint(src[i]) << 16);
#else
		float x = float(src[i]);
#endif
		dst[i] = D(x);
	}
}
