package kernels

import (
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
	"github.com/shareprefill/shareprefill/runtime/gputest"
)

func TestEmbed(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const v = 50
	for _, dt := range opDTypes {
		for _, m := range []int{1, 3, 17} {
			for _, h := range []int{1, 7, 64, 300} {
				tv := opRound(dt, gputest.Normal(rng, v*h, 1))
				ids := make([]int32, m)
				for i := range ids {
					ids[i] = int32(rng.IntN(v))
				}
				ids[0] = v - 1
				if m > 2 {
					ids[1], ids[2] = 0, ids[0] // first row, last row, repeat
				}
				if err := ValidateIDs(ids, v); err != nil {
					t.Fatal(err)
				}
				table := opUp(t, d, dt, tv, v, h)
				idt := opUpI32(t, d, ids)
				out := opNew(t, d, runtime.F32, m, h)
				opRun(t, d, func(r *runtime.Recorder) error { return Embed(r, out, table, idt) }, out)
				got, err := out.DownloadF32()
				if err != nil {
					t.Fatal(err)
				}
				if e := gputest.RelErr(got, RefEmbed(tv, ids, h)); e != 0 {
					t.Errorf("embed %s M=%d H=%d: relative error %.3g, want exact", dt, m, h, e)
				}
			}
		}
	}
}

func TestEmbedErrors(t *testing.T) {
	if ValidateIDs([]int32{0, 4, 5}, 5) == nil || ValidateIDs([]int32{-1}, 5) == nil {
		t.Error("ValidateIDs accepted an out-of-range id")
	}
	if err := ValidateIDs([]int32{0, 4}, 5); err != nil {
		t.Error(err)
	}
	d := gputest.Device(t)
	r, err := d.NewRecorder()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	table := opNew(t, d, runtime.F16, 10, 8)
	ids := opNew(t, d, runtime.I32, 3)
	out := opNew(t, d, runtime.F32, 3, 8)
	for name, err := range map[string]error{
		"rows vs ids":  Embed(r, opNew(t, d, runtime.F32, 4, 8), table, ids),
		"H mismatch":   Embed(r, opNew(t, d, runtime.F32, 3, 5), table, ids),
		"ids f32":      Embed(r, out, table, opNew(t, d, runtime.F32, 3)),
		"out f16":      Embed(r, opNew(t, d, runtime.F16, 3, 8), table, ids),
		"table 2D bad": Embed(r, out, opNew(t, d, runtime.F16, 8, 10), ids),
	} {
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
