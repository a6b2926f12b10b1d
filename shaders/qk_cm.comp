#version 450
// variants: blockmap_cm_dense=-DBLOCKMAP blockmap_cm_csr=-DBLOCKMAP,-DCSR est_last_cm_stats=-DSTATS est_last_cm_stats_lse=-DSTATS,-DLSE_TAIL est_last_cm_vs=-DVS est_last_cm_vs_slash=-DVS,-DSLASH_TAIL
//
// qk_cm.comp: the score passes of the pivot block map and of the last-block
// estimate with KHR cooperative matrices (16×16×16 f16×f16→f32, subgroup
// scope). Same bindings and results as blockmap.comp (BLOCKMAP, CSR; also
// its push constants and grid, kpw slots per workgroup) and est_last.comp
// (STATS, VS, whose push constants add kpw and whose grid packs kpw key
// blocks per workgroup, see below); only the arithmetic of
// s = scale·q·k differs: the products q·k of the f16 inputs are exact in
// f32 and accumulated in f32 by the matrix unit, then scaled (the scalar
// kernels scale q first and add the products in order), so scores differ by
// a few f32 ulps of the dot product.
//
// Workgroup = NSG = TR/16 subgroups; subgroup s owns query rows 16s..16s+15
// of a row pass of TR rows and keeps them in registers as D/16 A fragments
// (unscaled f16, staged through shared memory). Per K tile of TC keys (f16,
// zero beyond the block, staged in shared memory with padded rows) a
// subgroup computes its 16×TC scores as TC/16 accumulator fragments.
//
// BLOCKMAP (docs/algorithm.md#pivot-map). Grid (⌈nb/kpw⌉, nb, nheads) =
//   (slot group, r, head index), as blockmap.comp, push constant kpw ≥ 1
//   (0 means 1): workgroup (x, r, hi) takes slots s = x·kpw .. x·kpw+kpw−1
//   of row r (dense: key block c = s, s < nb; CSR: the row's listed block
//   s), each computed as the kpw = 1 grid's workgroup (s, r, hi) computes
//   it, to the bit:
//     out[x][r, c] = (1/|r|) Σ_{i∈r} Σ_{j∈c, j≤i} exp(scale·q_i·k_j − ℓ_i).
//   exp is taken on the accumulator components themselves: their row and
//   column (implementation-defined) are probed once per workgroup by
//   loading a matrix of element indices from shared memory. Each
//   invocation sums its components per block. The blocks go in groups of
//   up to BMG = min(NE, 8): each invocation's sum of a block waits in the
//   block's slot of the shared reduction array (NE·LOCAL floats), and a
//   group ends with one tree reduction per slot, level by level, one
//   barrier a level for the whole group (per slot the same tree as one
//   block a workgroup). Query rows: with one row pass (|r| ≤ TR, every
//   block of at most 128 tokens) the fragments are loaded once for all of
//   the workgroup's blocks; with several (B > TR) each pass is loaded once
//   per group and run against the group's blocks. Sub-tiles above the
//   diagonal of a diagonal block are skipped (per workgroup and per
//   subgroup). With PREFETCH K tiles are fetched one tile ahead in that
//   order (see nextBlock). Dense: c > r writes 0 (a workgroup whose slots all lie
//   above the diagonal writes its zeros and does nothing else; one whose
//   first slot is past the row's slots leaves at once). CSR: only listed
//   blocks are written (the caller zero-fills first); columns outside [0, nb) are
//   ignored. A head index outside [0, Hq) writes NaN, and so does a driver
//   whose accumulator length() differs from NE.
//   Bindings: 0 q f16 [S, Hq, D]; 1 k f16 [S, Hkv, D]; 2 lse f32 [Hq, S];
//   3 heads i32 [nheads]; dense: 4 out f32 [nheads, nb, nb]; CSR: 4 rowptr
//   i32 [nheads, nb+1] (absolute offsets into cols), 5 cols i32, 6 out.
// STATS / VS (docs/algorithm.md#last-block-estimates). Grid (⌈nb/kpw⌉, Hq)
//   with push constant kpw ≥ 1: workgroup (x, h) takes key blocks
//   c = x·kpw .. min(x·kpw + kpw, nb) − 1 in turn, each as est_last.comp's
//   workgroup (c, h) does (same outputs, kpw = 1 is its grid): the
//   W = min(B, S) window rows i_t = S−W+t against key block c. When W ≤ TR
//   the query fragments are loaded once for all kpw blocks. Both take the
//   masks on the accumulator components, whose row and column are probed as
//   BLOCKMAP does (a driver whose accumulator length() differs from NE
//   writes NaN). STATS keeps no score tile: each accumulator component
//   runs its own (max, Σexp) in registers over the fragments and K tiles of
//   a (row pass, key block), one exp per element, and the 16 components of
//   each row (16 columns of the fragment) are combined once per (row pass,
//   key block) through the subgroup's part of a small shared array
//   (rowStats, subgroup barriers only). VS stores each subgroup's 16×TC
//   part of a TR×TC f32 tile of P = exp(s − ℓ_t) in shared memory and
//   reduces the column and diagonal sums there without atomics, as 2·TR
//   items of TC elements (see tileSums). With PREFETCH (spec constant 6,
//   the host's default; BLOCKMAP too) each K tile is fetched from global
//   memory into registers one tile ahead (the next tile of the row pass,
//   else the first of the next pass or of the workgroup's next key block;
//   the first one before the query load; BLOCKMAP: see nextBlock), so that
//   its loads are in flight during the current tile's matrix products, and
//   stored to shared memory when its turn comes; without it a tile is
//   loaded when it is computed (loadK).
//   Bindings: 0 q, 1 k; STATS: 2 stats vec2 [Hq, nb, W]; VS: 2 lse f32
//   [Hq, W], 3 v f32 [Hq, S], 4 vblk f32 [Hq, nb], 5 spart f32 [Hq, nb, 2B].
//   VS with SLASH_TAIL (est_last_cm_vs_slash): the workgroup that completes
//   a slash chunk's partials also combines it (est_slash.glsl): 6 s f32
//   [Hq, S]; 7 sblk f32 [Hq, nb]; 8 counter u32 [Hq, nb] (0 before the
//   first use, reset after).
//   STATS with LSE_TAIL (est_last_cm_stats_lse): the last workgroup of each
//   head also combines the statistics into ℓ (est_lse.glsl): 3 lse f32
//   [Hq, W]; 4 counter u32 [Hq] (0 before the first use, reset after).
// Only the loops over the D/16 fragments (their fragments live in
// registers) and rowStats's RPL rows a lane are unrolled by hint; the loops over key fragments and
// accumulator components are left to the driver: lavapipe compiles the
// fully unrolled shader an order of magnitude slower.
// Spec constants: 0 local size (= NSG · subgroup size, full subgroups of
//   the size the host requires), 1 TR (16, 32, 64 or 128), 2 TC (multiple
//   of 16), 3 D (multiple of 16), 4 NE = 256 / subgroup size (accumulator
//   components per invocation), 5 BS = B (STATS / VS; BLOCKMAP takes B
//   from the push constants) and 6 PREFETCH (see fetchK).
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 128, local_size_x_id = 0) in;
layout(constant_id = 1) const uint TR = 64;  // query rows per pass, 16 per subgroup
layout(constant_id = 2) const uint TC = 32;  // keys per K tile
layout(constant_id = 3) const uint D = 128;  // head dim
layout(constant_id = 4) const uint NE = 8;   // accumulator components per invocation
layout(constant_id = 5) const uint BS = 64;  // block size (STATS / VS)
layout(constant_id = 6) const bool PREFETCH = true; // K tiles fetched one tile ahead (see fetchK)

const uint LOCAL = gl_WorkGroupSize.x;
const uint NSG = TR / 16;
const uint D8 = D / 8;
const uint DF = D / 16;
const uint CF = TC / 16;
const uint KS = D / 4 + 2; // f16vec4 row stride of the K / Q staging (16 bytes of padding)

layout(std430, set = 0, binding = 0) readonly buffer Qb { uvec4 q8[]; };
layout(std430, set = 0, binding = 1) readonly buffer Kb { uvec4 k8[]; };

#ifdef BLOCKMAP
layout(std430, set = 0, binding = 2) readonly buffer Lb { float lse[]; };
layout(std430, set = 0, binding = 3) readonly buffer Hb { int heads[]; };
#ifdef CSR
layout(std430, set = 0, binding = 4) readonly buffer Rb { int rowptr[]; };
layout(std430, set = 0, binding = 5) readonly buffer Cb { int cols[]; };
layout(std430, set = 0, binding = 6) writeonly buffer Ob { float outm[]; };
#else
layout(std430, set = 0, binding = 4) writeonly buffer Ob { float outm[]; };
#endif
layout(push_constant) uniform Push {
	uint S;
	uint Hq;
	uint Hkv;
	uint B;
	uint nb;
	uint nheads;
	float scale;
	uint kpw; // slots (key blocks) per workgroup (0 means 1)
} pc;
#else
#ifdef STATS
#ifdef LSE_TAIL
layout(std430, set = 0, binding = 2) coherent buffer Sb { vec2 stats[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Lob { float lseOut[]; };
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
	uint kpw; // key blocks per workgroup (0 means 1)
} pc;
#endif

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

shared f16vec4 ksh[TC * KS]; // K tile; Q staging (TC rows a pass)
shared float lsh[TR];        // ℓ of the pass rows (BLOCKMAP, VS)
#ifdef BLOCKMAP
shared float red[NSG * 256]; // per-subgroup layout probe, then the workgroup sum
#else
const float NEG = -3.0e38;
#ifdef STATS
// The (max, Σexp) of every accumulator component of a subgroup for one
// (row pass, key block), element (row x, column y) of the 16×16 fragment
// at sg·256 + y·16 + x (column-major: the lanes that combine rows x, x+1,
// … read consecutive words); before the first block, the layout probe.
shared float cmm[NSG * 256];
shared float cml[NSG * 256];
// Combining a subgroup's 16 rows: LPR lanes per row (EPL entries each),
// RPL rows per lane (subgroups of fewer than 16 lanes).
const uint SGS = 256 / NE; // subgroup size
const uint LPR = SGS >= 16u ? SGS / 16u : 1u;
const uint EPL = 16u / LPR;
const uint RPL = SGS >= 16u ? 1u : 16u / SGS;
#else
const uint SS = TC + 4; // f32 row stride of the P tile
shared float ssh[TR * SS];
// The column and diagonal sums of a TR×TC tile of P are 2·TR items of TC
// elements each: NPC = TR/TC pieces of TC rows per column, and the
// diagonals, those shorter than TC paired so that each pair has TC
// elements (see tileSums). cpart holds the column pieces per block column.
const uint NPC = TR / TC;
shared float cpart[NPC * BS];
shared float slacc[2 * BS + TR];
#endif
#endif

MATA qf[DF];

#if defined(STATS) && defined(LSE_TAIL)
#define LSE_SCRATCH cmm // NSG·256 ≥ LOCAL floats, free after the last combine
#include "est_lse.glsl"
#endif
#if defined(VS) && defined(SLASH_TAIL)
#define SLASH_SCRATCH ssh // TR·(TC+4) ≥ LOCAL + 16 floats, free after the block sums
#include "est_slash.glsl"
#endif

void stageRow(uint dst, uvec4 w) {
	ksh[dst] = f16vec4(unpackFloat2x16(w.x), unpackFloat2x16(w.y));
	ksh[dst + 1] = f16vec4(unpackFloat2x16(w.z), unpackFloat2x16(w.w));
}

// loadQ puts rows row0 + [0, TR) of query head h into the subgroups' A
// fragments (rows at or past rend are zero). Ends with a barrier.
void loadQ(uint row0, uint rend, uint h) {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	for (uint pass = 0; pass < TR; pass += TC) {
		const uint np = min(TC, TR - pass);
		for (uint idx = tid; idx < np * D8; idx += LOCAL) {
			const uint rr = idx / D8;
			const uint cc = idx - rr * D8;
			const uint row = row0 + pass + rr;
			stageRow(rr * KS + 2 * cc, row < rend ? q8[(row * pc.Hq + h) * D8 + cc] : uvec4(0));
		}
		barrier();
		if (sg * 16 >= pass && sg * 16 < pass + np) {
			[[unroll]] for (uint df = 0; df < DF; df++) {
				coopMatLoad(qf[df], ksh, (sg * 16 - pass) * KS + df * 4, KS, gl_CooperativeMatrixLayoutRowMajor);
			}
		}
		barrier();
	}
}

// loadK stages keys key0 + [0, TC) of KV head hk (keys at or past kend are
// zero). Ends with a barrier.
void loadK(uint key0, uint kend, uint hk) {
	const uint tid = gl_LocalInvocationIndex;
	for (uint idx = tid; idx < TC * D8; idx += LOCAL) {
		const uint j = idx / D8;
		const uint cc = idx - j * D8;
		const uint key = key0 + j;
		stageRow(j * KS + 2 * cc, key < kend ? k8[(key * pc.Hkv + hk) * D8 + cc] : uvec4(0));
	}
	barrier();
}

// With PREFETCH, a K tile goes global → registers (fetchK: NF uvec4s per
// invocation, issued one tile ahead) → ksh (storeK); kreg holds the tile
// whose first key is kregKey (NOKEY: none; workgroup-uniform). Within a
// workgroup the KV head is fixed and a tile's first key names its key block
// (key0 = c·block + kt, kt < block) and so its end, so the tag names the
// tile (a block listed twice, CSR, fetches the same data).
const uint NF = (TC * D8 + LOCAL - 1) / LOCAL;
const uint NOKEY = 0xFFFFFFFFu;
uvec4 kreg[NF];
uint kregKey = NOKEY;

// fetchK loads keys key0 + [0, TC) of KV head hk into kreg (keys at or
// past kend are zero); the loads are not waited for until storeK.
void fetchK(uint key0, uint kend, uint hk) {
	const uint tid = gl_LocalInvocationIndex;
	[[unroll]] for (uint f = 0; f < NF; f++) {
		const uint idx = tid + f * LOCAL;
		const uint j = idx / D8;
		const uint key = key0 + j;
		if (idx < TC * D8) {
			kreg[f] = key < kend ? k8[(key * pc.Hkv + hk) * D8 + idx - j * D8] : uvec4(0);
		}
	}
	kregKey = key0;
}

// storeK stages kreg in ksh (no barrier).
void storeK() {
	const uint tid = gl_LocalInvocationIndex;
	[[unroll]] for (uint f = 0; f < NF; f++) {
		const uint idx = tid + f * LOCAL;
		const uint j = idx / D8;
		if (idx < TC * D8) {
			stageRow(j * KS + 2 * (idx - j * D8), kreg[f]);
		}
	}
}

// loadTile stages keys key0 + [0, TC) of KV head hk in ksh (keys at or
// past kend are zero): with PREFETCH from kreg, fetched now unless it
// already holds them. Ends with a barrier.
void loadTile(uint key0, uint kend, uint hk) {
	if (!PREFETCH) {
		loadK(key0, kend, hk);
		return;
	}
	if (kregKey != key0) {
		fetchK(key0, kend, hk);
	}
	storeK();
	barrier();
}

#ifndef BLOCKMAP
// tileLive reports whether K tile kt of row pass qt of key block c is
// computed: inside the block and the window, and its first key at or
// before the pass's last row (keyBlock's break).
bool tileLive(uint c, uint qt, uint kt) {
	const uint c0 = c * BS;
	return c < pc.nb && qt < pc.W && kt < min(BS, pc.S - c0) && c0 + kt <= pc.S - pc.W + qt + TR - 1;
}

// fetchFirst fetches the first tile of key block c's first row pass, when
// PREFETCH and that tile is computed.
void fetchFirst(uint c, uint hk) {
	if (PREFETCH && tileLive(c, 0, 0)) {
		fetchK(c * BS, min(c * BS + BS, pc.S), hk);
	}
}

// fetchNext, with PREFETCH, fetches the tile computed after tile kt of row
// pass qt of key block c (the workgroup's blocks end at cend): the next
// tile of the pass, else the first of the next pass, else the first of
// the next block, when that one is computed. Call it after loadTile, before
// the tile's scores, so that the loads are in flight during the MMAs.
void fetchNext(uint c, uint qt, uint kt, uint cend, uint hk) {
	if (!PREFETCH) {
		return;
	}
	const uint c0 = c * BS;
	const uint kend = min(c0 + BS, pc.S);
	if (tileLive(c, qt, kt + TC)) {
		fetchK(c0 + kt + TC, kend, hk);
	} else if (tileLive(c, qt + TR, 0)) {
		fetchK(c0, kend, hk);
	} else if (c + 1 < cend) {
		fetchFirst(c + 1, hk);
	}
}
#endif

// scores returns the unscaled q·k of the subgroup's 16 rows against keys
// cf·16 .. cf·16+15 of the staged tile.
ACC scores(uint cf) {
	ACC s = ACC(0.0);
	[[unroll]] for (uint df = 0; df < DF; df++) {
		MATB kt;
		coopMatLoad(kt, ksh, cf * 16 * KS + df * 4, KS, gl_CooperativeMatrixLayoutColumnMajor);
		s = coopMatMulAdd(qf[df], kt, s);
	}
	return s;
}

#ifdef BLOCKMAP
// Accumulator layout: component i of this invocation is element rowOf[i],
// colOf[i] of every accumulator (probed in main).
uint rowOf[NE];
uint colOf[NE];

// BMG is the most key blocks whose sums are reduced together: a group's
// per-invocation partial sums wait in red (NE·LOCAL floats, one LOCAL slot
// a block) until one tree reduction per slot, level by level, with one
// barrier a level for the whole group. With several row passes a group's
// blocks also share each pass's query load.
const uint BMG = NE < 8u ? NE : 8u;

// slotCol returns the key block of slot s of row r of head slot hi: s
// itself (dense), else the listed column (CSR; beg is the row's offset
// into cols), nb + 1 for a column outside [0, nb) (not written).
uint slotCol(uint s, int beg) {
#ifdef CSR
	const int cc = cols[beg + int(s)];
	return cc < 0 || uint(cc) >= pc.nb ? pc.nb + 1 : uint(cc);
#else
	return s;
#endif
}

// With PREFETCH the block map fetches each K tile one tile ahead in the
// order main() computes them: per group of slots, per row pass, the
// group's computed slots (c ≤ r) in order, per block its K tiles up to the
// diagonal break (the whole workgroup loads every tile before the break;
// the per-subgroup skip only leaves out scores). So the tile after a
// block's last one is the first tile of the next computed slot of the
// group, else of the group's first computed slot (next row pass), else of
// the first computed slot of the following groups (nextBlock); a block's
// first tile is always computed. NOBLOCK: none.
const uint NOBLOCK = 0xFFFFFFFFu;

// nextSlot returns the first slot in [s, e) of row r whose block is
// computed (c ≤ r), else e.
uint nextSlot(uint s, uint e, uint r, int beg) {
	while (s < e && slotCol(s, beg) > r) {
		s++;
	}
	return s;
}

// nextBlock returns the block whose first tile is computed after block
// slot s of row pass qt of the group of slots gb .. ge − 1 (the computed
// slots end before lend; nr rows, row r), else NOBLOCK.
uint nextBlock(uint s, uint qt, uint gb, uint ge, uint lend, uint nr, uint r, int beg) {
	uint n = nextSlot(s + 1, ge, r, beg);
	if (n < ge) {
		return slotCol(n, beg);
	}
	if (qt + TR < nr) {
		return slotCol(nextSlot(gb, ge, r, beg), beg); // s itself at the latest
	}
	n = nextSlot(ge, lend, r, beg);
	return n < lend ? slotCol(n, beg) : NOBLOCK;
}

// fetchBlock fetches the first K tile of key block c (KV head kvh).
void fetchBlock(uint c, uint kvh) {
	fetchK(c * pc.B, min(c * pc.B + pc.B, pc.S), kvh);
}

// blockPass adds to part the masked exp(scale·s − ℓ) of this invocation's
// accumulator components over row pass qt of query block r (its fragments
// in qf, ℓ in lrow) against key block c (c ≤ r), K tile by K tile. With
// PREFETCH each tile comes from kreg (loadTile) and the next computed
// tile's loads are issued before its scores: the block's next tile, after
// its last one the first tile of block next (nextBlock; NOBLOCK: none).
float blockPass(float part, uint qt, uint r, uint c, uint next, uint nr, uint kvh, float lrow[NE]) {
	const uint sg = gl_SubgroupID;
	const uint c0 = c * pc.B;
	const uint nk = min(pc.B, pc.S - c0);
	const uint sr = qt + sg * 16; // block-local first row of this subgroup
	for (uint kt = 0; kt < nk; kt += TC) {
		if (c == r && kt > qt + TR - 1) {
			break; // this and later tiles lie above the diagonal (uniform)
		}
		loadTile(c0 + kt, c0 + nk, kvh);
		if (PREFETCH) { // uniform
			if (kt + TC < nk && !(c == r && kt + TC > qt + TR - 1)) {
				fetchK(c0 + kt + TC, c0 + nk, kvh);
			} else if (next != NOBLOCK) {
				fetchBlock(next, kvh);
			}
		}
		if (sr < nr && !(c == r && kt > sr + 15)) { // subgroup-uniform
			const bool full = sr + 16 <= nr && kt + TC <= nk && (c != r || kt + TC - 1 <= sr);
			for (uint cf = 0; cf < CF; cf++) {
				const ACC s = scores(cf);
				for (uint i = 0; i < NE; i++) {
					const uint ii = sr + rowOf[i];
					const uint j = kt + cf * 16 + colOf[i];
					if (full || (ii < nr && j < nk && (c != r || j <= ii))) {
						part += exp(s[i] * pc.scale - lrow[i]);
					}
				}
			}
		}
		barrier(); // before the next tile overwrites ksh
	}
	return part;
}

// Workgroup (x, r, hi) takes slots s = x·kpw .. min(x·kpw + kpw, n) − 1 of
// row r (dense: n = nb and key block c = s; CSR: n the row's listed
// blocks, c = cols[rowptr + s]). Blocks c > r get 0 (and every block of a
// bad head NaN) first. The others go in groups of up to BMG: one row pass
// (nr ≤ TR): the query fragments are loaded once for all of the
// workgroup's blocks; several: per group, each pass loads its rows once
// and runs them against every block of the group. Each invocation's sum
// of a block waits in the block's slot of red between passes; the group
// ends with the slots' tree reductions. Each block sees the same additions
// in the same order as with kpw = 1 (per invocation, then the same tree),
// so every kpw gives the same bits. With PREFETCH the first computed tile
// is fetched before the layout probe and each later one a tile ahead
// (blockPass, nextBlock); only the load timing changes, not the bits.
void main() {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	const uint lane = gl_SubgroupInvocationID;
	const uint r = gl_WorkGroupID.y;
	const uint hi = gl_WorkGroupID.z;
	const uint nb = pc.nb;
	const uint kpw = max(pc.kpw, 1u);
	const uint sbeg = gl_WorkGroupID.x * kpw;
#ifdef CSR
	const int beg = rowptr[hi * (nb + 1) + r];
	const uint n = uint(max(rowptr[hi * (nb + 1) + r + 1] - beg, 0));
#else
	const int beg = 0;
	const uint n = nb;
#endif
	if (sbeg >= n) {
		return; // uniform: the whole workgroup leaves
	}
	const uint send = min(sbeg + kpw, n);
	const uint rowIdx = (hi * nb + r) * nb;
	const int hh = heads[hi];
	const bool badHead = hh < 0 || uint(hh) >= pc.Hq;
	// Blocks above the diagonal (and every block of a bad head) first.
	bool any = false; // a block to compute (uniform)
	for (uint s = sbeg; s < send; s++) {
		const uint c = slotCol(s, beg);
		if (c > nb) {
			continue;
		}
		if (c > r || badHead) {
			if (tid == 0) {
				outm[rowIdx + c] = c > r ? 0.0 : uintBitsToFloat(0x7FC00000u);
			}
		} else {
			any = true;
		}
	}
	if (!any) {
		return;
	}
	const uint h = uint(hh);
	const uint kvh = h / (pc.Hq / pc.Hkv);
	const uint r0 = r * pc.B;
	const uint nr = min(pc.B, pc.S - r0);
	// Dense: the blocks to compute are the slots up to the diagonal.
#ifdef CSR
	const uint lend = send;
#else
	const uint lend = min(send, r + 1);
#endif
	if (PREFETCH) {
		// The first computed tile, in flight during the layout probe and
		// the query load (a slot is computed: any).
		const uint s0 = nextSlot(sbeg, lend, r, beg);
		if (s0 < lend) {
			fetchBlock(slotCol(s0, beg), kvh);
		}
	}

	// Layout probe: component i of this invocation is element rowOf[i],
	// colOf[i] of every accumulator.
	for (uint e = lane; e < 256; e += gl_SubgroupSize) {
		red[sg * 256 + e] = float(e);
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	ACC probe;
	coopMatLoad(probe, red, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
	const bool lenOK = uint(probe.length()) == NE;
	for (uint i = 0; i < NE; i++) {
		const uint e = lenOK ? uint(probe[i]) : 0;
		rowOf[i] = e / 16;
		colOf[i] = e % 16;
	}

	const bool onePass = nr <= TR;
	for (uint gb = sbeg; gb < lend; gb += BMG) {
		const uint ge = min(gb + BMG, lend);
		for (uint qt = 0; qt < nr; qt += TR) {
			if (!onePass || gb == sbeg) {
				loadQ(r0 + qt, r0 + nr, h);
				for (uint x = tid; x < TR; x += LOCAL) {
					lsh[x] = qt + x < nr ? lse[h * pc.S + r0 + qt + x] : 0.0;
				}
				barrier();
			}
			float lrow[NE];
			for (uint i = 0; i < NE; i++) {
				lrow[i] = lsh[sg * 16 + rowOf[i]];
			}
			for (uint s = gb; s < ge; s++) {
				const uint c = slotCol(s, beg);
				if (c > r) {
					continue; // written above (or not listed in range)
				}
				// This invocation's partial sum of the block, in its slot
				// between passes (read back by this invocation only).
				const uint slot = (s - gb) * LOCAL + tid;
				const uint next = PREFETCH ? nextBlock(s, qt, gb, ge, lend, nr, r, beg) : NOBLOCK;
				red[slot] = blockPass(qt == 0 ? 0.0 : red[slot], qt, r, c, next, nr, kvh, lrow);
			}
		}
		// The group's reductions, one tree per slot, level by level.
		barrier();
		const uint ng = ge - gb;
		uint lg = 0;
		while ((2u << lg) <= LOCAL) {
			lg++;
		}
		for (; lg > 0; lg--) {
			const uint st = 1u << (lg - 1);
			for (uint idx = tid; idx < ng * st; idx += LOCAL) {
				const uint g = idx >> (lg - 1);
				const uint t = idx & (st - 1);
				red[g * LOCAL + t] += red[g * LOCAL + t + st];
			}
			barrier();
		}
		for (uint g = tid; g < ng; g += LOCAL) {
			const uint c = slotCol(gb + g, beg);
			if (c <= r) {
				outm[rowIdx + c] = lenOK ? red[g * LOCAL] / float(nr) : uintBitsToFloat(0x7FC00000u);
			}
		}
	}
}
#else
#define invalidF uintBitsToFloat(0x7FC00000u)

// loadRows puts window rows qt + [0, TR) of head h into the A fragments
// and, for VS, their ℓ into lsh. Ends with a barrier.
void loadRows(uint qt, uint h) {
	loadQ(pc.S - pc.W + qt, pc.S, h);
#ifdef VS
	const uint tid = gl_LocalInvocationIndex;
	for (uint x = tid; x < TR; x += LOCAL) {
		lsh[x] = qt + x < pc.W ? lse[h * pc.W + qt + x] : 0.0;
	}
	barrier();
#endif
}

// Accumulator layout: component i of this invocation is element rowOf[i],
// colOf[i] of every accumulator (probed once, as the block map does).
uint rowOf[NE];
uint colOf[NE];
bool lenOK;

#ifdef STATS
#define PROBE cmm
#else
#define PROBE ssh
#endif

// probeLayout fills rowOf and colOf, using this subgroup's first 256
// floats of PROBE (cmm for STATS, ssh for VS; before anything else is
// stored there, and the query load's barriers follow).
void probeLayout() {
	const uint sg = gl_SubgroupID;
	for (uint e = gl_SubgroupInvocationID; e < 256; e += gl_SubgroupSize) {
		PROBE[sg * 256 + e] = float(e);
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	ACC probe;
	coopMatLoad(probe, PROBE, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
	lenOK = uint(probe.length()) == NE;
	for (uint i = 0; i < NE; i++) {
		const uint e = lenOK ? uint(probe[i]) : 0;
		rowOf[i] = e / 16;
		colOf[i] = e % 16;
	}
}

#ifdef STATS
// The running (max, Σexp) of each accumulator component over the K tiles
// of the current (row pass, key block).
float rm[NE];
float rl[NE];

// rowStats combines the running (m, l) of this invocation's accumulator
// components (rows qt + 16·sg + rowOf[i] of the window, key block c of
// head h) into the block-local max and Σexp of each of the subgroup's 16
// rows and writes them to stats (a row with no valid key: (NEG, 0); a
// driver whose accumulator length() differs from NE: NaN). Subgroup-local:
// the entries go through this subgroup's part of cmm / cml, each row is
// taken by LPR lanes (EPL entries each, starting at a rotated entry so that
// the LPR lanes of a row read distinct banks) whose partials meet in the
// same part, so only subgroup barriers are needed.
void rowStats(uint qt, uint c, uint h) {
	const uint sg = gl_SubgroupID;
	const uint lane = gl_SubgroupInvocationID;
	const uint base = sg * 256;
	subgroupBarrier(); // this subgroup's earlier reads of its part are done
	for (uint i = 0; i < NE; i++) {
		const uint e = base + colOf[i] * 16 + rowOf[i];
		cmm[e] = rm[i];
		cml[e] = rl[i];
	}
	subgroupMemoryBarrierShared();
	subgroupBarrier();
	const uint p = lane / 16; // 0 where the subgroup has 16 lanes or fewer
	float pm[RPL];
	float pl[RPL];
	[[unroll]] for (uint k = 0; k < RPL; k++) {
		const uint x = lane % 16 + k * SGS;
		float m = NEG;
		for (uint u = 0; u < EPL; u++) {
			m = max(m, cmm[base + (p * EPL + (u + p) % EPL) * 16 + x]);
		}
		float l = 0.0;
		for (uint u = 0; u < EPL; u++) {
			const uint e = base + (p * EPL + (u + p) % EPL) * 16 + x;
			const float em = cmm[e];
			if (em > NEG) {
				l += cml[e] * exp(em - m);
			}
		}
		pm[k] = m;
		pl[k] = l;
	}
	if (LPR > 1u) {
		// The LPR partials of row x meet in entries x + 16·p (RPL = 1).
		subgroupBarrier(); // every lane's reads of the entries are done
		const uint x = lane % 16;
		cmm[base + p * 16 + x] = pm[0];
		cml[base + p * 16 + x] = pl[0];
		subgroupMemoryBarrierShared();
		subgroupBarrier();
		if (p == 0) {
			float m = NEG;
			for (uint q = 0; q < LPR; q++) {
				m = max(m, cmm[base + q * 16 + x]);
			}
			float l = 0.0;
			for (uint q = 0; q < LPR; q++) {
				const float em = cmm[base + q * 16 + x];
				if (em > NEG) {
					l += cml[base + q * 16 + x] * exp(em - m);
				}
			}
			pm[0] = m;
			pl[0] = l;
		}
	}
	if (p == 0) {
		[[unroll]] for (uint k = 0; k < RPL; k++) {
			const uint t = qt + sg * 16 + lane + k * SGS;
			if (t < pc.W) {
				stats[(h * pc.nb + c) * pc.W + t] = lenOK ? vec2(pm[k], pl[k]) : vec2(invalidF);
			}
		}
	}
}
#endif

#ifdef VS
// tileSums adds the column and diagonal sums of the P tile in ssh (rows qt
// + [0, TR), keys kt + [0, TC) of the block) to cpart and slacc. Item it <
// TR is piece it / TC of column it mod TC; item TR + j is diagonal
// dd = j − (TC − 1) (x − y = dd, TC elements) for j ≥ TC − 1, else the pair
// of diagonals m − TC (rows 0 .. m − 1) and TR − TC + m (rows TR − TC + m ..
// TR − 1), m = j + 1, whose lengths m and TC − m add up to TC. Each output
// slot has one item per tile, so nothing is shared between invocations.
// Banks: the columns and the pairs read consecutive words across lanes;
// full diagonal j starts at its element (j mod TC) so that neighbouring
// diagonals hit distinct banks.
void tileSums(uint qt, uint kt) {
	for (uint it = gl_LocalInvocationIndex; it < 2 * TR; it += LOCAL) {
		if (it < TR) {
			const uint y = it % TC;
			const uint r0 = (it / TC) * TC;
			float cs = 0.0;
			for (uint u = 0; u < TC; u++) {
				cs += ssh[(r0 + u) * SS + y];
			}
			if (kt + y < BS) {
				cpart[(it / TC) * BS + kt + y] += cs;
			}
			continue;
		}
		const uint j = it - TR;
		const int base = int(qt) - int(kt) + int(BS) - 1; // slacc index of dd = 0
		if (j >= TC - 1) {
			const uint dd = j - (TC - 1);
			float ds = 0.0;
			for (uint u = 0; u < TC; u++) {
				const uint uu = (u + j) % TC;
				ds += ssh[(dd + uu) * SS + uu];
			}
			const int idx = base + int(dd);
			if (idx >= 0 && idx < int(2 * BS + TR)) {
				slacc[idx] += ds;
			}
		} else {
			const uint m = j + 1;
			float da = 0.0;
			float db = 0.0;
			for (uint u = 0; u < TC; u++) { // one trip count for every lane
				const bool first = u < m;
				const float e = ssh[(first ? u : TR - TC + u) * SS + (u + TC - m) % TC];
				if (first) {
					da += e;
				} else {
					db += e;
				}
			}
			const int ia = base + int(m) - int(TC);
			const int ib = base + int(TR - TC + m);
			if (ia >= 0 && ia < int(2 * BS + TR)) {
				slacc[ia] += da;
			}
			if (ib >= 0 && ib < int(2 * BS + TR)) {
				slacc[ib] += db;
			}
		}
	}
}
#endif

// keyBlock computes and writes the outputs of key block c for head h (KV
// head kvh): STATS its row statistics, VS its V column sums, block sum and
// slash partials. With onePass the caller has loaded the window rows
// (loadRows(0, h)); otherwise each row pass loads its own. Per K tile: the
// key load (loadTile, a barrier; then fetchNext issues the loads of the
// next tile, cend ending the workgroup's blocks), then STATS: each accumulator component's masked
// score updates its running (m, l) in registers (one exp per element),
// combined per row once per (row pass, block) by rowStats; VS: the P tile
// (exp taken on the accumulator components) stored to ssh, a barrier, the
// tile's reduction into invocation-owned shared slots (tileSums). STATS
// ends a tile with a barrier before the next key load overwrites ksh; VS
// needs none (its P-store barrier orders the reads of ksh, the next key
// load's barrier those of ssh). STATS ends with rowStats, which is
// subgroup-local (a subgroup's part of cmm / cml is written only by that
// subgroup, after a subgroup barrier; lseTail starts with a barrier); VS
// ends with a barrier after which only invocation 0 still reads ssh (the
// next block's first key-load barrier orders that).
void keyBlock(uint c, uint cend, uint h, uint kvh, bool onePass) {
	const uint tid = gl_LocalInvocationIndex;
	const uint sg = gl_SubgroupID;
	const uint S = pc.S;
	const uint W = pc.W;
	const uint i0 = S - W;
	const float scale = pc.scale;
	const uint c0 = c * BS;
	const uint nk = min(BS, S - c0);
#ifdef VS
	for (uint x = tid; x < NPC * BS; x += LOCAL) {
		cpart[x] = 0.0;
	}
	for (uint x = tid; x < 2 * BS + TR; x += LOCAL) {
		slacc[x] = 0.0;
	}
	// (the first key load's barrier orders these before tileSums)
#endif
	for (uint qt = 0; qt < W; qt += TR) {
		if (!onePass) {
			loadRows(qt, h);
		}
		const uint sr = qt + sg * 16; // window row of this subgroup's first row
#ifdef STATS
		for (uint i = 0; i < NE; i++) {
			rm[i] = NEG;
			rl[i] = 0.0;
		}
#else
		float lrow[NE];
		for (uint i = 0; i < NE; i++) {
			lrow[i] = lsh[sg * 16 + rowOf[i]];
		}
#endif
		for (uint kt = 0; kt < nk; kt += TC) {
			if (c0 + kt > i0 + qt + TR - 1) {
				break; // every key of this and later tiles is after every row (uniform)
			}
			loadTile(c0 + kt, c0 + nk, kvh);
			fetchNext(c, qt, kt, cend, kvh);
#ifdef STATS
			// Every element of the subgroup's 16×TC scores valid (rows in
			// the window, keys in the block, the tile's last key at or
			// before the first row): no per-element mask (subgroup-uniform).
			const bool full = sr + 16 <= W && kt + TC <= nk && c0 + kt + TC - 1 <= i0 + sr;
			for (uint cf = 0; cf < CF; cf++) {
				const ACC s = scores(cf);
				for (uint i = 0; i < NE; i++) {
					const uint t = sr + rowOf[i];
					const uint jl = kt + cf * 16 + colOf[i];
					if (full || (t < W && jl < nk && c0 + jl <= i0 + t)) {
						// One exp per element: with d = x − m, the larger
						// of x and m becomes the max and the other enters
						// as exp(−|d|). The first valid x gives l = 1
						// (x − NEG is finite or +inf, exp(−|d|) = 0).
						const float x = s[i] * scale;
						const float d = x - rm[i];
						const float e = exp(-abs(d));
						if (d > 0.0) {
							rl[i] = rl[i] * e + 1.0;
							rm[i] = x;
						} else {
							rl[i] += e;
						}
					}
				}
			}
			barrier(); // before the next key load overwrites ksh
#else
			for (uint cf = 0; cf < CF; cf++) {
				ACC s = scores(cf);
				for (uint i = 0; i < NE; i++) {
					const uint t = sr + rowOf[i];
					const uint jl = kt + cf * 16 + colOf[i];
					const bool valid = t < W && jl < nk && c0 + jl <= i0 + t;
					s[i] = valid ? exp(s[i] * scale - lrow[i]) : 0.0;
				}
				coopMatStore(s, ssh, sg * 16 * SS + cf * 16, SS, gl_CooperativeMatrixLayoutRowMajor);
			}
			barrier();
			tileSums(qt, kt);
			// (the next key load's barrier orders these reads of ssh
			// before the next tile's stores; the one above, the reads of
			// ksh before the next key load)
#endif
		}
#ifdef STATS
		// The row pass is complete for this block.
		rowStats(qt, c, h);
#endif
	}
#ifdef VS
	barrier();
	const float invW = 1.0 / float(W);
	float part = 0.0;
	for (uint x = tid; x < nk; x += LOCAL) {
		float cs = 0.0;
		for (uint p = 0; p < NPC; p++) {
			cs += cpart[p * BS + x];
		}
		v[h * S + c0 + x] = lenOK ? cs * invW : invalidF;
		part += cs;
	}
	for (uint x = tid; x < 2 * BS; x += LOCAL) {
		spart[(h * pc.nb + c) * 2 * BS + x] = !lenOK ? invalidF : x < W + BS - 1 ? slacc[x] * invW : 0.0;
	}
	// The block sum in two steps over ssh (free until the next block's
	// first key-load barrier, which also orders tid 0's last read): 16
	// strided partial sums, then their sum. The next block clears cpart and
	// slacc only after the barrier that ends their reads here.
	ssh[tid] = part;
	barrier();
	const uint NR = LOCAL < 16u ? LOCAL : 16u;
	if (tid < NR) {
		float p16 = 0.0;
		for (uint x = tid; x < LOCAL; x += NR) {
			p16 += ssh[x];
		}
		ssh[LOCAL + tid] = p16;
	}
	barrier();
	if (tid == 0) {
		float sum = 0.0;
		for (uint x = 0; x < NR; x++) {
			sum += ssh[LOCAL + x];
		}
		vblk[h * pc.nb + c] = lenOK ? sum * invW : invalidF;
	}
#endif
}

// Workgroup (x, h) takes key blocks x·kpw .. min(x·kpw + kpw, nb) − 1 of
// query head h, one after the other.
void main() {
	const uint h = gl_WorkGroupID.y;
	const uint kvh = h / (pc.Hq / pc.Hkv);
	const uint kpw = max(pc.kpw, 1u);
	const uint cbeg = gl_WorkGroupID.x * kpw;
	const uint cend = min(cbeg + kpw, pc.nb);
	fetchFirst(cbeg, kvh); // in flight during the layout probe and the query load
	probeLayout();
	// One row pass (W ≤ TR: every block of at most 128 tokens): the query
	// fragments are loaded once for all of the workgroup's key blocks.
	const bool onePass = pc.W <= TR;
	if (onePass) {
		loadRows(0, h);
	}
	for (uint c = cbeg; c < cend; c++) {
		keyBlock(c, cend, h, kvh, onePass);
	}
#ifdef LSE_TAIL
	lseTail(h);
#endif
#ifdef SLASH_TAIL
	slashTail(h, cbeg, cend);
#endif
}
#endif
