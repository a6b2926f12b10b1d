package kernels

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// cmDevice skips the test unless the device has KHR cooperative matrices
// (Debian 12's lavapipe has none; scripts/test-coopmat-lavapipe.sh runs
// these tests on a newer lavapipe, and SHAREPREFILL_REQUIRE_COOPMAT=1 makes
// the absence a failure).
func cmDevice(t *testing.T) *runtime.Device {
	t.Helper()
	d := gputest.Device(t)
	if !d.Caps().CoopMat {
		const why = "device has no VK_KHR_cooperative_matrix f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT=1): cooperative-matrix variants not testable here"
		if os.Getenv("SHAREPREFILL_REQUIRE_COOPMAT") != "" {
			t.Fatal(why + " (SHAREPREFILL_REQUIRE_COOPMAT is set)")
		}
		t.Skip(why)
	}
	return d
}

// cmTol: tensor-core f32 accumulation may align addends with truncation, so
// allow a little more than mmTol's pure-f32 bound.
func cmTol(ydt runtime.DType) float64 {
	if ydt == runtime.F16 {
		return 2e-3
	}
	return 5e-5
}

// cmTiles are forced on every case: the automatic ones, BK 16, rectangular
// subgroup tiles and a tiny swizzle group.
var cmTiles = []cmTile{
	cmLarge, cmSmall, cmLargeK16,
	{BM: 128, BN: 256, BK: 16, WM: 64, WN: 64, GM: 4},
	{BM: 64, BN: 128, BK: 32, WM: 32, WN: 64, GM: 3},
	{BM: 128, BN: 64, BK: 32, WM: 64, WN: 16, GM: 1},
	{BM: 256, BN: 128, BK: 32, WM: 64, WN: 64, GM: 8, NS: 1},
	{BM: 128, BN: 128, BK: 64, WM: 64, WN: 32, GM: 2, NS: 1},
}

// TestMatMulCoopMat compares the cooperative-matrix kernel with the float64
// reference (and, bit for bit where both are exact, nothing else) at sizes
// that leave tails in M, N and K for every tile, K both a multiple of 8
// (16-byte loads) and not (gathered loads), with and without bias, f16 and
// f32 outputs.
func TestMatMulCoopMat(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	shapes := [][3]int{
		{5, 7, 3}, {1, 130, 40}, {67, 130, 100}, {130, 257, 264},
		{129, 129, 33}, {300, 65, 512}, {17, 520, 1032},
	}
	for i, sh := range shapes {
		for j, ydt := range []runtime.DType{runtime.F16, runtime.F32} {
			c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: runtime.F16, ydt: ydt, bias: (i+j)%2 == 0}
			in := mmInputs(t, d, c, rng)
			want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
			for _, tile := range cmTiles {
				if !tile.valid(d.Caps().SubgroupSize) || tile.shared() > d.Caps().MaxSharedMemory {
					continue
				}
				name := fmt.Sprintf("%s M=%d N=%d K=%d y=%s bias=%v", tile, c.M, c.N, c.K, c.ydt, c.bias)
				y := shaped(t, d, c.ydt, nil, c.M, c.N)
				if err := d.Run(func(r *runtime.Recorder) error {
					if err := Poison(r, y); err != nil {
						return err
					}
					return matMulCM(r, mmShape{M: c.M, N: c.N, K: c.K}, y, in.x, in.w, in.bias, tile)
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if e := gputest.RelErr(download(t, y), want); e > cmTol(c.ydt) {
					t.Errorf("%s: relative error %.3g > %.3g", name, e, cmTol(c.ydt))
				}
				y.Free()
			}
		}
	}
}

// TestMatMulCoopMatLarge runs the automatic choice (MatMul routes to the
// cooperative-matrix kernel) on a problem of many tiles and several swizzle
// groups, with a partial last group and a K tail inside the last slab, and
// compares with the scalar tiled kernel and the reference.
func TestMatMulCoopMatLarge(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	c := mmCase{M: 2100, N: 1000, K: 1288, xdt: runtime.F16, ydt: runtime.F32, bias: true}
	in := mmInputs(t, d, c, rng)
	want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
	run := func(f func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error) []float32 {
		y := shaped(t, d, c.ydt, nil, c.M, c.N)
		defer y.Free()
		if err := d.Run(func(r *runtime.Recorder) error {
			if err := Poison(r, y); err != nil {
				return err
			}
			return f(r, y, in.x, in.w, in.bias)
		}); err != nil {
			t.Fatal(err)
		}
		return download(t, y)
	}
	cm := run(MatMul)
	scalar := run(MatMulTiled)
	if e := gputest.RelErr(cm, want); e > cmTol(c.ydt) {
		t.Errorf("coopmat: relative error %.3g > %.3g", e, cmTol(c.ydt))
	}
	if e := gputest.RelErr(scalar, want); e > cmTol(c.ydt) {
		t.Errorf("scalar: relative error %.3g > %.3g", e, cmTol(c.ydt))
	}
	var maxd float64
	for i := range cm {
		maxd = max(maxd, math.Abs(float64(cm[i]-scalar[i])))
	}
	t.Logf("max |coopmat - scalar| = %.3g", maxd)
}

// TestMatMulCoopMatChunked forces the split over M and N (unaligned element
// offsets: the gathered-load path) and compares with the unchunked result.
func TestMatMulCoopMatChunked(t *testing.T) {
	d := cmDevice(t)
	rng := gputest.Rand(t)
	c := mmCase{M: 300, N: 200, K: 96, xdt: runtime.F16, ydt: runtime.F16, bias: true}
	in := mmInputs(t, d, c, rng)
	want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
	for _, lim := range []uint64{0, 8192, 20000} {
		got := matMulLimited(t, d, c, in, lim, MatMulCoopMat)
		if e := gputest.RelErr(got, want); e > cmTol(c.ydt) {
			t.Errorf("limit %d: relative error %.3g > %.3g", lim, e, cmTol(c.ydt))
		}
	}
}

// matMulLimited runs mm on the inputs of c into a poisoned output, with
// matmulBindingLimit set to lim (0: the device's) so that the call splits
// into chunks, and returns the output.
func matMulLimited(t *testing.T, d *runtime.Device, c mmCase, in mmData, lim uint64,
	mm func(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error) []float32 {
	t.Helper()
	matmulBindingLimit = lim
	defer func() { matmulBindingLimit = 0 }()
	y := shaped(t, d, c.ydt, nil, c.M, c.N)
	defer y.Free()
	err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, y); err != nil {
			return err
		}
		return mm(r, y, in.x, in.w, in.bias)
	})
	if err != nil {
		t.Fatalf("limit %d: %v", lim, err)
	}
	return download(t, y)
}

// TestMatMulCoopMatErrors: f32 input and a bad tile are refused.
func TestMatMulCoopMatErrors(t *testing.T) {
	d := cmDevice(t)
	x := shaped(t, d, runtime.F32, nil, 8, 16)
	w := shaped(t, d, runtime.F16, nil, 4, 16)
	y := shaped(t, d, runtime.F32, nil, 8, 4)
	if err := d.Run(func(r *runtime.Recorder) error { return MatMulCoopMat(r, y, x, w, nil) }); err == nil {
		t.Error("f32 input accepted")
	}
	x16 := shaped(t, d, runtime.F16, nil, 8, 16)
	if err := d.Run(func(r *runtime.Recorder) error {
		return matMulCM(r, mmShape{M: 8, N: 4, K: 16}, y, x16, w, nil, cmTile{BM: 100, BN: 64, BK: 32, WM: 64, WN: 32, GM: 1})
	}); err == nil {
		t.Error("invalid tile accepted")
	}
}

// TestCMTileChoice runs everywhere: the automatic tiles are valid and fit
// 32 KiB (lavapipe) or 48 KiB (NVIDIA) of shared memory.
func TestCMTileChoice(t *testing.T) {
	for _, sm := range []uint32{32 << 10, 48 << 10} {
		for _, mn := range [][2]int{{8, 8}, {8192, 4096}, {512, 4096}} {
			tile := chooseCMTile(runtime.Caps{MaxSharedMemory: sm, SubgroupSize: 32}, mn[0], mn[1])
			if !tile.valid(32) || tile.shared() > sm {
				t.Errorf("shared %d, %v: tile %s invalid or too big (%d bytes)", sm, mn, tile, tile.shared())
			}
		}
	}
	if (cmTile{BM: 100, BN: 64, BK: 32, WM: 64, WN: 32, GM: 1}).valid(32) {
		t.Error("BM not a multiple of WM accepted")
	}
}

// TestMatMulCoopMatStore: the epilogue's direct stores (the fragments of
// whole, aligned tiles straight to memory: the default) give the same bits
// as every fragment through the shared-memory scratch
// (Tuning.MatMulStoreScratch), for MatMul into f32 and f16, MatMulAdd (y's
// old values added) and MatMulSwiGLU, at shapes whose tiles are all whole,
// partly whole (both paths in one dispatch), and whole but with rows not
// 16-byte aligned (N = 100: the scratch path only); each result is also
// held to the float64 reference. The mismatches are reported by fragment.
func TestMatMulCoopMatStore(t *testing.T) {
	direct := cmDevice(t)
	scratch := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{MatMulStoreScratch: true}})
	rng := gputest.Rand(t)
	for _, c := range []mmCase{
		{M: 128, N: 128, K: 64, xdt: runtime.F16, ydt: runtime.F32},
		{M: 100, N: 96, K: 72, xdt: runtime.F16, ydt: runtime.F16},
		{M: 37, N: 40, K: 40, xdt: runtime.F16, ydt: runtime.F32},
		{M: 70, N: 100, K: 64, xdt: runtime.F16, ydt: runtime.F16},
	} {
		in := mmInputs(t, direct, c, rng)
		y0 := make([]float32, c.M*c.N)
		for i := range y0 {
			y0[i] = float32(rng.NormFloat64())
		}
		if c.ydt == runtime.F16 {
			y0 = runtime.RoundF16(y0)
		}
		want := RefMatMul(in.xv, in.wv, nil, c.M, c.N, c.K)
		wantAdd := make([]float64, len(want))
		for i := range want {
			wantAdd[i] = want[i] + float64(y0[i])
		}
		for _, add := range []bool{false, true} {
			run := func(d *runtime.Device) []float32 {
				t.Helper()
				x := shaped(t, d, runtime.F16, in.xv, c.M, c.K)
				w := shaped(t, d, runtime.F16, in.wv, c.N, c.K)
				y := shaped(t, d, c.ydt, y0, c.M, c.N)
				if err := d.Run(func(r *runtime.Recorder) error {
					s, err := mmCheck("matmul", y, x, w, nil)
					if err != nil {
						return err
					}
					s.Acc = add
					if !add {
						if err := Poison(r, y); err != nil {
							return err
						}
					}
					return matMulCM(r, s, y, x, w, nil, chooseCMTile(d.Caps(), c.M, c.N))
				}); err != nil {
					t.Fatal(err)
				}
				return download(t, y)
			}
			got, ref := run(direct), run(scratch)
			name := fmt.Sprintf("%dx%dx%d y%s add %v", c.M, c.N, c.K, c.ydt, add)
			bad := map[[2]int]int{}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
					bad[[2]int{i / c.N / 16 * 16, i % c.N / 16 * 16}]++
				}
			}
			if len(bad) > 0 {
				t.Errorf("%s: mismatched fragments %v", name, bad)
			}
			w := want
			if add {
				w = wantAdd
			}
			checkMM(t, name, got, w, c.ydt)
		}
	}
	// MatMulSwiGLU's GLU mode: F = 64 (whole fragments) and 40 (a tail).
	for _, c := range []gluCase{{M: 96, F: 64, K: 64}, {M: 33, F: 40, K: 48}} {
		in := gluInputs(t, direct, c, rng)
		run := func(d *runtime.Device) []float32 {
			t.Helper()
			x := shaped(t, d, runtime.F16, in.xv, c.M, c.K)
			w := shaped(t, d, runtime.F16, in.wv, 2*c.F, c.K)
			act := shaped(t, d, runtime.F16, nil, c.M, c.F)
			if err := d.Run(func(r *runtime.Recorder) error {
				if err := Poison(r, act); err != nil {
					return err
				}
				return MatMulSwiGLU(r, act, x, w)
			}); err != nil {
				t.Fatal(err)
			}
			return download(t, act)
		}
		got, ref := run(direct), run(scratch)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("swiglu %+v: element %d = %v direct, %v through the scratch", c, i, got[i], ref[i])
			}
		}
	}
}
