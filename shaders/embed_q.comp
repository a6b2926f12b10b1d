#version 450
// variants: embed_q8_0=-DQ8_0 embed_q4_0=-DQ4_0 embed_q5_0=-DQ5_0 embed_q4_k=-DQ4_K embed_q5_k=-DQ5_K embed_q6_k=-DQ6_K
// embed_q.comp: row gather from a block-quantized table,
// out[i, :] = dequantize(table[ids[i], :]) for the ids in a row range.
//   ids i32 [M]; table: rows pc.row0 … pc.row0+pc.rows−1 of a [V, H]
//   table of H/BE ggml blocks a row (quant.glsl), the first at byte offset
//   pc.srcOff (even) of the binding; out f32 [M, H].
// The host splits a table larger than one binding into row ranges and
// dispatches once per range: an invocation whose id falls outside the
// range writes nothing, so every output row is written by exactly one
// dispatch. ids are trusted (the host validates them); as a last guard an
// id outside [0, V) is clamped first, as embed.comp does, so the shader
// never reads out of bounds.
// One invocation per 8-element unit of the output (quant.glsl): it decodes
// the unit to the f32 values ggml's dequantize_row_* computes (dd·q − dm,
// each product and the difference rounded to f32 on its own: precise
// forbids fusing them into an fma), so out is bit for bit ggml's float32
// dequantization. 1D grid folded into 2D, grid-stride loop.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 1) readonly buffer Src { uint16_t wq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
	uint M, H, V;
	uint row0, rows;
	uint srcOff;
} pc;

#include "quant.glsl"

void main() {
	const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	const uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * stride;
	const uint total = stride * gl_NumWorkGroups.y;
	const uint upr = pc.H / 8u; // units per row
	const uint bpr = pc.H / BE; // blocks per row
	const uint n = pc.M * upr;
	for (uint u = gid; u < n; u += total) {
		const uint r = u / upr, ur = u - r * upr;
		const uint id = uint(clamp(ids[r], 0, int(pc.V) - 1));
		if (id < pc.row0 || id - pc.row0 >= pc.rows) {
			continue;
		}
		float q[8], dd, dm;
		decodeUnit(pc.srcOff + ((id - pc.row0) * bpr + ur / UPB) * BB, ur % UPB, q, dd, dm);
		const uint e0 = r * pc.H + 8u * ur;
		[[unroll]] for (uint t = 0u; t < 8u; t++) {
			precise float p = dd * q[t];
			precise float v = p - dm;
			o[e0 + t] = v;
		}
	}
}
