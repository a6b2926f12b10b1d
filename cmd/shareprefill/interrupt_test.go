package main

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestInterruptTwice: the first Ctrl-C cancels the work and says so at once;
// the second exits with status 130 without waiting (it used to be ignored).
func TestInterruptTwice(t *testing.T) {
	sig := make(chan os.Signal, 2)
	done := make(chan struct{})
	var mu sync.Mutex
	var out strings.Builder
	cancelled := make(chan struct{})
	exited := make(chan int, 1)
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	go watchInterrupts(sig, done, func() { close(cancelled) }, w, func(code int) { exited <- code })
	sig <- os.Interrupt
	select {
	case <-cancelled:
	case <-time.After(100 * time.Millisecond):
		t.Fatal("the first interrupt did not cancel within 100 ms")
	}
	time.Sleep(10 * time.Millisecond)
	mu.Lock()
	if !strings.Contains(out.String(), "Ctrl-C again") {
		t.Errorf("first interrupt printed %q, want a note on how to quit at once", out.String())
	}
	mu.Unlock()
	sig <- os.Interrupt
	select {
	case code := <-exited:
		if code != 130 {
			t.Errorf("second interrupt exited with %d, want 130", code)
		}
	case <-time.After(100 * time.Millisecond):
		t.Fatal("the second interrupt did not exit within 100 ms")
	}
	close(done)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
