package runtime_test

import (
	"context"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestReplay: a batch recorded once runs on every Submit with the inputs the
// host wrote before it (read through a recorded host copy), costs one
// submission and one host wait and records nothing per submission, and can
// be recorded again with other commands.
func TestReplay(t *testing.T) {
	d := gputest.Device(t)
	const n = 300
	in, err := d.NewHostBuffer(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Free()
	out, err := d.NewHostBuffer(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	acc, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Free()
	step, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer step.Free()
	if err := acc.UploadF32(make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	p, err := d.NewReplay()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	ctx := context.Background()
	if err := p.Submit(ctx); err == nil {
		t.Error("Submit before Record succeeded")
	}
	tr := runtime.NewTrace()
	if err := p.SetTrace(tr); err != nil {
		t.Fatal(err)
	}
	before := d.Counters()
	// acc += step, where step comes from the host; acc goes back to the host.
	err = p.Record(func(r *runtime.Recorder) error {
		if err := r.CopyFromHost(step, 0, in, 0, 4*n); err != nil {
			return err
		}
		addOnes(t, r, acc, step)
		return r.CopyToHost(out, 0, acc, 0, 4*n)
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := d.Counters().Sub(before)
	if !p.Recorded() || p.Commands() != 3 || rec.Dispatches != 1 || rec.Copies != 2 || rec.Submits != 0 {
		t.Errorf("recording: recorded %v, %d commands, counters %+v; want 3 commands (1 dispatch, 2 copies) and no submission", p.Recorded(), p.Commands(), rec)
	}
	want := make([]float32, n)
	before = d.Counters()
	const runs = 4
	for k := 1; k <= runs; k++ {
		v := in.Float32s(n)
		for i := range v {
			v[i] = float32(k * (i%5 + 1))
			want[i] += v[i]
		}
		if err := p.Submit(ctx); err != nil {
			t.Fatal(err)
		}
		got := out.Float32s(n)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("submission %d: acc[%d] = %v, want %v", k, i, got[i], want[i])
			}
		}
	}
	c := d.Counters().Sub(before)
	if c.Submits != runs || c.Waits != runs || c.Dispatches != 0 || c.Copies != 0 || c.Barriers != 0 || c.Allocs != 0 {
		t.Errorf("%d submissions: counters %+v; want %d submits and waits, nothing recorded or allocated", runs, c, runs)
	}
	s := tr.Summary(nil)
	if s.Records != 1 || s.Submits != runs || s.Waits != runs {
		t.Errorf("trace: %d recordings, %d submits, %d waits; want 1, %d, %d", s.Records, s.Submits, s.Waits, runs, runs)
	}
	if s.HasGPU && s.Commands != 3*runs {
		t.Errorf("trace: %d GPU events, want %d", s.Commands, 3*runs)
	}

	// Recorded again: acc is copied out without the add.
	if err := p.Record(func(r *runtime.Recorder) error { return r.CopyToHost(out, 0, acc, 0, 4*n) }); err != nil {
		t.Fatal(err)
	}
	clear(out.Bytes())
	if err := p.Submit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := out.Float32s(n); got[n-1] != want[n-1] || p.Commands() != 1 {
		t.Errorf("after recording again: acc[%d] = %v, want %v; %d commands, want 1", n-1, got[n-1], want[n-1], p.Commands())
	}

	// The recorder of a Replay does not submit.
	err = p.Record(func(r *runtime.Recorder) error {
		if err := r.CopyToHost(out, 0, acc, 0, 4); err != nil {
			return err
		}
		return r.Flush()
	})
	if err == nil || p.Recorded() {
		t.Errorf("Flush inside Record: error %v, recorded %v; want an error and no recording", err, p.Recorded())
	}
	if err := p.Reset(ctx); err != nil || p.Recorded() {
		t.Errorf("Reset: %v, recorded %v", err, p.Recorded())
	}
}

// TestReplayStart: two Replays started one after the other without a wait
// run in submission order, the second reading what the first wrote (each
// adds the host's step to acc and copies acc out to its own host buffer),
// while the host rewrites the inputs of a Replay only after waiting for it:
// a pipeline of 2·rounds submissions with no host wait between the Starts.
func TestReplayStart(t *testing.T) {
	d := gputest.Device(t)
	const n, rounds = 257, 5
	acc, err := d.NewTensor(runtime.F32, n)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Free()
	if err := acc.UploadF32(make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	type stage struct {
		p       *runtime.Replay
		in, out *runtime.HostBuffer
		step    *runtime.Tensor
	}
	var st [2]stage
	for i := range st {
		s := &st[i]
		if s.in, err = d.NewHostBuffer(4 * n); err != nil {
			t.Fatal(err)
		}
		defer s.in.Free()
		if s.out, err = d.NewHostBuffer(4 * n); err != nil {
			t.Fatal(err)
		}
		defer s.out.Free()
		if s.step, err = d.NewTensor(runtime.F32, n); err != nil {
			t.Fatal(err)
		}
		defer s.step.Free()
		if s.p, err = d.NewReplay(); err != nil {
			t.Fatal(err)
		}
		defer s.p.Release()
		if err := s.p.Start(context.Background()); err == nil {
			t.Error("Start before Record succeeded")
		}
		err = s.p.Record(func(r *runtime.Recorder) error {
			if err := r.CopyFromHost(s.step, 0, s.in, 0, 4*n); err != nil {
				return err
			}
			addOnes(t, r, acc, s.step)
			return r.CopyToHost(s.out, 0, acc, 0, 4*n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	want := make([]float32, n)
	// The value stage i of round k adds at element j.
	add := func(k, i, j int) float32 { return float32((2*k+i+1)*(j%7+1)) + 0.5 }
	fill := func(k, i int) {
		v := st[i].in.Float32s(n)
		for j := range v {
			v[j] = add(k, i, j)
		}
	}
	fill(0, 0)
	fill(0, 1)
	before := d.Counters()
	if err := st[0].p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st[1].p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if c := d.Counters().Sub(before); c.Submits != 2 || c.Waits != 0 {
		t.Fatalf("two Starts: %d submits, %d host waits; want 2 and 0", c.Submits, c.Waits)
	}
	for k := 0; k < rounds; k++ {
		for i := range st {
			s := &st[i]
			if err := s.p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			for j := range want {
				want[j] += add(k, i, j)
			}
			got := s.out.Float32s(n)
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("round %d, stage %d: acc[%d] = %v, want %v (a stage did not see the other's write)", k, i, j, got[j], want[j])
				}
			}
			if k+1 < rounds { // refill and restart this stage while the other runs
				fill(k+1, i)
				if err := s.p.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if c := d.Counters().Sub(before); c.Submits != 2*rounds || c.Waits != 2*rounds || c.Dispatches != 0 {
		t.Errorf("pipeline: counters %+v; want %d submits and host waits, nothing recorded", c, 2*rounds)
	}
}
