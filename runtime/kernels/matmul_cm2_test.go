package kernels

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// cm2Device skips the test unless the device has NV cooperative matrix 2
// (lavapipe has none; SHAREPREFILL_REQUIRE_COOPMAT2=1 makes the absence a
// failure, for runs on a GPU that should have it).
func cm2Device(t *testing.T) *runtime.Device {
	t.Helper()
	d := gputest.Device(t)
	if !d.Caps().CoopMat || !d.Caps().CoopMat2 {
		const why = "device has no VK_NV_cooperative_matrix2 with VK_KHR_cooperative_matrix (or SHAREPREFILL_VK_DISABLE_COOPMAT2=1): the matmul_cm2 kernel is not testable here"
		if os.Getenv("SHAREPREFILL_REQUIRE_COOPMAT2") != "" {
			t.Fatal(why + " (SHAREPREFILL_REQUIRE_COOPMAT2 is set)")
		}
		t.Skip(why)
	}
	return d
}

// cm2TestTiles are forced on every case: the automatic ones and the
// shapes a tuning run sweeps (transposed large tile, BK 32, short unroll,
// a tiny swizzle group, 128 invocations on a 128×128 tile).
var cm2TestTiles = append(append([]cm2Tile(nil), cm2Tiles...),
	cm2Tile{WG: 256, BM: 128, BN: 256, BK: 64, GM: 8, Unroll: 4},
	cm2Tile{WG: 256, BM: 256, BN: 128, BK: 32, GM: 3, Unroll: 2},
	cm2Tile{WG: 256, BM: 128, BN: 128, BK: 32, GM: 1, Unroll: 1},
	cm2Tile{WG: 128, BM: 128, BN: 128, BK: 32, GM: 8, Unroll: 8},
)

// checkMM compares y with the float64 reference: the L2 relative error
// within cmTol, and no element off by more than 20·cmTol (outputs and bias
// are O(1), so a missing bias, row or column shows here even where the
// norm hides it).
func checkMM(t *testing.T, name string, got []float32, want []float64, ydt runtime.DType) {
	t.Helper()
	if e := gputest.RelErr(got, want); e > cmTol(ydt) {
		t.Errorf("%s: relative error %.3g > %.3g", name, e, cmTol(ydt))
		return
	}
	for i, g := range got {
		if d := math.Abs(float64(g) - want[i]); d > 20*cmTol(ydt) {
			t.Errorf("%s: y[%d] = %g, want %g (more than %.3g off)", name, i, g, want[i], 20*cmTol(ydt))
			return
		}
	}
}

// TestMatMulCoopMat2 compares matmul_cm2 with the float64 reference on
// fresh random inputs, for every tile the device takes, at sizes that
// leave tails in M, N and K (K also not a multiple of 8 or 16, which
// clears ALIGNED), tiles with interior and edge workgroups, interior
// tiles with whole unrolled loop trips, leftover slabs and a K tail, and
// the production case (aligned, K a multiple of BK·UNROLL), f16 and f32
// outputs poisoned first, with and without bias.
func TestMatMulCoopMat2(t *testing.T) {
	d := cm2Device(t)
	rng := gputest.Rand(t)
	shapes := [][3]int{
		{5, 7, 3}, {67, 130, 100}, {130, 257, 264}, {129, 129, 33},
		{300, 65, 512}, {17, 520, 1032}, {600, 300, 136}, {513, 260, 1000},
		{1030, 390, 1288}, {520, 260, 1024},
	}
	ran := 0
	for i, sh := range shapes {
		for j, ydt := range []runtime.DType{runtime.F16, runtime.F32} {
			c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: runtime.F16, ydt: ydt, bias: (i+j)%2 == 0}
			in := mmInputs(t, d, c, rng)
			want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
			for _, tile := range cm2TestTiles {
				if err := tile.check(d); err != nil {
					if i == 0 && j == 0 {
						t.Logf("skipping tile: %v", err)
					}
					continue
				}
				name := fmt.Sprintf("%s M=%d N=%d K=%d y=%s bias=%v", tile, c.M, c.N, c.K, c.ydt, c.bias)
				y := shaped(t, d, c.ydt, nil, c.M, c.N)
				if err := d.Run(func(r *runtime.Recorder) error {
					if err := Poison(r, y); err != nil {
						return err
					}
					return matMulCM2(r, mmShape{M: c.M, N: c.N, K: c.K}, y, in.x, in.w, in.bias, tile)
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkMM(t, name, download(t, y), want, c.ydt)
				y.Free()
				ran++
			}
		}
	}
	if ran == 0 {
		t.Fatal("no cooperative-matrix-2 tile fits this device")
	}
}

// TestMatMulCoopMat2Routing: on a device with cooperative matrix 2, MatMul
// of an f16 x takes matmul_cm2 (MatMulKernel says so) and gives the bits
// of MatMulCoopMat2, matching the reference on a problem of many tiles and
// swizzle groups with a K tail; an f32 x still takes the tiled kernel.
func TestMatMulCoopMat2Routing(t *testing.T) {
	d := cm2Device(t)
	rng := gputest.Rand(t)
	c := mmCase{M: 2100, N: 1000, K: 2088, xdt: runtime.F16, ydt: runtime.F32, bias: true}
	if k := MatMulKernel(d, c.M, c.N, c.K, runtime.F16); !strings.HasPrefix(k, "cm2 ") {
		t.Fatalf("MatMulKernel(%d, %d, %d, f16) = %q, want cm2", c.M, c.N, c.K, k)
	}
	if k := MatMulKernel(d, c.M, c.N, c.K, runtime.F32); !strings.HasPrefix(k, "tiled ") {
		t.Errorf("MatMulKernel(%d, %d, %d, f32) = %q, want tiled", c.M, c.N, c.K, k)
	}
	// Below cm2MinK the KHR kernel (faster there on an H100).
	if k := MatMulKernel(d, c.M, c.N, cm2MinK-8, runtime.F16); !strings.HasPrefix(k, "coopmat ") {
		t.Errorf("MatMulKernel(%d, %d, %d, f16) = %q, want coopmat", c.M, c.N, cm2MinK-8, k)
	}
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
	auto := run(MatMul)
	forced := run(MatMulCoopMat2)
	checkMM(t, "MatMul", auto, want, c.ydt)
	if i := gputest.FirstBitDiff(auto, forced); i >= 0 {
		t.Errorf("MatMul and MatMulCoopMat2 differ at %d: %g vs %g", i, auto[i], forced[i])
	}
}

// TestMatMulCoopMat2Chunked forces the split over M and N (unaligned
// element offsets: ALIGNED off, edge tiles inside the bindings) and
// compares with the reference.
func TestMatMulCoopMat2Chunked(t *testing.T) {
	d := cm2Device(t)
	rng := gputest.Rand(t)
	c := mmCase{M: 600, N: 400, K: 96, xdt: runtime.F16, ydt: runtime.F16, bias: true}
	in := mmInputs(t, d, c, rng)
	want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
	for _, lim := range []uint64{0, 16384, 40000} {
		checkMM(t, fmt.Sprintf("limit %d", lim), matMulLimited(t, d, c, in, lim, MatMulCoopMat2), want, c.ydt)
	}
}

// TestMatMulCoopMat2Tuned: a Tuning.MatMulCM2Tile is the only tile the
// device takes (MatMulKernel names it, results are right), and a tile the
// shader cannot run is an error naming it, not a dispatch.
func TestMatMulCoopMat2Tuned(t *testing.T) {
	cm2Device(t)
	rng := gputest.Rand(t)
	tuned := runtime.MatMulCM2Tile{WG: 256, BM: 128, BN: 128, BK: 32, GM: 2, Unroll: 2}
	d := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{MatMulCM2Tile: tuned}})
	c := mmCase{M: 300, N: 200, K: 72, xdt: runtime.F16, ydt: runtime.F32, bias: false}
	if k, want := MatMulKernel(d, c.M, c.N, c.K, runtime.F16), "cm2 "+cm2Tile(tuned).String(); k != want {
		t.Errorf("MatMulKernel = %q, want %q", k, want)
	}
	in := mmInputs(t, d, c, rng)
	want := RefMatMul(in.xv, in.wv, in.bv, c.M, c.N, c.K)
	y := shaped(t, d, c.ydt, nil, c.M, c.N)
	if err := d.Run(func(r *runtime.Recorder) error {
		if err := Poison(r, y); err != nil {
			return err
		}
		return MatMul(r, y, in.x, in.w, nil)
	}); err != nil {
		t.Fatal(err)
	}
	checkMM(t, "tuned", download(t, y), want, c.ydt)

	bad := gputest.Open(t, runtime.Options{Tuning: runtime.Tuning{MatMulCM2Tile: runtime.MatMulCM2Tile{WG: 256, BM: 128, BN: 128, BK: 24}}})
	x := shaped(t, bad, runtime.F16, nil, 8, 24)
	w := shaped(t, bad, runtime.F16, nil, 4, 24)
	yb := shaped(t, bad, runtime.F32, nil, 8, 4)
	err := bad.Run(func(r *runtime.Recorder) error { return MatMul(r, yb, x, w, nil) })
	if err == nil || !strings.Contains(err.Error(), "128x128x24") {
		t.Errorf("MatMul with tuned tile BK 24 = %v, want an error naming the tile", err)
	}
}

// TestMatMulCoopMat2Errors: an f32 input and tiles the shader or driver
// cannot take are refused before any dispatch.
func TestMatMulCoopMat2Errors(t *testing.T) {
	d := cm2Device(t)
	x := shaped(t, d, runtime.F32, nil, 8, 16)
	w := shaped(t, d, runtime.F16, nil, 4, 16)
	y := shaped(t, d, runtime.F32, nil, 8, 4)
	if err := d.Run(func(r *runtime.Recorder) error { return MatMulCoopMat2(r, y, x, w, nil) }); err == nil {
		t.Error("f32 input accepted")
	}
	x16 := shaped(t, d, runtime.F16, nil, 8, 16)
	for _, tile := range []cm2Tile{
		{WG: 256, BM: 128, BN: 128, BK: 24},             // BK not a multiple of 16
		{WG: 256, BM: 256, BN: 256, BK: 64},             // 256 accumulators per invocation
		{WG: 256, BM: 128, BN: 128, BK: 64, Unroll: 17}, // unroll limit
		{WG: 100, BM: 64, BN: 64, BK: 64},               // not whole subgroups
	} {
		if err := d.Run(func(r *runtime.Recorder) error {
			return matMulCM2(r, mmShape{M: 8, N: 4, K: 16}, y, x16, w, nil, tile)
		}); err == nil {
			t.Errorf("invalid tile %s accepted", tile)
		}
	}
}

// TestMatMulCoopMat2Unavailable runs on every device: where cooperative
// matrix 2 is missing (lavapipe) or switched off (DisableCoopMat2, the
// option behind SHAREPREFILL_VK_DISABLE_COOPMAT2), forcing the kernel is
// an error wrapping runtime.ErrMissingFeature, and MatMul does not route
// to it.
func TestMatMulCoopMat2Unavailable(t *testing.T) {
	d := gputest.Device(t)
	if d.Caps().CoopMat2 {
		d = gputest.Open(t, runtime.Options{DisableCoopMat2: true})
		if d.Caps().CoopMat2 {
			t.Fatal("DisableCoopMat2 left Caps().CoopMat2 on")
		}
	}
	x := shaped(t, d, runtime.F16, nil, 40, 16)
	w := shaped(t, d, runtime.F16, nil, 24, 16)
	y := shaped(t, d, runtime.F32, nil, 40, 24)
	err := d.Run(func(r *runtime.Recorder) error { return MatMulCoopMat2(r, y, x, w, nil) })
	if !errors.Is(err, runtime.ErrMissingFeature) || !strings.Contains(err.Error(), "cooperative-matrix-2") {
		t.Errorf("MatMulCoopMat2 without the feature = %v, want an ErrMissingFeature naming cooperative-matrix-2", err)
	}
	err = d.Run(func(r *runtime.Recorder) error {
		return matMulCM2(r, mmShape{M: 40, N: 24, K: 16}, y, x, w, nil, cm2Large)
	})
	if !errors.Is(err, runtime.ErrMissingFeature) {
		t.Errorf("matMulCM2 without the feature = %v, want ErrMissingFeature", err)
	}
	if k := MatMulKernel(d, 4096, 4096, 4096, runtime.F16); strings.HasPrefix(k, "cm2") {
		t.Errorf("MatMulKernel = %q on a device without cooperative matrix 2", k)
	}
	if l := cm2TilesOf(d); len(l) != 0 {
		t.Errorf("cm2TilesOf = %v on a device without cooperative matrix 2", l)
	}
}

// TestPickCM2Tile runs everywhere: the size classes follow the workgroup
// count of the Llama-3-8B shapes, and an empty list gives nothing.
func TestPickCM2Tile(t *testing.T) {
	medium, small := cm2Tiles[0], cm2Tiles[1]
	for _, c := range []struct {
		m, n int
		want cm2Tile
	}{
		{2048, 4096, medium},   // q/o: 16×32 = 512 workgroups
		{2048, 14336, medium},  // gate/up
		{2048, 1024, medium},   // k/v: 16×8 = 128
		{8192, 1024, medium},   // 64×8
		{512, 1024, small},     // 4×8 medium, 8×16 small: 128
		{100, 100, small},      // nothing reaches 128: the smallest
		{4096, 128256, medium}, // lm_head
	} {
		got, ok := pickCM2Tile(cm2Tiles, c.m, c.n)
		if !ok || got != c.want {
			t.Errorf("pickCM2Tile(%d, %d) = %s, %v; want %s", c.m, c.n, got, ok, c.want)
		}
	}
	if _, ok := pickCM2Tile(nil, 4096, 4096); ok {
		t.Error("pickCM2Tile(nil) found a tile")
	}
	one := []cm2Tile{medium}
	if got, _ := pickCM2Tile(one, 8, 8); got != medium {
		t.Errorf("pickCM2Tile of a one-tile list = %s, want %s", got, medium)
	}
}
