package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// NV cooperative-matrix-2 (VK_NV_cooperative_matrix2) variant of MatMul:
// f16 x, f16 W, f32 accumulation in one workgroup-scope BM×BN matrix per
// workgroup, operands loaded from global memory through tensor layouts
// (shaders/matmul_cm2.comp). MatMul routes f16 x to it first when
// dev.Caps().CoopMat2 is true (variants.go) and one of the device's tiles
// fits the driver's flexible-dimension list;
// SHAREPREFILL_VK_DISABLE_COOPMAT2=1 turns it off, leaving the
// cooperative-matrix kernel of matmul_cm.go.

// cm2Tile is a tile configuration of matmul_cm2: WG invocations compute a
// BM×BN output tile BK deep per slab (spec constants 0..3), workgroups
// grouped GM tile rows at a time (4; 0 means 8), Unroll slabs per loop
// trip on interior tiles (6; 0 means 8, llama.cpp's unroll for f16).
type cm2Tile struct{ WG, BM, BN, BK, GM, Unroll uint32 }

func (t cm2Tile) gm() uint32 {
	if t.GM == 0 {
		return 8
	}
	return t.GM
}

func (t cm2Tile) unroll() uint32 {
	if t.Unroll == 0 {
		return 8
	}
	return t.Unroll
}

func (t cm2Tile) String() string {
	return fmt.Sprintf("%dx%dx%d/wg%d/g%d/u%d", t.BM, t.BN, t.BK, t.WG, t.gm(), t.unroll())
}

// cm2MaxAccPerInvocation bounds the f32 accumulator elements per
// invocation (BM·BN/WG): llama.cpp's largest tile, 128×256 over 256
// invocations, holds 128; more leaves no registers for the operands.
const cm2MaxAccPerInvocation = 128

// check returns why dev cannot run t, or nil: the shape rules of the
// shader (BK a multiple of 16, Unroll 1..16), the accumulator bound, the
// device's workgroup limit and the driver's flexible-dimension list for
// the products BM×BK · BK×BN (cm2Fits).
func (t cm2Tile) check(dev *runtime.Device) error {
	if t.WG == 0 || t.BM == 0 || t.BN == 0 || t.BK == 0 || t.BK%16 != 0 || t.unroll() > 16 {
		return fmt.Errorf("cooperative-matrix-2 tile %s: want WG, BM, BN > 0, BK a multiple of 16 and UNROLL ≤ 16", t)
	}
	if t.BM*t.BN/t.WG > cm2MaxAccPerInvocation {
		return fmt.Errorf("cooperative-matrix-2 tile %s: %d accumulator elements per invocation, limit %d", t, t.BM*t.BN/t.WG, cm2MaxAccPerInvocation)
	}
	if t.WG > dev.Info().MaxWorkgroupInvocations {
		return fmt.Errorf("cooperative-matrix-2 tile %s: %d invocations, device limit %d", t, t.WG, dev.Info().MaxWorkgroupInvocations)
	}
	if sg := dev.Caps().SubgroupSize; sg == 0 || t.WG%sg != 0 {
		return fmt.Errorf("cooperative-matrix-2 tile %s: %d invocations are not a multiple of the subgroup size %d", t, t.WG, sg)
	}
	if !cm2Fits(dev, int(t.WG), [3]int{int(t.BM), int(t.BN), int(t.BK)}) {
		return fmt.Errorf("cooperative-matrix-2 tile %s: %dx%dx%d with %d invocations is not on the driver's flexible-dimension list", t, t.BM, t.BN, t.BK, t.WG)
	}
	return nil
}

// cm2Tiles are the automatic tiles in preference order, two of the size
// classes of llama.cpp's mul_mm_cm2 for f16, with 8 slabs per loop trip
// (llama.cpp unrolls 8·BK of K). Its tile is weight rows × tokens; here BM
// runs over the rows of x, BN over the rows of W:
//   - medium: 256 invocations, 128×128, BK 64;
//   - small: 128 invocations, 64×64, BK 64.
//
// Its large class (256×128 at 256 invocations, cm2Large) is not taken: on
// an H100 (2026-12-07, bench/RESULTS.md) it compiled to 255 registers and
// ran the Llama-3-8B shapes at 110–117 TFLOP/s, where the medium tile ran
// 241–276 (and the KHR kernel 231–256).
var cm2Tiles = []cm2Tile{
	{WG: 256, BM: 128, BN: 128, BK: 64, GM: 8, Unroll: 8},
	{WG: 128, BM: 64, BN: 64, BK: 64, GM: 8, Unroll: 8},
}

// cm2Large is llama.cpp's large size class, for Tuning.MatMulCM2Tile.
var cm2Large = cm2Tile{WG: 256, BM: 256, BN: 128, BK: 64, GM: 8, Unroll: 8}

// cm2MinK is the shortest K for which MatMul takes matmul_cm2 unless the
// Tuning names a tile: on an H100 the KHR kernel was faster on
// bench-lm-8k's matrices (K 512 and 1408: its whole prefill's matmuls 2.4
// against 3.0 ms), the cooperative-matrix-2 one on the 8B shapes (K 4096
// and 14336: 1.04–1.10× the KHR kernel's TFLOP/s).
const cm2MinK = 2048

// cm2MinTiles is the number of workgroups a size class must give to be
// taken: about one per multiprocessor of a big GPU (132 on the H100), one
// workgroup of the large tiles being resident per multiprocessor.
const cm2MinTiles = 128

// cm2TilesKey is the key of a device's matmul_cm2 tiles in
// runtime.Device.Value.
type cm2TilesKey struct{}

// cm2TilesOf returns the matmul_cm2 tiles dev may take, preference order,
// decided once per device: the Tuning's MatMulCM2Tile alone when it is set
// (checked when a call uses it, so that a tile the device cannot run is an
// error naming it), else those of cm2Tiles that fit the device. The list
// is empty without VK_NV_cooperative_matrix2.
func cm2TilesOf(dev *runtime.Device) []cm2Tile {
	v, _ := dev.Value(cm2TilesKey{}, func() (any, error) {
		if !dev.Caps().CoopMat || !dev.Caps().CoopMat2 {
			return []cm2Tile(nil), nil
		}
		if tu := dev.Tuning().MatMulCM2Tile; tu != (runtime.MatMulCM2Tile{}) {
			return []cm2Tile{cm2Tile(tu)}, nil
		}
		var l []cm2Tile
		for _, t := range cm2Tiles {
			if t.check(dev) == nil {
				l = append(l, t)
			}
		}
		return l, nil
	})
	l, _ := v.([]cm2Tile)
	return l
}

// pickCM2Tile returns the first tile of l that gives an M×N output at
// least cm2MinTiles workgroups, else the last (the smallest), and false
// when l is empty.
func pickCM2Tile(l []cm2Tile, M, N int) (cm2Tile, bool) {
	if len(l) == 0 {
		return cm2Tile{}, false
	}
	for _, t := range l {
		if ceilDiv(M, int(t.BM))*ceilDiv(N, int(t.BN)) >= cm2MinTiles {
			return t, true
		}
	}
	return l[len(l)-1], true
}

// MatMulCoopMat2 is MatMul forced onto the NV cooperative-matrix-2 kernel:
// x must be f16 and the device must have dev.Caps().CoopMat2 (an error
// wrapping runtime.ErrMissingFeature otherwise). The tile is the device's
// Tuning.MatMulCM2Tile, else the first automatic one that gives enough
// workgroups (pickCM2Tile).
func MatMulCoopMat2(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul", y, x, w, bias)
	if err != nil {
		return err
	}
	dev := r.Device()
	if !dev.Caps().CoopMat || !dev.Caps().CoopMat2 {
		return fmt.Errorf("matmul: %w: the cooperative-matrix-2 kernel needs VK_NV_cooperative_matrix2 and VK_KHR_cooperative_matrix (or SHAREPREFILL_VK_DISABLE_COOPMAT2 / _COOPMAT is set)", runtime.ErrMissingFeature)
	}
	t, ok := pickCM2Tile(cm2TilesOf(dev), s.M, s.N)
	if !ok {
		return fmt.Errorf("matmul: no cooperative-matrix-2 tile fits the driver's flexible-dimension list on %s", dev.Info().Name)
	}
	return matMulCM2(r, s, y, x, w, bias, t)
}

func matMulCM2(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, t cm2Tile) error {
	d := r.Device()
	caps := d.Caps()
	if !caps.CoopMat || !caps.CoopMat2 {
		return fmt.Errorf("matmul: %w: the cooperative-matrix-2 kernel needs VK_NV_cooperative_matrix2 and VK_KHR_cooperative_matrix (or SHAREPREFILL_VK_DISABLE_COOPMAT2 / _COOPMAT is set)", runtime.ErrMissingFeature)
	}
	if x.DType() != runtime.F16 {
		return fmt.Errorf("matmul: the cooperative-matrix-2 kernel needs an f16 input, %s is %s", x.Name(), x.DType())
	}
	if err := t.check(d); err != nil {
		return fmt.Errorf("matmul: %w", err)
	}
	if s.M == 0 {
		return nil
	}
	sh := "matmul_cm2_y" + dtName(y.DType())
	mc := d.Info().MaxWorkgroupCount
	// Workgroups are numbered linearly over a folded 2-D grid, so chunks are
	// bounded only by the binding limit.
	chunks, err := mmPlan(d, s, 2, y.DType().Size(), int(t.BM), int(t.BN), 1<<30)
	if err != nil {
		return err
	}
	return mmRecord(r, s, chunks, y, x, w, bias, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		k, err := d.Kernel(runtime.KernelDesc{
			Shader: sh, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
			Spec:          []uint32{t.WG, t.BM, t.BN, t.BK, t.gm(), b2u(p.vec()), t.unroll(), b2u(s.Acc)},
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
