package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws a one-line progress bar on a terminal; elsewhere it
// draws nothing, so logs and pipes stay clean.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	stage string
	last  time.Time
	drawn bool
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, on: isTerminal(w)}
}

// update implements the (stage, done, total) progress callbacks.
func (p *progressBar) update(stage string, done, total int) {
	if p == nil || !p.on || total <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if stage == p.stage && done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.stage, p.last = stage, now
	const width = 30
	fill := done * width / total
	fmt.Fprintf(p.w, "\r\033[K%-16s [%s%s] %d/%d", stage, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, total)
	p.drawn = true
	if done >= total {
		p.clearLocked()
	}
}

func (p *progressBar) clearLocked() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// clear removes the bar before other output.
func (p *progressBar) clear() {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	p.clearLocked()
	p.mu.Unlock()
}
