// est_slash.glsl: est_last_combine.comp's SLASH pass folded into the V pass
// of the last-block estimate (est_last.comp, qk_cm.comp with VS and
// SLASH_TAIL; not a module of its own). Slash offsets o ∈ [ob·B,
// min(ob·B+B, S)) of chunk ob take the partials of key blocks
// c ∈ [max(0, S−W−b)/B, (S−1−a)/B] (a, b the chunk's first and last
// offset): at most three blocks, so each chunk is combined as soon as its
// blocks are written, not after the whole head. Every workgroup, after
// writing the partials of its blocks [cbeg, cend), adds for each chunk its
// blocks touch the count of those blocks to the chunk's counter; the one
// whose addition completes the count combines the chunk as
// est_last_combine.comp's SLASH workgroup does (the same sums over c per
// offset, so s is bitwise the same; the chunk sum sblk adds the offsets in
// another order) and resets the counter to 0 for the next use. No
// workgroup waits for another, and the SLASH dispatch and its barrier go.
// The includer declares LOCAL, BS (= B), the push constants S, nb and W,
// the bindings `coherent buffer { float spart[]; }` (its partials, written
// before the call), `s` (f32 [Hq, S]), `sblk` (f32 [Hq, nb]) and
// `coherent buffer { uint sctr[]; }` (u32 [Hq, nb], 0 before the first
// use), and defines SLASH_SCRATCH as a shared float array of at least
// LOCAL + 16 elements that the pass no longer needs (its last reads must be
// ordered by the barrier this function starts with).

shared bool slashTake;

void slashTail(uint h, uint cbeg, uint cend) {
	const uint tid = gl_LocalInvocationIndex;
	const int S = int(pc.S);
	const int W = int(pc.W);
	const int B = int(BS);
	const uint nb = pc.nb;
	memoryBarrierBuffer();
	barrier();
	// The chunks that blocks cbeg .. cend−1 touch: offsets from the last
	// block's last key against the first window row up to the first
	// block's first key against the last row.
	const int jHi = min(int(cend) * B, S) - 1;
	const int obLo = max(0, S - W - jHi) / B;
	const int obHi = (S - 1 - int(cbeg) * B) / B;
	for (int ob = obLo; ob <= obHi; ob++) {
		const int a = ob * B;
		const int b = min(a + B, S) - 1;
		const int cLo = max(0, S - W - b) / B;
		const int cHi = (S - 1 - a) / B;
		const int mine = min(cHi, int(cend) - 1) - max(cLo, int(cbeg)) + 1;
		if (mine <= 0) {
			continue; // uniform
		}
		if (tid == 0u) {
			const uint total = uint(cHi - cLo + 1);
			slashTake = atomicAdd(sctr[h * nb + uint(ob)], uint(mine)) + uint(mine) == total;
		}
		barrier();
		if (slashTake) { // uniform
			memoryBarrierBuffer();
			float part = 0.0;
			for (int x = int(tid); x < B; x += int(LOCAL)) {
				const int o = a + x;
				if (o > b) {
					break;
				}
				const int c0 = max(0, S - W - o) / B;
				const int c1 = (S - 1 - o) / B;
				float acc = 0.0;
				for (int c = c0; c <= c1; c++) {
					const int l = o - (S - W - c * B - (B - 1));
					acc += spart[(h * nb + uint(c)) * 2u * BS + uint(l)];
				}
				s[h * pc.S + uint(o)] = acc;
				part += acc;
			}
			// The chunk sum: 16 strided partial sums, then their sum.
			SLASH_SCRATCH[tid] = part;
			barrier();
			const uint NR = LOCAL < 16u ? LOCAL : 16u;
			if (tid < NR) {
				float p16 = 0.0;
				for (uint x = tid; x < LOCAL; x += NR) {
					p16 += SLASH_SCRATCH[x];
				}
				SLASH_SCRATCH[LOCAL + tid] = p16;
			}
			barrier();
			if (tid == 0u) {
				float sum = 0.0;
				for (uint x = 0u; x < NR; x++) {
					sum += SLASH_SCRATCH[LOCAL + x];
				}
				sblk[h * nb + uint(ob)] = sum;
				sctr[h * nb + uint(ob)] = 0u;
			}
		}
		barrier(); // slashTake and the scratch are written again
	}
}
