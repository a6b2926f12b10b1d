package calibrate

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
	"github.com/shareprefill/shareprefill/share/calib"
)

// storyText makes a seeded TinyStories-like text of about n words.
func storyText(n int, seed uint64) string {
	words := strings.Fields("once upon a time there was a little girl named Lily she liked to play in the park with her dog one day they saw a big red ball and ran to get it the sun was warm and happy Tom said hello mom")
	r := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(words[r.IntN(len(words))])
		if i%12 == 11 {
			b.WriteString(". ")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func TestCalibrateEmbeddedModel(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "stories.txt")
	if err := os.WriteFile(data, []byte(storyText(4000, 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rep := range []string{calib.RepresentationPooled, calib.RepresentationAutoencoder} {
		t.Run(rep, func(t *testing.T) {
			co := calib.DefaultOptions(4)
			co.Representation = rep
			co.AE.MaxEpochs = 20
			co.AE.Hidden = 32
			co.AE.Latent = 8
			co.Pool.Grid = 8
			stages := 0
			cf, rep, err := Run(context.Background(), Options{
				Data: []string{data}, Length: 256, Block: 32, Prompts: 2, Holdout: 1, Calib: co,
				Progress: func(string, int, int) { stages++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := cf.Validate(5, 8); err != nil {
				t.Fatal(err)
			}
			covered := len(cf.Meta.Noise)
			for _, m := range cf.Clusters {
				covered += len(m)
			}
			if covered != 40 {
				t.Errorf("clusters and noise cover %d heads, want all 40", covered)
			}
			if cf.Meta.Representation.MapSize != 8 || cf.Meta.Representation.MapBlock != 32 || cf.Meta.Selection == nil || len(cf.Meta.Calibration.PromptSHA256) != 3 {
				t.Errorf("incomplete meta: %+v", cf.Meta)
			}
			if len(rep.Selection) != len(cf.Clusters) || stages == 0 {
				t.Errorf("report: %d selections for %d clusters, %d progress calls", len(rep.Selection), len(cf.Clusters), stages)
			}
			out := filepath.Join(t.TempDir(), "clusters.json")
			if err := share.WriteClusters(out, cf); err != nil {
				t.Fatal(err)
			}
			back, err := share.LoadClusters(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := back.Validate(5, 8); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d clusters, %d shared, %d noise; Jaccard within %.2f across %.2f; collect %v cluster %v",
				len(cf.Clusters), len(cf.SharedClusters), len(cf.Meta.Noise), rep.Jaccard.Within, rep.Jaccard.Across, rep.Collect, rep.Cluster)
		})
	}
}

func TestCalibrateErrors(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	os.WriteFile(small, []byte("a tiny text"), 0o644)
	co := calib.DefaultOptions(4)
	cases := []struct {
		opts Options
		want string
	}{
		{Options{Calib: co}, "--data FILE is required"},
		{Options{Data: []string{filepath.Join(dir, "missing.txt")}, Calib: co}, "missing.txt"},
		{Options{Data: []string{small}, Length: 256, Block: 32, Calib: co}, "the data has"},
		{Options{Data: []string{small}, Length: 40, Block: 32, Calib: co}, "fewer than 2 blocks"},
	}
	for _, c := range cases {
		_, _, err := Run(context.Background(), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.opts.Data, err, c.want)
		}
	}
}

// TestValidate: every option out of its range is reported, naming its
// flag and the range, before any work.
func TestValidate(t *testing.T) {
	cfg := &model.Config{NumLayers: 5, NumHeads: 8}
	good := func() Options {
		return Options{Data: []string{"x.txt"}, Block: DefaultBlock, Prompts: DefaultPrompts, Holdout: DefaultHoldout,
			Calib: calib.DefaultOptions(4), Select: calib.SelectOptions{Gamma: 0.9, Kappa: 0.9, MinGain: 0.02}}
	}
	if err := good().Validate(cfg); err != nil {
		t.Fatalf("good options: %v", err)
	}
	auto := good()
	auto.Calib.TargetClusters, auto.AutoTarget = 0, true
	if err := auto.Validate(cfg); err != nil {
		t.Fatalf("automatic cluster count: %v", err)
	}
	tests := []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Data = nil }, "--data"},
		{func(o *Options) { o.Block = 0 }, "--block 0: want 1 to 1024"},
		{func(o *Options) { o.Block = 4096 }, "--block 4096"},
		{func(o *Options) { o.Length = -1 }, "--length -1"},
		{func(o *Options) { o.Length = 200 }, "--length 200 gives fewer than 2 blocks"},
		{func(o *Options) { o.Prompts = 0 }, "--prompts 0: want ≥ 1"},
		{func(o *Options) { o.Holdout = -1 }, "--holdout -1"},
		{func(o *Options) { o.Calib.Representation = "magic" }, "--representation"},
		{func(o *Options) { o.Calib.Pool.Grid = 0 }, "--grid 0"},
		{func(o *Options) { o.Calib.Linkage = "bogus" }, `--linkage "bogus": want ward, average or complete`},
		{func(o *Options) { o.Calib.TargetClusters = 1000 }, "--target-clusters 1000: want 1 to 40"},
		{func(o *Options) { o.Calib.TargetClusters = -2 }, "--target-clusters -2"},
		{func(o *Options) { o.Calib.Threshold = math.NaN(); o.Calib.TargetClusters = 0 }, "--threshold NaN"},
		{func(o *Options) { o.Calib.Threshold = 0.5 }, "--threshold or --target-clusters, not both"},
		{func(o *Options) { o.Calib.TargetClusters = 0 }, "give --threshold or --target-clusters"},
		{func(o *Options) { o.Calib.MinSize = 0 }, "--min-size 0"},
		{func(o *Options) { o.Calib.AE.MaxEpochs = -1 }, "--epochs -1: want ≥ 1"},
		{func(o *Options) { o.Calib.AE.MaxDuration = -time.Second }, "--time-budget -1s"},
		{func(o *Options) { o.Select.Gamma = -1 }, "--gamma -1: want 0 < γ ≤ 1"},
		{func(o *Options) { o.Select.Kappa = 2 }, "--kappa 2: want 0 < κ ≤ 1"},
		{func(o *Options) { o.Select.Kappa = math.NaN() }, "--kappa NaN"},
		{func(o *Options) { o.Select.MinGain = 0 }, "--min-gain 0"},
		{func(o *Options) { o.Select.MinGain = 3 }, "--min-gain 3"},
	}
	for _, tc := range tests {
		o := good()
		tc.change(&o)
		err := o.Validate(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
	// Without a configuration the cluster count is not bounded.
	o := good()
	o.Calib.TargetClusters = 1000
	if err := o.Validate(nil); err != nil {
		t.Errorf("no configuration: %v", err)
	}
}

// TestRunValidatesFirst: Run reports a bad option before it loads the
// model (whose weights are missing here).
func TestRunValidatesFirst(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,"vocab_size":300,"max_position_embeddings":512,"rms_norm_eps":1e-5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	co := calib.DefaultOptions(9) // more than 2 layers × 4 heads
	_, _, err := Run(context.Background(), Options{Model: dir, Data: []string{"x.txt"}, Calib: co})
	if err == nil || !strings.Contains(err.Error(), "--target-clusters 9: want 1 to 8") {
		t.Fatalf("got %v, want the --target-clusters range", err)
	}
}

// TestCollectorUsesAttentionScale: the collected block maps use the
// engine's attention scale (AttnParams.Scale), the scale of the LSE they are
// normalised by, so every causal row sums to 1 for a scale other than 1/√D.
func TestCollectorUsesAttentionScale(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n, hq, hkv, hd, b = 200, 4, 2, 16, 32
	cfg := &model.Config{NumLayers: 1, NumHeads: hq, NumKVHeads: hkv, HeadDim: hd}
	c := &collector{B: b}
	if err := c.begin(d, cfg, n); err != nil {
		t.Fatal(err)
	}
	defer c.End(nil)
	mk := func(heads int) *runtime.Tensor {
		x, err := d.NewTensor(runtime.F16, n, heads, hd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Free)
		if err := x.UploadF32(runtime.RoundF16(gputest.Normal(rng, n*heads*hd, 2))); err != nil {
			t.Fatal(err)
		}
		return x
	}
	q, k, v, o := mk(hq), mk(hkv), mk(hkv), mk(hq)
	// Scores 3× sharper than 1/√D: a map computed at 1/√D against this
	// LSE has rows far from 1.
	p := kernels.AttnParams{Hq: hq, Hkv: hkv, D: hd, Sq: n, Skv: n, Causal: true, Scale: float32(3 / math.Sqrt(hd))}
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if err := c.Layer(r, 0, q, k, v, o, p); err != nil {
		t.Fatal(err)
	}
	nb := (n + b - 1) / b
	for h, m := range c.maps {
		for row := 0; row < nb; row++ {
			var s float64
			for col := 0; col <= row; col++ {
				s += float64(m[row*nb+col])
			}
			if math.Abs(s-1) > 1e-3 {
				t.Fatalf("head %d row %d of the collected map sums to %.5f, want 1 (map and LSE at different scales)", h, row, s)
			}
		}
	}
}
