package model

import (
	"context"
	"errors"
	"io/fs"
	"math"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/tokenizer"
)

// Reliability tests: failure paths, resource release and concurrent use of
// one Engine (issue 13).

func storiesParts(t testing.TB) (*Config, *Checkpoint) {
	t.Helper()
	cfg, err := LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return cfg, ck
}

// settleGoroutines waits briefly for goroutines to exit and returns the count.
func settleGoroutines(want int) int {
	n := goruntime.NumGoroutine()
	for i := 0; i < 50 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = goruntime.NumGoroutine()
	}
	return n
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		if math.IsNaN(float64(a[i])) || math.IsNaN(float64(b[i])) {
			return math.Inf(1)
		}
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestEngineOutOfMemoryPlan(t *testing.T) {
	d := gputest.Device(t)
	cfg, ck := storiesParts(t)
	budget := d.MemoryBudget()
	if budget == 0 {
		t.Skip("device reports no heap size")
	}
	// A context whose KV cache alone exceeds the heap.
	perToken := uint64(cfg.NumLayers) * 2 * uint64(cfg.KVDim()) * 2
	ctx := int(budget/perToken) + 1
	before := d.MemoryInUse()
	_, err := NewEngine(d, cfg, ck, EngineOptions{Context: ctx, MaxPrefill: 512})
	if !errors.Is(err, runtime.ErrOutOfDeviceMemory) {
		t.Fatalf("context %d (KV cache > heap %d B): %v; want ErrOutOfDeviceMemory", ctx, budget, err)
	}
	for _, part := range []string{"needs", "KV cache", "has", "shorter context"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q (needed and available bytes, and the fix)", err, part)
		}
	}
	if after := d.MemoryInUse(); after != before {
		t.Errorf("a refused engine left %d bytes allocated (was %d)", after, before)
	}
}

func TestEngineContextFull(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{Context: 16})
	ctx := context.Background()
	long := make([]int, 17)
	for i := range long {
		long[i] = 1 + i
	}
	if _, err := e.Prefill(ctx, long); !errors.Is(err, ErrContextFull) || !strings.Contains(err.Error(), "17") || !strings.Contains(err.Error(), "16") {
		t.Errorf("17 tokens into a 16-token context: %v; want ErrContextFull naming both lengths", err)
	}
	if e.Pos() != 0 {
		t.Errorf("a refused prefill moved the cache to %d", e.Pos())
	}
	if _, err := e.Prefill(ctx, long[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Prefill(ctx, long[:7]); !errors.Is(err, ErrContextFull) {
		t.Errorf("7 tokens after 10 in a 16-token context: %v; want ErrContextFull", err)
	}
	if e.Pos() != 10 {
		t.Errorf("cache at %d after a refused prefill, want 10", e.Pos())
	}
	if _, err := e.Prefill(ctx, long[:6]); err != nil {
		t.Errorf("6 tokens after 10 fill the context exactly: %v", err)
	}
	if _, err := e.Decode(ctx, 5); !errors.Is(err, ErrContextFull) {
		t.Errorf("decode in a full context: %v; want ErrContextFull", err)
	}
	// Generate stops normally when the cache fills up, with the tokens
	// generated until then: the prompt's 10 and 6 fed back fill 16, and
	// the 7th sampled token needs no room.
	e.Reset()
	emitted := 0
	st, err := e.Generate(ctx, long[:10], SampleOptions{MaxTokens: 100}, func(int) error { emitted++; return nil })
	if err != nil || !st.StoppedByContext || st.GeneratedTokens != 7 || emitted != 7 {
		t.Errorf("generating 100 tokens after 10 in a 16-token context: err %v, stopped by context %v, %d tokens (%d emitted); want a normal stop after 7",
			err, st.StoppedByContext, st.GeneratedTokens, emitted)
	}
}

// TestPrefillCancelReleases cancels a prefill between layers: the error wraps
// context.Canceled, the cache stays where it was, no device memory or
// goroutine is left behind, and the engine then gives the same logits as an
// uninterrupted run.
func TestPrefillCancelReleases(t *testing.T) {
	d := gputest.Device(t)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := storiesEngine(t, d, EngineOptions{Context: 128, Progress: func(stage string, done, total int) {
		if stage == "prefill" && done == 2 {
			cancel()
		}
	}})
	prompt := []int{1, 403, 407, 261, 378, 275, 1003 % 512, 42, 7, 300}
	mem := d.MemoryInUse()
	g := settleGoroutines(0)
	_, err := e.Prefill(cctx, prompt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("prefill cancelled after layer 2: %v; want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "layer 2") {
		t.Errorf("cancel error %q does not say where it stopped", err)
	}
	if e.Pos() != 0 {
		t.Errorf("cache at %d after a cancelled prefill, want 0", e.Pos())
	}
	if m := d.MemoryInUse(); m != mem {
		t.Errorf("memory in use %d after the cancelled prefill, was %d", m, mem)
	}
	if n := settleGoroutines(g); n > g {
		t.Errorf("%d goroutines after the cancelled prefill, was %d", n, g)
	}
	// A cancelled context is refused at once.
	if _, err := e.Prefill(cctx, prompt); !errors.Is(err, context.Canceled) {
		t.Errorf("prefill with a cancelled context: %v", err)
	}
	// Usable afterwards, and exact.
	e.opts.Progress = nil
	got, err := e.Prefill(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	ref := storiesEngine(t, d, EngineOptions{Context: 128})
	want, err := ref.Prefill(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	if diff := maxAbsDiff(got, want); diff > 1e-4 {
		t.Errorf("logits after a cancelled prefill differ from a fresh engine's by %g", diff)
	}
	// Cancel during generation.
	gctx, gcancel := context.WithCancel(context.Background())
	n := 0
	e.Reset()
	_, err = e.Generate(gctx, prompt, SampleOptions{MaxTokens: 50}, func(int) error {
		n++
		if n == 3 {
			gcancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("generate cancelled after 3 tokens: %v after %d tokens", err, n)
	}
	if m := d.MemoryInUse(); m > mem {
		t.Errorf("memory in use %d after the cancelled generation, was %d", m, mem)
	}
}

// TestLoadUnloadCycles loads and closes the embedded model 100 times on one
// device: device memory must come back to its baseline and no goroutine may
// be left behind.
func TestLoadUnloadCycles(t *testing.T) {
	d := gputest.Device(t)
	cfg, ck := storiesParts(t)
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	one := func(i int) {
		e, err := NewEngine(d, cfg, ck, EngineOptions{Context: 64})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i%10 == 0 {
			if _, err := e.Prefill(context.Background(), []int{1, 400, 300}); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		e.Close()
	}
	one(-1) // warm-up: pipelines, the first memory block (kept by the device)
	mem := d.MemoryInUse()
	g := settleGoroutines(0)
	for i := 0; i < cycles; i++ {
		one(i)
		if m := d.MemoryInUse(); m != mem {
			t.Fatalf("cycle %d: %d bytes of device memory in use, baseline %d", i, m, mem)
		}
	}
	if n := settleGoroutines(g); n > g {
		t.Errorf("%d goroutines after %d cycles, baseline %d", n, cycles, g)
	}
	t.Logf("%d cycles; device memory %d B, goroutines %d", cycles, mem, g)
}

// TestEngineConcurrentPrefill races Prefill calls on one Engine. An Engine
// serves one call at a time: an overlapping call fails at once with ErrBusy
// and changes nothing. Every call that succeeds must return exactly the
// logits of some serial order, i.e. the KV cache is never corrupted.
func TestEngineConcurrentPrefill(t *testing.T) {
	d := gputest.Device(t)
	const workers, plen = 6, 5
	e := storiesEngine(t, d, EngineOptions{Context: workers * plen})
	prompt := []int{1, 403, 407, 261, 378}
	ctx := context.Background()

	// Reference: the logits after k+1 serial copies of the prompt.
	refs := make([][]float32, workers)
	for k := range refs {
		l, err := e.Prefill(ctx, prompt)
		if err != nil {
			t.Fatal(err)
		}
		refs[k] = append([]float32(nil), l...)
	}

	check := func(t *testing.T, results [][]float32) {
		used := make([]bool, workers)
		for _, got := range results {
			ok := false
			for k, want := range refs {
				if !used[k] && maxAbsDiff(got, want) <= 1e-4 {
					used[k], ok = true, true
					break
				}
			}
			if !ok {
				t.Errorf("a concurrent prefill returned logits that match no serial order (corrupted cache?)")
			}
		}
		if e.Pos() != plen*len(results) {
			t.Errorf("cache at %d after %d successful prefills of %d tokens", e.Pos(), len(results), plen)
		}
	}

	t.Run("race", func(t *testing.T) {
		e.Reset()
		var (
			mu      sync.Mutex
			results [][]float32
			busy    int
			wg      sync.WaitGroup
		)
		start := make(chan struct{})
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := e.Prefill(ctx, prompt)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					results = append(results, append([]float32(nil), l...))
				case errors.Is(err, ErrBusy):
					busy++
				default:
					t.Errorf("concurrent prefill: %v; want success or ErrBusy", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(results) == 0 || len(results)+busy != workers {
			t.Fatalf("%d successes and %d ErrBusy of %d calls", len(results), busy, workers)
		}
		t.Logf("%d succeeded, %d got ErrBusy", len(results), busy)
		check(t, results)
	})

	t.Run("retry", func(t *testing.T) {
		// Callers that retry on ErrBusy all succeed, one after another.
		e.Reset()
		var (
			mu      sync.Mutex
			results [][]float32
			wg      sync.WaitGroup
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					l, err := e.Prefill(ctx, prompt)
					if errors.Is(err, ErrBusy) {
						time.Sleep(time.Millisecond)
						continue
					}
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("prefill: %v", err)
						return
					}
					results = append(results, append([]float32(nil), l...))
					return
				}
			}()
		}
		wg.Wait()
		if len(results) != workers {
			t.Fatalf("%d of %d retrying callers succeeded", len(results), workers)
		}
		check(t, results)
	})
}

// TestEngineConcurrentGenerate: a generation holds the engine for its whole
// length (prefill and every decode step, emit callbacks included), so a call
// made while another generation is between two tokens gets ErrBusy and the
// running generation's tokens are exactly those of a lone greedy run.
func TestEngineConcurrentGenerate(t *testing.T) {
	d := gputest.Device(t)
	e := storiesEngine(t, d, EngineOptions{Context: 128})
	prompt := []int{1, 403, 407, 261, 378}
	ctx := context.Background()
	opts := SampleOptions{MaxTokens: 12}
	var want []int
	if _, err := e.Generate(ctx, prompt, opts, func(id int) error { want = append(want, id); return nil }); err != nil {
		t.Fatal(err)
	}
	e.Reset()
	var got []int
	var intruders []error
	_, err := e.Generate(ctx, prompt, opts, func(id int) error {
		got = append(got, id)
		if len(got)%4 == 1 { // between decode steps, from another goroutine
			done := make(chan error)
			go func() {
				_, err := e.Prefill(ctx, []int{5, 6})
				if err == nil {
					_, err = e.Generate(ctx, []int{7}, SampleOptions{MaxTokens: 2}, func(int) error { return nil })
				}
				done <- err
			}()
			intruders = append(intruders, <-done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, ierr := range intruders {
		if !errors.Is(ierr, ErrBusy) {
			t.Errorf("call %d made during a generation: %v; want ErrBusy", i, ierr)
		}
	}
	if toString(got) != toString(want) {
		t.Errorf("generation with overlapping calls gave %v, alone %v (corrupted cache)", got, want)
	}

	// Racing generations: each gets ErrBusy or runs whole.
	const workers = 4
	var (
		mu   sync.Mutex
		wins [][]int
		busy int
		wg   sync.WaitGroup
	)
	e.Reset()
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var got []int
			_, err := e.Generate(ctx, prompt, opts, func(id int) error { got = append(got, id); return nil })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, got)
			case errors.Is(err, ErrBusy):
				busy++
			default:
				t.Errorf("concurrent generate: %v; want success or ErrBusy", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(wins)+busy != workers || len(wins) == 0 {
		t.Fatalf("%d successes and %d ErrBusy of %d calls", len(wins), busy, workers)
	}
	if toString(wins[0]) != toString(want) {
		t.Errorf("first winning generation %v, alone %v", wins[0], want)
	}
}

func toString(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.Itoa(id))
		b.WriteByte(' ')
	}
	return b.String()
}

var (
	promptTokOnce sync.Once
	promptTok     *tokenizer.Tokenizer
	promptTokErr  error
)

func embeddedTokenizer(t testing.TB) *tokenizer.Tokenizer {
	promptTokOnce.Do(func() {
		data, err := fs.ReadFile(stories260k.FS(), "tokenizer.json")
		if err != nil {
			promptTokErr = err
			return
		}
		cfg, _ := fs.ReadFile(stories260k.FS(), "tokenizer_config.json")
		promptTok, promptTokErr = tokenizer.FromFiles(data, cfg)
	})
	if promptTokErr != nil {
		t.Fatal(promptTokErr)
	}
	return promptTok
}

// FuzzEncodePrompt feeds arbitrary prompts through the embedded model's
// tokenizer the way the CLI does, then keeps the last ctx tokens (a context
// of 1..512): it must never panic, every id must be a valid embedding row
// (what the GPU embed kernel is given), and decoding must not panic either.
func FuzzEncodePrompt(f *testing.F) {
	for _, s := range []string{"Once upon a time", "", " ", "\x00", "\xff\xfe", "<s></s><unk>", "Lily and Ben went to the park.\n\nThe end.",
		strings.Repeat("a", 3000), "日本語 🦙 é\u0301", "\r\n\t  x"} {
		f.Add(s, uint16(128), true)
	}
	f.Fuzz(func(t *testing.T, prompt string, ctx uint16, addSpecial bool) {
		tk := embeddedTokenizer(t)
		const vocab = 512 // stories260K
		ids := tk.Encode(prompt, addSpecial)
		c := 1 + int(ctx)%vocab
		if len(ids) > c {
			ids = ids[len(ids)-c:]
		}
		if len(ids) > c {
			t.Fatalf("truncated to %d tokens for a context of %d", len(ids), c)
		}
		ids32 := make([]int32, len(ids))
		for i, id := range ids {
			ids32[i] = int32(id)
		}
		if err := kernels.ValidateIDs(ids32, vocab); err != nil {
			t.Fatalf("Encode(%q): %v", prompt, err)
		}
		_ = tk.Decode(ids)
		sd := tk.NewStreamDecoder()
		for _, id := range ids {
			_ = sd.Next(id)
		}
		_ = sd.Flush()
	})
}
