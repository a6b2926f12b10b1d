package model

// SetDecodeFusion chooses e's decode kernels for the external tests, before
// its first decode step: the fused mat-vecs a GPU takes (gpu: decodeFusion
// for a GPU, also on a CPU device) or the general kernels (RMSNorm, MatMul,
// SwiGLU and AddInPlace, a dispatch each).
func SetDecodeFusion(e *Engine, gpu bool) {
	if gpu {
		e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = e.decodeFusion(false)
		return
	}
	e.dec.fuseAdd, e.dec.fuseNorm, e.dec.fuseHead = false, false, false
}
