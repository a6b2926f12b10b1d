package model

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/shareprefill/shareprefill/internal/shareddata"
	"github.com/shareprefill/shareprefill/model/stories260k"
)

// findStoriesDir returns the shared stories260K-hf directory (see
// internal/shareddata), or "", and the paths it tried.
func findStoriesDir() (dir string, tried []string) {
	p, tried := shareddata.Find("data/stories260K-hf/reference/greedy_from_bos.json")
	if p == "" {
		return "", tried
	}
	return filepath.Dir(filepath.Dir(p)), tried
}

// storiesDir returns the shared stories260K-hf directory, or skips the test
// (fails with SHAREPREFILL_REQUIRE_SHARED=1), saying where it looked.
func storiesDir(t testing.TB) string {
	t.Helper()
	p := shareddata.Path(t, "data/stories260K-hf/reference/greedy_from_bos.json")
	return filepath.Dir(filepath.Dir(p))
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// embeddedGreedyPrefix is the start of reference/greedy_from_bos.json
// ("Once upon a time, there was a little girl named Lily."), so that the
// embedded model is checked even without the shared data.
var embeddedGreedyPrefix = []int{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337}

func TestEmbeddedStories260K(t *testing.T) {
	cfg, w, err := LoadFS(stories260k.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NumParams() != 260032 || cfg.NumKVHeads != 4 || !w.TiedEmbeddings {
		t.Errorf("unexpected config %+v", *cfg)
	}
	files := stories260k.Files()
	if len(files) != 4 {
		t.Errorf("Files() has %d entries", len(files))
	}
	ck, err := OpenCheckpointBytes("embedded", files[SafetensorsFileName])
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ck.Names()); n != 47 {
		t.Errorf("%d tensors, want 47", n)
	}
	// WriteTo gives a directory Load accepts.
	dir := t.TempDir()
	if err := stories260k.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(dir); err != nil {
		t.Fatal(err)
	}

	// Byte-identical to the shared data when present.
	if shared, _ := findStoriesDir(); shared != "" {
		for name, b := range files {
			want, err := os.ReadFile(filepath.Join(shared, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("embedded %s differs from %s", name, shared)
			}
		}
	}
}
