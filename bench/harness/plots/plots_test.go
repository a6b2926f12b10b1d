package plots

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/shareprefill/shareprefill/bench/harness"
)

// TestDrawAll draws the prefill plots of a small result and an empty plot:
// two PNG files, and nothing for the plot without points.
func TestDrawAll(t *testing.T) {
	res := &harness.PrefillResults{Rows: []harness.PrefillRow{
		{Method: "dense", N: 1024, Stat: harness.Stat{Median: 10}, SpeedupVsDense: 1},
		{Method: "flex", N: 1024, Stat: harness.Stat{Median: 5}, SpeedupVsDense: 2},
		{Method: "dense", N: 4096, Stat: harness.Stat{Median: 80}, SpeedupVsDense: 1},
	}}
	specs := append(harness.PrefillPlots(res), harness.PlotSpec{File: "empty.png", Title: "no points",
		LogY: true, Series: []harness.Series{{Name: "only unplottable points", Pts: []harness.XY{{X: 1, Y: 0}, {X: math.NaN(), Y: 1}}}}})
	dir := filepath.Join(t.TempDir(), "new", "plots")
	files, err := DrawAll(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "prefill_latency.png"), filepath.Join(dir, "prefill_speedup.png")}
	if len(files) != len(want) || files[0] != want[0] || files[1] != want[1] {
		t.Fatalf("files %q, want %q", files, want)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
			t.Fatalf("%s is not a PNG (%d bytes)", f, len(b))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.png")); !os.IsNotExist(err) {
		t.Errorf("a plot without drawable points was written (%v)", err)
	}
}

// TestDrawError: a directory that cannot be made is an error naming the
// plot.
func TestDrawError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.PlotSpec{File: "a.png", Series: []harness.Series{{Name: "x", Pts: []harness.XY{{X: 1, Y: 1}}}}}
	if _, err := Draw(filepath.Join(file, "sub"), s); err == nil || !bytes.Contains([]byte(err.Error()), []byte("a.png")) {
		t.Errorf("Draw into a path under a file: %v, want an error naming a.png", err)
	}
}

func TestLenLabel(t *testing.T) {
	for x, want := range map[float64]string{4096: "4K", 1536: "1536", 3072: "3K", 1000: "1000", 65536: "64K", 0.25: "0.25"} {
		if got := lenLabel(x); got != want {
			t.Errorf("lenLabel(%v) = %q, want %q", x, got, want)
		}
	}
}
