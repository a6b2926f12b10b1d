#version 450
// est_cover_hist.comp: the γ budget counts of est_cover.comp (same result,
// docs/vulkan.md#estimation-kernels) spread over the whole GPU:
//   k = min(1 + m*, n),  m* = max{m : Σ of the m largest entries ≤ γ·Σx}.
// Entries must be ≥ 0, finite, NaN-free, with a finite sum; zeros (and
// -0.0) take part in no bin and are never counted.
// Pass 1, every workgroup (chunk c of CH entries of one (head, vector)):
// a histogram of its chunk over the NBIN = 256 exponent fields (key =
// bits >> 23): per bin the count and the exact integer sum of the 24-bit
// significands m (implicit bit included; bin 0, the subnormals, without
// it), kept as the sums of m >> 12 and m & 0xFFF (shared-memory integer
// atomics, a subgroup's lanes of its two largest keys added up first:
// exact, so their order does not matter). It writes them to the
// scratch and counts itself done on the (head, vector)'s counter; the last
// workgroup to finish (it sees every chunk) does the rest and resets the
// counter to 0.
// Pass 2, the last workgroup: per bin the chunk totals (integers, exact),
// the bin's mass w[b] = ldexp(f32(HI)·4096 + f32(LO), max(b, 1) − 150),
// and the mass from the top M[b] = Σ_{b' ≥ b} w[b'] in a fixed order: 16
// groups of 16 bins, each group's running sum from its top bin down
// (P), added to the chain A_g of the groups above it (each invocation
// computes the chain itself from the top, in the same order), M[b] =
// A_g + P_b. Rounding is monotone and the bottom of group g+1 gives
// exactly A_g, so M is non-increasing in b. Σx = M[0]. The search bin b*
// is the largest b with M[b] > γ·Σx (none: k = n). Inside b* (never
// outside it once chosen), F(t) = M[b*+1] + ldexp(f32(H_t)·4096 +
// f32(L_t), e*) where H_t, L_t are the exact sums of the significand
// halves of b*'s entries ≥ t; the crossing value u, the largest t with
// F(t) > γ·Σx, is found by a radix search on the 23 remaining bits, 4 a
// pass (6 passes: 16 digits, then 8 in the last), each probe's integer
// sums and count added over the workgroup with subgroupAdd (exact), so F
// is one fixed non-increasing function of t in every pass. The passes
// read the bracket's entries from shared memory once it holds at most CAP
// (gathered before the first pass for most vectors, mid-search when b*
// holds more), the vector before. Ties at u are resolved arithmetically
// as in est_cover.comp, from the counts the passes kept: with A = F(u+)
// (the entries > u), a = #[x > u] and g = #[x = u], m* = a + j with j
// the largest count in [0, g) such that A + j·u ≤ γ·Σx. Float order: the masses are fixed functions of the
// data (deterministic whatever the workgroups' order); they group the
// sums differently from the sort-based reference, and F(lo of b*) from
// inside the bin may differ from M[b*] by rounding (the search then stays
// at b*'s lowest pattern), so a count may differ from share.TokenBudget's
// by one exactly where a prefix sum lies within f32 rounding of γ·Σx
// (TestCoverCounts allows that). Subnormal entries count as the device's
// f32 arithmetic treats them. n·4095 must fit in 32 bits (n ≤ 2^20).
// Bindings: 0 v f32 [Hq, S]; 1 s f32 [Hq, S]; 2 counts i32 [Hq, 2];
// 3 hist u32 [Hq, 2, C, 3, NBIN] (scratch: HI, LO, count per chunk and
// bin); 4 ctr u32 [Hq·2] (0 before the first use, 0 after each dispatch).
// Grid: (C, Hq, 2), C = ⌈S / CH⌉. Push: S, Hq, γ. Spec constants: 0 local
// size (power of two ≥ 16), 1 CH (entries a chunk), 2 CAP (bracket
// entries held in shared memory), 3 PARTS (≥ the workgroup's subgroups).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint CH = 1024;
layout(constant_id = 2) const uint CAP = 4096;
layout(constant_id = 3) const uint PARTS = 32;

layout(std430, set = 0, binding = 0) readonly buffer Vb { float v[]; };
layout(std430, set = 0, binding = 1) readonly buffer Sb { float s[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Cb { int counts[]; };
layout(std430, set = 0, binding = 3) coherent buffer Hb { uint hist[]; };
layout(std430, set = 0, binding = 4) coherent buffer Kb { uint ctr[]; };

layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	float gamma;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
const uint NBIN = 256u;
const uint GROUPS = 16u; // bins are added up in 16 groups of 16
const uint PROBES = 15u;
const uint LOAD_BATCH = 16u; // entries each invocation loads at once
const uint MATCH = 2u;       // subgroup-aggregated keys per entry slot in pass 1

shared uint hs[3][NBIN];          // per bin: Σ m >> 12, Σ m & 0xFFF, count
shared float wm[NBIN];            // the tail's per-bin masses
shared float mt[NBIN];            // the tail's masses from the top, M[b]
shared float gs[GROUPS];          // per-group running sums
shared uint pp[2][3][PROBES][PARTS]; // per-subgroup probe sums (HI, LO, count), by pass parity
shared uint list[CAP];            // the entries of b* (bit patterns)
shared uint bstar1, aboveCnt, listN;
shared bool last;

float load(uint which, uint i) {
	return which == 0u ? v[i] : s[i];
}

// posBits returns x's bit pattern, 0 for zeros (and -0.0).
uint posBits(float x) {
	return x > 0.0 ? floatBitsToUint(x) : 0u;
}

// sig returns the 24-bit significand of a positive bit pattern (bin 0,
// subnormal: no implicit bit).
uint sig(uint bits) {
	return (bits >> 23) != 0u ? (bits & 0x7FFFFFu) | 0x800000u : bits;
}

// mass converts exact significand sums of bin b into f32.
float mass(uint hi, uint lo, uint b) {
	return ldexp(float(hi) * 4096.0 + float(lo), int(max(b, 1u)) - 150);
}

// gather appends the entries of the vector at base with bit patterns in
// [lo, hi) (zeros never) to list (listN: their count, 0 before): one exclusive scan and
// one shared atomic a subgroup and batch of LOAD_BATCH entries an
// invocation. The order does not matter: every sum over them is an exact
// integer. Call in uniform control flow.
void gather(uint which, uint base, uint lo, uint hi) {
	const uint n = pc.S;
	const uint lin = gl_LocalInvocationIndex;
	for (uint i0 = 0u; i0 < n; i0 += LOCAL * LOAD_BATCH) {
		uint xb[LOAD_BATCH];
		uint hits = 0u;
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			const uint i = i0 + k * LOCAL + lin;
			xb[k] = i < n ? posBits(load(which, base + i)) : 0u;
		}
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			hits += xb[k] != 0u && xb[k] >= lo && xb[k] < hi ? 1u : 0u;
		}
		uint off = subgroupExclusiveAdd(hits);
		const uint tot = subgroupAdd(hits);
		uint at0 = 0u;
		if (subgroupElect() && tot > 0u) {
			at0 = atomicAdd(listN, tot);
		}
		off += subgroupMax(at0);
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			if (xb[k] != 0u && xb[k] >= lo && xb[k] < hi) {
				list[off] = xb[k];
				off++;
			}
		}
	}
}

void main() {
	const uint c = gl_WorkGroupID.x;
	const uint C = gl_NumWorkGroups.x;
	const uint h = gl_WorkGroupID.y;
	const uint which = gl_WorkGroupID.z;
	const uint hv = h * 2u + which;
	const uint lin = gl_LocalInvocationIndex;
	const uint n = pc.S;
	const uint base = h * n;

	// Pass 1: the chunk's histogram.
	for (uint b = lin; b < NBIN; b += LOCAL) {
		hs[0][b] = 0u;
		hs[1][b] = 0u;
		hs[2][b] = 0u;
	}
	barrier();
	// LOAD_BATCH entries an invocation are loaded before any is binned
	// (one memory round trip a batch). Per entry slot, the subgroup first
	// adds up the lanes sharing its largest key, then its next largest
	// (MATCH rounds, one shared atomic each: near-uniform vectors put most
	// lanes in one or two bins, which would serialize on one address), and
	// the lanes left add their own. The loop bounds are uniform.
	const uint c1 = min(n, (c + 1u) * CH);
	for (uint j0 = c * CH; j0 < c1; j0 += LOCAL * LOAD_BATCH) {
		uint xb[LOAD_BATCH];
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			const uint i = j0 + k * LOCAL + lin;
			xb[k] = i < c1 ? posBits(load(which, base + i)) : 0u;
		}
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			uint bits = xb[k];
			[[unroll]] for (uint r = 0u; r < MATCH; r++) {
				const uint key = bits != 0u ? bits >> 23 : 0u;
				const uint top = subgroupMax(bits != 0u ? key + 1u : 0u);
				if (top == 0u) { // uniform: no lane left
					break;
				}
				const bool mine = bits != 0u && key + 1u == top;
				const uint m = mine ? sig(bits) : 0u;
				const uint sH = subgroupAdd(m >> 12);
				const uint sL = subgroupAdd(m & 0xFFFu);
				const uint sN = subgroupAdd(mine ? 1u : 0u);
				if (subgroupElect()) {
					atomicAdd(hs[0][top - 1u], sH);
					atomicAdd(hs[1][top - 1u], sL);
					atomicAdd(hs[2][top - 1u], sN);
				}
				if (mine) {
					bits = 0u;
				}
			}
			if (bits != 0u) {
				const uint key = bits >> 23;
				const uint m = sig(bits);
				atomicAdd(hs[0][key], m >> 12);
				atomicAdd(hs[1][key], m & 0xFFFu);
				atomicAdd(hs[2][key], 1u);
			}
		}
	}
	barrier();
	const uint hb = (hv * C + c) * 3u * NBIN;
	for (uint b = lin; b < NBIN; b += LOCAL) {
		hist[hb + b] = hs[0][b];
		hist[hb + NBIN + b] = hs[1][b];
		hist[hb + 2u * NBIN + b] = hs[2][b];
	}
	memoryBarrierBuffer();
	barrier();
	if (lin == 0u) {
		last = atomicAdd(ctr[hv], 1u) == C - 1u;
		bstar1 = 0u;
		aboveCnt = 0u;
		listN = 0u;
	}
	barrier();
	if (!last) {
		return; // uniform
	}
	memoryBarrierBuffer();

	// Pass 2: the totals per bin (exact) and their masses.
	for (uint b = lin; b < NBIN; b += LOCAL) {
		// CB chunks' words loaded at once (integers: any order is exact).
		const uint CB = 8u;
		uint th = 0u, tl = 0u, tn = 0u;
		for (uint q0 = 0u; q0 < C; q0 += CB) {
			uint w[3u * CB];
			[[unroll]] for (uint q = 0u; q < CB; q++) {
				const uint o = (hv * C + q0 + q) * 3u * NBIN + b;
				const bool ok = q0 + q < C;
				w[3u * q] = ok ? hist[o] : 0u;
				w[3u * q + 1u] = ok ? hist[o + NBIN] : 0u;
				w[3u * q + 2u] = ok ? hist[o + 2u * NBIN] : 0u;
			}
			[[unroll]] for (uint q = 0u; q < CB; q++) {
				th += w[3u * q];
				tl += w[3u * q + 1u];
				tn += w[3u * q + 2u];
			}
		}
		hs[0][b] = th;
		hs[1][b] = tl;
		hs[2][b] = tn;
		wm[b] = mass(th, tl, b);
	}
	barrier();
	const uint GB = NBIN / GROUPS;
	if (lin < GROUPS) {
		float p = 0.0;
		[[unroll]] for (uint k = GB; k > 0u; k--) {
			p += wm[lin * GB + k - 1u];
		}
		gs[lin] = p;
	}
	barrier();
	if (lin < GROUPS) {
		float a = 0.0;
		for (uint g = GROUPS - 1u; g > lin; g--) {
			a += gs[g];
		}
		float p = 0.0;
		[[unroll]] for (uint k = GB; k > 0u; k--) {
			const uint b = lin * GB + k - 1u;
			p += wm[b];
			mt[b] = a + p;
		}
	}
	barrier();
	const float total = mt[0];
	const float target = pc.gamma * total;
	for (uint b = lin; b < NBIN; b += LOCAL) {
		if (mt[b] > target) {
			atomicMax(bstar1, b + 1u);
		}
	}
	barrier();
	if (bstar1 == 0u) { // uniform: Σx ≤ γ·Σx
		if (lin == 0u) {
			counts[hv] = int(n);
			ctr[hv] = 0u;
		}
		return;
	}
	const uint bs = bstar1 - 1u;
	for (uint b = bs + 1u + lin; b < NBIN; b += LOCAL) {
		atomicAdd(aboveCnt, hs[2][b]);
	}
	const float mAbove = bs + 1u < NBIN ? mt[bs + 1u] : 0.0;
	const int e = int(max(bs, 1u)) - 150;
	// The radix search inside b*: bracket [lo, hi = lo + 2^k) holding inB
	// entries; aH, aL, aN are the exact sums and count of b*'s entries at
	// or above hi. Once the bracket holds at most CAP entries they are
	// gathered into shared memory (before the first pass for most vectors)
	// and the passes read them there instead of the vector.
	uint lo = bs << 23;
	uint k = 23u;
	uint inB = hs[2][bs];
	uint aH = 0u, aL = 0u, aN = 0u;
	uint buf = 0u;
	bool cached = false;
	while (k > 0u) {
		const uint sh = k > 4u ? k - 4u : 0u;
		const uint ndig = 1u << (k - sh);
		const uint hi = lo + (1u << k);
		if (!cached && inB <= CAP) { // uniform
			gather(which, base, lo, hi);
			barrier();
			cached = true;
		}
		const uint lim = cached ? listN : n;
		uint accH[PROBES], accL[PROBES], accN[PROBES];
		[[unroll]] for (uint j = 0u; j < PROBES; j++) {
			accH[j] = 0u;
			accL[j] = 0u;
			accN[j] = 0u;
		}
		for (uint i = lin; i < lim; i += LOCAL) {
			const uint bits = cached ? list[i] : posBits(load(which, base + i));
			if (bits >= lo && bits < hi) { // within b*: lo ≥ b*'s first pattern, hi ≤ its last + 1
				const uint d = (bits - lo) >> sh;
				const uint m = sig(bits);
				const uint mh = m >> 12, ml = m & 0xFFFu;
				[[unroll]] for (uint j = 0u; j < PROBES; j++) {
					if (d > j) { // entry ≥ probe j + 1
						accH[j] += mh;
						accL[j] += ml;
						accN[j]++;
					}
				}
			}
		}
		[[unroll]] for (uint j = 0u; j < PROBES; j++) {
			const uint sH = subgroupAdd(accH[j]);
			const uint sL = subgroupAdd(accL[j]);
			const uint sN = subgroupAdd(accN[j]);
			if (subgroupElect()) {
				pp[buf][0][j][gl_SubgroupID] = sH;
				pp[buf][1][j][gl_SubgroupID] = sL;
				pp[buf][2][j][gl_SubgroupID] = sN;
			}
		}
		barrier();
		// The last probe with F > γ·Σx, probe j by lane j mod the subgroup
		// size, picked by a subgroup maximum (every subgroup the same).
		int best = -1;
		for (uint j = gl_SubgroupInvocationID; j + 1u < ndig; j += gl_SubgroupSize) {
			uint th = aH, tl = aL;
			for (uint q = 0u; q < gl_NumSubgroups; q++) {
				th += pp[buf][0][j][q];
				tl += pp[buf][1][j][q];
			}
			if (mAbove + ldexp(float(th) * 4096.0 + float(tl), e) > target) {
				best = int(j);
			}
		}
		// The new bracket is digit dig; the digits above it join aH, aL,
		// aN, and it holds the entries ≥ its start less those above it.
		const uint dig = uint(subgroupMax(best) + 1);
		uint geLo = inB;
		if (dig > 0u) {
			geLo = 0u;
			for (uint q = 0u; q < gl_NumSubgroups; q++) {
				geLo += pp[buf][2][dig - 1u][q];
			}
		}
		uint geHi = 0u;
		if (dig + 1u < ndig) {
			for (uint q = 0u; q < gl_NumSubgroups; q++) {
				aH += pp[buf][0][dig][q];
				aL += pp[buf][1][dig][q];
				geHi += pp[buf][2][dig][q];
			}
		}
		aN += geHi;
		inB = geLo - geHi;
		lo += dig << sh;
		k = sh;
		buf ^= 1u;
	}
	// Ties at u = lo: the bracket [u, u + 1) holds g = inB entries, aH, aL,
	// aN are those > u; A = F(u+).
	if (lin == 0u) {
		const float u = uintBitsToFloat(lo);
		const float A = mAbove + ldexp(float(aH) * 4096.0 + float(aL), e);
		const int a = int(aboveCnt + aN);
		const int g = int(inB);
		// (u = 0 only by rounding at the bottom of bin 0: then g = 0.)
		int j = u > 0.0 ? int(clamp(floor((target - A) / u), 0.0, float(max(g - 1, 0)))) : 0;
		while (j > 0 && A + float(j) * u > target) {
			j--;
		}
		while (j + 1 < g && A + float(j + 1) * u <= target) {
			j++;
		}
		counts[hv] = min(a + j + 1, int(n));
		ctr[hv] = 0u;
	}
}
