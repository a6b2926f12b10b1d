#version 450
// variants: matmul_xf32_yf32= matmul_xf32_yf16=-DY_F16 matmul_xf16_yf32=-DX_F16 matmul_xf16_yf16=-DX_F16,-DY_F16
// matmul.comp: tiled scalar matmul  y = x·Wᵀ (+ bias), f32 accumulation.
//   x [M, K] (f32, or f16 with X_F16), row-major, K contiguous
//   W [N, K] f16, row-major, K contiguous
//   bias [N] f32 (read only when pc.hasBias != 0)
//   y [M, N] (f32, or f16 with Y_F16), row stride pc.ldy
// Every buffer is addressed with an element offset from the push constants
// (xOff, wOff, bOff, yOff), so the host can bind 256-byte-aligned sub-ranges
// and process big tensors in chunks.
//
// One workgroup computes a BM×BN tile of y (grid x over N, y over M). The K
// dimension is walked in BK-wide slabs staged in shared memory as f32,
// transposed to [k][m] / [k][n]. Each invocation keeps a TM×TN block of
// accumulators in registers; its rows are ty + i·(BM/TM) and its columns
// tx + j·(BN/TN) (strided, so shared-memory reads of neighbouring
// invocations hit neighbouring banks or broadcast). Workgroup size must be
// (BM/TM)·(BN/TN) (spec constant 0). Tails in M, N, K are guarded (zero fill).
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 8;
layout(constant_id = 5) const uint TN = 8;

const uint WG = gl_WorkGroupSize.x;
const uint BMT = BM / TM; // invocations along M
const uint BNT = BN / TN; // invocations along N
const uint SA = BM + 1;   // padded shared strides
const uint SB = BN + 1;

#ifdef X_F16
#define XT float16_t
#else
#define XT float
#endif
#ifdef Y_F16
#define YT float16_t
#else
#define YT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer X { XT x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float16_t w[]; };
layout(std430, set = 0, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Y { YT y[]; };

layout(push_constant) uniform Push {
	uint M, N, K;
	uint ldy;
	uint xOff, wOff, bOff, yOff;
	uint hasBias;
} pc;

shared float As[BK * SA];
shared float Bs[BK * SB];

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint tx = tid % BNT;
	const uint ty = tid / BNT;
	const uint m0 = gl_WorkGroupID.y * BM;
	const uint n0 = gl_WorkGroupID.x * BN;
	const uint M = pc.M, N = pc.N, K = pc.K;

	float acc[TM * TN];
	[[unroll]] for (uint i = 0; i < TM * TN; i++) {
		acc[i] = 0.0;
	}

	for (uint k0 = 0; k0 < K; k0 += BK) {
		// Stage the x slab (BM rows × BK) and the W slab (BN rows × BK):
		// neighbouring invocations read neighbouring k of one row.
		for (uint idx = tid; idx < BM * BK; idx += WG) {
			const uint r = idx / BK, c = idx % BK;
			const uint gm = m0 + r, gk = k0 + c;
			float v = 0.0;
			if (gm < M && gk < K) {
				v = float(x[pc.xOff + gm * K + gk]);
			}
			As[c * SA + r] = v;
		}
		for (uint idx = tid; idx < BN * BK; idx += WG) {
			const uint r = idx / BK, c = idx % BK;
			const uint gn = n0 + r, gk = k0 + c;
			float v = 0.0;
			if (gn < N && gk < K) {
				v = float(w[pc.wOff + gn * K + gk]);
			}
			Bs[c * SB + r] = v;
		}
		barrier();
		[[unroll]] for (uint k = 0; k < BK; k++) {
			float a[TM];
			float b[TN];
			[[unroll]] for (uint i = 0; i < TM; i++) {
				a[i] = As[k * SA + ty + i * BMT];
			}
			[[unroll]] for (uint j = 0; j < TN; j++) {
				b[j] = Bs[k * SB + tx + j * BNT];
			}
			[[unroll]] for (uint i = 0; i < TM; i++) {
				[[unroll]] for (uint j = 0; j < TN; j++) {
					acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]);
				}
			}
		}
		barrier();
	}

	[[unroll]] for (uint j = 0; j < TN; j++) {
		const uint gn = n0 + tx + j * BNT;
		if (gn >= N) {
			continue;
		}
		const float bv = pc.hasBias != 0 ? bias[pc.bOff + gn] : 0.0;
		[[unroll]] for (uint i = 0; i < TM; i++) {
			const uint gm = m0 + ty + i * BMT;
			if (gm < M) {
				y[pc.yOff + gm * pc.ldy + gn] = YT(acc[i * TN + j] + bv);
			}
		}
	}
}
