// Package ggufwrite writes GGUF files for tests: a Writer for metadata and
// tensors, the conversion of a Hugging Face checkpoint to GGUF as llama.cpp's
// converter does it (llama tensor names, Q/K rows permuted for ggml's RoPE),
// and the tokenizer metadata of a tokenizer.json. The product only reads
// GGUF (package model/gguf); this package exists so that tests can make
// files with known contents.
package ggufwrite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"

	"github.com/shareprefill/shareprefill/model/gguf"
)

// Writer collects metadata and tensors and encodes them as a GGUF file.
type Writer struct {
	// Version is the GGUF version written (0: 3).
	Version uint32
	// Alignment is the data alignment (0: gguf.DefaultAlignment). Another
	// value is also written as general.alignment unless that key was added.
	Alignment uint32

	kvs     []kv
	tensors []tensor
}

type kv struct {
	key string
	v   any
}

type tensor struct {
	name string
	typ  gguf.Type
	dims []uint64
	data []byte
}

// Add sets a metadata pair: a new key is appended, an existing one takes
// the new value in its place. v is a Go scalar (uint8 … float64, bool,
// string), a slice of one, or a gguf.Value (as read from a file).
func (w *Writer) Add(key string, v any) {
	for i := range w.kvs {
		if w.kvs[i].key == key {
			w.kvs[i].v = v
			return
		}
	}
	w.kvs = append(w.kvs, kv{key, v})
}

// Remove deletes the metadata key and the tensor called name, if present.
func (w *Writer) Remove(name string) {
	w.kvs = slices.DeleteFunc(w.kvs, func(p kv) bool { return p.key == name })
	w.tensors = slices.DeleteFunc(w.tensors, func(t tensor) bool { return t.name == name })
}

// AddTensor appends a tensor; dims are in ggml order (innermost first) and
// data is its raw encoding.
func (w *Writer) AddTensor(name string, typ gguf.Type, dims []uint64, data []byte) {
	w.tensors = append(w.tensors, tensor{name, typ, append([]uint64(nil), dims...), data})
}

// WriteFile writes the file to path.
func (w *Writer) WriteFile(path string) error {
	b, err := w.Bytes()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Bytes encodes the file. Each tensor's data must have the size its type
// and dims call for.
func (w *Writer) Bytes() ([]byte, error) {
	version := w.Version
	if version == 0 {
		version = 3
	}
	align := uint64(w.Alignment)
	if align == 0 {
		align = gguf.DefaultAlignment
	}
	kvs := w.kvs
	if align != gguf.DefaultAlignment && !w.has(gguf.AlignmentKey) {
		kvs = append(append([]kv(nil), kvs...), kv{gguf.AlignmentKey, uint32(align)})
	}
	var b bytes.Buffer
	b.WriteString(gguf.Magic)
	le := binary.LittleEndian
	put := func(v any) { binary.Write(&b, le, v) }
	put(version)
	put(uint64(len(w.tensors)))
	put(uint64(len(kvs)))
	for _, p := range kvs {
		writeString(&b, p.key)
		if err := writeTyped(&b, p.v); err != nil {
			return nil, fmt.Errorf("ggufwrite: key %s: %w", p.key, err)
		}
	}
	var off uint64
	offsets := make([]uint64, len(w.tensors))
	for i, t := range w.tensors {
		n := uint64(1)
		for _, d := range t.dims {
			n *= d
		}
		row := uint64(1)
		if len(t.dims) > 0 {
			row = t.dims[0]
		}
		rb, err := gguf.RowBytes(t.typ, row)
		if err != nil {
			return nil, fmt.Errorf("ggufwrite: tensor %s: %w", t.name, err)
		}
		if row != 0 && uint64(len(t.data)) != n/row*rb {
			return nil, fmt.Errorf("ggufwrite: tensor %s: %d data bytes, want %d for %v of %s", t.name, len(t.data), n/row*rb, t.dims, t.typ)
		}
		writeString(&b, t.name)
		put(uint32(len(t.dims)))
		for _, d := range t.dims {
			put(d)
		}
		put(uint32(t.typ))
		put(off)
		offsets[i] = off
		off = alignUp(off+uint64(len(t.data)), align)
	}
	pad(&b, align)
	for _, t := range w.tensors {
		b.Write(t.data)
		pad(&b, align)
	}
	return b.Bytes(), nil
}

func (w *Writer) has(key string) bool {
	for _, p := range w.kvs {
		if p.key == key {
			return true
		}
	}
	return false
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func pad(b *bytes.Buffer, a uint64) {
	for uint64(b.Len())%a != 0 {
		b.WriteByte(0)
	}
}

func writeString(w io.Writer, s string) {
	binary.Write(w, binary.LittleEndian, uint64(len(s)))
	io.WriteString(w, s)
}

// valueType returns the GGUF type of a Go scalar.
func valueType(v any) (gguf.ValueType, bool) {
	switch v.(type) {
	case uint8:
		return gguf.TypeUint8, true
	case int8:
		return gguf.TypeInt8, true
	case uint16:
		return gguf.TypeUint16, true
	case int16:
		return gguf.TypeInt16, true
	case uint32:
		return gguf.TypeUint32, true
	case int32:
		return gguf.TypeInt32, true
	case uint64:
		return gguf.TypeUint64, true
	case int64:
		return gguf.TypeInt64, true
	case float32:
		return gguf.TypeFloat32, true
	case float64:
		return gguf.TypeFloat64, true
	case bool:
		return gguf.TypeBool, true
	case string:
		return gguf.TypeString, true
	}
	return 0, false
}

// writeTyped writes the type of v, then v.
func writeTyped(b *bytes.Buffer, v any) error {
	if gv, ok := v.(gguf.Value); ok {
		v = gv.Interface()
	}
	if t, ok := valueType(v); ok {
		binary.Write(b, binary.LittleEndian, uint32(t))
		writeScalar(b, v)
		return nil
	}
	binary.Write(b, binary.LittleEndian, uint32(gguf.TypeArray))
	return writeArray(b, v)
}

// writeArray writes an array's element type, length and elements: v is a
// slice of a scalar type, or []gguf.Value for an array of arrays.
func writeArray(b *bytes.Buffer, v any) error {
	le := binary.LittleEndian
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Errorf("unsupported Go type %T", v)
	}
	if inner, ok := v.([]gguf.Value); ok {
		binary.Write(b, le, uint32(gguf.TypeArray))
		binary.Write(b, le, uint64(len(inner)))
		for _, x := range inner {
			if err := writeArray(b, x.Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	elem, ok := valueType(reflect.Zero(rv.Type().Elem()).Interface())
	if !ok {
		return fmt.Errorf("unsupported Go type %T", v)
	}
	binary.Write(b, le, uint32(elem))
	binary.Write(b, le, uint64(rv.Len()))
	for i := range rv.Len() {
		writeScalar(b, rv.Index(i).Interface())
	}
	return nil
}

func writeScalar(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case string:
		writeString(b, x)
	case bool:
		if x {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	case float32:
		binary.Write(b, binary.LittleEndian, math.Float32bits(x))
	default:
		binary.Write(b, binary.LittleEndian, v)
	}
}
