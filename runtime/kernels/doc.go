// Package kernels holds the compute kernels of shareprefill's forward pass,
// each a thin Go function that picks a shader variant for the device, checks
// shapes and records a dispatch on a runtime.Recorder. Every kernel has a
// pure-Go reference in ref.go that the tests compare against.
//
// Kernels record; they do not run. Call Recorder.Submit (or use
// Device.Run) to execute what was recorded.
package kernels
