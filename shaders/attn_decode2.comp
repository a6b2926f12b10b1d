#version 450
// variants: attn_decode2_f32= attn_decode2_f16=-DOUT_F16 attn_decode2_dyn_f32=-DDYN attn_decode2_dyn_f16=-DDYN,-DOUT_F16
//
// attn_decode2.comp: split-KV decode attention (flash-decoding) in one
// dispatch with no shared-memory staging and no barrier inside the key
// loop: the "splitkv2" variant of decode attention. Inputs, outputs, the
// grid, the scratch (partial O and LSE, counters) and the masks are
// attn_decode.comp's: Q [Sq, Hq, D], K and V [Skv, Hkv, D] f16, O
// [Sq, Hq, D] f32 or f16, LSE [Hq, Sq] f32 natural log (-inf and O = 0 for
// a row without keys); query i at position q0 + i sees key j when
// j <= q0 + i (causal != 0). Workgroup (split s, KV head y) takes the
// R = Sq*GQ rows of KV head y (row rho -> query rho / GQ, head
// y*GQ + rho % GQ) against the keys [s*kps, (s+1)*kps).
//
// Inside a workgroup each cluster of T consecutive lanes of a subgroup
// (T a power of two <= the subgroup size) is an independent flash-decoding
// stream over its own keys: lane tl of a cluster holds channels
// 8*(tl + i*T) ... +7 (i < NC = D/(8T)) of every row's query (scaled by
// scale*log2 e) and of every row's running output in registers. A batch
// gives cluster g of the NG = WG/T clusters the keys b + u*NG + g,
// u < U; the lane loads its 16-byte pieces of those K and V rows (the next
// batch's loads are issued before this batch's arithmetic), the rows'
// scores are summed over the cluster by subgroupShuffleXor, and the
// cluster's running max, sum and output are updated once a batch (online
// softmax in base 2). After the keys, the clusters of a subgroup merge by
// shuffles and the subgroups through shared memory (RB rows at a time: one
// barrier pair a batch of rows).
//
// Splits and merge as attn_decode.comp: with one split the workgroup writes
// O and LSE; else its normalised partial O and LSE go to the scratch, it
// counts itself on counter[y], and the last workgroup of KV head y merges
// the splits that hold keys and resets the counter. The merge gives each
// output vec4 (row, channel quad) P = WG / (R*D/4) threads (at least one),
// each an online merge of every P-th split with MU loads in flight, and the
// P partial merges are summed through shared memory.
//
// The pipeline is created with the device's subgroup size and full
// subgroups, so that gl_SubgroupSize >= T and subgroup s holds invocations
// s*S ... (s+1)*S-1.
//
// DYN (attn_decode2_dyn_*): binding 8 (int) holds P at element 0 when the
// dispatch runs: q0 = pc.q0 + P, Skv = pc.Skv + P.

#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint R = 4;         // rows per workgroup: Sq*GQ
layout(constant_id = 2) const uint T = 16;        // lanes per key (power of two)
layout(constant_id = 3) const uint D = 128;       // head dim, a multiple of 8*T
layout(constant_id = 4) const uint WRITE_LSE = 1; // 0: LSE binding is a dummy
layout(constant_id = 5) const uint GQ = 4;        // query heads per KV head
layout(constant_id = 6) const uint U = 4;         // keys per cluster and batch
layout(constant_id = 7) const uint RB = 4;        // rows per batch of the subgroup merge
layout(constant_id = 8) const uint NSG = 4;       // subgroups per workgroup

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint D8 = D / 8;
const uint NC = D8 / T;  // 16-byte pieces per lane and row
const uint NG = WG / T;  // clusters per workgroup
const uint MU = 16;      // splits loaded at once per merge thread

const float NEG_MASK = -3.402823466e38; // -FLT_MAX: masked score
const float NEG_INIT = -1.701411733e38; // -FLT_MAX/2: initial running max
const float LN2 = 0.69314718055994531;

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec4 qb[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec4 kb[]; };
layout(std430, set = 0, binding = 2) readonly buffer Vb { uvec4 vb[]; };
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
	uint kps;     // keys per split
} pc;

shared vec4 Os[NSG * RB * D4]; // the subgroups' unnormalised outputs
shared float Ms[NSG * R];      // and their running max (base 2)
shared float Ls[NSG * R];      // and sums
shared vec4 Mo[WG];            // the merge's partial outputs
shared float Mm[WG];           // max (natural log)
shared float Ml[WG];           // and sums
shared bool isLast;

vec4 lo4(uvec4 w) { return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); }
vec4 hi4(uvec4 w) { return vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)); }

// store writes chunk c of the final output row orow.
void store(uint orow, uint c, vec4 o) {
#ifdef OUT_F16
	o = clamp(o, vec4(-65504.0), vec4(65504.0));
	ob[orow * D4 + c] = uvec2(packHalf2x16(o.xy), packHalf2x16(o.zw));
#else
	ob[orow * D4 + c] = o;
#endif
}

// outRow is the output row (query, head) of workgroup row r.
uint outRow(uint r, uint hk) { return (r / GQ) * pc.Hq + hk * GQ + r % GQ; }

void main() {
	const uint S = gl_SubgroupSize;
	const uint sg = gl_SubgroupID;
	const uint sl = gl_SubgroupInvocationID;
	const uint t = sg * S + sl;
	const uint tl = sl % T;         // lane in the cluster
	const uint g = sg * (S / T) + sl / T; // cluster
	const uint split = gl_WorkGroupID.x;
	const uint nsplit = gl_NumWorkGroups.x;
	const uint hk = gl_WorkGroupID.y;
	const uint q0 = Q0;
	const uint skv = SKV;
	const uint rowsHD = pc.Sq * pc.Hq;
	const uint kendAll = pc.causal != 0 ? min(skv, q0 + pc.Sq) : skv;
	const uint j0 = split * pc.kps;
	const uint nks = j0 < kendAll ? min(pc.kps, kendAll - j0) : 0;

	if (nks > 0) {
		// Row r's keys end at kr[r] within the split.
		uint kr[R];
		[[unroll]] for (uint r = 0; r < R; r++) {
			uint ke = pc.causal != 0 ? min(skv, q0 + r / GQ + 1) : skv;
			kr[r] = min(ke, j0 + nks);
		}
		vec4 q[R * NC * 2];
		[[unroll]] for (uint r = 0; r < R; r++) {
			uint qbase = outRow(r, hk) * D8 + tl;
			[[unroll]] for (uint i = 0; i < NC; i++) {
				uvec4 w = qb[qbase + i * T];
				q[(r * NC + i) * 2] = lo4(w) * pc.scale2;
				q[(r * NC + i) * 2 + 1] = hi4(w) * pc.scale2;
			}
		}
		float m[R], l[R];
		vec4 acc[R * NC * 2];
		[[unroll]] for (uint r = 0; r < R; r++) {
			m[r] = NEG_INIT;
			l[r] = 0.0;
			[[unroll]] for (uint i = 0; i < 2 * NC; i++) {
				acc[r * 2 * NC + i] = vec4(0.0);
			}
		}
		const uint kstride = pc.Hkv * D8;
		const uint kbase = hk * D8 + tl;
		const uint klast = j0 + nks - 1;
		const uint step = NG * U;
		uvec4 kc[U * NC], vc[U * NC];
		[[unroll]] for (uint u = 0; u < U; u++) {
			uint j = min(j0 + u * NG + g, klast);
			[[unroll]] for (uint i = 0; i < NC; i++) {
				kc[u * NC + i] = kb[j * kstride + kbase + i * T];
				vc[u * NC + i] = vb[j * kstride + kbase + i * T];
			}
		}
		for (uint b = 0; b < nks; b += step) {
			// The next batch's loads first (clamped to the split's last
			// key: in bounds, masked, and cached).
			uvec4 kn[U * NC], vn[U * NC];
			if (b + step < nks) {
				[[unroll]] for (uint u = 0; u < U; u++) {
					uint j = min(j0 + b + step + u * NG + g, klast);
					[[unroll]] for (uint i = 0; i < NC; i++) {
						kn[u * NC + i] = kb[j * kstride + kbase + i * T];
						vn[u * NC + i] = vb[j * kstride + kbase + i * T];
					}
				}
			}
			// Scores: the lane's share, then summed over the cluster.
			float s[U * R];
			[[unroll]] for (uint u = 0; u < U; u++) {
				vec4 k[2 * NC];
				[[unroll]] for (uint i = 0; i < NC; i++) {
					k[2 * i] = lo4(kc[u * NC + i]);
					k[2 * i + 1] = hi4(kc[u * NC + i]);
				}
				[[unroll]] for (uint r = 0; r < R; r++) {
					float d = 0.0;
					[[unroll]] for (uint i = 0; i < 2 * NC; i++) {
						d += dot(q[r * 2 * NC + i], k[i]);
					}
					s[u * R + r] = d;
				}
			}
			[[unroll]] for (uint w = T / 2; w > 0; w >>= 1) {
				[[unroll]] for (uint x = 0; x < U * R; x++) {
					s[x] += subgroupShuffleXor(s[x], w);
				}
			}
			// Online softmax, once a batch.
			[[unroll]] for (uint r = 0; r < R; r++) {
				float mx = m[r];
				[[unroll]] for (uint u = 0; u < U; u++) {
					if (j0 + b + u * NG + g >= kr[r]) {
						s[u * R + r] = NEG_MASK;
					}
					mx = max(mx, s[u * R + r]);
				}
				float alpha = exp2(m[r] - mx);
				m[r] = mx;
				l[r] *= alpha;
				[[unroll]] for (uint i = 0; i < 2 * NC; i++) {
					acc[r * 2 * NC + i] *= alpha;
				}
			}
			[[unroll]] for (uint u = 0; u < U; u++) {
				vec4 v[2 * NC];
				[[unroll]] for (uint i = 0; i < NC; i++) {
					v[2 * i] = lo4(vc[u * NC + i]);
					v[2 * i + 1] = hi4(vc[u * NC + i]);
				}
				[[unroll]] for (uint r = 0; r < R; r++) {
					float p = exp2(s[u * R + r] - m[r]);
					l[r] += p;
					[[unroll]] for (uint i = 0; i < 2 * NC; i++) {
						acc[r * 2 * NC + i] += p * v[i];
					}
				}
			}
			[[unroll]] for (uint x = 0; x < U * NC; x++) {
				kc[x] = kn[x];
				vc[x] = vn[x];
			}
		}
		// The subgroup's clusters merge by shuffles.
		for (uint w = T; w < S; w *= 2) {
			[[unroll]] for (uint r = 0; r < R; r++) {
				float mo = subgroupShuffleXor(m[r], w);
				float lo = subgroupShuffleXor(l[r], w);
				float mn = max(m[r], mo);
				float a = exp2(m[r] - mn), c = exp2(mo - mn);
				m[r] = mn;
				l[r] = l[r] * a + lo * c;
				[[unroll]] for (uint i = 0; i < 2 * NC; i++) {
					vec4 x = acc[r * 2 * NC + i];
					acc[r * 2 * NC + i] = x * a + subgroupShuffleXor(x, w) * c;
				}
			}
		}
		// The subgroups through shared memory, RB rows at a time; lanes
		// 0 ... T-1 of each subgroup hold its merged state.
		if (sl == 0) {
			[[unroll]] for (uint r = 0; r < R; r++) {
				Ms[sg * R + r] = m[r];
				Ls[sg * R + r] = l[r];
			}
		}
		for (uint rb = 0; rb < R; rb += RB) {
			barrier(); // Os of the last batch read
			if (sl < T) {
				[[unroll]] for (uint r = 0; r < R; r++) {
					if (r >= rb && r < rb + RB) {
						[[unroll]] for (uint i = 0; i < NC; i++) {
							uint c4 = 2 * (tl + i * T);
							Os[(sg * RB + r - rb) * D4 + c4] = acc[r * 2 * NC + 2 * i];
							Os[(sg * RB + r - rb) * D4 + c4 + 1] = acc[r * 2 * NC + 2 * i + 1];
						}
					}
				}
			}
			barrier();
			for (uint e = t; e < RB * D4; e += WG) {
				uint rr = e / D4;
				uint c4 = e - rr * D4;
				uint r = rb + rr;
				if (r < R) {
					float mg = NEG_INIT;
					for (uint x = 0; x < NSG; x++) {
						mg = max(mg, Ms[x * R + r]);
					}
					float lg = 0.0;
					vec4 o = vec4(0.0);
					for (uint x = 0; x < NSG; x++) {
						float a = exp2(Ms[x * R + r] - mg);
						lg += Ls[x * R + r] * a;
						o += Os[(x * RB + rr) * D4 + c4] * a;
					}
					o *= lg > 0.0 ? 1.0 / lg : 0.0;
					uint orow = outRow(r, hk);
					if (nsplit == 1) {
						store(orow, c4, o);
					} else {
						po[(split * rowsHD + orow) * D4 + c4] = o;
					}
					if (c4 == 0) {
						float lse = lg > 0.0 ? (mg + log2(lg)) * LN2 : uintBitsToFloat(0xff800000u);
						uint h = hk * GQ + r % GQ;
						if (nsplit == 1) {
							if (WRITE_LSE != 0) {
								lseb[h * pc.Sq + r / GQ] = lse;
							}
						} else {
							pl[pc.lseOff + split * rowsHD + h * pc.Sq + r / GQ] = lse;
						}
					}
				}
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
	const uint nused = min(nsplit, (kendAll + pc.kps - 1) / pc.kps);
	const uint E = R * D4;             // output vec4s
	const uint P = max(1, WG / E);     // threads per output vec4
	const uint part = t % P;
	for (uint e0 = 0; e0 < E; e0 += WG / P) {
		uint e = e0 + t / P;
		bool ok = e < E && t < (WG / P) * P;
		uint r = e / D4;
		uint c4 = e - r * D4;
		uint orow = outRow(min(r, R - 1), hk);
		uint lrow = pc.lseOff + (hk * GQ + min(r, R - 1) % GQ) * pc.Sq + min(r, R - 1) / GQ;
		float mg = NEG_INIT, lg = 0.0;
		vec4 o = vec4(0.0);
		if (ok) {
			for (uint s0 = part; s0 < nused; s0 += MU * P) {
				float ls[MU];
				vec4 os[MU];
				[[unroll]] for (uint x = 0; x < MU; x++) {
					uint s = min(s0 + x * P, nused - 1);
					ls[x] = pl[lrow + s * rowsHD];
					os[x] = po[(s * rowsHD + orow) * D4 + c4];
				}
				[[unroll]] for (uint x = 0; x < MU; x++) {
					if (s0 + x * P < nused) {
						float mn = max(mg, ls[x]);
						float a = exp(mg - mn), c = exp(ls[x] - mn);
						mg = mn;
						lg = lg * a + c;
						o = o * a + (c > 0.0 ? os[x] * c : vec4(0.0));
					}
				}
			}
		}
		Mo[t] = o;
		Mm[t] = mg;
		Ml[t] = lg;
		barrier();
		if (ok && part == 0) {
			float mt = mg;
			for (uint x = 1; x < P; x++) {
				mt = max(mt, Mm[t + x]);
			}
			float lt = 0.0;
			vec4 ot = vec4(0.0);
			for (uint x = 0; x < P; x++) {
				float a = exp(Mm[t + x] - mt);
				lt += Ml[t + x] * a;
				ot += Mo[t + x] * a;
			}
			store(orow, c4, lt > 0.0 ? ot / lt : vec4(0.0));
			if (WRITE_LSE != 0 && c4 == 0) {
				lseb[(hk * GQ + r % GQ) * pc.Sq + r / GQ] = lt > 0.0 ? mt + log(lt) : uintBitsToFloat(0xff800000u);
			}
		}
		barrier();
	}
}
