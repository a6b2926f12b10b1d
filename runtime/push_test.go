package runtime

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestEncodePush: the recorder's push-constant encoding gives the bytes
// binary.Write gives, zero-padded, whether it copies the value as it lies
// (plain layouts) or goes through encoding/binary (padding, pointers).
func TestEncodePush(t *testing.T) {
	type plain struct {
		A uint32
		B float32
		C [3]int32
	}
	type padded struct {
		A uint8
		B uint32
	}
	type small struct{ A, B uint32 }
	for _, push := range []any{
		nil, []byte{1, 2, 3}, []uint32{7, 1 << 31}, uint32(300), uint32(5), [5]uint32{1, 2, 3, 4, 5},
		plain{0xdeadbeef, -1.5, [3]int32{-1, 2, -3}}, padded{9, 0x01020304}, &small{0x0a0b0c0d, 42}, &plain{1, 2, [3]int32{3, 4, 5}},
	} {
		var r Recorder
		for range 2 { // the second time from the recorder's layout cache
			if err := r.encodePush(push, 32); err != nil {
				t.Fatalf("%T: %v", push, err)
			}
			var want bytes.Buffer
			switch v := push.(type) {
			case nil:
			case []byte:
				want.Write(v)
			default:
				if err := binary.Write(&want, binary.LittleEndian, v); err != nil {
					t.Fatal(err)
				}
			}
			w := append(want.Bytes(), make([]byte, 32-want.Len())...)
			if got := r.da.push[:32]; !bytes.Equal(got, w) {
				t.Errorf("%T %v: % x, want % x", push, push, got, w)
			}
			r.da.push[31] = 0xff // padding is cleared again
		}
	}
	var r Recorder
	if err := r.encodePush([9]uint32{}, 32); err == nil {
		t.Error("36 bytes of push constants into 32: no error")
	}
	if err := r.encodePush(int(1), 32); err == nil {
		t.Error("an int (no fixed size): no error")
	}
}
