package model

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/shareprefill/shareprefill/model/gguf"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/kernels"
	"github.com/x448/float16"
)

// Quantization says how NewEngine stores the weight matrices that a
// checkpoint holds in floating point (F32, F16 or BF16).
type Quantization string

const (
	// QuantNone stores floating-point matrices as f16 (and quantized GGUF
	// matrices as they are).
	QuantNone Quantization = "none"
	// QuantQ8_0 quantizes the floating-point embedding table (also the LM
	// head when tied), projection matrices (q, k, v, o, gate, up, down) and
	// an untied LM head to Q8_0 on the host at load (gguf.Quantize, byte
	// for byte ggml's quantizer), so that they take 34 bytes per 32
	// weights on the device instead of 64. A matrix whose rows are not
	// whole 32-element blocks stays f16, as in llama.cpp.
	QuantQ8_0 Quantization = "q8_0"
)

// Quantizations lists the values ParseQuantization accepts.
func Quantizations() []Quantization { return []Quantization{QuantQ8_0, QuantNone} }

// ParseQuantization parses the value of a --quantize flag or option: "q8_0"
// or "none" (any letter case); "" is QuantNone. Another value is an error
// listing the supported ones.
func ParseQuantization(s string) (Quantization, error) {
	if s == "" {
		return QuantNone, nil
	}
	q := Quantization(strings.ToLower(s))
	if !slices.Contains(Quantizations(), q) {
		names := make([]string, 0, 2)
		for _, v := range Quantizations() {
			names = append(names, string(v))
		}
		return "", fmt.Errorf("quantization %q is not supported (supported: %s)", s, strings.Join(names, ", "))
	}
	return q, nil
}

// WeightTypes maps the name of every tensor NewEngine uploads to the type
// it is stored as on the device: F16 or a quantized GGUF type for the
// matrices, F32 for the norms and biases. PlanWeights computes it.
type WeightTypes map[string]gguf.Type

// quantizable reports whether the engine may keep the named tensor of cfg
// quantized on the device: the embedding table (gathered by kernels.Embed,
// which dequantizes its rows in registers; also the LM head when the
// embeddings are tied), the projection matrices of the layers and an
// untied LM head.
func quantizable(cfg *Config, name string) bool {
	switch name {
	case EmbedTokensName:
		return true
	case LMHeadName:
		return !cfg.TieWordEmbeddings
	}
	for _, s := range []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
		"self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"} {
		if strings.HasPrefix(name, "model.layers.") && strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

// storedType returns the type the named tensor has in the checkpoint: its
// GGUF type, or F32, F16 or BF16 for a safetensors tensor.
func (c *Checkpoint) storedType(name string) (gguf.Type, error) {
	if c.where == nil {
		return 0, fmt.Errorf("checkpoint %s: tensor %q: checkpoint is closed", c.Dir, name)
	}
	f, ok := c.where[name]
	if !ok {
		return 0, fmt.Errorf("checkpoint %s: missing tensor %q", c.Dir, name)
	}
	if c.gguf != nil {
		return c.gguf.byName[name].info.Type, nil
	}
	switch dt := f.tensors[name].DType; dt {
	case F32:
		return gguf.F32, nil
	case F16:
		return gguf.F16, nil
	case BF16:
		return gguf.BF16, nil
	default:
		return 0, fmt.Errorf("%s: tensor %q: dtype %s", f.Path, name, dt)
	}
}

// PlanWeights returns the type each weight of cfg in ck is stored as on a
// device whose kernels run the quantized types quant (kernels.QuantTypes):
//
//   - norms and biases, and the RoPE table: F32;
//   - the embedding table, a projection matrix or an untied LM head that
//     the GGUF file holds in a quantized type: that type when quant has it
//     and opts.F16Weights is off, else F16 (dequantized at load). A tied LM
//     head is the embedding table, one tensor on the device in its type;
//   - one held in floating point: Q8_0 with opts.Quantize QuantQ8_0 when
//     its rows are whole Q8_0 blocks and quant has Q8_0, else F16;
//   - one ck lacks: F16 (NewEngine's load reports it).
//
// The second result lists, sorted, the quantized types that fell back to
// F16 because quant lacks them (for a note to the user).
func PlanWeights(cfg *Config, ck *Checkpoint, opts EngineOptions, quant []gguf.Type) (WeightTypes, []gguf.Type, error) {
	q, err := ParseQuantization(string(opts.Quantize))
	if err != nil {
		return nil, nil, fmt.Errorf("engine: %w", err)
	}
	wt := WeightTypes{}
	var fallback []gguf.Type
	for _, spec := range cfg.ExpectedTensors() {
		if len(spec.Shape) != 2 {
			wt[spec.Name] = gguf.F32
			continue
		}
		wt[spec.Name] = gguf.F16
		if !quantizable(cfg, spec.Name) || opts.F16Weights || !ck.Has(spec.Name) {
			continue // (loading names a missing tensor)
		}
		st, err := ck.storedType(spec.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("engine: %w", err)
		}
		want := st
		if st == gguf.F32 || st == gguf.F16 || st == gguf.BF16 {
			if q != QuantQ8_0 || spec.Shape[1]%gguf.Q8_0.BlockElems() != 0 {
				continue
			}
			want = gguf.Q8_0
		}
		if !slices.Contains(quant, want) {
			if want.CanDequantize() && !slices.Contains(fallback, want) { // (else loading reports the type)
				fallback = append(fallback, want)
			}
			continue
		}
		wt[spec.Name] = want
	}
	slices.Sort(fallback)
	return wt, fallback, nil
}

// TypeBytes is the part of the weights stored in one type.
type TypeBytes struct {
	Type          gguf.Type
	Params, Bytes uint64
}

// weightBytes returns the device bytes of the weights of cfg stored as wt
// (nil: every matrix F16), by type (largest first), and the largest
// quantized layer matrix in elements (the prefill's dequantization scratch;
// 0 when none is quantized: the embedding table is gathered and the LM head
// multiplied with the quantized kernels, neither dequantized into it).
func weightBytes(cfg *Config, wt WeightTypes) (total uint64, byType []TypeBytes, scratch uint64) {
	sums := map[gguf.Type]*TypeBytes{}
	add := func(t gguf.Type, params, bytes uint64) {
		s := sums[t]
		if s == nil {
			s = &TypeBytes{Type: t}
			sums[t] = s
		}
		s.Params += params
		s.Bytes += bytes
		total += bytes
	}
	for _, spec := range cfg.ExpectedTensors() {
		t, ok := wt[spec.Name]
		if !ok {
			t = gguf.F16
			if len(spec.Shape) != 2 {
				t = gguf.F32
			}
		}
		n := uint64(1)
		for _, d := range spec.Shape {
			n *= uint64(d)
		}
		k := uint64(spec.Shape[len(spec.Shape)-1])
		rb, err := gguf.RowBytes(t, k)
		if err != nil { // a type that does not fit the rows: the engine stores f16
			t, rb = gguf.F16, 2*k
		}
		add(t, n, n/k*rb)
		if t.BlockElems() > 1 && spec.Name != LMHeadName && spec.Name != EmbedTokensName {
			scratch = max(scratch, n)
		}
	}
	add(gguf.F32, uint64(cfg.HeadDim/2), 4*uint64(cfg.HeadDim/2)) // RoPE inverse frequencies
	byType = make([]TypeBytes, 0, len(sums))
	for _, s := range sums {
		byType = append(byType, *s)
	}
	sort.Slice(byType, func(i, j int) bool {
		if byType[i].Bytes != byType[j].Bytes {
			return byType[i].Bytes > byType[j].Bytes
		}
		return byType[i].Type < byType[j].Type
	})
	return total, byType, scratch
}

// checkFiniteBlocks returns an error naming the tensor and the first
// offending element when the quantized data (rows of k elements of type
// typ) decodes to a NaN, an infinity or a value beyond f16's range (prefill
// dequantizes the matrix to f16). It reads the f16 scales of each block
// only, and decodes a block only when its scales allow a value that is not
// finite or not below 65520 (blockBound), so that it runs at memory speed.
func checkFiniteBlocks(file, name string, data []byte, typ gguf.Type, k int) error {
	rb, err := gguf.RowBytes(typ, uint64(k))
	if err != nil || rb == 0 || uint64(len(data))%rb != 0 {
		return fmt.Errorf("%s: tensor %q: %d bytes are not whole rows of %d %s elements", file, name, len(data), k, typ)
	}
	be, bb := typ.BlockElems(), typ.BlockBytes()
	buf := make([]float32, be)
	for b := 0; b < len(data)/bb; b++ {
		blk := data[b*bb : (b+1)*bb]
		if bound := blockBound(blk, typ); bound < f16Overflow {
			continue
		}
		if err := gguf.Dequantize(buf, blk, typ); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", file, name, err)
		}
		for i, x := range buf {
			if a := math.Abs(float64(x)); !(a < f16Overflow) {
				what := "is not finite"
				if !math.IsNaN(a) && !math.IsInf(a, 0) {
					what = "overflows f16 (|x| ≥ 65520), the dtype prefill dequantizes weights to"
				}
				return fmt.Errorf("%s: tensor %q: element %d = %v %s (AllowNonFinite skips this check)", file, name, b*be+i, x, what)
			}
		}
	}
	return nil
}

// blockBound bounds |x| over a block of typ from its f16 scales and the
// largest quants and 6-bit factors the type can hold (NaN or +Inf when a
// scale is not finite). Finite scales make every value finite.
func blockBound(blk []byte, typ gguf.Type) float64 {
	h := func(off int) float64 {
		return math.Abs(float64(float16.Frombits(binary.LittleEndian.Uint16(blk[off:])).Float32()))
	}
	switch typ {
	case gguf.Q8_0:
		return h(0) * 128
	case gguf.Q4_0:
		return h(0) * 8
	case gguf.Q5_0:
		return h(0) * 16
	case gguf.Q4_K:
		return h(0)*63*15 + h(2)*63
	case gguf.Q5_K:
		return h(0)*63*31 + h(2)*63
	case gguf.Q6_K:
		return h(208) * 128 * 32
	}
	return math.Inf(1) // unknown: decode
}

// quantizedMatrix returns the named [N, K] matrix of ck as N rows of
// RowBytes(typ, K) bytes: a GGUF tensor stored in typ as it is (with the
// Q/K rows put back in Hugging Face order), or a floating-point tensor
// quantized on the host (typ Q8_0). Unless allowNonFinite, values that are
// not finite or overflow f16 are an error naming the tensor.
func (c *Checkpoint) quantizedMatrix(name string, shape []int, typ gguf.Type, allowNonFinite bool) ([]byte, error) {
	st, err := c.storedType(name)
	if err != nil {
		return nil, err
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("checkpoint %s: tensor %q: shape %v is not a matrix", c.Dir, name, shape)
	}
	k := shape[1]
	if st == typ {
		if c.gguf == nil {
			return nil, fmt.Errorf("checkpoint %s: tensor %q: %s data outside a GGUF file", c.Dir, name, typ)
		}
		data, ti, err := c.gguf.raw(name)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(ti.Shape(), shape) {
			return nil, fmt.Errorf("gguf: %s: tensor %q (%s) has shape %v, expected %v", c.Dir, ti.Name, name, ti.Shape(), shape)
		}
		if !allowNonFinite {
			if err := checkFiniteBlocks(c.Dir, name, data, typ, k); err != nil {
				return nil, err
			}
		}
		return data, nil
	}
	if typ != gguf.Q8_0 || (st != gguf.F32 && st != gguf.F16 && st != gguf.BF16) {
		return nil, fmt.Errorf("checkpoint %s: tensor %q: cannot store %s as %s", c.Dir, name, st, typ)
	}
	t, err := c.Tensor(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, expected %v", t.File, name, t.Shape, shape)
	}
	if !allowNonFinite {
		if err := checkFinite(t, true); err != nil {
			return nil, err
		}
	}
	return quantizeQ8_0Rows(t)
}

// quantizeQ8_0Rows quantizes the [N, K] floating-point tensor t to Q8_0
// rows, a few rows per step on every CPU (no float32 copy of the whole
// tensor is made).
func quantizeQ8_0Rows(t TensorInfo) ([]byte, error) {
	rows, k, es := t.Shape[0], t.Shape[1], t.DType.Size()
	rb, err := gguf.RowBytes(gguf.Q8_0, uint64(k))
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", t.File, t.Name, err)
	}
	out := make([]byte, uint64(rows)*rb)
	step := max(1, (1<<16)/k) // rows per step
	steps := (rows + step - 1) / step
	errs := make([]error, steps)
	next := make(chan int, steps)
	for i := range steps {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(steps, goruntime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := i * step
				m := min(step, rows-r)
				part := t
				part.Shape = []int{m, k}
				part.Data = t.Data[r*k*es : (r+m)*k*es]
				v, err := part.Float32s()
				if err == nil {
					err = gguf.Quantize(out[uint64(r)*rb:uint64(r+m)*rb], v, gguf.Q8_0)
				}
				if err != nil {
					errs[i] = fmt.Errorf("%s: tensor %q (rows from %d): %w", t.File, t.Name, r, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// quantDTypes pairs the GGUF quantized types with the runtime's.
var quantDTypes = map[gguf.Type]runtime.DType{
	gguf.Q8_0: runtime.Q8_0, gguf.Q4_0: runtime.Q4_0, gguf.Q5_0: runtime.Q5_0,
	gguf.Q4_K: runtime.Q4_K, gguf.Q5_K: runtime.Q5_K, gguf.Q6_K: runtime.Q6_K,
}

// QuantTypes lists the quantized GGUF types whose matrices dev's kernels
// multiply (kernels.QuantTypes): NewEngine keeps matrices of these types
// quantized on dev and dequantizes others to f16 at load. A nil dev gives
// every quantized type the runtime has kernels for (for a plan made
// without a device).
func QuantTypes(dev *runtime.Device) []gguf.Type {
	dts := runtime.QuantizedTypes()
	if dev != nil {
		dts = kernels.QuantTypes(dev)
	}
	var out []gguf.Type
	for gt, dt := range quantDTypes {
		if slices.Contains(dts, dt) {
			out = append(out, gt)
		}
	}
	slices.Sort(out)
	return out
}

// uploadQuantized uploads the named [N, K] matrix of ck to a new tensor of
// quantized type typ (raw GGUF blocks, or quantized on the host).
func (e *Engine) uploadQuantized(ck *Checkpoint, name string, shape []int, typ gguf.Type) (*runtime.Tensor, error) {
	dt, ok := quantDTypes[typ]
	if !ok {
		return nil, fmt.Errorf("loading weights: tensor %q: no device type for %s", name, typ)
	}
	data, err := ck.quantizedMatrix(name, shape, typ, e.opts.AllowNonFinite)
	if err != nil {
		return nil, fmt.Errorf("loading weights: %w", err)
	}
	out, err := e.dev.NewNamedTensor(name, dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := out.UploadBytes(data, 0); err != nil {
		out.Free()
		return nil, fmt.Errorf("loading %s: %w", name, err)
	}
	return out, nil
}

// allocDequant allocates the f16 scratch that prefill dequantizes a
// quantized layer matrix into (none when no layer matrix is quantized).
func (e *Engine) allocDequant() error {
	_, _, n := weightBytes(e.cfg, e.wt)
	if n == 0 {
		return nil
	}
	t, err := e.dev.NewNamedTensor("dequantized weight", runtime.F16, int(n))
	if err != nil {
		return fmt.Errorf("allocating activations: %w", err)
	}
	e.deq = t
	return nil
}

// ops returns the op recorder of the engine's forward pass on r.
func (e *Engine) ops(r *runtime.Recorder) ops {
	return ops{r: r, deq: e.deq, sepAdd: e.dev.Tuning().PrefillAddSeparate}
}

// lmHeadMatMul records logits = x·W_lmᵀ. A quantized LM head multiplies every
// row with the quantized matrix-vector kernel (kernels.MatVec,
// GEMVMaxM rows per pass): the dequantization scratch is sized for the
// layer matrices, and the many-row case (every position's logits) is the
// perplexity path only.
func (e *Engine) lmHeadMatMul(r *runtime.Recorder, logits, x *runtime.Tensor) error {
	if e.lmHead.DType().IsQuantized() {
		return kernels.MatVec(r, logits, x, e.lmHead, nil)
	}
	return kernels.MatMul(r, logits, x, e.lmHead, nil)
}

// MemoryPlan is the device memory NewEngine planned for the engine, with
// the weights by the type they are stored in.
func (e *Engine) MemoryPlan() MemoryPlan { return e.plan }

// WeightTypes returns the type each weight is stored as on the device
// (PlanWeights; a fresh map).
func (e *Engine) WeightTypes() WeightTypes { return maps.Clone(e.wt) }
