package model

import (
	"math"
	"strings"
	"testing"

	"github.com/shareprefill/shareprefill/runtime/gputest"
)

// TestNonFiniteWeights: a NaN or infinite weight, or an f32 weight beyond
// f16's range (it would become Inf on upload), is an error naming the file,
// the tensor and the element, unless AllowNonFinite is set. Before, such a
// model loaded silently and produced garbage.
func TestNonFiniteWeights(t *testing.T) {
	d := gputest.Device(t)
	cfg := &Config{
		Architecture: ArchLlama, HiddenSize: 32, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 8,
		IntermediateSize: 64, VocabSize: 300, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieWordEmbeddings: true, BOSTokenID: 1,
	}
	for _, c := range []struct {
		dt     DType
		tensor string
		value  float32
		want   string
	}{
		{F32, LayerTensorName(1, "mlp.down_proj.weight"), float32(math.NaN()), "not finite"},
		{F32, LayerTensorName(0, "self_attn.q_proj.weight"), 70000, "overflows f16"},
		{F32, LayerTensorName(0, "input_layernorm.weight"), float32(math.Inf(-1)), "not finite"},
		{F16, EmbedTokensName, float32(math.Inf(1)), "not finite"},
		{BF16, LayerTensorName(1, "self_attn.v_proj.weight"), 1e6, "overflows f16"},
		{BF16, LayerTensorName(0, "mlp.gate_proj.weight"), float32(math.NaN()), "not finite"},
	} {
		ts := randomTensors(t, cfg, c.dt)
		const at = 17
		for i := range ts {
			if ts[i].Name == c.tensor {
				setElement(ts[i], at, c.value)
			}
		}
		ck := checkpointOf(t, ts)
		_, err := NewEngine(d, cfg, ck, EngineOptions{})
		if err == nil || !strings.Contains(err.Error(), c.tensor) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "element 17") {
			t.Errorf("%s %s[17] = %v: %v; want an error naming the tensor, the element and %q", c.dt, c.tensor, c.value, err, c.want)
		}
		e, err := NewEngine(d, cfg, ck, EngineOptions{AllowNonFinite: true})
		if err != nil {
			t.Errorf("%s %s[17] = %v with AllowNonFinite: %v", c.dt, c.tensor, c.value, err)
			continue
		}
		e.Close()
	}
	// The largest finite f16 value and its rounding neighbours pass.
	ts := randomTensors(t, cfg, F32)
	setElement(ts[0], 0, 65504)
	setElement(ts[0], 1, -65519)
	e, err := NewEngine(d, cfg, checkpointOf(t, ts), EngineOptions{})
	if err != nil {
		t.Fatalf("weights of ±65504..65519 (finite in f16): %v", err)
	}
	e.Close()
}

// randomTensors makes every tensor of cfg with small values in dtype dt.
func randomTensors(t *testing.T, cfg *Config, dt DType) []TensorInfo {
	t.Helper()
	var ts []TensorInfo
	for _, s := range cfg.ExpectedTensors() {
		n := 1
		for _, x := range s.Shape {
			n *= x
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7-3) * 0.01
		}
		b, err := Float32Bytes(v, dt)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, TensorInfo{Name: s.Name, File: "weights.safetensors", DType: dt, Shape: s.Shape, Data: b})
	}
	return ts
}

// setElement stores x at element i of t (in t's dtype).
func setElement(t TensorInfo, i int, x float32) {
	b, err := Float32Bytes([]float32{x}, t.DType)
	if err != nil {
		panic(err)
	}
	copy(t.Data[i*t.DType.Size():], b)
}

// checkpointOf writes ts into one in-memory safetensors checkpoint.
func checkpointOf(t *testing.T, ts []TensorInfo) *Checkpoint {
	t.Helper()
	var buf strings.Builder
	if err := WriteSafetensors(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := OpenCheckpointBytes("weights.safetensors", []byte(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	return ck
}
