package kernels

import (
	"fmt"
	"math/bits"
	"os"

	"github.com/shareprefill/shareprefill/runtime"
)

// Cooperative-matrix (VK_KHR_cooperative_matrix) flash attention
// (shaders/attn_cm1.comp): S = Q·Kᵀ and O += P·V through 16×16×16
// f16×f16→f32 fragments, softmax on scalars in f32 with the same masks and
// statistics as the scalar attn.comp; P is rounded to f16 for P·V (the
// normaliser l sums the f32 probabilities). FlashAttention and
// SparseAttention route here when cmAttnUsable holds
// (SHAREPREFILL_VK_DISABLE_COOPMAT=1 turns it off).

// cmAttnTiles: BR query rows per workgroup (16 per subgroup), BC keys per KV
// tile.
type cmAttnTiles struct{ BR, BC int }

// cmAttnShared mirrors the shared arrays of attn_cm1.comp.
func cmAttnShared(t cmAttnTiles, d int) int {
	nsg := t.BR / 16
	return 2*t.BC*(d/4+2)*8 + nsg*16*(t.BC+4)*4 + nsg*16*(t.BC+8)*2 + nsg*16*4*4 + nsg*16*4
}

func (t cmAttnTiles) valid(dev *runtime.Device, d int) bool {
	caps := dev.Caps()
	sg := int(caps.SubgroupSize)
	if t.BR <= 0 || t.BC <= 0 || t.BR%16 != 0 || t.BC%16 != 0 || sg < 16 || sg > 64 {
		return false
	}
	if wg := t.BR / 16 * sg; uint32(wg) > dev.Info().MaxWorkgroupInvocations {
		return false
	}
	return cmAttnShared(t, d)+512 <= int(caps.MaxSharedMemory)
}

// cmAttnTileList is the preference order.
// On the H200 (16K tokens, 32 heads, D 128) BR 128 ran at 97 TFLOP/s, BR 64 at
// 50 and BR 32 at 20: rows per workgroup amortise the K/V staging.
var cmAttnTileList = []cmAttnTiles{{128, 32}, {64, 32}, {32, 32}, {32, 16}, {16, 16}}

// chooseCMAttnTiles returns the first fitting configuration whose BR and BC
// divide maxBlock (when > 0). SHAREPREFILL_CM_ATTN_TILES=BR,BC puts a
// configuration first (tuning).
func chooseCMAttnTiles(dev *runtime.Device, d, maxBlock int) (cmAttnTiles, bool) {
	list := cmAttnTileList
	if e := os.Getenv("SHAREPREFILL_CM_ATTN_TILES"); e != "" {
		var t cmAttnTiles
		if _, err := fmt.Sscanf(e, "%d,%d", &t.BR, &t.BC); err == nil {
			list = append([]cmAttnTiles{t}, list...)
		}
	}
	for _, t := range list {
		if maxBlock > 0 && (maxBlock%t.BR != 0 || maxBlock%t.BC != 0) {
			continue
		}
		if t.valid(dev, d) {
			return t, true
		}
	}
	return cmAttnTiles{}, false
}

// cmAttnUsable reports whether the cooperative-matrix kernel applies: the
// device has KHR cooperative matrices, D is a multiple of 16, and a tile fits.
func cmAttnUsable(dev *runtime.Device, d, maxBlock int) bool {
	if !dev.Caps().CoopMat || d%16 != 0 {
		return false
	}
	_, ok := chooseCMAttnTiles(dev, d, maxBlock)
	return ok
}

func cmAttnKernel(dev *runtime.Device, shader string, sparse bool, t cmAttnTiles, d int, writeLSE bool) (*runtime.Kernel, error) {
	sg := dev.Caps().SubgroupSize
	desc := runtime.KernelDesc{
		Shader: shader, Bindings: 5, ReadOnly: 0b00111, PushSize: 48,
		Spec:          []uint32{uint32(t.BR/16) * sg, uint32(t.BR), uint32(t.BC), uint32(d), attnBool(writeLSE)},
		SubgroupSize:  sg,
		FullSubgroups: true,
	}
	if sparse {
		desc.Bindings, desc.ReadOnly = 7, 0b1100111
	}
	return dev.Kernel(desc)
}

// FlashAttentionCoopMat is FlashAttention forced onto the cooperative-matrix
// kernel; it fails when the device lacks it or D is not a multiple of 16.
func FlashAttentionCoopMat(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams) error {
	const op = "flash attention (coopmat)"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	t, err := cmAttnChoose(r.Device(), op, p.D, 0)
	if err != nil {
		return err
	}
	return flashAttentionCM(r, o, lse, q, k, v, p, t)
}

func cmAttnChoose(dev *runtime.Device, op string, d, maxBlock int) (cmAttnTiles, error) {
	if !dev.Caps().CoopMat {
		return cmAttnTiles{}, fmt.Errorf("%s: %w: needs VK_KHR_cooperative_matrix with f16 16x16x16 -> f32 (or SHAREPREFILL_VK_DISABLE_COOPMAT is set)", op, runtime.ErrMissingFeature)
	}
	if d%16 != 0 {
		return cmAttnTiles{}, fmt.Errorf("%s: head dim D=%d is not a multiple of 16", op, d)
	}
	t, ok := chooseCMAttnTiles(dev, d, maxBlock)
	if !ok {
		return cmAttnTiles{}, fmt.Errorf("%s: no tile configuration for D=%d (block %d) fits this device (subgroup %d, %d bytes of shared memory)",
			op, d, maxBlock, dev.Caps().SubgroupSize, dev.Caps().MaxSharedMemory)
	}
	return t, nil
}

func flashAttentionCM(r *runtime.Recorder, o, lse, q, k, v *runtime.Tensor, p AttnParams, t cmAttnTiles) error {
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("flash attention (coopmat): tiles %+v do not fit this device for D=%d", t, p.D)
	}
	kern, err := cmAttnKernel(r.Device(), attnVariant("attn_cm1", o), false, t, p.D, lse != nil)
	if err != nil {
		return err
	}
	rowTiles := (p.Sq + t.BR - 1) / t.BR
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq), 1}, p.push(rowTiles), q, k, v, o, lse)
}

// SparseAttentionCoopMat is SparseAttention forced onto the
// cooperative-matrix kernel (block size a power of two ≥ 16).
func SparseAttentionCoopMat(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int) error {
	const op = "sparse attention (coopmat)"
	if err := attnCheckIO(op, o, lse, q, k, v, p); err != nil {
		return err
	}
	if blockSize < 16 || bits.OnesCount(uint(blockSize)) != 1 {
		return fmt.Errorf("%s: block size %d must be a power of two ≥ 16", op, blockSize)
	}
	t, err := cmAttnChoose(r.Device(), op, p.D, blockSize)
	if err != nil {
		return err
	}
	return sparseAttentionCM(r, o, lse, q, k, v, rowPtr, cols, p, blockSize, t)
}

func sparseAttentionCM(r *runtime.Recorder, o, lse, q, k, v, rowPtr, cols *runtime.Tensor, p AttnParams, blockSize int, t cmAttnTiles) error {
	const op = "sparse attention (coopmat)"
	if p.Q0%blockSize != 0 {
		return fmt.Errorf("%s: Q0=%d is not a multiple of the block size %d", op, p.Q0, blockSize)
	}
	nb := (p.Skv + blockSize - 1) / blockSize
	if qb := (p.Q0 + p.Sq + blockSize - 1) / blockSize; qb > nb {
		return fmt.Errorf("%s: queries up to position %d need %d query blocks, but Skv=%d gives nb=%d", op, p.Q0+p.Sq-1, qb, p.Skv, nb)
	}
	if err := attnCheckTensor(op, "rowPtr", rowPtr, []runtime.DType{runtime.I32}, p.Hq*nb+1, false); err != nil {
		return err
	}
	if err := attnCheckTensor(op, "cols", cols, []runtime.DType{runtime.I32}, 1, true); err != nil {
		return err
	}
	if blockSize%t.BR != 0 || blockSize%t.BC != 0 {
		return fmt.Errorf("%s: tiles %+v do not divide the block size %d", op, t, blockSize)
	}
	if p.Sq == 0 {
		return nil
	}
	if !t.valid(r.Device(), p.D) {
		return fmt.Errorf("%s: tiles %+v do not fit this device for D=%d", op, t, p.D)
	}
	kern, err := cmAttnKernel(r.Device(), attnVariant("attn_cm1_sparse", o), true, t, p.D, lse != nil)
	if err != nil {
		return err
	}
	rowTiles := (p.Sq + t.BR - 1) / t.BR
	pc := p.push(rowTiles)
	pc.B, pc.Nb = uint32(blockSize), uint32(nb)
	if lse == nil {
		lse = o
	}
	return r.Dispatch(kern, [3]uint32{uint32(rowTiles), uint32(p.Hq), 1}, pc, q, k, v, o, lse, rowPtr, cols)
}
