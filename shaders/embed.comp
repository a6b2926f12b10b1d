#version 450
// variants: embed_f32= embed_f16=-DF16
// embed.comp: out[i, :] = table[ids[i], :]; ids i32 [M], table [V, H] (f32 or
// f16), out f32 [M, H]. ids are trusted (the caller validates them on the
// host); as a last guard an id outside [0, V) is clamped, so the shader never
// reads out of bounds.
// One invocation per output element; 1D grid folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;

#ifdef F16
#define T float16_t
#else
#define T float
#endif

layout(std430, set = 0, binding = 0) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 1) readonly buffer Tb { T table[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
	uint M;
	uint H;
	uint V;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	uint n = pc.M * pc.H;
	for (uint e = gid; e < n; e += total) {
		uint r = e / pc.H;
		uint j = e - r * pc.H;
		uint id = uint(clamp(ids[r], 0, int(pc.V) - 1));
		o[e] = float(table[id * pc.H + j]);
	}
}
