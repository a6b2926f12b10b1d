#version 450
// cm2_peak.comp: the tensor-core ceiling of VK_NV_cooperative_matrix2
// workgroup-scope matrices (bench/cmpeak). Not used by the runtime. The
// workgroup holds A (BM×BK f16), B (BK×BN f16) and a BM×BN f32 accumulator
// as workgroup-scope cooperative matrices, loaded once from the input buffer,
// and runs ITER coopMatMulAdd on them (one dependency chain: the driver
// decides how the matrices are spread over the workgroup and where A and B
// live). The accumulator is stored at the end so no work is dead.
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128;
layout(constant_id = 2) const uint BN = 128;
layout(constant_id = 3) const uint BK = 32;
layout(constant_id = 4) const uint ITER = 1024;

layout(std430, set = 0, binding = 0) readonly buffer In { float16_t inp[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float outp[]; };

void main() {
	coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
	coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
	coopMatLoad(a, inp, 0, BK, gl_CooperativeMatrixLayoutRowMajor);
	coopMatLoad(b, inp, 0, BN, gl_CooperativeMatrixLayoutRowMajor);
	coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc =
		coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);
	for (uint it = 0; it < ITER; it++) {
		acc = coopMatMulAdd(a, b, acc);
	}
	coopMatStore(acc, outp, gl_WorkGroupID.x * BM * BN, BN, gl_CooperativeMatrixLayoutRowMajor);
}
