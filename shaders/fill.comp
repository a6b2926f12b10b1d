#version 450
// fill.comp: trivial test shader, data[i] = value for every i < n.
//
// Workgroup size: specialization constant 0 (default 64).
// Grid: ceil(n / wg) workgroups; when that exceeds maxComputeWorkGroupCount[0]
// fold it into 2D (x * y >= groups). The grid-stride loop lets any grid,
// including a smaller one, cover all n elements.

layout(local_size_x = 64, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) writeonly buffer Data {
	uint data[];
};

layout(push_constant) uniform Push {
	uint n;
	uint value;
} pc;

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	for (uint i = gid; i < pc.n; i += total) {
		data[i] = pc.value;
	}
}
