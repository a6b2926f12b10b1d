package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/shareprefill/shareprefill/runtime"
)

// TopKMax is the largest k TopK supports.
const TopKMax = 256

// DefaultTopK is the number of candidates a sampler fetches with TopK before
// SampleTopP.
const DefaultTopK = 256

// Argmax records idx[i] = argmax_j x[i, j] for x f32 [M, N] (N = the last
// dimension of x's shape) into idx i32 [M]. Ties go to the lowest index; NaN
// never wins (an all-NaN row gives 0).
func Argmax(r *runtime.Recorder, idx, x *runtime.Tensor) error {
	const op = "argmax"
	if err := opDType(op, "x", x, runtime.F32); err != nil {
		return err
	}
	if err := opDType(op, "idx", idx, runtime.I32); err != nil {
		return err
	}
	m, n, err := opRowsCols(op, "x", x)
	if err != nil {
		return err
	}
	if idx.Len() != m {
		return fmt.Errorf("%s: idx %s has %d elements, x %s has %d rows", op, idx.Name(), idx.Len(), x.Name(), m)
	}
	if uint64(x.Len()) > opMaxU32 {
		return fmt.Errorf("%s: %d elements exceed 32-bit indexing", op, x.Len())
	}
	d := r.Device()
	wg, vec, sg := argmaxShape(d, m, n)
	k, err := d.Kernel(runtime.KernelDesc{Shader: "argmax", Bindings: 2, ReadOnly: 0b01, PushSize: 8, Spec: []uint32{wg, b2u(vec), b2u(sg)}})
	if err != nil {
		return err
	}
	return r.Dispatch(k, opRowGroups(d, m), [2]uint32{uint32(m), uint32(n)}, x, idx)
}

// argmaxShape is Argmax's workgroup for m rows of n: opRowLocal, or up to
// 1024 invocations for a few long rows (a decode step's logits: one row of
// a vocabulary, where a 256-wide workgroup scanned 500 values each), 16-byte
// loads where n is a multiple of 4, subgroup merges where the device has
// them and the workgroup is whole subgroups.
func argmaxShape(d *runtime.Device, m, n int) (wg uint32, vec, sg bool) {
	wg = opRowLocal(d)
	if m <= 4 && n >= 1<<15 {
		wg = rowLocal(d, 1024)
	}
	caps := d.Caps()
	sg = caps.SubgroupArithmetic && caps.SubgroupSize > 0 && wg%caps.SubgroupSize == 0
	return wg, n%4 == 0, sg
}

// TopK records, for each row of x f32 [M, N] (N = the last dimension of x's
// shape), its k largest values sorted descending into vals f32 [M, k] and
// their column indices into idx i32 [M, k]; equal values come lower index
// first. 1 ≤ k ≤ min(N, TopKMax). -0 and +0 compare equal (the value
// returned is +0); NaN ranks below -inf. One workgroup per row: a 4-pass
// radix select finds the k-th value, then the candidates are gathered and
// bitonic-sorted in shared memory; the row is read 6 times whatever k is.
func TopK(r *runtime.Recorder, vals, idx, x *runtime.Tensor, k int) error {
	const op = "topk"
	if err := opDType(op, "x", x, runtime.F32); err != nil {
		return err
	}
	if err := opDType(op, "vals", vals, runtime.F32); err != nil {
		return err
	}
	if err := opDType(op, "idx", idx, runtime.I32); err != nil {
		return err
	}
	m, n, err := opRowsCols(op, "x", x)
	if err != nil {
		return err
	}
	if k < 1 || k > TopKMax || k > n {
		return fmt.Errorf("%s: k = %d must be in [1, min(N = %d, %d)]", op, k, n, TopKMax)
	}
	if vals.Len() != m*k || idx.Len() != m*k {
		return fmt.Errorf("%s: vals %s (%d) and idx %s (%d) must have M·k = %d·%d elements", op, vals.Name(), vals.Len(), idx.Name(), idx.Len(), m, k)
	}
	if uint64(x.Len()) > opMaxU32 {
		return fmt.Errorf("%s: %d elements exceed 32-bit indexing", op, x.Len())
	}
	k2 := 1
	for k2 < k {
		k2 <<= 1
	}
	if k2 < 2 {
		k2 = 2
	}
	d := r.Device()
	l := opRowLocal(d)
	if l < 2 {
		return fmt.Errorf("%s: workgroups of %d invocations are too small", op, l)
	}
	kern, err := d.Kernel(runtime.KernelDesc{Shader: "topk", Bindings: 3, ReadOnly: 0b001, PushSize: 16, Spec: []uint32{l}})
	if err != nil {
		return err
	}
	return r.Dispatch(kern, opRowGroups(d, m), [4]uint32{uint32(m), uint32(n), uint32(k), uint32(k2)}, x, vals, idx)
}

// SampleTopP draws a token from top-k candidates (vals sorted descending, as
// TopK returns them, with their token ids idx) with temperature temp and
// nucleus threshold topP, and returns the token id.
//
// Top-p is applied within the top-k candidates only (k = DefaultTopK = 256 by
// default): probabilities are softmax(vals/temp) renormalised over the k
// candidates, and the smallest prefix whose mass reaches topP is kept
// (always at least one), as HF's TopPLogitsWarper does after top-k. Mass
// beyond the k-th candidate is ignored, which for k = 256 is negligible at
// usual temperatures. temp <= 0 (or NaN) is greedy: idx[0]. topP >= 1 or
// <= 0 keeps all k candidates. Candidates with idx < 0 or value -inf/NaN
// get probability 0.
func SampleTopP(vals []float32, idx []int32, temp, topP float64, rng *rand.Rand) int {
	n := min(len(vals), len(idx))
	if n == 0 {
		return -1
	}
	if !(temp > 0) || math.IsInf(temp, 1) {
		return int(idx[0])
	}
	top := math.Inf(-1)
	for i := 0; i < n; i++ {
		if v := float64(vals[i]); idx[i] >= 0 && v > top {
			top = v
		}
	}
	if math.IsInf(top, -1) {
		return int(idx[0])
	}
	p := make([]float64, n)
	var sum float64
	for i := 0; i < n; i++ {
		v := float64(vals[i])
		if idx[i] < 0 || math.IsNaN(v) {
			continue
		}
		p[i] = math.Exp((v - top) / temp)
		sum += p[i]
	}
	keep := n
	if topP > 0 && topP < 1 {
		var c float64
		for i := 0; i < n; i++ {
			c += p[i] / sum
			if c >= topP {
				keep = i + 1
				break
			}
		}
	}
	var kept float64
	for i := 0; i < keep; i++ {
		kept += p[i]
	}
	u := rng.Float64() * kept
	last := 0
	for i := 0; i < keep; i++ {
		if p[i] == 0 {
			continue
		}
		last = i
		u -= p[i]
		if u < 0 {
			return int(idx[i])
		}
	}
	return int(idx[last])
}
