// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kvmFailureRE matches what QEMU prints when KVM cannot run the guest. Seen
// on nested-virtualisation hosts: "failed to set MSR 0x10a" (QEMU exits),
// and "KVM internal error. Suberror: 1 ... emulation failure" (QEMU pauses
// the guest and never exits). The rest are QEMU's other KVM start-up and
// vCPU-entry errors.
var kvmFailureRE = regexp.MustCompile(`(?i)KVM internal error|emulation failure|failed to set MSR|` +
	`KVM: entry failed|kvm run failed|failed to initiali[sz]e kvm|Could not access KVM kernel module|` +
	`kvm_init_vcpu failed`)

// wedgeRE matches the kernel log lines after which a guest rarely finishes
// its command: a panic that did not reboot, a task stuck in the kernel,
// a CPU that stopped scheduling.
var wedgeRE = regexp.MustCompile(`Kernel panic - not syncing|blocked for more than|soft lockup|hard LOCKUP`)

// watcher reads vng's output as it streams and signals the first guest
// kernel line (the boot is alive), the command's start, the first KVM
// failure line, and the first kernel line that says the guest is wedged.
type watcher struct {
	alive       chan struct{} // closed at the first kernel log line
	aliveOnce   sync.Once
	started     chan struct{} // closed at the first line holding startMarker
	startedOnce sync.Once
	startMarker string
	lastLine    atomic.Int64 // when the last line came, in Unix ns
	kvmFail     chan string  // receives the first KVM failure line
	failOnce    sync.Once
	wedged      chan string // receives the first wedge line
	wedgedOnce  sync.Once
}

// newWatcher watches for @startMarker (Config.startMarker) as the command's start.
func newWatcher(startMarker string) *watcher {
	return &watcher{alive: make(chan struct{}), started: make(chan struct{}), startMarker: startMarker,
		kvmFail: make(chan string, 1), wedged: make(chan string, 1)}
}

// stream returns a writer for one of vng's outputs; each keeps its own
// partial line. QEMU may pause right after an error with no newline yet,
// so a KVM failure is judged before its line ends.
func (w *watcher) stream() io.Writer {
	return &lineWriter{fn: w.line, early: kvmFailureRE.Match}
}

func (w *watcher) line(s string) {
	w.lastLine.Store(time.Now().UnixNano())
	s = strings.TrimSpace(s)
	if strings.Contains(s, w.startMarker) {
		w.startedOnce.Do(func() { close(w.started) })
	}
	if kernelLineRE.MatchString(s) {
		w.aliveOnce.Do(func() { close(w.alive) })
		if wedgeRE.MatchString(s) && !isBenign(s) {
			w.wedgedOnce.Do(func() { w.wedged <- s })
		}
		return // the guest's own log is not QEMU's verdict on KVM
	}
	if kvmFailureRE.MatchString(s) {
		w.failOnce.Do(func() { w.kvmFail <- s })
	}
}

// quietFor is how long no line has come, or 0 before the first.
func (w *watcher) quietFor(now time.Time) time.Duration {
	last := w.lastLine.Load()
	if last == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, last))
}

// Lines returns a writer that calls @fn with each line written to it,
// without the newline.
func Lines(fn func(line string)) io.Writer { return &lineWriter{fn: fn} }

// maxPartial bounds an unterminated line: past it, the line is judged as
// it is rather than kept forever.
const maxPartial = 4096

type lineWriter struct {
	fn      func(line string)
	early   func(partial []byte) bool // whether to pass on a partial line now (optional)
	mu      sync.Mutex
	partial []byte
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.partial = append(lw.partial, p...)
	for {
		i := bytes.IndexByte(lw.partial, '\n')
		if i < 0 {
			break
		}
		lw.fn(string(lw.partial[:i]))
		lw.partial = lw.partial[i+1:]
	}
	if len(lw.partial) > maxPartial || len(lw.partial) > 0 && lw.early != nil && lw.early(lw.partial) {
		lw.fn(string(lw.partial))
		lw.partial = lw.partial[:0]
	}
	return len(p), nil
}
