package runtime_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestTrace: a traced recorder logs every submission and wait on the host
// and every command on the GPU; the summary's totals add up and the Chrome
// file is valid JSON with both tracks.
func TestTrace(t *testing.T) {
	d := gputest.Device(t)
	const n = 4096
	acc, _ := d.NewTensor(runtime.F32, n)
	ones, _ := d.NewTensor(runtime.F32, n)
	defer acc.Free()
	defer ones.Free()
	if err := ones.UploadF32(make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	tr := runtime.NewTrace()
	r.SetTrace(tr)
	before := d.Counters()
	for b := 0; b < 3; b++ { // three batches of 2 dispatches and a copy
		addOnes(t, r, acc, ones)
		addOnes(t, r, acc, ones)
		if err := r.CopyBytes(ones, 0, acc, 0, 64); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	c := d.Counters().Sub(before)
	s := tr.Summary(func(l string) string {
		if l == "copy" {
			return "copy"
		}
		return "add"
	})
	if s.Submits != 3 || uint64(s.Submits) != c.Submits || uint64(s.Waits) != c.Waits {
		t.Errorf("trace: %d submits, %d waits; device counters %d, %d; want 3 submits and equal counts", s.Submits, s.Waits, c.Submits, c.Waits)
	}
	if s.HostWait+s.HostRecord > s.Wall || s.Wall <= 0 {
		t.Errorf("host wait %v and recording %v, wall %v", s.HostWait, s.HostRecord, s.Wall)
	}
	if s.Records != 3 || s.HostRecord <= 0 {
		t.Errorf("trace: %d batches recorded in %v, want 3 in a positive time", s.Records, s.HostRecord)
	}
	// Each batch: add, barrier, add, barrier, copy; every batch after the
	// first begins with a barrier.
	if c.Dispatches != 6 || c.Copies != 3 || c.Barriers != 3*2+2 {
		t.Errorf("device counters: %d dispatches, %d copies, %d barriers; want 6, 3, 8", c.Dispatches, c.Copies, c.Barriers)
	}
	if !s.HasGPU {
		t.Skip("device has no timestamps")
	}
	if s.Commands != 9 || len(tr.GPU()) != 9 {
		t.Fatalf("%d GPU events, want 9 (6 dispatches, 3 copies)", s.Commands)
	}
	var sum time.Duration
	for _, v := range s.ByCategory {
		sum += v
	}
	if len(s.ByCategory) != 2 || s.GPUBusy <= 0 || s.GPUBusy > s.GPUSpan || s.GPUIdle != s.GPUSpan-s.GPUBusy || sum < s.GPUBusy {
		t.Errorf("summary does not add up: %+v (category sum %v)", s, sum)
	}
	for _, e := range tr.GPU() {
		if e.End < e.Start || e.Batch < 1 || e.Batch > 3 {
			t.Errorf("GPU event %+v", e)
		}
	}
	var buf bytes.Buffer
	if err := tr.WriteChrome(&buf); err != nil {
		t.Fatal(err)
	}
	var file struct {
		TraceEvents []struct {
			Name string  `json:"name"`
			Ph   string  `json:"ph"`
			TID  int     `json:"tid"`
			TS   float64 `json:"ts"`
			Dur  float64 `json:"dur"`
		} `json:"traceEvents"`
	}
	if err := json.Unmarshal(buf.Bytes(), &file); err != nil {
		t.Fatalf("Chrome trace is not valid JSON: %v", err)
	}
	tracks := map[int]int{}
	for _, e := range file.TraceEvents {
		if e.Ph == "X" {
			tracks[e.TID]++
			if e.Dur < 0 {
				t.Errorf("event %q with negative duration", e.Name)
			}
		}
	}
	if tracks[1] != s.Records+s.Submits+s.Waits || tracks[2] != 9 {
		t.Errorf("Chrome trace has %d host and %d GPU slices, want %d and 9", tracks[1], tracks[2], s.Records+s.Submits+s.Waits)
	}
}
