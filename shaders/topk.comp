#version 450
// topk.comp: per row of x [M, N] f32, the k largest values sorted descending
// (ties: lower index first) -> vals f32 [M, k], idx i32 [M, k]; 1 <= k <= 256,
// k <= N. One workgroup per row (row = wg.x + wg.y * numWG.x); workgroup size
// = spec constant 0, a power of two >= 2.
//
// Values are compared through an order-preserving 32-bit key (sign-flipped
// float bits; -0 is treated as +0 and NaN as below -inf).
// 1. Radix select, 4 passes of 8 bits over the row (shared 256-bin
//    histogram): finds the key T of the k-th largest element and `need`, the
//    number of elements equal to T that belong to the top k.
// 2. Collect: each invocation owns a contiguous chunk of the row; counts of
//    (> T) and (== T) elements are prefix-summed, so the (== T) elements kept
//    are exactly the `need` lowest-index ones. The k candidates go to shared
//    memory.
// 3. Bitonic sort of the candidates (padded to a power of two <= 256) by
//    (key descending, index ascending); the first k are written.
// Cost: 6 reads of the row, independent of k.

layout(local_size_x = 256, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer V { float vals[]; };
layout(std430, set = 0, binding = 2) writeonly buffer I { int idx[]; };

layout(push_constant) uniform Push {
	uint M;
	uint N;
	uint K;
	uint K2; // next power of two >= K (<= 256)
} pc;

const uint WG = gl_WorkGroupSize.x;

shared uint hist[256];
shared uint cnt_g[WG];
shared uint cnt_e[WG];
shared uint ckey[256];
shared uint cidx[256];
shared uint s_sel;
shared uint s_rem;

uint key_of(float v) {
	if (isnan(v)) {
		return 0u;
	}
	if (v == 0.0) {
		v = 0.0; // -0 -> +0
	}
	uint u = floatBitsToUint(v);
	return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}

float val_of(uint k) {
	return uintBitsToFloat((k & 0x80000000u) != 0u ? (k & 0x7fffffffu) : ~k);
}

// a sorts before b: larger key, then smaller index.
bool before(uint ka, uint ia, uint kb, uint ib) {
	return ka > kb || (ka == kb && ia < ib);
}

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= pc.M) {
		return; // uniform for the whole workgroup
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * pc.N;

	// 1. Radix select of the k-th largest key.
	uint prefix = 0u;
	uint mask = 0u;
	uint remaining = pc.K;
	for (int pass = 0; pass < 4; pass++) {
		uint shift = uint(24 - 8 * pass);
		for (uint b = t; b < 256u; b += WG) {
			hist[b] = 0u;
		}
		barrier();
		for (uint i = t; i < pc.N; i += WG) {
			uint kk = key_of(x[base + i]);
			if ((kk & mask) == prefix) {
				atomicAdd(hist[(kk >> shift) & 255u], 1u);
			}
		}
		barrier();
		if (t == 0) {
			uint cum = 0u;
			uint sel = 0u;
			for (int b = 255; b >= 0; b--) {
				uint h = hist[b];
				if (cum + h >= remaining) {
					sel = uint(b);
					break;
				}
				cum += h;
			}
			s_sel = sel;
			s_rem = remaining - cum;
		}
		barrier();
		prefix |= s_sel << shift;
		mask |= 255u << shift;
		remaining = s_rem;
		barrier(); // s_sel/s_rem are rewritten next pass
	}
	uint thr = prefix;
	uint need = remaining; // elements == thr to keep, >= 1
	uint ngreater = pc.K - need;

	// 2. Collect the candidates, deterministically.
	uint chunk = (pc.N + WG - 1u) / WG;
	uint lo = min(t * chunk, pc.N);
	uint hi = min(lo + chunk, pc.N);
	uint cg = 0u, ce = 0u;
	for (uint i = lo; i < hi; i++) {
		uint kk = key_of(x[base + i]);
		cg += kk > thr ? 1u : 0u;
		ce += kk == thr ? 1u : 0u;
	}
	cnt_g[t] = cg;
	cnt_e[t] = ce;
	barrier();
	if (t == 0) {
		uint ag = 0u, ae = 0u;
		for (uint j = 0u; j < WG; j++) {
			uint g = cnt_g[j], e = cnt_e[j];
			cnt_g[j] = ag;
			cnt_e[j] = ae;
			ag += g;
			ae += e;
		}
	}
	for (uint j = t; j < 256u; j += WG) {
		ckey[j] = 0u;
		cidx[j] = 0xffffffffu;
	}
	barrier();
	if (cg + ce > 0u) {
		uint pg = cnt_g[t];
		uint pe = cnt_e[t];
		for (uint i = lo; i < hi; i++) {
			uint kk = key_of(x[base + i]);
			if (kk > thr) {
				ckey[pg] = kk;
				cidx[pg] = i;
				pg++;
			} else if (kk == thr) {
				if (pe < need) {
					ckey[ngreater + pe] = kk;
					cidx[ngreater + pe] = i;
				}
				pe++;
			}
		}
	}
	barrier();

	// 3. Bitonic sort of ckey/cidx[0, K2).
	for (uint size = 2u; size <= pc.K2; size <<= 1) {
		for (uint st = size >> 1; st > 0u; st >>= 1) {
			for (uint i = t; i < pc.K2; i += WG) {
				uint j = i ^ st;
				if (j > i) {
					uint ki = ckey[i], ii = cidx[i], kj = ckey[j], ij = cidx[j];
					bool first = (i & size) == 0u; // this block sorts in "before" order
					bool sw = first ? before(kj, ij, ki, ii) : before(ki, ii, kj, ij);
					if (sw) {
						ckey[i] = kj;
						cidx[i] = ij;
						ckey[j] = ki;
						cidx[j] = ii;
					}
				}
			}
			barrier();
		}
	}
	for (uint j = t; j < pc.K; j += WG) {
		vals[row * pc.K + j] = val_of(ckey[j]);
		idx[row * pc.K + j] = int(cidx[j]);
	}
}
