package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// decodeScratchFor makes a scratch of n f32 elements (at least one) as a
// decode step finds it: the counters at its head zero (as DecodeAttention
// leaves them), the partial results poisoned.
func decodeScratchFor(t *testing.T, d *runtime.Device, hkv, n int) *runtime.Tensor {
	t.Helper()
	s := empty(t, d, runtime.F32, max(n, 1))
	if n > 0 {
		zero := make([]byte, 4*min(n, decodeCounterWords(d, hkv)))
		if err := s.UploadBytes(zero, 0); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkCountersZero fails when the scratch's counters are not all zero.
func checkCountersZero(t *testing.T, name string, d *runtime.Device, scratch *runtime.Tensor, hkv int) {
	t.Helper()
	b, err := scratch.DownloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < min(hkv, len(b)/4); i++ {
		if w := b[4*i : 4*i+4]; w[0]|w[1]|w[2]|w[3] != 0 {
			t.Errorf("%s: counter %d left at %v, want 0", name, i, w)
		}
	}
}

// TestDecodeSplitKV: the one-dispatch split-KV decode kernel (attn_decode)
// against the float64 reference at awkward sizes — G = Hq/Hkv of 1, 4 and
// 8, head dims 8 to 256, caches not a multiple of the split length, one
// split, many, and splits past the cache's end (the grid of a longer cache,
// DecodeAttentionAt) — with poisoned outputs and partial results; each
// call once more on the same scratch (the counters it resets), and as many
// dispatches as the plan says: one.
func TestDecodeSplitKV(t *testing.T) {
	d := splitKV1Device(t)
	rng := gputest.Rand(t)
	for _, c := range []decodeCase{
		{8, 2, 64, 1, 300, 300, runtime.F32, true, 2},    // bench-lm-8k's heads
		{8, 2, 64, 1, 1000, 4096, runtime.F16, false, 2}, // splits past the end
		{8, 8, 64, 1, 45, 45, runtime.F32, true, 1},      // G = 1, one split
		{32, 4, 128, 1, 777, 777, runtime.F16, true, 2},  // G = 8
		{32, 4, 128, 2, 200, 520, runtime.F32, true, 2},  // G = 8, 2 queries: 16 rows
		{4, 1, 256, 3, 129, 129, runtime.F32, true, 2},   // D = 256, 12 rows
		{12, 3, 80, 1, 65, 900, runtime.F32, true, 2},    // D/4 not a power of two
		{2, 1, 8, 4, 9000, 9000, runtime.F32, true, 64},  // D = 8, many splits
		{6, 2, 8, 1, 1, 64, runtime.F32, true, 1},        // a cache of one key
		{4, 4, 64, 2, 2, 200, runtime.F16, true, 2},      // the queries' own keys only
		{64, 64, 8, 1, 5000, 5000, runtime.F32, true, 2}, // 64 KV heads: 2048-key splits, two chunks
	} {
		pmax := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.maxSkv, Q0: c.maxSkv - c.sq, Causal: true}
		at := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.skv, Q0: c.skv - c.sq, Causal: true}
		name := fmt.Sprintf("%v (grid for %d) out=%s", at, c.maxSkv, c.dt)
		pl, ok := planDecodeSplit(d, pmax)
		if !ok {
			t.Fatalf("%s: attn_decode does not take it", name)
		}
		if pl.splits < c.minSplits {
			t.Fatalf("%s: %d splits, the case is there for at least %d", name, pl.splits, c.minSplits)
		}
		if c.hkv == 64 && pl.kc >= pl.kps {
			t.Fatalf("%s: plan %+v takes a split in one chunk; the case is there for several", name, pl)
		}
		checkDecodeCalls(t, d, rng, name, pmax, at, c.dt, c.lse)
	}
}

// splitKV1Device opens a device whose decode attention takes attn_decode
// (Tuning.DecodeAttnSplitKV1) where attn_decode2 would apply.
func splitKV1Device(t *testing.T) *runtime.Device {
	t.Helper()
	return gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{DecodeAttnSplitKV1: true}})
}

// TestDecodeSplitKVReductions: attn_decode's row reductions by subgroup
// arithmetic (the plan's choice where the device has it) and by
// shared-memory trees both match the float64 reference, at rows of 1, 3,
// 4, 8 and 16 (32 to 8 threads a row: one subgroup, several, or less than
// one, where the kernel falls back to the tree), with several chunks a
// split and many splits to merge.
func TestDecodeSplitKVReductions(t *testing.T) {
	d := splitKV1Device(t)
	rng := gputest.Rand(t)
	caps := d.Caps()
	t.Logf("subgroup size %d, arithmetic %v", caps.SubgroupSize, caps.SubgroupArithmetic)
	for _, c := range []struct{ hq, hkv, hd, sq, skv int }{
		{1, 1, 64, 1, 700}, {3, 1, 32, 1, 300}, {8, 2, 64, 1, 1500}, {8, 1, 16, 1, 200}, {8, 2, 64, 4, 333}, {64, 64, 8, 1, 5000},
	} {
		p := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.skv, Q0: c.skv - c.sq, Causal: true}
		pl, ok := planDecodeSplit(d, p)
		if !ok {
			t.Fatalf("%v: attn_decode does not take it", p)
		}
		if want := caps.SubgroupArithmetic && caps.SubgroupSize > 0 && pl.wg%int(caps.SubgroupSize) == 0; pl.subgroup != want {
			t.Errorf("%v: plan's subgroup reductions %v, want %v", p, pl.subgroup, want)
		}
		in := newAttnInputs(t, d, rng, p, 2)
		n, err := DecodeScratchMax(d, p)
		if err != nil {
			t.Fatal(err)
		}
		scratch := decodeScratchFor(t, d, c.hkv, n)
		wo, wl := RefAttention(in.q, in.k, in.v, p)
		canSG := pl.subgroup
		for _, sg := range []bool{false, true} {
			if sg && !canSG {
				continue
			}
			pl.subgroup = sg
			name := fmt.Sprintf("%v subgroup=%v", p, sg)
			o, lse := attnOut(t, d, p, runtime.F32)
			if err := d.Run(func(r *runtime.Recorder) error {
				return decodeAttention(r, o, lse, in.tq, in.tk, in.tv, scratch, nil, p, pl)
			}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkAttn(t, name, o, lse, wo, wl)
			if n > 0 {
				checkCountersZero(t, name, d, scratch, c.hkv)
			}
		}
	}
}

// TestDecodeSplitKVMatchesScalar: on a decode step's shapes the split-KV
// kernel (its plan's 64-key splits, and one split of 64-key chunks) and the
// scalar reference kernel (Tuning.DecodeAttnScalar's choice) agree to
// rounding, over cache lengths of a replayed grid.
func TestDecodeSplitKVMatchesScalar(t *testing.T) {
	d := splitKV1Device(t)
	rng := gputest.Rand(t)
	const maxSkv = 200
	pmax := AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: maxSkv, Q0: maxSkv - 1, Causal: true}
	in := newAttnInputs(t, d, rng, pmax, 0)
	split, ok := planDecodeSplit(d, pmax)
	if !ok || split.splits < 2 {
		t.Fatalf("attn_decode plan %+v (%v): want several splits", split, ok)
	}
	scalar, err := attnPlanDecodeScalar(d, pmax)
	if err != nil {
		t.Fatal(err)
	}
	n, err := DecodeScratchMax(d, pmax)
	if err != nil {
		t.Fatal(err)
	}
	scratch := decodeScratchFor(t, d, pmax.Hkv, max(n, scalar.scratchLen(d, pmax)))
	dyn := AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 1, Causal: true}
	for _, p := range []int{0, 1, 62, 63, 64, 65, 127, 150, maxSkv - 1} {
		pos := uploadI32(t, d, []int32{int32(p)})
		oa, _ := attnOut(t, d, dyn, runtime.F32)
		ob, _ := attnOut(t, d, dyn, runtime.F32)
		oc, _ := attnOut(t, d, dyn, runtime.F32)
		// One split of 256 keys, taken in 64-key chunks.
		chunked := split
		chunked.kps, chunked.kc, chunked.tpk, chunked.splits = 256, decMinKeys, decTPK(split.wg, decMinKeys), 1
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := decodeAttention(r, oa, nil, in.tq, in.tk, in.tv, scratch, pos, dyn, split); err != nil {
				return err
			}
			if err := decodeAttention(r, oc, nil, in.tq, in.tk, in.tv, scratch, pos, dyn, chunked); err != nil {
				return err
			}
			return decodeAttention(r, ob, nil, in.tq, in.tk, in.tv, scratch, pos, dyn, scalar)
		}); err != nil {
			t.Fatalf("position %d: %v", p, err)
		}
		want := gputest.F64(download(t, ob))
		if e := gputest.RelErr(download(t, oa), want); !(e <= 1e-5) {
			t.Errorf("position %d: split-KV and scalar outputs differ: relative error %.3g", p, e)
		}
		if e := gputest.RelErr(download(t, oc), want); !(e <= 1e-5) {
			t.Errorf("position %d: one chunked split and the scalar output differ: relative error %.3g", p, e)
		}
	}
}

// TestPlanDecodeSplit: the split plan takes at most decMaxRows rows, gives
// short caches one split and keeps the workgroup count near
// decTargetGroups on long ones, and the scalar tuning keeps to the scalar
// kernel.
func TestPlanDecodeSplit(t *testing.T) {
	d := gputest.Device(t)
	for _, c := range []struct {
		p          AttnParams
		ok         bool
		kps, split int
	}{
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 64}, true, 64, 1},
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 4096}, true, 64, 64},
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 32768}, true, 256, 128},
		{AttnParams{Hq: 32, Hkv: 8, D: 128, Sq: 1, Skv: 32768}, true, 1024, 32},
		{AttnParams{Hq: 32, Hkv: 8, D: 128, Sq: 4, Skv: 4096}, true, 128, 32},
		{AttnParams{Hq: 32, Hkv: 8, D: 128, Sq: 4, Skv: 1 << 20}, true, 32768, 32}, // chunks of what fits
		{AttnParams{Hq: 32, Hkv: 4, D: 128, Sq: 3, Skv: 4096}, false, 0, 0},        // 24 rows
	} {
		c.p.Q0, c.p.Causal = c.p.Skv-c.p.Sq, true
		pl, ok := planDecodeSplit(d, c.p)
		if ok != c.ok {
			t.Errorf("%v: attn_decode takes it: %v, want %v", c.p, ok, c.ok)
			continue
		}
		if ok && (pl.kps != c.kps || pl.splits != c.split) {
			t.Errorf("%v: %d keys per split, %d splits; want %d, %d", c.p, pl.kps, pl.splits, c.kps, c.split)
		}
		if ok && (pl.kc > pl.kps || pl.kps%pl.kc != 0 || decSharedBytes(pl.wg, c.p.Sq*c.p.Hq/c.p.Hkv, pl.kc, pl.tpk, pl.rb, c.p.D)+512 > int(d.Caps().MaxSharedMemory)) {
			t.Errorf("%v: plan %+v does not fit shared memory", c.p, pl)
		}
	}
	tb, err := buildTables(opTables, runtime.Caps{}, runtime.Tuning{DecodeAttnScalar: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.ops["decode attention"]; len(got) != 1 || got[0] != "scalar" {
		t.Errorf("DecodeAttnScalar: decode attention variants %v, want [scalar]", got)
	}
}

// decodeCase is a decode attention test case: the heads, head dim and
// queries, the cache and the longest one the grid covers, the output type,
// whether the LSE is written, and the fewest splits the case is there for.
type decodeCase struct {
	hq, hkv, hd, sq int
	skv, maxSkv     int
	dt              runtime.DType
	lse             bool
	minSplits       int
}

// checkDecodeCalls runs the decode kernel d chooses for at (a cache of
// at.Skv keys; DecodeAttentionAt on a grid planned for pmax when the cache
// is shorter) twice against the float64 reference, outputs poisoned, one
// dispatch a call, the scratch's counters zero after each.
func checkDecodeCalls(t *testing.T, d *runtime.Device, rng *rand.Rand, name string, pmax, at AttnParams, dt runtime.DType, withLSE bool) {
	t.Helper()
	in := newAttnInputs(t, d, rng, pmax, 2)
	n, err := DecodeScratchMax(d, pmax)
	if err != nil {
		t.Fatal(err)
	}
	scratch := decodeScratchFor(t, d, at.Hkv, n)
	pos := uploadI32(t, d, []int32{int32(at.Q0)})
	dyn := at
	dyn.Q0, dyn.Skv = 0, at.Sq
	wo, wl := RefAttention(in.q, in.k, in.v, at)
	for call := 0; call < 2; call++ {
		o, lse := attnOut(t, d, at, dt)
		if !withLSE {
			lse = nil
		}
		before := d.Counters()
		if err := d.Run(func(r *runtime.Recorder) error {
			if at.Skv == pmax.Skv {
				return DecodeAttention(r, o, lse, in.tq, in.tk, in.tv, scratch, at)
			}
			return DecodeAttentionAt(r, o, lse, in.tq, in.tk, in.tv, scratch, pos, dyn, pmax.Skv)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := d.Counters().Sub(before).Dispatches; got != 1 {
			t.Errorf("%s: %d dispatches, want 1", name, got)
		}
		checkAttn(t, fmt.Sprintf("%s, call %d", name, call+1), o, lse, wo, wl)
		if n > 0 {
			checkCountersZero(t, name, d, scratch, at.Hkv)
		}
	}
}
