#version 450
// est_cover_bins.comp: the γ budget counts of est_cover.comp (same bindings,
// push constants, grid and result; docs/vulkan.md#estimation-kernels) with
// far less serial work per pass:
//   k = min(1 + m*, n),  m* = max{m : Σ of the m largest entries ≤ γ·Σx}.
// The crossing value u (the largest t with F(t) = Σ x·[x ≥ t] > γ·Σx) is
// found by a radix search on the bit patterns of non-negative floats, 4 bits
// a pass: the bracket [lo, lo + 2^k) is cut into 16 digits of 2^(k−4)
// patterns. Each invocation adds its entries into 16 private bins (by
// digit) and one "above the bracket" bin in shared memory (no atomics: the
// bins of invocation i are its own column), so that one read of an entry
// costs a shift and one add instead of 15 compares; the 16 probe sums
// F(lo + j·2^(k−4)) are its bins' suffix sums. The workgroup sums them per
// probe with subgroupAdd (SUBGROUP) and one barrier, or a shared-memory tree
// (every invocation then reads the same totals). Pass 1 (lo = 0) gives Σx
// as F(0), so the data is read 8 times in all plus one pass for the ties,
// as in est_cover.comp; the first CACHE·LOCAL entries stay in registers
// after the first read.
// Float order: each probe sum is a fixed sequence of f32 additions of
// non-negative terms, so within a pass F is non-increasing in t; between
// passes the grouping differs (bins, then the subgroup order), so the
// computed F of one threshold may differ by rounding from pass to pass. The
// search never moves below a lo it chose, and the count equals the
// sort-based one (share.TokenBudget) except where a prefix sum lies within
// f32 rounding of γ·Σx, where it may differ by one (est_cover.comp's
// rounding differs there too; TestCoverCounts allows exactly that). Ties
// at u are resolved arithmetically as in est_cover.comp.
// Bindings: 0 v f32 [Hq, S]; 1 s f32 [Hq, S]; 2 counts i32 [Hq, 2].
// Grid: (Hq, 2). Spec constants: 0 local size (power of two), 1 SUBGROUP,
// 2 CACHE (entries per invocation held in registers), 3 PARTS (≥ the
// number of subgroups of a workgroup; SUBGROUP only).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const bool SUBGROUP = false;
layout(constant_id = 2) const uint CACHE = 16;
layout(constant_id = 3) const uint PARTS = 32;

layout(std430, set = 0, binding = 0) readonly buffer Vb { float v[]; };
layout(std430, set = 0, binding = 1) readonly buffer Sb { float s[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Cb { int counts[]; };

layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	float gamma;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
const uint DIG = 4u;
const uint NBIN = 1u << DIG; // digits per pass; bin NBIN is "above the bracket"
const uint RED = SUBGROUP ? PARTS : LOCAL;
// SUBGROUP: the probe partials alternate between two buffers by pass, so
// that one barrier a pass suffices; the tree reuses one (and ends each pass
// with a barrier).
const uint NBUF = SUBGROUP ? 2u : 1u;

shared float bins[(NBIN + 1u) * LOCAL]; // bins[b·LOCAL + i]: invocation i's
shared float red[NBUF][NBIN][RED];     // per-probe partials
shared uint cnt[2][RED];               // the tie pass's counts

float load(uint which, uint i) {
	return which == 0u ? v[i] : s[i];
}

// binOf returns the bin of x for the bracket [lo, lo + 2^k) cut into
// digits of 2^sh patterns: NBIN + 1 below it (ignored), NBIN above it.
uint binOf(float x, uint lo, uint k, uint sh) {
	const uint b = x > 0.0 ? floatBitsToUint(x) : 0u;
	if (b < lo) {
		return NBIN + 1u;
	}
	const uint off = b - lo;
	return (k < 32u && off >= (1u << k)) ? NBIN : off >> sh;
}

void addTo(float x, uint lo, uint k, uint sh) {
	const uint b = binOf(x, lo, k, sh);
	if (b <= NBIN) {
		bins[b * LOCAL + gl_LocalInvocationIndex] += x;
	}
}

// total returns probe j's workgroup sum from red[buf][j] (after the
// barrier that published it): the same value in every invocation.
float total(uint buf, uint j) {
	if (SUBGROUP) {
		// Caller wrote the subgroup sums and passed the barrier.
		float t = 0.0;
		for (uint p = gl_SubgroupInvocationID; p < gl_NumSubgroups; p += gl_SubgroupSize) {
			t += red[buf][j][p];
		}
		return subgroupAdd(t);
	}
	return red[buf][j][0];
}

void main() {
	const uint h = gl_WorkGroupID.x;
	const uint which = gl_WorkGroupID.y;
	const uint lin = gl_LocalInvocationIndex;
	const uint n = pc.S;
	const uint base = h * n;

	float xc[CACHE];
	[[unroll]] for (uint c = 0u; c < CACHE; c++) {
		const uint i = lin + c * LOCAL;
		xc[c] = i < n ? load(which, base + i) : 0.0;
	}

	uint lo = 0u;
	uint k = 31u; // the bracket [lo, lo + 2^k) holds every finite x ≥ 0
	float target = 0.0;
	uint buf = 0u;
	bool first = true;
	while (k > 0u) {
		const uint nd = min(DIG, k);
		const uint sh = k - nd;
		for (uint b = 0u; b <= NBIN; b++) {
			bins[b * LOCAL + lin] = 0.0;
		}
		[[unroll]] for (uint c = 0u; c < CACHE; c++) {
			addTo(xc[c], lo, k, sh); // zeros past n add nothing
		}
		for (uint i = lin + CACHE * LOCAL; i < n; i += LOCAL) {
			addTo(load(which, base + i), lo, k, sh);
		}
		// Suffix sums: f[j] = this invocation's Σ x·[x ≥ lo + j·2^sh].
		float f[NBIN];
		float acc = bins[NBIN * LOCAL + lin];
		[[unroll]] for (uint j = NBIN; j > 0u; j--) {
			acc += bins[(j - 1u) * LOCAL + lin];
			f[j - 1u] = acc;
		}
		if (SUBGROUP) {
			[[unroll]] for (uint j = 0u; j < NBIN; j++) {
				f[j] = subgroupAdd(f[j]);
			}
			if (subgroupElect()) {
				[[unroll]] for (uint j = 0u; j < NBIN; j++) {
					red[buf][j][gl_SubgroupID] = f[j];
				}
			}
			barrier();
		} else {
			[[unroll]] for (uint j = 0u; j < NBIN; j++) {
				red[buf][j][lin] = f[j];
			}
			barrier();
			for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
				if (lin < st) {
					[[unroll]] for (uint j = 0u; j < NBIN; j++) {
						red[buf][j][lin] += red[buf][j][lin + st];
					}
				}
				barrier();
			}
		}
		if (first) {
			// F(0) = Σx.
			const float sum = total(buf, 0u);
			target = pc.gamma * sum;
			if (!(sum > target)) {
				if (lin == 0u) {
					counts[h * 2u + which] = int(n);
				}
				return; // uniform
			}
			first = false;
		}
		// The largest digit j whose threshold still has F > target (F(lo)
		// > target held when lo was chosen; if rounding now says otherwise,
		// lo stays).
		uint jb = 0u;
		for (uint j = 1u; j < (1u << nd); j++) {
			if (total(buf, j) > target) {
				jb = j;
			}
		}
		lo += jb << sh;
		k = sh;
		if (SUBGROUP) {
			buf ^= 1u;
		} else {
			barrier(); // the tree reuses red[0] next pass
		}
	}
	const float u = uintBitsToFloat(lo);
	float part = 0.0;
	uint na = 0u, ng = 0u;
	[[unroll]] for (uint c = 0u; c < CACHE; c++) {
		const float x = xc[c];
		if (lin + c * LOCAL < n) {
			if (x > u) {
				part += x;
				na++;
			} else if (x == u) {
				ng++;
			}
		}
	}
	for (uint i = lin + CACHE * LOCAL; i < n; i += LOCAL) {
		const float x = load(which, base + i);
		if (x > u) {
			part += x;
			na++;
		} else if (x == u) {
			ng++;
		}
	}
	float A;
	uint a, g;
	if (SUBGROUP) {
		part = subgroupAdd(part);
		na = subgroupAdd(na);
		ng = subgroupAdd(ng);
		if (subgroupElect()) {
			red[buf][0][gl_SubgroupID] = part;
			cnt[0][gl_SubgroupID] = na;
			cnt[1][gl_SubgroupID] = ng;
		}
		barrier();
		float t = 0.0;
		uint ta = 0u, tg = 0u;
		for (uint p = gl_SubgroupInvocationID; p < gl_NumSubgroups; p += gl_SubgroupSize) {
			t += red[buf][0][p];
			ta += cnt[0][p];
			tg += cnt[1][p];
		}
		A = subgroupAdd(t);
		a = subgroupAdd(ta);
		g = subgroupAdd(tg);
	} else {
		red[buf][0][lin] = part;
		cnt[0][lin] = na;
		cnt[1][lin] = ng;
		barrier();
		for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
			if (lin < st) {
				red[buf][0][lin] += red[buf][0][lin + st];
				cnt[0][lin] += cnt[0][lin + st];
				cnt[1][lin] += cnt[1][lin + st];
			}
			barrier();
		}
		A = red[buf][0][0];
		a = cnt[0][0];
		g = cnt[1][0];
	}
	if (lin == 0u) {
		int j = int(clamp(floor((target - A) / u), 0.0, float(max(int(g) - 1, 0))));
		while (j > 0 && A + float(j) * u > target) {
			j--;
		}
		while (j + 1 < int(g) && A + float(j + 1) * u <= target) {
			j++;
		}
		counts[h * 2u + which] = min(int(a) + j + 1, int(n));
	}
}
