package kernels

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ref/quantref"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// embedQIDs returns m ids in [0, v): v−1 first, then 0 and a repeat of
// v−1 when m allows, the rest random (repeats likely for small v).
func embedQIDs(rng *rand.Rand, m, v int) []int32 {
	ids := make([]int32, m)
	for i := range ids {
		ids[i] = int32(rng.IntN(v))
	}
	ids[0] = int32(v - 1)
	if m > 2 {
		ids[1], ids[2] = 0, ids[0]
	}
	return ids
}

// embedQWant is the reference of Embed on a quantized table: rows of the
// float32 dequantization of the table's blocks (model/gguf, bit for bit
// ggml's dequantize_row_*).
func embedQWant(t *testing.T, dt runtime.DType, blocks []byte, ids []int32, v, h int) []float32 {
	t.Helper()
	tv, err := quantref.Dequantize(dt, blocks, v*h)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 0, len(ids)*h)
	for _, id := range ids {
		out = append(out, tv[int(id)*h:(int(id)+1)*h]...)
	}
	return out
}

// embedQRun records Embed into a poisoned f32 [len(ids), h] and returns
// it.
func embedQRun(t *testing.T, d *runtime.Device, table *runtime.Tensor, ids []int32, h int) []float32 {
	t.Helper()
	out := opNew(t, d, runtime.F32, len(ids), h)
	idt := opUpI32(t, d, ids)
	opRun(t, d, func(r *runtime.Recorder) error { return Embed(r, out, table, idt) }, out)
	got, err := out.DownloadF32()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// sameBits reports the first element where got and want differ bit for
// bit (-1: none).
func sameBits(got, want []float32) int {
	if len(got) != len(want) {
		return 0
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i
		}
	}
	return -1
}

// TestEmbedQuant checks Embed on a table of every quantized type against
// the float32 dequantization of its blocks, bit for bit: rows of one, 3
// and 5 blocks, ids with repeats and the extremes 0 and V−1, into a
// poisoned output. The bound is exact equality because the shader computes
// each element as ggml does (one f32 product d·q, or (d·sc)·q and
// d_min·m, and one f32 difference, each correctly rounded: precise forbids
// fused multiply-adds) and stores it as f32, with no further rounding; the
// scales are moderate, tiny (f16-subnormal scales) and large (values past
// f16's range, still far inside f32's), none giving f32 subnormals that a
// device might flush.
func TestEmbedQuant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const v = 37
	scales := []float64{moderate, 1.0 / (1 << 17), 1 << 14}
	for i, dt := range runtime.QuantizedTypes() {
		for j, nb := range []int{1, 3, 5} {
			h := nb * dt.BlockElems()
			scale := scales[(i+j)%len(scales)]
			table, blocks := quantWeight(t, d, rng, dt, v, h, scale)
			for _, m := range []int{1, 9} {
				ids := embedQIDs(rng, m, v)
				want := embedQWant(t, dt, blocks, ids, v, h)
				got := embedQRun(t, d, table, ids, h)
				if e := sameBits(got, want); e >= 0 {
					t.Errorf("embed %s V=%d H=%d M=%d scale=%g: element %d (row %d, id %d): got %v, want %v",
						dt, v, h, m, scale, e, e/h, ids[e/h], got[e], want[e])
				}
			}
			table.Free()
		}
	}
}

// TestEmbedQuantChunked splits the table over rows (a lowered binding
// limit), so that row ranges start inside aligned spans (non-zero byte
// offsets) and each dispatch writes only its ids' rows, and checks the
// result bit for bit.
func TestEmbedQuantChunked(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, c := range []struct {
		dt   runtime.DType
		v, h int
	}{{runtime.Q6_K, 301, 256}, {runtime.Q5_0, 301, 96}} {
		table, blocks := quantWeight(t, d, rng, c.dt, c.v, c.h, moderate)
		ids := embedQIDs(rng, 40, c.v)
		want := embedQWant(t, c.dt, blocks, ids, c.v, c.h)
		rb, _ := c.dt.RowBytes(c.h)
		matmulBindingLimit = quantSlack(d, c.dt) + uint64(100*rb) // about 100 rows a range
		got := embedQRun(t, d, table, ids, c.h)
		nc, err := quantRowChunk(d, c.dt, c.v, c.h, 1, "test")
		matmulBindingLimit = 0
		if err != nil {
			t.Fatal(err)
		}
		if nc >= c.v || nc < 1 {
			t.Fatalf("%s: %d rows a range, want a split of %d rows", c.dt, nc, c.v)
		}
		if e := sameBits(got, want); e >= 0 {
			t.Errorf("embed %s V=%d H=%d in ranges of %d rows: element %d (row %d, id %d): got %v, want %v",
				c.dt, c.v, c.h, nc, e, e/c.h, ids[e/c.h], got[e], want[e])
		}
	}
}

// TestEmbedQuantErrors checks that a quantized table whose rows do not
// match the output's is refused, naming the shapes.
func TestEmbedQuantErrors(t *testing.T) {
	d := gputest.Device(t)
	table, _ := quantWeight(t, d, gputest.Rand(t), runtime.Q8_0, 4, 64, moderate)
	ids := opUpI32(t, d, []int32{0, 3})
	for _, c := range []struct {
		name string
		out  *runtime.Tensor
		want string
	}{
		{"H mismatch", opNew(t, d, runtime.F32, 2, 32), "rows of 32"},
		{"rows vs ids", opNew(t, d, runtime.F32, 3, 64), "has 2 ids"},
		{"out f16", opNew(t, d, runtime.F16, 2, 64), "want one of [f32]"},
	} {
		err := d.Run(func(r *runtime.Recorder) error { return Embed(r, c.out, table, ids) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
