#version 450
// variants: attn_decode_f32= attn_decode_f16=-DOUT_F16 attn_decode_dyn_f32=-DDYN attn_decode_dyn_f16=-DDYN,-DOUT_F16
//
// attn_decode.comp: split-KV decode attention (flash-decoding) in one
// dispatch, for the few rows of a decode step: R = Sq*GQ <= 16 rows, the GQ
// query heads of one KV head for each of the Sq queries. Layouts and the
// LSE convention are attn.comp's (Q [Sq, Hq, D], K and V [Skv, Hkv, D] f16,
// O [Sq, Hq, D] f32 or f16, LSE [Hq, Sq] f32 natural log, -inf and O = 0 for
// a row without keys); query i sits at position q0 + i, and with causal != 0
// key j is allowed when j <= q0 + i.
//
// Grid: x = splits (kps consecutive keys each, a push constant), y = KV
// heads. Workgroup (split s, KV head y) holds exactly the R rows of KV head
// y, row rho -> query rho / GQ, head y*GQ + rho % GQ (no idle rows), and
// takes the keys [s*kps, (s+1)*kps) in chunks of KC keys (usually one), each
// in three passes with no per-tile synchronisation:
//   1. scores: TPK threads per key, each a strided share of the D/4 chunks,
//      every row's dot product from one read of the key (Q pre-scaled by
//      scale*log2 e, in shared memory) -> Sp (TPK partial sums per score);
//   2. per row: masked scores, the chunk's max, the running max m, P =
//      exp2(s - m) in place and the running sum (reductions over the
//      TPR = WG/R2 threads of a row, R2 = R rounded up to a power of two:
//      with SUBGROUP, where a row is whole subgroups, subgroupMax and
//      subgroupAdd and, for rows of several subgroups, one exchange through
//      shared memory; else shared-memory trees);
//   3. O = exp2(m_old - m) O + P V: thread (key lane kl, chunk c) reads V
//      rows kl, kl+KL, ... once for all R rows, VB rows' loads issued
//      before their products.
// The KL = WG/(D/4) key lanes are then summed through shared memory, RB
// rows at a time.
// With one split (gl_NumWorkGroups.x == 1) the workgroup writes O and LSE.
// Else it writes its normalised partial O at s*Sq*Hq*D and its partial LSE
// at lseOff + s*Hq*Sq (binding 5 and 6: the scratch), then counts itself
// done on counter[y] (binding 7); the last workgroup of KV head y to arrive
// merges the partials of the splits that hold keys,
//   lse = log sum_s exp(lse_s),  O = sum_s exp(lse_s - lse) * O_s,
// writes O and LSE and resets counter[y] to 0 for the next dispatch. No
// workgroup waits for another; a split past the last key does nothing but
// count itself (and merge if it is the last to arrive).
//
// With SUBGROUP the workgroup's threads are numbered subgroup by subgroup
// (gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID), so that a
// row's threads are whole subgroups whatever order the device gives them.
//
// Masked scores are -FLT_MAX and the running max starts at -FLT_MAX/2, so
// exp2 gives exact zeros and never NaN.
//
// DYN (attn_decode_dyn_*): binding 8 (int) holds P at element 0 when the
// dispatch runs: q0 = pc.q0 + P, Skv = pc.Skv + P, so that a recorded decode
// step serves every cache length up to gl_NumWorkGroups.x * kps keys.

#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint R = 4;         // rows per workgroup: Sq*GQ, <= 16
layout(constant_id = 2) const uint KC = 64;       // keys per chunk
layout(constant_id = 3) const uint D = 64;        // head dim, multiple of 4, <= 256
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy
layout(constant_id = 5) const uint GQ = 4;        // query heads per KV head
layout(constant_id = 6) const uint TPK = 2;       // threads per key in pass 1
layout(constant_id = 7) const uint RB = 4;        // rows per batch of the key-lane sum
layout(constant_id = 8) const bool SUBGROUP = false; // subgroup arithmetic, full subgroups

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint KL = WG / D4;         // key lanes of passes 3 and the merge
const uint SPN = TPK * R * KC;   // scores (and merge weights) in shared memory
const uint VB = 4;               // V rows loaded at once in pass 3

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
layout(std430, set = 0, binding = 5) coherent buffer Pob { vec4 po[]; };
layout(std430, set = 0, binding = 6) coherent buffer Plb { float pl[]; };
layout(std430, set = 0, binding = 7) coherent buffer Cnb { uint counter[]; };
#ifdef DYN
layout(std430, set = 0, binding = 8) readonly buffer Pb { int dynPos[]; };
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
	float scale2; // scale * log2(e)
	uint causal;
	uint lseOff;  // element offset of the partial LSEs in binding 6
	uint kps;     // keys per split, a multiple of KC
} pc;

shared vec4 Qs[R * D4];
shared float Sp[SPN];
shared vec4 Os[RB * WG];
shared float red[WG];
shared float rowM[R];
shared float rowL[R];
shared float rowA[R];
shared bool isLast;

vec4 unpack4(uvec2 w) {
	return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
}

// sgRows: the reductions take subgroup operations (SUBGROUP, and a row's
// threads are whole subgroups).
bool sgRows;

// rowReduce returns, to every thread of row rho (threads rho*tpr ...
// (rho+1)*tpr, lane = t - rho*tpr), the max (op 0) or the sum (op 1) of
// the row's threads' v. Where it uses red it begins with a barrier
// (earlier reads of red done); it is called in uniform control flow.
float rowReduce(float v, uint t, uint lane, uint tpr, uint op) {
	if (!sgRows || tpr > gl_SubgroupSize) {
		barrier();
	}
	if (sgRows) {
		v = op == 0 ? subgroupMax(v) : subgroupAdd(v);
		const uint nsg = tpr / gl_SubgroupSize;
		if (nsg == 1) {
			return v;
		}
		if (subgroupElect()) {
			red[gl_SubgroupID] = v;
		}
		barrier();
		const uint first = (t - lane) / gl_SubgroupSize;
		v = red[first];
		for (uint i = 1; i < nsg; i++) {
			v = op == 0 ? max(v, red[first + i]) : v + red[first + i];
		}
		return v;
	}
	red[t] = v;
	barrier();
	for (uint w = tpr / 2; w > 0; w >>= 1) {
		if (lane < w) {
			red[t] = op == 0 ? max(red[t], red[t + w]) : red[t] + red[t + w];
		}
		barrier();
	}
	return red[t - lane];
}

// store writes the final output row ((query i, head h) = orow) chunk c.
void store(uint orow, uint c, vec4 o) {
#ifdef OUT_F16
	o = clamp(o, vec4(-65504.0), vec4(65504.0));
	ob[orow * D4 + c] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
#else
	ob[orow * D4 + c] = o;
#endif
}

void main() {
	// Rows per reduction group: R rounded up to a power of two.
	uint r2 = 1;
	while (r2 < R) {
		r2 *= 2;
	}
	uint tpr = WG / r2;
	sgRows = SUBGROUP && gl_NumSubgroups * gl_SubgroupSize == WG && tpr % gl_SubgroupSize == 0;
	uint t = sgRows ? gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID : gl_LocalInvocationID.x;
	uint split = gl_WorkGroupID.x;
	uint nsplit = gl_NumWorkGroups.x;
	uint hk = gl_WorkGroupID.y;
	uint q0 = Q0;
	uint skv = SKV;
	uint rowsHD = pc.Sq * pc.Hq;
	// Keys of the last query (every row's keys are a prefix of them).
	uint kendAll = pc.causal != 0 ? min(skv, q0 + pc.Sq) : skv;
	uint j0 = split * pc.kps;
	uint nks = j0 < kendAll ? min(pc.kps, kendAll - j0) : 0; // the split's keys

	uint rho = t / tpr;
	uint lane = t - rho * tpr;
	bool rowOK = rho < R;
	uint kendRow = 0; // keys of row rho
	if (rowOK) {
		kendRow = pc.causal != 0 ? min(skv, q0 + rho / GQ + 1) : skv;
	}
	uint c = t % D4; // passes 3 and the merge: chunk, key lane
	uint kl = t / D4;
	bool clOK = kl < KL;

	if (nks > 0) {
		for (uint idx = t; idx < R * D4; idx += WG) {
			uint r = idx / D4;
			uint cc = idx - r * D4;
			uint h = hk * GQ + r % GQ;
			Qs[idx] = unpack4(qb[((r / GQ) * pc.Hq + h) * D4 + cc]) * pc.scale2;
		}
		if (t < R) {
			rowM[t] = NEG_INIT;
			rowL[t] = 0.0;
		}
	}
	vec4 acc[R];
	for (uint r = 0; r < R; r++) {
		acc[r] = vec4(0.0);
	}
	for (uint c0 = 0; c0 < nks; c0 += KC) {
		uint jb = j0 + c0;            // the chunk's first key
		uint nk = min(KC, nks - c0);  // and its keys
		barrier(); // Qs, rowM, rowL written; the last chunk's Sp read

		// 1. Scores.
		uint part = t % TPK;
		for (uint jj = t / TPK; jj < nk; jj += WG / TPK) {
			float s[R];
			for (uint r = 0; r < R; r++) {
				s[r] = 0.0;
			}
			uint kbase = ((jb + jj) * pc.Hkv + hk) * D4;
			for (uint cc = part; cc < D4; cc += TPK) {
				vec4 kv = unpack4(kb[kbase + cc]);
				for (uint r = 0; r < R; r++) {
					s[r] += dot(Qs[r * D4 + cc], kv);
				}
			}
			for (uint r = 0; r < R; r++) {
				Sp[(part * R + r) * KC + jj] = s[r];
			}
		}
		barrier();

		// 2. Row max, P in place, row sum; the running max and sum.
		float m = NEG_INIT;
		if (rowOK) {
			for (uint j = lane; j < nk; j += tpr) {
				float s = 0.0;
				for (uint p = 0; p < TPK; p++) {
					s += Sp[(p * R + rho) * KC + j];
				}
				if (jb + j >= kendRow) {
					s = NEG_MASK;
				}
				Sp[rho * KC + j] = s;
				m = max(m, s);
			}
		}
		m = rowReduce(m, t, lane, tpr, 0);
		float mOld = rowOK ? rowM[rho] : NEG_INIT;
		float mNew = rowOK ? max(mOld, m) : NEG_INIT;
		float l = 0.0;
		if (rowOK) {
			for (uint j = lane; j < nk; j += tpr) {
				float p = exp2(Sp[rho * KC + j] - mNew);
				Sp[rho * KC + j] = p;
				l += p;
			}
		}
		l = rowReduce(l, t, lane, tpr, 1);
		if (rowOK && lane == 0) {
			float alpha = exp2(mOld - mNew);
			rowA[rho] = alpha;
			rowM[rho] = mNew;
			rowL[rho] = rowL[rho] * alpha + l;
		}
		barrier();

		// 3. O = alpha O + P V.
		for (uint r = 0; r < R; r++) {
			acc[r] *= rowA[r];
		}
		if (clOK) {
			uint vbase = (jb * pc.Hkv + hk) * D4 + c;
			uint vstep = pc.Hkv * D4;
			uint j = kl;
			for (; j + (VB - 1) * KL < nk; j += VB * KL) {
				vec4 v[VB];
				[[unroll]] for (uint b = 0; b < VB; b++) {
					v[b] = unpack4(vb[vbase + (j + b * KL) * vstep]);
				}
				[[unroll]] for (uint b = 0; b < VB; b++) {
					for (uint r = 0; r < R; r++) {
						acc[r] += Sp[r * KC + j + b * KL] * v[b];
					}
				}
			}
			for (; j < nk; j += KL) {
				vec4 v = unpack4(vb[vbase + j * vstep]);
				for (uint r = 0; r < R; r++) {
					acc[r] += Sp[r * KC + j] * v;
				}
			}
		}
	}
	if (nks > 0) {
		// The key lanes' sums, O / l.
		for (uint rb = 0; rb < R; rb += RB) {
			barrier(); // Os (and, the first time, Sp) read
			for (uint i = 0; i < RB; i++) {
				if (rb + i < R && clOK) {
					Os[i * WG + t] = acc[rb + i];
				}
			}
			barrier();
			if (t < RB * D4 && rb + t / D4 < R) {
				uint i = t / D4;
				uint cc = t - i * D4;
				uint r = rb + i;
				vec4 o = vec4(0.0);
				for (uint k = 0; k < KL; k++) {
					o += Os[i * WG + k * D4 + cc];
				}
				float lr = rowL[r];
				o *= lr > 0.0 ? 1.0 / lr : 0.0;
				uint orow = (r / GQ) * pc.Hq + hk * GQ + r % GQ;
				if (nsplit == 1) {
					store(orow, cc, o);
				} else {
					po[(split * rowsHD + orow) * D4 + cc] = o;
				}
			}
		}
		if (t < R) {
			uint h = hk * GQ + t % GQ;
			float lr = rowL[t];
			float lse = lr > 0.0 ? (rowM[t] + log2(lr)) * LN2 : uintBitsToFloat(0xff800000u);
			if (nsplit == 1) {
				if (WRITE_LSE != 0) {
					lseb[h * pc.Sq + t / GQ] = lse;
				}
			} else {
				pl[pc.lseOff + split * rowsHD + h * pc.Sq + t / GQ] = lse;
			}
		}
	}
	if (nsplit == 1) {
		return; // the whole workgroup
	}

	// Count this split done; the last one of KV head hk merges.
	memoryBarrierBuffer();
	barrier();
	if (t == 0) {
		isLast = atomicAdd(counter[hk], 1u) == nsplit - 1u;
	}
	barrier();
	if (!isLast) {
		return; // the whole workgroup
	}
	memoryBarrierBuffer();
	if (t == 0) {
		counter[hk] = 0u;
	}
	uint nused = min(nsplit, (kendAll + pc.kps - 1) / pc.kps);
	uint h = hk * GQ + rho % GQ;
	uint lrow = pc.lseOff + h * pc.Sq + rho / GQ; // + s*rowsHD: row rho's LSE of split s
	float m = uintBitsToFloat(0xff800000u);
	if (rowOK) {
		for (uint s = lane; s < nused; s += tpr) {
			m = max(m, pl[lrow + s * rowsHD]);
		}
	}
	m = rowReduce(m, t, lane, tpr, 0);
	float mg = rowOK ? m : 0.0;
	float sum = 0.0;
	if (rowOK && !isinf(mg)) {
		for (uint s = lane; s < nused; s += tpr) {
			sum += exp(pl[lrow + s * rowsHD] - mg);
		}
	}
	sum = rowReduce(sum, t, lane, tpr, 1);
	if (rowOK && lane == 0) {
		rowM[rho] = isinf(mg) ? mg : mg + log(sum); // the row's LSE
	}
	barrier();

	// O = sum_s w_s O_s, the weights w = exp(lse_s - lse) through Sp, SPN/R
	// splits at a time.
	for (uint r = 0; r < R; r++) {
		acc[r] = vec4(0.0);
	}
	const uint SB = SPN / R;
	for (uint s0 = 0; s0 < nused; s0 += SB) {
		uint ns = min(SB, nused - s0);
		for (uint idx = t; idx < R * ns; idx += WG) {
			uint r = idx / ns;
			uint s = idx - r * ns;
			float lse = rowM[r];
			float w = 0.0;
			if (!isinf(lse)) {
				w = exp(pl[pc.lseOff + (hk * GQ + r % GQ) * pc.Sq + r / GQ + (s0 + s) * rowsHD] - lse);
			}
			Sp[r * SB + s] = w;
		}
		barrier();
		if (clOK) {
			for (uint s = kl; s < ns; s += KL) {
				for (uint r = 0; r < R; r++) {
					float w = Sp[r * SB + s];
					if (w > 0.0) { // empty rows of a split may hold anything
						uint orow = (r / GQ) * pc.Hq + hk * GQ + r % GQ;
						acc[r] += w * po[((s0 + s) * rowsHD + orow) * D4 + c];
					}
				}
			}
		}
		barrier();
	}
	for (uint rb = 0; rb < R; rb += RB) {
		for (uint i = 0; i < RB; i++) {
			if (rb + i < R && clOK) {
				Os[i * WG + t] = acc[rb + i];
			}
		}
		barrier();
		if (t < RB * D4 && rb + t / D4 < R) {
			uint i = t / D4;
			uint cc = t - i * D4;
			uint r = rb + i;
			vec4 o = vec4(0.0);
			for (uint k = 0; k < KL; k++) {
				o += Os[i * WG + k * D4 + cc];
			}
			store((r / GQ) * pc.Hq + hk * GQ + r % GQ, cc, o);
		}
		barrier();
	}
	if (WRITE_LSE != 0 && t < R) {
		lseb[(hk * GQ + t % GQ) * pc.Sq + t / GQ] = rowM[t];
	}
}
