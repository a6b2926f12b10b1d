#version 450
// plan_pivot.comp: a pivot's vs_ratio and pattern size from the per-row
// terms of plan_rowcover (docs/algorithm.md#exclusion, share.VSRatio).
//
// For pivot slot x (head h = pivots[x] ≥ 0, cluster ci = hplan[h].cluster):
//   vs_ratio = (1/nb)·Σ_r rowstats[x][r].exact  (or .compat with compat ≠ 0)
//   blocks   = Σ_r rowstats[x][r].blocks
// go to the dictionary (meta[ci], read by the share gates of later layers)
// and to the pivot's statistics record (words 12, 13; word 15 = 1).
// Bindings: 0 rowstats u32 [cap, nb, 4]; 1 pivots i32 [cap]; 2 hplan i32
//   [Hq, 4]; 3 meta i32 [K, 4]; 4 stats i32 [L, Hq, 16].
// Grid: (slots). Spec constant 0: local size (a power of two).
layout(local_size_x = 128, local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer Rb { uint rowstats[]; };
layout(std430, set = 0, binding = 1) readonly buffer Hb { int pivots[]; };
layout(std430, set = 0, binding = 2) readonly buffer Pb { int hplan[]; };
layout(std430, set = 0, binding = 3) buffer Mb { int meta[]; };
layout(std430, set = 0, binding = 4) buffer Tb { int stats[]; };

layout(push_constant) uniform Push {
	uint Hq;
	uint nb;
	uint layer;
	uint compat;
} pc;

const uint LOCAL = gl_WorkGroupSize.x;
shared float fs[LOCAL];
shared uint cs[LOCAL];

void main() {
	uint x = gl_WorkGroupID.x;
	int hh = pivots[x];
	if (hh < 0) {
		return;
	}
	uint h = uint(hh);
	uint lin = gl_LocalInvocationIndex;
	uint w = pc.compat != 0u ? 1u : 0u;
	float s = 0.0;
	uint c = 0u;
	for (uint r = lin; r < pc.nb; r += LOCAL) {
		uint o = (x * pc.nb + r) * 4u;
		s += uintBitsToFloat(rowstats[o + w]);
		c += rowstats[o + 2u];
	}
	fs[lin] = s;
	cs[lin] = c;
	barrier();
	for (uint st = LOCAL / 2u; st > 0u; st >>= 1) {
		if (lin < st) {
			fs[lin] += fs[lin + st];
			cs[lin] += cs[lin + st];
		}
		barrier();
	}
	if (lin == 0u) {
		float ratio = fs[0] / float(pc.nb);
		uint ci = uint(hplan[h * 4u + 1u]);
		meta[ci * 4u + 2u] = int(cs[0]);
		meta[ci * 4u + 3u] = floatBitsToInt(ratio);
		uint o = (pc.layer * pc.Hq + h) * 16u;
		stats[o + 12u] = floatBitsToInt(ratio);
		stats[o + 13u] = int(cs[0]);
		stats[o + 15u] = 1;
	}
}
