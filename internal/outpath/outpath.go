// Package outpath checks a command's output paths before the command does its
// work, so that a bad path fails in a moment instead of after minutes of
// computation, and so that nothing the user did not mean to lose is
// overwritten.
//
// Check enforces, for one output file or directory:
//
//   - the path is not an input of the same command (compared as cleaned
//     absolute paths with symbolic links resolved, and with os.SameFile);
//   - the path is not inside a protected directory, such as the model
//     directory the command reads;
//   - a file output is not an existing directory, a directory output is not
//     an existing file, and neither is a device, FIFO or socket;
//   - the parent directory exists (or, for outputs whose writer creates
//     parents, the nearest existing ancestor is a directory) and is writable;
//   - an existing non-empty file, or non-empty directory, is one the command
//     wrote itself (Spec.Ours), unless Spec.Force is set.
//
// Force never allows overwriting an input or writing into a protected
// directory.
package outpath

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// Named is a path together with the flag that named it, for error messages.
type Named struct {
	Flag string // the flag, such as "--data"
	Path string
}

// Spec describes one output of a command.
type Spec struct {
	// Flag names the output in errors, such as "--out".
	Flag string
	// Path is the output path; Check does nothing when it is empty.
	Path string
	// Dir says the output is a directory the command writes files into
	// (created if missing); otherwise it is a file.
	Dir bool
	// MakeParents says the writer creates missing parent directories, so
	// only the nearest existing ancestor needs to be a directory.
	MakeParents bool
	// Inputs are the paths the same command reads, and its other outputs;
	// the output may be none of them. Empty paths are ignored.
	Inputs []Named
	// Protected are directories the output must not be in (nor be), such as
	// the model directory. Empty paths are ignored.
	Protected []Named
	// Ours reports whether an existing non-empty file (or, for Dir, a
	// non-empty directory) at path was written by this program, so that
	// writing over it loses nothing the user made. Nil means nothing is.
	Ours func(path string) bool
	// What describes what Ours recognises, for the error message, such as
	// "a cluster file" or "a directory made by bench gen-model".
	What string
	// Force allows overwriting an existing output that Ours does not
	// recognise. It does not relax any other rule.
	Force bool
}

// Check reports the first rule s.Path breaks, as an error naming s.Flag and
// the path, or nil. It creates and removes a temporary file to test that the
// output's directory is writable, and changes nothing else.
func Check(s Spec) error {
	if s.Path == "" {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s %s: %s", s.Flag, show(s.Path), fmt.Sprintf(format, args...))
	}
	out, err := resolve(s.Path)
	if err != nil {
		return bad("%v", err)
	}
	fi, statErr := os.Stat(s.Path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return bad("%v", unwrapPath(statErr))
	}
	for _, in := range s.Inputs {
		if in.Path == "" {
			continue
		}
		same := false
		if p, err := resolve(in.Path); err == nil && p == out {
			same = true
		}
		if exists && !same {
			if ifi, err := os.Stat(in.Path); err == nil && os.SameFile(fi, ifi) {
				same = true
			}
		}
		if same {
			return bad("is also given as %s; an output may not be an input or another output of the same command", in.Flag)
		}
	}
	for _, p := range s.Protected {
		if p.Path == "" {
			continue
		}
		dir, err := resolve(p.Path)
		if err != nil {
			continue
		}
		if within(out, dir) {
			return bad("is inside the %s directory %s; write outputs elsewhere", p.Flag, show(p.Path))
		}
	}
	if exists {
		switch {
		case s.Dir && !fi.IsDir():
			return bad("exists and is not a directory")
		case !s.Dir && fi.IsDir():
			return bad("is a directory; want a file path")
		case !fi.IsDir() && !fi.Mode().IsRegular():
			return bad("exists and is not a regular file (%v)", fi.Mode().Type())
		}
		empty, err := isEmpty(s.Path, fi)
		if err != nil {
			return bad("%v", unwrapPath(err))
		}
		if !empty && !s.Force && (s.Ours == nil || !s.Ours(s.Path)) {
			what := "the file"
			if s.Dir {
				what = "the directory"
			}
			if s.What != "" {
				return bad("exists and is not %s; %s would be overwritten (use --force to overwrite it)", s.What, what)
			}
			return bad("exists; %s would be overwritten (use --force to overwrite it)", what)
		}
	}
	// The directory the output's files land in must exist (or be creatable)
	// and be writable.
	dir := filepath.Dir(out)
	if s.Dir {
		dir = out
	}
	probe, err := nearestDir(dir)
	if err != nil {
		return bad("%v", err)
	}
	if probe != dir && !s.Dir && !s.MakeParents {
		return bad("the directory %s does not exist", show(filepath.Dir(s.Path)))
	}
	f, err := os.CreateTemp(probe, ".shareprefill-outpath-*")
	if err != nil {
		return bad("cannot write in %s: %v", show(probe), unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return bad("cannot write in %s: %v", show(probe), unwrapPath(err))
	}
	if exists && !s.Dir {
		// Opening for writing without truncating tests the permission and
		// changes nothing.
		f, err := os.OpenFile(s.Path, os.O_WRONLY, 0)
		if err != nil {
			return bad("%v", unwrapPath(err))
		}
		f.Close()
	}
	return nil
}

// show returns p as it is, or quoted when it holds a control character,
// so that an error stays one line.
func show(p string) string {
	if strings.IndexFunc(p, unicode.IsControl) < 0 {
		return p
	}
	return strconv.Quote(p)
}

// resolve returns the cleaned absolute form of p with the symbolic links of
// its longest existing prefix resolved.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether p is dir or lies below it (both resolved).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

// nearestDir returns dir, or its nearest existing ancestor, which must be a
// directory.
func nearestDir(dir string) (string, error) {
	for cur := dir; ; {
		fi, err := os.Stat(cur)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("%s is not a directory", show(cur))
			}
			return cur, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", unwrapPath(err)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return "", fmt.Errorf("no existing directory above %s", show(dir))
		}
		cur = parent
	}
}

// isEmpty reports whether a regular file has no bytes or a directory no
// entries.
func isEmpty(p string, fi os.FileInfo) (bool, error) {
	if !fi.IsDir() {
		return fi.Size() == 0, nil
	}
	d, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// unwrapPath drops the operation and path of an *fs.PathError, which the
// caller's message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
