package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawFile assembles a safetensors file from a literal header and a data area
// of dataLen bytes (filled with a pattern).
func rawFile(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	for i := 0; i < dataLen; i++ {
		b = append(b, byte(i))
	}
	return b
}

// validFile returns a small valid file with tensors "a" (F32 [2,3]) and
// "b" (BF16 [4]).
func validFile(t testing.TB) []byte {
	var buf bytes.Buffer
	a, _ := Float32Bytes([]float32{1, 2, 3, 4, 5, 6}, F32)
	b, _ := Float32Bytes([]float32{-1, 0.5, 2, 1e10}, BF16)
	err := WriteSafetensors(&buf, []TensorInfo{
		{Name: "a", DType: F32, Shape: []int{2, 3}, Data: a},
		{Name: "b", DType: BF16, Shape: []int{4}, Data: b},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	vals := []float32{0, 1, -2.5, 65504, 1e-3, float32(math.Inf(-1))}
	for _, dt := range []DType{F32, F16, BF16} {
		data, err := Float32Bytes(vals, dt)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, []TensorInfo{{Name: "x", DType: dt, Shape: []int{2, 3}, Data: data}, {Name: "scalar", DType: dt, Shape: nil, Data: data[:dt.Size()]}}, nil); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "m.safetensors")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := OpenSafetensors(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Names(); !slices.Equal(got, []string{"scalar", "x"}) {
			t.Errorf("names %v", got)
		}
		x, err := f.Tensor("x")
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		tol := map[DType]float64{F32: 0, F16: 1e-3, BF16: 1e-2}[dt]
		for i := range vals {
			if d := math.Abs(float64(got[i] - vals[i])); !(d <= tol*math.Abs(float64(vals[i]))) && got[i] != vals[i] {
				t.Errorf("%s: value %d = %v, want %v", dt, i, got[i], vals[i])
			}
		}
		if x.File != path || x.DType != dt || !slices.Equal(x.Shape, []int{2, 3}) {
			t.Errorf("%s: bad info %+v", dt, x)
		}
		s, _ := f.Tensor("scalar")
		if s.NumElements() != 1 {
			t.Errorf("scalar has %d elements", s.NumElements())
		}
		if _, err := f.Tensor("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), path) {
			t.Errorf("missing tensor error %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFloat32sKnownBits(t *testing.T) {
	// F16 0x3c00 = 1, 0xc000 = -2, 0x7bff = 65504; BF16 0x3f80 = 1, 0xc040 = -3.
	f16 := TensorInfo{Name: "h", DType: F16, Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b}}
	bf16 := TensorInfo{Name: "b", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x40, 0xc0}}
	for _, tc := range []struct {
		t    TensorInfo
		want []float32
	}{{f16, []float32{1, -2, 65504}}, {bf16, []float32{1, -3}}} {
		got, err := tc.t.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.t.DType, got, tc.want)
		}
	}
}

func TestSafetensorsErrors(t *testing.T) {
	valid := validFile(t)
	lying := slices.Clone(valid)
	binary.LittleEndian.PutUint64(lying, uint64(len(valid)))
	huge := make([]byte, MaxHeaderSize+64)
	binary.LittleEndian.PutUint64(huge, MaxHeaderSize+1)
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty", nil, []string{"too short"}},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, []string{"too short"}},
		{"truncated data", valid[:len(valid)-3], []string{`tensor "b"`, "outside the", "truncated"}},
		{"truncated header", valid[:20], []string{"header length", "truncated"}},
		{"header length lies", lying, []string{"header length", "exceeds"}},
		{"header length max uint64", append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, valid[8:]...), []string{"header length 18446744073709551615"}},
		{"header over 100MB", huge, []string{"exceeds the 104857600-byte limit"}},
		{"bad json", rawFile(`{"a":`, 0), []string{"header JSON"}},
		{"json array", rawFile(`[]`, 0), []string{"header JSON"}},
		{"json null", rawFile(`null`, 0), []string{"not a JSON object"}},
		{"offsets out of range", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), []string{`tensor "w"`, "data_offsets [0, 8] outside the 4-byte data area"}},
		{"begin after end", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, 8), []string{`tensor "w"`, "begin > end"}},
		{"shape bytes mismatch", rawFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), []string{`tensor "w"`, "needs 12 bytes", "span 8"}},
		{"unknown dtype", rawFile(`{"w":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, `unsupported dtype "I8"`}},
		{"F64", rawFile(`{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, 8), []string{`tensor "w"`, `"F64"`}},
		{"missing dtype", rawFile(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, "missing dtype"}},
		{"missing shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, "missing shape"}},
		{"negative dim", rawFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, "negative dimension"}},
		{"overflowing shape", rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}`, 4), []string{`tensor "w"`, "overflows"}},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 8), []string{`tensor "w"`, "2 entries"}},
		{"negative offset", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, 8), []string{`tensor "w"`}},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), []string{`"a"`, `"b"`, "overlap"}},
		{"metadata not strings", rawFile(`{"__metadata__":{"x":1}}`, 0), []string{"__metadata__"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseSafetensors("bad.safetensors", tc.data)
			if err == nil {
				t.Fatalf("no error; tensors %v", f.Names())
			}
			msg := err.Error()
			for _, w := range append(tc.want, "bad.safetensors") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
	// Zero-sized tensors, a scalar and padding are fine.
	ok := rawFile(`{"e":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   `, 6)
	if _, err := ParseSafetensors("ok", ok); err != nil {
		t.Errorf("valid file rejected: %v", err)
	}
}

func TestOpenSafetensorsFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.safetensors")
	os.WriteFile(empty, nil, 0o644)
	if _, err := OpenSafetensors(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: %v", err)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := OpenSafetensors(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := OpenSafetensors(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// writeSharded writes a two-shard checkpoint of tensors a, b (shard 1) and
// c (shard 2) into dir.
func writeSharded(t *testing.T, dir string) {
	t.Helper()
	mk := func(name string, vals ...float32) TensorInfo {
		d, _ := Float32Bytes(vals, F32)
		return TensorInfo{Name: name, DType: F32, Shape: []int{len(vals)}, Data: d}
	}
	write := func(file string, ts ...TensorInfo) {
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model-00001-of-00002.safetensors", mk("a", 1, 2), mk("b", 3))
	write("model-00002-of-00002.safetensors", mk("c", 4, 5, 6), mk("unlisted", 7))
	idx, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"total_size": 24},
		"weight_map": map[string]string{
			"a": "model-00001-of-00002.safetensors",
			"b": "model-00001-of-00002.safetensors",
			"c": "model-00002-of-00002.safetensors",
		},
	})
	if err := os.WriteFile(filepath.Join(dir, SafetensorsIndexName), idx, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestShardedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	writeSharded(t, dir)
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ck.Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("names %v", got)
	}
	if len(ck.files) != 2 {
		t.Errorf("%d files open, want 2", len(ck.files))
	}
	c, err := ck.Float32s("c")
	if err != nil || !slices.Equal(c, []float32{4, 5, 6}) {
		t.Errorf("c = %v, %v", c, err)
	}
	if tc, _ := ck.Tensor("c"); !strings.HasSuffix(tc.File, "model-00002-of-00002.safetensors") {
		t.Errorf("c.File = %q", tc.File)
	}
	if _, err := ck.Tensor("unlisted"); err == nil || !strings.Contains(err.Error(), `"unlisted"`) {
		t.Errorf("unlisted tensor: %v", err)
	}
	if err := ck.Close(); err != nil {
		t.Fatal(err)
	}

	// Same checkpoint through fs.FS.
	ck, err = OpenCheckpointFS(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := ck.Float32s("a"); err != nil || !slices.Equal(a, []float32{1, 2}) {
		t.Errorf("FS a = %v, %v", a, err)
	}
	ck.Close()
}

func TestShardedCheckpointErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   []string
	}{
		{"missing shard", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
		}, []string{`shard "model-00002-of-00002.safetensors"`, `tensor "c"`, "no such file"}},
		{"corrupt shard", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), []byte{1, 2, 3}, 0o644)
		}, []string{"model-00001-of-00002.safetensors", "too short"}},
		{"tensor not in shard", func(t *testing.T, dir string) {
			idx := `{"weight_map": {"a": "model-00002-of-00002.safetensors"}}`
			os.WriteFile(filepath.Join(dir, SafetensorsIndexName), []byte(idx), 0o644)
		}, []string{`tensor "a"`, `shard "model-00002-of-00002.safetensors"`, "does not contain it"}},
		{"path escape", func(t *testing.T, dir string) {
			idx := `{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}`
			os.WriteFile(filepath.Join(dir, SafetensorsIndexName), []byte(idx), 0o644)
		}, []string{`tensor "a"`, "not a plain file name"}},
		{"empty weight map", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SafetensorsIndexName), []byte(`{"weight_map": {}}`), 0o644)
		}, []string{"empty or missing weight_map"}},
		{"bad index json", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SafetensorsIndexName), []byte(`{`), 0o644)
		}, []string{SafetensorsIndexName}},
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, SafetensorsIndexName))
		}, []string{"no model.safetensors or model.safetensors.index.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSharded(t, dir)
			tc.mutate(t, dir)
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(validFile(f))
	f.Add(rawFile(`{"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}`, 8))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}`, 12))
	f.Add(rawFile(`{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := ParseSafetensors("fuzz", data)
		if err != nil {
			if sf != nil {
				t.Fatal("non-nil file with error")
			}
			return
		}
		total := 0
		for _, n := range sf.Names() {
			ti, err := sf.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(ti.Data) != ti.NumElements()*ti.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for shape %v %s", n, len(ti.Data), ti.Shape, ti.DType)
			}
			total += len(ti.Data)
			v, err := ti.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != ti.NumElements() {
				t.Fatalf("tensor %q: %d values", n, len(v))
			}
		}
		if total > len(data) {
			t.Fatalf("tensors cover %d bytes of a %d-byte file", total, len(data))
		}
	})
}
