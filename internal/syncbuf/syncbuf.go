// Package syncbuf is test support for output that is read while it is
// still being written: a running process's stdout or stderr (exec.Cmd
// copies a non-file writer's data from a goroutine of its own until Wait
// returns) or a logger that goroutines write to. A bytes.Buffer read there
// is a data race; a Buffer is not. Tests that poll such output use a
// Buffer, and WaitFor rather than a loop of their own.
package syncbuf

import (
	"bytes"
	"sync"
	"time"
)

// Buffer is an io.Writer whose content may be read at any time, from any
// goroutine. The zero value is an empty buffer ready to use; a Buffer
// must not be copied after first use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed by the next Write; nil when no one waits
}

// Write appends p and wakes WaitFor.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return n, err
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Contains reports whether what was written so far contains s.
func (b *Buffer) Contains(s string) bool {
	ok, _ := b.contains(s, false)
	return ok
}

// WaitFor waits until what was written contains s, for at most timeout,
// and reports whether it does.
func (b *Buffer) WaitFor(s string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ok, changed := b.contains(s, true)
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return b.Contains(s)
		}
	}
}

// contains says whether the content contains s and, when wait is set and
// it does not, returns a channel the next Write closes.
func (b *Buffer) contains(s string, wait bool) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes.Contains(b.b.Bytes(), []byte(s)) {
		return true, nil
	}
	if !wait {
		return false, nil
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return false, b.changed
}
