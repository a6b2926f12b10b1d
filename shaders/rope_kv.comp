#version 450
// variants: rope_kv= rope_qkv=-DQKV
// rope_kv.comp: the decode step's RoPE and KV-cache append in one dispatch,
// at a position read from a buffer (so that a recorded step can be replayed
// for the next token). For rows r < M at position p = pos[0] + pos0 + r:
//   q [M, Hq, D] f16: every head rotated in place;
//   k [M, Hkv, D] f16: every head rotated into the K cache row p;
//   v [M, Hkv, D] f16: copied into the V cache row p;
// caches [rows, Hkv, D] f16 (row p at element p * Hkv * D); rows at or past
// cacheRows are skipped (the host keeps p in range). The rotation is
// rope.comp's, operation for operation (Hugging Face layout, element i pairs
// with i + D/2; angle float(p) * inv_freq[i] in f32, reduced to [-pi, pi]),
// so the results equal Rope's and a copy's bit for bit.
// One invocation per pair (q pairs, then k pairs, then v pairs); 1D grid
// folded into 2D with a grid-stride loop.
// QKV (rope_qkv, prefill): q, k and v are the column ranges [0, Hq·D),
// [Hq·D, Hq·D + Hkv·D) and [Hq·D + Hkv·D, Hq·D + 2·Hkv·D) of one f16 input
// x [M, stride] (the output of one matmul with the three projections
// stacked); the rotated q goes to qo [M, Hq, D] instead of in place.
// Bindings: 0 qo, 1 x, 2 inv_freq, 3 kc, 4 vc, 5 pos; push constant stride
// after cacheRows. Same arithmetic, so the same bits.
#extension GL_EXT_shader_16bit_storage : require

layout(local_size_x = 256, local_size_x_id = 0) in;

#ifdef QKV
layout(std430, set = 0, binding = 0) writeonly buffer Q { float16_t qo[]; };
layout(std430, set = 0, binding = 1) readonly buffer X { float16_t x[]; };
layout(std430, set = 0, binding = 2) readonly buffer F { float inv_freq[]; };
layout(std430, set = 0, binding = 3) writeonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer VC { float16_t vc[]; };
layout(std430, set = 0, binding = 5) readonly buffer P { int pos[]; };
#else
layout(std430, set = 0, binding = 0) buffer Q { float16_t q[]; };
layout(std430, set = 0, binding = 1) readonly buffer K { float16_t k[]; };
layout(std430, set = 0, binding = 2) readonly buffer V { float16_t v[]; };
layout(std430, set = 0, binding = 3) readonly buffer F { float inv_freq[]; };
layout(std430, set = 0, binding = 4) writeonly buffer KC { float16_t kc[]; };
layout(std430, set = 0, binding = 5) writeonly buffer VC { float16_t vc[]; };
layout(std430, set = 0, binding = 6) readonly buffer P { int pos[]; };
#endif

layout(push_constant) uniform Push {
	uint rows;
	uint hq;
	uint hkv;
	uint half_d;
	int pos0;
	uint cacheRows;
#ifdef QKV
	uint stride; // elements per row of x
#endif
} pc;

#ifdef QKV
// Element j of row `row` of q, k or v in x, and where q's goes.
#define QIN(row, j) x[(row) * pc.stride + (j)]
#define KIN(row, j) x[(row) * pc.stride + pc.hq * d + (j)]
#define VIN(row, j) x[(row) * pc.stride + (pc.hq + pc.hkv) * d + (j)]
#define QOUT(row, j) qo[(row) * pc.hq * d + (j)]
#else
#define QIN(row, j) q[(row) * pc.hq * d + (j)]
#define KIN(row, j) k[(row) * pc.hkv * d + (j)]
#define VIN(row, j) v[(row) * pc.hkv * d + (j)]
#define QOUT(row, j) q[(row) * pc.hq * d + (j)]
#endif

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
	uint half_d = pc.half_d, d = 2 * half_d;
	uint nq = pc.rows * pc.hq * half_d;
	uint nk = pc.rows * pc.hkv * half_d;
	int p0 = pos[0] + pc.pos0;
	for (uint g = gid; g < nq + 2 * nk; g += total) {
		uint e = g < nq ? g : (g < nq + nk ? g - nq : g - nq - nk);
		uint heads = g < nq ? pc.hq : pc.hkv;
		uint per_row = heads * half_d;
		uint row = e / per_row;
		uint rem = e - row * per_row;
		uint h = rem / half_d;
		uint i = rem - h * half_d;
		uint xb = h * d + i; // within the row
		int p = p0 + int(row);
		uint cb = uint(p) * pc.hkv * d + h * d + i;
		if (g >= nq + nk) {
			if (p >= 0 && uint(p) < pc.cacheRows) {
				vc[cb] = VIN(row, xb);
				vc[cb + half_d] = VIN(row, xb + half_d);
			}
			continue;
		}
		precise float a = float(p) * inv_freq[i];
		float r = reduce_2pi(a);
		float c = cos(r);
		float s = sin(r);
		if (g < nq) {
			float x0 = float(QIN(row, xb));
			float x1 = float(QIN(row, xb + half_d));
			precise float y0 = x0 * c - x1 * s;
			precise float y1 = x1 * c + x0 * s;
			QOUT(row, xb) = float16_t(y0);
			QOUT(row, xb + half_d) = float16_t(y1);
		} else if (p >= 0 && uint(p) < pc.cacheRows) {
			float x0 = float(KIN(row, xb));
			float x1 = float(KIN(row, xb + half_d));
			precise float y0 = x0 * c - x1 * s;
			precise float y1 = x1 * c + x0 * s;
			kc[cb] = float16_t(y0);
			kc[cb + half_d] = float16_t(y1);
		}
	}
}
