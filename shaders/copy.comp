#version 450
// copy.comp: dst[i] = src[i] over n 16-byte words (uvec4); the bandwidth
// kernel. Byte counts that are not a multiple of 16 are handled by the Go
// side with vkCmdCopyBuffer for the tail.
// Workgroup size: spec constant 0 (default 256). Grid: 1D folded into 2D,
// grid-stride loop.

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };

layout(push_constant) uniform Push {
	uint n;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
		dst[i] = src[i];
	}
}
