package gpu

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/share"
)

// The engine tests run the embedded stories260K model (5 layers, 8 query
// heads, 4 KV heads, head dim 8, context 512) with B = 32.
const (
	testBlock = 32
	testN     = 448 // nb = 14
)

func storiesEngine(t *testing.T, d *runtime.Device) *model.Engine {
	t.Helper()
	cfg, err := model.LoadConfigFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := model.OpenCheckpointFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	e, err := model.NewEngine(d, cfg, ck, model.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	ids[0] = 1 // BOS
	for i := 1; i < n; i++ {
		ids[i] = 3 + rng.IntN(vocab-3)
	}
	return ids
}

// allLogits prefills tokens from an empty cache with attention a (nil:
// dense) and returns the logits of every position.
func allLogits(t *testing.T, e *model.Engine, a model.Attention, tokens []int) []float32 {
	t.Helper()
	e.SetAttention(a)
	e.Reset()
	var out []float32
	if err := e.PrefillAll(context.Background(), tokens, func(_ int, l []float32) { out = append(out, l...) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func storiesClusters(t *testing.T) *share.ClusterFile {
	t.Helper()
	cl, err := share.LoadClusters("testdata/clusters_stories260k.json")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func testConfig(preset string, gamma float64) share.Config {
	c, err := share.Preset(preset)
	if err != nil {
		panic(err)
	}
	c.BlockSize, c.MinBudget = testBlock, testBlock
	if gamma > 0 {
		c.Gamma = gamma
	}
	return c
}

// TestGammaOneMatchesDense: at γ = 1 (and a vertical-slash planner with
// budgets covering every token) every planner keeps all attention mass, so
// the logits of every position equal those of dense flash attention.
func TestGammaOneMatchesDense(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	tokens := randomTokens(rng, testN, e.Config().VocabSize)
	want := gputest.F64(allLogits(t, e, nil, tokens))
	one := testConfig("paper", 1)
	shared := one
	shared.Exclusion, shared.TauShare = share.ExcludeNone, 1
	planners := map[string]func() (share.Planner, error){
		"dense":       func() (share.Planner, error) { return share.NewDense(testBlock) },
		"flexprefill": func() (share.Planner, error) { return share.NewFlexPrefill(one) },
		"shareprefill": func() (share.Planner, error) {
			return share.NewSharePrefill(shared, storiesClusters(t))
		},
		"vertical-slash": func() (share.Planner, error) {
			return share.NewVerticalSlash(share.VSConfig{BlockSize: testBlock, LastQ: 64, VerticalSize: testN, SlashSize: testN, ForcedColumns: 30, ForcedDiagonals: 100, Tile: 64})
		},
	}
	for name, mk := range planners {
		t.Run(name, func(t *testing.T) {
			p, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := allLogits(t, e, a, tokens)
			if err := gputest.RelErr(got, want); !(err <= 1e-3) {
				t.Errorf("logits rel err %.3g vs dense, want ≤ 1e-3", err)
			}
			st := a.Stats()
			if st == nil || st.Note != "" && !strings.Contains(st.Note, "no cluster") || len(st.Layers) != e.Config().NumLayers {
				t.Fatalf("stats %v", st)
			}
			t.Logf("%s", st)
		})
	}
}

// TestPlannedEndToEnd runs FlexPrefill ("release", with the query-aware
// path) and SharePrefill ("paper" with a cluster file) at normal γ with the
// GPU planner: some heads are sparse, the statistics JSON lists every layer and head with its method,
// and the logits stay finite and near dense.
func TestPlannedEndToEnd(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	cfg := e.Config()
	tokens := randomTokens(rng, testN, cfg.VocabSize)
	want := gputest.F64(allLogits(t, e, nil, tokens))
	release := testConfig("release", 0)
	release.TauQuery = 0.3 // a wide gate so that the query-aware path runs
	planners := map[string]func() (share.Planner, error){
		"flexprefill": func() (share.Planner, error) { return share.NewFlexPrefill(release) },
		"shareprefill": func() (share.Planner, error) {
			return share.NewSharePrefill(testConfig("paper", 0), storiesClusters(t))
		},
	}
	for name, mk := range planners {
		t.Run(name, func(t *testing.T) {
			p, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := allLogits(t, e, a, tokens)
			sparse := 0
			for _, ls := range a.Stats().Layers {
				for _, hs := range ls.Heads {
					if hs.Density < 1 {
						sparse++
					}
				}
			}
			if sparse == 0 {
				t.Errorf("no sparse head")
			}
			rel := gputest.RelErr(got, want)
			if !(rel < 0.5) {
				t.Errorf("logits rel err %.3g vs dense", rel)
			}
			js, err := a.Stats().JSON()
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Planner string `json:"planner"`
				Layers  []struct {
					Layer int `json:"layer"`
					Heads []struct {
						Head    int     `json:"head"`
						Method  string  `json:"method"`
						Density float64 `json:"density"`
					} `json:"heads"`
				} `json:"layers"`
				Summary struct {
					HeadsPerMethod map[string]int `json:"heads_per_method"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(js, &st); err != nil {
				t.Fatal(err)
			}
			if st.Planner != name || len(st.Layers) != cfg.NumLayers {
				t.Fatalf("stats: planner %q, %d layers", st.Planner, len(st.Layers))
			}
			for l, ls := range st.Layers {
				if ls.Layer != l || len(ls.Heads) != cfg.NumHeads {
					t.Fatalf("stats layer %d: index %d, %d heads", l, ls.Layer, len(ls.Heads))
				}
				for h, hs := range ls.Heads {
					var m share.Method
					if hs.Head != h || m.UnmarshalText([]byte(hs.Method)) != nil || !(hs.Density > 0 && hs.Density <= 1) {
						t.Errorf("stats layer %d head %d: %+v", l, h, hs)
					}
				}
			}
			if name == "flexprefill" && st.Summary.HeadsPerMethod["query-aware"] == 0 {
				t.Errorf("no query-aware head: %v", st.Summary.HeadsPerMethod)
			}
			t.Logf("%s; logits rel err %.3g", a.Stats(), rel)
		})
	}
}

// TestSharedAcrossLayers: with a cluster file that puts head h of every
// layer in one cluster and gates that always pass, layer 0 holds the
// pivots (their exact maps observed) and every later head shares, with the
// planner on the GPU and on the host.
func TestSharedAcrossLayers(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	cfg := e.Config()
	tokens := randomTokens(rng, testN, cfg.VocabSize)
	for _, host := range []bool{false, true} {
		t.Run(map[bool]string{false: "gpu", true: "host"}[host], func(t *testing.T) {
			c := testConfig("paper", 0)
			c.Exclusion, c.TauShare = share.ExcludeNone, 1
			p, err := share.NewSharePrefill(c, storiesClusters(t))
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(p, Options{HostPlanner: host})
			if err != nil {
				t.Fatal(err)
			}
			allLogits(t, e, a, tokens)
			st := a.Stats()
			sum := st.Summarize()
			if sum.HeadsPerMethod["pivot"] != cfg.NumHeads || sum.HeadsPerMethod["shared"] != (cfg.NumLayers-1)*cfg.NumHeads {
				t.Errorf("heads per method %v, want %d pivots and %d shared", sum.HeadsPerMethod, cfg.NumHeads, (cfg.NumLayers-1)*cfg.NumHeads)
			}
			for _, hs := range st.Layers[0].Heads {
				if hs.Method != share.MethodPivot || hs.VSRatio == nil || hs.PatternDensity == nil {
					t.Errorf("layer 0 head %d: %v, vs_ratio/pattern density recorded: %v", hs.Head, hs.Method, hs.VSRatio != nil && hs.PatternDensity != nil)
				}
			}
			for _, ls := range st.Layers[1:] {
				for _, hs := range ls.Heads {
					if want := fmt.Sprintf("shares pivot (0,%d)", hs.Head); hs.Reason != want {
						t.Errorf("layer %d head %d: reason %q, want %q", ls.Layer, hs.Head, hs.Reason, want)
					}
				}
			}
			if host {
				for _, id := range storiesClusters(t).IDs() {
					if pat := p.Pattern(id); pat == nil || pat.Validate() != nil {
						t.Errorf("cluster %s: no valid pattern", id)
					}
				}
			}
			t.Logf("%s", st)
		})
	}
}

// TestFallback: a prompt shorter than one block, a second prefill that
// appends to the cache (q0 ≠ 0) and a decode step use dense attention,
// produce the dense logits, and say so in the statistics.
func TestFallback(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	e := storiesEngine(t, d)
	cfg := e.Config()
	// γ = 1 keeps the first (planned) call equal to dense, so the KV cache
	// the later calls read is the dense one.
	p, err := share.NewSharePrefill(testConfig("paper", 1), storiesClusters(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tokens := randomTokens(rng, 300, cfg.VocabSize)
	more := randomTokens(rng, 41, cfg.VocabSize)[1:]

	// Dense reference: the same three calls with dense attention.
	run := func(att model.Attention) (first, second, dec []float32) {
		e.SetAttention(att)
		e.Reset()
		var err error
		if first, err = e.Prefill(ctx, tokens); err != nil {
			t.Fatal(err)
		}
		if second, err = e.Prefill(ctx, more); err != nil {
			t.Fatal(err)
		}
		if dec, err = e.Decode(ctx, 5); err != nil {
			t.Fatal(err)
		}
		return first, second, dec
	}
	_, s2, d2 := run(nil)
	_, g2, gd := run(a)
	if err := gputest.RelErr(g2, gputest.F64(s2)); !(err <= 1e-3) {
		t.Errorf("appended prefill: logits rel err %.3g vs dense", err)
	}
	if err := gputest.RelErr(gd, gputest.F64(d2)); !(err <= 1e-3) {
		t.Errorf("decode: logits rel err %.3g vs dense", err)
	}
	// The decode step runs the engine's decode kernel and never reaches the
	// prefill attention: its statistics keep describing the appended call.
	if c := a.Calls(); c.Planned != 1 || c.Dense != 1 {
		t.Errorf("calls %+v, want 1 planned and 1 dense (the appended prefill; decode bypasses it)", c)
	}
	st := a.Stats()
	if !strings.Contains(st.Note, "q0 = 300") || st.N != 40 || len(st.Layers) != cfg.NumLayers {
		t.Errorf("appended-call stats: note %q, n %d, %d layers", st.Note, st.N, len(st.Layers))
	}
	if sum := st.Summarize(); sum.HeadsPerMethod["dense"] != cfg.NumLayers*cfg.NumHeads {
		t.Errorf("appended-call stats: %v", sum.HeadsPerMethod)
	}
	if ps := a.PlannedStats(); ps == nil || ps.N != 300 || ps.Note != "" {
		t.Errorf("planned stats: %v", ps)
	}
	// A prompt shorter than one block.
	e.Reset()
	if _, err := e.Prefill(ctx, tokens[:testBlock-1]); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); !strings.Contains(st.Note, "shorter than one block") {
		t.Errorf("short prompt: note %q", st.Note)
	}
	t.Logf("%s", a.Stats())
}
