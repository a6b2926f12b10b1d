#version 450
// variants: dequant_q8_0=-DQ8_0 dequant_q4_0=-DQ4_0 dequant_q5_0=-DQ5_0 dequant_q4_k=-DQ4_K dequant_q5_k=-DQ5_K dequant_q6_k=-DQ6_K
// dequant.comp: block-quantized rows to f16, dst = dequantize(src).
//   src: pc.rows rows of pc.K elements as ggml blocks of one type
//   (quant.glsl), from byte offset pc.srcOff (even); dst: f16 [rows, K]
//   from element offset pc.dstOff (a multiple of 8).
// One invocation per 8-element unit (quant.glsl): it decodes the unit to
// the f32 values ggml's dequantize_row_* computes (dd·q − dm, each product
// and the difference rounded to f32 on its own: precise forbids fusing them
// into an fma) and rounds them to f16 to nearest even in integer arithmetic
// (f32ToF16), so the result does not depend on the device's conversion
// rounding. The 1D grid is folded into x/y.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Src { uint16_t wq[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { uvec4 dst8[]; };

layout(push_constant) uniform Push {
	uint K, rows;
	uint srcOff, dstOff;
} pc;

#include "quant.glsl"

// f32ToF16 rounds v to the nearest f16 (ties to even) and returns its bits;
// overflow gives ±Inf, NaN stays NaN (quiet).
uint f32ToF16(float v) {
	const uint x = floatBitsToUint(v);
	const uint sign = (x >> 16) & 0x8000u;
	const uint ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u) {
		return sign | 0x7e00u | ((ax >> 13) & 0x3ffu); // NaN
	}
	if (ax >= 0x477ff000u) {
		return sign | 0x7c00u; // ≥ 65520 rounds to Inf (and Inf stays Inf)
	}
	if (ax >= 0x38800000u) { // normal f16: rebias the exponent, round 13 bits off
		const uint r = ax - 0x38000000u;
		return sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13);
	}
	// Subnormal f16 (or zero): the value in units of 2^-24 is
	// mant·2^-(126-e), e the f32 exponent field. (Dequantized values are
	// multiples of 2^-24, so below 2^-14 they are exact and never round
	// here; the rounding is kept so that the function is RNE for any f32.)
	const uint e = ax >> 23;
	const uint s = 126u - e; // ≥ 14
	if (s >= 25u) {
		return sign; // below half the smallest subnormal (or zero)
	}
	const uint mant = (ax & 0x7fffffu) | 0x800000u;
	uint q = mant >> s;
	const uint rem = mant & ((1u << s) - 1u), hf = 1u << (s - 1u);
	if (rem > hf || (rem == hf && (q & 1u) != 0u)) {
		q++;
	}
	return sign | q;
}

void main() {
	const uint u = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
	const uint upr = pc.K / 8u; // units per row
	if (u >= pc.rows * upr) {
		return;
	}
	const uint row = u / upr, ur = u % upr;
	float q[8], dd, dm;
	decodeUnit(pc.srcOff + row * (pc.K / BE) * BB + (ur / UPB) * BB, ur % UPB, q, dd, dm);
	uint h[8];
	[[unroll]] for (uint t = 0u; t < 8u; t++) {
		precise float p = dd * q[t];
		precise float v = p - dm;
		h[t] = f32ToF16(v);
	}
	dst8[pc.dstOff / 8u + u] = uvec4(h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16));
}
