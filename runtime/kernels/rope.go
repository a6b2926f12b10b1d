package kernels

import (
	"fmt"
	"math"

	"github.com/shareprefill/shareprefill/runtime"
)

// RopeParams describes a strided RoPE over rows of a (possibly fused) tensor:
// head h of row r starts at element r·RowStride + Offset + h·D of the
// tensor (D = 2·invFreq.Len()). Zero strides mean contiguous [Rows, Heads, D].
type RopeParams struct {
	Rows, Heads int
	// Pos0 is the position of row 0; row r has position Pos0 + r.
	Pos0 int
	// XRowStride/XOffset locate the heads in x, OutRowStride/OutOffset in out
	// (in elements). A zero stride means Heads·D.
	XRowStride, XOffset     int
	OutRowStride, OutOffset int
}

// Rope records rotary position embedding in the Hugging Face layout
// (rotate_half: element i pairs with i + D/2) on x [M, heads, D], f32 or f16,
// into out (same dtype and length; out may be x itself for in-place use).
// Row r has position pos0 + r. invFreq is f32 [D/2] computed on the host
// (RopeInvFreq / RopeInvFreqF32; that is where rope_theta and llama3
// rope_scaling enter). The angle is float32(pos)·inv_freq rounded to f32, as
// HF computes it; cos/sin are evaluated in f32 after an exact-ish reduction
// to [-π, π]. f16 tensors are computed in f32 and rounded once (HF rounds
// cos/sin to f16 first). Any even D works (tested 8 to 256).
func Rope(r *runtime.Recorder, out, x, invFreq *runtime.Tensor, heads, pos0 int) error {
	d := 2 * invFreq.Len()
	if heads <= 0 || d == 0 || x.Len()%(heads*d) != 0 {
		return fmt.Errorf("rope: x %s has %d elements, not a multiple of heads %d × D %d (D = 2 × len(invFreq %s))", x.Name(), x.Len(), heads, d, invFreq.Name())
	}
	return RopeStrided(r, out, x, invFreq, RopeParams{Rows: x.Len() / (heads * d), Heads: heads, Pos0: pos0})
}

// RopeStrided is Rope over heads at arbitrary row strides and offsets, e.g.
// the q or k part of a fused QKV activation [M, (Hq+2·Hkv)·D], in place.
func RopeStrided(r *runtime.Recorder, out, x, invFreq *runtime.Tensor, p RopeParams) error {
	const op = "rope"
	if err := opDType(op, "x", x, runtime.F32, runtime.F16); err != nil {
		return err
	}
	if out.DType() != x.DType() {
		return fmt.Errorf("%s: out %s is %s, x %s is %s", op, out.Name(), out.DType(), x.Name(), x.DType())
	}
	if err := opDType(op, "invFreq", invFreq, runtime.F32); err != nil {
		return err
	}
	half := invFreq.Len()
	d := 2 * half
	if half == 0 {
		return fmt.Errorf("%s: invFreq %s is empty", op, invFreq.Name())
	}
	if p.Rows < 0 || p.Heads <= 0 || p.XOffset < 0 || p.OutOffset < 0 || p.XRowStride < 0 || p.OutRowStride < 0 {
		return fmt.Errorf("%s: bad params %+v", op, p)
	}
	if p.XRowStride == 0 {
		p.XRowStride = p.Heads * d
	}
	if p.OutRowStride == 0 {
		p.OutRowStride = p.Heads * d
	}
	if p.Rows == 0 {
		return nil
	}
	need := func(stride, off int) int { return (p.Rows-1)*stride + off + p.Heads*d }
	if n := need(p.XRowStride, p.XOffset); n > x.Len() || p.XOffset+p.Heads*d > p.XRowStride {
		return fmt.Errorf("%s: %d rows × %d heads × D %d at stride %d offset %d do not fit x %s (%d elements)", op, p.Rows, p.Heads, d, p.XRowStride, p.XOffset, x.Name(), x.Len())
	}
	if n := need(p.OutRowStride, p.OutOffset); n > out.Len() || p.OutOffset+p.Heads*d > p.OutRowStride {
		return fmt.Errorf("%s: %d rows × %d heads × D %d at stride %d offset %d do not fit out %s (%d elements)", op, p.Rows, p.Heads, d, p.OutRowStride, p.OutOffset, out.Name(), out.Len())
	}
	if p.Pos0 < 0 || int64(p.Pos0)+int64(p.Rows) > 1<<24 {
		return fmt.Errorf("%s: positions [%d, %d) outside f32-exact range [0, 2^24)", op, p.Pos0, p.Pos0+p.Rows)
	}
	if uint64(x.Len()) > opMaxU32 || uint64(out.Len()) > opMaxU32 {
		return fmt.Errorf("%s: tensors beyond 32-bit indexing", op)
	}
	dev := r.Device()
	k, err := dev.Kernel(runtime.KernelDesc{Shader: "rope_" + opSuffix(x.DType()), Bindings: 3, ReadOnly: 0b011, PushSize: 32, Spec: []uint32{256}})
	if err != nil {
		return err
	}
	n := p.Rows * p.Heads * half
	return r.Dispatch(k, dev.Groups1D(n, 256), struct {
		Rows, Heads, Half uint32
		Pos0              int32
		XStride, XOff     uint32
		OStride, OOff     uint32
	}{uint32(p.Rows), uint32(p.Heads), uint32(half), int32(p.Pos0),
		uint32(p.XRowStride), uint32(p.XOffset), uint32(p.OutRowStride), uint32(p.OutOffset)}, x, invFreq, out)
}

// Llama3Scaling is the "llama3" rope_scaling block of a Hugging Face config.
type Llama3Scaling struct {
	Factor                        float64
	LowFreqFactor                 float64
	HighFreqFactor                float64
	OriginalMaxPositionEmbeddings int
}

// RopeInvFreq returns the RoPE inverse frequencies [dim/2] in float64:
// inv_freq[i] = 1 / theta^(2i/dim), then, when scaling is not nil, HF's
// llama3 rule (transformers _compute_llama3_parameters): with
// wavelen = 2π/inv_freq, low = orig/low_freq_factor, high =
// orig/high_freq_factor: wavelen > low → inv_freq/factor; high ≤ wavelen ≤ low
// → (1−s)·f/factor + s·f with s = (orig/wavelen − low_freq_factor) /
// (high_freq_factor − low_freq_factor); otherwise unchanged.
func RopeInvFreq(theta float64, dim int, scaling *Llama3Scaling) []float64 {
	inv := make([]float64, dim/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(dim))
	}
	if scaling == nil {
		return inv
	}
	s := scaling
	old := float64(s.OriginalMaxPositionEmbeddings)
	lowWavelen := old / s.LowFreqFactor
	highWavelen := old / s.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		scaled := f
		if wavelen > lowWavelen {
			scaled = f / s.Factor
		}
		if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
			smooth := (old/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			scaled = (1-smooth)*scaled/s.Factor + smooth*scaled
		}
		inv[i] = scaled
	}
	return inv
}

// RopeInvFreqF32 computes the same inverse frequencies the way transformers
// does, in float32 step by step (arange(0, dim, 2).float() / dim, theta **
// that, 1 / that, and the llama3 rule on f32 tensors), so the uploaded
// inv_freq buffer matches HF's to about an ulp (pow may differ by one ulp
// from torch's powf). This is what the model code should upload for Rope.
func RopeInvFreqF32(theta float64, dim int, scaling *Llama3Scaling) []float32 {
	inv := make([]float32, dim/2)
	base := float32(theta)
	for i := range inv {
		e := float32(2*i) / float32(dim)
		inv[i] = 1 / float32(math.Pow(float64(base), float64(e)))
	}
	if scaling == nil {
		return inv
	}
	s := scaling
	old := float64(s.OriginalMaxPositionEmbeddings)
	lowWavelen := float32(old / s.LowFreqFactor)   // python floats, compared as f32
	highWavelen := float32(old / s.HighFreqFactor) // against the f32 tensor
	factor := float32(s.Factor)
	lowF, highF := float32(s.LowFreqFactor), float32(s.HighFreqFactor)
	for i, f := range inv {
		wavelen := float32(2*math.Pi) / f
		scaled := f
		if wavelen > lowWavelen {
			scaled = f / factor
		}
		smooth := (float32(old)/wavelen - lowF) / (highF - lowF)
		smoothed := (1-smooth)*scaled/factor + smooth*scaled
		if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
			scaled = smoothed
		}
		inv[i] = scaled
	}
	return inv
}
