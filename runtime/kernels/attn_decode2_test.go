package kernels

import (
	"fmt"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// splitKV2Device opens a device whose decode attention takes attn_decode2
// (the default), skipping where it has no subgroup shuffles.
func splitKV2Device(t *testing.T) *runtime.Device {
	t.Helper()
	d := gputest.Open(t, runtime.Options{})
	if !d.Info().SubgroupShuffle {
		t.Skip("no subgroup shuffles: attn_decode2 does not run here")
	}
	return d
}

// TestDecodeSplitKV2: by default, DecodeAttention and
// DecodeAttentionAt take attn_decode2 (one dispatch) and match the float64
// reference at awkward sizes: G = 1, 4 and 8, D = 8 to 128 (one lane per
// key to a whole subgroup, clusters smaller than a subgroup, five 16-byte
// pieces a lane), caches of one key, shorter than a split, not a multiple
// of anything, splits past the cache's end, Sq > 1 (causal rows of
// different lengths), outputs and partial results poisoned, each call
// twice on the same scratch.
func TestDecodeSplitKV2(t *testing.T) {
	d := splitKV2Device(t)
	rng := gputest.Rand(t)
	for _, c := range []decodeCase{
		{8, 2, 64, 1, 1000, 1000, runtime.F32, true, 2},   // bench-lm-8k's heads
		{32, 8, 128, 1, 777, 777, runtime.F16, true, 2},   // the 8B model's heads
		{8, 8, 64, 1, 45, 45, runtime.F32, true, 1},       // G = 1, one split
		{16, 2, 64, 1, 1000, 4096, runtime.F16, false, 2}, // G = 8, splits past the end
		{8, 2, 64, 2, 200, 1100, runtime.F32, true, 2},    // 2 queries: 8 rows
		{4, 1, 32, 2, 333, 333, runtime.F32, true, 1},     // clusters narrower than a subgroup
		{3, 3, 80, 1, 301, 301, runtime.F32, true, 1},     // D/8 = 10: 2 lanes a key, 5 pieces each
		{2, 1, 8, 4, 9000, 9000, runtime.F32, true, 2},    // D = 8: a lane a key, many splits
		{6, 2, 64, 1, 1, 512, runtime.F32, true, 1},       // a cache of one key
		{4, 4, 64, 2, 2, 200, runtime.F16, true, 1},       // the queries' own keys only
	} {
		pmax := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.maxSkv, Q0: c.maxSkv - c.sq, Causal: true}
		at := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.skv, Q0: c.skv - c.sq, Causal: true}
		name := fmt.Sprintf("%v (grid for %d) out=%s", at, c.maxSkv, c.dt)
		pl, err := attnPlanDecode(d, pmax)
		if err != nil {
			t.Fatal(err)
		}
		if !pl.two {
			t.Fatalf("%s: plan %+v is not attn_decode2's", name, pl)
		}
		if pl.splits < c.minSplits {
			t.Fatalf("%s: %d splits, the case is there for at least %d", name, pl.splits, c.minSplits)
		}
		checkDecodeCalls(t, d, rng, name, pmax, at, c.dt, c.lse)
	}
}

// TestDecodeSplitKV2Plans: attn_decode2 under plans the planner does not
// pick on this device — splits shorter than a batch of keys (most lanes
// past the split's end), hundreds of splits (each merge thread several
// rounds of loads), more output vec4s than invocations (R·D/4 > 128), one
// key per cluster and batch, narrower clusters — matches the float64
// reference, non-causal too.
func TestDecodeSplitKV2Plans(t *testing.T) {
	d := splitKV2Device(t)
	rng := gputest.Rand(t)
	sg := int(d.Caps().SubgroupSize)
	for _, c := range []struct {
		hq, hkv, hd, sq, skv int
		causal               bool
		lanes, unroll, kps   int
	}{
		{1, 1, 64, 1, 2000, true, 0, 0, 8},      // 250 splits of 8 keys
		{8, 1, 128, 1, 300, true, 0, 1, 64},     // 8 rows × 32 vec4s
		{4, 2, 64, 2, 150, true, 2, 2, 32},      // 2 lanes a key
		{4, 1, 64, 2, 150, false, 0, 3, 128},    // every key for every query
		{8, 2, 64, 1, 700, true, 1, 1, 700},     // one split, one lane a key
		{2, 2, 16, 1, 5, true, 0, 0, 1},         // one key a split
		{16, 1, 64, 1, 513, true, 0, 2, 1 << 9}, // 16 rows, 2 splits
	} {
		p := AttnParams{Hq: c.hq, Hkv: c.hkv, D: c.hd, Sq: c.sq, Skv: c.skv, Q0: c.skv - c.sq, Causal: c.causal}
		if !c.causal {
			p.Q0 = 3
		}
		g := c.hq / c.hkv
		lanes := c.lanes
		if lanes == 0 {
			lanes = dec2Lanes(c.hd, sg)
		}
		if lanes > sg || (c.hd/8)%lanes != 0 {
			t.Fatalf("%v: %d lanes a key do not fit subgroups of %d", p, lanes, sg)
		}
		unroll := c.unroll
		if unroll == 0 {
			unroll = 4
		}
		wg := max(decWG, sg)
		rows := c.sq * g
		rb := rows
		for rb > 1 && dec2SharedBytes(wg, wg/sg, rows, rb, c.hd)+512 > int(d.Caps().MaxSharedMemory) {
			rb--
		}
		kend := c.skv
		if c.causal {
			kend = min(c.skv, p.Q0+c.sq)
		}
		pl := attnDecodePlan{one: true, two: true, wg: wg, kps: c.kps, kc: c.kps, rb: rb, lanes: lanes, unroll: unroll, splits: (kend + c.kps - 1) / c.kps}
		name := fmt.Sprintf("%v plan %+v", p, pl)
		in := newAttnInputs(t, d, rng, p, 0)
		scratch := decodeScratchFor(t, d, c.hkv, pl.scratchLen(d, p))
		wo, wl := RefAttention(in.q, in.k, in.v, p)
		o, lse := attnOut(t, d, p, runtime.F32)
		if err := d.Run(func(r *runtime.Recorder) error {
			return decodeAttention(r, o, lse, in.tq, in.tk, in.tv, scratch, nil, p, pl)
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkAttn(t, name, o, lse, wo, wl)
		if pl.splits > 1 {
			checkCountersZero(t, name, d, scratch, c.hkv)
		}
	}
}

// TestPlanDecodeSplit2: attn_decode2's plan at the shapes it is for, and
// where it gives way to attn_decode: too many rows for its registers, a
// head dim that is not a multiple of 8, more than decMaxRows rows; and the
// variant table keeps splitkv2 only with the tuning.
func TestPlanDecodeSplit2(t *testing.T) {
	d := splitKV2Device(t)
	sg := int(d.Caps().SubgroupSize)
	for _, c := range []struct {
		p  AttnParams
		ok bool
	}{
		{AttnParams{Hq: 8, Hkv: 2, D: 64, Sq: 1, Skv: 5700}, true},
		{AttnParams{Hq: 32, Hkv: 8, D: 128, Sq: 1, Skv: 4600}, true},
		{AttnParams{Hq: 32, Hkv: 8, D: 128, Sq: 1, Skv: 1}, true},
		{AttnParams{Hq: 64, Hkv: 4, D: 128, Sq: 1, Skv: 4096}, false}, // 16 rows × D/T floats
		{AttnParams{Hq: 8, Hkv: 2, D: 36, Sq: 1, Skv: 4096}, false},   // D % 8 != 0
		{AttnParams{Hq: 32, Hkv: 4, D: 8, Sq: 3, Skv: 4096}, false},   // 24 rows
	} {
		c.p.Q0, c.p.Causal = c.p.Skv-c.p.Sq, true
		pl, ok := planDecodeSplit2(d, c.p)
		if ok != c.ok {
			t.Errorf("%v: attn_decode2 takes it: %v, want %v", c.p, ok, c.ok)
			continue
		}
		if !ok {
			if def, err := attnPlanDecode(d, c.p); err != nil || def.two {
				t.Errorf("%v: the device's plan %+v (%v), want another kernel's", c.p, def, err)
			}
			continue
		}
		rows := c.p.Sq * c.p.Hq / c.p.Hkv
		ng := pl.wg / pl.lanes
		switch {
		case pl.lanes > sg || pl.lanes < 1 || (c.p.D/8)%pl.lanes != 0:
			t.Errorf("%v: %d lanes a key on subgroups of %d", c.p, pl.lanes, sg)
		case rows*c.p.D/pl.lanes > dec2MaxRegs || pl.unroll*c.p.D/(8*pl.lanes) > dec2MaxLoads:
			t.Errorf("%v: plan %+v over the register bounds", c.p, pl)
		case pl.kps < 2*ng*pl.unroll || pl.kps&(pl.kps-1) != 0:
			t.Errorf("%v: %d keys a split, want a power of two of at least two batches (%d keys)", c.p, pl.kps, 2*ng*pl.unroll)
		case pl.splits*pl.kps < c.p.Skv || (pl.splits-1)*pl.kps >= c.p.Skv:
			t.Errorf("%v: %d splits of %d keys", c.p, pl.splits, pl.kps)
		case dec2SharedBytes(pl.wg, pl.wg/sg, rows, pl.rb, c.p.D)+512 > int(d.Caps().MaxSharedMemory):
			t.Errorf("%v: plan %+v does not fit shared memory", c.p, pl)
		case pl.splits > 1 && pl.splits*c.p.Hkv > decTargetGroups:
			t.Errorf("%v: %d splits × %d KV heads, want at most %d workgroups", c.p, pl.splits, c.p.Hkv, decTargetGroups)
		}
	}
	for _, tu := range []runtime.Tuning{{}, {DecodeAttnScalar: true}, {DecodeAttnSplitKV1: true}} {
		tb, err := buildTables(opTables, runtime.Caps{}, tu)
		if err != nil {
			t.Fatal(err)
		}
		got := tb.ops["decode attention"]
		want := []string{"splitkv2", "splitkv", "scalar"}
		switch {
		case tu.DecodeAttnScalar:
			want = want[2:]
		case tu.DecodeAttnSplitKV1:
			want = want[1:]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tuning %+v: decode attention variants %v, want %v", tu, got, want)
		}
	}
}
