package gpu

import (
	"math"
	"slices"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
)

// cache returns a KV-cache tensor [n+extra, Hkv, D] whose first n rows are
// x and whose tail is NaN, so that reading past n poisons the result.
func cache(t *testing.T, d *runtime.Device, x *runtime.Tensor, s Shape, extra int) *runtime.Tensor {
	t.Helper()
	v, err := x.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < extra*s.NumKVHeads*s.HeadDim; i++ {
		v = append(v, float32(math.NaN()))
	}
	return upload(t, d, v, s.N+extra, s.NumKVHeads, s.HeadDim)
}

// TestLayerPipeline runs Attention.Layer without an engine on the same
// random q, k, v in every layer with a cluster per head spanning all
// layers: layer 0 has the pivots, later layers share. It checks every
// head's output against ref.SparseAttention on the planned list, the
// pivot patterns against share.RowCover of ref.BlockMap, and the
// statistics.
func TestLayerPipeline(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	s := Shape{NumHeads: 4, NumKVHeads: 2, HeadDim: 8, N: 320}
	const b, layers = 32, 3
	x := randomQKV(t, d, rng, s)
	kc, vc := cache(t, d, x.k, s, 37), cache(t, d, x.v, s, 37)
	cfg := share.DefaultConfig()
	cfg.BlockSize, cfg.MinBudget = b, b
	cfg.Exclusion, cfg.TauShare = share.ExcludeNone, 1 // every later member shares
	cl, err := share.ParseClusters([]byte(`{"clusters": {"1": [[0, 0], [1, 0], [2, 0]], "2": [[0, 1], [1, 1], [2, 1]],
		"3": [[0, 2], [1, 2], [2, 2]], "4": [[0, 3], [1, 3], [2, 3]]}}`))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := share.NewSharePrefill(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	var plans []*share.LayerPlan
	a, err := New(pl, Options{OnPlan: func(p *share.LayerPlan) { plans = append(plans, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.begin(d, layers, s, 0); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	o, err := d.NewTensor(runtime.F16, s.N, s.NumHeads, s.HeadDim)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Free()
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	p := kernels.AttnParams{Hq: s.NumHeads, Hkv: s.NumKVHeads, D: s.HeadDim, Sq: s.N, Skv: s.N, Causal: true}
	g := s.NumHeads / s.NumKVHeads
	for l := 0; l < layers; l++ {
		if err := kernels.Poison(r, o); err != nil {
			t.Fatal(err)
		}
		if err := a.Layer(r, l, x.q, kc, vc, o, p); err != nil {
			t.Fatal(err)
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		got, err := o.DownloadF32()
		if err != nil {
			t.Fatal(err)
		}
		plan := plans[l]
		for h := 0; h < s.NumHeads; h++ {
			want, _, err := ref.SparseAttention(x.qh[h], x.kh[h/g], x.vh[h/g], plan.Heads[h].List, b)
			if err != nil {
				t.Fatal(err)
			}
			gh := make([]float32, 0, s.N*s.HeadDim)
			wh := make([]float64, 0, s.N*s.HeadDim)
			for i := 0; i < s.N; i++ {
				gh = append(gh, got[(i*s.NumHeads+h)*s.HeadDim:(i*s.NumHeads+h+1)*s.HeadDim]...)
				wh = append(wh, want[i]...)
			}
			if e := gputest.RelErr(gh, wh); !(e <= 2e-3) {
				t.Errorf("layer %d head %d (%v): output rel err %.3g vs ref.SparseAttention", l, h, plan.Heads[h].Method, e)
			}
			wantMethod := share.MethodPivot
			if l > 0 {
				wantMethod = share.MethodShared
			}
			if m := plan.Heads[h].Method; m != wantMethod {
				t.Errorf("layer %d head %d: method %v, want %v", l, h, m, wantMethod)
			}
		}
	}
	if err := a.End(nil); err != nil {
		t.Fatal(err)
	}
	for h := 0; h < s.NumHeads; h++ {
		bm, err := ref.BlockMap(x.qh[h], x.kh[h/g], b)
		if err != nil {
			t.Fatal(err)
		}
		want := share.RowCover(bm, cfg.Gamma)
		got := pl.Pattern(cl.IDs()[h])
		if got == nil || !slices.Equal(got.RowPtr, want.RowPtr) || !slices.Equal(got.Cols, want.Cols) {
			t.Errorf("head %d: pivot pattern from the GPU map %v, from ref.BlockMap %v", h, got, want)
		} else if want.Density() >= 1 {
			t.Errorf("head %d: pattern is dense; the comparison is weak", h)
		}
	}
	st := a.Stats()
	sum := st.Summarize()
	if sum.HeadsPerMethod["pivot"] != s.NumHeads || sum.HeadsPerMethod["shared"] != (layers-1)*s.NumHeads {
		t.Errorf("heads per method %v", sum.HeadsPerMethod)
	}
	for _, hs := range st.Layers[0].Heads {
		if hs.VSRatio == nil || hs.PatternDensity == nil {
			t.Errorf("pivot %d: vs_ratio / pattern density not recorded", hs.Head)
		}
	}
	t.Logf("%s", st)
}

func TestBuildCSR(t *testing.T) {
	l0 := share.DenseList(3)
	l1 := share.ListFromMask(3, []bool{true, false, false, true, false, false, false, true, true})
	plan := &share.LayerPlan{NB: 3, Heads: []share.HeadPlan{{List: l0}, {List: l1}}}
	rp, cols, err := BuildCSR(plan, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantRP := []int32{0, 1, 3, 6, 7, 8, 10}
	wantCols := []int32{0, 0, 1, 0, 1, 2, 0, 0, 1, 2}
	if !slices.Equal(rp, wantRP) || !slices.Equal(cols, wantCols) {
		t.Errorf("BuildCSR = %v, %v; want %v, %v", rp, cols, wantRP, wantCols)
	}
	bad := &share.BlockList{NB: 3, RowPtr: []int32{0, 1, 2, 3}, Cols: []int32{0, 2, 0}}
	if _, _, err := BuildCSR(&share.LayerPlan{NB: 3, Heads: []share.HeadPlan{{List: bad}}}, 1, 3); err == nil {
		t.Errorf("non-causal list accepted")
	}
	if _, _, err := BuildCSR(plan, 3, 3); err == nil {
		t.Errorf("head count mismatch accepted")
	}
	if _, _, err := BuildCSR(&share.LayerPlan{NB: 3, Heads: []share.HeadPlan{{List: share.DenseList(2)}}}, 1, 3); err == nil {
		t.Errorf("grid mismatch accepted")
	}
}
