//go:build !plots

package main

import (
	"errors"

	"github.com/shareprefill/shareprefill/bench/harness"
)

// plotsHelp is the help of the benchmarks' --plots flag.
const plotsHelp = "draw PNG plots into this directory (only in the bench build: make build-bench, or go build -tags plots)"

// plotsUnavailable says why this build cannot draw the benchmarks' PNG
// plots: the product build does not link a plotting library; the bench
// build (tag plots) does.
func plotsUnavailable() error {
	return errors.New("this shareprefill was built without PNG plots; build the bench binary (make build-bench, or go build -tags plots ./cmd/shareprefill), which links gonum/plot, or leave --plots out (the JSON report holds every number)")
}

// drawPlots fails with plotsUnavailable's error (outFlags.check refuses
// --plots before any work).
func drawPlots(string, []harness.PlotSpec) ([]string, error) {
	return nil, plotsUnavailable()
}
