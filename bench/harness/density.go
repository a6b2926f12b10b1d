package harness

import (
	"context"
	"fmt"
	"math"
	goruntime "runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/shareprefill/shareprefill/model"
)

// DensityParams configures AttentionDensity.
type DensityParams struct {
	Model  string     `json:"model"`
	N      int        `json:"n"`      // prompt length
	Prompt string     `json:"prompt"` // "structured" (StructuredPrompt) or "random" (seeded uniform ids after BOS)
	Seed   uint64     `json:"seed"`
	Spec   PromptSpec `json:"spec"`
	// Layers and Heads select what is reported (nil: every layer, every
	// query head). Every layer below the highest one selected is computed
	// in full, unless Approx is set.
	Layers []int `json:"layers,omitempty"`
	Heads  []int `json:"heads,omitempty"`
	Block  int   `json:"block"` // B (default 128)
	// Mass is the share of each query block's attention that its kept key
	// blocks must hold (default 0.95).
	Mass float64 `json:"mass"`
	// Sample, when positive and below the number of query blocks, computes
	// one query block in the middle of each of Sample equal strata of
	// query blocks and weights it by its stratum's size (a midpoint-rule
	// estimate of the density). It applies to a layer only where no later
	// layer needs that layer's full output.
	Sample int `json:"sample,omitempty"`
	// Approx feeds every layer the token embeddings instead of the
	// previous layer's output. It is exact for layer 0; for the structured
	// vehicle, whose layers write only coordinates that no query or key
	// reads (Structure.Resid0…), it leaves out only the change of each
	// token's RMS norm (about 0.1 %).
	Approx  bool                             `json:"approx,omitempty"`
	Workers int                              `json:"workers,omitempty"` // goroutines (default GOMAXPROCS)
	Logf    func(format string, args ...any) `json:"-"`
}

// HeadDensity is the exact attention of one head, summarized.
type HeadDensity struct {
	Layer int    `json:"layer"`
	Head  int    `json:"head"`
	Kind  string `json:"kind,omitempty"` // the planted kind (structured vehicle)
	// Density is Σ over query blocks of the fewest key blocks holding
	// Mass of the block's attention, over the causal blocks Σ (r+1).
	Density float64 `json:"density"`
	// Shares of the attention mass (averaged over the query rows i ≥ 1
	// computed): on the first token, within distance < Block, on the
	// stripe tokens.
	Sink   float64 `json:"sink"`
	Local  float64 `json:"local"`
	Stripe float64 `json:"stripe"`
	// PeakOffset is the distance d ≥ max(8, 2·window) (window: the planted
	// one, else 32) with the most attention mass, and PeakMass the share
	// within ±2 of it: a slash shows as a PeakMass far above 5/n.
	PeakOffset int     `json:"peak_offset"`
	PeakMass   float64 `json:"peak_mass"`
	// SlashMass is the share within ±2 of the planted slash offset (0 when
	// none is planted).
	SlashMass float64 `json:"slash_mass,omitempty"`
	// TopColumns are the key positions (other than 0) that receive the
	// most attention mass, most first, with their share in TopColumnMass.
	TopColumns    []int   `json:"top_columns"`
	TopColumnMass float64 `json:"top_column_mass"`
	QueryBlocks   int     `json:"query_blocks"` // query blocks computed
}

// LayerDensity is the mean over a layer's reported heads.
type LayerDensity struct {
	Layer   int     `json:"layer"` // -1: all reported layers
	Heads   int     `json:"heads"`
	Density float64 `json:"density"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
}

// DensityResults are the results of AttentionDensity.
type DensityResults struct {
	Model       string         `json:"model"`
	N           int            `json:"n"`
	Prompt      string         `json:"prompt"`
	Block       int            `json:"block"`
	Mass        float64        `json:"mass"`
	QueryBlocks int            `json:"query_blocks"` // of the prompt
	Exact       bool           `json:"exact"`        // no sampling and no Approx in any reported layer
	Heads       []HeadDensity  `json:"heads"`
	Layers      []LayerDensity `json:"layers"`
	Seconds     float64        `json:"seconds"`
	// LastHidden is the residual stream at the last position after the
	// last layer computed in full (nil when none was): tests compare it
	// with the float64 reference model (internal/ref).
	LastHidden []float64 `json:"-"`
}

// cpuDevice is the Report device of a CPU computation.
func cpuDevice() Device {
	return Device{Name: fmt.Sprintf("CPU, %d cores (no GPU)", goruntime.NumCPU()), Vendor: goruntime.GOARCH,
		Driver: "none", API: "pure Go, float64"}
}

// AttentionDensity computes, in pure Go and float64, the exact causal
// attention of the selected heads of a model on a prompt, one query block
// at a time (it never holds n×n scores), and reports per head the
// Mass-block density (B = Block), the sink, local and stripe shares, the
// strongest far offset (slash) and the strongest columns (stripes).
// Layers below the highest reported one are run in full (attention of
// every head, o_proj, the MLP) to give the next layer its input, unless
// p.Approx. Work is about D·n² flops per head and layer (2·D·n² for the
// layers run in full) plus the MLP; see DensityParams.Sample and Approx
// for long prompts.
func AttentionDensity(ctx context.Context, p DensityParams) (*Report, error) {
	if p.Block == 0 {
		p.Block = 128
	}
	if p.Mass == 0 {
		p.Mass = 0.95
	}
	if p.Block < 1 || !(p.Mass > 0 && p.Mass <= 1) || p.Sample < 0 {
		return nil, fmt.Errorf("density: block %d (need ≥ 1), mass %v (need (0, 1]), sample %d (need ≥ 0)", p.Block, p.Mass, p.Sample)
	}
	if p.Workers <= 0 {
		p.Workers = goruntime.GOMAXPROCS(0)
	}
	if p.Prompt == "" {
		p.Prompt = PromptStructured
	}
	if p.N < 2 {
		return nil, fmt.Errorf("density: prompt length %d (need ≥ 2)", p.N)
	}
	logf := p.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	t0 := time.Now()
	cfg, w, err := model.Load(p.Model)
	if err != nil {
		return nil, fmt.Errorf("density: %w", err)
	}
	st, _ := ReadStructure(p.Model) // nil for a model without one
	ids, err := promptIDs(p.Prompt, cfg, p.N, p.Seed, p.Spec)
	if err != nil {
		return nil, fmt.Errorf("density: %w", err)
	}
	layers := p.Layers
	if layers == nil {
		for l := range cfg.NumLayers {
			layers = append(layers, l)
		}
	}
	heads := p.Heads
	if heads == nil {
		for h := range cfg.NumHeads {
			heads = append(heads, h)
		}
	}
	for _, l := range layers {
		if l < 0 || l >= cfg.NumLayers {
			return nil, fmt.Errorf("density: layer %d outside [0, %d)", l, cfg.NumLayers)
		}
	}
	for _, h := range heads {
		if h < 0 || h >= cfg.NumHeads {
			return nil, fmt.Errorf("density: head %d outside [0, %d)", h, cfg.NumHeads)
		}
	}
	d := &densityRun{p: p, cfg: cfg, w: w, st: st, ids: ids, inv: model.RopeInvFreq(cfg), logf: logf}
	res, err := d.run(ctx, layers, heads)
	if err != nil {
		return nil, err
	}
	res.Model, res.Seconds = p.Model, time.Since(t0).Seconds()
	rep := NewReport("density", cpuDevice(), p)
	rep.Results = res
	rep.Notef("exact float64 attention from the model's weights (f16/bf16 widened), blockwise; density = Σ_r (fewest key blocks holding %.0f %% of query block r's mass) / Σ_r (r+1), B = %d", 100*p.Mass, p.Block)
	if p.Sample > 0 && p.Sample < res.QueryBlocks {
		rep.Notef("sampled: %d query blocks per head and layer (midpoints of equal strata, weighted by stratum size) where no later layer needs the full output", p.Sample)
	}
	if p.Approx {
		rep.Notef("approx: every layer's input is the token embedding (exact for layer 0)")
	}
	return rep, nil
}

// Prompt kinds of bench prefill --prompt and bench density --prompt.
const (
	PromptRandom     = "random"
	PromptStructured = "structured"
)

// promptIDs returns the n prompt tokens of kind.
func promptIDs(kind string, cfg *model.Config, n int, seed uint64, spec PromptSpec) ([]int, error) {
	switch kind {
	case PromptStructured:
		ids := StructuredPrompt(n, seed, spec)
		for _, t := range ids {
			if t >= cfg.VocabSize {
				return nil, fmt.Errorf("structured prompt token %d outside the vocabulary (%d)", t, cfg.VocabSize)
			}
		}
		return ids, nil
	case PromptRandom:
		return randomPrompt(cfg, n, seed), nil
	}
	return nil, fmt.Errorf("unknown prompt %q (random, structured)", kind)
}

type densityRun struct {
	p    DensityParams
	cfg  *model.Config
	w    *model.Weights
	st   *Structure
	ids  []int
	inv  []float64
	logf func(string, ...any)
}

// layerInput is a layer's normalized input: either per position (rows) or
// per token id (byID, when the input is the embedding).
type layerInput struct {
	rows []float64         // n × hidden
	byID map[int][]float64 // token id → hidden
}

func (in *layerInput) row(d *densityRun, t int) []float64 {
	if in.rows != nil {
		h := d.cfg.HiddenSize
		return in.rows[t*h : (t+1)*h]
	}
	return in.byID[d.ids[t]]
}

func (d *densityRun) run(ctx context.Context, layers, heads []int) (*DensityResults, error) {
	cfg, n, bs := d.cfg, len(d.ids), d.p.Block
	nb := (n + bs - 1) / bs
	res := &DensityResults{N: n, Prompt: d.p.Prompt, Block: bs, Mass: d.p.Mass, QueryBlocks: nb, Exact: !d.p.Approx}
	last := slices.Max(layers)
	h := cfg.HiddenSize
	var x []float64 // residual stream, n × hidden, when a layer runs in full
	for l := 0; l <= last; l++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		full := !d.p.Approx && l < last // the next layer needs this one's output
		report := slices.Contains(layers, l)
		if !full && !report {
			continue
		}
		L := &d.w.Layers[l]
		in := &layerInput{}
		if x == nil {
			in.byID = map[int][]float64{}
			for _, t := range d.ids {
				if _, ok := in.byID[t]; !ok {
					in.byID[t] = rmsNorm64(embedRow(d.w, h, t), L.AttnNorm, cfg.RMSNormEps)
				}
			}
		} else {
			in.rows = make([]float64, n*h)
			for t := 0; t < n; t++ {
				copy(in.rows[t*h:], rmsNorm64(x[t*h:(t+1)*h], L.AttnNorm, cfg.RMSNormEps))
			}
		}
		t1 := time.Now()
		keys, vals := d.keysValues(L, in, full)
		hs := heads
		if full {
			hs = nil
			for i := range cfg.NumHeads {
				hs = append(hs, i)
			}
		}
		blocks := d.queryBlocks(nb, full)
		if !full && len(blocks) < nb {
			res.Exact = false
		}
		var out []float64
		if full {
			out = make([]float64, n*cfg.QDim())
		}
		rows, err := d.attend(ctx, l, L, in, keys, vals, hs, blocks, out)
		if err != nil {
			return nil, err
		}
		if report {
			for _, r := range rows {
				if slices.Contains(heads, r.Head) {
					res.Heads = append(res.Heads, r)
				}
			}
		}
		d.logf("density: layer %d: %d heads × %d query blocks in %.1f s", l, len(hs), len(blocks), time.Since(t1).Seconds())
		if full {
			if x == nil {
				x = make([]float64, n*h)
				for t := 0; t < n; t++ {
					copy(x[t*h:], embedRow(d.w, h, d.ids[t]))
				}
			}
			t2 := time.Now()
			d.finishLayer(L, x, out)
			d.logf("density: layer %d: o_proj and MLP in %.1f s", l, time.Since(t2).Seconds())
			res.LastHidden = append([]float64(nil), x[(n-1)*h:]...)
		}
	}
	res.Layers = summarizeDensity(res.Heads)
	return res, nil
}

func embedRow(w *model.Weights, h, t int) []float64 {
	x := make([]float64, h)
	for i, v := range w.Embed[t*h : (t+1)*h] {
		x[i] = float64(v)
	}
	return x
}

func rmsNorm64(x []float64, w []float32, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * inv * float64(w[i])
	}
	return out
}

// queryBlocks lists the query blocks to compute: all of them, or the
// midpoints of p.Sample strata.
func (d *densityRun) queryBlocks(nb int, full bool) []int {
	var out []int
	if full || d.p.Sample <= 0 || d.p.Sample >= nb {
		for r := range nb {
			out = append(out, r)
		}
		return out
	}
	for j := range d.p.Sample {
		lo, hi := j*nb/d.p.Sample, (j+1)*nb/d.p.Sample
		out = append(out, (lo+hi-1)/2)
	}
	return out
}

// stratum returns the number of query blocks block r stands for.
func (d *densityRun) stratum(nb, r int, blocks []int) int {
	if len(blocks) == nb {
		return 1
	}
	j := slices.Index(blocks, r)
	return (j+1)*nb/len(blocks) - j*nb/len(blocks)
}

// project returns W·v (+ bias) for a row-major rows×cols float32 W.
func project(w, b []float32, rows, cols int, v []float64) []float64 {
	out := make([]float64, rows)
	for i := range out {
		row := w[i*cols : (i+1)*cols]
		var s0, s1, s2, s3 float64
		j := 0
		for ; j+4 <= cols; j += 4 {
			s0 += float64(row[j]) * v[j]
			s1 += float64(row[j+1]) * v[j+1]
			s2 += float64(row[j+2]) * v[j+2]
			s3 += float64(row[j+3]) * v[j+3]
		}
		for ; j < cols; j++ {
			s0 += float64(row[j]) * v[j]
		}
		out[i] = s0 + s1 + s2 + s3
		if b != nil {
			out[i] += float64(b[i])
		}
	}
	return out
}

// rope rotates each head of v (heads × headDim) for position pos.
func (d *densityRun) rope(v []float64, pos int) {
	hd := d.cfg.HeadDim
	half := hd / 2
	for o := 0; o < len(v); o += hd {
		for i := 0; i < half; i++ {
			sin, cos := math.Sincos(float64(pos) * d.inv[i])
			x1, x2 := v[o+i], v[o+i+half]
			v[o+i] = x1*cos - x2*sin
			v[o+i+half] = x2*cos + x1*sin
		}
	}
}

// parallel runs f(i) for i < n on the run's workers.
func (d *densityRun) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(d.p.Workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// keysValues returns the rotated keys (n × kvDim) and, when withValues,
// the values.
func (d *densityRun) keysValues(L *model.LayerWeights, in *layerInput, withValues bool) (keys, vals []float64) {
	cfg, n := d.cfg, len(d.ids)
	h, kvd := cfg.HiddenSize, cfg.KVDim()
	keys = make([]float64, n*kvd)
	if withValues {
		vals = make([]float64, n*kvd)
	}
	var kByID, vByID map[int][]float64
	if in.byID != nil {
		kByID, vByID = map[int][]float64{}, map[int][]float64{}
		for t, v := range in.byID {
			kByID[t] = project(L.K, L.KBias, kvd, h, v)
			if withValues {
				vByID[t] = project(L.V, L.VBias, kvd, h, v)
			}
		}
	}
	d.parallel(n, func(t int) {
		var k, v []float64
		if kByID != nil {
			k = append([]float64(nil), kByID[d.ids[t]]...)
			v = vByID[d.ids[t]]
		} else {
			row := in.row(d, t)
			k = project(L.K, L.KBias, kvd, h, row)
			if withValues {
				v = project(L.V, L.VBias, kvd, h, row)
			}
		}
		d.rope(k, t)
		copy(keys[t*kvd:], k)
		if withValues {
			copy(vals[t*kvd:], v)
		}
	})
	return keys, vals
}

// headAcc accumulates one head's statistics over query blocks.
type headAcc struct {
	kept                float64 // Σ kept blocks, each weighted by its stratum
	rows                float64 // weighted query rows (i ≥ 1)
	sink, local, stripe float64
	offsets, columns    []float64
	blocks              int
}

// attend computes the selected heads over the given query blocks, filling
// out (n × qDim) with the attention output when it is not nil.
func (d *densityRun) attend(ctx context.Context, layer int, L *model.LayerWeights, in *layerInput, keys, vals []float64, heads, blocks []int, out []float64) ([]HeadDensity, error) {
	cfg, n, bs := d.cfg, len(d.ids), d.p.Block
	nb := (n + bs - 1) / bs
	h, hd, kvd, qd, group := cfg.HiddenSize, cfg.HeadDim, cfg.KVDim(), cfg.QDim(), cfg.GQAGroup()
	scale := 1 / math.Sqrt(float64(hd))
	stripe := make([]bool, n)
	if d.st != nil {
		for t, id := range d.ids {
			stripe[t] = slices.Contains(d.st.StripeTokens, id)
		}
	}
	// Per-token pre-RoPE queries of each head when the input is per id.
	wqHead := func(hq int) []float32 { return L.Q[hq*hd*h : (hq+1)*hd*h] }
	var qbHead func(hq int) []float32
	if L.QBias != nil {
		qbHead = func(hq int) []float32 { return L.QBias[hq*hd : (hq+1)*hd] }
	} else {
		qbHead = func(int) []float32 { return nil }
	}
	accs := make([]headAcc, len(heads))
	var mu sync.Mutex
	var firstErr error
	d.parallel(len(heads), func(i int) {
		if ctx.Err() != nil {
			mu.Lock()
			firstErr = ctx.Err()
			mu.Unlock()
			return
		}
		hq := heads[i]
		g := hq / group
		acc := &accs[i]
		acc.offsets, acc.columns = make([]float64, n), make([]float64, n)
		var qByID map[int][]float64
		if in.byID != nil {
			qByID = map[int][]float64{}
			for t, v := range in.byID {
				qByID[t] = project(wqHead(hq), qbHead(hq), hd, h, v)
			}
		}
		q := make([]float64, bs*hd)
		s := make([]float64, bs*n)
		mass := make([]float64, nb)
		order := make([]int, nb)
		for _, r := range blocks {
			if ctx.Err() != nil {
				mu.Lock()
				firstErr = ctx.Err()
				mu.Unlock()
				return
			}
			q0, q1 := r*bs, min(n, (r+1)*bs)
			m, nk := q1-q0, q1
			for t := q0; t < q1; t++ {
				var v []float64
				if qByID != nil {
					v = append([]float64(nil), qByID[d.ids[t]]...)
				} else {
					v = project(wqHead(hq), qbHead(hq), hd, h, in.row(d, t))
				}
				d.rope(v, t)
				copy(q[(t-q0)*hd:], v)
			}
			scoresABt(q, hd, keys[g*hd:], kvd, s, nk, m, nk, hd)
			clear(mass[:r+1])
			w := float64(d.stratum(nb, r, blocks))
			for ii := 0; ii < m; ii++ {
				i := q0 + ii
				row := s[ii*nk : ii*nk+i+1]
				mx := math.Inf(-1)
				for j := range row {
					row[j] *= scale
					mx = math.Max(mx, row[j])
				}
				var sum float64
				for j := range row {
					row[j] = math.Exp(row[j] - mx)
					sum += row[j]
				}
				inv := 1 / sum
				for c := 0; c <= r; c++ {
					var bm float64
					blk := row[c*bs : min(len(row), (c+1)*bs)]
					for j := range blk {
						blk[j] *= inv
						bm += blk[j]
					}
					mass[c] += bm
				}
				if out != nil {
					o := out[i*qd+hq*hd : i*qd+(hq+1)*hd]
					for j, pj := range row {
						if pj == 0 {
							continue
						}
						v := vals[j*kvd+g*hd : j*kvd+(g+1)*hd]
						for k := range o {
							o[k] += pj * v[k]
						}
					}
				}
				if i == 0 {
					continue
				}
				acc.rows += w
				acc.sink += w * row[0]
				for j := max(0, i-bs+1); j <= i; j++ {
					acc.local += w * row[j]
				}
				cols, st := acc.columns[:len(row)], stripe[:len(row)]
				offs := acc.offsets[:len(row)] // offs[i-j] for key j
				for j, pj := range row {
					wp := w * pj
					if st[j] {
						acc.stripe += wp
					}
					cols[j] += wp
					offs[i-j] += wp
				}
			}
			// Fewest key blocks holding Mass of the block's attention.
			for c := range r + 1 {
				order[c] = c
			}
			o := order[:r+1]
			sort.Slice(o, func(a, b int) bool { return mass[o[a]] > mass[o[b]] })
			target := d.p.Mass * float64(m)
			var cum float64
			k := 0
			for _, c := range o {
				cum += mass[c]
				k++
				if cum >= target*(1-1e-12) {
					break
				}
			}
			acc.kept += w * float64(k)
			acc.blocks++
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	var rows []HeadDensity
	for i, hq := range heads {
		acc := &accs[i]
		hr := HeadDensity{Layer: layer, Head: hq, QueryBlocks: acc.blocks}
		// acc.kept estimates Σ_r k(r) over all query blocks (exact when
		// all were computed); the causal total is nb(nb+1)/2.
		hr.Density = acc.kept / (float64(nb*(nb+1)) / 2)
		if acc.rows > 0 {
			hr.Sink, hr.Local, hr.Stripe = acc.sink/acc.rows, acc.local/acc.rows, acc.stripe/acc.rows
		}
		window := 32
		if d.st != nil {
			if sh := d.st.Head(layer, hq); sh != nil {
				hr.Kind = sh.Kind
				window = max(sh.Window, 4)
				if sh.Slash > 0 && sh.Slash < n && acc.rows > 0 {
					hr.SlashMass = bandSum(acc.offsets, sh.Slash, 2) / acc.rows
				}
			}
		}
		if lo := max(8, 2*window); lo < n && acc.rows > 0 {
			best := lo
			for dd := lo; dd < n; dd++ {
				if acc.offsets[dd] > acc.offsets[best] {
					best = dd
				}
			}
			hr.PeakOffset, hr.PeakMass = best, bandSum(acc.offsets, best, 2)/acc.rows
		}
		cols := make([]int, 0, n-1)
		for j := 1; j < n; j++ {
			cols = append(cols, j)
		}
		sort.SliceStable(cols, func(a, b int) bool { return acc.columns[cols[a]] > acc.columns[cols[b]] })
		cols = cols[:min(8, len(cols))]
		var cm float64
		for _, j := range cols {
			cm += acc.columns[j]
		}
		hr.TopColumns = cols
		if acc.rows > 0 {
			hr.TopColumnMass = cm / acc.rows
		}
		rows = append(rows, hr)
	}
	return rows, nil
}

// bandSum returns Σ v[c-w..c+w] (clipped).
func bandSum(v []float64, c, w int) float64 {
	var s float64
	for i := max(0, c-w); i <= min(len(v)-1, c+w); i++ {
		s += v[i]
	}
	return s
}

// scoresABt sets c[i*ldc+j] = Σ_k a[i*lda+k]·b[j*ldb+k] for i < m, j < n.
func scoresABt(a []float64, lda int, b []float64, ldb int, c []float64, ldc, m, n, k int) {
	i := 0
	for ; i+4 <= m; i += 4 {
		a0, a1, a2, a3 := a[i*lda:i*lda+k], a[(i+1)*lda:(i+1)*lda+k], a[(i+2)*lda:(i+2)*lda+k], a[(i+3)*lda:(i+3)*lda+k]
		j := 0
		for ; j+2 <= n; j += 2 {
			b0, b1 := b[j*ldb:j*ldb+k], b[(j+1)*ldb:(j+1)*ldb+k]
			var s00, s01, s10, s11, s20, s21, s30, s31 float64
			for p := range a0 {
				x0, x1 := b0[p], b1[p]
				y := a0[p]
				s00 += y * x0
				s01 += y * x1
				y = a1[p]
				s10 += y * x0
				s11 += y * x1
				y = a2[p]
				s20 += y * x0
				s21 += y * x1
				y = a3[p]
				s30 += y * x0
				s31 += y * x1
			}
			c[i*ldc+j], c[i*ldc+j+1] = s00, s01
			c[(i+1)*ldc+j], c[(i+1)*ldc+j+1] = s10, s11
			c[(i+2)*ldc+j], c[(i+2)*ldc+j+1] = s20, s21
			c[(i+3)*ldc+j], c[(i+3)*ldc+j+1] = s30, s31
		}
		for ; j < n; j++ {
			for ii := i; ii < i+4; ii++ {
				c[ii*ldc+j] = dot64(a[ii*lda:ii*lda+k], b[j*ldb:j*ldb+k])
			}
		}
	}
	for ; i < m; i++ {
		for j := 0; j < n; j++ {
			c[i*ldc+j] = dot64(a[i*lda:i*lda+k], b[j*ldb:j*ldb+k])
		}
	}
}

func dot64(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// finishLayer adds o_proj of the attention output and the SwiGLU MLP to
// the residual stream x (n × hidden) in place.
func (d *densityRun) finishLayer(L *model.LayerWeights, x, attn []float64) {
	cfg, n := d.cfg, len(d.ids)
	h, qd, inter := cfg.HiddenSize, cfg.QDim(), cfg.IntermediateSize
	d.parallel(n, func(t int) {
		xt := x[t*h : (t+1)*h]
		o := project(L.O, L.OBias, h, qd, attn[t*qd:(t+1)*qd])
		for i := range xt {
			xt[i] += o[i]
		}
		hn := rmsNorm64(xt, L.MLPNorm, cfg.RMSNormEps)
		gate := project(L.Gate, nil, inter, h, hn)
		up := project(L.Up, nil, inter, h, hn)
		for i, g := range gate {
			gate[i] = g / (1 + math.Exp(-g)) * up[i]
		}
		down := project(L.Down, nil, h, inter, gate)
		for i := range xt {
			xt[i] += down[i]
		}
	})
}

// summarizeDensity returns the mean density per layer and over all rows.
func summarizeDensity(rows []HeadDensity) []LayerDensity {
	by := map[int][]float64{}
	var all []float64
	for _, r := range rows {
		by[r.Layer] = append(by[r.Layer], r.Density)
		all = append(all, r.Density)
	}
	var ls []int
	for l := range by {
		ls = append(ls, l)
	}
	slices.Sort(ls)
	sum := func(layer int, v []float64) LayerDensity {
		var s float64
		for _, x := range v {
			s += x
		}
		return LayerDensity{Layer: layer, Heads: len(v), Density: s / float64(len(v)), Min: slices.Min(v), Max: slices.Max(v)}
	}
	var out []LayerDensity
	for _, l := range ls {
		out = append(out, sum(l, by[l]))
	}
	if len(all) > 0 {
		out = append(out, sum(-1, all))
	}
	return out
}

// DensityTables renders a density report.
func DensityTables(res *DensityResults) []*Table {
	exact := "exact"
	if !res.Exact {
		exact = "estimate (sampled query blocks or approximate inputs; see the notes)"
	}
	ht := &Table{Title: fmt.Sprintf("Attention structure per head, n = %d, %s prompt (%s)", res.N, res.Prompt, exact),
		Header: []string{"layer", "head", "kind", fmt.Sprintf("density %.0f%%", 100*res.Mass), "sink", "local <B", "stripe", "peak offset (mass)", "slash mass", "top columns (mass)"},
		Foot:   fmt.Sprintf("density = Σ_r k(r) / Σ_r (r+1), k(r) the fewest B = %d key blocks holding %.0f %% of query block r's mass; shares are mean attention over query rows: on token 0 (sink), within distance < B (local), on the stripe tokens; peak offset: the strongest distance beyond the planted window, with the mass within ±2", res.Block, 100*res.Mass)}
	for _, r := range res.Heads {
		cols := ""
		if len(r.TopColumns) > 0 {
			cols = fmt.Sprintf("%v (%.3f)", r.TopColumns[:min(4, len(r.TopColumns))], r.TopColumnMass)
		}
		slash := ""
		if r.SlashMass > 0 {
			slash = f(r.SlashMass, 3)
		}
		ht.Add(fmt.Sprint(r.Layer), fmt.Sprint(r.Head), r.Kind, f(r.Density, 3), f(r.Sink, 3), f(r.Local, 3), f(r.Stripe, 3),
			fmt.Sprintf("%d (%.3f)", r.PeakOffset, r.PeakMass), slash, cols)
	}
	lt := &Table{Title: "Density per layer", Header: []string{"layer", "heads", "mean density", "min", "max"}}
	for _, l := range res.Layers {
		name := fmt.Sprint(l.Layer)
		if l.Layer < 0 {
			name = "all"
		}
		lt.Add(name, fmt.Sprint(l.Heads), f(l.Density, 3), f(l.Min, 3), f(l.Max, 3))
	}
	return []*Table{ht, lt}
}
