package kernels

import (
	"fmt"

	"github.com/shareprefill/shareprefill/runtime"
)

// Cooperative-matrix (VK_KHR_cooperative_matrix) variant of MatMul: f16 x,
// f16 W, f32 accumulation through 16×16×16 f16×f16→f32 fragments
// (shaders/matmul_cm1.comp). MatMul routes to it when dev.Caps().CoopMat is
// true and x is f16; SHAREPREFILL_VK_DISABLE_COOPMAT=1 turns it off.

// cmTile is a tile configuration of matmul_cm1 (spec constants 1..5, 7, 8);
// NS is the number of shared-memory stages (0 means 2).
type cmTile struct{ BM, BN, BK, WM, WN, GM, NS uint32 }

func (t cmTile) stages() uint32 {
	if t.NS == 0 {
		return 2
	}
	return t.NS
}

// subgroups returns the number of subgroups (one per WM×WN sub-tile).
func (t cmTile) subgroups() uint32 { return (t.BM / t.WM) * (t.BN / t.WN) }

// shared returns the shared-memory bytes: two stages of (BM+BN) f16 rows of
// BK+8 halves, plus a 1 KiB f32 epilogue scratch per subgroup.
func (t cmTile) shared() uint32 {
	return t.stages()*(t.BM+t.BN)*(t.BK/4+2)*8 + t.subgroups()*1024
}

// valid reports whether the shader supports the tile with subgroup size sg.
func (t cmTile) valid(sg uint32) bool {
	if t.WM == 0 || t.WN == 0 || t.BK == 0 || t.GM == 0 || sg == 0 || t.stages() > 2 {
		return false
	}
	if t.WM%16 != 0 || t.WN%16 != 0 || t.BM%t.WM != 0 || t.BN%t.WN != 0 || t.BK%16 != 0 {
		return false
	}
	// Fragments per subgroup are bounded to keep registers sane.
	if (t.WM/16)*(t.WN/16) > 32 {
		return false
	}
	return t.subgroups()*sg <= 1024
}

// fits returns why a device of caps cannot run t (op prefixes the error),
// or nil: the shader's shape rules at its subgroup size, and its shared
// memory.
func (t cmTile) fits(op string, caps runtime.Caps) error {
	if !t.valid(caps.SubgroupSize) {
		return fmt.Errorf("%s: invalid cooperative-matrix tile %s for subgroup size %d", op, t, caps.SubgroupSize)
	}
	if sh := t.shared(); sh > caps.MaxSharedMemory {
		return fmt.Errorf("%s: cooperative-matrix tile %s needs %d bytes of shared memory, device has %d", op, t, sh, caps.MaxSharedMemory)
	}
	return nil
}

// kernel returns the pipeline of matmul_cm1's module shader (a y type, or
// the GLU mode) with tile t for a chunk pushing p: 16-byte loads where K
// and the chunk's offsets allow, acc for y += x·Wᵀ, and the direct stores
// unless Tuning.MatMulStoreScratch.
func (t cmTile) kernel(d *runtime.Device, shader string, p mmPush, acc bool) (*runtime.Kernel, error) {
	sg := d.Caps().SubgroupSize
	return d.Kernel(runtime.KernelDesc{
		Shader: shader, Bindings: 4, ReadOnly: 0b0111, PushSize: 36,
		Spec: []uint32{t.subgroups() * sg, t.BM, t.BN, t.BK, t.WM, t.WN, b2u(p.vec()), t.GM, t.stages(), b2u(acc),
			b2u(!d.Tuning().MatMulStoreScratch)},
		SubgroupSize:  sg,
		FullSubgroups: true,
	})
}

func (t cmTile) String() string {
	return fmt.Sprintf("%dx%dx%d/w%dx%d/g%d/s%d", t.BM, t.BN, t.BK, t.WM, t.WN, t.GM, t.stages())
}

var (
	// cmLarge: 4 subgroups of 64×64, BK 32, one shared stage: 24 KiB, so
	// two workgroups share a multiprocessor (faster than a 256×128 tile of
	// 8 subgroups: bench/RESULTS.md, round 4).
	cmLarge = cmTile{BM: 128, BN: 128, BK: 32, WM: 64, WN: 64, GM: 8, NS: 1}
	// cmLargeK16: 4 subgroups of 64×64, BK 16 (28 KiB) for devices with
	// < 44 KiB of shared memory.
	cmLargeK16 = cmTile{BM: 128, BN: 128, BK: 16, WM: 64, WN: 64, GM: 8}
	// cmSmall: 4 subgroups of 32×32 for small grids.
	cmSmall = cmTile{BM: 64, BN: 64, BK: 32, WM: 32, WN: 32, GM: 8}
)

// chooseCMTile picks the 128×128 tile when it gives at least 128
// workgroups (about one per multiprocessor on big GPUs), else 64×64; smaller
// tiles replace them when the device lacks the shared memory.
func chooseCMTile(caps runtime.Caps, M, N int) cmTile {
	t := cmLarge
	if ceilDiv(M, 128)*ceilDiv(N, 128) < 128 {
		t = cmSmall
	}
	if t.shared() > caps.MaxSharedMemory {
		t = cmLargeK16
	}
	if t.shared() > caps.MaxSharedMemory {
		t = cmSmall
		t.BK = 16
	}
	return t
}

// MatMulCoopMat is MatMul forced onto the cooperative-matrix kernel: x must
// be f16 and the device must have dev.Caps().CoopMat. The tile is
// chooseCMTile's unless the device's Tuning sets MatMulTile.
func MatMulCoopMat(r *runtime.Recorder, y, x, w, bias *runtime.Tensor) error {
	s, err := mmCheck("matmul", y, x, w, bias)
	if err != nil {
		return err
	}
	t := cmTile(r.Device().Tuning().MatMulTile)
	if t == (cmTile{}) {
		t = chooseCMTile(r.Device().Caps(), s.M, s.N)
	}
	return matMulCM(r, s, y, x, w, bias, t)
}

func matMulCM(r *runtime.Recorder, s mmShape, y, x, w, bias *runtime.Tensor, t cmTile) error {
	d := r.Device()
	caps := d.Caps()
	if !caps.CoopMat {
		return fmt.Errorf("matmul: %w: the cooperative-matrix kernel needs VK_KHR_cooperative_matrix with f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT is set)", runtime.ErrMissingFeature)
	}
	if x.DType() != runtime.F16 {
		return fmt.Errorf("matmul: the cooperative-matrix kernel needs an f16 input, %s is %s", x.Name(), x.DType())
	}
	if s.M == 0 {
		return nil
	}
	if err := t.fits("matmul", caps); err != nil {
		return err
	}
	sh := "matmul_cm1_y" + dtName(y.DType())
	mc := d.Info().MaxWorkgroupCount
	// Workgroups are numbered linearly over a folded 2-D grid, so chunks are
	// bounded only by the binding limit.
	chunks, err := mmPlan(d, s, 2, y.DType().Size(), int(t.BM), int(t.BN), 1<<30)
	if err != nil {
		return err
	}
	return mmRecord(r, s, chunks, y, x, w, bias, func(c mmChunk, p mmPush, xa, wa, ba, ya runtime.Arg) error {
		k, err := t.kernel(d, sh, p, s.Acc)
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

// tileGrid numbers the BM×BN output tiles of a chunk linearly over a 2-D
// grid folded to the device's workgroup-count limits mc.
func tileGrid(c mmChunk, bm, bn int, mc [3]uint32) ([3]uint32, error) {
	tiles := ceilDiv(c.mc, bm) * ceilDiv(c.nc, bn)
	gx := min(tiles, int(mc[0]))
	gy := ceilDiv(tiles, gx)
	if gy > int(mc[1]) {
		return [3]uint32{}, fmt.Errorf("matmul: %d×%d needs %d workgroups, too many for the device", c.mc, c.nc, tiles)
	}
	return [3]uint32{uint32(gx), uint32(gy), 1}, nil
}
