package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
)

// Device describes the device a report was measured on.
type Device struct {
	Name          string `json:"name"`
	Vendor        string `json:"vendor"`
	VendorID      uint32 `json:"vendor_id,omitempty"`
	DeviceID      uint32 `json:"device_id,omitempty"`
	Type          string `json:"type,omitempty"`
	Driver        string `json:"driver"`
	DriverVersion string `json:"driver_version,omitempty"`
	API           string `json:"api,omitempty"` // e.g. "Vulkan 1.3.280" or "CUDA 12.4"
	SubgroupSize  uint32 `json:"subgroup_size,omitempty"`
	SharedMemory  uint32 `json:"shared_memory,omitempty"`
	Float16       bool   `json:"float16,omitempty"`
	CoopMat       bool   `json:"coopmat,omitempty"`
	Timestamps    bool   `json:"timestamps,omitempty"`
	MemoryBytes   uint64 `json:"memory_bytes,omitempty"`
}

// DeviceOf describes a Vulkan device.
func DeviceOf(dev *runtime.Device) Device {
	in := dev.Info()
	drv := in.DriverName
	if in.DriverInfo != "" {
		drv = strings.TrimSpace(drv + " " + in.DriverInfo)
	}
	if drv == "" {
		drv = "unknown"
	}
	return Device{
		Name: in.Name, Vendor: in.Vendor, VendorID: in.VendorID, DeviceID: in.DeviceID, Type: in.Type.String(),
		Driver: drv, DriverVersion: in.DriverVersion, API: "Vulkan " + in.APIVersion,
		SubgroupSize: in.SubgroupSize, SharedMemory: in.MaxSharedMemory, Float16: in.Float16, CoopMat: in.CoopMat,
		Timestamps: in.TimestampValidBits > 0, MemoryBytes: dev.MemoryBudget(),
	}
}

// Report is what every benchmark writes: where and when it ran, with which
// parameters, and the results. Peers (bench/peers/*.py) write the same
// envelope.
type Report struct {
	Bench   string         `json:"bench"` // kernels, prefill, accuracy
	Impl    string         `json:"impl"`  // "shareprefill" or the peer's name
	Device  Device         `json:"device"`
	Commit  string         `json:"commit"`
	Date    string         `json:"date"`
	Host    map[string]any `json:"host,omitempty"`
	Params  any            `json:"params"`
	Results any            `json:"results"`
	Notes   []string       `json:"notes,omitempty"`
}

// NewReport fills the envelope (commit, date, host) for bench.
func NewReport(bench string, dev Device, params any) *Report {
	host, _ := os.Hostname()
	return &Report{
		Bench: bench, Impl: "shareprefill", Device: dev, Commit: Commit(), Date: time.Now().UTC().Format(time.RFC3339),
		Host:   map[string]any{"go": goruntime.Version(), "os": goruntime.GOOS, "arch": goruntime.GOARCH, "cpus": goruntime.NumCPU(), "hostname": host},
		Params: params,
	}
}

// Notef appends a note.
func (r *Report) Notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Commit names the code that is measured: the revision stamped into this
// binary by the Go toolchain (vcs.revision, "+dirty" when vcs.modified;
// build with -buildvcs=true where GOFLAGS turns stamping off); else
// SHAREPREFILL_COMMIT (the device scripts set it from .devcarry/COMMIT for
// binaries without a stamp); else `git rev-parse --short HEAD` of the
// working directory with "+dirty" when the work tree has changes; else
// "unknown". The stamp comes first because a binary copied into another
// checkout, as on the device machine, would otherwise report that
// checkout's commit.
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if c := stampedCommit(bi.Settings); c != "" {
			return c
		}
	}
	if c := strings.TrimSpace(os.Getenv("SHAREPREFILL_COMMIT")); c != "" {
		return c
	}
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if c == "" {
		return "unknown"
	}
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// stampedCommit is the short vcs.revision of a binary's build settings,
// with "+dirty" when vcs.modified is true; "" when there is none.
func stampedCommit(settings []debug.BuildSetting) string {
	var rev string
	dirty := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// WriteJSON writes r as indented JSON to path (creating its directory).
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Header is the Markdown preamble of a report: device, commit, date, notes.
func (r *Report) Header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s benchmark (%s)\n\n", r.Bench, r.Impl)
	fmt.Fprintf(&b, "- device: %s (%s, driver %s %s, %s)\n", r.Device.Name, r.Device.Vendor, r.Device.Driver, r.Device.DriverVersion, r.Device.API)
	fmt.Fprintf(&b, "- commit %s, %s\n", r.Commit, r.Date)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- note: %s\n", n)
	}
	b.WriteString("\n")
	return b.String()
}

// Table is a Markdown table.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Foot   string // a line under the table (formulas, units)
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.Rows = append(t.Rows, cells) }

// Markdown renders the table.
func (t *Table) Markdown() string {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "### %s\n\n", t.Title)
	}
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		cells := make([]string, len(t.Header))
		copy(cells, r)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	if t.Foot != "" {
		b.WriteString("\n" + t.Foot + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// Markdown renders a header and tables.
func Markdown(r *Report, tables []*Table) string {
	var b strings.Builder
	b.WriteString(r.Header())
	for _, t := range tables {
		b.WriteString(t.Markdown())
	}
	return b.String()
}

// Output says where a benchmark writes its results; empty fields are
// skipped. Markdown always goes to Stdout when it is set.
type Output struct {
	JSON, MD, Plots string
	Stdout          io.Writer
}

// Write writes the report and its Markdown (and nothing else; plots are
// drawn by the benchmark-specific Plot functions).
func (o Output) Write(r *Report, tables []*Table) error {
	md := Markdown(r, tables)
	if o.Stdout != nil {
		if _, err := io.WriteString(o.Stdout, md); err != nil {
			return err
		}
	}
	if o.JSON != "" {
		if err := r.WriteJSON(o.JSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if o.MD != "" {
		if dir := filepath.Dir(o.MD); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(o.MD, []byte(md), 0o644); err != nil {
			return fmt.Errorf("--md: %w", err)
		}
	}
	return nil
}

// f formats a float with prec significant decimals, "–" for NaN.
func f(x float64, prec int) string {
	if x != x {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, x)
}
