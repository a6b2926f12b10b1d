#version 450
// variants: plan_qacut=-DQACUT plan_rowcover=-DROWCOVER
// plan_cover.comp: the two mass cuts of docs/algorithm.md#gamma that select
// blocks from a block map, as bitmaps, without sorting.
//
// QACUT (share.QueryAwareCut, docs/algorithm.md#query-aware-selection): for
//   every head h with hplan[h].mode == 3 (query-aware), over the causal
//   entries of M[h] in the order (value descending, flat index r·nb+c
//   ascending), keep entries while the running sum stays ≤ L = γ·nb; the
//   crossing entry and everything after it are dropped. gammaGE1 ≠ 0 or a
//   total ≤ L keeps every causal block.
// ROWCOVER (share.Cover per row, docs/algorithm.md#pivot-map): for pivot
//   slot x (head pivots[x] ≥ 0) and row r of its exact map Â[x], the
//   smallest prefix of the row's positive entries c ≤ r in the order (value
//   descending, column ascending) whose sum reaches γ·Σ_row, the crossing
//   entry included; gammaGE1 ≠ 0 keeps every positive entry. The row goes to
//   the pattern bitmap of the head's cluster; rowstats[x][r] gets the VS
//   coverage terms of share.VSRatio (exact and the release's over-count)
//   for the pivot's own VS set and the number of pattern blocks.
//   With push constant rank ≠ 0 (the host sets it only for nb ≤ 2·LOCAL)
//   the cut takes no bisection: the row's keys and fixed-point values go to
//   shared memory once, and each invocation decides its columns alone:
//   column c is kept iff its key is positive and the sum of the entries
//   that precede it in the order above (larger key, or equal key and
//   smaller column) is below the target. That is the same set: every
//   entry above the crossing value u is preceded by less than the target,
//   the j-th tie at u by A + (j−1)·fix(u), and every entry below u by at
//   least Σ_{key ≥ u} ≥ target. O(r) shared reads per column and two
//   barriers, instead of ≤ 31 workgroup sums of about log2(LOCAL)
//   barriers each.
//
// Sums are exact and order-independent: each f32 entry x ∈ [0, 2] becomes
// the 64-bit fixed-point integer ⌊x·2^shift⌋ (two uint words), so the cut
// does not depend on summation order. The crossing value u is found by
// bisection on the float bit patterns (non-negative floats order like their
// bits; ≤ 31 workgroup sums); ties at u are taken in index order from a
// workgroup scan of tie counts. The caller picks shift so that every sum
// stays below 2^63 (shift = 62 − bits(nb)).
//
// QACUT bindings: 0 m f32 [Hq, nb, nb]; 1 hplan i32 [Hq, 4];
//   2 qabits u32 [Hq, nb, nbw] (every word of a query-aware head's rows is
//   written, others untouched). Grid (Hq).
// ROWCOVER bindings: 0 maps f32 [cap, nb, nb]; 1 hplan i32 [Hq, 4] (word 1:
//   cluster); 2 pivots i32 [cap] (head per slot, < 0: none); 3 vsbits u32
//   [Hq, 2, nbw] (the pivot's VS columns and offsets); 4 pattern u32
//   [K, nb, nbw] (every word of the row is written); 5 rowstats u32
//   [cap, nb, 4] (f32 exact sum, f32 over-count sum, pattern blocks, 0).
//   Grid (nb, slots): workgroup (r, x).
// Spec constant 0: local size (a power of two).
layout(local_size_x = 128, local_size_x_id = 0) in;

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint nbw;
	uint shift;
	uint limLo; // QACUT: L = ⌊γ·nb·2^shift⌋
	uint limHi;
	uint gLo; // ROWCOVER: G = γ·2^64 (γ < 1)
	uint gHi;
	uint gammaGE1;
#ifdef ROWCOVER
	uint rank; // ≠ 0: the cut by ranks (nb ≤ 2·LOCAL), else by bisection
#endif
} pc;

#ifdef QACUT
layout(std430, set = 0, binding = 0) readonly buffer Mb { uint mv[]; };
layout(std430, set = 0, binding = 1) readonly buffer Pb { int hplan[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Ob { uint outb[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer Mb { uint mv[]; };
layout(std430, set = 0, binding = 1) readonly buffer Pb { int hplan[]; };
layout(std430, set = 0, binding = 2) readonly buffer Hb { int pivots[]; };
layout(std430, set = 0, binding = 3) readonly buffer Vb { uint vsbits[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Ob { uint outb[]; };
layout(std430, set = 0, binding = 5) writeonly buffer Sb { uint rowstats[]; };
#endif

const uint LOCAL = gl_WorkGroupSize.x;
const uint MODE_QA = 3u;

shared uint rlo[LOCAL];
shared uint rhi[LOCAL];
shared float rf0[LOCAL];
shared float rf1[LOCAL];
shared uint bcast[4];

uint keyOf(uint b) {
	return (b & 0x80000000u) != 0u ? 0u : min(b, 0x40000000u); // negatives → 0, clamp to 2.0
}

// fixv returns ⌊x·2^shift⌋ of the non-negative float with bits b (≤ 2.0).
uvec2 fixv(uint b) {
	if (b == 0u) {
		return uvec2(0u);
	}
	uint e = b >> 23;
	uint m = b & 0x7FFFFFu;
	if (e == 0u) {
		e = 1u;
	} else {
		m |= 0x800000u;
	}
	int sh = int(e) - 150 + int(pc.shift);
	if (sh <= -32) {
		return uvec2(0u);
	}
	if (sh < 0) {
		return uvec2(m >> uint(-sh), 0u);
	}
	if (sh == 0) {
		return uvec2(m, 0u);
	}
	if (sh < 32) {
		return uvec2(m << uint(sh), m >> uint(32 - sh));
	}
	return uvec2(0u, m << uint(sh - 32));
}

uvec2 add64(uvec2 a, uvec2 b) {
	uint c;
	uint lo = uaddCarry(a.x, b.x, c);
	return uvec2(lo, a.y + b.y + c);
}

bool le64(uvec2 a, uvec2 b) {
	return a.y < b.y || (a.y == b.y && a.x <= b.x);
}

// mul64 returns the low 64 bits of a·j.
uvec2 mul64(uvec2 a, uint j) {
	uint hi, lo;
	umulExtended(a.x, j, hi, lo);
	return uvec2(lo, a.y * j + hi);
}

// sum64 returns the workgroup sum of v (every invocation must call it).
uvec2 sum64(uvec2 v) {
	uint lin = gl_LocalInvocationIndex;
	rlo[lin] = v.x;
	rhi[lin] = v.y;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			uvec2 s = add64(uvec2(rlo[lin], rhi[lin]), uvec2(rlo[lin + st], rhi[lin + st]));
			rlo[lin] = s.x;
			rhi[lin] = s.y;
		}
		barrier();
	}
	uvec2 r = uvec2(rlo[0], rhi[0]);
	barrier();
	return r;
}

// exclusiveScan returns the sum of v over the invocations before this one,
// and the total in bcast[3] (every invocation must call it).
uint exclusiveScan(uint v) {
	uint lin = gl_LocalInvocationIndex;
	rlo[lin] = v;
	barrier();
	if (lin == 0u) {
		uint run = 0u;
		for (uint t = 0u; t < LOCAL; t++) {
			uint c = rlo[t];
			rlo[t] = run;
			run += c;
		}
		bcast[3] = run;
	}
	barrier();
	uint r = rlo[lin];
	barrier();
	return r;
}

#ifdef QACUT
// The causal entries of head h in flat order t = r(r+1)/2 + c are split
// into LOCAL runs of `chunk` entries for the sums.
uint rowOf(uint t) {
	uint r = uint((sqrt(8.0 * float(t) + 1.0) - 1.0) * 0.5);
	while (r > 0u && r * (r + 1u) / 2u > t) {
		r--;
	}
	while ((r + 1u) * (r + 2u) / 2u <= t) {
		r++;
	}
	return r;
}

uvec2 sumGE(uint h, uint t0, uint t1, uint thr) {
	uvec2 acc = uvec2(0u);
	if (t0 >= t1) {
		return acc;
	}
	uint r = rowOf(t0);
	uint c = t0 - r * (r + 1u) / 2u;
	uint nb = pc.nb;
	for (uint t = t0; t < t1; t++) {
		uint k = keyOf(mv[(h * nb + r) * nb + c]);
		if (k >= thr) {
			acc = add64(acc, fixv(k));
		}
		c++;
		if (c > r) {
			r++;
			c = 0u;
		}
	}
	return acc;
}

void main() {
	uint h = gl_WorkGroupID.x;
	if (hplan[h * 4u] != int(MODE_QA)) {
		return; // uniform: the whole workgroup leaves
	}
	uint lin = gl_LocalInvocationIndex;
	uint nb = pc.nb, nbw = pc.nbw;
	uint E = nb * (nb + 1u) / 2u;
	uint chunk = (E + LOCAL - 1u) / LOCAL;
	uint t0 = min(lin * chunk, E), t1 = min(t0 + chunk, E);
	uvec2 L = uvec2(pc.limLo, pc.limHi);

	bool all = pc.gammaGE1 != 0u;
	uint u = 0u, keepTies = 0u;
	if (!all) {
		uvec2 tot = sum64(sumGE(h, t0, t1, 0u));
		all = le64(tot, L);
	}
	if (!all) {
		// u = the largest t with Σ_{key ≥ t} > L (the crossing value).
		uint lo = 0u, hi = 0x40000001u;
		while (hi - lo > 1u) {
			uint mid = lo + (hi - lo) / 2u;
			if (!le64(sum64(sumGE(h, t0, t1, mid)), L)) {
				lo = mid;
			} else {
				hi = mid;
			}
		}
		u = lo;
	}
	uvec2 A = all ? uvec2(0u) : sum64(sumGE(h, t0, t1, u + 1u));
	// Rows are owned by the thread whose run holds their first entry, so
	// that the threads' row ranges follow the flat order.
	uint r0 = t0 < E ? rowOf(t0) : nb;
	if (t0 < E && r0 * (r0 + 1u) / 2u < t0) {
		r0++;
	}
	uint r1 = t1 < E ? rowOf(t1) : nb;
	if (t1 < E && r1 * (r1 + 1u) / 2u < t1) {
		r1++;
	}
	if (lin == LOCAL - 1u) {
		r1 = nb;
	}
	uint ties = 0u;
	if (!all) {
		for (uint r = r0; r < r1; r++) {
			for (uint c = 0u; c <= r; c++) {
				if (keyOf(mv[(h * nb + r) * nb + c]) == u) {
					ties++;
				}
			}
		}
	}
	uint rank = exclusiveScan(ties);
	if (!all) {
		if (lin == 0u) {
			// keepTies = max{j : A + j·fix(u) ≤ L}: fewer than the g ties,
			// since A + g·fix(u) = Σ_{key ≥ u} > L (no overflow: < 2^63).
			uvec2 fu = fixv(u);
			uint jlo = 0u, jhi = bcast[3];
			while (jhi - jlo > 1u) {
				uint mid = jlo + (jhi - jlo) / 2u;
				if (le64(add64(A, mul64(fu, mid)), L)) {
					jlo = mid;
				} else {
					jhi = mid;
				}
			}
			bcast[0] = jlo;
		}
		barrier();
		keepTies = bcast[0];
	}
	for (uint r = r0; r < r1; r++) {
		uint rowBase = (h * nb + r) * nbw;
		for (uint w = 0u; w < nbw; w++) {
			uint bits = 0u;
			for (uint b = 0u; b < 32u; b++) {
				uint c = w * 32u + b;
				if (c > r) {
					break;
				}
				bool keep = all;
				if (!all) {
					uint k = keyOf(mv[(h * nb + r) * nb + c]);
					if (k > u) {
						keep = true;
					} else if (k == u) {
						keep = rank < keepTies;
						rank++;
					}
				}
				if (keep) {
					bits |= 1u << b;
				}
			}
			outb[rowBase + w] = bits;
		}
	}
}
#endif

#ifdef ROWCOVER
uvec2 sumRow(uint base, uint c0, uint c1, uint thr) {
	uvec2 acc = uvec2(0u);
	for (uint c = c0; c < c1; c++) {
		uint k = keyOf(mv[base + c]);
		if (k >= thr) {
			acc = add64(acc, fixv(k));
		}
	}
	return acc;
}

// mulFrac returns ⌊T·G / 2^64⌋.
uvec2 mulFrac(uvec2 T, uvec2 G) {
	uint h00, l00, h01, l01, h10, l10, h11, l11;
	umulExtended(T.x, G.x, h00, l00);
	umulExtended(T.x, G.y, h01, l01);
	umulExtended(T.y, G.x, h10, l10);
	umulExtended(T.y, G.y, h11, l11);
	uint c1a, c1b, c2a, c2b, c2c;
	uint w1 = uaddCarry(h00, l01, c1a);
	w1 = uaddCarry(w1, l10, c1b);
	uint w2 = uaddCarry(h01, h10, c2a);
	w2 = uaddCarry(w2, l11, c2b);
	w2 = uaddCarry(w2, c1a + c1b, c2c);
	uint w3 = h11 + c2a + c2b + c2c;
	return uvec2(w2, w3);
}

// The rank cut's row (rank ≠ 0): keys and fixed-point values of the
// causal columns, and the kept columns as bits.
shared uint ckey[2u * LOCAL];
shared uvec2 cfix[2u * LOCAL];
shared uint kw[(2u * LOCAL + 31u) / 32u];

// rankCut fills kw with the kept columns of row r (columns 0..r of the map
// row at base), as the bisection would keep them. Every invocation must
// call it; it ends with a barrier.
void rankCut(uint base, uint r, bool all) {
	uint lin = gl_LocalInvocationIndex;
	uint n = r + 1u;
	for (uint c = lin; c < n; c += LOCAL) {
		uint k = keyOf(mv[base + c]);
		ckey[c] = k;
		cfix[c] = fixv(k);
	}
	for (uint w = lin; w < (n + 31u) / 32u; w += LOCAL) {
		kw[w] = 0u;
	}
	barrier();
	for (uint c = lin; c < n; c += LOCAL) {
		uint kc = ckey[c];
		uvec2 T = uvec2(0u), before = uvec2(0u);
		for (uint j = 0u; j < n; j++) {
			uint kj = ckey[j];
			uvec2 fj = cfix[j];
			T = add64(T, fj);
			if (kj > kc || (kj == kc && j < c)) {
				before = add64(before, fj);
			}
		}
		bool keep = kc != 0u && T != uvec2(0u);
		if (keep && !all) {
			uvec2 target = mulFrac(T, uvec2(pc.gLo, pc.gHi));
			if (target == uvec2(0u)) {
				target = uvec2(1u, 0u);
			}
			keep = !le64(target, before);
		}
		if (keep) {
			atomicOr(kw[c >> 5], 1u << (c & 31u));
		}
	}
	barrier();
}

bool bitAt(uint base, uint i) {
	return ((vsbits[base + (i >> 5)] >> (i & 31u)) & 1u) != 0u;
}

void main() {
	uint r = gl_WorkGroupID.x;
	uint x = gl_WorkGroupID.y;
	int hh = pivots[x];
	if (hh < 0) {
		return; // uniform
	}
	uint h = uint(hh);
	uint lin = gl_LocalInvocationIndex;
	uint nb = pc.nb, nbw = pc.nbw;
	uint ci = uint(hplan[h * 4u + 1u]);
	uint base = (x * nb + r) * nb;
	// Contiguous word runs per thread: columns [c0, c1) of the row, c ≤ r.
	uint wpt = (nbw + LOCAL - 1u) / LOCAL;
	uint w0 = min(lin * wpt, nbw), w1 = min(w0 + wpt, nbw);
	uint c0 = min(w0 * 32u, r + 1u), c1 = min(w1 * 32u, r + 1u);

	bool all = pc.gammaGE1 != 0u;
	bool rank = pc.rank != 0u; // uniform
	uvec2 T = uvec2(0u);
	if (rank) {
		rankCut(base, r, all);
	} else {
		T = sum64(sumRow(base, c0, c1, 1u));
	}
	bool none = !rank && T == uvec2(0u);
	uint u = 0u, keepTies = 0u;
	uvec2 A = uvec2(0u), target = uvec2(0u);
	if (!rank && !all && !none) {
		target = mulFrac(T, uvec2(pc.gLo, pc.gHi));
		if (target == uvec2(0u)) {
			target = uvec2(1u, 0u);
		}
		// u = the largest t with Σ_{key ≥ t} ≥ target (the crossing value).
		uint lo = 1u, hi = 0x40000001u;
		while (hi - lo > 1u) {
			uint mid = lo + (hi - lo) / 2u;
			if (le64(target, sum64(sumRow(base, c0, c1, mid)))) {
				lo = mid;
			} else {
				hi = mid;
			}
		}
		u = lo;
		A = sum64(sumRow(base, c0, c1, u + 1u));
	}
	uint ties = 0u;
	if (!rank && !all && !none) {
		for (uint c = c0; c < c1; c++) {
			if (keyOf(mv[base + c]) == u) {
				ties++;
			}
		}
	}
	uint tieRank = rank ? 0u : exclusiveScan(ties);
	if (!rank && !all && !none) {
		if (lin == 0u) {
			// keepTies = min{j ≥ 1 : A + j·fix(u) ≥ target}: at most the g
			// ties, since A + g·fix(u) = Σ_{key ≥ u} ≥ target.
			uvec2 fu = fixv(u);
			uint jlo = 0u, jhi = bcast[3];
			while (jhi - jlo > 1u) {
				uint mid = jlo + (jhi - jlo) / 2u;
				if (le64(target, add64(A, mul64(fu, mid)))) {
					jhi = mid;
				} else {
					jlo = mid;
				}
			}
			bcast[0] = jhi;
		}
		barrier();
		keepTies = bcast[0];
	}
	// The pivot's VS set: columns (row 0) and offsets (row 1) of vsbits[h].
	uint vcol = (h * 2u) * nbw, voff = (h * 2u + 1u) * nbw;
	float a00 = uintBitsToFloat(mv[x * nb * nb]);
	float exact = 0.0, compat = 0.0;
	uint count = 0u;
	uint outBase = (ci * nb + r) * nbw;
	for (uint w = w0; w < w1; w++) {
		uint bits = 0u;
		for (uint b = 0u; b < 32u; b++) {
			uint c = w * 32u + b;
			if (c >= nb) {
				break;
			}
			bool isCol = bitAt(vcol, c), isOff = bitAt(voff, c);
			// Over-count form: every listed column and offset, once each;
			// a non-causal one reads Â[0,0].
			if (isCol) {
				compat += c <= r ? uintBitsToFloat(mv[base + c]) : a00;
			}
			if (isOff) {
				compat += c <= r ? uintBitsToFloat(mv[base + r - c]) : a00;
			}
			if (c > r) {
				continue;
			}
			uint kb = mv[base + c];
			if (isCol || bitAt(voff, r - c)) {
				exact += uintBitsToFloat(kb);
			}
			uint k = keyOf(kb);
			bool keep = false;
			if (rank) {
				keep = ((kw[c >> 5] >> (c & 31u)) & 1u) != 0u;
			} else if (k != 0u && !none) {
				if (all || k > u) {
					keep = true;
				} else if (k == u) {
					keep = tieRank < keepTies;
					tieRank++;
				}
			}
			if (keep) {
				bits |= 1u << b;
			}
		}
		outb[outBase + w] = bits;
		count += bitCount(bits);
	}
	rf0[lin] = exact;
	rf1[lin] = compat;
	rlo[lin] = count;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			rf0[lin] += rf0[lin + st];
			rf1[lin] += rf1[lin + st];
			rlo[lin] += rlo[lin + st];
		}
		barrier();
	}
	if (lin == 0u) {
		uint o = (x * nb + r) * 4u;
		rowstats[o] = floatBitsToUint(rf0[0]);
		rowstats[o + 1u] = floatBitsToUint(rf1[0]);
		rowstats[o + 2u] = rlo[0];
		rowstats[o + 3u] = 0u;
	}
}
#endif
