// Package gputest has helpers for tests that run kernels on a real Vulkan
// device (lavapipe in CI): opening the device, random inputs and relative
// errors.
//
// Without a Vulkan device the tests skip with a message, unless
// SHAREPREFILL_REQUIRE_VULKAN=1 (set by `make test` and CI), where they fail.
package gputest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shareprefill/shareprefill/runtime"
)

// shared is the process-wide device of Device: one per test binary, like an
// application, instead of one per test (NVIDIA's driver refused new
// instances after a few dozen create/destroy cycles in one process).
var shared struct {
	once sync.Once
	d    *runtime.Device
	err  error
}

// Device returns the default device (or SHAREPREFILL_DEVICE), opened once
// per test binary and shared by the tests; tests must not Close it (use
// Open for a device of their own, e.g. one they will break).
//
// With SHAREPREFILL_VK_VALIDATION=1 the Khronos validation layer checks every
// Vulkan call, and the test fails at its end when the layer reported any
// error during it.
func Device(tb testing.TB) *runtime.Device {
	tb.Helper()
	shared.once.Do(func() { shared.d, shared.err = runtime.Open(runtime.Options{}) })
	if shared.err != nil {
		if os.Getenv("SHAREPREFILL_REQUIRE_VULKAN") == "1" {
			tb.Fatalf("no Vulkan device (SHAREPREFILL_REQUIRE_VULKAN=1): %v", shared.err)
		}
		tb.Skipf("skipping: no Vulkan device: %v", shared.err)
	}
	d := shared.d
	if errs := d.ValidationErrors(); len(errs) > 0 {
		tb.Logf("validation errors of earlier tests, not this one's:\n%s", strings.Join(errs, "\n"))
	}
	tb.Cleanup(func() {
		if errs := d.ValidationErrors(); len(errs) > 0 {
			tb.Errorf("Vulkan validation layer reported %d error(s):\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
	return d
}

// Open opens a device of the test's own with options (e.g. a small
// StagingSize or MaxAlloc) and closes it when the test ends, failing the test
// on validation errors (including objects still alive at vkDestroyDevice).
func Open(tb testing.TB, opts runtime.Options) *runtime.Device {
	tb.Helper()
	d, err := runtime.Open(opts)
	if err != nil {
		if os.Getenv("SHAREPREFILL_REQUIRE_VULKAN") == "1" {
			tb.Fatalf("no Vulkan device (SHAREPREFILL_REQUIRE_VULKAN=1): %v", err)
		}
		tb.Skipf("skipping: no Vulkan device: %v", err)
	}
	tb.Cleanup(func() { closeAndCheck(tb, d) })
	return d
}

// closeAndCheck closes d and fails tb with the validation layer's errors.
func closeAndCheck(tb testing.TB, d *runtime.Device) {
	errs := d.ValidationErrors() // claims the errors before Close
	d.Close()
	errs = append(errs, d.ValidationErrors()...)
	if warns := d.ValidationWarnings(); len(warns) > 0 {
		if len(warns) > 10 {
			warns = append(warns[:10], fmt.Sprintf("(%d more)", len(warns)-10))
		}
		tb.Logf("Vulkan validation layer warnings:\n%s", strings.Join(warns, "\n"))
	}
	if len(errs) > 0 {
		tb.Errorf("Vulkan validation layer reported %d error(s):\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// SeedEnv is the variable that fixes the seed of Rand.
const SeedEnv = "SHAREPREFILL_SEED"

// Rand returns a generator with a fresh random seed, or with the seed in
// $SHAREPREFILL_SEED (a decimal uint64) when it is set; the seed is logged
// so that a failure can be reproduced. A malformed SHAREPREFILL_SEED fails
// the test.
func Rand(tb testing.TB) *rand.Rand {
	tb.Helper()
	seed, err := envSeed()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("seed %d (rerun with %s=%d)", seed, SeedEnv, seed)
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

// envSeed returns the seed of $SHAREPREFILL_SEED, or a fresh random one when
// the variable is unset or empty.
func envSeed() (uint64, error) {
	s := os.Getenv(SeedEnv)
	if s == "" {
		return rand.Uint64(), nil
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a decimal uint64: %w", SeedEnv, s, err)
	}
	return seed, nil
}

// Normal returns n values drawn from N(0, scale²).
func Normal(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// RelErr is ‖got−want‖/‖want‖ (‖·‖ the L2 norm). Any NaN or Inf in got, or a
// length mismatch, gives +Inf, so unwritten (poisoned) outputs fail.
func RelErr(got []float32, want []float64) float64 {
	return ScaledErr(got, want, want)
}

// ScaledErr is ‖got−want‖/‖scale‖ (‖·‖ the L2 norm; ‖got−want‖ where scale
// is all zero). With scale the reference computed on the inputs'
// magnitudes (Σ|terms| per output) it is the bound a float dot product's
// rounding obeys, which ‖want‖ is not when the terms cancel. Any NaN or Inf
// in got, or a length mismatch, gives +Inf.
func ScaledErr(got []float32, want, scale []float64) float64 {
	if len(got) != len(want) || len(scale) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i, g := range got {
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
			return math.Inf(1)
		}
		d := float64(g) - want[i]
		num += d * d
		den += scale[i] * scale[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// F64 widens float32 values.
func F64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// FirstBitDiff is the first index where a and b differ in bits (0 when
// their lengths differ, −1 when they are identical).
func FirstBitDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}
