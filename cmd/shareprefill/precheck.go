package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/shareprefill/shareprefill"
	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/internal/outpath"
	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/share"
)

// checkDevice checks a --device value against the Vulkan devices before a
// command loads anything: a value that names no device is a usage error
// (with the device list). Without Vulkan it leaves the error to the command.
func checkDevice(want string) error {
	if strings.TrimSpace(want) == "" {
		return nil
	}
	infos, err := runtime.ListDevices()
	if err != nil {
		return nil
	}
	if _, err := runtime.ChooseDevice(infos, want); err != nil {
		if errors.Is(err, runtime.ErrNoVulkan) {
			return nil
		}
		return usageError{"--device: " + err.Error()}
	}
	return nil
}

// checkOutputs checks every output path before a command does its work
// (package outpath); a bad output path is a usage error.
func checkOutputs(specs ...outpath.Spec) error {
	for _, s := range specs {
		if err := outpath.Check(s); err != nil {
			return usageError{err.Error()}
		}
	}
	return nil
}

// modelInput names a --model directory as an input and a protected
// directory; the embedded model has none.
func modelInput(dir string) []outpath.Named {
	if dir == "" || dir == shareprefill.EmbeddedModel {
		return nil
	}
	return []outpath.Named{{Flag: "--model", Path: dir}}
}

// forceFlag defines --force on fs.
func forceFlag(fs *flagSet) *bool {
	return fs.Bool("force", false, "overwrite an existing output that this program did not write (never an input or the model directory)")
}

// maxRecognised bounds the size of a file the recognisers below read.
const maxRecognised = 64 << 20

// readSmall reads a regular file of at most maxRecognised bytes.
func readSmall(p string) ([]byte, bool) {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxRecognised {
		return nil, false
	}
	b, err := os.ReadFile(p)
	return b, err == nil
}

// isClusterFile reports whether p parses as a cluster file.
func isClusterFile(p string) bool {
	b, ok := readSmall(p)
	if !ok {
		return false
	}
	_, err := share.ParseClusters(b)
	return err == nil
}

// isStatsJSON reports whether p is a file `run --stats-json` writes: a JSON
// object with "planner" or "attention", or {} (no sparse call yet).
func isStatsJSON(p string) bool {
	b, ok := readSmall(p)
	if !ok {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil || m == nil {
		return false
	}
	_, planner := m["planner"]
	_, attn := m["attention"]
	return planner || attn || len(m) == 0
}

// isBenchReport reports whether p is a benchmark report (ours or a peer's).
func isBenchReport(p string) bool {
	if _, ok := readSmall(p); !ok {
		return false
	}
	_, err := harness.ReadReport(p)
	return err == nil
}

// isBenchMarkdown reports whether p starts like the Markdown the benchmarks
// and `bench compare` write.
func isBenchMarkdown(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	return line == "## ours vs peers" || (strings.HasPrefix(line, "## ") && strings.Contains(line, " benchmark ("))
}

// onlyFiles reports whether every entry of dir is a regular file that keep
// accepts.
func onlyFiles(dir string, keep func(name string) bool) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !keep(e.Name()) {
			return false
		}
	}
	return true
}

// isPlotsDir reports whether dir holds nothing but PNG files.
func isPlotsDir(dir string) bool {
	return onlyFiles(dir, func(n string) bool { return filepath.Ext(n) == ".png" })
}

// isTraceDir reports whether dir holds nothing but bench prefill's traces
// (trace-*.json).
func isTraceDir(dir string) bool {
	return onlyFiles(dir, func(n string) bool { return strings.HasPrefix(n, "trace-") && filepath.Ext(n) == ".json" })
}

// isMasksDir reports whether dir holds nothing but an exported mask set.
func isMasksDir(dir string) bool {
	return onlyFiles(dir, func(n string) bool { return n == "masks.json" || filepath.Ext(n) == ".npy" })
}

// isChromeTrace says whether p holds a Chrome trace-event file (run --profile).
func isChromeTrace(p string) bool {
	b, ok := readSmall(p)
	if !ok {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok = m["traceEvents"]
	return ok
}
