#version 450
// plan_gates.comp: the Jensen–Shannon gates of one layer, per query head
// (docs/algorithm.md#js-gates).
//
//   g0 = JSD(â, V)        query-aware gate            (useQuery)
//   g1 = JSD(X, U)        exclusion, X = V, S or â    (exclusion = js-uniform)
//   g2 = JSD(V_ref, V)    share gate, vertical        (cluster has a pivot
//   g3 = JSD(S_ref, S)    share gate, slash            from an earlier layer)
//
// JSD(p, q) = √max(0, ½Σ [p>0]·p·ln(p/m) + [q>0]·q·ln(q/m)), m = (p+q)/2,
// as share.JSD, in f32 (see term for the accuracy). With nanCompat (share.JSDCompat) any zero entry of p
// or q gives NaN. U[c] = (tokens in block c)/n. Gates not needed are NaN.
// Bindings: 0 V f32 [Hq, nb]; 1 S f32 [Hq, nb]; 2 pooled f32 [Hq, nb] (read
//   only when useQuery or X = â); 3 clusterOf i32 [L, Hq] (−1: noise);
//   4 meta i32 [K, 4] (pivot layer, pivot head, …; layer < 0: no pivot);
//   5 refs f32 [K, 2, nb] (V_ref, S_ref); 6 gates u32 [Hq, 8]: words 0–3 the
//   f32 bits of g0–g3, word 4 bit i set when g_i is NaN.
// Grid: (Hq). Spec constant 0: local size (a power of two).
layout(local_size_x = 128, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Vb { float V[]; };
layout(std430, set = 0, binding = 1) readonly buffer Sb { float S[]; };
layout(std430, set = 0, binding = 2) readonly buffer Ab { float pooled[]; };
layout(std430, set = 0, binding = 3) readonly buffer Cb { int clusterOf[]; };
layout(std430, set = 0, binding = 4) readonly buffer Mb { int meta[]; };
layout(std430, set = 0, binding = 5) readonly buffer Rb { float refs[]; };
layout(std430, set = 0, binding = 6) writeonly buffer Gb { uint gates[]; };

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint n;
	uint B;
	uint layer;
	uint useQuery;
	uint jsUniform;
	uint exclDist; // 0 V, 1 S, 2 â
	uint nanCompat;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
shared float red[4][LOCAL];
shared uint zr[4][LOCAL];

bool isZero(float x) {
	return (floatBitsToUint(x) & 0x7FFFFFFFu) == 0u;
}

// term returns p·ln(p/m) + q·ln(q/m), m = (p+q)/2, zero terms omitted. With
// δ = (p−q)/(p+q) it equals m·f(δ), f(δ) = (1+δ)ln(1+δ) + (1−δ)ln(1−δ)
// = Σ_{k≥1} δ^{2k}/(k(2k−1)); for |δ| < ½ the series (12 terms, relative
// error < 1e-9) avoids the cancellation of the two logarithms when p ≈ q.
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

void main() {
	uint h = gl_WorkGroupID.x;
	uint lin = gl_LocalInvocationIndex;
	uint nb = pc.nb;
	int ci = clusterOf[pc.layer * pc.Hq + h];
	bool share = false;
	if (ci >= 0) {
		int pl = meta[uint(ci) * 4u];
		share = pl >= 0 && uint(pl) < pc.layer;
	}
	bool need[4] = bool[4](pc.useQuery != 0u, pc.jsUniform != 0u, share, share);
	float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
	uint zero[4] = uint[4](0u, 0u, 0u, 0u);
	for (uint c = lin; c < nb; c += LOCAL) {
		float v = V[h * nb + c], s = S[h * nb + c];
		if (need[0]) {
			float a = pooled[h * nb + c];
			acc[0] += term(a, v);
			zero[0] |= uint(isZero(a) || isZero(v));
		}
		if (need[1]) {
			float x = pc.exclDist == 0u ? v : (pc.exclDist == 1u ? s : pooled[h * nb + c]);
			float u = float(min(pc.B, pc.n - c * pc.B)) / float(pc.n);
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
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			for (uint i = 0u; i < 4u; i++) {
				red[i][lin] += red[i][lin + st];
				zr[i][lin] |= zr[i][lin + st];
			}
		}
		barrier();
	}
	if (lin == 0u) {
		uint nanMask = 0u;
		for (uint i = 0u; i < 4u; i++) {
			uint bits = 0x7FC00000u;
			if (need[i] && !(pc.nanCompat != 0u && zr[i][0] != 0u)) {
				bits = floatBitsToUint(sqrt(max(0.5 * red[i][0], 0.0)));
			} else {
				nanMask |= 1u << i;
			}
			gates[h * 8u + i] = bits;
		}
		gates[h * 8u + 4u] = nanMask;
		gates[h * 8u + 5u] = 0u;
		gates[h * 8u + 6u] = 0u;
		gates[h * 8u + 7u] = 0u;
	}
}
