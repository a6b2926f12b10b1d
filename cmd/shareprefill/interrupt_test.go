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

// TestRunStopsAtContextEnd: running out of context while generating is a
// normal stop — exit 0, the text and the summary, which says why — not an
// error exit that loses the summary.
func TestRunStopsAtContextEnd(t *testing.T) {
	code, out, errOut := runCLI(t, "run", "--context", "16", "--max-tokens", "100", "--temp", "0")
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, errOut)
	}
	if !strings.HasPrefix(out, "Once upon a time") || !strings.Contains(errOut, "stopped: the context of 16 tokens is full") || !strings.Contains(errOut, "generated 12 tokens") {
		t.Errorf("stdout %q\nstderr:\n%s\nwant the story, 12 generated tokens (5 prompt + 11 fed back fill 16) and the reason", out, errOut)
	}
}
