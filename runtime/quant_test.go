package runtime_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestQuantDTypeFacts checks the block facts and names of every dtype and
// RowBytes' errors. CPU only.
func TestQuantDTypeFacts(t *testing.T) {
	for _, c := range []struct {
		dt     runtime.DType
		name   string
		be, bb int
		quant  bool
	}{
		{runtime.F32, "f32", 1, 4, false},
		{runtime.F16, "f16", 1, 2, false},
		{runtime.BF16, "bf16", 1, 2, false},
		{runtime.U8, "u8", 1, 1, false},
		{runtime.Q8_0, "q8_0", 32, 34, true},
		{runtime.Q4_0, "q4_0", 32, 18, true},
		{runtime.Q5_0, "q5_0", 32, 22, true},
		{runtime.Q4_K, "q4_k", 256, 144, true},
		{runtime.Q5_K, "q5_k", 256, 176, true},
		{runtime.Q6_K, "q6_k", 256, 210, true},
	} {
		if c.dt.String() != c.name || c.dt.BlockElems() != c.be || c.dt.BlockBytes() != c.bb || c.dt.IsQuantized() != c.quant {
			t.Errorf("%s: String %q BlockElems %d BlockBytes %d IsQuantized %v, want %q %d %d %v",
				c.name, c.dt, c.dt.BlockElems(), c.dt.BlockBytes(), c.dt.IsQuantized(), c.name, c.be, c.bb, c.quant)
		}
		if got, err := c.dt.RowBytes(3 * c.be); err != nil || got != 3*c.bb {
			t.Errorf("%s: RowBytes(%d) = %d, %v; want %d", c.name, 3*c.be, got, err, 3*c.bb)
		}
		if c.quant {
			if c.dt.Size() != 0 {
				t.Errorf("%s: Size() = %d, want 0 (no element size)", c.name, c.dt.Size())
			}
			if _, err := c.dt.RowBytes(c.be + 1); err == nil || !strings.Contains(err.Error(), "whole number") {
				t.Errorf("%s: RowBytes(%d): error %v, want a whole-blocks error", c.name, c.be+1, err)
			}
		}
		if _, err := c.dt.RowBytes(-c.be); err == nil {
			t.Errorf("%s: RowBytes(%d): no error", c.name, -c.be)
		}
	}
	if got := len(runtime.QuantizedTypes()); got != 6 {
		t.Errorf("QuantizedTypes has %d types, want 6", got)
	}
	unknown := runtime.DType(200)
	if _, err := unknown.RowBytes(4); err == nil || unknown.IsQuantized() || unknown.Size() != 0 {
		t.Errorf("unknown dtype: RowBytes error %v, IsQuantized %v, Size %d; want an error, false, 0", err, unknown.IsQuantized(), unknown.Size())
	}
}

// TestQuantTensor checks quantized tensors: their byte size, element count,
// raw upload and download, row views, and the errors of shapes that are
// not whole blocks and of float32 transfers.
func TestQuantTensor(t *testing.T) {
	d := gputest.Device(t)
	w, err := d.NewNamedTensor("w", runtime.Q4_K, 3, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	if w.Bytes() != 3*2*144 || w.Len() != 3*512 {
		t.Errorf("q4_k [3, 512]: %d bytes, %d elements; want %d, %d", w.Bytes(), w.Len(), 3*2*144, 3*512)
	}
	for _, shape := range [][]int{{2, 100}, {}} {
		if _, err := d.NewNamedTensor("bad", runtime.Q8_0, shape...); err == nil {
			t.Errorf("q8_0 %v: no error", shape)
		}
	}
	if err := w.UploadF32(make([]float32, w.Len())); err == nil || !strings.Contains(err.Error(), "UploadBytes") {
		t.Errorf("UploadF32 to q4_k: error %v, want one naming UploadBytes", err)
	}
	if _, err := w.DownloadF32(); err == nil {
		t.Error("DownloadF32 of q4_k: no error")
	}

	// Q8_0 rows of 4096 elements are 4352 = 17·256 bytes: row views align.
	const K = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	q, err := d.NewNamedTensor("q", runtime.Q8_0, 4, K)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Free()
	data := make([]byte, 4*4352)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := q.UploadBytes(data, 0); err != nil {
		t.Fatal(err)
	}
	v, err := q.View(2*K, 2, K)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 2*K || v.Bytes() != 2*4352 {
		t.Errorf("view of rows 2–3: %d elements, %d bytes; want %d, %d", v.Len(), v.Bytes(), 2*K, 2*4352)
	}
	got, err := v.DownloadBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[2*4352:]) {
		t.Error("view of rows 2–3: bytes differ from the uploaded rows")
	}
	for _, c := range []struct {
		off   int
		shape []int
	}{
		{16, []int{32}},      // starts inside a block
		{0, []int{64, 16}},   // rows of half a block
		{3 * K, []int{2, K}}, // past the end
		{-32, []int{1, 32}},  // negative offset
		{K + 32, []int{32}},  // whole block, byte offset 4386 not aligned
	} {
		_, err := q.View(c.off, c.shape...)
		if err == nil {
			t.Errorf("View(%d, %v): no error", c.off, c.shape)
		}
	}
}
