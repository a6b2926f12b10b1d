package harness

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
)

// WriteNPYInt32 writes v as a 1-D little-endian int32 NumPy .npy file
// (format 1.0), readable with numpy.load.
func WriteNPYInt32(path string, v []int32) error {
	var b bytes.Buffer
	b.Write(EncodeNPYInt32Header(len(v)))
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// EncodeNPYInt32Header is the .npy 1.0 header of a 1-D int32 array of n
// elements: magic, version, header length, and the dict padded with spaces
// so that the data starts at a multiple of 64 bytes.
func EncodeNPYInt32Header(n int) []byte {
	dict := fmt.Sprintf("{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }", n)
	pre := 10 // magic (6) + version (2) + header length (2)
	total := pre + len(dict) + 1
	pad := (64 - total%64) % 64
	h := dict + string(bytes.Repeat([]byte{' '}, pad)) + "\n"
	out := []byte("\x93NUMPY\x01\x00")
	out = binary.LittleEndian.AppendUint16(out, uint16(len(h)))
	return append(out, h...)
}

var npyShape = regexp.MustCompile(`'shape':\s*\((\d+),?\)`)

// ReadNPYInt32 reads a file written by WriteNPYInt32 (1-D '<i4' only).
func ReadNPYInt32(path string) ([]int32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 10 || string(data[:6]) != "\x93NUMPY" || data[6] != 1 {
		return nil, fmt.Errorf("%s: not a version 1 .npy file", path)
	}
	hl := int(binary.LittleEndian.Uint16(data[8:10]))
	if 10+hl > len(data) {
		return nil, fmt.Errorf("%s: truncated header", path)
	}
	h := string(data[10 : 10+hl])
	if !bytes.Contains([]byte(h), []byte("'<i4'")) {
		return nil, fmt.Errorf("%s: dtype is not '<i4': %s", path, h)
	}
	m := npyShape.FindStringSubmatch(h)
	if m == nil {
		return nil, fmt.Errorf("%s: not a 1-D array: %s", path, h)
	}
	n, _ := strconv.Atoi(m[1])
	body := data[10+hl:]
	if len(body) != 4*n {
		return nil, fmt.Errorf("%s: %d data bytes for %d elements", path, len(body), n)
	}
	out := make([]int32, n)
	if err := binary.Read(bytes.NewReader(body), binary.LittleEndian, out); err != nil {
		return nil, err
	}
	return out, nil
}
