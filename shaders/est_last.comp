#version 450
// variants: est_last_stats=-DSTATS est_last_stats_lse=-DSTATS,-DLSE_TAIL est_last_vs=-DVS est_last_vs_slash=-DVS,-DSLASH_TAIL
// est_last.comp: last-block estimates (docs/algorithm.md#last-block-estimates), the two score
// passes. The window is the last W = min(B, S) queries i_t = S−W+t of every
// query head against all keys; the causal mask (j ≤ i_t) only bites inside
// the last W×W corner. P_last is never stored.
//
// Grid: (nb, Hq): workgroup (c, h) handles all W window rows against key
// block c = [cB, min(cB+B, S)), in T×T sub-tiles held in shared memory.
//
// STATS (pass 1): per row t the block-local max m and Σexp(s−m):
//   2 stats vec2 [Hq, nb, W]  (m = -3e38, l = 0 where the block is masked)
//   With LSE_TAIL (est_last_stats_lse) the last workgroup of each head also
//   does est_last_lse's work (est_lse.glsl): 3 lse f32 [Hq, W]; 4 counter
//   u32 [Hq] (0 before the first use, reset after).
// VS (pass 3, after est_last_lse has combined the stats into ℓ_t):
//   P = exp(s − ℓ_t); column sums and diagonal sums from a shared P tile
//   (each column / diagonal owned by one invocation: no atomics).
//   2 lse f32 [Hq, W]
//   3 v    f32 [Hq, S]   v[j] = (1/W) Σ_t P[t, j]     (complete: block c owns its columns)
//   4 vblk f32 [Hq, nb]  Σ_{j∈c} v[j]
//   5 spart f32 [Hq, nb, 2B]: slash partial of block c, (1/W) Σ P[t, j] over
//     i_t − j = o, stored at l = o − (S − W − cB − (B−1)), l ∈ [0, W+B−1);
//     est_last_slash adds the ≤ 2 blocks that touch each offset.
//   With SLASH_TAIL (est_last_vs_slash) the workgroup that completes a
//   slash chunk's partials also combines it (est_slash.glsl): 6 s f32
//   [Hq, S]; 7 sblk f32 [Hq, nb]; 8 counter u32 [Hq, nb] (0 before the
//   first use, reset after).
// Bindings 0 q f16 [S, Hq, D], 1 k f16 [S, Hkv, D].
// Spec constants: 0 local size (= T·T, power of two), 1 T, 2 D, 3 B.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = 256, local_size_x_id = 0) in;
layout(constant_id = 1) const uint T = 16;
layout(constant_id = 2) const uint D = 64;
layout(constant_id = 3) const uint BS = 64;

layout(std430, set = 0, binding = 0) readonly buffer Qb { float16_t q[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { float16_t k[]; };
#ifdef STATS
#ifdef LSE_TAIL
layout(std430, set = 0, binding = 2) coherent buffer Sb { vec2 stats[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Lb { float lseOut[]; };
layout(std430, set = 0, binding = 4) coherent buffer Cnb { uint lctr[]; };
#else
layout(std430, set = 0, binding = 2) writeonly buffer Sb { vec2 stats[]; };
#endif
#else
layout(std430, set = 0, binding = 2) readonly buffer Lb { float lse[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Vb { float v[]; };
layout(std430, set = 0, binding = 4) writeonly buffer VBb { float vblk[]; };
#ifdef SLASH_TAIL
layout(std430, set = 0, binding = 5) coherent buffer SPb { float spart[]; };
layout(std430, set = 0, binding = 6) writeonly buffer SOb { float s[]; };
layout(std430, set = 0, binding = 7) writeonly buffer SBb { float sblk[]; };
layout(std430, set = 0, binding = 8) coherent buffer SCnb { uint sctr[]; };
#else
layout(std430, set = 0, binding = 5) writeonly buffer SPb { float spart[]; };
#endif
#endif

layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	uint Hkv;
	uint nb;
	uint W;
	float scale;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
const uint DP = D + 1;
const uint TP = T + 1;
const float NEG = -3.0e38;

shared float qs[T * DP];
shared float ks[T * DP];
shared float ps[T * TP];
#ifdef STATS
shared float rowm[BS];
shared float rowl[BS];
#else
shared float colacc[BS];
shared float slacc[2 * BS + T];
shared float red[LOCAL];
#endif

#ifdef LSE_TAIL
#define LSE_SCRATCH ps // T·(T+1) ≥ LOCAL = T² floats, free after the score tiles
#include "est_lse.glsl"
#endif
#ifdef SLASH_TAIL
shared float slashScratch[LOCAL + 16];
#define SLASH_SCRATCH slashScratch
#include "est_slash.glsl"
#endif

void main() {
	uint lin = gl_LocalInvocationIndex;
	uint c = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint kvh = h / (pc.Hq / pc.Hkv);
	uint ti = lin / T;
	uint tj = lin % T;
	uint S = pc.S;
	uint W = pc.W;
	uint i0 = S - W;
	uint c0 = c * BS;
	uint nk = min(BS, S - c0);
#ifdef STATS
	for (uint x = lin; x < BS; x += LOCAL) {
		rowm[x] = NEG;
		rowl[x] = 0.0;
	}
#else
	for (uint x = lin; x < BS; x += LOCAL) {
		colacc[x] = 0.0;
	}
	for (uint x = lin; x < 2 * BS + T; x += LOCAL) {
		slacc[x] = 0.0;
	}
#endif
	barrier();
	for (uint qt = 0; qt < W; qt += T) {
		for (uint kt = 0; kt < nk; kt += T) {
			if (c0 + kt > i0 + qt + T - 1) {
				continue; // every key of the sub-tile is after every row (uniform)
			}
			for (uint x = lin; x < T * D; x += LOCAL) {
				uint row = x / D;
				uint d = x - row * D;
				uint t = qt + row;
				uint j = kt + row;
				qs[row * DP + d] = t < W ? float(q[((i0 + t) * pc.Hq + h) * D + d]) * pc.scale : 0.0;
				ks[row * DP + d] = j < nk ? float(k[((c0 + j) * pc.Hkv + kvh) * D + d]) : 0.0;
			}
			barrier();
			uint t = qt + ti;
			uint jl = kt + tj;
			bool valid = t < W && jl < nk && c0 + jl <= i0 + t;
			float s = 0.0;
			if (valid) {
				for (uint d = 0; d < D; d++) {
					s += qs[ti * DP + d] * ks[tj * DP + d];
				}
			}
#ifdef STATS
			ps[ti * TP + tj] = valid ? s : NEG;
#else
			ps[ti * TP + tj] = valid ? exp(s - lse[h * W + t]) : 0.0;
#endif
			barrier();
#ifdef STATS
			if (lin < T && qt + lin < W) {
				uint row = qt + lin;
				float mx = NEG;
				for (uint x = 0; x < T; x++) {
					mx = max(mx, ps[lin * TP + x]);
				}
				if (mx > NEG) {
					float m = rowm[row];
					float nm = max(m, mx);
					float l = rowl[row] * exp(m - nm);
					for (uint x = 0; x < T; x++) {
						float e = ps[lin * TP + x];
						l += e > NEG ? exp(e - nm) : 0.0;
					}
					rowm[row] = nm;
					rowl[row] = l;
				}
			}
#else
			if (lin < T && kt + lin < BS) {
				float cs = 0.0;
				for (uint x = 0; x < T; x++) {
					cs += ps[x * TP + lin];
				}
				colacc[kt + lin] += cs;
			}
			if (lin < 2 * T - 1) {
				int dd = int(lin) - int(T - 1); // ti − tj on this diagonal
				int idx = int(qt) - int(kt) + int(BS) - 1 + dd;
				float ds = 0.0;
				for (int a = max(0, dd); a < min(int(T), int(T) + dd); a++) {
					ds += ps[uint(a) * TP + uint(a - dd)];
				}
				if (idx >= 0 && idx < int(2 * BS + T)) {
					slacc[idx] += ds;
				}
			}
#endif
			barrier();
		}
	}
	float invW = 1.0 / float(W);
#ifdef STATS
	for (uint x = lin; x < W; x += LOCAL) {
		stats[(h * pc.nb + c) * W + x] = vec2(rowm[x], rowl[x]);
	}
#ifdef LSE_TAIL
	lseTail(h);
#endif
#else
	float part = 0.0;
	for (uint x = lin; x < nk; x += LOCAL) {
		float cs = colacc[x];
		v[h * S + c0 + x] = cs * invW;
		part += cs;
	}
	for (uint x = lin; x < 2 * BS; x += LOCAL) {
		spart[(h * pc.nb + c) * 2 * BS + x] = x < W + BS - 1 ? slacc[x] * invW : 0.0;
	}
	red[lin] = part;
	barrier();
	for (uint st = LOCAL / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	if (lin == 0) {
		vblk[h * pc.nb + c] = red[0] * invW;
	}
#ifdef SLASH_TAIL
	slashTail(h, c, c + 1u);
#endif
#endif
}
