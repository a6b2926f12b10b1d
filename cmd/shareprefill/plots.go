//go:build plots

package main

import (
	"github.com/shareprefill/shareprefill/bench/harness"
	"github.com/shareprefill/shareprefill/bench/harness/plots"
)

// plotsHelp is the help of the benchmarks' --plots flag.
const plotsHelp = "draw PNG plots into this directory"

// plotsUnavailable says why this build cannot draw the benchmarks' PNG
// plots: nil, this being the bench build (tag plots), which links gonum/plot.
func plotsUnavailable() error { return nil }

// drawPlots draws specs into dir (plots.DrawAll).
func drawPlots(dir string, specs []harness.PlotSpec) ([]string, error) {
	return plots.DrawAll(dir, specs)
}
