package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// MatShape is one Linear layer: y[M, N] = x[M, K]·W[N, K]ᵀ.
type MatShape struct {
	Name string `json:"name"`
	N    int    `json:"n"`
	K    int    `json:"k"`
}

// Llama3_8BMatMuls are the Linear shapes of Llama-3-8B (hidden 4096, 32
// query and 8 KV heads of 128, intermediate 14336, vocabulary 128256).
var Llama3_8BMatMuls = []MatShape{
	{"q_proj", 4096, 4096}, {"k_proj", 1024, 4096}, {"v_proj", 1024, 4096}, {"o_proj", 4096, 4096},
	{"gate_proj", 14336, 4096}, {"up_proj", 14336, 4096}, {"down_proj", 4096, 14336}, {"lm_head", 128256, 4096},
}

// KernelParams configures RunKernels.
type KernelParams struct {
	Lens      []int     `json:"lens"`
	Densities []float64 `json:"densities"`
	Hq        int       `json:"hq"`
	Hkv       int       `json:"hkv"`
	D         int       `json:"d"`
	Block     int       `json:"block"`
	Warmup    int       `json:"warmup"`
	// WarmupMs extends the warm-up runs of every measurement to at least
	// this many milliseconds (Timer.WarmupFor; 0: Warmup runs only).
	WarmupMs int    `json:"warmup_ms"`
	Reps     int    `json:"reps"`
	Seed     uint64 `json:"seed"`
	FlushMiB int    `json:"flush_mib"` // L2 flush buffer (0: none)
	// MatMulM are the row counts of the matmul benchmark (empty: skipped).
	MatMulM      []int      `json:"matmul_m,omitempty"`
	MatMulShapes []MatShape `json:"matmul_shapes,omitempty"`
	// MatMulTypes are the weight types of the weight-type matmul benchmark
	// (f16, q8_0, q4_k, q6_k, …; empty: skipped), timed at every shape of
	// QuantShapes and row count of QuantM (quantmm.go).
	MatMulTypes []string   `json:"matmul_types,omitempty"`
	QuantShapes []MatShape `json:"quant_shapes,omitempty"`
	QuantM      []int      `json:"quant_m,omitempty"`
	Estimation  bool       `json:"estimation"`
	// MaskDir receives the exact masks timed (masks.json + .npy); empty:
	// not exported.
	MaskDir string `json:"mask_dir,omitempty"`
	// Logf receives progress lines (optional): one per timed
	// configuration, numbered "[i/N]" (Plan().Cells), and one per skip.
	Logf func(format string, args ...any) `json:"-"`

	cells *cellCount // progress of RunKernels
}

// cellCount numbers the progress lines of one RunKernels call.
type cellCount struct{ done, total int }

// KernelPlan is the size of a RunKernels call, known before it starts.
type KernelPlan struct {
	// Cells is the number of timed configurations: per length one dense
	// and one sparse run per density, the estimation kernels, every
	// matmul shape at every M, and every weight type at every quantized
	// shape and M.
	Cells int
	// FLOPs is the arithmetic of every attention and matmul run, warm-up
	// runs and repetitions included (dense-equivalent for attention; the
	// estimation kernels are not counted).
	FLOPs float64
}

// estimationCells is the number of estimation kernels timed per length.
const estimationCells = 5

// cellsPerLen is the number of timed configurations per length.
func (p *KernelParams) cellsPerLen() int {
	c := 1 + len(p.Densities)
	if p.Estimation {
		c += estimationCells
	}
	return c
}

// Plan returns the size of the work RunKernels(dev, p) does, for a warning
// before a long run on a slow device.
func (p *KernelParams) Plan() KernelPlan {
	var pl KernelPlan
	runs := float64(p.Warmup + p.Reps)
	dens := 1.0
	for _, d := range p.Densities {
		dens += d
	}
	for _, n := range p.Lens {
		pl.Cells += p.cellsPerLen()
		pl.FLOPs += runs * dens * DenseFLOPs(p.Hq, n, p.D)
	}
	for _, sh := range p.MatMulShapes {
		for _, m := range p.MatMulM {
			pl.Cells++
			pl.FLOPs += runs * 2 * float64(m) * float64(sh.N) * float64(sh.K)
		}
	}
	pl.Cells += p.quantCells()
	pl.FLOPs += p.quantFLOPs()
	return pl
}

// cellf logs the start of a timed configuration, numbered.
func (p *KernelParams) cellf(format string, args ...any) {
	if p.cells != nil {
		p.cells.done++
		format = fmt.Sprintf("[%d/%d] ", p.cells.done, p.cells.total) + format
	}
	p.logf(format, args...)
}

// skipCells counts k configurations that will not run as done.
func (p *KernelParams) skipCells(k int) {
	if p.cells != nil {
		p.cells.done += k
	}
}

// DefaultKernelParams are the shapes of docs/benchmarks.md#what-is-measured:
// Llama-3-8B attention
// (Hq 32, Hkv 8, D 128), B = 128, 3 warm-ups lasting at least 250 ms, 10
// timed runs; the by-weight-type matmuls are off (no MatMulTypes) but have
// llama.cpp's shapes at M = 1 and 512 ready.
func DefaultKernelParams() KernelParams {
	return KernelParams{
		Lens: []int{4096, 8192, 16384, 32768, 65536}, Densities: []float64{1, 0.5, 0.2, 0.1, 0.05},
		Hq: 32, Hkv: 8, D: 128, Block: 128, Warmup: 3, WarmupMs: 250, Reps: 10, Seed: 1, FlushMiB: 256,
		MatMulM: []int{1, 512, 4096}, MatMulShapes: Llama3_8BMatMuls, Estimation: true,
		QuantShapes: LlamaCppMatVecShapes, QuantM: []int{1, 512},
	}
}

// AttnRow is one attention timing.
type AttnRow struct {
	Kind            string  `json:"kind"` // dense (FlashAttention) or sparse (SparseAttention)
	N               int     `json:"n"`
	Hq              int     `json:"hq"`
	Hkv             int     `json:"hkv"`
	D               int     `json:"d"`
	Block           int     `json:"block"`
	Density         float64 `json:"density"`          // requested (1 for dense)
	ComputedDensity float64 `json:"computed_density"` // listed / causal blocks
	Blocks          int     `json:"blocks,omitempty"`
	Stat
	TFLOPsActual   float64 `json:"tflops_actual"`    // 4·B²·D·Σ(full + ½·diag) / t (dense: 2·Hq·n²·D / t)
	TFLOPsDenseEq  float64 `json:"tflops_dense_eq"`  // 2·Hq·n²·D / t
	SpeedupVsDense float64 `json:"speedup_vs_dense"` // dense median / this median
	Timer          string  `json:"timer"`
	Mask           string  `json:"mask,omitempty"` // MaskName in the mask directory
}

// MatMulRow is one matmul timing.
type MatMulRow struct {
	Name string `json:"name"`
	M    int    `json:"m"`
	N    int    `json:"n"`
	K    int    `json:"k"`
	// Variant is the kernel and tile that ran (kernels.MatMulKernel):
	// "cm2 256x128x64/wg256/g8/u8", "coopmat 128x128x32/w64x64/g8/s1", …
	Variant string `json:"variant,omitempty"`
	Stat
	TFLOPs float64 `json:"tflops"` // 2·M·N·K / t
	Timer  string  `json:"timer"`
}

// EstRow is one estimation-kernel timing.
type EstRow struct {
	Name  string `json:"name"`
	N     int    `json:"n"`
	Heads int    `json:"heads"`
	// Variant is the kernel that ran where an op has several
	// (kernels.EstimateKernel, kernels.BlockMapKernel): "coopmat 128x64",
	// "scalar 16x16".
	Variant string `json:"variant,omitempty"`
	Stat
	Timer string `json:"timer"`
}

// Skip records a configuration that was not run.
type Skip struct {
	What   string `json:"what"`
	N      int    `json:"n,omitempty"`
	Reason string `json:"reason"`
}

// KernelResults are the results of RunKernels.
type KernelResults struct {
	Tiles     string      `json:"attn_tiles,omitempty"`
	Attention []AttnRow   `json:"attention"`
	MatMul    []MatMulRow `json:"matmul,omitempty"`
	// QuantMatMul are the weight-type matmul timings (MatMulTypes).
	QuantMatMul []QuantMatRow `json:"quant_matmul,omitempty"`
	Estimation  []EstRow      `json:"estimation,omitempty"`
	Skipped     []Skip        `json:"skipped,omitempty"`
	Masks       string        `json:"masks,omitempty"` // the mask directory
}

func (p *KernelParams) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// Validate checks every parameter before any work; its errors name the
// parameters by their `bench kernels` flags.
func (p *KernelParams) Validate() error {
	attn := len(p.Lens) > 0 // the attention parameters matter
	switch {
	case !attn && len(p.MatMulM) == 0 && len(p.MatMulTypes) == 0:
		return fmt.Errorf("--lens: no lengths (and no --matmul-m or --matmul-types: nothing to time)")
	case attn && (p.Hq < 1 || p.Hkv < 1 || p.Hq%p.Hkv != 0):
		return fmt.Errorf("--hq %d and --hkv %d: want --hq a positive multiple of --hkv", p.Hq, p.Hkv)
	case attn && (p.D < 4 || p.D%4 != 0 || p.D > 256):
		return fmt.Errorf("--d %d: want a multiple of 4 in 4..256", p.D)
	case attn && kernels.CheckBlockSize(p.Block) != nil:
		return fmt.Errorf("--block %d: %w", p.Block, kernels.CheckBlockSize(p.Block))
	case p.Reps < 1:
		return fmt.Errorf("--reps %d: want ≥ 1", p.Reps)
	case p.Warmup < 0:
		return fmt.Errorf("--warmup %d: want ≥ 0", p.Warmup)
	case p.WarmupMs < 0:
		return fmt.Errorf("--warmup-ms %d: want ≥ 0", p.WarmupMs)
	case p.FlushMiB < 0:
		return fmt.Errorf("--flush-mib %d: want ≥ 0 (0: no flush)", p.FlushMiB)
	}
	for _, d := range p.Densities {
		if !(d > 0 && d <= 1) {
			return fmt.Errorf("--densities: %v outside (0, 1]", d)
		}
	}
	for _, m := range p.MatMulM {
		if m < 1 {
			return fmt.Errorf("--matmul-m: %d: want ≥ 1", m)
		}
	}
	return p.validateQuant()
}

// f16Pool fills f16 tensors with seeded N(0, 1) values: a pool of random
// f16 words with an odd period, uploaded in chunks (no host copy of the
// whole tensor).
type f16Pool struct{ b []byte }

const poolN = 1<<20 + 7

func newF16Pool(seed uint64) f16Pool {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	v := make([]float32, poolN)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return f16Pool{b: runtime.EncodeF32(v, runtime.F16)}
}

func (p f16Pool) fill(t *runtime.Tensor, phase int) error {
	const chunk = 8 << 20 // elements
	n := t.Len()
	buf := make([]byte, 2*min(chunk, n))
	for base := 0; base < n; base += chunk {
		m := min(chunk, n-base)
		b := buf[:2*m]
		for i := 0; i < m; {
			src := ((base + i + phase) % poolN) * 2
			i += copy(b[2*i:], p.b[src:]) / 2
		}
		if err := t.UploadBytes(b, uint64(2*base)); err != nil {
			return err
		}
	}
	return nil
}

// fits says why tensors of the given byte sizes cannot be allocated ("" if
// they can): any one over maxStorageBufferRange, or all together over 90%
// of the device-local memory.
func fits(dev *runtime.Device, sizes map[string]uint64) string { return fitsRange(dev, sizes, true) }

// fitsRange is fits, checking maxStorageBufferRange only when checkRange.
func fitsRange(dev *runtime.Device, sizes map[string]uint64, checkRange bool) string {
	lim := dev.Info().MaxStorageBufferRange
	if !checkRange {
		lim = 0
	}
	var tot uint64
	for name, s := range sizes {
		if lim > 0 && s > lim {
			return fmt.Sprintf("%s needs %d MiB, over the device's maxStorageBufferRange of %d MiB", name, s>>20, lim>>20)
		}
		tot += s
	}
	if b := dev.MemoryBudget(); b > 0 && tot > b/10*9-dev.MemoryInUse() {
		return fmt.Sprintf("the tensors need %d MiB, more than 90%% of the %d MiB device memory", tot>>20, b>>20)
	}
	return ""
}

// RunKernels benchmarks attention (dense and block-sparse at each density),
// the matmuls, the estimation kernels and the matmuls by weight type on
// dev.
func RunKernels(dev *runtime.Device, p KernelParams) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("bench kernels: %w", err)
	}
	p.cells = &cellCount{total: p.Plan().Cells}
	rep := NewReport("kernels", DeviceOf(dev), p)
	res := &KernelResults{Masks: p.MaskDir}
	rep.Results = res
	timer := &Timer{Dev: dev, Warmup: p.Warmup, WarmupFor: time.Duration(p.WarmupMs) * time.Millisecond, Reps: p.Reps}
	if p.FlushMiB > 0 {
		n := uint64(p.FlushMiB) << 20
		if lim := dev.Info().MaxStorageBufferRange; lim > 0 && n > lim {
			n = lim
		}
		fl, err := dev.NewNamedTensor("L2 flush", runtime.U32, int(n/4))
		if err != nil {
			return nil, err
		}
		defer fl.Free()
		timer.Flush = fl
		rep.Notef("L2 flushed before every run (%d MiB fill, not timed)", n>>20)
	}
	if t, err := kernels.ChooseAttnTiles(dev, p.D, p.Block); err == nil {
		res.Tiles = fmt.Sprintf("WG=%d Br=%d Bc=%d", t.WG, t.Br, t.Bc)
	}
	rep.Notef("timer: %s; median of %d runs after %d warm-ups (at least %d ms)", timer.Kind(), p.Reps, p.Warmup, p.WarmupMs)
	rep.Notef("TFLOP/s: dense-equivalent = 2·Hq·n²·D / t; actual = 4·B²·D·Σ_heads(full + ½·diagonal blocks) / t")
	pool := newF16Pool(p.Seed)
	man := &MaskManifest{Block: p.Block, Hq: p.Hq, Hkv: p.Hkv, D: p.D}
	for _, n := range p.Lens {
		if err := attentionAt(dev, timer, pool, p, n, res, man); err != nil {
			return rep, err
		}
	}
	if p.MaskDir != "" {
		if err := WriteManifest(p.MaskDir, man); err != nil {
			return rep, fmt.Errorf("writing masks: %w", err)
		}
	}
	if len(p.MatMulM) > 0 {
		if err := matmuls(dev, timer, pool, p, res); err != nil {
			return rep, err
		}
	}
	if len(p.MatMulTypes) > 0 {
		if err := quantMatMuls(dev, timer, pool, p, res); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func attentionAt(dev *runtime.Device, timer *Timer, pool f16Pool, p KernelParams, n int, res *KernelResults, man *MaskManifest) error {
	nb := NumBlocks(n, p.Block)
	qs, kvs := uint64(n*p.Hq*p.D*2), uint64(n*p.Hkv*p.D*2)
	maxCols := uint64(p.Hq*nb*(nb+1)/2) * 4
	if why := fits(dev, map[string]uint64{"q": qs, "k": kvs, "v": kvs, "o": qs, "lse": uint64(n * p.Hq * 4), "cols": maxCols}); why != "" {
		res.Skipped = append(res.Skipped, Skip{What: "attention", N: n, Reason: why})
		p.skipCells(p.cellsPerLen())
		p.logf("n=%d: skipped: %s", n, why)
		return nil
	}
	var owned []*runtime.Tensor
	defer func() {
		for _, t := range owned {
			t.Free()
		}
	}()
	alloc := func(name string, dt runtime.DType, shape ...int) (*runtime.Tensor, error) {
		t, err := dev.NewNamedTensor(name, dt, shape...)
		if err == nil {
			owned = append(owned, t)
		}
		return t, err
	}
	q, err := alloc("q", runtime.F16, n, p.Hq, p.D)
	if err != nil {
		return err
	}
	k, err := alloc("k", runtime.F16, n, p.Hkv, p.D)
	if err != nil {
		return err
	}
	v, err := alloc("v", runtime.F16, n, p.Hkv, p.D)
	if err != nil {
		return err
	}
	o, err := alloc("o", runtime.F16, n, p.Hq, p.D)
	if err != nil {
		return err
	}
	lse, err := alloc("lse", runtime.F32, p.Hq, n)
	if err != nil {
		return err
	}
	for i, t := range []*runtime.Tensor{q, k, v} {
		if err := pool.fill(t, i*7919+n); err != nil {
			return err
		}
	}
	ap := kernels.AttnParams{Hq: p.Hq, Hkv: p.Hkv, D: p.D, Sq: n, Skv: n, Causal: true}
	denseFlops := DenseFLOPs(p.Hq, n, p.D)
	tf := func(flops, ms float64) float64 { return finite(flops / (ms * 1e-3) / 1e12) }

	p.cellf("n=%d: dense flash attention", n)
	st, err := timer.Time(func(r *runtime.Recorder) error { return kernels.FlashAttention(r, o, lse, q, k, v, ap) })
	if err != nil {
		return fmt.Errorf("dense attention n=%d: %w", n, err)
	}
	dense := st.Median
	res.Attention = append(res.Attention, AttnRow{Kind: "dense", N: n, Hq: p.Hq, Hkv: p.Hkv, D: p.D, Block: p.Block,
		Density: 1, ComputedDensity: 1, Stat: st, TFLOPsActual: tf(denseFlops, st.Median), TFLOPsDenseEq: tf(denseFlops, st.Median),
		SpeedupVsDense: 1, Timer: timer.Kind()})

	if p.Estimation {
		// The dense LSE feeds BlockMap.
		if err := dev.Run(func(r *runtime.Recorder) error { return kernels.FlashAttention(r, o, lse, q, k, v, ap) }); err != nil {
			return err
		}
		if err := estimation(dev, timer, p, n, q, k, lse, res); err != nil {
			return fmt.Errorf("estimation n=%d: %w", n, err)
		}
	}

	rowPtr, err := alloc("row_ptr", runtime.I32, p.Hq*nb+1)
	if err != nil {
		return err
	}
	for _, d := range p.Densities {
		m := RandomMask(p.Seed, n, p.Block, p.Hq, d)
		cols, err := dev.NewNamedTensor("cols", runtime.I32, len(m.Cols))
		if err != nil {
			return err
		}
		err = func() error {
			defer cols.Free()
			if err := rowPtr.UploadI32(m.RowPtr); err != nil {
				return err
			}
			if err := cols.UploadI32(m.Cols); err != nil {
				return err
			}
			p.cellf("n=%d: sparse attention at density %g", n, d)
			st, err := timer.Time(func(r *runtime.Recorder) error {
				return kernels.SparseAttention(r, o, lse, q, k, v, rowPtr, cols, ap, p.Block)
			})
			if err != nil {
				return fmt.Errorf("sparse attention n=%d density %g: %w", n, d, err)
			}
			total, _ := m.Blocks()
			row := AttnRow{Kind: "sparse", N: n, Hq: p.Hq, Hkv: p.Hkv, D: p.D, Block: p.Block, Density: d,
				ComputedDensity: m.ComputedDensity(), Blocks: total, Stat: st,
				TFLOPsActual: tf(m.ActualFLOPs(p.D), st.Median), TFLOPsDenseEq: tf(denseFlops, st.Median),
				SpeedupVsDense: finite(dense / st.Median), Timer: timer.Kind(), Mask: MaskName(n, d)}
			res.Attention = append(res.Attention, row)
			if p.MaskDir != "" {
				e, err := m.Export(p.MaskDir)
				if err != nil {
					return fmt.Errorf("exporting mask: %w", err)
				}
				man.Masks = append(man.Masks, e)
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func estimation(dev *runtime.Device, timer *Timer, p KernelParams, n int, q, k, lse *runtime.Tensor, res *KernelResults) error {
	ep := kernels.EstParams{Hq: p.Hq, Hkv: p.Hkv, D: p.D, S: n, B: p.Block}
	nb := ep.NB()
	ws, err := kernels.NewEstWorkspace(dev, ep)
	if err != nil {
		return err
	}
	defer ws.Free()
	var owned []*runtime.Tensor
	defer func() {
		for _, t := range owned {
			t.Free()
		}
	}()
	alloc := func(dt runtime.DType, shape ...int) *runtime.Tensor {
		if err != nil {
			return nil
		}
		var t *runtime.Tensor
		t, err = dev.NewTensor(dt, shape...)
		if err == nil {
			owned = append(owned, t)
		}
		return t
	}
	vt, st := alloc(runtime.F32, p.Hq, n), alloc(runtime.F32, p.Hq, n)
	vb, sb := alloc(runtime.F32, p.Hq, nb), alloc(runtime.F32, p.Hq, nb)
	a := alloc(runtime.F32, p.Hq, nb)
	cv, cs := alloc(runtime.F32, p.Hq, n), alloc(runtime.F32, p.Hq, n)
	counts := alloc(runtime.I32, p.Hq, 2)
	heads := alloc(runtime.I32, 1)
	bm := alloc(runtime.F32, 1, nb, nb)
	if err != nil {
		return err
	}
	if err := heads.UploadI32([]int32{0}); err != nil {
		return err
	}
	// The γ-cover counts run on fixed synthetic distributions (exp of a
	// uniform spread, peaked like attention mass), the same for every
	// variant (SHAREPREFILL_COVER).
	cvals := make([]float32, p.Hq*n)
	x := uint32(12345)
	for _, t := range []*runtime.Tensor{cv, cs} {
		for i := range cvals {
			x = x*1664525 + 1013904223
			cvals[i] = float32(math.Exp(-12 * float64(x>>8) / (1 << 24)))
		}
		if err := t.UploadF32(cvals); err != nil {
			return err
		}
	}
	variant := ""
	add := func(name string, nh int, rec func(r *runtime.Recorder) error) error {
		p.cellf("n=%d: %s", n, name)
		s, err := timer.Time(rec)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.Estimation = append(res.Estimation, EstRow{Name: name, N: n, Heads: nh, Variant: variant, Stat: s, Timer: timer.Kind()})
		variant = ""
		return nil
	}
	variant = kernels.EstimateKernel(dev, ep)
	if err := add("last-block estimates (V, S; all heads)", p.Hq, func(r *runtime.Recorder) error {
		return kernels.LastBlockEstimates(r, ws, vt, st, vb, sb, q, k, ep)
	}); err != nil {
		return err
	}
	if err := add("γ-cover counts (V, S; all heads)", p.Hq, func(r *runtime.Recorder) error {
		return kernels.CoverCounts(r, ws, counts, cv, cs, 0.95, ep)
	}); err != nil {
		return err
	}
	if err := add("pooled estimate â (all heads)", p.Hq, func(r *runtime.Recorder) error {
		return kernels.PooledEstimate(r, ws, a, q, k, ep)
	}); err != nil {
		return err
	}
	variant = kernels.BlockMapKernel(dev, ep)
	if err := add("block map Â (one head)", 1, func(r *runtime.Recorder) error {
		return kernels.BlockMap(r, bm, q, k, lse, heads, ep)
	}); err != nil {
		return err
	}
	mbytes := uint64(p.Hq * nb * nb * 4)
	if why := fits(dev, map[string]uint64{"pooled block scores": mbytes}); why != "" {
		res.Skipped = append(res.Skipped, Skip{What: "pooled block scores", N: n, Reason: why})
		p.skipCells(1)
		return nil
	}
	m := alloc(runtime.F32, p.Hq, nb, nb)
	if err != nil {
		return err
	}
	return add("pooled block scores M (all heads)", p.Hq, func(r *runtime.Recorder) error {
		return kernels.PooledBlockScores(r, ws, m, q, k, ep)
	})
}

func matmuls(dev *runtime.Device, timer *Timer, pool f16Pool, p KernelParams, res *KernelResults) error {
	for _, sh := range p.MatMulShapes {
		wBytes := uint64(sh.N * sh.K * 2)
		// MatMul splits bindings over maxStorageBufferRange itself: only
		// memory limits skip a shape.
		if why := fitsRange(dev, map[string]uint64{"weight": wBytes}, false); why != "" {
			res.Skipped = append(res.Skipped, Skip{What: "matmul " + sh.Name, Reason: why})
			p.skipCells(len(p.MatMulM))
			continue
		}
		w, err := dev.NewNamedTensor(sh.Name, runtime.F16, sh.N, sh.K)
		if err != nil {
			res.Skipped = append(res.Skipped, Skip{What: "matmul " + sh.Name, Reason: err.Error()})
			p.skipCells(len(p.MatMulM))
			continue
		}
		err = func() error {
			defer w.Free()
			if err := pool.fill(w, sh.N); err != nil {
				return err
			}
			for _, m := range p.MatMulM {
				x, err := dev.NewTensor(runtime.F16, m, sh.K)
				if err != nil {
					res.Skipped = append(res.Skipped, Skip{What: fmt.Sprintf("matmul %s M=%d", sh.Name, m), Reason: err.Error()})
					p.skipCells(1)
					continue
				}
				y, err := dev.NewTensor(runtime.F16, m, sh.N)
				if err != nil {
					x.Free()
					res.Skipped = append(res.Skipped, Skip{What: fmt.Sprintf("matmul %s M=%d", sh.Name, m), Reason: err.Error()})
					p.skipCells(1)
					continue
				}
				err = pool.fill(x, m)
				if err == nil {
					p.cellf("matmul %s %dx%dx%d", sh.Name, m, sh.N, sh.K)
					var st Stat
					st, err = timer.Time(func(r *runtime.Recorder) error { return kernels.MatMul(r, y, x, w, nil) })
					if err == nil {
						res.MatMul = append(res.MatMul, MatMulRow{Name: sh.Name, M: m, N: sh.N, K: sh.K,
							Variant: kernels.MatMulKernel(dev, m, sh.N, sh.K, runtime.F16), Stat: st,
							TFLOPs: finite(2 * float64(m) * float64(sh.N) * float64(sh.K) / (st.Median * 1e-3) / 1e12), Timer: timer.Kind()})
					}
				}
				x.Free()
				y.Free()
				if err != nil {
					return fmt.Errorf("matmul %s M=%d: %w", sh.Name, m, err)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// finite maps NaN and ±Inf (a zero time) to 0: JSON cannot hold them.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
