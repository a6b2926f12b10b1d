#version 450
// variants: plan_decide= plan_roles=-DGATES
// plan_decide.comp: the role of every query head of one layer, in the order
// of share.SharePrefill.PlanLayer (docs/algorithm.md#roles), and the pivot
// dictionary (docs/algorithm.md#per-call-state).
//
// All invocations load the walk's inputs into shared memory; then one
// invocation walks the heads in ascending order (a pivot registered by
// head h changes the role of the later heads of its cluster):
//   denseAll              → dense ("n below DenseBelow"), every block;
//   query-aware gate      → g0 < τ_q: query-aware, floor budgets;
//   no cluster            → vertical-slash ("no cluster"), γ budgets;
//   cluster not in scope  → vertical-slash ("cluster not shared");
//   js-uniform exclusion  → g1 > δ: excluded ("highly sparse");
//   no pivot yet          → pivot ("first eligible member"), every block;
//                           registers (layer, head), V_ref, S_ref;
//   pivot in this layer   → vertical-slash ("pivot in the same layer");
//   share gates           → !(g2 < τ_s), !(g3 < τ_s), vs-coverage
//                           !(vs_ratio < τ_f): vertical-slash (the failed
//                           gate); else shared, floor budgets.
// A NaN gate (nanCompat) compares false, as in Go. Budgets: ⌊k/B⌋ + 1
// clamped to [budLo, budHi] from the cover counts (share.Config.BlockBudget);
// the floor is min(budLo, budHi). On layer 0 the dictionary is cleared first.
// It also writes the pivot slots for the block maps: chunk i of nchunks
// holds pivots i·cap … i·cap+cap−1 (−1 past the last), with the indirect
// workgroup counts (bmGroups, nb, z), (nb, z, 1), (z, 1, 1), z = the pivots
// in it (bmGroups = ⌈nb/kpw⌉, the block map's grid width for the kpw key
// blocks per workgroup BlockMapIndirect passes; push constant).
// Bindings: 0 gates u32 [Hq, 8] (plan_gates.comp); 1 counts i32 [Hq, 2]
//   (k_v, k_s); 2 cmap i32: clusterOf [L, Hq] then inScope [K]; 3 V f32
//   [Hq, nb]; 4 S f32 [Hq, nb]; 5 meta i32 [K, 4] (pivot layer, pivot head,
//   pattern blocks, vs_ratio f32 bits); 6 refs f32 [K, 2, nb]; 7 hplan i32
//   [Hq, 4] (mode, cluster, nv, ns; mode 0 every block, 1 VS, 2 shared,
//   3 query-aware); 8 pivots i32 [nchunks, capPad]; 9 indirect u32
//   [nchunks, 9]; 10 stats i32 [L, Hq, 16] (row `layer` written: method,
//   reason, nv, ns, blocks (0; plan_scan.comp), pivot layer, pivot head,
//   evaluated gates (bits 0–3), g0–g3 bits, vs_ratio bits, pattern blocks
//   (plan_pivot.comp), cluster, 0).
// Grid: (1). Spec constant 0: local size (a power of two).
//
// GATES (plan_roles): the same kernel computing the gates of plan_gates.comp
// itself first (one dispatch and one barrier fewer per layer): binding 0 is
// then pooled f32 [Hq, nb] (read only when useQuery or exclDist = 2; bind V
// otherwise), refs (6) is read as well as written, no gate buffer is
// written (the statistics records hold the gate bits), and the push
// constants carry plan_gates' n, exclDist and nanCompat after capPad. All
// heads' gates are computed at once (allGates): a gate's sum runs over
// LOCAL / 2^⌈log2 Hq⌉ invocations (32 for 8 heads at the local size 256
// of kernels.PlanRoles) instead of plan_gates' 128, so its last bits may
// differ from plan_gates'.
layout(local_size_x = 64, local_size_x_id = 0) in;

#ifdef GATES
layout(std430, set = 0, binding = 0) readonly buffer Ab { float pooled[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer Gb { uint gates[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer Kb { int counts[]; };
layout(std430, set = 0, binding = 2) readonly buffer Cb { int cmap[]; };
layout(std430, set = 0, binding = 3) readonly buffer Vb { float V[]; };
layout(std430, set = 0, binding = 4) readonly buffer Sb { float S[]; };
layout(std430, set = 0, binding = 5) coherent buffer Mb { int meta[]; };
#ifdef GATES
layout(std430, set = 0, binding = 6) buffer Rb { float refs[]; };
#else
layout(std430, set = 0, binding = 6) writeonly buffer Rb { float refs[]; };
#endif
layout(std430, set = 0, binding = 7) writeonly buffer Pb { int hplan[]; };
layout(std430, set = 0, binding = 8) writeonly buffer Hb { int pivots[]; };
layout(std430, set = 0, binding = 9) writeonly buffer Ib { uint indirect[]; };
layout(std430, set = 0, binding = 10) writeonly buffer Tb { int stats[]; };

layout(push_constant) uniform Push {
	uint layer;
	uint L;
	uint Hq;
	uint nb;
	uint K;
	uint useQuery;
	uint exclusion; // 0 js-uniform, 1 vs-coverage, 2 none
	uint denseAll;
	float tauQ;
	float tauS;
	float delta;
	float tauF;
	int budLo;
	int budHi;
	int B;
	uint nchunks;
	uint cap;
	uint capPad;
	uint bmGroups; // grid width of the block map (BlockMapIndirect's kpw)
#ifdef GATES
	uint n;
	uint exclDist; // 0 V, 1 S, 2 â
	uint nanCompat;
#endif
} pc;

const uint MAXH = 64u;
const int M_DENSE = 0, M_PIVOT = 1, M_SHARED = 2, M_VS = 3, M_QA = 4, M_EXCL = 5;
const int R_NONE = 0, R_DENSE_BELOW = 1, R_NO_CLUSTER = 2, R_NOT_SHARED = 3, R_HIGHLY_SPARSE = 4,
	R_FIRST = 5, R_SAME_LAYER = 6, R_V_GATE = 7, R_S_GATE = 8, R_VS_RATIO = 9, R_SHARES = 10;

shared int sMethod[MAXH], sReason[MAXH], sMode[MAXH], sNv[MAXH], sNs[MAXH];
shared int sPivL[MAXH], sPivH[MAXH], sFlags[MAXH], sNew[MAXH];
shared int sList[MAXH];
shared uint sNpiv;
// The inputs of the serial walk, loaded by all invocations at once so that
// the walk reads shared memory only (a chain of dependent global loads in
// one invocation costs microseconds per head on a GPU): per head its
// cluster, the cluster's in-scope flag and pivot (layer, head, vs_ratio
// bits), the gate words 0–4 and the cover counts.
shared int sCi[MAXH], sScope[MAXH], sPl[MAXH], sPh[MAXH], sVsr[MAXH];
shared uint sGate[MAXH][5];
shared int sCnt[MAXH][2];

#ifdef GATES
shared float red[4][gl_WorkGroupSize.x];
shared uint zr[4][gl_WorkGroupSize.x];

bool isZero(float x) {
	return (floatBitsToUint(x) & 0x7FFFFFFFu) == 0u;
}

// term is plan_gates.comp's: p·ln(p/m) + q·ln(q/m), m = (p+q)/2, zero terms
// omitted, by its series for |δ| < ½, δ = (p−q)/(p+q).
float term(float p, float q) {
	float sum = p + q;
	if (!(sum > 0.0)) {
		return 0.0;
	}
	float d = (p - q) / sum;
	if (abs(d) < 0.5) {
		float d2 = d * d, pw = d2, t = 0.0;
		for (int k = 1; k <= 12; k++) {
			t += pw / float(k * (2 * k - 1));
			pw *= d2;
		}
		return 0.5 * sum * t;
	}
	float m = 0.5 * sum;
	float t = 0.0;
	if (p > 0.0) {
		t += p * log(p / m);
	}
	if (q > 0.0) {
		t += q * log(q / m);
	}
	return t;
}

// allGates writes the gate words 0–4 of every head (plan_gates.comp) to
// sGate, all heads at once: head h's entries are summed by the TPH =
// LOCAL / 2^⌈log2 Hq⌉ invocations h·TPH … h·TPH + TPH − 1 (entry c by
// invocation c mod TPH), then a segmented tree of log2 TPH levels adds
// them. One round of global loads and log2 TPH barriers for the layer,
// where a loop over the heads took Hq rounds and Hq·log2 LOCAL barriers.
// Every invocation calls it (it holds barriers).
void allGates(uint lin, uint LOCAL) {
	uint nb = pc.nb;
	uint hp = 1u;
	while (hp < pc.Hq) {
		hp <<= 1;
	}
	const uint TPH = max(LOCAL / hp, 1u);
	const uint h = lin / TPH;
	const uint sl = lin % TPH;
	const bool act = h < pc.Hq;
	const int ci = act ? sCi[h] : -1;
	const bool share = act && ci >= 0 && sPl[h] >= 0 && uint(sPl[h]) < pc.layer;
	const bool need[4] = bool[4](pc.useQuery != 0u, pc.exclusion == 0u, share, share);
	float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
	uint zero[4] = uint[4](0u, 0u, 0u, 0u);
	for (uint c = sl; act && c < nb; c += TPH) {
		float v = V[h * nb + c], s = S[h * nb + c];
		if (need[0]) {
			float a = pooled[h * nb + c];
			acc[0] += term(a, v);
			zero[0] |= uint(isZero(a) || isZero(v));
		}
		if (need[1]) {
			float x = pc.exclDist == 0u ? v : (pc.exclDist == 1u ? s : pooled[h * nb + c]);
			float u = float(min(uint(pc.B), pc.n - c * uint(pc.B))) / float(pc.n);
			acc[1] += term(x, u);
			zero[1] |= uint(isZero(x) || isZero(u));
		}
		if (share) {
			float vr = refs[(uint(ci) * 2u) * nb + c], sr = refs[(uint(ci) * 2u + 1u) * nb + c];
			acc[2] += term(vr, v);
			acc[3] += term(sr, s);
			zero[2] |= uint(isZero(vr) || isZero(v));
			zero[3] |= uint(isZero(sr) || isZero(s));
		}
	}
	for (uint i = 0u; i < 4u; i++) {
		red[i][lin] = acc[i];
		zr[i][lin] = zero[i];
	}
	barrier();
	for (uint st = TPH / 2u; st > 0u; st >>= 1) {
		if (sl < st) {
			for (uint i = 0u; i < 4u; i++) {
				red[i][lin] += red[i][lin + st];
				zr[i][lin] |= zr[i][lin + st];
			}
		}
		barrier();
	}
	if (act && sl == 0u) {
		uint nanMask = 0u;
		for (uint i = 0u; i < 4u; i++) {
			uint bits = 0x7FC00000u;
			if (need[i] && !(pc.nanCompat != 0u && zr[i][lin] != 0u)) {
				bits = floatBitsToUint(sqrt(max(0.5 * red[i][lin], 0.0)));
			} else {
				nanMask |= 1u << i;
			}
			sGate[h][i] = bits;
		}
		sGate[h][4] = nanMask;
	}
	barrier();
}
#endif

int budget(int k) {
	int b = k / pc.B + 1;
	return min(max(b, pc.budLo), pc.budHi);
}

bool isNaNBit(uint h, uint i) {
	return ((sGate[h][4] >> i) & 1u) != 0u;
}

float gate(uint h, uint i) {
	return uintBitsToFloat(sGate[h][i]);
}

void main() {
	uint lin = gl_LocalInvocationIndex;
	uint LOCAL = gl_WorkGroupSize.x;
	uint Hq = pc.Hq;
	uint inScope0 = pc.L * Hq;
	if (pc.layer == 0u) {
		for (uint k = lin; k < pc.K; k += LOCAL) {
			meta[k * 4u] = -1;
			meta[k * 4u + 1u] = -1;
			meta[k * 4u + 2u] = 0;
			meta[k * 4u + 3u] = 0;
		}
	}
	memoryBarrierBuffer();
	barrier();
	for (uint h = lin; h < Hq; h += LOCAL) {
		int ci = cmap[pc.layer * Hq + h];
		sCi[h] = ci;
		sScope[h] = ci >= 0 ? cmap[inScope0 + uint(ci)] : 0;
		sPl[h] = ci >= 0 ? meta[uint(ci) * 4u] : -1;
		sPh[h] = ci >= 0 ? meta[uint(ci) * 4u + 1u] : -1;
		sVsr[h] = ci >= 0 ? meta[uint(ci) * 4u + 3u] : 0;
#ifndef GATES
		for (uint i = 0u; i < 5u; i++) {
			sGate[h][i] = gates[h * 8u + i];
		}
#endif
		sCnt[h][0] = counts[h * 2u];
		sCnt[h][1] = counts[h * 2u + 1u];
	}
	barrier();
#ifdef GATES
	if (pc.denseAll == 0u) {
		allGates(lin, LOCAL);
	} else {
		for (uint h = lin; h < Hq; h += LOCAL) {
			for (uint i = 0u; i < 4u; i++) {
				sGate[h][i] = 0x7FC00000u;
			}
			sGate[h][4] = 15u;
		}
		barrier();
	}
#endif
	if (lin == 0u) {
		int floorB = min(pc.budLo, pc.budHi);
		uint npiv = 0u;
		for (uint h = 0u; h < Hq; h++) {
			int ci = sCi[h];
			int method = M_VS, reason = R_NONE, mode = 1, flags = 0;
			int nv = 0, ns = 0, pivL = -1, pivH = -1, isNew = 0;
			if (pc.denseAll != 0u) {
				method = M_DENSE;
				reason = R_DENSE_BELOW;
				mode = 0;
			} else {
				bool qa = false;
				if (pc.useQuery != 0u) {
					flags |= 1;
					qa = !isNaNBit(h, 0u) && gate(h, 0u) < pc.tauQ;
				}
				if (qa) {
					method = M_QA;
					mode = 3;
					nv = floorB;
					ns = floorB;
				} else {
					nv = budget(sCnt[h][0]);
					ns = budget(sCnt[h][1]);
					if (ci < 0) {
						reason = R_NO_CLUSTER;
					} else if (sScope[h] == 0) {
						reason = R_NOT_SHARED;
					} else {
						bool excluded = false;
						if (pc.exclusion == 0u) {
							flags |= 2;
							excluded = !isNaNBit(h, 1u) && gate(h, 1u) > pc.delta;
						}
						int pl = sPl[h];
						if (excluded) {
							method = M_EXCL;
							reason = R_HIGHLY_SPARSE;
						} else if (pl < 0) {
							method = M_PIVOT;
							reason = R_FIRST;
							mode = 0;
							pivL = int(pc.layer);
							pivH = int(h);
							meta[uint(ci) * 4u] = int(pc.layer);
							meta[uint(ci) * 4u + 1u] = int(h);
							meta[uint(ci) * 4u + 2u] = 0;
							meta[uint(ci) * 4u + 3u] = 0;
							sList[npiv++] = int(h);
							isNew = 1;
							// The later heads of the cluster see the new pivot.
							for (uint h2 = h + 1u; h2 < Hq; h2++) {
								if (sCi[h2] == ci) {
									sPl[h2] = int(pc.layer);
									sPh[h2] = int(h);
									sVsr[h2] = 0;
								}
							}
						} else if (uint(pl) == pc.layer) {
							reason = R_SAME_LAYER;
						} else {
							flags |= 12;
							pivL = pl;
							pivH = sPh[h];
							float vsr = intBitsToFloat(sVsr[h]);
							if (!(!isNaNBit(h, 2u) && gate(h, 2u) < pc.tauS)) {
								reason = R_V_GATE;
							} else if (!(!isNaNBit(h, 3u) && gate(h, 3u) < pc.tauS)) {
								reason = R_S_GATE;
							} else if (pc.exclusion == 1u && !(vsr < pc.tauF)) {
								reason = R_VS_RATIO;
							} else {
								method = M_SHARED;
								reason = R_SHARES;
								mode = 2;
								nv = floorB;
								ns = floorB;
							}
						}
					}
				}
			}
			sMethod[h] = method;
			sReason[h] = reason;
			sMode[h] = mode;
			sNv[h] = nv;
			sNs[h] = ns;
			sPivL[h] = pivL;
			sPivH[h] = pivH;
			sFlags[h] = flags;
			sNew[h] = isNew;
		}
		sNpiv = npiv;
		for (uint i = 0u; i < pc.nchunks; i++) {
			uint z = npiv > i * pc.cap ? min(npiv - i * pc.cap, pc.cap) : 0u;
			for (uint j = 0u; j < pc.capPad; j++) {
				pivots[i * pc.capPad + j] = j < z ? sList[i * pc.cap + j] : -1;
			}
			uint o = i * 9u;
			indirect[o] = pc.bmGroups;
			indirect[o + 1u] = pc.nb;
			indirect[o + 2u] = z;
			indirect[o + 3u] = pc.nb;
			indirect[o + 4u] = z;
			indirect[o + 5u] = 1u;
			indirect[o + 6u] = z;
			indirect[o + 7u] = 1u;
			indirect[o + 8u] = 1u;
		}
	}
	barrier();
	for (uint h = lin; h < Hq; h += LOCAL) {
		int ci = cmap[pc.layer * Hq + h];
		hplan[h * 4u] = sMode[h];
		hplan[h * 4u + 1u] = ci;
		hplan[h * 4u + 2u] = sNv[h];
		hplan[h * 4u + 3u] = sNs[h];
		uint o = (pc.layer * Hq + h) * 16u;
		stats[o] = sMethod[h];
		stats[o + 1u] = sReason[h];
		stats[o + 2u] = sNv[h];
		stats[o + 3u] = sNs[h];
		stats[o + 4u] = 0;
		stats[o + 5u] = sPivL[h];
		stats[o + 6u] = sPivH[h];
		stats[o + 7u] = sFlags[h];
		for (uint i = 0u; i < 4u; i++) {
			stats[o + 8u + i] = int(sGate[h][i]);
		}
		stats[o + 12u] = 0;
		stats[o + 13u] = 0;
		stats[o + 14u] = pc.denseAll != 0u ? -1 : ci;
		stats[o + 15u] = 0;
	}
	// V_ref and S_ref of the pivots registered here.
	for (uint h = 0u; h < Hq; h++) {
		if (sNew[h] == 0) {
			continue;
		}
		uint ci = uint(cmap[pc.layer * Hq + h]);
		for (uint c = lin; c < pc.nb; c += LOCAL) {
			refs[(ci * 2u) * pc.nb + c] = V[h * pc.nb + c];
			refs[(ci * 2u + 1u) * pc.nb + c] = S[h * pc.nb + c];
		}
	}
}
