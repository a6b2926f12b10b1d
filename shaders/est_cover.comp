#version 450
// variants: est_cover= est_cover_sg=-DSG
// est_cover.comp: γ budget counts of token-level distributions
// (docs/algorithm.md#budgets), sort-free (docs/vulkan.md#estimation-kernels).
//   k = min(1 + m*, n),  m* = max{m : Σ of the m largest entries ≤ γ·Σx}
// i.e. the sorted prefix whose running sum stays ≤ γ·Σx plus the entry that
// crosses it; this is share.TokenBudget with the threshold relative to Σx
// (identical when Σx = 1). Entries must be ≥ 0 (NaN-free).
// Method: F(t) = Σ x·[x ≥ t] is non-increasing; the crossing value u is the
// largest t with F(t) > γ·Σx. It is found exactly by a 16-ary search on
// the bit patterns of non-negative floats (ordered like the values): ≤ 8
// passes over the data, each evaluating 15 thresholds with one workgroup
// sum apiece. Each invocation sums its entries in index order and the
// workgroup adds the partials in a fixed tree, so the computed F is a
// fixed, non-increasing function of t (rounding is monotone) and the search
// finds the same u as a bisection would, in a quarter of the passes. Ties: with A = Σx·[x > u], a = #[x > u] and
// g = #[x = u], the tied entries are interchangeable in a sorted order, so
// m* = a + j with j the largest count in [0, g) such that A + j·u ≤ γ·Σx.
// Ties thus give exactly the sort-based count, independent of tie order.
// Bindings: 0 v f32 [Hq, S]; 1 s f32 [Hq, S]; 2 counts i32 [Hq, 2] (k_v, k_s).
// Grid: (Hq, 2): one workgroup per (head, vector). Spec constant 0: local
// size (power of two).
//
// SG (est_cover_sg): the same search with its latency cut, for devices
// with subgroup arithmetic. The first pass (Σx) also copies the first CN
// entries into shared memory, so the 8 search passes and the tie pass
// read shared memory instead of global memory (entries past CN, for long
// vectors, are read from global memory as before); each pass's 15 probe
// sums are added with subgroupAdd and then per subgroup in a fixed order
// after one barrier (double-buffered partials), instead of 15 shared
// trees of log2(LOCAL) barriers each. Every invocation computes the totals
// itself, so the bracket stays uniform. Float order: each invocation still
// sums its entries in index order, and one probe's sum is a fixed function
// of its threshold (the same subgroup reduction and order for every probe
// and pass), so F stays non-increasing and the search sound; the sums are
// grouped differently from the reference's tree, so a count may differ
// from est_cover's by one where a prefix sum lies within f32 rounding of
// γ·Σx (TestCoverCounts allows exactly that). Latency: the first pass
// loads LOAD_BATCH entries an invocation at once and also finds the least
// positive and the largest entry, which bracket the search (one pass fewer
// for most vectors; the crossing value is the same, F being one fixed
// function); each pass's 15 probe totals are added up one probe a lane
// (same order) and the bracket picked by a subgroup maximum. None of this
// changes a sum's float order: the counts are those of the unbatched
// search. Each invocation's cached entries are its own (index lin mod
// LOCAL), so with COMPACT every search pass also drops, from the
// invocation's list in shared memory, the entries below the bracket (they
// add 0 to every later probe too), rewriting the list in place in index
// order: later passes and the tie pass walk only the entries left, with
// the same sums to the bit (the longest list of a subgroup sets its time).
// Spec constants: 1 CN (cached entries), 2 PARTS (≥ the workgroup's
// subgroups), 3 COMPACT (off: every pass walks every entry).
#ifdef SG
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : enable
#endif
layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Vb { float v[]; };
layout(std430, set = 0, binding = 1) readonly buffer Sb { float s[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Cb { int counts[]; };

layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	float gamma;
} pc;

const uint PROBES = 15u; // thresholds per pass: 4 bits of the bracket per pass

float load(uint which, uint i) {
	return which == 0 ? v[i] : s[i];
}

#ifdef SG
layout(constant_id = 1) const uint CN = 8192;
layout(constant_id = 2) const uint PARTS = 8;
layout(constant_id = 3) const bool COMPACT = true; // drop cached entries below the bracket (see the search)

shared float xs[CN];                // the first CN entries
shared float pp[2][PROBES][PARTS];  // per-subgroup probe sums, by pass parity
shared float tp[2][PARTS];          // per-subgroup sums of wgSum
shared uint tc[2][PARTS];           // per-subgroup counts of the tie pass
shared uint tb0[2][PARTS];          // per-subgroup least positive and largest entry bits

// LOAD_BATCH is the entries each invocation loads at once in the first pass.
#ifndef LOAD_BATCH
#define LOAD_BATCH 8u
#endif

// wgSum returns the workgroup sum of x (every invocation gets it) after
// one barrier; buf alternates between consecutive calls.
float wgSum(float x, uint buf) {
	const float sg = subgroupAdd(x);
	if (subgroupElect()) {
		tp[buf][gl_SubgroupID] = sg;
	}
	barrier();
	float t = 0.0;
	for (uint q = 0u; q < gl_NumSubgroups; q++) {
		t += tp[buf][q];
	}
	return t;
}

void main() {
	const uint h = gl_WorkGroupID.x;
	const uint which = gl_WorkGroupID.y;
	const uint lin = gl_LocalInvocationIndex;
	const uint LOCAL = gl_WorkGroupSize.x;
	const uint n = pc.S;
	const uint base = h * n;
	// The first pass reads LOAD_BATCH entries at once, the loads
	// independent of one another (one memory round trip a batch, not one
	// an entry), and sums them in index order as one at a time would.
	float part = 0.0;
	uint mn = 0x7F800000u, mx = 0u; // bit patterns of the least positive and the largest entry
	for (uint i0 = lin; i0 < n; i0 += LOCAL * LOAD_BATCH) {
		float xb[LOAD_BATCH];
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			const uint i = i0 + k * LOCAL;
			xb[k] = i < n ? load(which, base + i) : 0.0;
		}
		[[unroll]] for (uint k = 0u; k < LOAD_BATCH; k++) {
			const uint i = i0 + k * LOCAL;
			if (i < n) {
				if (i < CN) {
					xs[i] = xb[k];
				}
				part += xb[k];
				const uint b = floatBitsToUint(xb[k]);
				if (b != 0u) {
					mn = min(mn, b);
				}
				mx = max(mx, b);
			}
		}
	}
	const uint smn = subgroupMin(mn);
	const uint smx = subgroupMax(mx);
	if (subgroupElect()) {
		tb0[0][gl_SubgroupID] = smn;
		tb0[1][gl_SubgroupID] = smx;
	}
	const float total = wgSum(part, 0u); // its barrier also publishes xs and tb0
	const float target = pc.gamma * total;
	if (!(total > target)) {
		if (lin == 0u) {
			counts[h * 2u + which] = int(n);
		}
		return;
	}
	// The search's bracket starts at [least positive entry, largest entry
	// + 1] (F is Σx > γ·Σx at the one and 0 ≤ γ·Σx past the other), not
	// [0, +inf]: one pass fewer for most vectors, the same crossing value.
	uint lo = 0x7F800000u;
	uint hi = 0u;
	for (uint q = 0u; q < gl_NumSubgroups; q++) {
		lo = min(lo, tb0[0][q]);
		hi = max(hi, tb0[1][q]);
	}
	hi++;
	// This invocation's cached entries are xs[lin + k·LOCAL], k < kc
	// (indices below cend); its entries past the cache start at tail.
	const uint cend = min(n, CN);
	uint kc = lin < cend ? (cend - 1u - lin) / LOCAL + 1u : 0u;
	const uint tail = lin + kc * LOCAL;
	uint buf = 0u;
	while (hi - lo > 1u) {
		const uint step = (hi - lo + PROBES) / (PROBES + 1u);
		float thr[PROBES];
		float acc[PROBES];
		[[unroll]] for (uint j = 0u; j < PROBES; j++) {
			const uint tb = lo + (j + 1u) * step;
			// A probe at or past hi takes no entry (+inf is above them all).
			thr[j] = tb < hi ? uintBitsToFloat(tb) : uintBitsToFloat(0x7F800000u);
			acc[j] = 0.0;
		}
		// COMPACT: an entry below lo adds 0 to every probe of this pass
		// and of every later one (the bracket only rises), so it is
		// dropped from the invocation's cached list, which is rewritten in
		// place in index order; the sums keep their order and bits.
		const float lof = uintBitsToFloat(lo);
		uint kn = 0u;
		for (uint k = 0u; k < kc; k++) {
			const float x = xs[k * LOCAL + lin];
			if (COMPACT) {
				if (x < lof) {
					continue;
				}
				xs[kn * LOCAL + lin] = x;
				kn++;
			}
			[[unroll]] for (uint j = 0u; j < PROBES; j++) {
				acc[j] += x >= thr[j] ? x : 0.0;
			}
		}
		if (COMPACT) {
			kc = kn;
		}
		for (uint i = tail; i < n; i += LOCAL) {
			const float x = load(which, base + i);
			[[unroll]] for (uint j = 0u; j < PROBES; j++) {
				acc[j] += x >= thr[j] ? x : 0.0;
			}
		}
		[[unroll]] for (uint j = 0u; j < PROBES; j++) {
			const float sj = subgroupAdd(acc[j]);
			if (subgroupElect()) {
				pp[buf][j][gl_SubgroupID] = sj;
			}
		}
		barrier();
		// The new bracket starts at the last probe with F > γ·Σx: probe j
		// is added up by lane j mod the subgroup size (the partials in
		// subgroup order, as before) and a subgroup maximum picks the
		// last, instead of every invocation adding up all 15.
		int best = -1;
		for (uint j = gl_SubgroupInvocationID; j < PROBES; j += gl_SubgroupSize) {
			const uint tb = lo + (j + 1u) * step;
			if (tb < hi) {
				float fj = 0.0;
				for (uint q = 0u; q < gl_NumSubgroups; q++) {
					fj += pp[buf][j][q];
				}
				if (fj > target) {
					best = int(j);
				}
			}
		}
		best = subgroupMax(best);
		uint nlo = lo, nhi;
		if (best >= 0) {
			nlo = lo + uint(best + 1) * step;
			nhi = min(hi, nlo + step);
		} else {
			nhi = min(hi, lo + step);
		}
		lo = nlo;
		hi = nhi;
		buf ^= 1u;
	}
	const float u = uintBitsToFloat(lo);
	part = 0.0;
	uint na = 0u, ng = 0u;
	// The cached entries left (with COMPACT, those at or above the final
	// bracket's lo = u; the dropped ones add nothing here either), then
	// the uncached ones, in index order as before.
	for (uint k = 0u; k < kc; k++) {
		const float x = xs[k * LOCAL + lin];
		if (x > u) {
			part += x;
			na++;
		} else if (x == u) {
			ng++;
		}
	}
	for (uint i = tail; i < n; i += LOCAL) {
		const float x = load(which, base + i);
		if (x > u) {
			part += x;
			na++;
		} else if (x == u) {
			ng++;
		}
	}
	// tp[1] and tc were last read before the search's first barrier (or
	// never): this writes after it, so one barrier suffices.
	const uint sa = subgroupAdd(na);
	const uint sgc = subgroupAdd(ng);
	if (subgroupElect()) {
		tc[0][gl_SubgroupID] = sa;
		tc[1][gl_SubgroupID] = sgc;
	}
	const float A = wgSum(part, 1u);
	if (lin == 0u) {
		int a = 0, g = 0;
		for (uint q = 0u; q < gl_NumSubgroups; q++) {
			a += int(tc[0][q]);
			g += int(tc[1][q]);
		}
		int j = int(clamp(floor((target - A) / u), 0.0, float(max(g - 1, 0))));
		while (j > 0 && A + float(j) * u > target) {
			j--;
		}
		while (j + 1 < g && A + float(j + 1) * u <= target) {
			j++;
		}
		counts[h * 2u + which] = min(a + j + 1, int(n));
	}
}
#else
shared float red[gl_WorkGroupSize.x];
shared float pr[PROBES][gl_WorkGroupSize.x];
shared uint cA[gl_WorkGroupSize.x];
shared uint cG[gl_WorkGroupSize.x];

float reduceSum(float x) {
	uint lin = gl_LocalInvocationIndex;
	red[lin] = x;
	barrier();
	for (uint st = gl_WorkGroupSize.x / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	float r = red[0];
	barrier();
	return r;
}

void main() {
	uint h = gl_WorkGroupID.x;
	uint which = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	uint LOCAL = gl_WorkGroupSize.x;
	uint n = pc.S;
	uint base = h * n;
	float part = 0.0;
	for (uint i = lin; i < n; i += LOCAL) {
		part += load(which, base + i);
	}
	float total = reduceSum(part);
	float target = pc.gamma * total;
	if (!(total > target)) {
		if (lin == 0) {
			counts[h * 2 + which] = int(n);
		}
		return;
	}
	uint lo = 0u;          // F(0) = total > target
	uint hi = 0x7F800000u; // F(+inf) = 0 ≤ target
	while (hi - lo > 1u) {
		// PROBES thresholds t_j = lo + j·step (those below hi) per pass
		// over the data; the new bracket is the last t_j with F > target
		// and the next one.
		uint step = (hi - lo + PROBES) / (PROBES + 1u);
		float acc[PROBES];
		for (uint j = 0u; j < PROBES; j++) {
			acc[j] = 0.0;
		}
		for (uint i = lin; i < n; i += LOCAL) {
			float x = load(which, base + i);
			for (uint j = 0u; j < PROBES; j++) {
				uint tb = lo + (j + 1u) * step;
				acc[j] += tb < hi && x >= uintBitsToFloat(tb) ? x : 0.0;
			}
		}
		for (uint j = 0u; j < PROBES; j++) {
			pr[j][lin] = acc[j];
		}
		barrier();
		for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
			if (lin < st) {
				for (uint j = 0u; j < PROBES; j++) {
					pr[j][lin] += pr[j][lin + st];
				}
			}
			barrier();
		}
		uint nlo = lo, nhi = hi;
		for (uint j = 0u; j < PROBES; j++) {
			uint tb = lo + (j + 1u) * step;
			if (tb < hi && pr[j][0] > target) {
				nlo = tb;
				nhi = min(hi, tb + step);
			}
		}
		if (nlo == lo) {
			nhi = min(hi, lo + step);
		}
		lo = nlo;
		hi = nhi;
		barrier();
	}
	float u = uintBitsToFloat(lo);
	part = 0.0;
	uint na = 0u, ng = 0u;
	for (uint i = lin; i < n; i += LOCAL) {
		float x = load(which, base + i);
		if (x > u) {
			part += x;
			na++;
		} else if (x == u) {
			ng++;
		}
	}
	cA[lin] = na;
	cG[lin] = ng;
	float A = reduceSum(part); // its barriers also publish cA/cG
	for (uint st = LOCAL / 2; st > 0; st >>= 1) {
		if (lin < st) {
			cA[lin] += cA[lin + st];
			cG[lin] += cG[lin + st];
		}
		barrier();
	}
	if (lin == 0) {
		int a = int(cA[0]);
		int g = int(cG[0]);
		int j = int(clamp(floor((target - A) / u), 0.0, float(max(g - 1, 0))));
		while (j > 0 && A + float(j) * u > target) {
			j--;
		}
		while (j + 1 < g && A + float(j + 1) * u <= target) {
			j++;
		}
		counts[h * 2 + which] = min(a + j + 1, int(n));
	}
}
#endif
