// Command shareprefill-view shows a SharePrefill prefill: for every layer
// and head, the block pattern the planner chose (pivot, shared,
// vertical-slash, query-aware, excluded, dense in distinct colours), an
// overview of all layers × heads, and the text the model generated. It
// renders with Vulkan on the same device the model runs on: the window's
// instance and device are created with runtime.CreateVulkan (plus the
// surface and swapchain extensions) and handed to the runtime with
// runtime.Adopt.
//
// The window needs GLFW (X11), so it is built only with the viewer tag:
//
//	go build -tags viewer -o bin/shareprefill-view ./cmd/shareprefill-view
//	bin/shareprefill-view                            # embedded model, SharePrefill (release preset)
//	bin/shareprefill-view --attn share --clusters clusters.json --model DIR --tokens 4000
//	bin/shareprefill-view --stats stats.json         # statistics from shareprefill run --stats-json
//	bin/shareprefill-view --screenshot frame.png     # render one frame, save it, exit
//
// Keys: ←/→ or k/j step through layers, Home/End first/last, q or Esc quits.
// Without the tag, --image FILE.png renders a frame on the CPU (no window).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"

	"github.com/shareprefill/shareprefill/runtime"
)

// config is the command line.
type config struct {
	run        runOptions
	device     string
	statsFile  string
	layer      int
	width      int
	height     int
	screenshot string
	imageFile  string
	dump       string
}

func main() {
	var c config
	fs := flag.NewFlagSet("shareprefill-view", flag.ContinueOnError)
	fs.StringVar(&c.run.Model, "model", "", "Hugging Face model directory (default: the embedded stories260K)")
	fs.StringVar(&c.run.Attn, "attn", "share", "planner: share, flex, vs or dense")
	fs.StringVar(&c.run.Clusters, "clusters", "", "SharePrefill cluster file for --attn share (default for the embedded model: head h of every layer in one cluster; for other models none: every head alone)")
	fs.StringVar(&c.run.Preset, "preset", "release", "SharePrefill preset: paper or release, optionally with overrides, e.g. paper:gamma=0.985 (the knobs: shareprefill run -h)")
	fs.IntVar(&c.run.Block, "block", 32, "block size in tokens (a power of two ≥ 8)")
	fs.StringVar(&c.run.Prompt, "prompt", "Once upon a time.", "prompt (padded with a short story to --tokens)")
	fs.IntVar(&c.run.Tokens, "tokens", 400, "pad the prompt to about this many tokens (0: as given)")
	fs.IntVar(&c.run.MaxTokens, "max-tokens", 48, "tokens to generate after the prefill")
	fs.StringVar(&c.device, "device", "", "device index or name substring")
	fs.StringVar(&c.statsFile, "stats", "", "show these statistics (share.Stats JSON, e.g. from shareprefill run --stats-json) instead of running a model")
	fs.IntVar(&c.layer, "layer", 0, "layer shown first")
	fs.IntVar(&c.width, "width", 1280, "window width")
	fs.IntVar(&c.height, "height", 800, "window height")
	fs.StringVar(&c.screenshot, "screenshot", "", "render one frame in the window, save the presented image as PNG, and exit")
	fs.StringVar(&c.imageFile, "image", "", "render one frame on the CPU as PNG without a window, and exit")
	fs.StringVar(&c.dump, "dump", "", "write what is shown (per-head methods, densities and block masks) as JSON")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "shareprefill-view: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	if c.width < 320 || c.height < 240 {
		fmt.Fprintln(os.Stderr, "shareprefill-view: --width and --height must be at least 320×240")
		os.Exit(2)
	}
	var err error
	if c.imageFile != "" {
		err = renderImage(c)
	} else {
		err = runWindow(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shareprefill-view:", err)
		os.Exit(1)
	}
}

// viewDataFor loads --stats or runs the model on dev.
func viewDataFor(c config, dev func() (*runtime.Device, error)) (*viewData, error) {
	if c.statsFile != "" {
		return loadStats(c.statsFile)
	}
	d, err := dev()
	if err != nil {
		return nil, err
	}
	return collect(context.Background(), d, c.run)
}

// renderImage renders one frame on the CPU (no window) and saves it.
func renderImage(c config) error {
	var d *runtime.Device
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	v, err := viewDataFor(c, func() (*runtime.Device, error) {
		var err error
		d, err = runtime.Open(runtime.Options{Device: c.device})
		return d, err
	})
	if err != nil {
		return err
	}
	img := image.NewRGBA(image.Rect(0, 0, c.width, c.height))
	drawFrame(img, v, c.layer)
	if err := writePNG(c.imageFile, img); err != nil {
		return err
	}
	return dumpData(c.dump, v)
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func dumpData(path string, v *viewData) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
