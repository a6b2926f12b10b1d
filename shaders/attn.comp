#version 450
// variants: attn_f32= attn_f16=-DOUT_F16 attn_sparse_f32=-DSPARSE attn_sparse_f16=-DSPARSE,-DOUT_F16 attn_dyn_f32=-DDYN attn_dyn_f16=-DDYN,-DOUT_F16
//
// attn.comp: scalar flash attention (online softmax, f32 statistics), the
// reference for later cooperative-matrix variants. Dense causal/non-causal
// prefill, chunked prefill (query offset q0), split-KV decode partials and,
// with -DSPARSE, block-sparse attention over a per-(head, query block) CSR
// list of key blocks.
//
// Layouts (f16 inputs, token-major):
//   Q [Sq, Hq, D], K and V [Skv, Hkv, D] (only the first Skv tokens are read),
//   O [Sq, Hq, D] f32 (attn_*_f32) or f16 (attn_*_f16),
//   LSE [Hq, Sq] f32: natural log of sum_j exp(scale * q_i . k_j), -inf for a
//   row with no allowed key (O is then 0).
//   Query i sits at position q0 + i; with causal != 0 key j is allowed when
//   j <= q0 + i. Query head h reads KV head h / (Hq / Hkv).
//
// Workgroup = BR rows x (WG / BR) threads per row ("lanes"). A row is one
// query of one head; with GQ > 1 (decode) the rows of a tile fold the GQ query
// heads of one KV head: row rho -> query rho / GQ, head y*GQ + rho % GQ, so K/V
// tiles are read once per KV head. Per KV tile of BC keys:
//   1. K, V tile -> shared (packed f16, zero beyond the allowed range);
//   2. each lane computes BC/TPR scores of its row (lane + TPR*k) against the
//      f32, pre-scaled (scale*log2 e) Q row in shared memory;
//   3. row max through shared memory; running max m, per-lane partial sum l,
//      accumulators rescaled by exp2(m_old - m_new); P -> shared;
//   4. each lane accumulates its D/4-chunks (lane + TPR*n) of O += P V.
// Masked scores are -FLT_MAX and m starts at -FLT_MAX/2, so exp2 gives exact
// zeros and never NaN. Masks are evaluated only on tiles that need them
// (the causal diagonal, the ragged end).
//
// Grid: x = row tiles (processed in reverse: long causal rows first),
// y = heads (GQ = 1) or KV heads (GQ > 1), z = KV splits (tilesPerSplit != 0:
// split z writes its own normalised partial O at z*Sq*Hq*D and partial LSE
// at lseOff + z*Hq*Sq; attn_reduce merges them).
//
// SPARSE: rowPtr i32 [Hq*nb + 1] (index h*nb + r), cols i32 [nnz]: the
// workgroup of query block r = (q0 + first row)/B walks cols[rowPtr[h*nb+r] ..
// rowPtr[h*nb+r+1]) and, per listed block c, its B/BC KV tiles; work is
// proportional to the listed blocks. BR and BC divide B; q0 % B == 0.
//
// DYN (attn_dyn_*): the position comes from a buffer when the dispatch runs,
// binding 5 (int) holding P at element 0: q0 = pc.q0 + P and
// Skv = pc.Skv + P, so that a recorded decode step serves every cache
// length its grid covers (splits past the last KV tile are empty: O = 0,
// LSE = -inf, which attn_reduce weighs 0).

layout(local_size_x = 64, local_size_x_id = 0) in;
layout(constant_id = 1) const uint BR = 16;       // rows per workgroup
layout(constant_id = 2) const uint BC = 32;       // keys per KV tile
layout(constant_id = 3) const uint D = 64;        // head dim, multiple of 4, <= 256
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy
layout(constant_id = 5) const uint GQ = 1;        // query heads folded into rows

const uint WG = gl_WorkGroupSize.x;
const uint TPR = WG / BR;               // lanes per row
const uint CPT = BC / TPR;              // scores per lane
const uint D4 = D / 4;
const uint NCH = (D4 + TPR - 1) / TPR;  // output vec4 chunks per lane
const uint QSTR = D4 + 1;               // padded strides against bank conflicts
const uint KSTR = D4 + 1;

const float NEG_MASK = -3.402823466e38; // -FLT_MAX: masked score
const float NEG_INIT = -1.701411733e38; // -FLT_MAX/2: initial running max
const float LN2 = 0.69314718055994531;

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec2 qb[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec2 kb[]; };
layout(std430, set = 0, binding = 2) readonly buffer Vb { uvec2 vb[]; };
#ifdef OUT_F16
layout(std430, set = 0, binding = 3) writeonly buffer Ob { uvec2 ob[]; };
#else
layout(std430, set = 0, binding = 3) writeonly buffer Ob { vec4 ob[]; };
#endif
layout(std430, set = 0, binding = 4) writeonly buffer Lb { float lseb[]; };
#ifdef SPARSE
layout(std430, set = 0, binding = 5) readonly buffer Rb { int rowPtr[]; };
layout(std430, set = 0, binding = 6) readonly buffer Cb { int cols[]; };
#endif
#ifdef DYN
layout(std430, set = 0, binding = 5) readonly buffer Pb { int dynPos[]; };
#define Q0 (pc.q0 + uint(dynPos[0]))
#define SKV (pc.Skv + uint(dynPos[0]))
#else
#define Q0 pc.q0
#define SKV pc.Skv
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
	uint tilesPerSplit;  // 0: one split
	uint nRowTiles;      // gl_NumWorkGroups.x
	uint B;              // SPARSE: block size
	uint nb;             // SPARSE: blocks per head in rowPtr
} pc;

shared vec4 Qs[BR * QSTR];
shared uvec2 Ks[BC * KSTR];
shared uvec2 Vs[BC * D4];
shared float Ps[BR * BC];
shared float red[WG];

float m_run = NEG_INIT;
float l_part = 0.0;
vec4 acc[NCH];

vec4 unpack4(uvec2 w) {
	return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}

// tile processes keys [start, start+BC) for this workgroup's rows. kend: keys
// at or beyond it are not allowed; posFirst: position of the tile's first
// query; myPos: position of this thread's query.
void tile(uint start, uint kend, uint hk, uint posFirst, uint myPos, uint tid, uint rho, uint lane) {
	for (uint idx = tid; idx < BC * D4; idx += WG) {
		uint j = idx / D4;
		uint c = idx - j * D4;
		uint key = start + j;
		uvec2 kw = uvec2(0), vw = uvec2(0);
		if (key < kend) {
			uint g = (key * pc.Hkv + hk) * D4 + c;
			kw = kb[g];
			vw = vb[g];
		}
		Ks[j * KSTR + c] = kw;
		Vs[j * D4 + c] = vw;
	}
	barrier();

	float s[CPT];
	for (uint k = 0; k < CPT; k++) {
		s[k] = 0.0;
	}
	for (uint c = 0; c < D4; c++) {
		vec4 qv = Qs[rho * QSTR + c];
		for (uint k = 0; k < CPT; k++) {
			s[k] += dot(qv, unpack4(Ks[(lane + TPR * k) * KSTR + c]));
		}
	}
	bool needMask = start + BC > kend || (pc.causal != 0 && start + BC - 1 > posFirst);
	float mt = NEG_INIT;
	for (uint k = 0; k < CPT; k++) {
		if (needMask) {
			uint key = start + lane + TPR * k;
			if (key >= kend || (pc.causal != 0 && key > myPos)) {
				s[k] = NEG_MASK;
			}
		}
		mt = max(mt, s[k]);
	}
	red[tid] = mt;
	barrier();
	for (uint t = 0; t < TPR; t++) {
		mt = max(mt, red[rho * TPR + t]);
	}
	float mNew = max(m_run, mt);
	float alpha = exp2(m_run - mNew);
	m_run = mNew;
	float ls = 0.0;
	for (uint k = 0; k < CPT; k++) {
		float p = exp2(s[k] - mNew);
		ls += p;
		Ps[rho * BC + lane + TPR * k] = p;
	}
	l_part = l_part * alpha + ls;
	for (uint n = 0; n < NCH; n++) {
		acc[n] *= alpha;
	}
	barrier();

	for (uint j = 0; j < BC; j++) {
		float p = Ps[rho * BC + j];
		for (uint n = 0; n < NCH; n++) {
			uint c = lane + TPR * n;
			if (NCH * TPR == D4 || c < D4) {
				acc[n] += p * unpack4(Vs[j * D4 + c]);
			}
		}
	}
	barrier();
}

void main() {
	uint tid = gl_LocalInvocationID.x;
	uint rho = tid / TPR;
	uint lane = tid - rho * TPR;
	uint rows = pc.Sq * GQ;
	uint r0 = (pc.nRowTiles - 1 - gl_WorkGroupID.x) * BR;
	uint G = pc.Hq / pc.Hkv;
	uint hbase = gl_WorkGroupID.y * GQ;
	uint hk = hbase / G;
	uint split = gl_WorkGroupID.z;

	uint myRow = r0 + rho;
	bool rowOK = myRow < rows;
	uint qi = myRow / GQ;
	uint h = hbase + myRow % GQ;
	uint myPos = Q0 + qi;

	uint posFirst = Q0 + r0 / GQ;
	uint posLast = Q0 + (min(r0 + BR, rows) - 1) / GQ;
	uint kend = pc.causal != 0 ? min(SKV, posLast + 1) : SKV;

	for (uint idx = tid; idx < BR * D4; idx += WG) {
		uint rr = idx / D4;
		uint c = idx - rr * D4;
		uint R = r0 + rr;
		vec4 v = vec4(0.0);
		if (R < rows) {
			uint i = R / GQ;
			uint hh = hbase + R % GQ;
			v = unpack4(qb[(i * pc.Hq + hh) * D4 + c]) * pc.scale2;
		}
		Qs[rr * QSTR + c] = v;
	}
	for (uint n = 0; n < NCH; n++) {
		acc[n] = vec4(0.0);
	}

#ifdef SPARSE
	uint qblk = posFirst / pc.B;
	int e0 = rowPtr[hbase * pc.nb + qblk];
	int e1 = rowPtr[hbase * pc.nb + qblk + 1];
	for (int e = e0; e < e1; e++) {
		int c = cols[e];
		if (c < 0) {
			continue;
		}
		uint bs = uint(c) * pc.B;
		for (uint st = bs; st < bs + pc.B && st < kend; st += BC) {
			tile(st, kend, hk, posFirst, myPos, tid, rho, lane);
		}
	}
#else
	uint ntiles = (kend + BC - 1) / BC;
	uint t0 = 0, t1 = ntiles;
	if (pc.tilesPerSplit != 0) {
		t0 = min(split * pc.tilesPerSplit, ntiles);
		t1 = min(t0 + pc.tilesPerSplit, ntiles);
	}
	for (uint t = t0; t < t1; t++) {
		tile(t * BC, kend, hk, posFirst, myPos, tid, rho, lane);
	}
#endif

	red[tid] = l_part;
	barrier();
	float l = 0.0;
	for (uint t = 0; t < TPR; t++) {
		l += red[rho * TPR + t];
	}
	if (!rowOK) {
		return;
	}
	float inv = l > 0.0 ? 1.0 / l : 0.0;
	uint obase = (split * pc.Sq * pc.Hq + qi * pc.Hq + h) * D4;
	for (uint n = 0; n < NCH; n++) {
		uint c = lane + TPR * n;
		if (c < D4) {
			vec4 o = acc[n] * inv;
#ifdef OUT_F16
			o = clamp(o, vec4(-65504.0), vec4(65504.0));
			ob[obase + c] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
#else
			ob[obase + c] = o;
#endif
		}
	}
	if (WRITE_LSE != 0 && lane == 0) {
		lseb[pc.lseOff + split * pc.Hq * pc.Sq + h * pc.Sq + qi] =
			l > 0.0 ? (m_run + log2(l)) * LN2 : uintBitsToFloat(0xff800000u);
	}
}
