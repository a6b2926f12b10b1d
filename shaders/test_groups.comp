#version 450
// test_groups.comp: test-only shader that records which workgroups ran, to
// check dispatches whose counts come from memory (Recorder.DispatchIndirect).
//
// One invocation per workgroup; workgroup (x, y, z) of a grid (X, Y, Z)
// writes data[x + X·(y + Y·z)] = 1 + x + 1000·y + 1000000·z, and leaves every
// other element alone. data must hold X·Y·Z uints.

layout(local_size_x = 1) in;

layout(std430, set = 0, binding = 0) writeonly buffer Data {
	uint data[];
};

void main() {
	uvec3 g = gl_WorkGroupID;
	uvec3 n = gl_NumWorkGroups;
	data[g.x + n.x * (g.y + n.y * g.z)] = 1u + g.x + 1000u * g.y + 1000000u * g.z;
}
