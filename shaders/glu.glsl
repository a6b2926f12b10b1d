// glu.glsl: the GLU epilogue of matmul.comp and matmul_cm1.comp (included
// under GLU; not a module of its own).
//
// gluAct(g, u) is swiglu.comp's act = SiLU(g)·u for the f32 sums g and u
// after rounding each to f16, as MatMul's f16 outputs are rounded before
// swiglu reads them: then the fused kernels equal MatMul into f16 gate and
// up followed by SwiGLU bit for bit. The rounding is done in integers
// (roundF16): a compiler may fold float(float16_t(x)) back into x, as
// Mesa 26's lavapipe does, which would skip it.

// f16Bits returns the f16 nearest to x (ties to even), as IEEE f32→f16
// conversion gives it: ±Inf from 65520 on, f16 subnormals below 2^-14,
// a quiet NaN for NaN.
uint f16Bits(float x) {
	const uint b = floatBitsToUint(x);
	const uint s = (b >> 16) & 0x8000u;
	const uint a = b & 0x7fffffffu;
	if (a >= 0x7f800000u) {
		return s | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u);
	}
	if (a >= 0x477ff000u) { // ≥ 65520: rounds to Inf
		return s | 0x7c00u;
	}
	if (a >= 0x38800000u) { // ≥ 2^-14: normal; rebias 127 → 15
		const uint r = a - 0x38000000u;
		return s | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13);
	}
	if (a < 0x33000000u) { // < 2^-25: rounds to 0
		return s;
	}
	// Subnormal: the significand in units of 2^-24, rounded.
	const uint sh = 126u - (a >> 23); // 14 … 24
	const uint m = (a & 0x7fffffu) | 0x800000u;
	uint q = m >> sh;
	const uint rem = m & ((1u << sh) - 1u), tie = 1u << (sh - 1u);
	if (rem > tie || (rem == tie && (q & 1u) != 0u)) {
		q++;
	}
	return s | q;
}

// roundF16 is x rounded to f16 (f16Bits), as an f32.
float roundF16(float x) {
	return unpackHalf2x16(f16Bits(x)).x;
}

// gluAct is SiLU(g)·u, g and u rounded to f16 first, in f32 as
// swiglu.comp computes it.
float gluAct(float g, float u) {
	g = roundF16(g);
	u = roundF16(u);
	// exp(-g) overflows to +inf for g < -88: g / inf = -0, the right limit.
	return g / (1.0 + exp(-g)) * u;
}
