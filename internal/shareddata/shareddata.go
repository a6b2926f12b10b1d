// Package shareddata finds the data that tests share with the project's
// source material: the real tokenizers, the stories260K model with its
// reference outputs, and the bench-lm-8k long-context model. Tests use it
// only; the product never reads these files.
//
// The shared root is the folder that holds data/ and models/: the
// environment variable SHAREPREFILL_SHARED names it, else the folder
// "shared" beside the checkout is used. A test that needs a file the root
// lacks skips and says which file and where it looked, unless
// SHAREPREFILL_REQUIRE_SHARED=1 is set (as .ci/run does where the data is
// present): then it fails, so that data a CI run has cannot be skipped
// silently.
package shareddata

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Env is the variable that names the shared root.
const Env = "SHAREPREFILL_SHARED"

// RequireEnv is the variable that turns a missing shared file into a
// test failure.
const RequireEnv = "SHAREPREFILL_REQUIRE_SHARED"

// Roots returns the candidate shared roots, in the order they are tried:
// $SHAREPREFILL_SHARED, then the folder "shared" beside the checkout.
func Roots() []string {
	var roots []string
	if env := os.Getenv(Env); env != "" {
		roots = append(roots, env)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		// file is <checkout>/internal/shareddata/shareddata.go.
		checkout := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		roots = append(roots, filepath.Join(filepath.Dir(checkout), "shared"))
	}
	return roots
}

// Find returns the first root that holds rel (a slash-separated path below
// the shared root, such as "data/tokenizers"), joined with rel, and the
// paths it tried.
func Find(rel string) (path string, tried []string) {
	for _, root := range Roots() {
		p := filepath.Join(root, filepath.FromSlash(rel))
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return p, tried
		}
	}
	return "", tried
}

// Path returns the path of rel below the shared root. When no root holds
// it, the test skips with the paths tried, or fails if
// SHAREPREFILL_REQUIRE_SHARED=1.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p, tried := Find(rel)
	if p != "" {
		return p
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("shared data %s not found (tried %v) and %s=1", rel, tried, RequireEnv)
		return ""
	}
	t.Skipf("shared data %s not found (tried %v); set %s to the shared root (the folder holding data/ and models/)", rel, tried, Env)
	return ""
}
