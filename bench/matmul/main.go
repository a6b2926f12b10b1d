// Command matmul benchmarks the Linear kernels (kernels.MatMul and its
// variants) on the shapes of an 8B Llama: f16 weights, f16 activations, f32
// accumulation, f16 (or f32) output. It prints a Markdown table of the median
// GPU time and TFLOP/s per shape and, with -json, writes the same rows as
// JSON (the format bench/peers/matmul.py writes, so run.sh can compare them).
//
//	go run ./bench/matmul                       # all Llama-8B shapes
//	go run ./bench/matmul -shapes 64x64x64 -reps 3
//
// A shape is MxNxK: x [M, K] · W[N, K]ᵀ → y [M, N]. Times come from GPU
// timestamps around each dispatch (summed over the dispatches of one call
// when the problem is split), or from wall time when the device has no
// timestamps. Each shape is also spot-checked against a float64 CPU
// computation of a few output elements.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
)

// llamaShapes: q/o proj (4096×4096), gate/up (14336×4096), down (4096×14336)
// and lm_head (128256×4096) at M = 1, 512, 8192.
func llamaShapes() string {
	var s []string
	for _, m := range []int{1, 512, 8192} {
		for _, nk := range []string{"4096x4096", "14336x4096", "4096x14336", "128256x4096"} {
			s = append(s, fmt.Sprintf("%dx%s", m, nk))
		}
	}
	return strings.Join(s, ",")
}

// Row is one benchmark result (shared with bench/peers/matmul.py).
type Row struct {
	M        int     `json:"m"`
	N        int     `json:"n"`
	K        int     `json:"k"`
	Variant  string  `json:"variant"`
	MedianMs float64 `json:"median_ms"`
	MinMs    float64 `json:"min_ms"`
	TFLOPs   float64 `json:"tflops"`
	Timer    string  `json:"timer"`
	CheckErr float64 `json:"check_rel_err"`
	// RepMs are the timed repetitions in order (ms; -each prints them).
	RepMs []float64 `json:"rep_ms,omitempty"`
}

// Report is the JSON file written with -json.
type Report struct {
	Impl   string `json:"impl"`
	Device string `json:"device"`
	XDType string `json:"x_dtype"`
	YDType string `json:"y_dtype"`
	Rows   []Row  `json:"rows"`
}

type shape struct{ M, N, K int }

func parseShapes(s string) ([]shape, error) {
	var out []shape
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p := strings.Split(f, "x")
		if len(p) != 3 {
			return nil, fmt.Errorf("shape %q: want MxNxK", f)
		}
		var v [3]int
		for i := range p {
			n, err := strconv.Atoi(p[i])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("shape %q: bad dimension %q", f, p[i])
			}
			v[i] = n
		}
		out = append(out, shape{v[0], v[1], v[2]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no shapes")
	}
	return out, nil
}

// val is the deterministic pseudo-random input value at index i of stream
// seed, uniform in [-1, 1): the host regenerates any element for the check
// without keeping the (up to GiB-sized) inputs.
func val(seed uint64, i int) float32 {
	z := seed*0x9E3779B97F4A7C15 + uint64(i)*0xBF58476D1CE4E5B9
	z ^= z >> 31
	z *= 0x94D049BB133111EB
	z ^= z >> 29
	return float32(int64(z>>40)-(1<<23)) / (1 << 23)
}

// fill uploads val(seed, i)·scale, rounded to t's dtype, in 32 MiB pieces.
func fill(t *runtime.Tensor, seed uint64, scale float32) error {
	const piece = 8 << 20
	n := t.Len()
	buf := make([]float32, min(piece, n))
	for off := 0; off < n; off += piece {
		c := min(piece, n-off)
		for i := 0; i < c; i++ {
			buf[i] = val(seed, off+i) * scale
		}
		if err := t.UploadBytes(runtime.EncodeF32(buf[:c], t.DType()), uint64(off*t.DType().Size())); err != nil {
			return err
		}
	}
	return nil
}

func round(v float32, dt runtime.DType) float64 {
	if dt == runtime.F16 {
		return float64(runtime.RoundF16([]float32{v})[0])
	}
	return float64(v)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func parseDType(s string) (runtime.DType, error) {
	switch s {
	case "f16":
		return runtime.F16, nil
	case "f32":
		return runtime.F32, nil
	}
	return 0, fmt.Errorf("dtype %q: want f16 or f32", s)
}

func main() {
	shapesF := flag.String("shapes", llamaShapes(), "comma-separated MxNxK list (x [M,K], W [N,K])")
	reps := flag.Int("reps", 20, "timed repetitions per shape (after 2 warm-up calls)")
	device := flag.String("device", "", "device index or name substring (default: SHAREPREFILL_DEVICE or the first GPU)")
	variant := flag.String("variant", "auto", "auto (MatMul), tiled (MatMulTiled), gemv (MatVec), coopmat (MatMulCoopMat) or coopmat2 (MatMulCoopMat2)")
	xdt := flag.String("x", "f16", "activation dtype: f16 or f32")
	ydt := flag.String("y", "f16", "output dtype: f16 or f32")
	jsonOut := flag.String("json", "", "write results as JSON to this file")
	check := flag.Int("check", 32, "output elements spot-checked against a CPU float64 dot product per shape (0: none)")
	each := flag.Bool("each", false, "also print every repetition's time (ms, in order) to stderr")
	warmMs := flag.Int("warmup-ms", 250, "extend the 2 warm-up calls of a shape to at least this many milliseconds (GPUs run slow for a while after idling or fresh allocations)")
	flag.Parse()
	if err := run(*shapesF, *reps, *device, *variant, *xdt, *ydt, *jsonOut, *check, *each, time.Duration(*warmMs)*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, "matmul bench:", err)
		os.Exit(1)
	}
}

func run(shapesF string, reps int, device, variant, xdtS, ydtS, jsonOut string, check int, each bool, warmFor time.Duration) error {
	shapes, err := parseShapes(shapesF)
	if err != nil {
		return err
	}
	if reps < 1 {
		return fmt.Errorf("-reps must be ≥ 1")
	}
	xdt, err := parseDType(xdtS)
	if err != nil {
		return err
	}
	ydt, err := parseDType(ydtS)
	if err != nil {
		return err
	}
	fn := map[string]func(*runtime.Recorder, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor) error{
		"auto": kernels.MatMul, "tiled": kernels.MatMulTiled, "gemv": kernels.MatVec,
		"coopmat": kernels.MatMulCoopMat, "coopmat2": kernels.MatMulCoopMat2,
	}[variant]
	if fn == nil {
		return fmt.Errorf("-variant %q: want auto, tiled, gemv, coopmat or coopmat2", variant)
	}
	d, err := runtime.Open(runtime.Options{Device: device})
	if err != nil {
		return err
	}
	defer d.Close()
	// With SHAREPREFILL_VK_PIPELINE_STATS=1: the driver's statistics of
	// every kernel used (registers, spills, ... where the driver reports them).
	defer func() {
		if st, err := d.PipelineStatistics(); err == nil {
			runtime.FormatPipelineStatistics(os.Stderr, st)
		}
	}()
	info := d.Info()
	rep := Report{Impl: "shareprefill-" + variant, Device: info.Name, XDType: xdtS, YDType: ydtS}
	fmt.Fprintf(os.Stderr, "device %s (%s), caps %+v\n", info.Name, info.DriverName, d.Caps())

	fmt.Printf("| M | N | K | variant | median ms | min ms | TFLOP/s | timer | check err |\n")
	fmt.Printf("|---:|---:|---:|---|---:|---:|---:|---|---:|\n")
	for _, s := range shapes {
		row, err := bench(d, s, reps, warmFor, variant, fn, xdt, ydt, check)
		if err != nil {
			return fmt.Errorf("%dx%dx%d: %w", s.M, s.N, s.K, err)
		}
		rep.Rows = append(rep.Rows, row)
		fmt.Printf("| %d | %d | %d | %s | %.4f | %.4f | %.3g | %s | %.1e |\n",
			row.M, row.N, row.K, row.Variant, row.MedianMs, row.MinMs, row.TFLOPs, row.Timer, row.CheckErr)
		if each {
			fmt.Fprintf(os.Stderr, "%dx%dx%d reps ms:", row.M, row.N, row.K)
			for _, t := range row.RepMs {
				fmt.Fprintf(os.Stderr, " %.3f", t)
			}
			fmt.Fprintln(os.Stderr)
		}
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func bench(d *runtime.Device, s shape, reps int, warmFor time.Duration, variant string,
	fn func(*runtime.Recorder, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor, *runtime.Tensor) error,
	xdt, ydt runtime.DType, check int) (Row, error) {
	row := Row{M: s.M, N: s.N, K: s.K, Variant: variant}
	x, err := d.NewNamedTensor("x", xdt, s.M, s.K)
	if err != nil {
		return row, err
	}
	defer x.Free()
	w, err := d.NewNamedTensor("w", runtime.F16, s.N, s.K)
	if err != nil {
		return row, err
	}
	defer w.Free()
	y, err := d.NewNamedTensor("y", ydt, s.M, s.N)
	if err != nil {
		return row, err
	}
	defer y.Free()
	wScale := float32(1 / math.Sqrt(float64(s.K)))
	if err := fill(x, 1, 1); err != nil {
		return row, err
	}
	if err := fill(w, 2, wScale); err != nil {
		return row, err
	}

	r, err := d.NewRecorder()
	if err != nil {
		return row, err
	}
	defer r.Release()
	profiled := d.Info().TimestampValidBits > 0
	if profiled {
		r.EnableProfiling()
		row.Timer = "gpu"
	} else {
		row.Timer = "wall"
	}
	var times []float64
	warm := 2 // warm-up calls, extended until warmFor has passed
	began := time.Now()
	for i := 0; i < warm+reps; i++ {
		if i == 0 {
			if err := kernels.Poison(r, y); err != nil {
				return row, err
			}
			if err := r.Submit(); err != nil {
				return row, err
			}
		}
		t0 := time.Now()
		if err := fn(r, y, x, w, nil); err != nil {
			return row, err
		}
		if err := r.Submit(); err != nil {
			return row, err
		}
		ms := float64(time.Since(t0).Nanoseconds()) / 1e6
		if profiled {
			ms = 0
			for _, t := range r.Timings() {
				if t.Nanos < 0 {
					return row, fmt.Errorf("invalid GPU timestamp for %s", t.Label)
				}
				ms += t.Nanos / 1e6
			}
		}
		if i >= warm {
			times = append(times, ms)
		} else if i == warm-1 && time.Since(began) < warmFor {
			warm++
		}
	}
	row.RepMs = append([]float64(nil), times...)
	row.MedianMs = median(times)
	row.MinMs = times[0]
	for _, t := range times {
		row.MinMs = min(row.MinMs, t)
	}
	row.TFLOPs = 2 * float64(s.M) * float64(s.N) * float64(s.K) / (row.MedianMs * 1e-3) / 1e12

	if check > 0 {
		// Spot-check elements spread over the output, including the last
		// one: gather them on the GPU (y may be GiBs) and download those.
		at := func(c int) (int, int) {
			if c == 1 {
				return s.M - 1, s.N - 1
			}
			return (c * 7919) % s.M, (c * 104729) % s.N
		}
		sample, err := d.NewNamedTensor("sample", ydt, check)
		if err != nil {
			return row, err
		}
		defer sample.Free()
		es := uint64(ydt.Size())
		for c := 0; c < check; c++ {
			m, n := at(c)
			if err := r.CopyBytes(sample, uint64(c)*es, y, uint64(m*s.N+n)*es, es); err != nil {
				return row, err
			}
		}
		if err := r.Submit(); err != nil {
			return row, err
		}
		got, err := sample.DownloadF32()
		if err != nil {
			return row, err
		}
		var num, den float64
		for c := 0; c < check; c++ {
			m, n := at(c)
			var want float64
			for k := 0; k < s.K; k++ {
				want += round(val(1, m*s.K+k), xdt) * round(val(2, n*s.K+k)*wScale, runtime.F16)
			}
			g := float64(got[c])
			if math.IsNaN(g) || math.IsInf(g, 0) {
				return row, fmt.Errorf("output [%d,%d] is %v", m, n, g)
			}
			num += (g - want) * (g - want)
			den += want * want
		}
		row.CheckErr = math.Sqrt(num / max(den, 1e-30))
		tol := 1e-4
		if ydt == runtime.F16 {
			tol = 3e-3
		}
		if row.CheckErr > tol {
			return row, fmt.Errorf("spot check failed: relative error %.3g > %.3g", row.CheckErr, tol)
		}
	}
	return row, nil
}
