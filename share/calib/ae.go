package calib

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// AEOptions configures the autoencoder and its training. The zero value of
// every field selects the default given in its comment.
//
// Architecture (a dense MLP, not the conv net of the third-party
// description; docs/algorithm.md#representation):
//
//	input (grid(grid+1)/2 lower-triangle cells) → Hidden, ReLU → Latent (linear code)
//	→ Hidden, ReLU → input, sigmoid.
//
// The loss is the mean squared reconstruction error and the optimiser Adam.
type AEOptions struct {
	Hidden       int           // hidden width of encoder and decoder; default 256
	Latent       int           // code dimension; default 64
	LearningRate float64       // Adam step size; default 1e-3
	BatchSize    int           // mini-batch size; default 32
	MaxEpochs    int           // epoch limit; default 200 (about 45 s for 1000 maps at grid 32 on 2 idle cores)
	Patience     int           // epochs without improvement before stopping; default 30
	MinRelDelta  float64       // an epoch improves if loss < best·(1−MinRelDelta); default 1e-3, negative means 0
	ValEvery     int           // every ValEvery-th sample (index%ValEvery == ValEvery−1) is held out; default 10, negative disables
	MaxDuration  time.Duration // wall-clock budget for training; 0 means none
	Seed         uint64        // seed of the weight initialisation and of the shuffling
}

// DefaultAEOptions returns the defaults documented on AEOptions.
func DefaultAEOptions() AEOptions { return AEOptions{}.withDefaults() }

func (o AEOptions) withDefaults() AEOptions {
	if o.Hidden == 0 {
		o.Hidden = 256
	}
	if o.Latent == 0 {
		o.Latent = 64
	}
	if o.LearningRate == 0 {
		o.LearningRate = 1e-3
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.MaxEpochs == 0 {
		o.MaxEpochs = 200
	}
	if o.Patience == 0 {
		o.Patience = 30
	}
	if o.MinRelDelta == 0 {
		o.MinRelDelta = 1e-3
	} else if o.MinRelDelta < 0 {
		o.MinRelDelta = 0
	}
	if o.ValEvery == 0 {
		o.ValEvery = 10
	}
	return o
}

func (o AEOptions) validate() error {
	switch {
	case o.Hidden < 1 || o.Latent < 1:
		return fmt.Errorf("autoencoder: hidden %d and latent %d must be ≥ 1", o.Hidden, o.Latent)
	case !(o.LearningRate > 0):
		return fmt.Errorf("autoencoder: learning rate %g must be > 0", o.LearningRate)
	case o.BatchSize < 1 || o.MaxEpochs < 1 || o.Patience < 1:
		return fmt.Errorf("autoencoder: batch %d, max epochs %d and patience %d must be ≥ 1", o.BatchSize, o.MaxEpochs, o.Patience)
	case o.MaxDuration < 0:
		return fmt.Errorf("autoencoder: max duration %v must be ≥ 0", o.MaxDuration)
	}
	return nil
}

// ProgressFunc is called once per finished epoch with the mean training loss
// of that epoch and the validation loss (NaN when there is no validation
// set). It lets a CLI draw a progress bar; it must not retain its arguments
// beyond the call and should return quickly.
type ProgressFunc func(epoch int, trainLoss, valLoss float64)

type activation int

const (
	actLinear activation = iota
	actReLU
	actSigmoid
)

// dense is one fully connected layer y = act(x·Wᵀ + b) with its gradient and
// Adam state. W is out×in, row-major.
type dense struct {
	in, out int
	act     activation
	w, b    []float64
	gw, gb  []float64
	mw, vw  []float64
	mb, vb  []float64
}

func newDense(in, out int, act activation, rng *rand.Rand) *dense {
	d := &dense{
		in: in, out: out, act: act,
		w: make([]float64, in*out), b: make([]float64, out),
		gw: make([]float64, in*out), gb: make([]float64, out),
		mw: make([]float64, in*out), vw: make([]float64, in*out),
		mb: make([]float64, out), vb: make([]float64, out),
	}
	// He-uniform for ReLU layers, Glorot-uniform otherwise; zero biases.
	lim := math.Sqrt(6 / float64(in+out))
	if act == actReLU {
		lim = math.Sqrt(6 / float64(in))
	}
	for i := range d.w {
		d.w[i] = (2*rng.Float64() - 1) * lim
	}
	return d
}

func general(rows, cols int, data []float64) blas64.General {
	return blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: data[:rows*cols]}
}

// forward computes out = act(x·Wᵀ + b) for a batch of n rows.
func (d *dense) forward(n int, x, out []float64) {
	for i := range n {
		copy(out[i*d.out:(i+1)*d.out], d.b)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, general(n, d.in, x), general(d.out, d.in, d.w), 1, general(n, d.out, out))
	switch d.act {
	case actReLU:
		for i, v := range out[:n*d.out] {
			if v < 0 {
				out[i] = 0
			}
		}
	case actSigmoid:
		for i, v := range out[:n*d.out] {
			out[i] = 1 / (1 + math.Exp(-v))
		}
	}
}

// backward takes dy = ∂L/∂y for the layer's activated output y (overwritten
// with ∂L/∂z), accumulates the parameter gradients, and writes ∂L/∂x into dx
// when dx is non-nil.
func (d *dense) backward(n int, x, y, dy, dx []float64) {
	switch d.act {
	case actReLU:
		for i, v := range y[:n*d.out] {
			if v <= 0 {
				dy[i] = 0
			}
		}
	case actSigmoid:
		for i, v := range y[:n*d.out] {
			dy[i] *= v * (1 - v)
		}
	}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, general(n, d.out, dy), general(n, d.in, x), 1, general(d.out, d.in, d.gw))
	for i := range n {
		for j, v := range dy[i*d.out : (i+1)*d.out] {
			d.gb[j] += v
		}
	}
	if dx != nil {
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, general(n, d.out, dy), general(d.out, d.in, d.w), 0, general(n, d.in, dx))
	}
}

func (d *dense) zeroGrad() {
	clear(d.gw)
	clear(d.gb)
}

// adam applies one Adam step (β1 0.9, β2 0.999, ε 1e-8) at step t ≥ 1.
func (d *dense) adam(lr float64, t int) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	c1 := 1 - math.Pow(b1, float64(t))
	c2 := 1 - math.Pow(b2, float64(t))
	step := func(p, g, m, v []float64) {
		for i := range p {
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			p[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + eps)
		}
	}
	step(d.w, d.gw, d.mw, d.vw)
	step(d.b, d.gb, d.mb, d.vb)
}

// Autoencoder is a trained (or freshly initialised) dense autoencoder. Its
// first two layers are the encoder, the last two the decoder. It is not
// safe for concurrent use.
type Autoencoder struct {
	In, Hidden, Latent int
	layers             []*dense
	acts               [][]float64 // per-layer activations of the current batch
	grads              [][]float64 // per-layer output gradients of the current batch
	cap                int         // batch capacity of acts and grads
	step               int         // Adam step counter
}

// NewAutoencoder returns an autoencoder for inputs of length in, with
// weights drawn from a PCG generator seeded with opts.Seed.
func NewAutoencoder(in int, opts AEOptions) (*Autoencoder, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if in < 1 {
		return nil, fmt.Errorf("autoencoder: input size %d must be ≥ 1", in)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed_ae))
	return newAutoencoder(in, opts.Hidden, opts.Latent, rng), nil
}

func newAutoencoder(in, hidden, latent int, rng *rand.Rand) *Autoencoder {
	return &Autoencoder{
		In: in, Hidden: hidden, Latent: latent,
		layers: []*dense{
			newDense(in, hidden, actReLU, rng),
			newDense(hidden, latent, actLinear, rng),
			newDense(latent, hidden, actReLU, rng),
			newDense(hidden, in, actSigmoid, rng),
		},
	}
}

func (a *Autoencoder) ensure(n int) {
	if n <= a.cap {
		return
	}
	a.acts = make([][]float64, len(a.layers))
	a.grads = make([][]float64, len(a.layers))
	for i, l := range a.layers {
		a.acts[i] = make([]float64, n*l.out)
		a.grads[i] = make([]float64, n*l.out)
	}
	a.cap = n
}

// forwardBatch runs the network on n packed rows x (n×In) and returns the
// reconstruction (n×In, owned by a).
func (a *Autoencoder) forwardBatch(n int, x []float64) []float64 {
	a.ensure(n)
	in := x
	for i, l := range a.layers {
		l.forward(n, in, a.acts[i])
		in = a.acts[i]
	}
	return in[:n*a.In]
}

// lossGrad runs forward and backward on n rows, accumulating parameter
// gradients of the MSE loss (mean over all n·In elements), and returns the
// loss.
func (a *Autoencoder) lossGrad(n int, x []float64) float64 {
	y := a.forwardBatch(n, x)
	last := len(a.layers) - 1
	dy := a.grads[last][:n*a.In]
	scale := 2 / float64(n*a.In)
	loss := 0.0
	for i, v := range y {
		e := v - x[i]
		loss += e * e
		dy[i] = scale * e
	}
	for i := last; i >= 0; i-- {
		in := x
		var dx []float64
		if i > 0 {
			in = a.acts[i-1]
			dx = a.grads[i-1]
		}
		a.layers[i].backward(n, in, a.acts[i], a.grads[i], dx)
	}
	return loss / float64(n*a.In)
}

// batchLoss returns the summed squared error of n rows (no gradients).
func (a *Autoencoder) batchLoss(n int, x []float64) float64 {
	y := a.forwardBatch(n, x)
	s := 0.0
	for i, v := range y {
		e := v - x[i]
		s += e * e
	}
	return s
}

const evalBatch = 128

// pack copies rows idx of data into buf (len(idx)×in).
func pack(buf []float64, data [][]float64, idx []int, in int) []float64 {
	buf = buf[:len(idx)*in]
	for k, i := range idx {
		copy(buf[k*in:(k+1)*in], data[i])
	}
	return buf
}

// Loss returns the mean squared reconstruction error over all rows of x.
func (a *Autoencoder) Loss(x [][]float64) (float64, error) {
	if err := a.checkRows(x); err != nil {
		return 0, err
	}
	return a.lossOf(x, seq(len(x))), nil
}

func (a *Autoencoder) lossOf(x [][]float64, idx []int) float64 {
	if len(idx) == 0 {
		return math.NaN()
	}
	buf := make([]float64, min(evalBatch, len(idx))*a.In)
	s := 0.0
	for lo := 0; lo < len(idx); lo += evalBatch {
		part := idx[lo:min(lo+evalBatch, len(idx))]
		s += a.batchLoss(len(part), pack(buf, x, part, a.In))
	}
	return s / float64(len(idx)*a.In)
}

func (a *Autoencoder) checkRows(x [][]float64) error {
	for i, r := range x {
		if len(r) != a.In {
			return fmt.Errorf("autoencoder: row %d has %d values, want %d", i, len(r), a.In)
		}
	}
	return nil
}

// Encode returns the Latent-dimensional code of every row of x.
func (a *Autoencoder) Encode(x [][]float64) ([][]float64, error) {
	return a.run(x, 1)
}

// Reconstruct returns the decoder output for every row of x.
func (a *Autoencoder) Reconstruct(x [][]float64) ([][]float64, error) {
	return a.run(x, len(a.layers)-1)
}

// run returns the activations of layer upto for every row of x.
func (a *Autoencoder) run(x [][]float64, upto int) ([][]float64, error) {
	if err := a.checkRows(x); err != nil {
		return nil, err
	}
	width := a.layers[upto].out
	out := make([][]float64, len(x))
	buf := make([]float64, min(evalBatch, max(len(x), 1))*a.In)
	all := seq(len(x))
	for lo := 0; lo < len(x); lo += evalBatch {
		part := all[lo:min(lo+evalBatch, len(x))]
		a.forwardBatch(len(part), pack(buf, x, part, a.In))
		for k := range part {
			out[lo+k] = append([]float64(nil), a.acts[upto][k*width:(k+1)*width]...)
		}
	}
	return out, nil
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// snapshot returns a copy of all weights and biases; restore puts them back.
func (a *Autoencoder) snapshot() [][]float64 {
	s := make([][]float64, 0, 2*len(a.layers))
	for _, l := range a.layers {
		s = append(s, append([]float64(nil), l.w...), append([]float64(nil), l.b...))
	}
	return s
}

func (a *Autoencoder) restore(s [][]float64) {
	for i, l := range a.layers {
		copy(l.w, s[2*i])
		copy(l.b, s[2*i+1])
	}
}

// Stop reasons reported in TrainReport.StopReason.
const (
	StopMaxEpochs     = "max_epochs"
	StopEarly         = "early_stopping"
	StopTimeBudget    = "time_budget"
	StopContextExpiry = "context_deadline"
)

// TrainReport summarises a training run. The returned autoencoder holds the
// weights of BestEpoch.
type TrainReport struct {
	Epochs     int           `json:"epochs"`      // epochs run (the last may be partial when the time budget ran out)
	BestEpoch  int           `json:"best_epoch"`  // 1-based epoch whose weights were kept
	BestLoss   float64       `json:"best_loss"`   // monitored loss at BestEpoch (validation, or training without a validation set)
	TrainLoss  []float64     `json:"train_loss"`  // mean training loss per epoch
	ValLoss    []float64     `json:"val_loss"`    // validation loss per epoch; nil without a validation set (JSON has no NaN)
	NumTrain   int           `json:"num_train"`   // training samples
	NumVal     int           `json:"num_val"`     // validation samples
	StopReason string        `json:"stop_reason"` // one of the Stop* constants
	Duration   time.Duration `json:"duration_ns"` // wall-clock training time
}

// TrainAutoencoder trains an autoencoder on data (every row of equal length,
// values in [0,1]). Every opts.ValEvery-th row (indices ValEvery−1,
// 2·ValEvery−1, …) is held out for validation when there are at least
// ValEvery rows; early stopping monitors the validation loss, or the
// training loss without a validation set, and the weights of the best epoch
// are returned.
//
// Training is deterministic for a fixed seed: the shuffles come from the
// seeded generator and gonum's matrix products sum in a fixed order. Only the
// time budget (opts.MaxDuration, or a ctx deadline) can make two runs differ;
// both stop training gracefully and keep the best weights so far. A
// cancelled ctx (context.Canceled) aborts with an error.
func TrainAutoencoder(ctx context.Context, data [][]float64, opts AEOptions, progress ProgressFunc) (*Autoencoder, *TrainReport, error) {
	start := time.Now()
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, nil, err
	}
	if len(data) == 0 {
		return nil, nil, errors.New("autoencoder: no training data")
	}
	in := len(data[0])
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed_ae))
	a := newAutoencoder(in, opts.Hidden, opts.Latent, rng)
	if err := a.checkRows(data); err != nil {
		return nil, nil, err
	}
	var train, val []int
	for i := range data {
		if opts.ValEvery > 0 && len(data) >= opts.ValEvery && i%opts.ValEvery == opts.ValEvery-1 {
			val = append(val, i)
		} else {
			train = append(train, i)
		}
	}
	rep := &TrainReport{NumTrain: len(train), NumVal: len(val), StopReason: StopMaxEpochs, BestLoss: math.Inf(1)}
	var deadline time.Time
	if opts.MaxDuration > 0 {
		deadline = start.Add(opts.MaxDuration)
	}
	best := a.snapshot()
	bs := min(opts.BatchSize, len(train))
	buf := make([]float64, bs*in)
	sinceBest := 0
	for epoch := 1; epoch <= opts.MaxEpochs; epoch++ {
		rng.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
		sum, seen := 0.0, 0
		stop := ""
		for lo := 0; lo < len(train); lo += bs {
			if err := ctx.Err(); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					stop = StopContextExpiry
					break
				}
				return nil, nil, fmt.Errorf("autoencoder: training cancelled in epoch %d: %w", epoch, err)
			}
			if !deadline.IsZero() && time.Now().After(deadline) {
				stop = StopTimeBudget
				break
			}
			part := train[lo:min(lo+bs, len(train))]
			for _, l := range a.layers {
				l.zeroGrad()
			}
			loss := a.lossGrad(len(part), pack(buf, data, part, in))
			a.step++
			for _, l := range a.layers {
				l.adam(opts.LearningRate, a.step)
			}
			sum += loss * float64(len(part))
			seen += len(part)
		}
		if seen == 0 { // the budget ran out before the first batch of this epoch
			rep.StopReason = stop
			break
		}
		trainLoss := sum / float64(seen)
		valLoss := a.lossOf(data, val)
		rep.Epochs = epoch
		rep.TrainLoss = append(rep.TrainLoss, trainLoss)
		if len(val) > 0 {
			rep.ValLoss = append(rep.ValLoss, valLoss)
		}
		if progress != nil {
			progress(epoch, trainLoss, valLoss)
		}
		monitored := valLoss
		if len(val) == 0 {
			monitored = trainLoss
		}
		if math.IsNaN(monitored) || math.IsInf(monitored, 0) {
			return nil, nil, fmt.Errorf("autoencoder: loss diverged (%g) in epoch %d", monitored, epoch)
		}
		if monitored < rep.BestLoss*(1-opts.MinRelDelta) || rep.BestEpoch == 0 {
			rep.BestLoss, rep.BestEpoch = monitored, epoch
			best = a.snapshot()
			sinceBest = 0
		} else {
			sinceBest++
		}
		if stop != "" {
			rep.StopReason = stop
			break
		}
		if sinceBest >= opts.Patience {
			rep.StopReason = StopEarly
			break
		}
	}
	a.restore(best)
	rep.Duration = time.Since(start)
	return a, rep, nil
}
