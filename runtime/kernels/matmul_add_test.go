package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// mmKernel is one matmul kernel and tile, forced: run records the problem
// s (s.Acc selects y += x·Wᵀ).
type mmKernel struct {
	name    string
	f16Only bool // takes f16 x only (the cooperative-matrix kernels)
	f32Only bool // tested with f32 y only
	run     func(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error
}

// mmKernels are the kernels and tiles d can run apart from matmul_cm2:
// the tiled kernel's two tiles always, and matmul_cm1's automatic and a
// rectangular tile where the device has KHR cooperative matrices.
// matmul_cm1's f16-output module differs from the f32 one in the store's
// conversion only and takes minutes to compile on a cooperative-matrix
// lavapipe, so its tiles but cmSmall are tested with f32 y only.
func mmKernels(d *runtime.Device) []mmKernel {
	var l []mmKernel
	for _, t := range []mmTile{{BM: 64, BN: 64, BK: 32, TM: 4, TN: 4}, {BM: 128, BN: 128, BK: 32, TM: 8, TN: 8}} {
		if t.shared() > d.Caps().MaxSharedMemory {
			continue
		}
		l = append(l, mmKernel{fmt.Sprintf("tiled %dx%d", t.BM, t.BN), false, false, func(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
			return matMulTiled(r, s, y, x, w, bias, t)
		}})
	}
	if d.Caps().CoopMat {
		for _, t := range []cmTile{cmLarge, cmSmall, {BM: 64, BN: 128, BK: 32, WM: 32, WN: 64, GM: 3}} {
			if !t.valid(d.Caps().SubgroupSize) || t.shared() > d.Caps().MaxSharedMemory {
				continue
			}
			l = append(l, mmKernel{"coopmat " + t.String(), true, t != cmSmall, func(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
				return matMulCM(r, s, y, x, w, bias, t)
			}})
		}
	}
	return l
}

// cm2Kernels are matmul_cm2's automatic tiles on d and one with BK 32, a
// short unroll and a tiny swizzle group (those the driver takes).
func cm2Kernels(d *runtime.Device) []mmKernel {
	var l []mmKernel
	for _, t := range append(cm2TilesOf(d), cm2Tile{WG: 256, BM: 128, BN: 128, BK: 32, GM: 1, Unroll: 1}) {
		if t.check(d) != nil {
			continue
		}
		l = append(l, mmKernel{"cm2 " + t.String(), true, false, func(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor) error {
			return matMulCM2(r, s, y, x, w, bias, t)
		}})
	}
	return l
}

// refMatMulAdd is the float64 reference of MatMulAdd: y0 + x·Wᵀ (+ bias).
func refMatMulAdd(y0, x, w, bias []float32, M, N, K int) []float64 {
	want := RefMatMul(x, w, bias, M, N, K)
	for i := range want {
		want[i] += float64(y0[i])
	}
	return want
}

// TestMatMulAdd runs the tiled kernel and, where the device has them,
// the KHR cooperative-matrix kernel with the residual add in the epilogue
// (testMatMulAdd).
func TestMatMulAdd(t *testing.T) {
	d := gputest.Device(t)
	testMatMulAdd(t, d, mmKernels(d))
}

// TestMatMulAddCoopMat2 is TestMatMulAdd for matmul_cm2 (skipped without
// VK_NV_cooperative_matrix2 unless SHAREPREFILL_REQUIRE_COOPMAT2 is set).
func TestMatMulAddCoopMat2(t *testing.T) {
	d := cm2Device(t)
	ks := cm2Kernels(d)
	if len(ks) == 0 {
		t.Fatalf("no matmul_cm2 tile fits the driver's flexible-dimension list on %s", d.Info().Name)
	}
	testMatMulAdd(t, d, ks)
}

// testMatMulAdd runs kernels with the residual add in the epilogue (y +=
// x·Wᵀ + bias) on fresh random inputs at sizes that leave tails in M, N
// and K (K also not a multiple of 8, the gathered loads), with and without
// bias, f32 and f16 y (holding random old values, of the size of the
// products), and checks (a) the float64 reference and (b) for f32 y, bit
// for bit, the unfused pair: the same kernel into a poisoned f32
// temporary, then AddInPlace.
func testMatMulAdd(t *testing.T, d *runtime.Device, kernels []mmKernel) {
	rng := gputest.Rand(t)
	for _, k := range kernels {
		t.Logf("kernel %s", k.name)
	}
	shapes := [][3]int{{5, 7, 3}, {67, 130, 100}, {130, 67, 40}, {33, 65, 257}, {129, 129, 264}}
	for i, sh := range shapes {
		for j, ydt := range []runtime.DType{runtime.F32, runtime.F16} {
			for _, xdt := range []runtime.DType{runtime.F16, runtime.F32} {
				c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: xdt, ydt: ydt, bias: (i+j)%2 == 0}
				in := mmInputs(t, d, c, rng)
				y0 := make([]float32, c.M*c.N)
				for k := range y0 {
					y0[k] = float32(rng.NormFloat64())
				}
				if ydt == runtime.F16 {
					y0 = runtime.RoundF16(y0)
				}
				want := refMatMulAdd(y0, in.xv, in.wv, in.bv, c.M, c.N, c.K)
				s := mmShape{M: c.M, N: c.N, K: c.K}
				for _, k := range kernels {
					if (k.f16Only && xdt != runtime.F16) || (k.f32Only && ydt != runtime.F32) {
						continue
					}
					name := fmt.Sprintf("%s M=%d N=%d K=%d x=%s y=%s bias=%v", k.name, c.M, c.N, c.K, xdt, ydt, c.bias)
					fused := shaped(t, d, ydt, y0, c.M, c.N)
					sa := s
					sa.Acc = true
					if err := d.Run(func(r *runtime.Recorder) error { return k.run(r, sa, fused, in.x, in.w, in.bias) }); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got := download(t, fused)
					fused.Free()
					checkMM(t, name, got, want, ydt)
					if ydt != runtime.F32 {
						continue
					}
					unfused := shaped(t, d, ydt, y0, c.M, c.N)
					tmp := shaped(t, d, runtime.F32, nil, c.M, c.N)
					if err := d.Run(func(r *runtime.Recorder) error {
						if err := Poison(r, tmp); err != nil {
							return err
						}
						if err := k.run(r, s, tmp, in.x, in.w, in.bias); err != nil {
							return err
						}
						return AddInPlace(r, unfused, tmp)
					}); err != nil {
						t.Fatalf("%s unfused: %v", name, err)
					}
					ref := download(t, unfused)
					unfused.Free()
					tmp.Free()
					for e := range ref {
						if math.Float32bits(got[e]) != math.Float32bits(ref[e]) {
							t.Errorf("%s: y[%d] = %v fused, %v as MatMul then AddInPlace", name, e, got[e], ref[e])
							break
						}
					}
				}
			}
		}
	}
}

// TestMatMulAddRouted runs MatMulAdd itself (the device's variant table;
// M ≤ GEMVMaxM takes MatVecAdd) with f16 x and f32 y against the float64
// reference, and for M > GEMVMaxM again with the binding limit forcing
// chunks over M and N, bit for bit equal to the whole run.
func TestMatMulAddRouted(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, sh := range [][3]int{{3, 130, 96}, {67, 130, 96}, {200, 72, 40}} {
		c := mmCase{M: sh[0], N: sh[1], K: sh[2], xdt: runtime.F16, ydt: runtime.F32, bias: true}
		in := mmInputs(t, d, c, rng)
		y0 := make([]float32, c.M*c.N)
		for k := range y0 {
			y0[k] = float32(rng.NormFloat64())
		}
		want := refMatMulAdd(y0, in.xv, in.wv, in.bv, c.M, c.N, c.K)
		name := fmt.Sprintf("MatMulAdd (%s) M=%d N=%d K=%d", MatMulKernel(d, c.M, c.N, c.K, c.xdt), c.M, c.N, c.K)
		run := func(limit uint64) []float32 {
			matmulBindingLimit = limit
			defer func() { matmulBindingLimit = 0 }()
			y := shaped(t, d, c.ydt, y0, c.M, c.N)
			defer y.Free()
			if err := d.Run(func(r *runtime.Recorder) error { return MatMulAdd(r, y, in.x, in.w, in.bias) }); err != nil {
				t.Fatalf("%s (binding limit %d): %v", name, limit, err)
			}
			return download(t, y)
		}
		whole := run(0)
		checkMM(t, name, whole, want, c.ydt)
		if c.M <= GEMVMaxM {
			continue // MatVecAdd takes weights within one binding only
		}
		chunked := run(2048)
		for e := range whole {
			if math.Float32bits(whole[e]) != math.Float32bits(chunked[e]) {
				t.Errorf("%s: y[%d] = %v chunked, %v whole", name, e, chunked[e], whole[e])
				break
			}
		}
	}
}
