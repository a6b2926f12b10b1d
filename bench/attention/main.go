// Command attention benchmarks the attention kernels: dense causal flash
// attention (kernels.FlashAttention) and block-sparse attention
// (kernels.SparseAttention) at several block densities, on f16 Q/K/V with
// grouped-query heads (default Hq = 32, Hkv = 8, D = 128, a Llama-3-8B layer).
// It prints Markdown tables of the median GPU time (timestamps around the
// dispatch; wall time when the device has none) and, with -json, writes the
// rows in the format of bench/peers/attention.py (PyTorch SDPA).
//
//	go run ./bench/attention                        # S = 4K..64K, densities 1, 0.5, 0.2, 0.1
//	go run ./bench/attention -lens 256 -reps 2      # tiny run (lavapipe)
//
// Dense causal FLOPs are counted as 4·S²·D·Hq/2. Sparse lists are random per
// (head, query block): column 0 and the diagonal always, other causal blocks
// sampled so each row lists ≈ density·(r+1) blocks; the table gives the
// realised density (listed / causal blocks) and the speed-up over dense.
// The last query row of every head (and of one sparse run) is spot-checked
// against a float64 CPU computation.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// Row is one result (shared with bench/peers/attention.py).
type Row struct {
	Kind          string  `json:"kind"` // "dense", "sparse" (ours) or "sdpa" (peer)
	S             int     `json:"s"`
	Hq            int     `json:"hq"`
	Hkv           int     `json:"hkv"`
	D             int     `json:"d"`
	Block         int     `json:"block,omitempty"`
	Density       float64 `json:"density"`        // requested (1 for dense)
	ActualDensity float64 `json:"actual_density"` // listed / causal blocks
	MedianMs      float64 `json:"median_ms"`
	MinMs         float64 `json:"min_ms"`
	TFLOPs        float64 `json:"tflops"` // dense-equivalent causal FLOPs / time
	Timer         string  `json:"timer"`
	CheckErr      float64 `json:"check_rel_err"`
}

// Report is the JSON file written with -json.
type Report struct {
	Impl   string `json:"impl"`
	Device string `json:"device"`
	Tiles  string `json:"tiles"`
	Rows   []Row  `json:"rows"`
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		if f == "" {
			continue
		}
		mul := 1
		if strings.HasSuffix(f, "k") {
			mul, f = 1024, strings.TrimSuffix(f, "k")
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			log.Fatalf("attention: bad length %q", f)
		}
		out = append(out, v*mul)
	}
	return out
}

func parseFloats(s string) []float64 {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || v > 1 {
			log.Fatalf("attention: bad density %q (want 0 < d ≤ 1)", f)
		}
		out = append(out, v)
	}
	return out
}

// pool: the inputs repeat a pool of f16 values with an odd period, so any
// element can be recomputed on the host for the spot check.
const poolN = 1<<20 + 7

type pool struct {
	v []float32
	b []byte
}

func newPool(seed uint64) pool {
	rng := rand.New(rand.NewPCG(seed, 1))
	v := make([]float32, poolN)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	v = runtime.RoundF16(v)
	return pool{v: v, b: runtime.EncodeF32(v, runtime.F16)}
}

func (p pool) at(i int) float64 { return float64(p.v[i%poolN]) }

// fill uploads n f16 elements pool[(i) % poolN] in 32 MiB chunks.
func (p pool) fill(t *runtime.Tensor) error {
	const chunk = 16 << 20
	n := t.Len()
	buf := make([]byte, 2*min(chunk, n))
	for base := 0; base < n; base += chunk {
		m := min(chunk, n-base)
		b := buf[:2*m]
		for i := 0; i < m; {
			src := ((base + i) % poolN) * 2
			c := copy(b[2*i:], p.b[src:])
			i += c / 2
		}
		if err := t.UploadBytes(b, uint64(2*base)); err != nil {
			return err
		}
	}
	return nil
}

// randomCSR builds per-(head, query block) lists: 0 and r always, other
// blocks sampled to ≈ density·(r+1) in all, sorted ascending.
func randomCSR(rng *rand.Rand, hq, nb int, density float64) (rowPtr, cols []int32) {
	rowPtr = make([]int32, 1, hq*nb+1)
	for h := 0; h < hq; h++ {
		for r := 0; r < nb; r++ {
			if density >= 1 {
				for c := 0; c <= r; c++ {
					cols = append(cols, int32(c))
				}
			} else {
				want := int(math.Round(density * float64(r+1)))
				want = min(r+1, max(want, min(r+1, 2)))
				start := len(cols)
				cols = append(cols, 0)
				if extra := want - 2; extra > 0 {
					for _, c := range rng.Perm(r - 1)[:extra] {
						cols = append(cols, int32(c+1))
					}
				}
				if r > 0 {
					cols = append(cols, int32(r))
				}
				s := cols[start:]
				sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			}
			rowPtr = append(rowPtr, int32(len(cols)))
		}
	}
	return rowPtr, cols
}

type problem struct {
	dev     *runtime.Device
	p       kernels.AttnParams
	q, k, v pool
	tq, tk  *runtime.Tensor
	tv, o   *runtime.Tensor
	lse     *runtime.Tensor
}

// check compares the last query row of every head (keys allowed by blk)
// with a float64 computation; blk nil means dense causal.
func (pr *problem) check(blk func(h, c int) bool, block int) (float64, error) {
	p := pr.p
	i := p.Sq - 1
	n := p.Hq * p.D
	dst, err := pr.dev.NewTensor(pr.o.DType(), n)
	if err != nil {
		return 0, err
	}
	defer dst.Free()
	if err := pr.dev.Run(func(r *runtime.Recorder) error { return r.Copy(dst, pr.o.Slice(i*n, n)) }); err != nil {
		return math.NaN(), fmt.Errorf("spot check skipped: %v", err)
	}
	got, err := dst.DownloadF32()
	if err != nil {
		return 0, err
	}
	g := p.Hq / p.Hkv
	sc := 1 / math.Sqrt(float64(p.D))
	var num, den float64
	s := make([]float64, i+1)
	for h := 0; h < p.Hq; h++ {
		hk := h / g
		m := math.Inf(-1)
		for j := 0; j <= i; j++ {
			s[j] = math.Inf(-1)
			if blk != nil && !blk(h, j/block) {
				continue
			}
			var dot float64
			for x := 0; x < p.D; x++ {
				dot += pr.q.at((i*p.Hq+h)*p.D+x) * pr.k.at((j*p.Hkv+hk)*p.D+x)
			}
			s[j] = dot * sc
			m = math.Max(m, s[j])
		}
		o := make([]float64, p.D)
		var l float64
		for j := 0; j <= i; j++ {
			if math.IsInf(s[j], -1) {
				continue
			}
			w := math.Exp(s[j] - m)
			l += w
			for x := 0; x < p.D; x++ {
				o[x] += w * pr.v.at((j*p.Hkv+hk)*p.D+x)
			}
		}
		for x := 0; x < p.D; x++ {
			d := float64(got[h*p.D+x]) - o[x]/l
			num += d * d
			den += (o[x] / l) * (o[x] / l)
		}
	}
	return math.Sqrt(num / den), nil
}

// timeIt records rec reps times (after warm-up runs lasting at least
// warmFor, one at least) and returns the median and minimum in ms and the
// timer used.
func timeIt(dev *runtime.Device, reps int, warmFor time.Duration, rec func(r *runtime.Recorder) error) (med, mn float64, timer string) {
	r, err := dev.NewRecorder()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Release()
	r.EnableProfiling()
	for began := time.Now(); ; {
		if err := rec(r); err != nil {
			log.Fatal(err)
		}
		if err := r.Submit(); err != nil {
			log.Fatal(err)
		}
		if time.Since(began) >= warmFor {
			break
		}
	}
	timer = "gpu-timestamp"
	var ts []float64
	for range reps {
		if err := rec(r); err != nil {
			log.Fatal(err)
		}
		t0 := time.Now()
		if err := r.Submit(); err != nil {
			log.Fatal(err)
		}
		wall := float64(time.Since(t0).Nanoseconds()) / 1e6
		tm := r.Timings()
		ms := 0.0
		for _, t := range tm {
			if t.Nanos < 0 {
				ms = -1
				break
			}
			ms += t.Nanos / 1e6
		}
		if len(tm) == 0 || ms < 0 {
			ms, timer = wall, "wall"
		}
		ts = append(ts, ms)
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], ts[0], timer
}

func fmtErr(e float64) string {
	if math.IsNaN(e) {
		return "–"
	}
	return fmt.Sprintf("%.1e", e)
}

func main() {
	lens := flag.String("lens", "4k,8k,16k,32k,64k", "sequence lengths (comma-separated; k = 1024)")
	dens := flag.String("densities", "1,0.5,0.2,0.1", "block densities of the sparse runs (empty: none)")
	reps := flag.Int("reps", 5, "timed repetitions (median reported)")
	hq := flag.Int("hq", 32, "query heads")
	hkv := flag.Int("hkv", 8, "key/value heads")
	hd := flag.Int("d", 128, "head dimension")
	block := flag.Int("block", 128, "sparse block size")
	outF16 := flag.Bool("f16out", true, "f16 output (else f32)")
	device := flag.String("device", "", "device index or name (default: SHAREPREFILL_DEVICE or the best GPU)")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
	warmMs := flag.Int("warmup-ms", 250, "warm-up runs before each timing last at least this many milliseconds (GPUs run slow for a while after idling or fresh allocations)")
	tryTiles := flag.String("tiles", "", "also time dense attention with these tile configurations: WG:Br:Bc,... (tuning)")
	flag.Parse()
	warmFor := time.Duration(*warmMs) * time.Millisecond
	log.SetFlags(0)

	dev, err := runtime.Open(runtime.Options{Device: *device})
	if err != nil {
		log.Fatalf("attention: %v", err)
	}
	defer dev.Close()
	// With SHAREPREFILL_VK_PIPELINE_STATS=1: the driver's statistics of
	// every kernel used (registers, spills, ... where the driver reports them).
	defer func() {
		if st, err := dev.PipelineStatistics(); err == nil {
			runtime.FormatPipelineStatistics(os.Stderr, st)
		}
	}()
	info := dev.Info()
	tiles, err := kernels.ChooseAttnTiles(dev, *hd, 0)
	if err != nil {
		log.Fatalf("attention: %v", err)
	}
	stiles, err := kernels.ChooseAttnTiles(dev, *hd, *block)
	if err != nil {
		log.Fatalf("attention: %v", err)
	}
	tileDesc := fmt.Sprintf("dense %s, sparse %s (scalar shader tiles: dense %+v, sparse %+v; -tiles always times the scalar shader)",
		kernels.AttentionKernel(dev, *hd, 0), kernels.AttentionKernel(dev, *hd, *block), tiles, stiles)
	fmt.Printf("device: %s (%s, driver %s %s); tiles: %s\n\n", info.Name, info.Vendor, info.DriverName, info.DriverVersion, tileDesc)

	odt := runtime.F32
	if *outF16 {
		odt = runtime.F16
	}
	densities := parseFloats(*dens)
	rng := rand.New(rand.NewPCG(42, 7))
	var rows []Row
	pq, pk, pv := newPool(1), newPool(2), newPool(3)
	for _, S := range parseInts(*lens) {
		p := kernels.AttnParams{Hq: *hq, Hkv: *hkv, D: *hd, Sq: S, Skv: S, Causal: true}
		pr := &problem{dev: dev, p: p, q: pq, k: pk, v: pv}
		alloc := func(dt runtime.DType, n int) *runtime.Tensor {
			t, err := dev.NewTensor(dt, n)
			if err != nil {
				log.Fatalf("attention: S=%d: %v", S, err)
			}
			return t
		}
		pr.tq, pr.tk, pr.tv = alloc(runtime.F16, S*p.Hq*p.D), alloc(runtime.F16, S*p.Hkv*p.D), alloc(runtime.F16, S*p.Hkv*p.D)
		pr.o, pr.lse = alloc(odt, S*p.Hq*p.D), alloc(runtime.F32, p.Hq*S)
		for _, x := range []struct {
			pl pool
			t  *runtime.Tensor
		}{{pq, pr.tq}, {pk, pr.tk}, {pv, pr.tv}} {
			if err := x.pl.fill(x.t); err != nil {
				log.Fatalf("attention: upload: %v", err)
			}
		}
		flops := 4 * float64(S) * float64(S) * float64(p.D) * float64(p.Hq) / 2
		med, mn, timer := timeIt(dev, *reps, warmFor, func(r *runtime.Recorder) error {
			return kernels.FlashAttention(r, pr.o, pr.lse, pr.tq, pr.tk, pr.tv, p)
		})
		ce, err := pr.check(nil, 1)
		if err != nil {
			log.Print(err)
		}
		rows = append(rows, Row{Kind: "dense", S: S, Hq: p.Hq, Hkv: p.Hkv, D: p.D, Density: 1, ActualDensity: 1,
			MedianMs: med, MinMs: mn, TFLOPs: flops / (med * 1e-3) / 1e12, Timer: timer, CheckErr: ce})
		fmt.Fprintf(os.Stderr, "S=%d dense: %.3f ms, %.3g TFLOP/s, check %.1e\n", S, med, flops/(med*1e-3)/1e12, ce)
		denseMs := med
		for _, f := range strings.Split(*tryTiles, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			var tl kernels.AttnTiles
			if _, err := fmt.Sscanf(f, "%d:%d:%d", &tl.WG, &tl.Br, &tl.Bc); err != nil {
				log.Fatalf("attention: bad -tiles entry %q (want WG:Br:Bc)", f)
			}
			if err := dev.Run(func(r *runtime.Recorder) error {
				return kernels.FlashAttentionWithTiles(r, pr.o, pr.lse, pr.tq, pr.tk, pr.tv, p, tl)
			}); err != nil {
				fmt.Fprintf(os.Stderr, "S=%d tiles %s: %v\n", S, f, err)
				continue
			}
			med, mn, timer := timeIt(dev, *reps, warmFor, func(r *runtime.Recorder) error {
				return kernels.FlashAttentionWithTiles(r, pr.o, pr.lse, pr.tq, pr.tk, pr.tv, p, tl)
			})
			ce, _ := pr.check(nil, 1)
			rows = append(rows, Row{Kind: "dense-tiles-" + f, S: S, Hq: p.Hq, Hkv: p.Hkv, D: p.D, Density: 1, ActualDensity: 1,
				MedianMs: med, MinMs: mn, TFLOPs: flops / (med * 1e-3) / 1e12, Timer: timer, CheckErr: ce})
			fmt.Fprintf(os.Stderr, "S=%d dense tiles %s: %.3f ms, %.3g TFLOP/s, check %.1e\n", S, f, med, flops/(med*1e-3)/1e12, ce)
		}

		nb := (S + *block - 1) / *block
		for di, den := range densities {
			rp, cl := randomCSR(rng, p.Hq, nb, den)
			trp, tcl := alloc(runtime.I32, len(rp)), alloc(runtime.I32, len(cl))
			if err := trp.UploadI32(rp); err != nil {
				log.Fatal(err)
			}
			if err := tcl.UploadI32(cl); err != nil {
				log.Fatal(err)
			}
			actual := float64(len(cl)) / float64(p.Hq*nb*(nb+1)/2)
			med, mn, timer := timeIt(dev, *reps, warmFor, func(r *runtime.Recorder) error {
				return kernels.SparseAttention(r, pr.o, pr.lse, pr.tq, pr.tk, pr.tv, trp, tcl, p, *block)
			})
			ce := math.NaN()
			if di == len(densities)-1 { // spot-check one sparse run
				last := nb - 1
				listed := make([]map[int]bool, p.Hq)
				for h := range listed {
					listed[h] = map[int]bool{}
					for e := rp[h*nb+last]; e < rp[h*nb+last+1]; e++ {
						listed[h][int(cl[e])] = true
					}
				}
				if ce, err = pr.check(func(h, c int) bool { return listed[h][c] }, *block); err != nil {
					log.Print(err)
				}
			}
			rows = append(rows, Row{Kind: "sparse", S: S, Hq: p.Hq, Hkv: p.Hkv, D: p.D, Block: *block, Density: den,
				ActualDensity: actual, MedianMs: med, MinMs: mn, TFLOPs: flops / (med * 1e-3) / 1e12, Timer: timer, CheckErr: ce})
			fmt.Fprintf(os.Stderr, "S=%d sparse density %.2f (actual %.3f): %.3f ms (%.2fx dense)\n", S, den, actual, med, denseMs/med)
			trp.Free()
			tcl.Free()
		}
		for _, t := range []*runtime.Tensor{pr.tq, pr.tk, pr.tv, pr.o, pr.lse} {
			t.Free()
		}
	}

	fmt.Printf("Dense causal attention, Hq=%d Hkv=%d D=%d, f16 in, %s out; FLOPs = 4·S²·D·Hq/2\n\n", *hq, *hkv, *hd, odt)
	fmt.Printf("| S | median ms | min ms | TFLOP/s | timer | check err |\n|---:|---:|---:|---:|---|---:|\n")
	dense := map[int]float64{}
	for _, r := range rows {
		if strings.HasPrefix(r.Kind, "dense") {
			if r.Kind == "dense" {
				dense[r.S] = r.MedianMs
			}
			fmt.Printf("| %d%s | %.3f | %.3f | %.3g | %s | %s |\n", r.S, strings.TrimPrefix(r.Kind, "dense"), r.MedianMs, r.MinMs, r.TFLOPs, r.Timer, fmtErr(r.CheckErr))
		}
	}
	if len(densities) > 0 {
		fmt.Printf("\nBlock-sparse attention, B=%d (density = listed / causal blocks; TFLOP/s = dense-equivalent)\n\n", *block)
		fmt.Printf("| S | density | actual | median ms | min ms | speed-up vs dense | dense-eq. TFLOP/s | check err |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			if r.Kind == "sparse" {
				fmt.Printf("| %d | %.2f | %.3f | %.3f | %.3f | %.2f | %.3g | %s |\n", r.S, r.Density, r.ActualDensity, r.MedianMs, r.MinMs,
					dense[r.S]/r.MedianMs, r.TFLOPs, fmtErr(r.CheckErr))
			}
		}
	}
	if *jsonOut != "" {
		rep := Report{Impl: "shareprefill-vulkan", Device: info.Name, Tiles: tileDesc, Rows: rows}
		for i := range rep.Rows {
			if math.IsNaN(rep.Rows[i].CheckErr) {
				rep.Rows[i].CheckErr = -1
			}
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
