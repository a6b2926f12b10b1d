//go:build !unix

package model

import (
	"errors"
	"os"
)

// mmapFile is not available on this platform; callers fall back to reading.
func mmapFile(f *os.File, size int) ([]byte, func() error, error) {
	return nil, nil, errors.New("mmap not supported")
}
