package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// NV cooperative-matrix-2 variant of MatMul (shaders/matmul_cm2.comp):
// workgroup-scope fragments loaded through tensor layouts, so the driver
// picks the shared-memory staging and the hardware instructions. MatMul does
// not route to it: on the H200 it measured 150 TFLOP/s against the KHR
// kernel's 171 (bench/RESULTS.md, cooperative-matrix tuning log); call MatMulCoopMat2 (or
// bench/matmul -variant coopmat2) to use it.

// cm2Tile is a tile configuration of matmul_cm2 (spec constants 0..4).
type cm2Tile struct{ WG, BM, BN, BK, GM uint32 }

func (t cm2Tile) valid() bool {
	return t.WG%32 == 0 && t.WG > 0 && t.WG <= 1024 && t.BM%16 == 0 && t.BN%16 == 0 && t.BK%16 == 0 &&
		t.BM > 0 && t.BN > 0 && t.BK > 0 && t.GM > 0
}

func (t cm2Tile) String() string {
	return fmt.Sprintf("wg%d/%dx%dx%d/g%d", t.WG, t.BM, t.BN, t.BK, t.GM)
}

var (
	// cm2Large: 128 invocations, 128×128, BK 32 (the fastest of ten tiles
	// tried on the H200; llama.cpp's 256/128×256/64 ran at 110 TFLOP/s).
	cm2Large = cm2Tile{WG: 128, BM: 128, BN: 128, BK: 32, GM: 8}
	// cm2Small for grids of few large tiles.
	cm2Small = cm2Tile{WG: 128, BM: 64, BN: 64, BK: 64, GM: 8}
)

// chooseCM2Tile takes the large tile when it gives at least 128 workgroups.
func chooseCM2Tile(M, N int) cm2Tile {
	if ceilDiv(M, int(cm2Large.BM))*ceilDiv(N, int(cm2Large.BN)) >= 128 {
		return cm2Large
	}
	return cm2Small
}

// MatMulCoopMat2 is MatMul forced onto the cooperative-matrix-2 kernel: x
// must be f16 and the device must have dev.Caps().CoopMat2.
func MatMulCoopMat2(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul", y, x, w, bias)
	if err != nil {
		return err
	}
	t := cm2Tile(r.Device().Tuning().MatMul2Tile)
	if t == (cm2Tile{}) {
		t = chooseCM2Tile(s.M, s.N)
	}
	return matMulCM2(r, s, y, x, w, bias, t)
}

func matMulCM2(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, t cm2Tile) error {
	d := r.Device()
	caps := d.Caps()
	if !caps.CoopMat2 {
		return fmt.Errorf("matmul: %w: the cooperative-matrix-2 kernel needs VK_NV_cooperative_matrix2 (or SHAREPREFILL_VK_DISABLE_COOPMAT2 is set)", runtime.ErrMissingFeature)
	}
	if x.DType() != runtime.F16 {
		return fmt.Errorf("matmul: the cooperative-matrix-2 kernel needs an f16 input, %s is %s", x.Name(), x.DType())
	}
	if s.M == 0 {
		return nil
	}
	if !t.valid() {
		return fmt.Errorf("matmul: invalid cooperative-matrix-2 tile %s", t)
	}
	if !cm2Fits(d, int(t.WG), [3]int{int(t.BM), int(t.BN), int(t.BK)}) {
		return fmt.Errorf("matmul: cooperative-matrix-2 tile %s: the driver lists no workgroup-scope f16 matrices of these granularities for %d invocations", t, t.WG)
	}
	sh := "matmul_cm2_y" + dtName(y.DType())
	mc := d.Info().MaxWorkgroupCount
	chunks, err := mmPlan(d, s, 2, y.DType().Size(), int(t.BM), int(t.BN), 1<<30)
	if err != nil {
		return err
	}
	return mmRecord(r, s, chunks, y, x, w, bias, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		k, err := d.Kernel(runtime.KernelDesc{
			Shader: sh, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
			Spec:          []uint32{t.WG, t.BM, t.BN, t.BK, t.GM},
			SubgroupSize:  caps.SubgroupSize,
			FullSubgroups: true,
		})
		if err != nil {
			return err
		}
		g, err := tileGrid(c, int(t.BM), int(t.BN), mc)
		if err != nil {
			return err
		}
		return r.Dispatch(k, g, p, xa, wa, ba, ya)
	})
}
