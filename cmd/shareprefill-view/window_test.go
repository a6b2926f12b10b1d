//go:build viewer

package main

import (
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/share"
)

// TestMain runs the command itself (on the main thread, which GLFW needs)
// when the screenshot test re-executes the test binary.
func TestMain(m *testing.M) {
	if os.Getenv("SHAREPREFILL_VIEW_RUN_MAIN") == "1" {
		os.Args = append([]string{"shareprefill-view"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// viewerCommand returns a command running shareprefill-view with args in a
// window: under xvfb-run when it is installed, else on $DISPLAY; it skips
// (fails with SHAREPREFILL_REQUIRE_VIEWER=1) when there is neither.
func viewerCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if xr, err := exec.LookPath("xvfb-run"); err == nil {
		cmd = exec.Command(xr, append([]string{"-a", "-s", "-screen 0 1600x1000x24", self}, args...)...)
	} else if os.Getenv("DISPLAY") != "" {
		cmd = exec.Command(self, args...)
	} else {
		msg := "no xvfb-run and no DISPLAY (Debian: apt-get install xvfb xauth)"
		if os.Getenv("SHAREPREFILL_REQUIRE_VIEWER") == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipping the window test: " + msg)
	}
	cmd.Env = append(os.Environ(), "SHAREPREFILL_VIEW_RUN_MAIN=1")
	return cmd
}

// screenshot runs the viewer to render one frame of layer into a PNG, and
// checks the block pattern grid and the overview against what it showed.
func screenshot(t *testing.T, layer int, extra ...string) *viewData {
	t.Helper()
	dir := t.TempDir()
	shot, dump := filepath.Join(dir, "frame.png"), filepath.Join(dir, "view.json")
	args := append([]string{"--screenshot", shot, "--dump", dump, "--layer", strconv.Itoa(layer), "--width", "1024", "--height", "700"}, extra...)
	out, err := viewerCommand(t, args...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "no Vulkan") && os.Getenv("SHAREPREFILL_REQUIRE_VULKAN") != "1" {
			t.Skipf("skipping: %s", out)
		}
		t.Fatalf("shareprefill-view %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var v viewData
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 1024 || img.Bounds().Dy() != 700 {
		t.Errorf("screenshot is %v, want the 1024×700 window", img.Bounds())
	}
	if n := checkFrame(t, img, &v, layer); n == 0 {
		t.Error("nothing checked")
	}
	if t.Failed() {
		keep := filepath.Join(os.TempDir(), "shareprefill-view-failed.png")
		if b, err := os.ReadFile(shot); err == nil && os.WriteFile(keep, b, 0o644) == nil {
			t.Logf("screenshot kept in %s", keep)
		}
	}
	return &v
}

// TestScreenshotModel: the embedded model's SharePrefill prefill, drawn in
// a window with the runtime's device and read back from the swapchain; the
// colour at the centre of every block of every head of the shown layer and
// of every overview square must be the one its statistics and plan call
// for.
func TestScreenshotModel(t *testing.T) {
	for _, layer := range []int{0, 3} {
		v := screenshot(t, layer, "--tokens", "300", "--max-tokens", "8")
		methods := map[share.Method]int{}
		for _, l := range v.Layers {
			for _, h := range l.Heads {
				methods[h.Method]++
				if h.Mask == nil {
					t.Errorf("layer %d: a head without its block mask", l.Layer)
				}
			}
		}
		if len(v.Layers) != 5 || methods[share.MethodPivot] == 0 || methods[share.MethodShared] == 0 {
			t.Errorf("layer %d: %d layers, methods %v (want pivots and shared heads)", layer, len(v.Layers), methods)
		}
		if strings.TrimSpace(v.Text) == "" {
			t.Error("no generated text")
		}
	}
}

// TestScreenshotStats shows statistics from a file (every method, no
// masks) and checks the colours.
func TestScreenshotStats(t *testing.T) {
	st := &share.Stats{Planner: "shareprefill", N: 700, NB: 6, BlockSize: 128, NumLayers: 2, NumHeads: 6}
	methods := []share.Method{share.MethodPivot, share.MethodShared, share.MethodVerticalSlash, share.MethodQueryAware, share.MethodExcluded, share.MethodDense}
	for l := range 2 {
		ls := share.LayerStat{Layer: l}
		for h := range 6 {
			ls.Heads = append(ls.Heads, share.HeadStat{Head: h, Method: methods[(h+l)%6], Blocks: 10, Density: 0.5})
		}
		st.Layers = append(st.Layers, ls)
	}
	b, err := st.JSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stats.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	screenshot(t, 1, "--stats", path)
}
