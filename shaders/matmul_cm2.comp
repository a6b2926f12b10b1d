#version 450
// variants: matmul_cm2_yf32= matmul_cm2_yf16=-DY_F16
// matmul_cm2.comp: NV cooperative-matrix-2 (VK_NV_cooperative_matrix2)
// matmul  y = x·Wᵀ (+ bias), f16 inputs, f32 accumulation, after llama.cpp's
// mul_mm_cm2.comp. Same bindings and push constants as matmul.comp:
//   x [M, K] f16, W [N, K] f16, bias [N] f32 (pc.hasBias), y [M, N] f32 or
//   f16 (Y_F16) with row stride pc.ldy; element offsets xOff, wOff, bOff, yOff.
//
// One workgroup computes a BM×BN tile as one workgroup-scope accumulator;
// per BK slab it loads A = x[m0:m0+BM, k0:k0+BK] and B = W[n0:n0+BN,
// k0:k0+BK]ᵀ through tensor layouts (clamp mode "constant": reads beyond M,
// N, K give 0) and the driver stages them in shared memory. Stores through a
// tensor layout of dimension M×N are clipped to it, so tails need no code.
// The bias is added by a per-element operation.
//
// Workgroups are numbered linearly (x + y·gridX, the host folds big grids)
// and mapped to tiles in groups of GM tile rows (spec constant 4) for L2
// reuse, as in matmul_cm1.comp.
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 256;
layout(constant_id = 3) const uint BK = 64;
layout(constant_id = 4) const uint GM = 8;

#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { float16_t x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

float addBias(const in uint row, const in uint col, const in float elem, const in uint n0) {
	const uint n = n0 + col;
	return n < pc.N ? elem + bias[pc.bOff + n] : elem;
}

void main() {
	const uint M = pc.M, N = pc.N, K = pc.K;
	const uint nTM = (M + BM - 1) / BM, nTN = (N + BN - 1) / BN;
	const uint L = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (L >= nTM * nTN) {
		return; // workgroup-uniform
	}
	const uint grp = L / (GM * nTN);
	const uint first = grp * GM;
	const uint gsz = min(nTM - first, GM);
	const uint rem = L - grp * GM * nTN;
	const uint m0 = (first + rem % gsz) * BM;
	const uint n0 = (rem / gsz) * BN;

	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tA = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tB = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tD = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tA = setTensorLayoutDimensionNV(tA, M, K);
	tB = setTensorLayoutDimensionNV(tB, N, K);
	tD = setTensorLayoutDimensionNV(tD, M, N);
	tD = setTensorLayoutStrideNV(tD, pc.ldy, 1);
	tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

	coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc =
		coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);
	for (uint k0 = 0; k0 < K; k0 += BK) {
		coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
		coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
		coopMatLoadTensorNV(a, x, pc.xOff, sliceTensorLayoutNV(tA, m0, BM, k0, BK));
		coopMatLoadTensorNV(b, w, pc.wOff, sliceTensorLayoutNV(tB, n0, BN, k0, BK), transposed);
		acc = coopMatMulAdd(a, b, acc);
	}
	if (pc.hasBias != 0) {
		coopMatPerElementNV(acc, acc, addBias, n0);
	}
	coopmat<YT, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> d =
		coopmat<YT, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(acc);
	coopMatStoreTensorNV(d, y, pc.yOff, sliceTensorLayoutNV(tD, m0, BM, n0, BN));
}
