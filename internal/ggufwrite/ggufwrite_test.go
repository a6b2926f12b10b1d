package ggufwrite

import (
	"slices"
	"testing"
)

// TestPermuteDirection compares Permute with numpy running llama.cpp's
// LlamaModel.permute on rows 0…11 with 2 heads:
// w.reshape(2, 2, 3, 1).swapaxes(1, 2).reshape(12, 1).
func TestPermuteDirection(t *testing.T) {
	rows := make([]byte, 12)
	for i := range rows {
		rows[i] = byte(i)
	}
	want := []byte{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}
	if got := Permute(rows, 12, 2); !slices.Equal(got, want) {
		t.Fatalf("Permute = %v, want %v", got, want)
	}
}
