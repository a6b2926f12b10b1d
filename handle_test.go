package shareprefill_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/share"
	sgpu "github.com/shareprefill/shareprefill/share/gpu"
)

// storyIDs are the ids of a prompt of about n tokens of the embedded model.
func storyIDs(t *testing.T, m *shareprefill.Model, n int) []int {
	t.Helper()
	ids, err := m.Encode(strings.Repeat("Once upon a time there was a cat. ", n/8+1), false, "")
	if err != nil {
		t.Fatal(err)
	}
	return ids[:n]
}

// argmax is the most likely id.
func argmax(logits []float32) int { return slices.Index(logits, slices.Max(logits)) }

// call is one call on a Model that takes part in the lifecycle (one call at
// a time, ErrClosed after Close, Close cancels it).
type call struct {
	name string
	run  func(context.Context, *shareprefill.Model) error
}

// calls are every such method, each on a small valid input.
func calls() []call {
	ids := []int{1, 403, 407, 261, 378, 437, 385}
	return []call{
		{"Generate", func(ctx context.Context, m *shareprefill.Model) error {
			_, err := m.Generate(ctx, "Lily", shareprefill.GenerateOptions{MaxTokens: 2}, func(string) error { return nil })
			return err
		}},
		{"GenerateTokens", func(ctx context.Context, m *shareprefill.Model) error {
			_, err := m.GenerateTokens(ctx, ids, model.SampleOptions{MaxTokens: 2}, func(int) error { return nil })
			return err
		}},
		{"Prefill", func(ctx context.Context, m *shareprefill.Model) error {
			_, err := m.Prefill(ctx, ids)
			return err
		}},
		{"PrefillAll", func(ctx context.Context, m *shareprefill.Model) error {
			return m.PrefillAll(ctx, ids, func(int, []float32) {})
		}},
		{"NLL", func(ctx context.Context, m *shareprefill.Model) error {
			_, err := m.NLL(ctx, ids)
			return err
		}},
		{"Reset", func(_ context.Context, m *shareprefill.Model) error { return m.Reset() }},
		{"SetTrace", func(_ context.Context, m *shareprefill.Model) error { return m.SetTrace(nil) }},
		{"SetAttention", func(_ context.Context, m *shareprefill.Model) error { return m.SetAttention(nil) }},
	}
}

// TestLifecycleAfterClose: after Close every call returns ErrClosed; the
// accessors still answer.
func TestLifecycleAfterClose(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{})
	m.Close()
	for _, c := range calls() {
		if err := c.run(context.Background(), m); !errors.Is(err, shareprefill.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
		}
	}
	if m.Tokenizer() == nil || m.Config().NumLayers != 5 || m.Context() != 512 || m.Pos() != 0 || m.Device() == nil {
		t.Errorf("accessors after Close: tokenizer %v, config %+v, context %d, pos %d", m.Tokenizer(), m.Config(), m.Context(), m.Pos())
	}
}

// TestLifecycleBusy: every call made while another call runs (from the
// running Generate's callback) returns ErrBusy and changes nothing.
func TestLifecycleBusy(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{Attention: share.KindShare})
	errs := map[string]error{}
	var text strings.Builder
	_, err := m.Generate(context.Background(), "Once upon a time", shareprefill.GenerateOptions{MaxTokens: 10},
		func(s string) error {
			if len(errs) == 0 {
				for _, c := range calls() {
					errs[c.name] = c.run(context.Background(), m)
				}
			}
			text.WriteString(s)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls() {
		if !errors.Is(errs[c.name], shareprefill.ErrBusy) {
			t.Errorf("%s during Generate: %v, want ErrBusy", c.name, errs[c.name])
		}
	}
	if !strings.HasPrefix(text.String(), ", there was a little") {
		t.Errorf("the running call's text changed: %q", text.String())
	}
	if b, _ := m.AttentionJSON(); b == nil {
		t.Error("a SetAttention refused as busy still removed the sparse attention")
	}
}

// blockingAttention is dense attention whose Begin waits for release, so
// that a test can act while a prefill is in flight.
type blockingAttention struct {
	model.DenseAttention
	started chan struct{}
	release chan struct{}
}

func (b *blockingAttention) Begin(*model.Engine, int, int) error {
	close(b.started)
	<-b.release
	return nil
}

// TestLifecycleCloseCancels: Close during a prefill of Prefill, PrefillAll,
// NLL or GenerateTokens cancels it (context.Canceled, returned after Close
// was called) and waits for it.
func TestLifecycleCloseCancels(t *testing.T) {
	for _, c := range calls() {
		switch c.name {
		case "Reset", "SetTrace", "SetAttention", "Generate":
			continue // no prefill to cancel (Generate: TestCloseDuringGenerate)
		}
		t.Run(c.name, func(t *testing.T) {
			m := openEmbedded(t, shareprefill.Options{})
			ba := &blockingAttention{started: make(chan struct{}), release: make(chan struct{})}
			if err := m.SetAttention(ba); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.run(context.Background(), m) }()
			<-ba.started
			closed := make(chan struct{})
			go func() { m.Close(); close(closed) }()
			// Close has cancelled the call once other calls see ErrClosed.
			for !errors.Is(m.Reset(), shareprefill.ErrClosed) {
				time.Sleep(time.Millisecond)
			}
			select {
			case <-closed:
				t.Fatal("Close returned while the call was in flight")
			default:
			}
			close(ba.release)
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s interrupted by Close: %v, want context.Canceled", c.name, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s did not return after Close", c.name)
			}
			<-closed
		})
	}
}

// TestLifecycleRaceWithClose runs each call in a loop against a concurrent
// Close, with the accessors and the statistics read alongside (run it with
// -race): every call returns nil, ErrClosed, context.Canceled or (once the
// loop has filled the cache) model.ErrContextFull, and the loop ends with
// ErrClosed.
func TestLifecycleRaceWithClose(t *testing.T) {
	for _, c := range calls() {
		t.Run(c.name, func(t *testing.T) {
			m := openEmbedded(t, shareprefill.Options{Attention: share.KindShare})
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = m.AttentionJSON()
					_ = m.AttentionSummary()
					_, _, _ = m.Pos(), m.Context(), m.Config()
				}
			})
			first := make(chan struct{})
			var once sync.Once
			var last error
			wg.Go(func() {
				for i := 0; ; i++ {
					err := c.run(context.Background(), m)
					once.Do(func() { close(first) })
					if err != nil && !errors.Is(err, shareprefill.ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, model.ErrContextFull) {
						t.Errorf("%s call %d: %v", c.name, i, err)
					}
					if errors.Is(err, shareprefill.ErrClosed) || i == 1e6 {
						last = err
						return
					}
				}
			})
			<-first
			m.Close()
			close(stop)
			wg.Wait()
			if !errors.Is(last, shareprefill.ErrClosed) {
				t.Errorf("%s: the loop ended with %v, want ErrClosed", c.name, last)
			}
		})
	}
}

// TestPrefillDecodeReset: Prefill appends to the cache and its logits are
// those Generate samples from (greedy); one id is a decode step; Reset
// empties the cache.
func TestPrefillDecodeReset(t *testing.T) {
	ctx := context.Background()
	m := openEmbedded(t, shareprefill.Options{})
	ids, _ := m.Encode("Once upon a time", false, "")
	logits, err := m.Prefill(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(logits) != m.Config().VocabSize || m.Pos() != len(ids) {
		t.Fatalf("%d logits, pos %d; want %d and %d", len(logits), m.Pos(), m.Config().VocabSize, len(ids))
	}
	var got []int
	for range 4 {
		id := argmax(logits)
		got = append(got, id)
		if logits, err = m.Prefill(ctx, []int{id}); err != nil {
			t.Fatal(err)
		}
	}
	if s := m.Tokenizer().Decode(got); s != ", there was a" {
		t.Errorf("greedy continuation %q, want %q", s, ", there was a")
	}
	if m.Pos() != len(ids)+4 {
		t.Errorf("pos %d after %d prompt ids and 4 decode steps", m.Pos(), len(ids))
	}
	if err := m.Reset(); err != nil || m.Pos() != 0 {
		t.Errorf("Reset: %v, pos %d", err, m.Pos())
	}
	// The same prompt after Reset gives the same logits.
	again, err := m.Prefill(ctx, ids)
	if err != nil || argmax(again) != got[0] {
		t.Errorf("after Reset: argmax %d, %v; want %d", argmax(again), err, got[0])
	}
	// Errors: too long for the context, an id outside the vocabulary.
	if _, err := m.Prefill(ctx, make([]int, m.Context())); !errors.Is(err, model.ErrContextFull) {
		t.Errorf("a prompt past the context: %v, want ErrContextFull", err)
	}
	if _, err := m.Prefill(ctx, []int{m.Config().VocabSize}); err == nil || !strings.Contains(err.Error(), "512") {
		t.Errorf("id %d: %v, want an error naming it", m.Config().VocabSize, err)
	}
}

// TestPrefillAllAndNLL: PrefillAll reports every position's logits, the
// last equal to Prefill's; NLL is their mean negative log-likelihood and
// starts from an empty cache.
func TestPrefillAllAndNLL(t *testing.T) {
	ctx := context.Background()
	m := openEmbedded(t, shareprefill.Options{})
	ids := storyIDs(t, m, 40)
	last, err := m.Prefill(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	var sum float64
	var positions []int
	err = m.PrefillAll(ctx, ids, func(pos int, logits []float32) {
		positions = append(positions, pos)
		if pos+1 < len(ids) {
			sum -= model.LogProb(logits, ids[pos+1])
		}
		if pos == len(ids)-1 {
			if !slices.EqualFunc(logits, last, func(x, y float32) bool { return math.Abs(float64(x-y)) <= 1e-3 }) {
				t.Error("the last position's logits differ from Prefill's")
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(positions) != len(ids) || positions[0] != 0 || !slices.IsSorted(positions) {
		t.Fatalf("positions %v", positions)
	}
	want := sum / float64(len(ids)-1)
	// NLL starts over: the cache holding ids already does not matter.
	nll, err := m.NLL(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(nll-want) > 1e-4 || !(nll > 0) {
		t.Errorf("NLL %v, want %v", nll, want)
	}
	if m.Pos() != len(ids) {
		t.Errorf("pos %d after NLL of %d ids", m.Pos(), len(ids))
	}
	if _, err := m.NLL(ctx, ids[:1]); err == nil {
		t.Error("NLL of one id succeeded")
	}
}

// TestGenerateTokens: greedy GenerateTokens gives Generate's text, stops at
// the caller's stop ids only, and continues after the cache.
func TestGenerateTokens(t *testing.T) {
	ctx := context.Background()
	m := openEmbedded(t, shareprefill.Options{})
	ids, _ := m.Encode("Once upon a time", false, "")
	var got []int
	st, err := m.GenerateTokens(ctx, ids, model.SampleOptions{MaxTokens: 6}, func(id int) error { got = append(got, id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Tokenizer().Decode(got); s != ", there was a little g" || st.GeneratedTokens != 6 || st.PromptTokens != len(ids) {
		t.Errorf("generated %q, stats %+v", s, st.GenStats)
	}
	// Without Reset it continues after the cache; a stop id ends it.
	var more []int
	st, err = m.GenerateTokens(ctx, got[len(got)-1:], model.SampleOptions{MaxTokens: 20, StopIDs: []int{got[2]}},
		func(id int) error { more = append(more, id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(more) == 0 || !st.StoppedByStop && len(more) < 20 {
		t.Errorf("continued with %v, stats %+v", more, st.GenStats)
	}
	if m.Pos() <= len(ids)+6 {
		t.Errorf("pos %d: the second call did not continue after the first", m.Pos())
	}
	if _, err := m.GenerateTokens(ctx, ids, model.SampleOptions{Temperature: -1}, func(int) error { return nil }); err == nil {
		t.Error("a negative temperature was accepted")
	}
}

// TestPrefillRecordsAttention: after Prefill, AttentionJSON describes that
// prefill, also when it is read only after later calls began (the
// statistics are recorded by the next call, not on the timed path).
func TestPrefillRecordsAttention(t *testing.T) {
	ctx := context.Background()
	m := openEmbedded(t, shareprefill.Options{Attention: share.KindShare})
	for _, n := range []int{200, 150} {
		ids := storyIDs(t, m, n)
		if err := m.Reset(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Prefill(ctx, ids); err != nil {
			t.Fatal(err)
		}
		var st share.Stats
		b, err := m.AttentionJSON()
		if err != nil || json.Unmarshal(b, &st) != nil || st.N != n {
			t.Fatalf("after a prefill of %d: statistics of n = %d (%v), want %d", n, st.N, err, n)
		}
		if !strings.Contains(m.AttentionSummary(), "shareprefill") {
			t.Errorf("summary %q", m.AttentionSummary())
		}
	}
	// Recorded by the next call: a decode step keeps the prompt's.
	if _, err := m.Prefill(ctx, []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	var st share.Stats
	if b, _ := m.AttentionJSON(); json.Unmarshal(b, &st) != nil || st.N != 150 {
		t.Errorf("after a decode step: statistics of n = %d, want the prompt's 150", st.N)
	}
}

// TestSetAttention: the hook takes a model.Attention; a *share/gpu.Attention
// reports its statistics, any other none; nil restores dense attention.
func TestSetAttention(t *testing.T) {
	ctx := context.Background()
	m := openEmbedded(t, shareprefill.Options{Attention: share.KindFlex})
	ids := storyIDs(t, m, 200)
	dense, err := m.NLL(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	p, err := share.NewPlanner(share.KindShare, share.PlannerOptions{Preset: "paper:block=32,min_budget=32"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sgpu.New(p, sgpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetAttention(a); err != nil {
		a.Close()
		t.Fatal(err)
	}
	if b, _ := m.AttentionJSON(); string(b) != "{}\n" {
		t.Errorf("statistics before the first prefill with the new attention: %s", b)
	}
	if err := m.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prefill(ctx, ids); err != nil {
		t.Fatal(err)
	}
	var st share.Stats
	if b, _ := m.AttentionJSON(); json.Unmarshal(b, &st) != nil || st.Planner != "shareprefill" || st.N != 200 || st.BlockSize != 32 || strings.Contains(st.Note, "fallback") {
		t.Errorf("statistics of the hooked attention: planner %q, n %d, block %d, note %q", st.Planner, st.N, st.BlockSize, st.Note)
	}
	// Another model.Attention: no statistics; the same numbers as dense.
	if err := m.SetAttention(model.DenseAttention{}); err != nil {
		t.Fatal(err)
	}
	a.Close() // replaced: the caller's again
	if b, err := m.AttentionJSON(); b != nil || err != nil || m.AttentionSummary() != "" {
		t.Errorf("statistics of an attention without any: %d bytes, %v, summary %q", len(b), err, m.AttentionSummary())
	}
	nll, err := m.NLL(ctx, ids)
	if err != nil || math.Abs(nll-dense) > 1e-3 {
		t.Errorf("NLL with model.DenseAttention %v (%v), want the flex model's %v on a prompt it keeps dense", nll, err, dense)
	}
	if err := m.SetAttention(nil); err != nil {
		t.Fatal(err)
	}
	var nilGPU *sgpu.Attention
	if err := m.SetAttention(nilGPU); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("a nil *gpu.Attention: %v, want an error", err)
	}
}

// TestConfigIsACopy: changing the returned configuration changes nothing in
// the model.
func TestConfigIsACopy(t *testing.T) {
	m := openEmbedded(t, shareprefill.Options{})
	c := m.Config()
	c.NumLayers = 99
	c.EOSTokenIDs = append(c.EOSTokenIDs[:0], 12345)
	if got := m.Config(); got.NumLayers == 99 || slices.Contains(got.EOSTokenIDs, 12345) {
		t.Errorf("the model's configuration changed: %+v", got)
	}
}

// TestOptionErrors: the library's option errors name the option and its
// valid values, not a command-line flag.
func TestOptionErrors(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range []struct {
		opts shareprefill.Options
		want []string
	}{
		{shareprefill.Options{Attention: "bogus"}, []string{`"bogus"`, "dense, vs, flex or share"}},
		{shareprefill.Options{Clusters: "c.json"}, []string{"cluster file c.json", "share", "not dense"}},
		{shareprefill.Options{Attention: share.KindFlex, Clusters: "c.json"}, []string{"cluster file c.json", "not flex"}},
		{shareprefill.Options{Attention: share.KindShare, Preset: "nope"}, []string{`unknown preset "nope"`}},
		{shareprefill.Options{Context: -1}, []string{"context -1"}},
	} {
		m, err := shareprefill.Load(context.Background(), dev, c.opts)
		if err == nil {
			m.Close()
			t.Errorf("%+v: loaded", c.opts)
			continue
		}
		for _, w := range append(c.want, "") {
			if w == "" {
				if strings.Contains(err.Error(), "--") {
					t.Errorf("%+v: %v names a command-line flag", c.opts, err)
				}
			} else if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v, want it to contain %q", c.opts, err, w)
			}
		}
	}
}
