#version 450
// variants: matmul_cm2_yf32= matmul_cm2_yf16=-DY_F16
// matmul_cm2.comp: NV cooperative-matrix-2 (VK_NV_cooperative_matrix2)
// matmul  y = x·Wᵀ (+ bias), or y += x·Wᵀ (+ bias) with ACC, f16 inputs,
// f32 accumulation. Same bindings,
// push constants and results as matmul.comp and matmul_cm1.comp:
//   x [M, K] f16, row-major, K contiguous
//   W [N, K] f16, row-major, K contiguous
//   bias [N] f32 (read only when pc.hasBias != 0)
//   y [M, N] (f32, or f16 with Y_F16: rounded once, not clamped), row
//   stride pc.ldy
// with element offsets xOff, wOff, bOff, yOff into the bindings.
//
// One workgroup of WG invocations computes a BM×BN tile of y as a single
// workgroup-scope f32 accumulator. For each BK-deep slab it loads
// A = x[m0:m0+BM, k0:k0+BK] and B = W[n0:n0+BN, k0:k0+BK]ᵀ straight from
// global memory through tensor layouts (B through a transposing view of
// W's [n][k] rows); the driver stages those loads itself, so there is no
// shared memory of ours and no barrier in the loop.
//
// Two load paths:
//   interior tiles (all BM rows below M, all BN columns below N): the full
//     slabs go through layouts without clamping, UNROLL slabs per loop
//     trip, so the driver needs no bounds checks on them; a K tail
//     (K % BK != 0) is one slab through the clamped layouts;
//   edge tiles: every slab through clamped layouts (clamp mode constant:
//     rows past M or N and columns past K read as 0).
// ALIGNED (spec constant 5, set by the host when K, xOff and wOff are
// multiples of 8) rounds the offsets and row strides down to multiples of
// 8 elements where the compiler can see it, which tells it that every
// row starts 16-byte aligned (the values do not change).
//
// The bias is added by a per-element operation on the accumulator; with
// ACC (spec constant 7) a second one adds y's old values, read through the
// read-only view YR (y = y + (x·Wᵀ + bias) in f32, the order of matmul.comp
// and matmul_cm1.comp: MatMulAdd). The result is converted to the output
// type and stored through a clamped layout of dimension M×N with row
// stride ldy, which drops the rows and columns past the edge.
//
// Workgroups are numbered linearly (x + y·gridX; the host folds big grids)
// and mapped to tiles in groups of GM tile rows (spec constant 4), as in
// matmul_cm1.comp: the workgroups resident at one time share a few tile
// rows of x and sweep W together, so both stay in L2.
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 256;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 64;
layout(constant_id = 4) const uint GM = 8;
layout(constant_id = 5) const bool ALIGNED = false;
layout(constant_id = 6) const uint UNROLL = 8; // full slabs per loop trip (interior tiles)
layout(constant_id = 7) const bool ACC = false;  // y += x·Wᵀ (+ bias)

#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { float16_t x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };
layout(std430, set = 0, binding = 3) readonly buffer YR { YT yr[]; }; // ACC only

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

#define MAT_A coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>

// addBias adds bias[n] to column col of the tile that starts at column n0
// (columns past N are left alone; the store drops them).
float addBias(const in uint row, const in uint col, const in float elem, const in uint n0) {
	const uint n = n0 + col;
	return n < pc.N ? elem + bias[pc.bOff + n] : elem;
}

// addY adds y's old value at (m0 + row, n0 + col) (elements past M or N
// are left alone; the store drops them).
float addY(const in uint row, const in uint col, const in float elem, const in uint m0, const in uint n0) {
	const uint m = m0 + row, n = n0 + col;
	return m < pc.M && n < pc.N ? elem + float(yr[pc.yOff + m * pc.ldy + n]) : elem;
}

void main() {
	const uint M = pc.M, N = pc.N, K = pc.K;
	const uint nTM = (M + BM - 1) / BM, nTN = (N + BN - 1) / BN;
	const uint L = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (L >= nTM * nTN) {
		return; // workgroup-uniform
	}
	// Grouped tile order: GM tile rows at a time, rows fastest.
	const uint grp = L / (GM * nTN);
	const uint first = grp * GM;
	const uint gsz = min(nTM - first, GM);
	const uint rem = L - grp * GM * nTN;
	const uint m0 = (first + rem % gsz) * BM;
	const uint n0 = (rem / gsz) * BN;

	// Offsets and row strides; with ALIGNED the masks are no-ops the
	// compiler can use as alignment facts.
	const uint ld = ALIGNED ? (K & ~7u) : K;
	const uint xo = ALIGNED ? (pc.xOff & ~7u) : pc.xOff;
	const uint wo = ALIGNED ? (pc.wOff & ~7u) : pc.wOff;

	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tXc = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tWc = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tY = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
	tXc = setTensorLayoutDimensionNV(tXc, M, K);
	tXc = setTensorLayoutStrideNV(tXc, ld, 1);
	tWc = setTensorLayoutDimensionNV(tWc, N, K);
	tWc = setTensorLayoutStrideNV(tWc, ld, 1);
	tY = setTensorLayoutDimensionNV(tY, M, N);
	tY = setTensorLayoutStrideNV(tY, pc.ldy, 1);
	tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

	MAT_C acc = MAT_C(0.0);
	const uint nFull = K / BK; // slabs entirely below K
	if (m0 + BM <= M && n0 + BN <= N) {
		tensorLayoutNV<2> tX = createTensorLayoutNV(2);
		tensorLayoutNV<2> tW = createTensorLayoutNV(2);
		tX = setTensorLayoutDimensionNV(tX, M, K);
		tX = setTensorLayoutStrideNV(tX, ld, 1);
		tW = setTensorLayoutDimensionNV(tW, N, K);
		tW = setTensorLayoutStrideNV(tW, ld, 1);
		uint kt = 0;
		[[dont_unroll]] for (; kt + UNROLL <= nFull; kt += UNROLL) {
			[[unroll]] for (uint u = 0; u < UNROLL; u++) {
				const uint k0 = (kt + u) * BK;
				MAT_A a;
				MAT_B b;
				coopMatLoadTensorNV(a, x, xo, sliceTensorLayoutNV(tX, m0, BM, k0, BK));
				coopMatLoadTensorNV(b, w, wo, sliceTensorLayoutNV(tW, n0, BN, k0, BK), transposed);
				acc = coopMatMulAdd(a, b, acc);
			}
		}
		[[dont_unroll]] for (; kt < nFull; kt++) {
			MAT_A a;
			MAT_B b;
			coopMatLoadTensorNV(a, x, xo, sliceTensorLayoutNV(tX, m0, BM, kt * BK, BK));
			coopMatLoadTensorNV(b, w, wo, sliceTensorLayoutNV(tW, n0, BN, kt * BK, BK), transposed);
			acc = coopMatMulAdd(a, b, acc);
		}
		if (nFull * BK < K) { // the K tail: columns past K read as 0
			MAT_A a;
			MAT_B b;
			coopMatLoadTensorNV(a, x, xo, sliceTensorLayoutNV(tXc, m0, BM, nFull * BK, BK));
			coopMatLoadTensorNV(b, w, wo, sliceTensorLayoutNV(tWc, n0, BN, nFull * BK, BK), transposed);
			acc = coopMatMulAdd(a, b, acc);
		}
	} else {
		[[dont_unroll]] for (uint k0 = 0; k0 < K; k0 += BK) {
			MAT_A a;
			MAT_B b;
			coopMatLoadTensorNV(a, x, xo, sliceTensorLayoutNV(tXc, m0, BM, k0, BK));
			coopMatLoadTensorNV(b, w, wo, sliceTensorLayoutNV(tWc, n0, BN, k0, BK), transposed);
			acc = coopMatMulAdd(a, b, acc);
		}
	}

	if (pc.hasBias != 0) {
		coopMatPerElementNV(acc, acc, addBias, n0);
	}
	if (ACC) {
		coopMatPerElementNV(acc, acc, addY, m0, n0);
	}
	const coopmat<YT, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> d =
		coopmat<YT, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(acc);
	coopMatStoreTensorNV(d, y, pc.yOff, sliceTensorLayoutNV(tY, m0, BM, n0, BN));
}
