package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/share"
)

// syntheticView has every method, random causal masks (diagonal always
// set) and nb blocks.
func syntheticView(rng *rand.Rand, layers, heads, nb int) *viewData {
	v := &viewData{Model: "synthetic", Planner: "test", N: nb * 16, NB: nb, BlockSize: 16, Text: "Once upon a time, there was a test."}
	methods := []share.Method{share.MethodPivot, share.MethodShared, share.MethodVerticalSlash, share.MethodQueryAware, share.MethodExcluded, share.MethodDense}
	for l := range layers {
		lv := layerView{Layer: l}
		for h := range heads {
			m := methods[(l*heads+h)%len(methods)]
			mask := make([]bool, nb*nb)
			n := 0
			for r := range nb {
				for c := 0; c <= r; c++ {
					if c == r || m == share.MethodDense || rng.IntN(3) == 0 {
						mask[r*nb+c] = true
						n++
					}
				}
			}
			lv.Heads = append(lv.Heads, headView{Method: m, Blocks: n, Density: float64(n) / float64(share.CausalBlocks(nb)), Mask: mask})
		}
		v.Layers = append(v.Layers, lv)
	}
	return v
}

func rgbaAt(img image.Image, p image.Point) color.RGBA {
	r, g, b, a := img.At(p.X, p.Y).RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// frameMismatches compares img with what layer cur of v must show: the
// colour at the centre of every block of every head's map (method colour,
// skipped, non-causal) and of every overview square. It returns the
// mismatches and the number of points checked.
func frameMismatches(img image.Image, v *viewData, cur int) (bad []string, n int, err error) {
	lo := makeLayout(img.Bounds().Dx(), img.Bounds().Dy(), v)
	if len(lo.Maps) == 0 {
		return nil, 0, fmt.Errorf("empty layout")
	}
	check := func(what string, p image.Point, want color.RGBA) {
		n++
		if got := rgbaAt(img, p); got != want {
			bad = append(bad, fmt.Sprintf("%s at %v: colour %v, want %v", what, p, got, want))
		}
	}
	for hh, hv := range v.Layers[cur].Heads {
		m := lo.Maps[hh]
		if m.Dx()/v.NB < 3 {
			return nil, 0, fmt.Errorf("map %v too small for %d blocks", m, v.NB)
		}
		for r := range v.NB {
			for c := range v.NB {
				b := blockRect(m, v.NB, r, c)
				check(fmt.Sprintf("layer %d head %d block (%d,%d)", cur, hh, r, c),
					image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2), expectedColour(hv, v.NB, r, c))
			}
		}
	}
	for l, row := range lo.Overview {
		for hh, r := range row {
			check(fmt.Sprintf("overview layer %d head %d", l, hh), image.Pt((r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2), methodColour(v.Layers[l].Heads[hh].Method))
		}
	}
	return bad, n, nil
}

// checkFrame fails t when img does not show layer cur of v; it returns the
// number of points checked.
func checkFrame(t *testing.T, img image.Image, v *viewData, cur int) int {
	t.Helper()
	bad, n, err := frameMismatches(img, v, cur)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bad {
		if i == 10 {
			break
		}
		t.Error(b)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d checked points differ", len(bad), n)
	}
	return n
}

func TestDrawFrame(t *testing.T) {
	rng := gputest.Rand(t)
	for _, tc := range []struct{ layers, heads, nb, w, h int }{
		{5, 8, 12, 1280, 800},
		{3, 6, 7, 800, 600},
		{2, 32, 16, 1600, 1000},
	} {
		v := syntheticView(rng, tc.layers, tc.heads, tc.nb)
		for _, cur := range []int{0, tc.layers - 1} {
			img := image.NewRGBA(image.Rect(0, 0, tc.w, tc.h))
			drawFrame(img, v, cur)
			if n := checkFrame(t, img, v, cur); n < tc.heads*tc.nb*tc.nb {
				t.Errorf("only %d points checked", n)
			}
		}
	}
	// A frame of other data must fail the check: flip one causal block
	// and one method.
	v := syntheticView(rng, 2, 4, 6)
	img := image.NewRGBA(image.Rect(0, 0, 1000, 700))
	drawFrame(img, v, 1)
	v.Layers[1].Heads[2].Mask[5*6+1] = !v.Layers[1].Heads[2].Mask[5*6+1]
	v.Layers[0].Heads[3].Method = share.MethodShared
	// (head 3 of layer 0 was query-aware)
	if bad, _, err := frameMismatches(img, v, 1); err != nil || len(bad) != 2 {
		t.Errorf("frame of changed data: %d mismatches (%v), want 2: %q", len(bad), err, bad)
	}

	// The colours must tell the methods apart.
	seen := map[color.RGBA]share.Method{}
	for m, c := range methodColours {
		if o, dup := seen[c]; dup {
			t.Errorf("%s and %s share colour %v", m, o, c)
		}
		seen[c] = m
		if c == colSkipped || c == colUpper || c == colBackground {
			t.Errorf("%s uses a background colour", m)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("Once upon a time there was a verylongwordthatdoesnotfit.\nNew line", 10)
	want := []string{"Once upon", "a time", "there was", "a", "verylongwo", "rdthatdoes", "notfit.", "New line"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap: %q, want %q", got, want)
	}
	for _, l := range got {
		if len(l) > 10 {
			t.Errorf("line %q longer than 10", l)
		}
	}
}

func TestLoadStats(t *testing.T) {
	st := &share.Stats{Planner: "shareprefill", N: 300, NB: 3, BlockSize: 128, NumLayers: 1, NumHeads: 2,
		Layers: []share.LayerStat{{Layer: 0, MeanDensity: 0.75, Heads: []share.HeadStat{
			{Head: 0, Method: share.MethodPivot, Blocks: 6, Density: 1},
			{Head: 1, Method: share.MethodShared, Cluster: "3", Blocks: 3, Density: 0.5},
		}}}}
	b, err := st.JSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stats.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := loadStats(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Layers) != 1 || len(v.Layers[0].Heads) != 2 || v.Layers[0].Heads[1].Method != share.MethodShared || v.Layers[0].Heads[1].Cluster != "3" || v.NB != 3 {
		t.Errorf("loaded %+v", v)
	}
	img := image.NewRGBA(image.Rect(0, 0, 800, 600))
	drawFrame(img, v, 0)
	checkFrame(t, img, v, 0)
	if err := os.WriteFile(path, []byte(`{"layers": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadStats(path); err == nil || !strings.Contains(err.Error(), "no layers") {
		t.Errorf("empty stats: %v", err)
	}
}

// TestCollect runs the embedded model with each planner and checks that
// what the viewer shows agrees with the planner's statistics: one mask per
// head whose block count and density are the statistics', causal, with the
// diagonal computed.
func TestCollect(t *testing.T) {
	d := gputest.Device(t)
	for _, attn := range []string{"share", "vs", "dense"} {
		o := runOptions{Attn: attn, Preset: "release", Block: 32, Prompt: "Once upon a time.", Tokens: 200, MaxTokens: 4}
		v, err := collect(context.Background(), d, o)
		if err != nil {
			t.Fatalf("%s: %v", attn, err)
		}
		if len(v.Layers) != 5 || v.NB != (v.N+31)/32 || v.N < 150 {
			t.Fatalf("%s: %d layers, n=%d nb=%d", attn, len(v.Layers), v.N, v.NB)
		}
		methods := map[share.Method]int{}
		for _, l := range v.Layers {
			if len(l.Heads) != 8 {
				t.Fatalf("%s layer %d: %d heads", attn, l.Layer, len(l.Heads))
			}
			for h, hv := range l.Heads {
				methods[hv.Method]++
				if len(hv.Mask) != v.NB*v.NB {
					t.Fatalf("%s layer %d head %d: mask of %d, want %d", attn, l.Layer, h, len(hv.Mask), v.NB*v.NB)
				}
				n := 0
				for r := range v.NB {
					if !hv.Mask[r*v.NB+r] {
						t.Errorf("%s layer %d head %d: diagonal block %d not computed", attn, l.Layer, h, r)
					}
					for c := range v.NB {
						if hv.Mask[r*v.NB+c] {
							n++
							if c > r {
								t.Errorf("%s layer %d head %d: non-causal block (%d,%d)", attn, l.Layer, h, r, c)
							}
						}
					}
				}
				if n != hv.Blocks || hv.Density != float64(n)/float64(share.CausalBlocks(v.NB)) {
					t.Errorf("%s layer %d head %d: mask has %d blocks, statistics %d (density %v)", attn, l.Layer, h, n, hv.Blocks, hv.Density)
				}
			}
		}
		switch attn {
		case "share":
			if methods[share.MethodPivot] == 0 || methods[share.MethodShared] == 0 {
				t.Errorf("share: methods %v, want pivots and shared heads", methods)
			}
		case "dense":
			if methods[share.MethodDense] != 40 {
				t.Errorf("dense: methods %v", methods)
			}
		}
		if strings.TrimSpace(v.Text) == "" {
			t.Errorf("%s: no generated text", attn)
		}
		t.Logf("%s: %s", attn, v.Summary)
	}
}
