#version 450
// plan_vsblocks.comp: MInference's token-level vertical-slash selection
// mapped to the block grid (share.MapVSToBlocks,
// docs/algorithm.md#mapping-to-the-block-grid), as the column and offset
// bitmaps plan_union.comp reads.
//
// Block (r, c) is listed when a kept column j has j/B = c ≤ r, or when for
// some row tile [a, e) of block row r (tiles of T rows from the row's start,
// the last one cut at the row's end) a kept offset o lies in
// [a − cB − B + 1, e − 1 − cB]. Both depend on r and c only through d = r − c
// and the row's length, so per head:
//   vsbits[h][0]: block columns c holding a kept column;
//   vsbits[h][1]: offsets d listed for a full block row (B rows);
//   vsbits[h][2]: offsets d listed for the last block row (n − (nb−1)·B rows).
// Bindings: 0 tokbits u32 [Hq, 2, nwt] (kept columns, kept offsets over n
//   tokens; plan_topk.comp); 1 vsbits u32 [Hq, 3, nbw].
// Grid: (Hq). Spec constant 0: local size.
layout(local_size_x = 64, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Tb { uint tokbits[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Vb { uint vsbits[]; };

layout(push_constant) uniform Push {
	uint Hq;
	uint n;
	uint B;
	uint T;
	uint nb;
	uint nbw;
	uint nwt;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;

// anyBit reports whether a bit of token bitmap row `base` is set in [lo, hi]
// (clipped to [0, n−1]).
bool anyBit(uint base, int lo, int hi) {
	lo = max(lo, 0);
	hi = min(hi, int(pc.n) - 1);
	if (lo > hi) {
		return false;
	}
	uint w0 = uint(lo) >> 5, w1 = uint(hi) >> 5;
	for (uint w = w0; w <= w1; w++) {
		uint m = 0xFFFFFFFFu;
		if (w == w0) {
			m &= 0xFFFFFFFFu << (uint(lo) & 31u);
		}
		if (w == w1 && (uint(hi) & 31u) != 31u) {
			m &= (1u << ((uint(hi) & 31u) + 1u)) - 1u;
		}
		if ((tokbits[base + w] & m) != 0u) {
			return true;
		}
	}
	return false;
}

// diagOn reports whether offset d is listed for a block row of `rows` rows.
bool diagOn(uint ob, uint d, uint rows) {
	int dB = int(d * pc.B);
	for (uint a = 0u; a < rows; a += pc.T) {
		uint e = min(a + pc.T, rows);
		if (anyBit(ob, dB + int(a) - int(pc.B) + 1, dB + int(e) - 1)) {
			return true;
		}
	}
	return false;
}

void main() {
	uint h = gl_WorkGroupID.x;
	uint lin = gl_LocalInvocationIndex;
	uint cb = (h * 2u) * pc.nwt, ob = (h * 2u + 1u) * pc.nwt;
	uint lastRows = pc.n - (pc.nb - 1u) * pc.B;
	for (uint w = lin; w < pc.nbw; w += LOCAL) {
		uint cols = 0u, full = 0u, last = 0u;
		for (uint b = 0u; b < 32u; b++) {
			uint c = w * 32u + b;
			if (c >= pc.nb) {
				break;
			}
			int lo = int(c * pc.B);
			if (anyBit(cb, lo, lo + int(pc.B) - 1)) {
				cols |= 1u << b;
			}
			if (diagOn(ob, c, pc.B)) {
				full |= 1u << b;
			}
			if (diagOn(ob, c, lastRows)) {
				last |= 1u << b;
			}
		}
		vsbits[(h * 3u) * pc.nbw + w] = cols;
		vsbits[(h * 3u + 1u) * pc.nbw + w] = full;
		vsbits[(h * 3u + 2u) * pc.nbw + w] = last;
	}
}
