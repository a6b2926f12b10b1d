package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recorder) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...) }

func TestFindEnvRootFirst(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "data", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(Env, root)
	p, tried := Find("data/x")
	if want := filepath.Join(root, "data", "x"); p != want {
		t.Fatalf("Find = %q (tried %v), want %q", p, tried, want)
	}
	if p := Path(t, "data/x"); p != filepath.Join(root, "data", "x") {
		t.Fatalf("Path = %q", p)
	}
}

func TestPathMissingSkipsOrFails(t *testing.T) {
	t.Setenv(Env, t.TempDir())
	const rel = "data/no-such-file-anywhere"
	r := &recorder{TB: t}
	t.Setenv(RequireEnv, "")
	Path(r, rel)
	if r.skip == "" || r.fatal != "" {
		t.Fatalf("without %s: skip %q, fatal %q; want a skip", RequireEnv, r.skip, r.fatal)
	}
	r = &recorder{TB: t}
	t.Setenv(RequireEnv, "1")
	Path(r, rel)
	if r.fatal == "" || r.skip != "" {
		t.Fatalf("with %s=1: skip %q, fatal %q; want a failure", RequireEnv, r.skip, r.fatal)
	}
}
