// Package calibrate makes SharePrefill cluster files for any model, without
// Python: dense prefill over calibration texts on the GPU, the exact block
// attention map of every (layer, query head), then package calib's pooling,
// autoencoder and agglomerative clustering, and the shared-cluster selection
// on held-out texts (shareprefill.md §7–8).
package calibrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/model"
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

func (c *collector) End() error {
	c.lse.Free()
	c.heads.Free()
	c.out.Free()
	return nil
}

// Run calibrates and returns the cluster file (not yet written) and a report.
func Run(ctx context.Context, opts Options) (*share.ClusterFile, *Report, error) {
	if len(opts.Data) == 0 {
		return nil, nil, fmt.Errorf("calibrate: no --data files")
	}
	if opts.Prompts == 0 {
		opts.Prompts = 3
	}
	if opts.Holdout == 0 {
		opts.Holdout = 2
	}
	if opts.Block == 0 {
		opts.Block = 128
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
	cfg := m.Config
	if opts.Length == 0 || opts.Length > m.Engine.Context() {
		opts.Length = m.Engine.Context()
	}
	if opts.Length < 2*opts.Block {
		return nil, nil, fmt.Errorf("calibrate: --length %d gives fewer than 2 blocks of %d tokens", opts.Length, opts.Block)
	}
	// Tokenize the data into prompts of Length tokens.
	var stream []int
	var sources []string
	for _, f := range opts.Data {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("calibrate: --data: %w", err)
		}
		stream = append(stream, m.Tok.Encode(string(b), false)...)
		sources = append(sources, filepath.Base(f))
	}
	need := opts.Prompts + opts.Holdout
	body := opts.Length
	if bos := m.Tok.BOS(); bos >= 0 {
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
		if bos := m.Tok.BOS(); bos >= 0 {
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
	m.Engine.SetAttention(col)
	start := time.Now()
	L, H := cfg.NumLayers, cfg.NumHeads
	sum := make([][]float64, L*H)
	var held []calib.PromptMaps
	for i, p := range prompts {
		prog("collecting maps", i, len(prompts))
		m.Engine.Reset()
		if _, err := m.Engine.Prefill(ctx, p); err != nil {
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
	if sel.Gamma == 0 {
		sel.Gamma = 0.9
	}
	if sel.Kappa == 0 {
		sel.Kappa = 0.9
	}
	if sel.MinGain == 0 {
		sel.MinGain = 0.02
	}
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
