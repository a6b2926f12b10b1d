package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// File names of a Hugging Face checkpoint directory.
const (
	ConfigFileName       = "config.json"
	SafetensorsFileName  = "model.safetensors"
	SafetensorsIndexName = "model.safetensors.index.json"
)

// Checkpoint is the set of safetensors files of one model directory: either a
// single model.safetensors or the shards listed by
// model.safetensors.index.json.
type Checkpoint struct {
	// Dir is the directory the checkpoint was opened from.
	Dir string

	files []*SafetensorsFile
	where map[string]*SafetensorsFile
	names []string
	// gguf holds the tensors of a checkpoint opened by OpenGGUF (where
	// then maps each name to nil).
	gguf *ggufTensors
}

// checkpointSource abstracts the OS file system and fs.FS.
type checkpointSource struct {
	join     func(name string) string
	readFile func(p string) ([]byte, error)
	open     func(p string) (*SafetensorsFile, error)
	exists   func(p string) bool
}

// OpenCheckpoint opens the safetensors weights in dir. It prefers
// model.safetensors and otherwise reads model.safetensors.index.json and
// opens every shard it names once. Files are memory-mapped read-only where
// possible; call Close when done.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	src := checkpointSource{
		join:     func(name string) string { return filepath.Join(dir, name) },
		readFile: ReadRegularFile,
		open:     OpenSafetensors,
		exists: func(p string) bool {
			_, err := os.Stat(p)
			return err == nil
		},
	}
	return openCheckpoint(dir, src)
}

// ReadRegularFile reads the regular file at path (symbolic links are
// followed). Anything else — a device such as /dev/zero, a FIFO, a socket, a
// directory — is an error before a byte is read, so a malformed model
// directory can neither exhaust memory nor block.
func ReadRegularFile(path string) ([]byte, error) {
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// checkRegular returns an error unless path is a regular file.
func checkRegular(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	return nil
}

// OpenCheckpointFS is OpenCheckpoint on a file system such as an embed.FS;
// dir is a slash-separated path inside fsys ("." for its root). File contents
// are read into memory.
func OpenCheckpointFS(fsys fs.FS, dir string) (*Checkpoint, error) {
	src := checkpointSource{
		join:     func(name string) string { return path.Join(dir, name) },
		readFile: func(p string) ([]byte, error) { return fs.ReadFile(fsys, p) },
		open: func(p string) (*SafetensorsFile, error) {
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return nil, fmt.Errorf("safetensors: %w", err)
			}
			return ParseSafetensors(p, data)
		},
		exists: func(p string) bool {
			_, err := fs.Stat(fsys, p)
			return err == nil
		},
	}
	return openCheckpoint(dir, src)
}

// OpenCheckpointBytes builds a single-file checkpoint from the bytes of a
// model.safetensors file; name is used in error messages.
func OpenCheckpointBytes(name string, data []byte) (*Checkpoint, error) {
	f, err := ParseSafetensors(name, data)
	if err != nil {
		return nil, err
	}
	return newSingleCheckpoint(name, f), nil
}

func newSingleCheckpoint(dir string, f *SafetensorsFile) *Checkpoint {
	c := &Checkpoint{Dir: dir, files: []*SafetensorsFile{f}, where: make(map[string]*SafetensorsFile, len(f.names))}
	for _, n := range f.names {
		c.where[n] = f
	}
	c.names = f.Names()
	return c
}

func openCheckpoint(dir string, src checkpointSource) (*Checkpoint, error) {
	single := src.join(SafetensorsFileName)
	if src.exists(single) {
		f, err := src.open(single)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		return newSingleCheckpoint(dir, f), nil
	}
	indexPath := src.join(SafetensorsIndexName)
	idxData, err := src.readFile(indexPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, errNoWeights)
		}
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(idxData, &idx); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("checkpoint %s: %s: empty or missing weight_map", dir, indexPath)
	}
	c := &Checkpoint{Dir: dir, where: make(map[string]*SafetensorsFile, len(idx.WeightMap))}
	shards := make(map[string]*SafetensorsFile)
	// Open shards in sorted order so that errors are deterministic.
	tensorNames := make([]string, 0, len(idx.WeightMap))
	for t := range idx.WeightMap {
		tensorNames = append(tensorNames, t)
	}
	sort.Strings(tensorNames)
	for _, t := range tensorNames {
		shard := idx.WeightMap[t]
		if !shardNameOK(shard) {
			c.Close()
			return nil, fmt.Errorf("checkpoint %s: %s: tensor %q: shard name %q is not a plain file name", dir, indexPath, t, shard)
		}
		f, ok := shards[shard]
		if !ok {
			f, err = src.open(src.join(shard))
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("checkpoint %s: shard %q (listed for tensor %q in %s): %w", dir, shard, t, SafetensorsIndexName, err)
			}
			shards[shard] = f
			c.files = append(c.files, f)
		}
		if _, ok := f.tensors[t]; !ok {
			c.Close()
			return nil, fmt.Errorf("checkpoint %s: tensor %q is mapped to shard %q by %s but that file does not contain it", dir, t, shard, SafetensorsIndexName)
		}
		c.where[t] = f
	}
	c.names = tensorNames
	return c, nil
}

// Names returns the sorted names of all tensors in the checkpoint.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Has reports whether the checkpoint contains the named tensor.
func (c *Checkpoint) Has(name string) bool {
	_, ok := c.where[name]
	return ok
}

// Tensor returns the named tensor. Its Data aliases the checkpoint's memory
// and is valid until Close.
func (c *Checkpoint) Tensor(name string) (TensorInfo, error) {
	if c.where == nil {
		return TensorInfo{}, fmt.Errorf("checkpoint %s: tensor %q: checkpoint is closed", c.Dir, name)
	}
	f, ok := c.where[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("checkpoint %s: missing tensor %q", c.Dir, name)
	}
	if c.gguf != nil {
		return c.gguf.tensor(name)
	}
	return f.Tensor(name)
}

// Float32s returns the named tensor converted to float32 (from F32, F16 or
// BF16) in a newly allocated slice.
func (c *Checkpoint) Float32s(name string) ([]float32, error) {
	t, err := c.Tensor(name)
	if err != nil {
		return nil, err
	}
	return t.Float32s()
}

// Close releases all files of the checkpoint.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.gguf != nil {
		if err := c.gguf.file.Close(); err != nil {
			errs = append(errs, err)
		}
		c.gguf = nil
	}
	c.files = nil
	c.where = nil
	c.names = nil
	return errors.Join(errs...)
}
