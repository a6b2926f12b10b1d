// Package model reads Hugging Face Llama-family checkpoints (config.json and
// safetensors weights), maps them onto a typed Weights struct and provides a
// pure-Go float64 reference forward pass used to check the GPU runtime.
package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strings"

	"github.com/x448/float16"
)

// MaxHeaderSize is the largest safetensors JSON header this package accepts
// (100 MB, the same limit as the reference Rust implementation).
const MaxHeaderSize = 100 << 20

// DType is a safetensors element type. Only F32, F16 and BF16 are supported.
type DType string

// Supported safetensors element types.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

// Size returns the size in bytes of one element, or 0 for an unsupported type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	// Name is the tensor's name in the checkpoint.
	Name string
	// File is the path (or name) of the safetensors file holding the tensor.
	File string
	// DType is the element type of Data.
	DType DType
	// Shape is the tensor's shape, outermost dimension first (row-major).
	Shape []int
	// Data holds the raw little-endian elements. It may alias a read-only
	// memory mapping: never write to it, and do not use it after the owning
	// SafetensorsFile or Checkpoint is closed.
	Data []byte
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32s converts the tensor's data to a new []float32.
func (t TensorInfo) Float32s() ([]float32, error) {
	n := t.NumElements()
	if sz := t.DType.Size(); sz == 0 || len(t.Data) != n*sz {
		return nil, fmt.Errorf("%s: tensor %q: dtype %s with %d data bytes for %d elements", t.File, t.Name, t.DType, len(t.Data), n)
	}
	out := make([]float32, n)
	b := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	}
	return out, nil
}

// SafetensorsFile is one parsed safetensors file.
type SafetensorsFile struct {
	// Path is the file's path (or the name it was opened under).
	Path string
	// Metadata is the optional "__metadata__" string map of the header.
	Metadata map[string]string

	data    []byte // whole file
	unmap   func() error
	tensors map[string]TensorInfo
	names   []string
}

// OpenSafetensors opens and validates a safetensors file. The file is
// memory-mapped read-only when possible and read into memory otherwise.
// Close releases the mapping.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseSafetensors(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// mapFile maps path read-only, or reads it when mapping is impossible.
func mapFile(path string) ([]byte, func() error, error) {
	// Stat before opening: opening a FIFO blocks until a writer appears.
	if err := checkRegular(path); err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	size := st.Size()
	if size > 0 && int64(int(size)) == size {
		if data, unmap, err := mmapFile(fh, int(size)); err == nil {
			return data, unmap, nil
		}
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: reading %s: %w", path, err)
	}
	return data, nil, nil
}

// ParseSafetensors validates a safetensors file held in memory. name is used
// in error messages and as TensorInfo.File. The returned file aliases data.
//
// Every structural property is checked: the header length, the JSON, each
// tensor's dtype, shape and data_offsets (inside the data area, consistent
// with shape and dtype, no overlaps). A malformed file yields an error, never
// a panic or an allocation larger than the input.
func ParseSafetensors(name string, data []byte) (*SafetensorsFile, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if len(data) < 8 {
		return nil, fail("file is %d bytes, too short for the 8-byte header length", len(data))
	}
	hlen := binary.LittleEndian.Uint64(data[:8])
	if hlen > uint64(len(data)-8) {
		return nil, fail("header length %d exceeds the %d bytes after the length field (truncated or corrupt file)", hlen, len(data)-8)
	}
	if hlen > MaxHeaderSize {
		return nil, fail("header length %d exceeds the %d-byte limit", hlen, MaxHeaderSize)
	}
	header := data[8 : 8+hlen]
	body := data[8+hlen:]

	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: %s: header JSON: %w", name, err)
	}
	if raw == nil {
		return nil, fail("header is not a JSON object")
	}
	f := &SafetensorsFile{Path: name, data: data, tensors: make(map[string]TensorInfo, len(raw))}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &f.Metadata); err != nil {
			return nil, fmt.Errorf("safetensors: %s: __metadata__ must map strings to strings: %w", name, err)
		}
		delete(raw, "__metadata__")
	}

	type span struct {
		begin, end uint64
		name       string
	}
	spans := make([]span, 0, len(raw))
	for tname, msg := range raw {
		var e struct {
			DType       *string  `json:"dtype"`
			Shape       []int64  `json:"shape"`
			DataOffsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: %w", name, tname, err)
		}
		if e.DType == nil {
			return nil, fail("tensor %q: missing dtype", tname)
		}
		dt := DType(*e.DType)
		if dt.Size() == 0 {
			return nil, fail("tensor %q: unsupported dtype %q (supported: F32, F16, BF16)", tname, *e.DType)
		}
		if e.Shape == nil {
			return nil, fail("tensor %q: missing shape", tname)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fail("tensor %q: data_offsets must have 2 entries, got %d", tname, len(e.DataOffsets))
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin > end {
			return nil, fail("tensor %q: data_offsets [%d, %d] has begin > end", tname, begin, end)
		}
		if end > uint64(len(body)) {
			return nil, fail("tensor %q: data_offsets [%d, %d] outside the %d-byte data area (truncated or corrupt file)", tname, begin, end, len(body))
		}
		shape := make([]int, len(e.Shape))
		nbytes := uint64(dt.Size())
		for i, d := range e.Shape {
			if d < 0 {
				return nil, fail("tensor %q: negative dimension in shape %v", tname, e.Shape)
			}
			hi, lo := bits.Mul64(nbytes, uint64(d))
			if hi != 0 {
				return nil, fail("tensor %q: shape %v with dtype %s overflows the byte count", tname, e.Shape, dt)
			}
			nbytes = lo
			shape[i] = int(d)
		}
		if end-begin != nbytes {
			return nil, fail("tensor %q: shape %v with dtype %s needs %d bytes but data_offsets [%d, %d] span %d", tname, e.Shape, dt, nbytes, begin, end, end-begin)
		}
		f.tensors[tname] = TensorInfo{
			Name:  tname,
			File:  name,
			DType: dt,
			Shape: shape,
			Data:  body[begin:end:end],
		}
		spans = append(spans, span{begin, end, tname})
		f.names = append(f.names, tname)
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var prev *span // previous non-empty span in offset order
	for i := range spans {
		c := &spans[i]
		if c.begin == c.end {
			continue
		}
		if prev != nil && c.begin < prev.end {
			return nil, fail("tensors %q [%d, %d] and %q [%d, %d] overlap", prev.name, prev.begin, prev.end, c.name, c.begin, c.end)
		}
		prev = c
	}
	sort.Strings(f.names)
	return f, nil
}

// Names returns the sorted tensor names of the file.
func (f *SafetensorsFile) Names() []string { return append([]string(nil), f.names...) }

// Tensor returns the named tensor.
func (f *SafetensorsFile) Tensor(name string) (TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("safetensors: %s: no tensor %q", f.Path, name)
	}
	return t, nil
}

// Close releases the file's memory mapping, if any. Tensor data obtained from
// the file must not be used afterwards.
func (f *SafetensorsFile) Close() error {
	if f == nil || f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	f.data = nil
	f.tensors = nil
	if err := u(); err != nil {
		return fmt.Errorf("safetensors: unmapping %s: %w", f.Path, err)
	}
	return nil
}

// WriteSafetensors writes tensors in safetensors format, in the given order,
// with an optional __metadata__ map. Each tensor's Data must match its DType
// and Shape. It is used by tests and WriteRandomCheckpoint.
func WriteSafetensors(w io.Writer, tensors []TensorInfo, metadata map[string]string) error {
	type entry struct {
		DType       DType    `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	header := make(map[string]any, len(tensors)+1)
	if metadata != nil {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.Name == "__metadata__" || t.Name == "" {
			return fmt.Errorf("safetensors: write: invalid tensor name %q", t.Name)
		}
		if _, dup := header[t.Name]; dup {
			return fmt.Errorf("safetensors: write: duplicate tensor %q", t.Name)
		}
		if t.DType.Size() == 0 || len(t.Data) != t.NumElements()*t.DType.Size() {
			return fmt.Errorf("safetensors: write: tensor %q: %d data bytes do not match dtype %s and shape %v", t.Name, len(t.Data), t.DType, t.Shape)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{t.DType, shape, [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	// Pad the header with spaces so that the data area is 8-byte aligned.
	for (8+len(hj))%8 != 0 {
		hj = append(hj, ' ')
	}
	var lenbuf [8]byte
	binary.LittleEndian.PutUint64(lenbuf[:], uint64(len(hj)))
	if _, err := w.Write(lenbuf[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := w.Write(hj); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// Float32Bytes encodes values as little-endian data of the given dtype
// (rounding to nearest even for F16 and BF16).
func Float32Bytes(values []float32, dt DType) ([]byte, error) {
	out := make([]byte, len(values)*dt.Size())
	switch dt {
	case F32:
		for i, v := range values {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(v).Bits())
		}
	case BF16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToBF16(v))
		}
	default:
		return nil, fmt.Errorf("safetensors: unsupported dtype %q", dt)
	}
	return out, nil
}

// f32ToBF16 rounds a float32 to bfloat16 bits, to nearest even; NaNs stay NaN.
func f32ToBF16(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

var errNoWeights = errors.New("no model.safetensors or model.safetensors.index.json")

// shardNameOK reports whether a shard file name from an index is a plain
// file name in the checkpoint directory (no separators, no "..").
func shardNameOK(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !strings.ContainsRune(s, 0)
}
