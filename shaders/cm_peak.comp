#version 450
// variants: cm_peak_reg= cm_peak_shared=-DSHARED_FED cm_peak_reg16=-DACC_F16
//
// cm_peak.comp: the tensor-core ceiling reachable through
// VK_KHR_cooperative_matrix on a device (bench/cmpeak). Not used by the
// runtime. Each subgroup holds FM A fragments, FN B fragments (16×16 f16)
// and FM·FN 16×16 accumulators (f32, or f16 with ACC_F16) and runs ITER
// rounds of FM·FN coopMatMulAdd, every accumulator a dependency chain of
// its own:
//   cm_peak_reg     A and B loaded once from the input buffer, then reused
//                   from registers: the MMA issue rate alone;
//   cm_peak_shared  A and B reloaded from shared memory every round (as a
//                   matmul's inner loop does, 16-byte padded rows, the round
//                   alternates between two slabs so nothing can be hoisted):
//                   MMA plus fragment loads.
// Each subgroup writes the sum of its accumulators (one 16×16 tile) so no
// work is dead; the host checks the written values are finite.
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint FM = 4;
layout(constant_id = 2) const uint FN = 4;
layout(constant_id = 3) const uint ITER = 1024;

#ifdef ACC_F16
#define AT float16_t
#else
#define AT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer In { float16_t inp[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { AT outp[]; };

#define ACC coopmat<AT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

#ifdef SHARED_FED
// Two slabs of (FM+FN)·16 rows × 32 halves (+8 padding), as f16vec4.
const uint SA = 32 / 4 + 2;
const uint SLAB = (FM + FN) * 16 * SA;
shared f16vec4 sh[2 * SLAB];
#endif

void main() {
	const uint sg = gl_SubgroupID;
	const uint gsg = gl_WorkGroupID.x * gl_NumSubgroups + sg;
	ACC acc[FM * FN];
	[[unroll]] for (uint i = 0; i < FM * FN; i++) {
		acc[i] = ACC(AT(0.0));
	}
#ifdef SHARED_FED
	for (uint e = gl_LocalInvocationID.x; e < 2 * SLAB; e += gl_WorkGroupSize.x) {
		const uint b = (e * 4) % 1024;
		sh[e] = f16vec4(inp[b], inp[b + 1], inp[b + 2], inp[b + 3]);
	}
	barrier();
	for (uint it = 0; it < ITER; it++) {
		const uint base = (it & 1) * SLAB;
		[[unroll]] for (uint kk = 0; kk < 2; kk++) {
			MATA a[FM];
			MATB b[FN];
			[[unroll]] for (uint i = 0; i < FM; i++) {
				coopMatLoad(a[i], sh, base + i * 16 * SA + kk * 4, SA, gl_CooperativeMatrixLayoutRowMajor);
			}
			[[unroll]] for (uint j = 0; j < FN; j++) {
				coopMatLoad(b[j], sh, base + (FM + j) * 16 * SA + kk * 4, SA, gl_CooperativeMatrixLayoutColumnMajor);
			}
			[[unroll]] for (uint i = 0; i < FM; i++) {
				[[unroll]] for (uint j = 0; j < FN; j++) {
					acc[i * FN + j] = coopMatMulAdd(a[i], b[j], acc[i * FN + j]);
				}
			}
		}
	}
#else
	MATA a[FM];
	MATB b[FN];
	[[unroll]] for (uint i = 0; i < FM; i++) {
		coopMatLoad(a[i], inp, i * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
	}
	[[unroll]] for (uint j = 0; j < FN; j++) {
		coopMatLoad(b[j], inp, 4096 + j * 256, 16, gl_CooperativeMatrixLayoutColumnMajor);
	}
	for (uint it = 0; it < ITER; it++) {
		[[unroll]] for (uint kk = 0; kk < 2; kk++) {
			[[unroll]] for (uint i = 0; i < FM; i++) {
				[[unroll]] for (uint j = 0; j < FN; j++) {
					acc[i * FN + j] = coopMatMulAdd(a[i], b[j], acc[i * FN + j]);
				}
			}
		}
	}
#endif
	[[unroll]] for (uint i = 1; i < FM * FN; i++) {
		acc[0] = ACC(AT(0.0)) + acc[0] + acc[i];
	}
	coopMatStore(acc[0], outp, gsg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
}
