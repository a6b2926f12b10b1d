package gguf_test

import "testing"

// FuzzReadGGUF reads arbitrary bytes as a GGUF file: an error or a file
// whose every tensor lies inside the data and decodes, never a panic or a
// runaway allocation.
func FuzzReadGGUF(f *testing.F) {
	for _, v := range []struct{ version, align uint32 }{{3, 0}, {2, 0}, {3, 64}} {
		f.Add(mustBytes(f, sampleWriter(v.version, v.align)))
	}
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := read(data)
		if err != nil {
			return
		}
		if file.DataOffset%int64(file.Alignment) != 0 {
			t.Fatalf("data offset %d is not aligned to %d", file.DataOffset, file.Alignment)
		}
		for _, ti := range file.Tensors {
			if file.DataOffset+int64(ti.Offset)+int64(ti.Size) > int64(len(data)) {
				t.Fatalf("tensor %q [%d, +%d) past the %d-byte file", ti.Name, ti.Offset, ti.Size, len(data))
			}
			raw, err := file.TensorData(ti)
			if err != nil || uint64(len(raw)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, %v", ti.Name, len(raw), err)
			}
			if ti.Type.CanDequantize() && ti.NumElements() <= 1<<20 {
				if _, err := file.Float32s(ti); err != nil {
					t.Fatalf("tensor %q: %v", ti.Name, err)
				}
			}
		}
		for _, kv := range file.KVs {
			_ = kv.Value.String()
		}
	})
}
