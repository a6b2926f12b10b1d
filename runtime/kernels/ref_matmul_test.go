package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// RefMatMul is the float64 reference of MatMul: y[m,n] = Σ_k x[m,k]·w[n,k]
// (+ bias[n]) for x [M, K], w [N, K], bias [N] or nil; y is [M, N]. Round
// f16 inputs (runtime.RoundF16) before calling it.
func RefMatMul(x, w, bias []float32, M, N, K int) []float64 {
	if len(x) != M*K || len(w) != N*K || (bias != nil && len(bias) != N) {
		panic("RefMatMul: slice lengths do not match M, N, K")
	}
	y := make([]float64, M*N)
	if M == 0 || N == 0 {
		return y
	}
	for m := 0; m < M; m++ {
		for n := 0; n < N; n++ {
			if bias != nil {
				y[m*N+n] = float64(bias[n])
			}
		}
	}
	if K == 0 {
		return y
	}
	a := blas64.General{Rows: M, Cols: K, Stride: K, Data: mmF64(x)}
	b := blas64.General{Rows: N, Cols: K, Stride: K, Data: mmF64(w)}
	c := blas64.General{Rows: M, Cols: N, Stride: N, Data: y}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, a, b, 1, c)
	return y
}

// mmF64 widens float32 values to float64.
func mmF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
