// est_lse.glsl: est_last_combine.comp's LSE pass folded into the statistics
// pass of the last-block estimate (est_last.comp, qk_cm.comp with STATS and
// LSE_TAIL; not a module of its own). Every workgroup publishes its rows'
// statistics and counts itself done on head h's counter; the last one of
// the head to finish (it sees every block's statistics) combines them:
//   ℓ[h][t] = M + log Σ_c l_c·exp(m_c − M),  M = max_c m_c,
// rows in parallel, each row's blocks split over P = LOCAL / min(W, LOCAL)
// invocations (block c by invocation c mod P), their maxima and sums added
// in a fixed order (LSE_BATCH independent loads in flight per invocation);
// then it resets the counter to 0 for the next use. No
// workgroup waits for another, and the LSE dispatch and its barrier go.
// The includer declares LOCAL, NEG, the push constants nb and W, the
// bindings `coherent buffer { vec2 stats[]; }`, `lseOut` (f32 [Hq, W]) and
// `coherent buffer { uint lctr[]; }` (u32 [Hq], 0 before the first use),
// and defines LSE_SCRATCH as a shared float array of at least LOCAL
// elements that the pass no longer needs.

// LSE_BATCH is the statistics each invocation loads at once (registers:
// two floats each).
#ifndef LSE_BATCH
#define LSE_BATCH 16u
#endif

shared bool lseLast;

void lseTail(uint h) {
	const uint tid = gl_LocalInvocationIndex;
	memoryBarrierBuffer();
	barrier();
	if (tid == 0u) {
		lseLast = atomicAdd(lctr[h], 1u) == gl_NumWorkGroups.x - 1u;
	}
	barrier();
	if (!lseLast) {
		return; // uniform
	}
	memoryBarrierBuffer();
	const uint W = pc.W;
	const uint nb = pc.nb;
	const uint R = min(W, LOCAL);
	const uint P = LOCAL / R;
	const uint x = tid % R;
	const uint p = tid / R;
	// Each invocation's blocks c = p, p + P, … are read LSE_BATCH at a
	// time into registers, every load of a batch independent of the others
	// (one memory round trip a batch instead of one a block: at nb = 58 and
	// P = 1, 4 + 4 round trips instead of 58 + 58); where a row's blocks fit
	// one batch (nb ≤ P·LSE_BATCH) the sum pass reuses the registers. The
	// maxima and the sums are taken in the same order as one block at a
	// time, so ℓ is bit-identical to the serial loop's.
	const bool oneBatch = nb <= P * LSE_BATCH; // uniform
	for (uint t0 = 0u; t0 < W; t0 += R) {
		const uint t = t0 + x;
		const bool act = p < P && t < W;
		const uint row = h * nb * W + t;
		vec2 st[LSE_BATCH];
		float M = NEG;
		if (act) {
			for (uint c0 = p; c0 < nb; c0 += P * LSE_BATCH) {
				[[unroll]] for (uint k = 0u; k < LSE_BATCH; k++) {
					const uint c = c0 + k * P;
					st[k] = c < nb ? stats[row + c * W] : vec2(NEG, 0.0);
				}
				[[unroll]] for (uint k = 0u; k < LSE_BATCH; k++) {
					M = max(M, st[k].x);
				}
			}
		}
		LSE_SCRATCH[tid] = M;
		barrier();
		if (act) {
			for (uint q = 0u; q < P; q++) {
				M = max(M, LSE_SCRATCH[q * R + x]);
			}
		}
		barrier();
		float L = 0.0;
		if (act) {
			for (uint c0 = p; c0 < nb; c0 += P * LSE_BATCH) {
				if (!oneBatch) {
					[[unroll]] for (uint k = 0u; k < LSE_BATCH; k++) {
						const uint c = c0 + k * P;
						st[k] = c < nb ? stats[row + c * W] : vec2(NEG, 0.0);
					}
				}
				[[unroll]] for (uint k = 0u; k < LSE_BATCH; k++) {
					if (st[k].y > 0.0) {
						L += st[k].y * exp(st[k].x - M);
					}
				}
			}
		}
		LSE_SCRATCH[tid] = L;
		barrier();
		if (act && p == 0u) {
			float sum = 0.0;
			for (uint q = 0u; q < P; q++) {
				sum += LSE_SCRATCH[q * R + x];
			}
			lseOut[h * W + t] = M + log(sum);
		}
		barrier();
	}
	if (tid == 0u) {
		lctr[h] = 0u;
	}
}
