#version 450
// variants: est_last_lse=-DLSE est_last_slash=-DSLASH
// est_last_combine.comp: the small passes between/after est_last.comp.
//
// LSE (pass 2). Grid (W, Hq): workgroup (t, h) reduces row t of head h
//   over the key blocks in parallel (no serial loop over nb in one
//   invocation). ℓ[h][t] = M + log Σ_c l_c·exp(m_c − M) over the
//   per-block (m, l) of est_last_stats.  0 stats vec2 [Hq, nb, W]; 1 lse f32 [Hq, W].
// SLASH (pass 4). Grid (nb, Hq): workgroup (ob, h) owns token offsets
//   o ∈ [ob·B, min(ob·B+B, S)) and adds the partials of the ≤ 2 key blocks
//   whose keys lie on diagonal o (j ∈ [max(0, S−W−o), S−1−o]); writes s and
//   the block sum sblk[h][ob] = Σ_{o in that range} s[o] (pooling anchored at
//   the main diagonal: the partial chunk, if any, is the last one).
//   0 spart f32 [Hq, nb, 2B]; 1 s f32 [Hq, S]; 2 sblk f32 [Hq, nb].
// Spec constant 0: local size (power of two).
layout(local_size_x = 64, local_size_x_id = 0) in;

layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	uint nb;
	uint W;
	uint B;
} pc;

#ifdef LSE
layout(std430, set = 0, binding = 0) readonly buffer Sb { vec2 stats[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Lb { float lse[]; };

shared float red[gl_WorkGroupSize.x];

void main() {
	uint t = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	uint LOCAL = gl_WorkGroupSize.x;
	float M = -3.0e38;
	for (uint c = lin; c < pc.nb; c += LOCAL) {
		M = max(M, stats[(h * pc.nb + c) * pc.W + t].x);
	}
	red[lin] = M;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			red[lin] = max(red[lin], red[lin + st]);
		}
		barrier();
	}
	M = red[0];
	barrier();
	float L = 0.0;
	for (uint c = lin; c < pc.nb; c += LOCAL) {
		vec2 st = stats[(h * pc.nb + c) * pc.W + t];
		if (st.y > 0.0) {
			L += st.y * exp(st.x - M);
		}
	}
	red[lin] = L;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	if (lin == 0u) {
		lse[h * pc.W + t] = M + log(red[0]);
	}
}
#endif

#ifdef SLASH
layout(std430, set = 0, binding = 0) readonly buffer SPb { float spart[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Sb { float s[]; };
layout(std430, set = 0, binding = 2) writeonly buffer SBb { float sblk[]; };

shared float red[gl_WorkGroupSize.x];

void main() {
	uint ob = gl_WorkGroupID.x;
	uint h = gl_WorkGroupID.y;
	uint lin = gl_LocalInvocationIndex;
	int S = int(pc.S);
	int W = int(pc.W);
	int B = int(pc.B);
	float part = 0.0;
	for (uint x = lin; x < pc.B; x += gl_WorkGroupSize.x) {
		int o = int(ob * pc.B + x);
		if (o >= S) {
			break;
		}
		int cLo = max(0, S - W - o) / B;
		int cHi = (S - 1 - o) / B;
		float acc = 0.0;
		for (int c = cLo; c <= cHi; c++) {
			int l = o - (S - W - c * B - (B - 1));
			acc += spart[(h * pc.nb + uint(c)) * 2u * pc.B + uint(l)];
		}
		s[h * pc.S + uint(o)] = acc;
		part += acc;
	}
	red[lin] = part;
	barrier();
	for (uint st = gl_WorkGroupSize.x / 2; st > 0; st >>= 1) {
		if (lin < st) {
			red[lin] += red[lin + st];
		}
		barrier();
	}
	if (lin == 0) {
		sblk[h * pc.nb + ob] = red[0];
	}
}
#endif
