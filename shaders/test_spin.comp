#version 450
// test_spin.comp: test-only shader that runs for a long time on purpose, to
// exercise the runtime's bounded fence waits (SubmitTimeout -> ErrTimeout).
//
// Each invocation iterates data[gid] = data[base + (gid + i) % 64] * a + b
// pc.iters times through a coherent buffer (base: its workgroup's first
// element), so that the compiler can neither fold nor hoist the loop.
// llvmpipe/lavapipe stops a shader's loops after 65535 iterations, so the
// run time is scaled with the grid instead: each workgroup does the same
// work, and the time grows with the number of workgroups.
//
// Workgroup size 64; grid (G, 1, 1); data has at least 64·G floats; pc.n is
// the element count (invocations at or past n return).

layout(local_size_x = 64) in;

layout(std430, set = 0, binding = 0) coherent buffer Data {
	float data[];
};

layout(push_constant) uniform Push {
	uint n;
	uint iters;
	float a;
	float b;
} pc;

void main() {
	uint gid = gl_GlobalInvocationID.x;
	if (gid >= pc.n) {
		return;
	}
	uint base = gl_WorkGroupID.x * 64u;
	for (uint i = 0u; i < pc.iters; i++) {
		uint src = base + (gl_LocalInvocationID.x + i) % 64u;
		data[gid] = data[min(src, pc.n - 1u)] * pc.a + pc.b;
	}
}
