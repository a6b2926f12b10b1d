#version 450
// plan_topk.comp: top-k selection with a forced prefix, as bitmaps
// (docs/algorithm.md#budgets, docs/algorithm.md#vertical-slash).
//
// For each row h and vector w ∈ {0, 1} (x0 or x1), over the first len_w
// entries of the row, select exactly what share.TopKForced(x, k, 0..F−1)
// returns: the forced indices 0..F'−1 (F' = min(F, len)), plus the first
// need = max(min(max(k, 1), len) − F', 0) non-forced entries in the order
// (value descending, index ascending). Entries must be ≥ 0 (negative values
// and −0 count as 0).
// Method: a radix select on the float bit patterns (4 passes of 8 bits with
// a 256-bin histogram each; non-negative floats order like their bits) finds
// the value u of the need-th entry and how many entries equal to u are
// taken; ties at u are taken in index order (a workgroup scan of tie
// counts). No sort, O(len) work per pass; the digit search and the tie scan
// are parallel scans (log2 steps, no serial loop over bins or invocations).
// Short rows (at most LOCAL non-forced entries, e.g. the block vectors of
// the SharePrefill plan, nb ≤ 256 at the default local size) take a
// shortcut instead (rankSelect): each invocation holds one entry in shared
// memory and counts the entries that come before it in the order (a loop
// of nc shared reads), and is selected iff fewer than need do. Two barriers
// instead of about a hundred and no global reads after the first; the
// selection is the same set by construction (TestTopKBits covers both
// paths).
// Bindings: 0 x0 f32 [rows, stride]; 1 x1 f32 [rows, stride];
//   2 kbuf i32 (k of row h and vector w at kbuf[h·kStride + kOff + w]; read
//   when useK ≠ 0);
//   3 out u32 [rows, 2, words]: bit i of word i/32 set iff i is selected;
//   bits at or past len are 0.
// Grid: (rows, 2): one workgroup per (row, vector).
// Spec constant 0: local size (a power of two ≤ 1024).
layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer X0 { uint x0[]; };
layout(std430, set = 0, binding = 1) readonly buffer X1 { uint x1[]; };
layout(std430, set = 0, binding = 2) readonly buffer Kb { int kbuf[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Ob { uint outb[]; };

layout(push_constant) uniform Push {
	uint rows;
	uint stride;
	uint len0;
	uint len1;
	int k0;
	int k1;
	uint f0;
	uint f1;
	uint words;
	uint useK;
	uint kStride;
	uint kOff;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;

shared uint hist[256];
shared uint sc[LOCAL];
shared uint bc[2];
// rankSelect: the candidates' keys and the candidate words of the output.
shared uint ck[LOCAL];
shared uint cw[LOCAL / 32u + 2u];

uint keyAt(uint w, uint i) {
	uint b = w == 0u ? x0[i] : x1[i];
	return (b & 0x80000000u) != 0u ? 0u : b;
}

// rankSelect writes the bits of a row whose nc = len − F ≤ LOCAL
// non-forced entries i = F + x are held one per invocation: entry x is
// selected iff fewer than need entries precede it in the order (value
// descending, index ascending). Forced words are written directly; the
// words holding candidates (at most LOCAL/32 + 2, from word F/32) are set
// in shared memory first.
void rankSelect(uint lin, uint w, uint base, uint obase, uint F, uint len, uint need) {
	const uint nc = len - F;
	const uint wb = F / 32u;
	const uint nw = nc == 0u ? 0u : (len - 1u) / 32u - wb + 1u;
	uint key = 0u;
	if (lin < nc) {
		key = keyAt(w, base + F + lin);
		ck[lin] = key;
	}
	if (lin < nw) {
		cw[lin] = 0u;
	}
	barrier();
	if (lin < nc) {
		uint rank = 0u;
		for (uint j = 0u; j < nc; j++) {
			const uint kj = ck[j];
			rank += uint(kj > key || (kj == key && j < lin));
		}
		if (rank < need) {
			const uint i = F + lin;
			atomicOr(cw[i / 32u - wb], 1u << (i % 32u));
		}
	}
	barrier();
	for (uint wd = lin; wd < pc.words; wd += LOCAL) {
		// Forced bits i < F (F ≤ len), then the candidates' word.
		uint bits = 0u;
		if (wd * 32u < F) {
			const uint nf = min(F - wd * 32u, 32u);
			bits = nf == 32u ? 0xFFFFFFFFu : (1u << nf) - 1u;
		}
		if (wd >= wb && wd - wb < nw) {
			bits |= cw[wd - wb];
		}
		outb[obase + wd] = bits;
	}
}

void main() {
	uint lin = gl_LocalInvocationIndex;
	uint row = gl_WorkGroupID.x;
	uint w = gl_WorkGroupID.y;
	uint len = min(w == 0u ? pc.len0 : pc.len1, pc.stride);
	int k = pc.useK != 0u ? kbuf[row * pc.kStride + pc.kOff + w] : (w == 0u ? pc.k0 : pc.k1);
	uint F = min(w == 0u ? pc.f0 : pc.f1, len);
	uint kEff = min(uint(max(k, 1)), len);
	uint need = kEff > F ? kEff - F : 0u;
	uint base = row * pc.stride;
	uint obase = (row * 2u + w) * pc.words;

	if (len - F <= LOCAL) { // uniform
		rankSelect(lin, w, base, obase, F, len, need);
		return;
	}

	// Selected: i < F, key > u, or key == u among the first `ties` such
	// entries (index order, non-forced only).
	uint u = 0xFFFFFFFFu;
	uint ties = 0u;
	if (need >= len - F) {
		u = 0u;
		ties = 0xFFFFFFFFu; // everything
	} else if (need > 0u) {
		uint prefix = 0u, mask = 0u, rem = need;
		for (int pass = 0; pass < 4; pass++) {
			uint shift = uint(24 - 8 * pass);
			for (uint i = lin; i < 256u; i += LOCAL) {
				hist[i] = 0u;
			}
			barrier();
			for (uint i = F + lin; i < len; i += LOCAL) {
				uint kk = keyAt(w, base + i);
				if ((kk & mask) == prefix) {
					atomicAdd(hist[(kk >> shift) & 255u], 1u);
				}
			}
			barrier();
			// Suffix sums hist[d] = #(digit ≥ d) (Hillis–Steele), then the
			// one digit d with #(> d) < rem ≤ #(≥ d) reports itself.
			for (uint st = 1u; st < 256u; st <<= 1) {
				uint add[256u / LOCAL + 1u];
				for (uint i = lin, j = 0u; i < 256u; i += LOCAL, j++) {
					add[j] = i + st < 256u ? hist[i + st] : 0u;
				}
				barrier();
				for (uint i = lin, j = 0u; i < 256u; i += LOCAL, j++) {
					hist[i] += add[j];
				}
				barrier();
			}
			for (uint i = lin; i < 256u; i += LOCAL) {
				uint above = i < 255u ? hist[i + 1u] : 0u;
				if (above < rem && rem <= hist[i]) {
					bc[0] = i;
					bc[1] = rem - above;
				}
			}
			barrier();
			prefix |= bc[0] << shift;
			mask |= 255u << shift;
			rem = bc[1];
			barrier();
		}
		u = prefix;
		ties = rem;
	}

	// Each thread owns a run of whole words; count its ties, scan, write.
	uint wpt = (pc.words + LOCAL - 1u) / LOCAL;
	uint w0 = min(lin * wpt, pc.words);
	uint w1 = min(w0 + wpt, pc.words);
	uint cnt = 0u;
	for (uint i = max(w0 * 32u, F); i < min(w1 * 32u, len); i++) {
		if (keyAt(w, base + i) == u) {
			cnt++;
		}
	}
	// Exclusive scan of the tie counts (inclusive Hillis–Steele, minus own).
	sc[lin] = cnt;
	barrier();
	for (uint st = 1u; st < LOCAL; st <<= 1) {
		uint add = lin >= st ? sc[lin - st] : 0u;
		barrier();
		sc[lin] += add;
		barrier();
	}
	uint rank = sc[lin] - cnt;
	for (uint wd = w0; wd < w1; wd++) {
		uint bits = 0u;
		for (uint b = 0u; b < 32u; b++) {
			uint i = wd * 32u + b;
			if (i >= len) {
				break;
			}
			bool sel;
			if (i < F) {
				sel = true;
			} else {
				uint kk = keyAt(w, base + i);
				if (kk > u) {
					sel = true;
				} else if (kk == u) {
					sel = rank < ties;
					rank++;
				} else {
					sel = false;
				}
			}
			if (sel) {
				bits |= 1u << b;
			}
		}
		outb[obase + wd] = bits;
	}
}
