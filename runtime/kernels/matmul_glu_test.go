package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// RefMatMulSwiGLU is SiLU(x·Wgᵀ) ⊙ x·Wuᵀ for x [M, K] and the stacked
// wgu [2F, K] (gate rows over up rows), the sums in float64 rounded to f16
// (as the kernels round gate and up) before SiLU and the product.
func RefMatMulSwiGLU(x, wgu []float32, M, F, K int) []float64 {
	gu := RefMatMul(x, wgu, nil, M, 2*F, K)
	g, u := make([]float32, M*F), make([]float32, M*F)
	for m := range M {
		for f := range F {
			g[m*F+f] = float32(gu[m*2*F+f])
			u[m*F+f] = float32(gu[m*2*F+F+f])
		}
	}
	return RefSwiGLU(runtime.RoundF16(g), runtime.RoundF16(u))
}

// gluCase is one MatMulSwiGLU problem: M rows, F features, K inputs.
type gluCase struct{ M, F, K int }

func (c gluCase) String() string { return fmt.Sprintf("M=%d F=%d K=%d", c.M, c.F, c.K) }

// gluCases leave tails in M and in the features of every tile, with K a
// multiple of 8 (16-byte loads) and not (gathered loads), and F not a
// multiple of 16 (a fragment pair straddling F).
var gluCases = []gluCase{
	{37, 16, 40}, {130, 48, 72}, {515, 176, 520}, {37, 1408, 72},
	{5, 7, 43}, {67, 172, 100}, {130, 33, 64}, {1, 1, 1},
}

// gluData is a problem's inputs: x, the stacked weight, and gate and up as
// separate tensors with the same values (for the unfused path).
type gluData struct {
	x, wgu, wg, wu *runtime.Tensor
	xv, wv         []float32
	want           []float64
}

func gluInputs(t *testing.T, d *runtime.Device, c gluCase, rng interface{ NormFloat64() float64 }) gluData {
	t.Helper()
	norm := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return runtime.RoundF16(v)
	}
	var g gluData
	g.xv = norm(c.M*c.K, 1)
	// Gate sums of a few units (SiLU's curved part and both tails).
	g.wv = norm(2*c.F*c.K, 2/math.Sqrt(float64(c.K)))
	g.x = shaped(t, d, runtime.F16, g.xv, c.M, c.K)
	g.wgu = shaped(t, d, runtime.F16, g.wv, 2*c.F, c.K)
	g.wg = shaped(t, d, runtime.F16, g.wv[:c.F*c.K], c.F, c.K)
	g.wu = shaped(t, d, runtime.F16, g.wv[c.F*c.K:], c.F, c.K)
	g.want = RefMatMulSwiGLU(g.xv, g.wv, c.M, c.F, c.K)
	return g
}

// gluRun records fused (act = fused product) or, with fused nil, the
// unfused sequence mm into f16 gate and up then SwiGLU, and returns act.
func gluRun(t *testing.T, d *runtime.Device, c gluCase, in gluData,
	fused func(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error,
	mm func(r *runtime.Recorder, y, x, w *runtime.Tensor) error) []float32 {
	t.Helper()
	act := shaped(t, d, runtime.F16, nil, c.M, c.F)
	defer act.Free()
	gate := shaped(t, d, runtime.F16, nil, c.M, c.F)
	defer gate.Free()
	up := shaped(t, d, runtime.F16, nil, c.M, c.F)
	defer up.Free()
	err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, act); err != nil {
			return err
		}
		if fused != nil {
			return fused(r, act, in.x, in.wgu)
		}
		for _, s := range []struct{ y, w *runtime.Tensor }{{gate, in.wg}, {up, in.wu}} {
			if err := Poison(r, s.y); err != nil {
				return err
			}
			if err := mm(r, s.y, in.x, s.w); err != nil {
				return err
			}
		}
		return SwiGLU(r, act, gate, up)
	})
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	return download(t, act)
}

// gluCompare checks a fused result against the reference and, bit for bit,
// against the unfused one.
func gluCompare(t *testing.T, name string, got, unfused []float32, want []float64) {
	t.Helper()
	// Relative to each output's magnitude, but not below the smallest
	// normal f16 (2⁻¹⁴): act is f16, and below that its spacing is fixed,
	// so a lone tiny output (M = F = K = 1) cannot be held to 2e-3 of
	// itself.
	scale := make([]float64, len(want))
	for i, w := range want {
		scale[i] = max(math.Abs(w), 0x1p-14)
	}
	if e := gputest.ScaledErr(got, want, scale); e > 2e-3 {
		t.Errorf("%s: error %.3g of the outputs' magnitude > 2e-3", name, e)
	}
	if i := gputest.FirstBitDiff(got, unfused); i >= 0 {
		t.Errorf("%s: act[%d] = %g, MatMul+SwiGLU gives %g (want the same bits)", name, i, got[i], unfused[i])
	}
}

// gluTiles are the tiled kernel's tiles forced on every case: both of
// chooseTile's at BK 16 and 32, wide register blocks on a narrow tile and a
// tiny tile (many workgroups, 64 invocations).
var gluTiles = []mmTile{
	tileSmall, tileLarge,
	{BM: 64, BN: 64, BK: 32, TM: 4, TN: 4},
	{BM: 128, BN: 128, BK: 32, TM: 8, TN: 8},
	{BM: 64, BN: 128, BK: 16, TM: 4, TN: 8},
	{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4},
}

// TestMatMulSwiGLUTiled compares the tiled kernel's GLU mode, for every
// tile, with the reference and bit for bit with the tiled MatMul into f16
// gate and up followed by SwiGLU.
func TestMatMulSwiGLUTiled(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range gluCases {
		in := gluInputs(t, d, c, rng)
		unfused := gluRun(t, d, c, in, nil, func(r *runtime.Recorder, y, x, w *runtime.Tensor) error {
			return MatMulTiled(r, y, x, w, nil)
		})
		for _, tile := range gluTiles {
			if tile.shared() > d.Caps().MaxSharedMemory {
				continue
			}
			got := gluRun(t, d, c, in, func(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error {
				s, err := gluCheck(act, x, wgu)
				if err != nil {
					return err
				}
				return matMulGLUTiled(r, s, act, x, wgu, tile)
			}, nil)
			gluCompare(t, fmt.Sprintf("tiled %+v %v", tile, c), got, unfused, in.want)
		}
	}
}

// TestMatMulSwiGLU runs the automatic choice and compares it with MatMul
// (the same variant of the device's table for these K) into f16 gate and
// up followed by SwiGLU, bit for bit, and with the reference.
func TestMatMulSwiGLU(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range gluCases {
		in := gluInputs(t, d, c, rng)
		unfused := gluRun(t, d, c, in, nil, func(r *runtime.Recorder, y, x, w *runtime.Tensor) error {
			if c.M <= GEMVMaxM { // the product MatMul's matrix kernels compute
				return matMulRows(r, mmShape{M: c.M, N: c.F, K: c.K}, y, x, w, nil)
			}
			return MatMul(r, y, x, w, nil)
		})
		got := gluRun(t, d, c, in, MatMulSwiGLU, nil)
		gluCompare(t, fmt.Sprintf("%s %v", MatMulSwiGLUKernel(d, c.M, c.F, c.K), c), got, unfused, in.want)
	}
}

// TestMatMulSwiGLUCoopMat forces the cooperative-matrix kernel's GLU mode
// on every tile with WN a multiple of 32 (on a CPU device, where each
// pipeline takes long to compile, the tiles chooseCMTile picks) and
// compares it with the reference and bit for bit with the
// cooperative-matrix MatMul into f16 gate and up followed by SwiGLU.
func TestMatMulSwiGLUCoopMat(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	if k := MatMulSwiGLUKernel(d, 100, 100, 64); !strings.HasPrefix(k, "coopmat ") {
		t.Errorf("MatMulSwiGLU takes %q on a device with cooperative matrices", k)
	}
	for _, c := range gluCases {
		in := gluInputs(t, d, c, rng)
		unfused := gluRun(t, d, c, in, nil, func(r *runtime.Recorder, y, x, w *runtime.Tensor) error {
			return MatMulCoopMat(r, y, x, w, nil)
		})
		tiles := cmTiles
		if cpuDevice(d) {
			small16 := cmSmall
			small16.BK = 16
			tiles = []cmTile{cmLarge, cmLargeK16, cmSmall, small16}
		}
		n := 0
		for _, tile := range tiles {
			if tile.WN%32 != 0 || !tile.valid(d.Caps().SubgroupSize) || tile.shared() > d.Caps().MaxSharedMemory {
				continue
			}
			n++
			got := gluRun(t, d, c, in, func(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error {
				s, err := gluCheck(act, x, wgu)
				if err != nil {
					return err
				}
				return matMulGLUCM(r, s, act, x, wgu, tile)
			}, nil)
			gluCompare(t, fmt.Sprintf("coopmat %s %v", tile, c), got, unfused, in.want)
		}
		if n < 3 {
			t.Fatalf("only %d cooperative-matrix tiles fit the device", n)
		}
	}
}

// TestMatMulSwiGLUChunked splits the rows over several dispatches (a small
// binding limit) and checks the result, and that a stacked weight beyond
// one binding is an error naming the limit.
func TestMatMulSwiGLUChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	c := gluCase{M: 300, F: 48, K: 64}
	in := gluInputs(t, d, c, rng)
	defer func(old uint64) { matmulBindingLimit = old }(matmulBindingLimit)
	matmulBindingLimit = 16 << 10 // x: 128 rows a chunk; the weight (12 KiB) fits
	got := gluRun(t, d, c, in, MatMulSwiGLU, nil)
	if e := gputest.RelErr(got, in.want); e > 2e-3 {
		t.Errorf("chunked: relative error %.3g > 2e-3", e)
	}
	matmulBindingLimit = 8 << 10
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	act := shaped(t, d, runtime.F16, nil, c.M, c.F)
	if err := MatMulSwiGLU(r, act, in.x, in.wgu); err == nil || !strings.Contains(err.Error(), "binding") {
		t.Errorf("weight beyond one binding: error %v, want one naming the binding limit", err)
	}
}

// TestMatMulSwiGLUErrors: misuse is an error naming the tensor and the rule.
func TestMatMulSwiGLUErrors(t *testing.T) {
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	x := opNew(t, d, runtime.F16, 5, 8)
	x32 := opNew(t, d, runtime.F32, 5, 8)
	w := opNew(t, d, runtime.F16, 32, 8)
	wOdd := opNew(t, d, runtime.F16, 31, 8)
	w32 := opNew(t, d, runtime.F32, 32, 8)
	w1 := opNew(t, d, runtime.F16, 256)
	wK := opNew(t, d, runtime.F16, 32, 9)
	act := opNew(t, d, runtime.F16, 5, 16)
	wq, _ := quantWeight(t, d, gputest.Rand(t), runtime.Q8_0, 32, 64, moderate)
	xq := opNew(t, d, runtime.F16, 5, 64)
	act32 := opNew(t, d, runtime.F32, 5, 16)
	actN := opNew(t, d, runtime.F16, 5, 32)
	actM := opNew(t, d, runtime.F16, 4, 16)
	for _, c := range []struct {
		name, want string
		err        error
	}{
		{"nil", "nil tensor", MatMulSwiGLU(r, nil, x, w)},
		{"quantized weight", "Dequantize", MatMulSwiGLU(r, act, xq, wq)},
		{"odd rows", "2F rows", MatMulSwiGLU(r, act, x, wOdd)},
		{"f32 weight", "f16 [2F, K]", MatMulSwiGLU(r, act, x, w32)},
		{"1-D weight", "2-D", MatMulSwiGLU(r, act, x, w1)},
		{"f32 x", "must be f16", MatMulSwiGLU(r, act, x32, w)},
		{"K mismatch", "K=9", MatMulSwiGLU(r, act, x, wK)},
		{"f32 act", "must be f16", MatMulSwiGLU(r, act32, x, w)},
		{"act width 2F", "F=16", MatMulSwiGLU(r, actN, x, w)},
		{"act rows", "M=5", MatMulSwiGLU(r, actM, x, w)},
	} {
		if c.err == nil {
			t.Errorf("%s: want an error", c.name)
		} else if !strings.Contains(c.err.Error(), c.want) || !strings.Contains(c.err.Error(), "matmul swiglu") {
			t.Errorf("%s: error %q does not name %q", c.name, c.err, c.want)
		}
	}
}

// TestMatMulSwiGLURounding: gate and up sums from below f16's smallest
// subnormal to beyond its largest finite value (products of f16 powers of
// two 2^-24 … 2^15 apart, three terms) give the same bits fused as MatMul
// into f16 gate and up followed by SwiGLU, on the tiled kernel and, where
// the device has them, on cooperative matrices: the kernels' integer
// rounding to f16 (glu.glsl) is the device's conversion, ties, subnormals
// and overflow to ±Inf included.
func TestMatMulSwiGLURounding(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	c := gluCase{M: 70, F: 96, K: 3}
	pow := func(lo, hi int) float32 {
		m := 1 + float64(rng.IntN(1024))/1024 // 11 significant bits: exact in f16
		if rng.IntN(2) == 0 {
			m = -m
		}
		return float32(math.Ldexp(m, lo+rng.IntN(hi-lo+1)))
	}
	var in gluData
	in.xv = make([]float32, c.M*c.K)
	for i := range in.xv {
		in.xv[i] = pow(-24, 15)
	}
	in.wv = make([]float32, 2*c.F*c.K)
	for i := range in.wv {
		in.wv[i] = pow(-14, 8)
	}
	// Ties: rows 0 and 1 of x are (1, 1, 0) and (0.5, 0.5, 0); gate rows
	// 0 … 2 give g = 65520 (a tie: Inf) and 32760, 5 and 2.5 (a tie: 2)
	// times 2^-24, 65512 (65504) and 32756; the up rows (1, 1, 0), so that
	// u = 2 and 1 (the subnormal tie decides an output bit).
	copy(in.xv, []float32{1, 1, 0, 0.5, 0.5, 0})
	sub := float32(math.Ldexp(1, -24))
	for f, w := range [][2]float32{{65504, 16}, {3 * sub, 2 * sub}, {65504, 8}} {
		copy(in.wv[f*c.K:], []float32{w[0], w[1], 0})
		copy(in.wv[(c.F+f)*c.K:], []float32{1, 1, 0})
	}
	in.xv, in.wv = runtime.RoundF16(in.xv), runtime.RoundF16(in.wv)
	in.x = shaped(t, d, runtime.F16, in.xv, c.M, c.K)
	in.wgu = shaped(t, d, runtime.F16, in.wv, 2*c.F, c.K)
	in.wg = shaped(t, d, runtime.F16, in.wv[:c.F*c.K], c.F, c.K)
	in.wu = shaped(t, d, runtime.F16, in.wv[c.F*c.K:], c.F, c.K)
	check := func(name string, fused []float32, unfused []float32) {
		t.Helper()
		var sub, inf int
		for i, v := range unfused {
			if v != 0 && math.Abs(float64(v)) < 6.2e-5 {
				sub++
			}
			if math.IsInf(float64(v), 0) {
				inf++
			}
			same := math.Float32bits(v) == math.Float32bits(fused[i]) || v != v && fused[i] != fused[i]
			if !same {
				t.Fatalf("%s: act[%d] = %g, MatMul+SwiGLU gives %g (want the same bits)", name, i, fused[i], v)
			}
		}
		if sub == 0 || inf == 0 {
			t.Errorf("%s: %d subnormal and %d infinite outputs: the case no longer covers both ends", name, sub, inf)
		}
	}
	mm := func(r *runtime.Recorder, y, x, w *runtime.Tensor) error { return MatMulTiled(r, y, x, w, nil) }
	check("tiled", gluRun(t, d, c, in, func(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error {
		s, err := gluCheck(act, x, wgu)
		if err != nil {
			return err
		}
		return matMulGLUTiled(r, s, act, x, wgu, chooseTile(d.Caps(), c.M, 2*c.F))
	}, nil), gluRun(t, d, c, in, nil, mm))
	if d.Caps().CoopMat {
		mm := func(r *runtime.Recorder, y, x, w *runtime.Tensor) error { return MatMulCoopMat(r, y, x, w, nil) }
		check("coopmat", gluRun(t, d, c, in, func(r *runtime.Recorder, act, x, wgu *runtime.Tensor) error {
			s, err := gluCheck(act, x, wgu)
			if err != nil {
				return err
			}
			return matMulGLUCM(r, s, act, x, wgu, chooseCMTile(d.Caps(), c.M, 2*c.F))
		}, nil), gluRun(t, d, c, in, nil, mm))
	}
}

// TestMatMulSwiGLUPreferred: the fused path is preferred exactly where
// MatMul takes the same kind of kernel for the gate and up projections; on
// a device without cooperative matrix 2 that is every shape.
func TestMatMulSwiGLUPreferred(t *testing.T) {
	d := gputest.Device(t)
	kind := func(desc string) string {
		k, _, _ := strings.Cut(desc, " ")
		return k
	}
	for _, s := range [][3]int{{37, 48, 64}, {600, 1408, 512}, {4096, 14336, 4096}} {
		m, f, k := s[0], s[1], s[2]
		glu, plain := MatMulSwiGLUKernel(d, m, f, k), MatMulKernel(d, m, f, k, runtime.F16)
		got := MatMulSwiGLUPreferred(d, m, f, k)
		if want := kind(glu) == kind(plain); got != want {
			t.Errorf("m %d f %d k %d: preferred %v with MatMulSwiGLU on %q and MatMul on %q", m, f, k, got, glu, plain)
		}
		if !d.Caps().CoopMat2 && !got {
			t.Errorf("m %d f %d k %d: not preferred on a device without cooperative matrix 2 (%q, %q)", m, f, k, glu, plain)
		}
	}
}
