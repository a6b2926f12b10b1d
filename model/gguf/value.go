package gguf

import (
	"fmt"
	"math"
	"reflect"
)

// ValueType is the type of a GGUF metadata value.
type ValueType uint32

// The GGUF metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the specification's name of t ("uint32"), or "type(N)".
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// size returns the encoded size of a fixed-size scalar of type t, or 0 for
// strings, arrays and unknown types.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// Value is one metadata value: a scalar, a string or an array.
//
// Scalars are held as the Go type of the same width (uint8, int8, …, bool,
// string). Arrays are held as a slice of that type ([]uint32, []string, …);
// an array of arrays as []Value.
type Value struct {
	// Type is the value's type.
	Type ValueType
	// Elem is the element type when Type is TypeArray.
	Elem ValueType

	v any
}

// Interface returns the value as a Go value (see Value).
func (v Value) Interface() any { return v.v }

// Len returns the number of elements of an array, and 0 for a scalar.
func (v Value) Len() int {
	if rv := reflect.ValueOf(v.v); rv.Kind() == reflect.Slice {
		return rv.Len()
	}
	return 0
}

// AsString returns a string value.
func (v Value) AsString() (string, bool) {
	s, ok := v.v.(string)
	return s, ok
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.v.(bool)
	return b, ok
}

// AsInt returns an integer value of any width and signedness that fits an
// int64.
func (v Value) AsInt() (int64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// AsFloat returns a float32 or float64 value (a float32 converted exactly).
func (v Value) AsFloat() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Strings returns an array of strings. The slice is the value's own: do not
// modify it.
func (v Value) Strings() ([]string, bool) {
	s, ok := v.v.([]string)
	return s, ok
}

// Ints returns an array of integers of any width and signedness as int64s
// (false when an element does not fit).
func (v Value) Ints() ([]int64, bool) {
	rv := reflect.ValueOf(v.v)
	if rv.Kind() != reflect.Slice {
		return nil, false
	}
	out := make([]int64, rv.Len())
	switch rv.Type().Elem().Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		for i := range out {
			out[i] = rv.Index(i).Int()
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		for i := range out {
			u := rv.Index(i).Uint()
			if u > math.MaxInt64 {
				return nil, false
			}
			out[i] = int64(u)
		}
	default:
		return nil, false
	}
	return out, true
}

// Floats returns an array of float32 or float64 as float64s.
func (v Value) Floats() ([]float64, bool) {
	switch a := v.v.(type) {
	case []float32:
		out := make([]float64, len(a))
		for i, x := range a {
			out[i] = float64(x)
		}
		return out, true
	case []float64:
		return append([]float64(nil), a...), true
	}
	return nil, false
}

// String formats the value for people: scalars as Go formats them, arrays
// by element type and length ("[string × 32000]").
func (v Value) String() string {
	if v.Type == TypeArray {
		return fmt.Sprintf("[%s × %d]", v.Elem, v.Len())
	}
	if s, ok := v.v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v.v)
}
