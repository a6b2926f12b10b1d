package gguf_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/internal/ggufwrite"
	"github.com/shareprefill/shareprefill/model/gguf"
)

// sampleWriter returns a writer with a value of every type, nested arrays
// and tensors of several types.
func sampleWriter(version, alignment uint32) *ggufwrite.Writer {
	w := &ggufwrite.Writer{Version: version, Alignment: alignment}
	w.Add("general.architecture", "llama")
	w.Add("u8", uint8(200))
	w.Add("i8", int8(-100))
	w.Add("u16", uint16(60000))
	w.Add("i16", int16(-30000))
	w.Add("u32", uint32(4000000000))
	w.Add("i32", int32(-2000000000))
	w.Add("u64", uint64(1)<<63)
	w.Add("i64", int64(-1)<<62)
	w.Add("f32", float32(1.5))
	w.Add("f64", -2.25)
	w.Add("yes", true)
	w.Add("no", false)
	w.Add("str", "héllo\x00world")
	w.Add("empty", "")
	w.Add("strs", []string{"a", "", "▁the"})
	w.Add("i32s", []int32{-1, 0, 7})
	w.Add("u8s", []uint8{1, 2})
	w.Add("f32s", []float32{0.5, -1})
	w.Add("bools", []bool{true, false})
	w.Add("u64s", []uint64{math.MaxUint64})
	w.Add("nothing", []int32{})
	f32 := make([]byte, 4*3*2)
	for i := 0; i < 6; i++ {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(i)-2.5))
	}
	w.AddTensor("a.f32", gguf.F32, []uint64{3, 2}, f32)
	q8 := make([]byte, 2*34)
	for i := range q8 {
		q8[i] = byte(i * 7)
	}
	binary.LittleEndian.PutUint16(q8[0:], 0x3c00)  // d = 1
	binary.LittleEndian.PutUint16(q8[34:], 0xbc00) // d = -1
	w.AddTensor("b.q8_0", gguf.Q8_0, []uint64{32, 2}, q8)
	w.AddTensor("c.scalar", gguf.F16, nil, []byte{0x00, 0x40}) // 2.0
	w.AddTensor("d.empty", gguf.F32, []uint64{0, 5}, nil)
	return w
}

func mustBytes(t testing.TB, w *ggufwrite.Writer) []byte {
	t.Helper()
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func read(data []byte) (*gguf.File, error) {
	return gguf.Read("test.gguf", bytes.NewReader(data), int64(len(data)))
}

func TestReadRoundTrip(t *testing.T) {
	for _, tc := range []struct{ version, align uint32 }{{3, 0}, {2, 0}, {3, 64}, {3, 8}} {
		data := mustBytes(t, sampleWriter(tc.version, tc.align))
		f, err := read(data)
		if err != nil {
			t.Fatalf("v%d align %d: %v", tc.version, tc.align, err)
		}
		align := uint64(tc.align)
		if align == 0 {
			align = 32
		}
		if f.Version != tc.version || f.Alignment != align || f.DataOffset%int64(align) != 0 {
			t.Errorf("version %d alignment %d data offset %d; want v%d, alignment %d", f.Version, f.Alignment, f.DataOffset, tc.version, align)
		}
		want := map[string]any{
			"u8": uint8(200), "i8": int8(-100), "u16": uint16(60000), "i16": int16(-30000),
			"u32": uint32(4000000000), "i32": int32(-2000000000), "u64": uint64(1) << 63, "i64": int64(-1) << 62,
			"f32": float32(1.5), "f64": -2.25, "yes": true, "no": false, "str": "héllo\x00world", "empty": "",
			"strs": []string{"a", "", "▁the"}, "i32s": []int32{-1, 0, 7}, "u8s": []uint8{1, 2},
			"f32s": []float32{0.5, -1}, "bools": []bool{true, false}, "u64s": []uint64{math.MaxUint64}, "nothing": []int32{},
		}
		for k, w := range want {
			v, ok := f.Lookup(k)
			if !ok || !reflect.DeepEqual(v.Interface(), w) {
				t.Errorf("%s = %#v (%v), want %#v", k, v.Interface(), ok, w)
			}
		}
		if v, _ := f.Lookup("strs"); v.Type != gguf.TypeArray || v.Elem != gguf.TypeString || v.Len() != 3 {
			t.Errorf("strs: type %s elem %s len %d", v.Type, v.Elem, v.Len())
		}
		if n, err := f.Int("u32"); err != nil || n != 4000000000 {
			t.Errorf("Int(u32) = %d, %v", n, err)
		}
		if _, err := f.Int("u64"); err == nil || !strings.Contains(err.Error(), "u64 has type uint64, want an integer") {
			t.Errorf("Int(u64 = 2^63): %v, want an error naming the key", err)
		}
		if _, err := f.String("missing"); err == nil || !strings.Contains(err.Error(), "test.gguf: missing metadata key missing") {
			t.Errorf("String(missing): %v", err)
		}
		if x, err := f.Float("f32"); err != nil || x != 1.5 {
			t.Errorf("Float(f32) = %v, %v", x, err)
		}
		if ints, ok := mustLookup(t, f, "i32s").Ints(); !ok || !reflect.DeepEqual(ints, []int64{-1, 0, 7}) {
			t.Errorf("Ints(i32s) = %v, %v", ints, ok)
		}
		if _, ok := mustLookup(t, f, "u64s").Ints(); ok {
			t.Error("Ints(u64s holding 2^64-1) succeeded")
		}

		names := []string{}
		for _, ti := range f.Tensors {
			names = append(names, ti.Name)
		}
		if !reflect.DeepEqual(names, []string{"a.f32", "b.q8_0", "c.scalar", "d.empty"}) {
			t.Fatalf("tensors %v", names)
		}
		a, _ := f.Tensor("a.f32")
		if !reflect.DeepEqual(a.Shape(), []int{2, 3}) || a.NumElements() != 6 || a.Size != 24 {
			t.Errorf("a.f32: shape %v, %d elements, %d bytes", a.Shape(), a.NumElements(), a.Size)
		}
		av, err := f.Float32s(a)
		if err != nil || !reflect.DeepEqual(av, []float32{-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}) {
			t.Errorf("a.f32 = %v, %v", av, err)
		}
		b, _ := f.Tensor("b.q8_0")
		bv, err := f.Float32s(b)
		if err != nil {
			t.Fatal(err)
		}
		if bv[0] != float32(int8(2*7)) || bv[32] != 4 /* -1 · int8(252) */ {
			t.Errorf("b.q8_0: %v … %v", bv[0], bv[32])
		}
		c, _ := f.Tensor("c.scalar")
		if cv, err := f.Float32s(c); err != nil || len(cv) != 1 || cv[0] != 2 || len(c.Shape()) != 0 {
			t.Errorf("c.scalar = %v, %v (shape %v)", cv, err, c.Shape())
		}
		d, _ := f.Tensor("d.empty")
		if dv, err := f.Float32s(d); err != nil || len(dv) != 0 {
			t.Errorf("d.empty = %v, %v", dv, err)
		}
		for _, ti := range f.Tensors {
			if ti.Offset%align != 0 {
				t.Errorf("%s: offset %d not aligned to %d", ti.Name, ti.Offset, align)
			}
		}
	}
}

func mustLookup(t *testing.T, f *gguf.File, key string) gguf.Value {
	t.Helper()
	v, ok := f.Lookup(key)
	if !ok {
		t.Fatalf("no key %s", key)
	}
	return v
}

func TestNestedArrays(t *testing.T) {
	// An array of two arrays of uint16, written by hand.
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("GGUF")
	for _, v := range []any{uint32(3), uint64(0), uint64(1), uint64(6), []byte("nested"), uint32(gguf.TypeArray), uint32(gguf.TypeArray), uint64(2),
		uint32(gguf.TypeUint16), uint64(2), []uint16{1, 2}, uint32(gguf.TypeUint16), uint64(1), []uint16{3}} {
		binary.Write(&b, le, v)
	}
	f, err := read(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	v := mustLookup(t, f, "nested")
	inner, ok := v.Interface().([]gguf.Value)
	if !ok || len(inner) != 2 || v.Elem != gguf.TypeArray {
		t.Fatalf("nested = %#v", v)
	}
	if !reflect.DeepEqual(inner[0].Interface(), []uint16{1, 2}) || !reflect.DeepEqual(inner[1].Interface(), []uint16{3}) {
		t.Errorf("nested = %v, %v", inner[0].Interface(), inner[1].Interface())
	}
}

// TestReadGGUFPyFile reads the stories260K Q8_0 file that llama.cpp's
// gguf-py wrote (model/testdata), an independent writer.
func TestReadGGUFPyFile(t *testing.T) {
	f, err := gguf.Open(filepath.Join("..", "testdata", "stories260k-q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if arch, err := f.String("general.architecture"); err != nil || arch != "llama" {
		t.Errorf("general.architecture = %q, %v", arch, err)
	}
	if n, err := f.Int("llama.block_count"); err != nil || n != 5 {
		t.Errorf("llama.block_count = %d, %v", n, err)
	}
	toks, ok := mustLookup(t, f, "tokenizer.ggml.tokens").Strings()
	if !ok || len(toks) != 512 || toks[1] != "<s>" {
		t.Errorf("tokenizer.ggml.tokens: %d tokens", len(toks))
	}
	if len(f.Tensors) != 47 {
		t.Errorf("%d tensors, want 47", len(f.Tensors))
	}
	types := map[gguf.Type]int{}
	for _, ti := range f.Tensors {
		types[ti.Type]++
		v, err := f.Float32s(ti)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s[%d] = %v", ti.Name, i, x)
			}
		}
	}
	if types[gguf.Q8_0] == 0 || types[gguf.F32] == 0 || types[gguf.F16] == 0 {
		t.Errorf("tensor types %v: want Q8_0, F16 (ffn_down: 172 is no multiple of 32) and F32 norms", types)
	}
	e, _ := f.Tensor("token_embd.weight")
	if e.Type != gguf.Q8_0 || !reflect.DeepEqual(e.Shape(), []int{512, 64}) {
		t.Errorf("token_embd.weight: %s %v", e.Type, e.Shape())
	}
	f.Close()
	if _, err := f.TensorData(e); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("TensorData after Close: %v", err)
	}
}

// header builds a file from raw little-endian pieces after the magic.
func header(pieces ...any) []byte {
	var b bytes.Buffer
	b.WriteString("GGUF")
	for _, p := range pieces {
		if s, ok := p.(string); ok {
			binary.Write(&b, binary.LittleEndian, uint64(len(s)))
			b.WriteString(s)
			continue
		}
		binary.Write(&b, binary.LittleEndian, p)
	}
	return b.Bytes()
}

func TestMalformed(t *testing.T) {
	u32, u64 := func(v uint32) uint32 { return v }, func(v uint64) uint64 { return v }
	good := mustBytes(t, sampleWriter(3, 0))
	// tensorFile has one F32 tensor "t" with dims, type and offset given.
	tensorFile := func(dims []uint64, typ, off uint64, data int) []byte {
		p := []any{u32(3), u64(1), u64(0), "t", u32(uint32(len(dims)))}
		for _, d := range dims {
			p = append(p, d)
		}
		p = append(p, u32(uint32(typ)), off)
		b := header(p...)
		for len(b)%32 != 0 {
			b = append(b, 0)
		}
		return append(b, make([]byte, data)...)
	}
	twoTensors := func(off2 uint64) []byte {
		b := header(u32(3), u64(2), u64(0), "a", u32(1), u64(8), u32(0), u64(0), "b", u32(1), u64(8), u32(0), off2)
		for len(b)%32 != 0 {
			b = append(b, 0)
		}
		return append(b, make([]byte, 64)...)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short for the GGUF header"},
		{"magic", append([]byte("GGML"), good[4:]...), `not a GGUF file (magic "GGML"`},
		{"v1", header(u32(1), u64(0), u64(0)), "GGUF version 1 is not supported"},
		{"v4", header(u32(4), u64(0), u64(0)), "unsupported GGUF version 4"},
		{"big-endian", header(u32(3<<24), u64(0), u64(0)), "big-endian GGUF"},
		{"kv count", header(u32(3), u64(0), u64(1<<40)), "metadata count 1099511627776 exceeds"},
		{"tensor count", header(u32(3), u64(1<<40), u64(0)), "tensor count 1099511627776 exceeds"},
		{"key length", header(u32(3), u64(0), u64(1), u64(1<<20), make([]byte, 16)), "key: string length 1048576 exceeds the limit 65535"},
		{"string length", header(u32(3), u64(0), u64(1), "k", u32(8), u64(1<<50)), "metadata key k: string length 1125899906842624 exceeds"},
		{"value type", header(u32(3), u64(0), u64(1), "k", u32(13), u64(0)), "metadata key k: unknown value type 13"},
		{"bool", header(u32(3), u64(0), u64(1), "k", u32(7), uint8(2)), "metadata key k: bool byte 2"},
		{"array length", header(u32(3), u64(0), u64(1), "k", u32(9), u32(4), u64(1<<40)), "metadata key k: array of 1099511627776 uint32 elements exceeds"},
		{"array elem type", header(u32(3), u64(0), u64(1), "k", u32(9), u32(77), u64(1)), "unknown array element type 77"},
		{"duplicate key", header(u32(3), u64(0), u64(2), "k", u32(0), uint8(1), "k", u32(0), uint8(2)), "metadata key k appears twice"},
		{"truncated value", header(u32(3), u64(0), u64(1), "k", u32(4), uint8(1)), "metadata key k: unexpected end of file"},
		{"alignment type", header(u32(3), u64(0), u64(1), "general.alignment", u32(10), u64(32)), "general.alignment has type uint64, want uint32"},
		{"alignment value", header(u32(3), u64(0), u64(1), "general.alignment", u32(4), u32(48)), "general.alignment is 48, want a power of two"},
		{"dims", tensorFile([]uint64{1, 1, 1, 1, 1}, 0, 0, 4), `tensor "t": 5 dimensions exceed the limit 4`},
		{"ggml type", tensorFile([]uint64{4}, 99, 0, 16), `tensor "t": unknown ggml type 99`},
		{"block", tensorFile([]uint64{33}, uint64(gguf.Q8_0), 0, 68), `tensor "t": dimensions [33]: 33 elements of Q8_0 are not a whole number of 32-element blocks`},
		{"overflow", tensorFile([]uint64{1 << 32, 1 << 32}, 0, 0, 0), `tensor "t": dimensions [4294967296 4294967296]: the element count overflows int64`},
		{"byte overflow", tensorFile([]uint64{1 << 62}, 0, 0, 0), "elements of F32 overflow the byte count"},
		{"byte count", tensorFile([]uint64{1 << 61}, 0, 0, 0), `tensor "t": dimensions [2305843009213693952] of F32: the byte count overflows int64`},
		{"misaligned", tensorFile([]uint64{4}, 0, 8, 32), `tensor "t": offset 8 is not a multiple of the alignment 32`},
		{"outside", tensorFile([]uint64{4}, 0, 0, 15), `tensor "t": data [0, 16) lies outside the 15-byte data section`},
		{"far outside", tensorFile([]uint64{4}, 0, 1<<40, 16), `tensor "t": data [1099511627776, 1099511627792) lies outside`},
		{"overlap", twoTensors(0), `tensors "a" [0, 32) and "b" [0, 32) overlap`},
		{"duplicate tensor", header(u32(3), u64(2), u64(0), "a", u32(1), u64(8), u32(0), u64(0), "a", u32(1), u64(8), u32(0), u64(32)), `tensor "a" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(tc.data)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "gguf: test.gguf: ") {
				t.Fatalf("error %q, want it to name the file and contain %q", err, tc.want)
			}
		})
	}
	if _, err := read(twoTensors(32)); err != nil {
		t.Errorf("adjacent tensors: %v", err)
	}
}

// TestTruncated reads every prefix of a valid file: each is an error (the
// data section is part of the file), never a panic.
func TestTruncated(t *testing.T) {
	good := mustBytes(t, sampleWriter(3, 0))
	if _, err := read(good); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good)-1; n++ {
		if _, err := read(good[:n]); err == nil {
			// A prefix that ends in the padding of the last tensor is valid.
			f, _ := read(good)
			last := f.Tensors[len(f.Tensors)-2] // d.empty has no data
			if int64(n) >= f.DataOffset+int64(last.Offset+last.Size) {
				continue
			}
			t.Fatalf("prefix of %d bytes (of %d) read without error", n, len(good))
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := gguf.Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) = %v", err)
	}
	if _, err := gguf.Open(filepath.Join(dir, "none.gguf")); err == nil {
		t.Error("Open(missing file) succeeded")
	}
	p := filepath.Join(dir, "x.gguf")
	if err := os.WriteFile(p, []byte("GGUF\x03\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gguf.Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("Open(truncated) = %v, want an error naming the path", err)
	}
}
