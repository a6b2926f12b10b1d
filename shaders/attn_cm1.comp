#version 450
// variants: attn_cm1_f32= attn_cm1_f16=-DOUT_F16 attn_cm1_sparse_f32=-DSPARSE attn_cm1_sparse_f16=-DSPARSE,-DOUT_F16
//
// attn_cm1.comp: flash attention with KHR cooperative matrices (16×16×16
// f16×f16→f32, subgroup scope). Same bindings, push constants, layouts and
// results as attn.comp (dense causal/non-causal prefill, chunked prefill via
// q0, block-sparse CSR with -DSPARSE), without KV splits or folded GQA rows.
//
// Workgroup = BR/16 subgroups; subgroup s owns query rows r0+16s .. +15 of
// one head (grid x = row tiles, processed in reverse so long causal rows go
// first; y = query heads). Q stays in registers as D/16 A fragments
// (unscaled f16). Per KV tile of BC keys:
//   1. K and V [BC][D] f16 -> shared (zero beyond kend), padded rows;
//   2. S = Q·Kᵀ per subgroup: BC/16 f32 fragments (K loaded column-major as
//      the B operand), stored to a per-subgroup f32 scratch;
//   3. softmax on scalars, SG/16 invocations per row: scores scaled by
//      scale·log2(e) in f32, masked to -FLT_MAX where needed, running max m
//      and sum l in f32 (l sums the f32 probabilities, as attn.comp does),
//      P = exp2(s - m) -> shared as f16, the rescale factor alpha per row ->
//      shared;
//   4. O (D/16 f32 accumulator fragments) *= alpha per row, then O += P·V
//      (V loaded row-major as the B operand).
// Rescaling needs each accumulator component's row; the component layout is
// implementation-defined but the same for all matrices of one type, so it is
// probed once: a matrix whose entries are their row indices is loaded from
// shared memory and its components give each invocation's row table.
// The end divides by l (0 for a row without allowed keys, LSE -inf), clamps
// f16 output to ±65504 and stores O straight from the fragments (through
// the scratch, with guards, for a partial subgroup tile).
//
// Masks: keys ≥ kend, and with causal keys after the row's position; tiles
// that need no mask skip the test. Masked scores are -FLT_MAX, m starts at
// -FLT_MAX/2 (no NaN, exact zeros).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BR = 64;       // rows per workgroup (16 per subgroup)
layout(constant_id = 2) const uint BC = 32;       // keys per KV tile, multiple of 16
layout(constant_id = 3) const uint D = 128;       // head dim, multiple of 16
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy

const uint NSG = BR / 16;
const uint D8 = D / 8;
const uint DF = D / 16;
const uint CF = BC / 16;
const uint KS = D / 4 + 2; // f16vec4 row stride of K/V/Q staging (16 bytes of padding)
const uint PS = BC + 8;    // f16 row stride of P
const uint SS = BC + 4;    // f32 row stride of the S scratch (>= 16)

const float NEG_MASK = -3.402823466e38; // -FLT_MAX: masked score
const float NEG_INIT = -1.701411733e38; // -FLT_MAX/2: initial running max
const float LN2 = 0.69314718055994531;

#ifdef OUT_F16
#define OT float16_t
#else
#define OT float
#endif

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec4 q8[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec4 k8[]; };
layout(std430, set = 0, binding = 2) readonly buffer Vb { uvec4 v8[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Ob { OT ob[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Lb { float lseb[]; };
#ifdef SPARSE
layout(std430, set = 0, binding = 5) readonly buffer Rb { int rowPtr[]; };
layout(std430, set = 0, binding = 6) readonly buffer Cb { int cols[]; };
#endif

layout(push_constant) uniform Push {
	uint Sq;
	uint Skv;
	uint q0;
	uint Hq;
	uint Hkv;
	float scale2;        // scale * log2(e)
	uint causal;
	uint lseOff;         // element offset of LSE in binding 4
	uint tilesPerSplit;  // unused (must be 0)
	uint nRowTiles;      // gl_NumWorkGroups.x
	uint B;              // SPARSE: block size
	uint nb;             // SPARSE: blocks per head in rowPtr
} pc;

shared f16vec4 kv[2 * BC * KS]; // K rows [0, BC), V rows [BC, 2BC); Q staging (2·BC rows a pass) at start
shared float ssh[NSG * 16 * SS];
shared float16_t psh[NSG * 16 * PS];
shared float rowsh[NSG * 16 * 4]; // per-row partials (up to 4 invocations per row)
shared float alphash[NSG * 16];

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

MATA qf[DF];
ACC of[DF];
uint rowOf[16]; // row of each accumulator component of this invocation (SG >= 16)

float m_run = NEG_INIT;
float l_part = 0.0;

void stageRow(uint dst, uvec4 w) {
	kv[dst] = f16vec4(unpackFloat2x16(w.x), unpackFloat2x16(w.y));
	kv[dst + 1] = f16vec4(unpackFloat2x16(w.z), unpackFloat2x16(w.w));
}

// tile processes keys [start, start+BC). kend: keys at or beyond it are not
// allowed; posFirst: position of the workgroup's first query.
void tile(uint start, uint kend, uint hk, uint posFirst, uint sg, uint lane, uint myPos) {
	const uint tid = gl_LocalInvocationID.x;
	for (uint idx = tid; idx < BC * D8; idx += gl_WorkGroupSize.x) {
		const uint j = idx / D8;
		const uint c = idx - j * D8;
		const uint key = start + j;
		uvec4 kw = uvec4(0), vw = uvec4(0);
		if (key < kend) {
			const uint g = (key * pc.Hkv + hk) * D8 + c;
			kw = k8[g];
			vw = v8[g];
		}
		stageRow(j * KS + 2 * c, kw);
		stageRow((BC + j) * KS + 2 * c, vw);
	}
	barrier();

	const uint sbase = sg * 16 * SS;
	[[unroll]] for (uint cf = 0; cf < CF; cf++) {
		ACC s = ACC(0.0);
		[[unroll]] for (uint df = 0; df < DF; df++) {
			MATB kt;
			coopMatLoad(kt, kv, cf * 16 * KS + df * 4, KS, gl_CooperativeMatrixLayoutColumnMajor);
			s = coopMatMulAdd(qf[df], kt, s);
		}
		coopMatStore(s, ssh, sbase + cf * 16, SS, gl_CooperativeMatrixLayoutRowMajor);
	}
	subgroupBarrier();

	// Softmax: invocation lane handles row r = lane % 16, columns
	// part, part + LPR, ... (part = lane / 16).
	const uint LPR = gl_SubgroupSize / 16;
	const uint r = lane % 16, part = lane / 16;
	const bool rowLane = part < 4 && lane < 16 * LPR;
	const bool needMask = start + BC > kend || (pc.causal != 0 && start + BC - 1 > posFirst);
	float mt = NEG_INIT;
	if (rowLane) {
		for (uint c = part; c < BC; c += LPR) {
			float s = ssh[sbase + r * SS + c] * pc.scale2;
			const uint key = start + c;
			if (needMask && (key >= kend || (pc.causal != 0 && key > myPos))) {
				s = NEG_MASK;
			}
			mt = max(mt, s);
		}
		rowsh[(sg * 16 + r) * 4 + part] = mt;
	}
	subgroupBarrier();
	if (rowLane) {
		for (uint t = 0; t < min(LPR, 4); t++) {
			mt = max(mt, rowsh[(sg * 16 + r) * 4 + t]);
		}
		const float mNew = max(m_run, mt);
		const float alpha = exp2(m_run - mNew);
		m_run = mNew;
		float ls = 0.0;
		for (uint c = part; c < BC; c += LPR) {
			float s = ssh[sbase + r * SS + c] * pc.scale2;
			const uint key = start + c;
			if (needMask && (key >= kend || (pc.causal != 0 && key > myPos))) {
				s = NEG_MASK;
			}
			const float p = exp2(s - mNew);
			ls += p;
			psh[(sg * 16 + r) * PS + c] = float16_t(p);
		}
		l_part = l_part * alpha + ls;
		if (part == 0) {
			alphash[sg * 16 + r] = alpha;
		}
	}
	subgroupBarrier();

	// O *= alpha (per row), O += P·V.
	float al[16];
	const uint ne = uint(of[0].length());
	for (uint i = 0; i < ne; i++) {
		al[i] = alphash[sg * 16 + rowOf[i]];
	}
	[[unroll]] for (uint df = 0; df < DF; df++) {
		for (uint i = 0; i < ne; i++) {
			of[df][i] *= al[i];
		}
	}
	[[unroll]] for (uint cf = 0; cf < CF; cf++) {
		MATA p;
		coopMatLoad(p, psh, sg * 16 * PS + cf * 16, PS, gl_CooperativeMatrixLayoutRowMajor);
		[[unroll]] for (uint df = 0; df < DF; df++) {
			MATB vt;
			coopMatLoad(vt, kv, (BC + cf * 16) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
			of[df] = coopMatMulAdd(p, vt, of[df]);
		}
	}
	barrier();
}

void main() {
	const uint tid = gl_LocalInvocationID.x;
	const uint sg = gl_SubgroupID;
	const uint lane = gl_SubgroupInvocationID;
	const uint r0 = (pc.nRowTiles - 1 - gl_WorkGroupID.x) * BR;
	const uint h = gl_WorkGroupID.y;
	const uint hk = h / (pc.Hq / pc.Hkv);
	const uint rows = pc.Sq;

	const uint posFirst = pc.q0 + r0;
	const uint posLast = pc.q0 + min(r0 + BR, rows) - 1;
	const uint kend = pc.causal != 0 ? min(pc.Skv, posLast + 1) : pc.Skv;
	const uint myRow = r0 + sg * 16 + lane % 16;
	const uint myPos = pc.q0 + myRow;

	// Row-index probe -> rowOf.
	const uint sbase = sg * 16 * SS;
	for (uint e = lane; e < 256; e += gl_SubgroupSize) {
		ssh[sbase + (e / 16) * SS + e % 16] = float(e / 16);
	}
	subgroupBarrier();
	{
		ACC probe;
		coopMatLoad(probe, ssh, sbase, SS, gl_CooperativeMatrixLayoutRowMajor);
		for (uint i = 0; i < uint(probe.length()); i++) {
			rowOf[i] = uint(probe[i]);
		}
	}
	// Q tile -> shared (2·BC rows per pass) -> A fragments.
	for (uint pass = 0; pass < BR; pass += 2 * BC) {
		const uint np = min(2 * BC, BR - pass);
		for (uint idx = tid; idx < np * D8; idx += gl_WorkGroupSize.x) {
			const uint rr = idx / D8;
			const uint c = idx - rr * D8;
			uvec4 w = uvec4(0);
			if (r0 + pass + rr < rows) {
				w = q8[((r0 + pass + rr) * pc.Hq + h) * D8 + c];
			}
			stageRow(rr * KS + 2 * c, w);
		}
		barrier();
		if (sg * 16 >= pass && sg * 16 < pass + np) {
			[[unroll]] for (uint df = 0; df < DF; df++) {
				coopMatLoad(qf[df], kv, (sg * 16 - pass) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
			}
		}
		barrier();
	}
	[[unroll]] for (uint df = 0; df < DF; df++) {
		of[df] = ACC(0.0);
	}

#ifdef SPARSE
	const uint qblk = posFirst / pc.B;
	const int e0 = rowPtr[h * pc.nb + qblk];
	const int e1 = rowPtr[h * pc.nb + qblk + 1];
	for (int e = e0; e < e1; e++) {
		const int c = cols[e];
		if (c < 0) {
			continue;
		}
		const uint bs = uint(c) * pc.B;
		for (uint st = bs; st < bs + pc.B && st < kend; st += BC) {
			tile(st, kend, hk, posFirst, sg, lane, myPos);
		}
	}
#else
	const uint ntiles = (kend + BC - 1) / BC;
	for (uint t = 0; t < ntiles; t++) {
		tile(t * BC, kend, hk, posFirst, sg, lane, myPos);
	}
#endif

	// l per row, 1/l -> alphash, LSE.
	const uint LPR = gl_SubgroupSize / 16;
	const uint r = lane % 16, part = lane / 16;
	const bool rowLane = part < 4 && lane < 16 * LPR;
	if (rowLane) {
		rowsh[(sg * 16 + r) * 4 + part] = l_part;
	}
	subgroupBarrier();
	if (rowLane && part == 0) {
		float l = 0.0;
		for (uint t = 0; t < min(LPR, 4); t++) {
			l += rowsh[(sg * 16 + r) * 4 + t];
		}
		alphash[sg * 16 + r] = l > 0.0 ? 1.0 / l : 0.0;
		if (WRITE_LSE != 0 && myRow < rows) {
			lseb[pc.lseOff + h * pc.Sq + myRow] = l > 0.0 ? (m_run + log2(l)) * LN2 : uintBitsToFloat(0xff800000u);
		}
	}
	subgroupBarrier();
	float inv[16];
	const uint ne = uint(of[0].length());
	for (uint i = 0; i < ne; i++) {
		inv[i] = alphash[sg * 16 + rowOf[i]];
	}
	const uint fr0 = r0 + sg * 16; // first row of this subgroup
	const uint ostride = pc.Hq * D;
	[[unroll]] for (uint df = 0; df < DF; df++) {
		for (uint i = 0; i < ne; i++) {
#ifdef OUT_F16
			of[df][i] = clamp(of[df][i] * inv[i], -65504.0, 65504.0);
#else
			of[df][i] *= inv[i];
#endif
		}
	}
	if (fr0 + 16 <= rows) {
		[[unroll]] for (uint df = 0; df < DF; df++) {
			coopmat<OT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> ot =
				coopmat<OT, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(of[df]);
			coopMatStore(ot, ob, (fr0 * pc.Hq + h) * D + df * 16, ostride, gl_CooperativeMatrixLayoutRowMajor);
		}
	} else if (fr0 < rows) {
		[[unroll]] for (uint df = 0; df < DF; df++) {
			coopMatStore(of[df], ssh, sbase, SS, gl_CooperativeMatrixLayoutRowMajor);
			subgroupBarrier();
			for (uint e = lane; e < 256; e += gl_SubgroupSize) {
				const uint rr = e / 16, c = e % 16;
				if (fr0 + rr < rows) {
					ob[((fr0 + rr) * pc.Hq + h) * D + df * 16 + c] = OT(ssh[sbase + rr * SS + c]);
				}
			}
			subgroupBarrier();
		}
	}
}
