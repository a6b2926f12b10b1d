package calib

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestFullScaleDefaults runs the default pipeline (grid 32, hidden 256,
// latent 64, 200 epochs) on 1020 synthetic heads and logs timings. It is
// skipped unless CALIB_FULL is set, because it takes about a minute.
func TestFullScaleDefaults(t *testing.T) {
	if os.Getenv("CALIB_FULL") == "" {
		t.Skip("set CALIB_FULL=1 to run the full-scale calibration (about a minute)")
	}
	maps, truth := synthHeads(170, 1)
	t0 := time.Now()
	res, err := Calibrate(context.Background(), maps, Options{AE: AEOptions{Seed: 1}, TargetClusters: numFamilies}, func(e int, a, b float64) {
		if e%10 == 0 {
			t.Logf("epoch %d %.5f %.5f %v", e, a, b, time.Since(t0))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ari, _ := AdjustedRandIndex(truthLabels(res, truth), res.Labels)
	t.Logf("total %v epochs %d best %d reason %s ari %.3f", time.Since(t0), res.Training.Epochs, res.Training.BestEpoch, res.Training.StopReason, ari)
}
