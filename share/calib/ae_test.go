package calib

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAEGradientCheck compares the analytic gradients of every weight and
// bias of a tiny network with central finite differences of the loss.
func TestAEGradientCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const in, hidden, latent, n = 6, 5, 3, 4
	a := newAutoencoder(in, hidden, latent, rng)
	x := make([]float64, n*in)
	for i := range x {
		x[i] = rng.Float64()
	}
	for _, l := range a.layers {
		for i := range l.b {
			l.b[i] = 0.1 * rng.NormFloat64() // non-zero biases exercise their gradients
		}
	}
	for _, l := range a.layers {
		l.zeroGrad()
	}
	a.lossGrad(n, x)
	const eps = 1e-6
	checked := 0
	for li, l := range a.layers {
		for _, p := range []struct {
			name    string
			val, gr []float64
		}{{"w", l.w, l.gw}, {"b", l.b, l.gb}} {
			for i := range p.val {
				orig := p.val[i]
				p.val[i] = orig + eps
				up := a.batchLoss(n, x) / float64(n*in)
				p.val[i] = orig - eps
				down := a.batchLoss(n, x) / float64(n*in)
				p.val[i] = orig
				num := (up - down) / (2 * eps)
				got := p.gr[i]
				if d := math.Abs(num - got); d > 1e-7 && d > 1e-5*math.Max(math.Abs(num), math.Abs(got)) {
					t.Errorf("layer %d %s[%d]: analytic %.10g, numeric %.10g", li, p.name, i, got, num)
				}
				checked++
			}
		}
	}
	if want := (in*hidden + hidden) + (hidden*latent + latent) + (latent*hidden + hidden) + (hidden*in + in); checked != want {
		t.Fatalf("checked %d parameters, want %d", checked, want)
	}
}

// pooledSynth returns packed pooled vectors of synthetic heads.
func pooledSynth(t *testing.T, perFam, grid int, seed uint64) [][]float64 {
	t.Helper()
	maps, _ := synthHeads(perFam, seed)
	out := make([][]float64, len(maps))
	for i, m := range maps {
		p, err := Pool(m.Data, m.NB, PoolOptions{Grid: grid})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = lowerTriangle(p, grid)
	}
	return out
}

func TestAELossFalls(t *testing.T) {
	data := pooledSynth(t, 10, 16, 5)
	var calls []int
	opts := AEOptions{Hidden: 64, Latent: 16, MaxEpochs: 40, Seed: 3}
	a, rep, err := TrainAutoencoder(context.Background(), data, opts, func(e int, tr, va float64) {
		calls = append(calls, e)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.NumVal != len(data)/10 || rep.NumTrain+rep.NumVal != len(data) {
		t.Fatalf("split %d/%d of %d", rep.NumTrain, rep.NumVal, len(data))
	}
	if len(calls) != rep.Epochs || calls[0] != 1 {
		t.Fatalf("progress called for epochs %v, report says %d", calls, rep.Epochs)
	}
	first, last := rep.TrainLoss[0], rep.TrainLoss[len(rep.TrainLoss)-1]
	if !(last < first/4) {
		t.Errorf("training loss %g → %g, want a fall by 4×", first, last)
	}
	if !(rep.BestLoss < rep.ValLoss[0]/2) {
		t.Errorf("validation loss %g → best %g, want a fall by 2×", rep.ValLoss[0], rep.BestLoss)
	}
	// The returned weights are the best epoch's.
	var val [][]float64
	for i := 9; i < len(data); i += 10 {
		val = append(val, data[i])
	}
	got, err := a.Loss(val)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-rep.BestLoss) > 1e-12 {
		t.Errorf("validation loss of returned weights %g, report best %g", got, rep.BestLoss)
	}
	codes, err := a.Encode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != len(data) || len(codes[0]) != 16 {
		t.Fatalf("codes %d×%d", len(codes), len(codes[0]))
	}
	rec, err := a.Reconstruct(data[:3])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec {
		for _, v := range r {
			if v < 0 || v > 1 {
				t.Fatalf("reconstruction %g outside (0,1)", v)
			}
		}
	}
}

func TestAEDeterministic(t *testing.T) {
	data := pooledSynth(t, 5, 16, 9)
	run := func(seed uint64) [][]float64 {
		a, _, err := TrainAutoencoder(context.Background(), data, AEOptions{Hidden: 32, Latent: 8, MaxEpochs: 8, Seed: seed}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.Encode(data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, c := run(1), run(1), run(2)
	same := func(x, y [][]float64) bool {
		return slices.EqualFunc(x, y, func(p, q []float64) bool { return slices.Equal(p, q) })
	}
	if !same(a, b) {
		t.Error("same seed gave different codes")
	}
	if same(a, c) {
		t.Error("different seeds gave identical codes")
	}
}

func TestAEStopping(t *testing.T) {
	data := pooledSynth(t, 4, 8, 2)
	small := AEOptions{Hidden: 8, Latent: 4, MaxEpochs: 500, Seed: 1}
	tests := []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		opts   func(AEOptions) AEOptions
		reason string
		err    error
	}{
		{
			name:   "early stopping",
			opts:   func(o AEOptions) AEOptions { o.Patience, o.MinRelDelta = 3, 0.9; return o },
			reason: StopEarly,
		},
		{
			name:   "max epochs",
			opts:   func(o AEOptions) AEOptions { o.MaxEpochs = 5; return o },
			reason: StopMaxEpochs,
		},
		{
			name:   "time budget",
			opts:   func(o AEOptions) AEOptions { o.MaxDuration = time.Nanosecond; return o },
			reason: StopTimeBudget,
		},
		{
			name: "context deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			},
			reason: StopContextExpiry,
		},
		{
			name: "cancelled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			err: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			o := small
			if tc.opts != nil {
				o = tc.opts(o)
			}
			a, rep, err := TrainAutoencoder(ctx, data, o, nil)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.StopReason != tc.reason {
				t.Fatalf("stop reason %q, want %q (epochs %d)", rep.StopReason, tc.reason, rep.Epochs)
			}
			if a == nil {
				t.Fatal("nil autoencoder")
			}
		})
	}
}

func TestAEOptionErrors(t *testing.T) {
	data := [][]float64{{0.1, 0.2}, {0.3}}
	if _, _, err := TrainAutoencoder(context.Background(), data, AEOptions{}, nil); err == nil {
		t.Error("ragged data accepted")
	}
	if _, _, err := TrainAutoencoder(context.Background(), nil, AEOptions{}, nil); err == nil {
		t.Error("empty data accepted")
	}
	if _, err := NewAutoencoder(4, AEOptions{LearningRate: -1}); err == nil {
		t.Error("negative learning rate accepted")
	}
	a, err := NewAutoencoder(4, AEOptions{Hidden: 3, Latent: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Encode([][]float64{{1, 2}}); err == nil {
		t.Error("wrong input width accepted")
	}
}

// TestAENoValidation trains on fewer than ValEvery maps: no validation set,
// early stopping on the training loss, and a report that marshals to JSON.
func TestAENoValidation(t *testing.T) {
	data := pooledSynth(t, 1, 8, 4)[:5]
	var vals []float64
	_, rep, err := TrainAutoencoder(context.Background(), data, AEOptions{Hidden: 8, Latent: 2, MaxEpochs: 3, Seed: 1}, func(_ int, _, v float64) { vals = append(vals, v) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.NumVal != 0 || rep.ValLoss != nil || rep.BestLoss != slices.Min(rep.TrainLoss) {
		t.Fatalf("report %+v", rep)
	}
	if len(vals) != 3 || !math.IsNaN(vals[0]) {
		t.Fatalf("progress validation losses %v, want NaN", vals)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
}
