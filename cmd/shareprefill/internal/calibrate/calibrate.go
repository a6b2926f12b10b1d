// Package calibrate makes SharePrefill cluster files for any model, without
// Python: dense prefill over calibration texts on the GPU, the exact block
// attention map of every (layer, query head), then package calib's pooling,
// autoencoder and agglomerative clustering, and the shared-cluster selection
// on held-out texts (docs/algorithm.md#calibration, docs/algorithm.md#cluster-file).
package calibrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/stories260k"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/shareprefill/shareprefill/share"
	"github.com/shareprefill/shareprefill/share/calib"
)

// Options configures Run.
type Options struct {
	Model  string // model directory ("" = embedded stories260K)
	Device string
	Data   []string // calibration text files
	// Length is the calibration prompt length in tokens (default: the
	// model's context, at most 8192).
	Length int
	// Block is the map block size in tokens (default 128; smaller for short
	// prompts so that maps have at least 8 blocks).
	Block int
	// Prompts is the number of prompts whose maps are averaged for
	// clustering (default 3); Holdout more are used for the selection
	// (default 2).
	Prompts, Holdout int
	// Calib holds the clustering options (representation, linkage,
	// threshold or target count, min size, autoencoder).
	Calib calib.Options
	// Select holds the shared-cluster selection thresholds.
	Select calib.SelectOptions
	// Progress reports stages; AEProgress each autoencoder epoch.
	Progress   func(stage string, done, total int)
	AEProgress calib.ProgressFunc
	// AutoTarget sets Calib.TargetClusters from the model: about one cluster
	// per 24 heads (the official release has 44 for 1024), at least 2.
	AutoTarget bool
}

// Report summarises a calibration run.
type Report struct {
	Result    *calib.Result
	Selection []calib.ClusterSelection
	Jaccard   calib.JaccardReport
	Collect   time.Duration
	Cluster   time.Duration
}

// collector is a model.Attention that runs dense flash attention with the
// per-row LSE and then the exact block map of every head, downloading the
// maps.
type collector struct {
	B      int
	n      int
	lse    *runtime.Tensor
	heads  *runtime.Tensor
	out    *runtime.Tensor
	maps   [][]float32 // [layer*Hq + h] flat nb×nb
	nb     int
	cfg    *model.Config
	layers int
}

func (c *collector) Begin(e *model.Engine, q0, n int) error {
	if q0 != 0 {
		return fmt.Errorf("calibration prompts must start at position 0")
	}
	return c.begin(e.Device(), e.Config(), n)
}

// begin allocates the per-prompt buffers (Begin without an engine).
func (c *collector) begin(d *runtime.Device, cfg *model.Config, n int) error {
	c.cfg, c.n, c.layers = cfg, n, cfg.NumLayers
	c.nb = (n + c.B - 1) / c.B
	var err error
	if c.lse, err = d.NewNamedTensor("calibration lse", runtime.F32, cfg.NumHeads, n); err != nil {
		return err
	}
	if c.heads, err = d.NewNamedTensor("calibration heads", runtime.I32, cfg.NumHeads); err != nil {
		return err
	}
	ids := make([]int32, cfg.NumHeads)
	for i := range ids {
		ids[i] = int32(i)
	}
	if err := c.heads.UploadI32(ids); err != nil {
		return err
	}
	if c.out, err = d.NewNamedTensor("calibration maps", runtime.F32, cfg.NumHeads, c.nb, c.nb); err != nil {
		return err
	}
	c.maps = make([][]float32, cfg.NumLayers*cfg.NumHeads)
	return nil
}

func (c *collector) Layer(r *runtime.Recorder, l int, q, k, v, o *runtime.Tensor, p kernels.AttnParams) error {
	if err := kernels.FlashAttention(r, o, c.lse, q, k, v, p); err != nil {
		return err
	}
	kv, err := k.View(0, c.n, p.Hkv, p.D)
	if err != nil {
		return err
	}
	// The map's scores use the engine's attention scale (p.Scale; 0 is
	// 1/√D), the scale the LSE above was computed with: rows then sum to 1.
	ep := kernels.EstParams{Hq: p.Hq, Hkv: p.Hkv, D: p.D, S: c.n, B: c.B, Scale: p.Scale}
	if err := kernels.BlockMap(r, c.out, q, kv, c.lse, c.heads, ep); err != nil {
		return err
	}
	if err := r.Submit(); err != nil {
		return err
	}
	all, err := c.out.DownloadF32()
	if err != nil {
		return err
	}
	m := c.nb * c.nb
	for h := 0; h < p.Hq; h++ {
		c.maps[l*p.Hq+h] = all[h*m : (h+1)*m]
	}
	return nil
}

func (c *collector) End(*runtime.Recorder) error {
	c.lse.Free()
	c.heads.Free()
	c.out.Free()
	return nil
}

// Defaults of Options fields whose zero value Run replaces.
const (
	DefaultBlock   = 128
	DefaultPrompts = 3
	DefaultHoldout = 2
	// MaxBlock is the largest map block size the block-map kernel takes.
	MaxBlock = 1024
)

// ModelConfig reads the configuration of the model directory dir ("" or
// shareprefill.EmbeddedModel: the embedded stories260K) without loading any
// weights, for Validate before the work.
func ModelConfig(dir string) (*model.Config, error) {
	if dir == "" || dir == shareprefill.EmbeddedModel {
		return model.LoadConfigFS(stories260k.FS(), ".")
	}
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return cfg, nil
}

// Validate checks every option as given, before any work, against its
// allowed range; cfg, when not nil, bounds the cluster count by the
// model's heads. Each parameter has its rule here and only here; the errors
// name the parameter by its `shareprefill calibrate` flag and give the
// range. Zero values that Run replaces by defaults (Block, Prompts, Holdout
// and the Select thresholds) are out of range here: a caller that wants the
// defaults passes them (DefaultBlock, …) or calls Run, which validates after
// filling them in.
func (o Options) Validate(cfg *model.Config) error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	heads := 0
	if cfg != nil {
		heads = cfg.NumLayers * cfg.NumHeads
	}
	c, sel := o.Calib, o.Select
	switch {
	case len(o.Data) == 0:
		return errors.New("--data FILE is required (text to calibrate on, e.g. a few long documents from the target domain)")
	case o.Block < 1 || o.Block > MaxBlock:
		return fmt.Errorf("--block %d: want 1 to %d tokens", o.Block, MaxBlock)
	case o.Length < 0:
		return fmt.Errorf("--length %d: want ≥ %d (2 blocks), or 0 for the model's context", o.Length, 2*o.Block)
	case o.Length > 0 && o.Length < 2*o.Block:
		return fmt.Errorf("--length %d gives fewer than 2 blocks of --block %d tokens: want ≥ %d, or 0 for the model's context", o.Length, o.Block, 2*o.Block)
	case o.Prompts < 1:
		return fmt.Errorf("--prompts %d: want ≥ 1", o.Prompts)
	case o.Holdout < 1:
		return fmt.Errorf("--holdout %d: want ≥ 1", o.Holdout)
	case c.Representation != calib.RepresentationAutoencoder && c.Representation != calib.RepresentationPooled:
		return fmt.Errorf("--representation %q: want %s or %s", c.Representation, calib.RepresentationAutoencoder, calib.RepresentationPooled)
	case c.Pool.Grid < 1:
		return fmt.Errorf("--grid %d: want ≥ 1", c.Pool.Grid)
	case c.Linkage != calib.LinkageWard && c.Linkage != calib.LinkageAverage && c.Linkage != calib.LinkageComplete:
		return fmt.Errorf("--linkage %q: want %s, %s or %s", c.Linkage, calib.LinkageWard, calib.LinkageAverage, calib.LinkageComplete)
	case !finite(c.Threshold) || c.Threshold < 0:
		return fmt.Errorf("--threshold %v: want a finite height ≥ 0", c.Threshold)
	case c.TargetClusters < 0:
		return fmt.Errorf("--target-clusters %d: want ≥ 1", c.TargetClusters)
	case heads > 0 && c.TargetClusters > heads:
		return fmt.Errorf("--target-clusters %d: want 1 to %d (the model's %d layers × %d heads)", c.TargetClusters, heads, cfg.NumLayers, cfg.NumHeads)
	case c.Threshold > 0 && c.TargetClusters > 0:
		return errors.New("give --threshold or --target-clusters, not both")
	case !o.AutoTarget && c.Threshold == 0 && c.TargetClusters == 0:
		return errors.New("give --threshold or --target-clusters (or neither, for about one cluster per 24 heads)")
	case c.MinSize < 1:
		return fmt.Errorf("--min-size %d: want ≥ 1 (1 keeps every cluster)", c.MinSize)
	case c.AE.MaxEpochs < 1:
		return fmt.Errorf("--epochs %d: want ≥ 1", c.AE.MaxEpochs)
	case c.AE.MaxDuration < 0:
		return fmt.Errorf("--time-budget %v: want ≥ 0 (0: no limit)", c.AE.MaxDuration)
	case !(sel.Gamma > 0 && sel.Gamma <= 1):
		return fmt.Errorf("--gamma %v: want 0 < γ ≤ 1", sel.Gamma)
	case !(sel.Kappa > 0 && sel.Kappa <= 1):
		return fmt.Errorf("--kappa %v: want 0 < κ ≤ 1", sel.Kappa)
	case !(sel.MinGain >= -1 && sel.MinGain <= 1) || sel.MinGain == 0:
		return fmt.Errorf("--min-gain %v: want -1 ≤ g ≤ 1 other than 0 (for no gain give a tiny value such as 1e-9)", sel.MinGain)
	}
	return nil
}

// withDefaults fills the zero fields that Run documents defaults for.
func (o Options) withDefaults() Options {
	if o.Prompts == 0 {
		o.Prompts = DefaultPrompts
	}
	if o.Holdout == 0 {
		o.Holdout = DefaultHoldout
	}
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
	d := calib.DefaultOptions(0)
	if o.Calib.Representation == "" {
		o.Calib.Representation = d.Representation
	}
	if o.Calib.Linkage == "" {
		o.Calib.Linkage = d.Linkage
	}
	if o.Calib.Pool.Grid == 0 {
		o.Calib.Pool.Grid = d.Pool.Grid
	}
	if o.Calib.MinSize == 0 {
		o.Calib.MinSize = d.MinSize
	}
	if o.Calib.AE.MaxEpochs == 0 {
		o.Calib.AE.MaxEpochs = d.AE.MaxEpochs
	}
	if o.Select.Gamma == 0 {
		o.Select.Gamma = 0.9
	}
	if o.Select.Kappa == 0 {
		o.Select.Kappa = 0.9
	}
	if o.Select.MinGain == 0 {
		o.Select.MinGain = 0.02
	}
	return o
}

// Run calibrates and returns the cluster file (not yet written) and a report.
// Zero fields of opts take their defaults first; then Validate runs against
// the model's configuration, before any map is collected.
func Run(ctx context.Context, opts Options) (*share.ClusterFile, *Report, error) {
	opts = opts.withDefaults()
	cfg0, err := ModelConfig(opts.Model)
	if err != nil {
		return nil, nil, err
	}
	if err := opts.Validate(cfg0); err != nil {
		return nil, nil, fmt.Errorf("calibrate: %w", err)
	}
	// The data is read before the model is loaded: a missing file fails
	// at once.
	texts := make([]string, len(opts.Data))
	for i, f := range opts.Data {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("calibrate: --data: %w", err)
		}
		texts[i] = string(b)
	}
	prog := opts.Progress
	if prog == nil {
		prog = func(string, int, int) {}
	}
	m, err := shareprefill.Open(ctx, shareprefill.Options{Model: opts.Model, Device: opts.Device, Context: opts.Length})
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	cfg := m.Config()
	if opts.Length == 0 || opts.Length > m.Context() {
		opts.Length = m.Context()
	}
	if opts.Length < 2*opts.Block {
		return nil, nil, fmt.Errorf("calibrate: --length %d gives fewer than 2 blocks of %d tokens", opts.Length, opts.Block)
	}
	// Tokenize the data into prompts of Length tokens.
	var stream []int
	var sources []string
	for i, f := range opts.Data {
		stream = append(stream, m.Tokenizer().Encode(texts[i], false)...)
		sources = append(sources, filepath.Base(f))
	}
	need := opts.Prompts + opts.Holdout
	body := opts.Length
	if bos := m.Tokenizer().BOS(); bos >= 0 {
		body--
	}
	if len(stream) < need*body {
		return nil, nil, fmt.Errorf("calibrate: the data has %d tokens; %d prompts of %d tokens need %d (add data, or lower --length/--prompts)",
			len(stream), need, opts.Length, need*body)
	}
	stride := len(stream) / need
	var prompts [][]int
	var hashes []string
	for i := 0; i < need; i++ {
		p := []int{}
		if bos := m.Tokenizer().BOS(); bos >= 0 {
			p = append(p, bos)
		}
		p = append(p, stream[i*stride:i*stride+body]...)
		prompts = append(prompts, p)
		h := sha256.New()
		for _, t := range p {
			fmt.Fprintf(h, "%d,", t)
		}
		hashes = append(hashes, hex.EncodeToString(h.Sum(nil))[:16])
	}
	col := &collector{B: opts.Block}
	if err := m.SetAttention(col); err != nil {
		return nil, nil, fmt.Errorf("calibrate: %w", err)
	}
	start := time.Now()
	L, H := cfg.NumLayers, cfg.NumHeads
	sum := make([][]float64, L*H)
	var held []calib.PromptMaps
	for i, p := range prompts {
		prog("collecting maps", i, len(prompts))
		if err := m.Reset(); err != nil {
			return nil, nil, fmt.Errorf("calibrate: prompt %d: %w", i, err)
		}
		if _, err := m.Prefill(ctx, p); err != nil {
			return nil, nil, fmt.Errorf("calibrate: prompt %d: %w", i, err)
		}
		if i < opts.Prompts {
			for j, mp := range col.maps {
				if sum[j] == nil {
					sum[j] = make([]float64, len(mp))
				}
				for x, v := range mp {
					sum[j][x] += float64(v)
				}
			}
		} else {
			pm := calib.PromptMaps{NB: col.nb, Maps: map[calib.HeadID][]float32{}}
			for j, mp := range col.maps {
				pm.Maps[calib.HeadID{Layer: j / H, Head: j % H}] = mp
			}
			held = append(held, pm)
		}
	}
	prog("collecting maps", len(prompts), len(prompts))
	nb := col.nb
	rep := &Report{Collect: time.Since(start)}
	if opts.AutoTarget {
		opts.Calib.TargetClusters = max(2, L*H/24)
		opts.Calib.Threshold = 0
	}
	maps := make([]calib.HeadMap, L*H)
	for j := range maps {
		d := make([]float32, len(sum[j]))
		for x, v := range sum[j] {
			d[x] = float32(v / float64(opts.Prompts))
		}
		maps[j] = calib.HeadMap{ID: calib.HeadID{Layer: j / H, Head: j % H}, NB: nb, Data: d}
	}
	start = time.Now()
	res, err := calib.Calibrate(ctx, maps, opts.Calib, opts.AEProgress)
	if err != nil {
		return nil, nil, fmt.Errorf("calibrate: %w", err)
	}
	rep.Result = res
	sel := opts.Select
	rep.Selection, err = calib.SelectShared(res.Clusters, held, sel)
	if err != nil {
		return nil, nil, fmt.Errorf("calibrate: selecting shared clusters: %w", err)
	}
	// Jaccard sanity check on the averaged maps.
	pats := make([]calib.Pattern, len(maps))
	for j, mp := range maps {
		if pats[j], err = calib.PatternFromMap(mp.Data, nb, sel.Gamma); err != nil {
			return nil, nil, err
		}
	}
	if rep.Jaccard, err = calib.JaccardCheck(pats, res.Labels); err != nil {
		return nil, nil, err
	}
	rep.Cluster = time.Since(start)

	cf := &share.ClusterFile{Clusters: map[string][]share.HeadRef{}}
	for _, c := range res.Clusters {
		id := fmt.Sprint(c.ID)
		for _, h := range c.Members {
			cf.Clusters[id] = append(cf.Clusters[id], share.HeadRef{Layer: h.Layer, Head: h.Head})
		}
	}
	per := map[string]share.ClusterScore{}
	for _, s := range rep.Selection {
		id := fmt.Sprint(s.ID)
		per[id] = share.ClusterScore{Keep: s.Keep, VS: s.VS, Dens: s.Dens}
		if s.Shared {
			cf.SharedClusters = append(cf.SharedClusters, id)
		}
	}
	sort.Slice(cf.SharedClusters, func(a, b int) bool {
		x, _ := strconv.Atoi(cf.SharedClusters[a])
		y, _ := strconv.Atoi(cf.SharedClusters[b])
		return x < y
	})
	var noise []share.HeadRef
	for _, h := range res.Noise {
		noise = append(noise, share.HeadRef{Layer: h.Layer, Head: h.Head})
	}
	cfgHash := ""
	if opts.Model != "" {
		if b, err := os.ReadFile(filepath.Join(opts.Model, "config.json")); err == nil {
			s := sha256.Sum256(b)
			cfgHash = hex.EncodeToString(s[:])
		}
	}
	rm := res.Meta.Representation
	cm := res.Meta.Clustering
	cf.Meta = &share.ClusterMeta{
		Format: "shareprefill-clusters/1", Model: m.Name, ConfigSHA256: cfgHash,
		NumLayers: L, NumQHeads: H, NumKVHeads: cfg.NumKVHeads, HeadIndex: "query",
		Calibration: &share.ClusterCalibration{Source: strings.Join(sources, ","), Prompts: opts.Prompts + opts.Holdout,
			Tokens: opts.Length, PromptSHA256: hashes},
		Representation: &share.ClusterRepresentation{Kind: rm.Kind, Grid: rm.Grid, MapSize: nb, MapBlock: opts.Block,
			Scale: rm.Scale, Sqrt: rm.Sqrt, LatentDim: rm.LatentDim, Hidden: rm.Hidden, Seed: rm.Seed, Epochs: rm.Epochs, AELoss: rm.BestLoss},
		Clustering: &share.ClusteringParams{Linkage: cm.Linkage, Threshold: cm.Threshold, TargetClusters: cm.TargetClusters,
			MinSize: cm.MinSize, L2Normalise: cm.L2Normalise, NumClusters: cm.NumClusters, NumNoise: cm.NumNoise,
			JaccardWithin: rep.Jaccard.Within, JaccardAcross: rep.Jaccard.Across},
		Selection: &share.ClusterSelection{Gamma: sel.Gamma, Kappa: sel.Kappa, MinGain: sel.MinGain, PerCluster: per},
		Noise:     noise,
	}
	if err := cf.Validate(L, H); err != nil {
		return nil, nil, fmt.Errorf("calibrate: internal error: the produced file is invalid: %w", err)
	}
	return cf, rep, nil
}
