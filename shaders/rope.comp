#version 450
// variants: rope_f32= rope_f16=-DF16
// rope.comp: rotary position embedding, Hugging Face layout (rotate_half:
// element i pairs with i + D/2). For row r, head h, i < D/2:
//   a = float(pos0 + r) * inv_freq[i]          (f32, as HF computes it)
//   o[i]       = x[i] * cos(a) - x[i + D/2] * sin(a)
//   o[i + D/2] = x[i + D/2] * cos(a) + x[i] * sin(a)
// x and o may be the same buffer (in place): each invocation reads its pair
// before writing it. Element (r, h, j) of x is at r * xStride + xOff + h * D + j
// (likewise for o), so q/k inside a fused QKV row can be rotated directly.
// One invocation per pair; 1D grid folded into 2D with a grid-stride loop.
//
// sin/cos: the angle is reduced to [-pi, pi] first (Cody-Waite, 2*pi split
// into four constants, the first three with 6 significant bits so k*C is
// exact for k < 2^18), because Vulkan only bounds sin/cos error on
// [-pi, pi] and fast hardware sin degrades with |a|. Accurate to ~2e-7
// absolute for |a| up to ~1e6.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;

#ifdef F16
#define T float16_t
#else
#define T float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { T x[]; };
layout(std430, set = 0, binding = 1) readonly buffer F { float inv_freq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { T o[]; };

layout(push_constant) uniform Push {
	uint rows;
	uint heads;
	uint half_d;
	int pos0;
	uint x_stride;
	uint x_off;
	uint o_stride;
	uint o_off;
} pc;

float reduce_2pi(float a) {
	precise float k = roundEven(a * 0.15915493667125702);
	precise float r = a - k * 6.25;
	r = r - k * 0.0322265625;
	r = r - k * 0.000946044921875;
	r = r - k * 1.2699757462542038e-05;
	return r;
}

void main() {
	uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	uint total = stride * gl_NumWorkGroups.y;
	uint per_row = pc.heads * pc.half_d;
	uint n = pc.rows * per_row;
	uint d = 2 * pc.half_d;
	for (uint g = gid; g < n; g += total) {
		uint row = g / per_row;
		uint rem = g - row * per_row;
		uint h = rem / pc.half_d;
		uint i = rem - h * pc.half_d;
		precise float a = float(pc.pos0 + int(row)) * inv_freq[i];
		float r = reduce_2pi(a);
		float c = cos(r);
		float s = sin(r);
		uint xb = row * pc.x_stride + pc.x_off + h * d + i;
		uint ob = row * pc.o_stride + pc.o_off + h * d + i;
		float x0 = float(x[xb]);
		float x1 = float(x[xb + pc.half_d]);
		// precise: no fused multiply-add, so that rope_kv.comp and
		// gemv_norm_rope (which must equal this kernel bit for bit) round
		// the same on every compiler.
		precise float y0 = x0 * c - x1 * s;
		precise float y1 = x1 * c + x0 * s;
		o[ob] = T(y0);
		o[ob + pc.half_d] = T(y1);
	}
}
