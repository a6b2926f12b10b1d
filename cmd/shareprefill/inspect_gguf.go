package main

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/shareprefill/shareprefill/model"
	"github.com/shareprefill/shareprefill/model/gguf"
)

// openInspected opens the model of inspect: a GGUF file when fsys is nil,
// else the Hugging Face directory at the root of fsys.
func openInspected(fsys fs.FS, name string) (*model.Config, *model.Checkpoint, error) {
	if fsys == nil {
		return model.OpenGGUF(name)
	}
	cfg, err := model.LoadConfigFS(fsys, ".")
	if err != nil {
		return nil, nil, err
	}
	ck, err := model.OpenCheckpointFS(fsys, ".")
	if err != nil {
		return nil, nil, err
	}
	return cfg, ck, nil
}

// ggufTypeSizes lists the ggml tensor types of f with their parameters and
// bytes in the file, largest first: "Q8_0 (1.2M params, 1.3 MiB), …".
func ggufTypeSizes(f *gguf.File) string {
	type sum struct {
		typ           gguf.Type
		params, bytes uint64
	}
	byType := map[gguf.Type]*sum{}
	for _, t := range f.Tensors {
		s := byType[t.Type]
		if s == nil {
			s = &sum{typ: t.Type}
			byType[t.Type] = s
		}
		s.params += t.NumElements()
		s.bytes += t.Size
	}
	sums := make([]*sum, 0, len(byType))
	for _, s := range byType {
		sums = append(sums, s)
	}
	sort.Slice(sums, func(i, j int) bool {
		if sums[i].bytes != sums[j].bytes {
			return sums[i].bytes > sums[j].bytes
		}
		return sums[i].typ < sums[j].typ
	})
	parts := make([]string, len(sums))
	for i, s := range sums {
		parts[i] = fmt.Sprintf("%s (%d params, %.2f MiB)", s.typ, s.params, float64(s.bytes)/(1<<20))
	}
	return strings.Join(parts, ", ")
}

// tensorSummary counts the parameters of ck and describes its element types:
// for safetensors the dtypes with their parameters; for GGUF the ggml types
// of the file with their sizes (read from the tensor table: nothing is
// dequantized).
func tensorSummary(ck *model.Checkpoint) (int64, []string, error) {
	var params int64
	if f := ck.GGUF(); f != nil {
		for _, t := range f.Tensors {
			params += int64(t.NumElements())
		}
		return params, []string{ggufTypeSizes(f)}, nil
	}
	dtypes := map[model.DType]int64{}
	for _, n := range ck.Names() {
		t, err := ck.Tensor(n)
		if err != nil {
			return 0, nil, err
		}
		dtypes[t.DType] += int64(t.NumElements())
		params += int64(t.NumElements())
	}
	var dts []string
	for d, n := range dtypes {
		dts = append(dts, fmt.Sprintf("%s (%d params)", d, n))
	}
	sort.Strings(dts)
	return params, dts, nil
}
