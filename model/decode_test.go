package model

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// benchLM8KStructure has the structure of bench-lm-8k (the small model of
// the speed suite: 8 layers, 8 query heads and 2 KV heads of head_dim 64,
// tied embeddings) at a quarter of its width and vocabulary (hidden 128,
// intermediate 352, vocabulary 2048), which records the same commands per
// token and runs faster on lavapipe.
func benchLM8KStructure() *Config {
	return &Config{
		Architecture: ArchLlama, HiddenSize: 128, NumLayers: 8, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 352, VocabSize: 2048, MaxPositionEmbeddings: 16384, RMSNormEps: 1e-5, RopeTheta: 500000,
		TieWordEmbeddings: true, BOSTokenID: 0,
	}
}

// stepCost is what one generated token cost: device counters and the host
// time of the traced recording, submission and wait.
type stepCost struct {
	c                    runtime.Counters
	record, submit, wait time.Duration
}

// generateSteps runs Generate for n tokens after prompt on a traced engine and
// returns the cost of each decode step (tokens 2..n: the first comes from the
// prompt's prefill).
func generateSteps(t *testing.T, e *Engine, prompt []int, n int, opts SampleOptions) []stepCost {
	t.Helper()
	tr := runtime.NewTrace()
	if err := e.SetTrace(tr); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.SetTrace(nil); err != nil {
			t.Fatal(err)
		}
	}()
	var snaps []runtime.Counters
	var evs []int
	opts.MaxTokens = n
	_, err := e.Generate(context.Background(), prompt, opts, func(int) error {
		snaps = append(snaps, e.Device().Counters())
		evs = append(evs, len(tr.Host()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	host := tr.Host()
	var out []stepCost
	for i := 1; i < len(snaps); i++ {
		s := stepCost{c: snaps[i].Sub(snaps[i-1])}
		for _, ev := range host[evs[i-1]:evs[i]] {
			d := ev.End - ev.Start
			switch ev.Kind {
			case "record":
				s.record += d
			case "submit":
				s.submit += d
			case "wait":
				s.wait += d
			}
		}
		out = append(out, s)
	}
	return out
}

// TestDecodeStepCounts counts what one greedy decode step of a model of
// bench-lm-8k's structure records and submits: on a GPU, where every
// dispatch behind a barrier costs a few microseconds, the commands per
// token are the decode path's latency budget, and recording them is host
// time on the critical path. The one-token step is recorded once and
// submitted again for every token of its KV-length bucket; with the general
// kernels (weights the fused mat-vecs do not take) and recorded afresh
// (FreshDecode) it records every token. It logs the host time spent
// recording and waiting.
func TestDecodeStepCounts(t *testing.T) {
	d := gputest.Device(t)
	cfg := benchLM8KStructure()
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	// A prompt long enough that decode attention splits the KV range over
	// several workgroups (as at the benchmark's 4K and 32K contexts).
	prompt := make([]int, 150)
	for i := range prompt {
		prompt[i] = (i*37 + 5) % cfg.VocabSize
	}
	L := uint64(cfg.NumLayers)
	// Per layer, fused: RMSNorm with the q, k and v mat-vecs, RoPE and the
	// KV append in their epilogue (kernels.NormMatVecRopeKV); split-KV
	// attention, its splits merged in the same dispatch
	// (kernels.DecodeAttentionAt: 4 rows, attn_decode); the o-projection
	// with the residual add; RMSNorm with gate, up and SwiGLU; the
	// down-projection with the residual add (5 dispatches, each behind a
	// barrier). General kernels: RMSNorm, q, k and v, RoPE with the KV
	// append, attention, the o-projection, the add, RMSNorm, gate, up,
	// SwiGLU, down, the add (14 dispatches, 11 barriers: q/k/v and gate/up
	// share one). Around the layers: the step's ids and position from the
	// host (a copy) and the embedding; the final RMSNorm fused into the LM
	// head's mat-vec (or, as in prefill, the last row copied out, RMSNorm
	// and the LM head), the argmax and the token's read-back (a copy and a
	// host barrier), and a barrier beginning the batch.
	fused := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 5*L + 2, Copies: 2, Barriers: 1 + 1 + 5*L + 4}
	general := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 14*L + 3, Copies: 3, Barriers: 1 + 1 + 11*L + 6}
	// Matrices too large for the RMSNorm-fused kernels: the general kernels
	// but MatVecAdd for the projections and their residual adds.
	large := runtime.Counters{Submits: 1, Waits: 1, Dispatches: 1 + 12*L + 3, Copies: 3, Barriers: 1 + 1 + 9*L + 6}
	replayed := runtime.Counters{Submits: 1, Waits: 1}
	// Steps one at a time (the pipelined greedy generation: TestDecodeChained).
	e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 256, SyncDecode: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct {
		name   string
		fresh  bool
		fuse   [3]bool // MatVecAdd, the RMSNorm-fused mat-vecs, the fused LM head
		prompt []int
		want   []runtime.Counters // per step, the last repeated
	}{
		{"replayed", false, [3]bool{true, true, true}, prompt, []runtime.Counters{fused, replayed}},
		// One more token after the cache: every step is a decode step.
		{"general kernels, recorded afresh", true, [3]bool{}, []int{7}, []runtime.Counters{general}},
		{"large matrices, recorded afresh", true, [3]bool{true, false, false}, []int{8}, []runtime.Counters{large}},
	} {
		e.opts.FreshDecode = c.fresh
		e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = c.fuse[0], c.fuse[1], c.fuse[2]
		steps := generateSteps(t, e, c.prompt, 4, SampleOptions{})
		for i, s := range steps {
			got, want := s.c, c.want[min(i, len(c.want)-1)]
			t.Logf("%s, step %d: %d dispatches, %d copies, %d barriers, %d submits, %d waits, %d allocations; host: record %v, submit %v, wait %v",
				c.name, i+1, got.Dispatches, got.Copies, got.Barriers, got.Submits, got.Waits, got.Allocs, s.record, s.submit, s.wait)
			got.WaitTime = 0
			// The host's recording calls (TestDispatchRecordingCost in
			// runtime counts them): a replayed step makes none.
			if want.Dispatches == 0 && got.RecordCalls != 0 {
				t.Errorf("%s, step %d: a replayed step made %d recording calls", c.name, i+1, got.RecordCalls)
			}
			got.RecordCalls, got.VulkanCalls, got.SetWrites = 0, 0, 0
			if got != want {
				t.Errorf("%s, step %d: %d dispatches, %d copies, %d barriers, %d submits, %d waits, %d allocations; want %d, %d, %d, %d, %d, 0",
					c.name, i+1, got.Dispatches, got.Copies, got.Barriers, got.Submits, got.Waits, got.Allocs,
					want.Dispatches, want.Copies, want.Barriers, want.Submits, want.Waits)
			}
		}
	}
}

// randomEngine loads TinyConfigs()[name] with random weights (seed 7).
func randomEngine(t *testing.T, d *runtime.Device, name string, opts EngineOptions) *Engine {
	t.Helper()
	cfg, ok := TinyConfigs()[name]
	if !ok {
		t.Fatalf("no tiny config %q", name)
	}
	dir := t.TempDir()
	if err := WriteRandomCheckpoint(dir, cfg, 7); err != nil {
		t.Fatal(err)
	}
	mcfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	return newEngine(t, d, mcfg, ck, opts)
}

// TestDecodeReplay: the replayed one-token decode step gives the same
// tokens (greedy and sampled) and the same logits, bit for bit, as the same
// step recorded afresh for every token, over a generation that crosses
// several KV-length buckets; the host records commands only when the
// bucket changes, and allocates nothing.
func TestDecodeReplay(t *testing.T) {
	d := gputest.Device(t)
	const bucket = 8 // buckets end at 8, 16, 24, …
	type mk func(opts EngineOptions) *Engine
	for name, newEngine := range map[string]mk{
		"stories260K":          func(o EngineOptions) *Engine { return storiesEngine(t, d, o) },
		"random GQA with bias": func(o EngineOptions) *Engine { return randomEngine(t, d, "llama-tied-headdim", o) },
	} {
		t.Run(name, func(t *testing.T) {
			// One step at a time (the pipelined greedy generation: TestDecodeChained).
			opts := EngineOptions{Context: 64, DecodeBucket: bucket, SyncDecode: true}
			replay := newEngine(opts)
			opts.FreshDecode = true
			fresh := newEngine(opts)
			for _, e := range []*Engine{replay, fresh} { // a GPU's kernels, also on CPU devices
				e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = e.decodeFusion(false)
			}
			prompt := []int{1, 30, 41, 22, 5}
			ctx := context.Background()
			for _, so := range []SampleOptions{{MaxTokens: 40}, {MaxTokens: 10, Temperature: 0.9, TopP: 0.95, Seed: 11}} {
				var got, want []int
				var recorded []bool
				var prev runtime.Counters
				if err := replay.Reset(); err != nil {
					t.Fatal(err)
				}
				_, err := replay.Generate(ctx, prompt, so, func(id int) error {
					c := d.Counters()
					if len(got) > 0 {
						s := c.Sub(prev)
						recorded = append(recorded, s.Dispatches > 0)
						if s.Submits != 1 || s.Waits != 1 || s.Allocs != 0 {
							t.Errorf("step %d: %+v; want 1 submit, 1 wait, no allocation", len(got), s)
						}
					}
					prev = c
					got = append(got, id)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := fresh.Reset(); err != nil {
					t.Fatal(err)
				}
				if _, err := fresh.Generate(ctx, prompt, so, func(id int) error { want = append(want, id); return nil }); err != nil {
					t.Fatal(err)
				}
				if toString(got) != toString(want) {
					t.Errorf("temperature %v: replayed %v, recorded afresh %v", so.Temperature, got, want)
				}
				// Step i (1-based) appends token i to a cache of len(prompt)+i-1.
				for i, rec := range recorded {
					skv := len(prompt) + i + 1
					wantRec := i == 0 || replay.decodeBucketEnd(skv) != replay.decodeBucketEnd(skv-1)
					if rec != wantRec {
						t.Errorf("temperature %v: step %d (cache of %d) recorded commands: %v, want %v", so.Temperature, i+1, skv, rec, wantRec)
					}
				}
			}
			// Logits (Decode: the last position's logits to the host).
			tok := 9
			for i := 0; i < 6; i++ {
				a, err := replay.Decode(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				b, err := fresh.Decode(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if j := gputest.FirstBitDiff(a, b); j >= 0 {
					t.Fatalf("decode %d at %d: logit %d replayed %v, recorded afresh %v", i, replay.Pos(), j, a[j], b[j])
				}
				tok = argmax32(a)
			}
		})
	}
}

// TestDecodeReplayErrors: around the replayed step, a bad token, a full
// context and a step cancelled while it runs leave the cache position where
// it was, and the steps after them equal an engine's that saw none of them,
// bit for bit; Close during a generation returns every byte of device
// memory.
func TestDecodeReplayErrors(t *testing.T) {
	d := gputest.Device(t)
	opts := EngineOptions{Context: 24, DecodeBucket: 8}
	ref := storiesEngine(t, d, opts) // sees only the steps that succeed
	mem := d.MemoryInUse()
	e := storiesEngine(t, d, opts)
	ctx := context.Background()
	prompt := []int{1, 403, 407, 261}
	for _, x := range []*Engine{e, ref} {
		if _, err := x.Prefill(ctx, prompt); err != nil {
			t.Fatal(err)
		}
	}
	step := func(tok int) {
		t.Helper()
		a, err := e.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ref.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if i := gputest.FirstBitDiff(a, b); i >= 0 || e.Pos() != ref.Pos() {
			t.Fatalf("at %d (reference at %d): logit %d differs from the reference's", e.Pos(), ref.Pos(), i)
		}
	}
	step(5)
	step(6) // replayed
	pos := e.Pos()
	if _, err := e.Decode(ctx, 100000); err == nil || e.Pos() != pos {
		t.Errorf("decode of token 100000: %v, cache at %d; want an error and the cache at %d", err, e.Pos(), pos)
	}
	step(7)
	// A step cancelled while it runs (when the GPU is fast enough to finish
	// it first, it succeeds and the reference takes it too).
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(2*time.Millisecond, cancel)
	pos = e.Pos()
	if _, err := e.Decode(cctx, 8); err != nil {
		if !errors.Is(err, context.Canceled) || e.Pos() != pos {
			t.Errorf("cancelled decode: %v, cache at %d; want context.Canceled and the cache at %d", err, e.Pos(), pos)
		}
	} else if _, err := ref.Decode(ctx, 8); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := e.Decode(cctx, 8); !errors.Is(err, context.Canceled) {
		t.Errorf("decode with a cancelled context: %v, want context.Canceled", err)
	}
	step(9)
	for e.Pos() < opts.Context {
		step(10 + e.Pos())
	}
	if _, err := e.Decode(ctx, 11); !errors.Is(err, ErrContextFull) || e.Pos() != opts.Context {
		t.Errorf("decode in a full context: %v, cache at %d; want ErrContextFull at %d", err, e.Pos(), opts.Context)
	}

	// Close during a generation: the generation ends with an error, and
	// the engine's memory comes back.
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	_, err := e.Generate(ctx, prompt, SampleOptions{MaxTokens: 15}, func(int) error {
		if e.Pos() == len(prompt)+2 {
			go func() { e.Close(); close(closed) }()
			time.Sleep(10 * time.Millisecond) // Close cancels the call in flight
		}
		return nil
	})
	<-closed
	if err == nil {
		t.Error("generation went on after Close")
	}
	if m := d.MemoryInUse(); m != mem {
		t.Errorf("device memory in use %d after closing the engine, was %d", m, mem)
	}
}

// TestDecodeGeneralKernels: the decode step with the general kernels (what
// weights the fused mat-vecs do not take get), with those of large matrices
// (MatVecAdd, the RMSNorm apart) and with the fused ones agree to f16
// rounding, and with a prefill of the same tokens.
func TestDecodeGeneralKernels(t *testing.T) {
	d := gputest.Device(t)
	opts := EngineOptions{Context: 32}
	fused := randomEngine(t, d, "llama-tied-headdim", opts)
	fused.dec.fuseAdd, fused.dec.fuseNorm, fused.dec.fuseHead = fused.decodeFusion(false) // a GPU's choice, also on CPU devices
	general := randomEngine(t, d, "llama-tied-headdim", opts)
	general.dec.fuseAdd, general.dec.fuseNorm, general.dec.fuseHead = false, false, false
	large := randomEngine(t, d, "llama-tied-headdim", opts) // matrices over normFuseMaxBytes
	large.dec.fuseNorm, large.dec.fuseHead = false, false
	ctx := context.Background()
	toks := []int{1, 7, 30, 12, 50, 3, 44, 9}
	for _, e := range []*Engine{fused, general, large} {
		if _, err := e.Prefill(ctx, toks[:4]); err != nil {
			t.Fatal(err)
		}
	}
	for i, tok := range toks[4:] {
		a, err := fused.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		b, err := general.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if e := gputest.RelErr(a, gputest.F64(b)); e > 5e-3 {
			t.Errorf("step %d: fused and general kernels differ by %.3g (relative)", i, e)
		}
		c, err := large.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if e := gputest.RelErr(a, gputest.F64(c)); e > 5e-3 {
			t.Errorf("step %d: fused kernels and those for large matrices differ by %.3g (relative)", i, e)
		}
		if i == len(toks)-5 {
			// A prefill of every token gives the same last logits.
			p := randomEngine(t, d, "llama-tied-headdim", opts)
			c, err := p.Prefill(ctx, toks)
			if err != nil {
				t.Fatal(err)
			}
			if e := gputest.RelErr(a, gputest.F64(c)); e > 5e-3 {
				t.Errorf("decode and prefill differ by %.3g (relative)", e)
			}
		}
	}
}

// TestDecodeFusionCPU: a CPU device keeps the RMSNorm out of the mat-vecs
// (it would be normalised again in every workgroup, serially), a GPU fuses
// it for small matrices; MatVecAdd is fused on both.
func TestDecodeFusionCPU(t *testing.T) {
	d := gputest.Device(t)
	e := randomEngine(t, d, "llama-tied-headdim", EngineOptions{Context: 32})
	if add, norm, head := e.decodeFusion(false); !add || !norm || !head {
		t.Errorf("GPU: fused add, norm, head = %v, %v, %v; want all true", add, norm, head)
	}
	if add, norm, head := e.decodeFusion(true); !add || norm || head {
		t.Errorf("CPU: fused add, norm, head = %v, %v, %v; want true, false, false", add, norm, head)
	}
	cpu := d.Info().Type == runtime.TypeCPU
	if _, norm, head := e.decodeFusion(cpu); e.dec.fuseNorm != norm || e.dec.fuseHead != head {
		t.Errorf("engine on a %v device: fused norm, head = %v, %v; want %v, %v", d.Info().Type, e.dec.fuseNorm, e.dec.fuseHead, norm, head)
	}
}

// TestDecodeChained: greedy generation with two steps in flight gives the
// same tokens, stop reasons and cache position as one step at a time
// (SyncDecode), over generations that cross KV-length buckets, stop on a
// stop id, on MaxTokens and at the end of the context, and are cancelled;
// a generation after each gives the same tokens too (the step queued past
// a stop writes the cache only where the next call overwrites it). While
// the host reads a token, the step after it is already submitted: one
// submission more than host waits, one of each per token, and a recording
// only when a step's bucket changes (twice per bucket: the two steps are
// two recordings).
func TestDecodeChained(t *testing.T) {
	d := gputest.Device(t)
	const bucket = 8
	for name, newEngine := range map[string]func(opts EngineOptions) *Engine{
		"stories260K":          func(o EngineOptions) *Engine { return storiesEngine(t, d, o) },
		"random GQA with bias": func(o EngineOptions) *Engine { return randomEngine(t, d, "llama-tied-headdim", o) },
	} {
		t.Run(name, func(t *testing.T) {
			opts := EngineOptions{Context: 48, DecodeBucket: bucket}
			chained := newEngine(opts)
			opts.SyncDecode = true
			sync := newEngine(opts)
			for _, e := range []*Engine{chained, sync} { // a GPU's kernels, also on CPU devices
				e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = e.decodeFusion(false)
			}
			ctx := context.Background()
			prompt := []int{1, 30, 41, 22, 5}
			type run struct {
				ids []int
				st  GenStats
				pos int
			}
			gen := func(e *Engine, ctx context.Context, prompt []int, so SampleOptions, each func(i int)) (run, error) {
				var r run
				st, err := e.Generate(ctx, prompt, so, func(id int) error {
					r.ids = append(r.ids, id)
					if each != nil {
						each(len(r.ids) - 1)
					}
					return nil
				})
				r.st, r.pos = st, e.Pos()
				return r, err
			}
			same := func(what string, a, b run) {
				t.Helper()
				if toString(a.ids) != toString(b.ids) || a.pos != b.pos || a.st.StoppedByStop != b.st.StoppedByStop ||
					a.st.StoppedByContext != b.st.StoppedByContext || a.st.GeneratedTokens != b.st.GeneratedTokens {
					t.Errorf("%s: chained %v (cache %d, stop %v, context %v, %d tokens), one at a time %v (cache %d, stop %v, context %v, %d tokens)",
						what, a.ids, a.pos, a.st.StoppedByStop, a.st.StoppedByContext, a.st.GeneratedTokens,
						b.ids, b.pos, b.st.StoppedByStop, b.st.StoppedByContext, b.st.GeneratedTokens)
				}
			}
			both := func(what string, prompt []int, so SampleOptions, reset bool) run {
				t.Helper()
				var out [2]run
				for i, e := range []*Engine{chained, sync} {
					if reset {
						if err := e.Reset(); err != nil {
							t.Fatal(err)
						}
					}
					r, err := gen(e, ctx, prompt, so, nil)
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					out[i] = r
				}
				same(what, out[0], out[1])
				return out[0]
			}

			// A long generation: counts per token, recordings per bucket.
			if err := chained.Reset(); err != nil {
				t.Fatal(err)
			}
			const n = 30
			var snaps []runtime.Counters
			c0 := d.Counters()
			long, err := gen(chained, ctx, prompt, SampleOptions{MaxTokens: n}, func(int) { snaps = append(snaps, d.Counters().Sub(c0)) })
			if err != nil {
				t.Fatal(err)
			}
			if err := sync.Reset(); err != nil {
				t.Fatal(err)
			}
			ref, err := gen(sync, ctx, prompt, SampleOptions{MaxTokens: n}, nil)
			if err != nil {
				t.Fatal(err)
			}
			same("30 tokens", long, ref)
			if len(snaps) != n {
				t.Fatalf("%d tokens emitted, want %d", len(snaps), n)
			}
			// snaps[0] follows the prompt's step; token i ≥ 1 is read after
			// i decode steps were waited for, and i+1 submitted (but the
			// last, which needs no step after it).
			for i := 1; i < n; i++ {
				c := snaps[i].Sub(snaps[0])
				wantSub := uint64(min(i+1, n-1))
				if c.Submits != wantSub || c.Waits != uint64(i) || c.Allocs != 0 {
					t.Errorf("token %d: %d submits, %d host waits, %d allocations since the prompt; want %d, %d, 0", i, c.Submits, c.Waits, c.Allocs, wantSub, i)
				}
			}
			// Recordings: each of the two steps once per bucket it serves.
			// Step j (j ≥ 1) appends token j-1 at len(prompt)+j-1, so its
			// cache holds len(prompt)+j tokens.
			var recs int
			for i := 1; i < n; i++ {
				if snaps[i].Sub(snaps[i-1]).Dispatches > 0 {
					recs++
				}
			}
			want := 0
			for s := range 2 {
				var last int
				for j := 1 + s; j <= n-1; j += 2 {
					if b := chained.decodeBucketEnd(len(prompt) + j); b != last {
						want, last = want+1, b
					}
				}
			}
			// Two recordings can fall between the same two tokens (the first
			// two steps are both submitted before token 1 is read).
			if recs > want || recs < want-1 {
				t.Errorf("%d tokens with recordings, want %d (or %d)", recs, want, want-1)
			}

			// A stop id in the middle, then a continuation.
			stop := long.ids[7]
			r := both("stop id", prompt, SampleOptions{MaxTokens: n, StopIDs: []int{stop}}, true)
			if !r.st.StoppedByStop {
				t.Errorf("stop id %d: generation did not stop on it (%v)", stop, r.ids)
			}
			both("after a stop", []int{3, 17}, SampleOptions{MaxTokens: 6}, false)
			// MaxTokens 1, 2 and 3.
			for m := 1; m <= 3; m++ {
				both(fmt.Sprintf("MaxTokens %d", m), prompt, SampleOptions{MaxTokens: m}, true)
				both(fmt.Sprintf("after MaxTokens %d", m), []int{9}, SampleOptions{MaxTokens: 3}, false)
			}
			// The end of the context.
			r = both("to the end of the context", prompt, SampleOptions{MaxTokens: 100}, true)
			if !r.st.StoppedByContext || r.pos != opts.Context {
				t.Errorf("to the end of the context: stopped by context %v, cache at %d; want true at %d", r.st.StoppedByContext, r.pos, opts.Context)
			}

			// Cancelled from emit: the cache holds what was read, and the
			// engine goes on as one that stopped there.
			for _, e := range []*Engine{chained, sync} {
				if err := e.Reset(); err != nil {
					t.Fatal(err)
				}
			}
			cctx, cancel := context.WithCancel(ctx)
			cut, err := gen(chained, cctx, prompt, SampleOptions{MaxTokens: n}, func(i int) {
				if i == 5 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) || len(cut.ids) != 6 || cut.pos != len(prompt)+5 {
				t.Fatalf("cancelled at token 5: %v, %d tokens, cache at %d; want context.Canceled, 6 tokens, cache at %d", err, len(cut.ids), cut.pos, len(prompt)+5)
			}
			if _, err := gen(sync, ctx, prompt, SampleOptions{MaxTokens: 6}, nil); err != nil {
				t.Fatal(err)
			}
			both("after a cancel", []int{cut.ids[5], 4}, SampleOptions{MaxTokens: 5}, false)
		})
	}
}

// TestDecodeSplitKVTokens: greedy generation with each one-dispatch
// split-KV decode attention (attn_decode2, the default where it applies, and
// attn_decode, runtime.Tuning.DecodeAttnSplitKV1) gives the same tokens as
// with the scalar reference kernel and its separate reduction
// (runtime.Tuning.DecodeAttnScalar), pipelined and one step at a time, over
// a prompt whose cache the attention splits, and one dispatch fewer per
// layer; a last decode step's logits agree to rounding, and both split-KV
// kernels take as many dispatches.
func TestDecodeSplitKVTokens(t *testing.T) {
	devs := []*runtime.Device{
		gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{DecodeAttnScalar: true}}),
		gputest.Device(t),
		gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{DecodeAttnSplitKV1: true}}),
	}
	names := []string{"scalar", "attn_decode2", "attn_decode"}
	cfg := benchLM8KStructure()
	ck := checkpointOf(t, randomTensors(t, cfg, F16))
	prompt := make([]int, 150)
	for i := range prompt {
		prompt[i] = (i*37 + 5) % cfg.VocabSize
	}
	ctx := context.Background()
	const n = 10
	for _, sync := range []bool{false, true} {
		var toks [3][]int
		var logits [3][]float32
		var dispatches [3]uint64
		for i, d := range devs {
			e := newEngine(t, d, cfg, ck, EngineOptions{Context: 256, SyncDecode: sync})
			before := d.Counters()
			_, err := e.Generate(ctx, prompt, SampleOptions{MaxTokens: n}, func(id int) error {
				toks[i] = append(toks[i], id)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			dispatches[i] = d.Counters().Sub(before).Dispatches
			if logits[i], err = e.Decode(ctx, toks[i][len(toks[i])-1]); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i < len(devs); i++ {
			if toString(toks[i]) != toString(toks[0]) {
				t.Errorf("sync %v: %s %v, scalar kernel %v", sync, names[i], toks[i], toks[0])
			}
			if e := gputest.RelErr(logits[i], gputest.F64(logits[0])); !(e <= 1e-3) {
				t.Errorf("sync %v: %s's last logits differ from the scalar kernel's by %.3g (relative)", sync, names[i], e)
			}
			// The replayed steps record once (or once per chain stage): the
			// difference is a recording's, one dispatch per layer each.
			if diff := dispatches[0] - dispatches[i]; dispatches[0] <= dispatches[i] || diff%uint64(cfg.NumLayers) != 0 {
				t.Errorf("sync %v: %d dispatches with %s, %d with the scalar kernel: want fewer by a multiple of %d layers",
					sync, dispatches[i], names[i], dispatches[0], cfg.NumLayers)
			}
		}
		if devs[1].Info().SubgroupShuffle && dispatches[1] != dispatches[2] {
			t.Errorf("sync %v: %d dispatches with attn_decode2, %d with attn_decode: want as many", sync, dispatches[1], dispatches[2])
		}
	}
}
