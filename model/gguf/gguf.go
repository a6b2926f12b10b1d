// Package gguf reads GGUF files, the model format of llama.cpp: the header
// (versions 2 and 3), the metadata key-value pairs of every type, arrays
// included, and the tensor table; and it dequantizes the common ggml tensor
// types to float32, bit for bit as ggml does.
//
// Open reads the header, metadata and tensor table and nothing else; tensor
// data is read one tensor at a time by TensorData, so a multi-gigabyte file
// never has to fit in memory. Every count, length, offset and size in the
// file is checked before it is used: a malformed file gives an error naming
// the file, the key or tensor and the limit it broke, never a panic or an
// allocation larger than the file can back.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the alignment of the data section and of every tensor
// when general.alignment is absent.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that overrides DefaultAlignment.
const AlignmentKey = "general.alignment"

// Limits on what a file may declare. Each is far above real models; counts
// are further bounded by the bytes left in the file, so no declared count can
// make Open allocate more than a small multiple of the file's size.
const (
	// MaxDims is the most dimensions a tensor may have (GGML_MAX_DIMS).
	MaxDims = 4
	// MaxKeyLen is the longest metadata key, in bytes.
	MaxKeyLen = 1<<16 - 1
	// MaxStringLen is the longest metadata string or tensor name, in bytes.
	MaxStringLen = 1 << 30
	// MaxArrayDepth is how deeply arrays of arrays may nest.
	MaxArrayDepth = 8
	// MaxTensors is the most tensors a file may declare.
	MaxTensors = 1 << 24
	// MaxKVs is the most metadata pairs a file may declare.
	MaxKVs = 1 << 24
)

// KV is one metadata key-value pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo is one entry of the tensor table.
type TensorInfo struct {
	// Name is the tensor's GGUF name ("blk.0.attn_q.weight").
	Name string
	// Type is the element type.
	Type Type
	// Dims are the dimensions in ggml order: Dims[0] is the innermost
	// (contiguous) one, the length of a row.
	Dims []uint64
	// Offset is the position of the data relative to File.DataOffset.
	Offset uint64
	// Size is the data's length in bytes.
	Size uint64
}

// NumElements returns the product of Dims (1 for a scalar). Open checks that
// it fits an int64.
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Shape returns the dimensions outermost first, the row-major order of
// PyTorch and safetensors: a ggml [in, out] matrix is shape [out, in].
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int(d)
	}
	return s
}

// File is an open GGUF file: its metadata and tensor table. Tensor data
// stays on disk until TensorData reads it.
type File struct {
	// Path is the file's path (or the name it was read under).
	Path string
	// Version is the GGUF version, 2 or 3.
	Version uint32
	// Alignment is the data alignment in bytes.
	Alignment uint64
	// DataOffset is where the data section starts, from the file's start.
	DataOffset int64
	// Size is the file's size in bytes.
	Size int64
	// KVs are the metadata pairs in file order.
	KVs []KV
	// Tensors is the tensor table in file order.
	Tensors []TensorInfo

	kvIndex     map[string]int
	tensorIndex map[string]int
	r           io.ReaderAt
	closer      io.Closer
}

// Open opens and validates the GGUF file at path: the header, metadata and
// tensor table are read and checked, the tensor data is not. Close releases
// the file.
func Open(path string) (*File, error) {
	// Stat first: opening a FIFO would block until a writer appears.
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s: not a regular file (%s)", path, st.Mode().Type())
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err = fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Read(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Read is Open on any io.ReaderAt holding size bytes of a GGUF file; name
// is used in error messages. The File reads tensor data from r later, so r
// must stay valid while the File is used.
func Read(name string, r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: %s: negative size %d", name, size)
	}
	d := &decoder{name: name, br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
	f, err := d.file()
	if err != nil {
		return nil, err
	}
	f.r = r
	return f, nil
}

// Close releases the file opened by Open (a no-op for Read). Tensor data
// cannot be read afterwards.
func (f *File) Close() error {
	if f == nil || f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer, f.r = nil, nil
	if err := c.Close(); err != nil {
		return fmt.Errorf("gguf: closing %s: %w", f.Path, err)
	}
	return nil
}

// Lookup returns the value of a metadata key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// Has reports whether the metadata holds key.
func (f *File) Has(key string) bool {
	_, ok := f.kvIndex[key]
	return ok
}

// keyError returns the error for a key that is missing or of the wrong type.
func (f *File) keyError(key string, v Value, ok bool, want string) error {
	if !ok {
		return fmt.Errorf("gguf: %s: missing metadata key %s", f.Path, key)
	}
	return fmt.Errorf("gguf: %s: metadata key %s has type %s, want %s", f.Path, key, v.Type, want)
}

// String returns the string value of key; a missing key or another type is
// an error naming the file and the key.
func (f *File) String(key string) (string, error) {
	v, ok := f.Lookup(key)
	s, isStr := v.AsString()
	if !isStr {
		return "", f.keyError(key, v, ok, "string")
	}
	return s, nil
}

// Int returns the integer value of key (any integer type that fits int64);
// a missing key or another type is an error naming the file and the key.
func (f *File) Int(key string) (int64, error) {
	v, ok := f.Lookup(key)
	n, isInt := v.AsInt()
	if !isInt {
		return 0, f.keyError(key, v, ok, "an integer")
	}
	return n, nil
}

// Float returns the float32 or float64 value of key; a missing key or
// another type is an error naming the file and the key.
func (f *File) Float(key string) (float64, error) {
	v, ok := f.Lookup(key)
	x, isFloat := v.AsFloat()
	if !isFloat {
		return 0, f.keyError(key, v, ok, "float32 or float64")
	}
	return x, nil
}

// Bool returns the bool value of key; a missing key or another type is an
// error naming the file and the key.
func (f *File) Bool(key string) (bool, error) {
	v, ok := f.Lookup(key)
	b, isBool := v.AsBool()
	if !isBool {
		return false, f.keyError(key, v, ok, "bool")
	}
	return b, nil
}

// Tensor returns the tensor table entry named name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorData reads the raw data of t (an entry of f.Tensors) into a new
// slice.
func (f *File) TensorData(t TensorInfo) ([]byte, error) {
	if f.r == nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: file is closed", f.Path, t.Name)
	}
	i, ok := f.tensorIndex[t.Name]
	if !ok || f.Tensors[i].Offset != t.Offset || f.Tensors[i].Size != t.Size {
		return nil, fmt.Errorf("gguf: %s: tensor %q is not in the tensor table", f.Path, t.Name)
	}
	if t.Size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %d bytes do not fit in memory", f.Path, t.Name, t.Size)
	}
	buf := make([]byte, t.Size)
	if t.Size == 0 {
		return buf, nil
	}
	if _, err := f.r.ReadAt(buf, f.DataOffset+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("gguf: %s: reading tensor %q: %w", f.Path, t.Name, err)
	}
	return buf, nil
}

// Float32s reads t and dequantizes it to float32 (see Dequantize).
func (f *File) Float32s(t TensorInfo) ([]float32, error) {
	if !t.Type.CanDequantize() {
		return nil, fmt.Errorf("gguf: %s: tensor %q: type %s cannot be dequantized (supported: %v)", f.Path, t.Name, t.Type, SupportedDequantize())
	}
	n := t.NumElements()
	if n > math.MaxInt/4 {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %d elements do not fit in memory", f.Path, t.Name, n)
	}
	data, err := f.TensorData(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if err := Dequantize(out, data, t.Type); err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.Path, t.Name, err)
	}
	return out, nil
}

// decoder reads the header of a GGUF file sequentially, keeping track of
// the position so that every declared length is checked against the bytes
// left.
type decoder struct {
	name string
	br   *bufio.Reader
	pos  int64
	size int64
}

// errTruncated marks a read past the end of the file.
var errTruncated = errors.New("unexpected end of file")

func (d *decoder) fail(format string, args ...any) error {
	return fmt.Errorf("gguf: %s: %s", d.name, fmt.Sprintf(format, args...))
}

// left returns the bytes left after the current position.
func (d *decoder) left() int64 { return d.size - d.pos }

func (d *decoder) read(n int) ([]byte, error) {
	if int64(n) > d.left() {
		return nil, errTruncated
	}
	b, err := d.br.Peek(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errTruncated
		}
		return nil, err
	}
	d.br.Discard(n)
	d.pos += int64(n)
	return b, nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a GGUF string: a uint64 length, then the bytes, at most limit.
func (d *decoder) str(limit uint64) (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("string length %d exceeds the limit %d", n, limit)
	}
	if n > uint64(d.left()) {
		return "", fmt.Errorf("string length %d exceeds the %d bytes left in the file", n, d.left())
	}
	var buf []byte
	for rem := int(n); rem > 0; {
		k := min(rem, d.br.Size())
		b, err := d.read(k)
		if err != nil {
			return "", err
		}
		if buf == nil && k == int(n) {
			return string(b), nil
		}
		buf = append(buf, b...)
		rem -= k
	}
	return string(buf), nil
}

func (d *decoder) file() (*File, error) {
	magic, err := d.read(4)
	if err != nil {
		return nil, d.fail("file is %d bytes, too short for the GGUF header", d.size)
	}
	if string(magic) != Magic {
		return nil, d.fail("not a GGUF file (magic %q, want %q)", magic, Magic)
	}
	version, err := d.u32()
	if err != nil {
		return nil, d.fail("header: version: %v", err)
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, d.fail("GGUF version 1 is not supported (versions 2 and 3 are)")
	case bits.ReverseBytes32(version) == 2 || bits.ReverseBytes32(version) == 3:
		return nil, d.fail("big-endian GGUF (version %d byte-swapped) is not supported", bits.ReverseBytes32(version))
	default:
		return nil, d.fail("unsupported GGUF version %d (versions 2 and 3 are supported)", version)
	}
	nTensors, err := d.u64()
	if err != nil {
		return nil, d.fail("header: tensor count: %v", err)
	}
	nKV, err := d.u64()
	if err != nil {
		return nil, d.fail("header: metadata count: %v", err)
	}
	// The smallest pair is a 0-byte key (8), its type (4) and a 1-byte value;
	// the smallest tensor entry a 0-byte name (8), one dimension count (4),
	// the type (4) and the offset (8).
	if nKV > MaxKVs || nKV > uint64(d.left())/13 {
		return nil, d.fail("header: metadata count %d exceeds the limit %d or the %d bytes left in the file", nKV, min(MaxKVs, uint64(d.left())/13), d.left())
	}
	f := &File{Path: d.name, Version: version, Size: d.size, Alignment: DefaultAlignment,
		kvIndex: make(map[string]int, nKV)}
	f.KVs = make([]KV, 0, nKV)
	for i := uint64(0); i < nKV; i++ {
		key, err := d.str(MaxKeyLen)
		if err != nil {
			return nil, d.fail("metadata pair %d of %d: key: %v", i, nKV, err)
		}
		v, err := d.value(0)
		if err != nil {
			return nil, d.fail("metadata key %s: %v", key, err)
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, d.fail("metadata key %s appears twice", key)
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{key, v})
	}
	if v, ok := f.Lookup(AlignmentKey); ok {
		a, isU32 := v.Interface().(uint32)
		if !isU32 {
			return nil, d.fail("metadata key %s has type %s, want uint32", AlignmentKey, v.Type)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, d.fail("metadata key %s is %d, want a power of two", AlignmentKey, a)
		}
		f.Alignment = uint64(a)
	}
	if nTensors > MaxTensors || nTensors > uint64(d.left())/24 {
		return nil, d.fail("header: tensor count %d exceeds the limit %d or the %d bytes left in the file", nTensors, min(MaxTensors, uint64(d.left())/24), d.left())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.tensorIndex = make(map[string]int, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		t, err := d.tensorInfo(f.Alignment)
		if err != nil {
			if t.Name != "" {
				return nil, d.fail("tensor %q: %v", t.Name, err)
			}
			return nil, d.fail("tensor %d of %d: %v", i, nTensors, err)
		}
		if _, dup := f.tensorIndex[t.Name]; dup {
			return nil, d.fail("tensor %q appears twice in the tensor table", t.Name)
		}
		f.tensorIndex[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	// The data section starts at the next multiple of the alignment.
	f.DataOffset = d.pos
	if r := uint64(d.pos) % f.Alignment; r != 0 {
		f.DataOffset += int64(f.Alignment - r)
	}
	if err := f.checkData(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkData checks that every tensor's data lies inside the file and that no
// two tensors overlap.
func (f *File) checkData() error {
	var dataLen uint64
	if f.DataOffset <= f.Size {
		dataLen = uint64(f.Size - f.DataOffset)
	}
	type span struct {
		begin, end uint64
		name       string
	}
	spans := make([]span, 0, len(f.Tensors))
	for _, t := range f.Tensors {
		end := t.Offset + t.Size // both are bounded by 2^63 below
		if t.Offset > dataLen || t.Size > dataLen-t.Offset {
			return fmt.Errorf("gguf: %s: tensor %q: data [%d, %d) lies outside the %d-byte data section at offset %d (truncated or corrupt file)",
				f.Path, t.Name, t.Offset, end, dataLen, f.DataOffset)
		}
		if t.Size > 0 {
			spans = append(spans, span{t.Offset, end, t.Name})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if a, b := spans[i-1], spans[i]; b.begin < a.end {
			return fmt.Errorf("gguf: %s: tensors %q [%d, %d) and %q [%d, %d) overlap", f.Path, a.name, a.begin, a.end, b.name, b.begin, b.end)
		}
	}
	return nil
}

// tensorInfo reads one tensor table entry. On error the returned info holds
// the name when it was read.
func (d *decoder) tensorInfo(alignment uint64) (TensorInfo, error) {
	var t TensorInfo
	name, err := d.str(MaxStringLen)
	if err != nil {
		return t, fmt.Errorf("name: %w", err)
	}
	t.Name = name
	nDims, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("dimension count: %w", err)
	}
	if nDims > MaxDims {
		return t, fmt.Errorf("%d dimensions exceed the limit %d", nDims, MaxDims)
	}
	t.Dims = make([]uint64, nDims)
	elems := uint64(1)
	for i := range t.Dims {
		if t.Dims[i], err = d.u64(); err != nil {
			return t, fmt.Errorf("dimension %d: %w", i, err)
		}
		hi, lo := bits.Mul64(elems, t.Dims[i])
		if hi != 0 || lo > math.MaxInt64 {
			return t, fmt.Errorf("dimensions %v: the element count overflows int64", t.Dims[:i+1])
		}
		elems = lo
	}
	typ, err := d.u32()
	if err != nil {
		return t, fmt.Errorf("type: %w", err)
	}
	t.Type = Type(typ)
	if !t.Type.Known() {
		return t, fmt.Errorf("unknown ggml type %d", typ)
	}
	if t.Offset, err = d.u64(); err != nil {
		return t, fmt.Errorf("offset: %w", err)
	}
	if t.Offset%alignment != 0 {
		return t, fmt.Errorf("offset %d is not a multiple of the alignment %d", t.Offset, alignment)
	}
	if t.Offset > math.MaxInt64 {
		return t, fmt.Errorf("offset %d overflows int64", t.Offset)
	}
	row := uint64(1)
	if len(t.Dims) > 0 {
		row = t.Dims[0]
	}
	rowBytes, err := RowBytes(t.Type, row)
	if err != nil {
		return t, fmt.Errorf("dimensions %v: %w", t.Dims, err)
	}
	rows := uint64(0)
	if row != 0 {
		rows = elems / row
	}
	hi, size := bits.Mul64(rows, rowBytes)
	if hi != 0 || size > math.MaxInt64 {
		return t, fmt.Errorf("dimensions %v of %s: the byte count overflows int64", t.Dims, t.Type)
	}
	t.Size = size
	return t, nil
}

// value reads a typed value: the uint32 type, then the value.
func (d *decoder) value(depth int) (Value, error) {
	typ, err := d.u32()
	if err != nil {
		return Value{}, fmt.Errorf("type: %w", err)
	}
	return d.valueOf(ValueType(typ), depth)
}

func (d *decoder) valueOf(t ValueType, depth int) (Value, error) {
	switch t {
	case TypeString:
		s, err := d.str(MaxStringLen)
		if err != nil {
			return Value{}, err
		}
		return Value{Type: t, v: s}, nil
	case TypeArray:
		return d.array(depth)
	}
	n := t.size()
	if n == 0 {
		return Value{}, fmt.Errorf("unknown value type %d", uint32(t))
	}
	b, err := d.read(n)
	if err != nil {
		return Value{}, err
	}
	v, err := scalar(t, b)
	return Value{Type: t, v: v}, err
}

// scalar decodes a fixed-size little-endian scalar.
func scalar(t ValueType, b []byte) (any, error) {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeUint16:
		return le.Uint16(b), nil
	case TypeInt16:
		return int16(le.Uint16(b)), nil
	case TypeUint32:
		return le.Uint32(b), nil
	case TypeInt32:
		return int32(le.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case TypeUint64:
		return le.Uint64(b), nil
	case TypeInt64:
		return int64(le.Uint64(b)), nil
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("bool byte %d is neither 0 nor 1", b[0])
		}
		return b[0] == 1, nil
	}
	return nil, fmt.Errorf("unknown value type %d", uint32(t))
}

// array reads an array: element type, count, then the elements.
func (d *decoder) array(depth int) (Value, error) {
	if depth >= MaxArrayDepth {
		return Value{}, fmt.Errorf("arrays nest deeper than the limit %d", MaxArrayDepth)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, fmt.Errorf("array element type: %w", err)
	}
	elem := ValueType(et)
	n, err := d.u64()
	if err != nil {
		return Value{}, fmt.Errorf("array length: %w", err)
	}
	// Every element takes at least minSize bytes in the file.
	minSize := uint64(elem.size())
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if minSize == 0 {
		return Value{}, fmt.Errorf("unknown array element type %d", et)
	}
	if n > uint64(d.left())/minSize {
		return Value{}, fmt.Errorf("array of %d %s elements exceeds the %d bytes left in the file", n, elem, d.left())
	}
	out := Value{Type: TypeArray, Elem: elem}
	switch elem {
	case TypeString:
		a := make([]string, n)
		for i := range a {
			if a[i], err = d.str(MaxStringLen); err != nil {
				return Value{}, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		out.v = a
	case TypeArray:
		a := make([]Value, n)
		for i := range a {
			if a[i], err = d.array(depth + 1); err != nil {
				return Value{}, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		out.v = a
	default:
		out.v, err = d.scalarArray(elem, int(n))
		if err != nil {
			return Value{}, err
		}
	}
	return out, nil
}

// scalarArray reads n fixed-size elements into a slice of their Go type.
func (d *decoder) scalarArray(t ValueType, n int) (any, error) {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return readArray(d, n, 1, func(b []byte) (uint8, error) { return b[0], nil })
	case TypeInt8:
		return readArray(d, n, 1, func(b []byte) (int8, error) { return int8(b[0]), nil })
	case TypeUint16:
		return readArray(d, n, 2, func(b []byte) (uint16, error) { return le.Uint16(b), nil })
	case TypeInt16:
		return readArray(d, n, 2, func(b []byte) (int16, error) { return int16(le.Uint16(b)), nil })
	case TypeUint32:
		return readArray(d, n, 4, func(b []byte) (uint32, error) { return le.Uint32(b), nil })
	case TypeInt32:
		return readArray(d, n, 4, func(b []byte) (int32, error) { return int32(le.Uint32(b)), nil })
	case TypeFloat32:
		return readArray(d, n, 4, func(b []byte) (float32, error) { return math.Float32frombits(le.Uint32(b)), nil })
	case TypeUint64:
		return readArray(d, n, 8, func(b []byte) (uint64, error) { return le.Uint64(b), nil })
	case TypeInt64:
		return readArray(d, n, 8, func(b []byte) (int64, error) { return int64(le.Uint64(b)), nil })
	case TypeFloat64:
		return readArray(d, n, 8, func(b []byte) (float64, error) { return math.Float64frombits(le.Uint64(b)), nil })
	case TypeBool:
		return readArray(d, n, 1, func(b []byte) (bool, error) {
			v, err := scalar(TypeBool, b)
			ok, _ := v.(bool)
			return ok, err
		})
	}
	return nil, fmt.Errorf("unknown array element type %d", uint32(t))
}

// readArray reads n elements of size bytes each, decoding them with conv.
func readArray[T any](d *decoder, n, size int, conv func([]byte) (T, error)) ([]T, error) {
	out := make([]T, n)
	for i := range out {
		b, err := d.read(size)
		if err == nil {
			out[i], err = conv(b)
		}
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i, err)
		}
	}
	return out, nil
}
