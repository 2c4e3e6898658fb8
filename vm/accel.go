// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
)

// The accelerator is chosen once per process: KVM while /dev/kvm opens and
// no KVM boot has failed, TCG from the first KVM failure on. $SCX_VM_KVM
// overrides the choice: 0 forces TCG, 1 forces KVM with no fallback.
var accel struct {
	sync.Mutex
	broken string // why KVM cannot run guests here; "" while it may
}

// openKVM checks that /dev/kvm can be opened; tests replace it.
var openKVM = func() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// accelChoice is the accelerator for one boot.
type accelChoice struct {
	kvm    bool
	forced bool   // by $SCX_VM_KVM: no fallback
	why    string // for the user: what decided it
}

func (c accelChoice) String() string {
	switch {
	case c.kvm && c.forced:
		return "KVM (" + c.why + ")"
	case c.kvm:
		return "KVM (TCG if KVM cannot run the guest)"
	default:
		return "TCG (" + c.why + ")"
	}
}

func chooseAccel() (accelChoice, error) {
	switch v := os.Getenv("SCX_VM_KVM"); v {
	case "0":
		return accelChoice{forced: true, why: "SCX_VM_KVM=0"}, nil
	case "1":
		return accelChoice{kvm: true, forced: true, why: "SCX_VM_KVM=1"}, nil
	case "":
	default:
		return accelChoice{}, fmt.Errorf("SCX_VM_KVM=%q: want 0 (TCG), 1 (KVM, no fallback) or unset (KVM when it works)", v)
	}
	accel.Lock()
	broken := accel.broken
	accel.Unlock()
	if broken != "" {
		return accelChoice{why: "KVM cannot run guests here: " + broken}, nil
	}
	if err := openKVM(); err != nil {
		return accelChoice{why: err.Error()}, nil
	}
	return accelChoice{kvm: true, why: "/dev/kvm opens"}, nil
}

// markKVMBroken sends every later boot of this process to TCG.
func markKVMBroken(why string) {
	accel.Lock()
	accel.broken = why
	accel.Unlock()
}

// Accelerator describes what the next boot will use, e.g. "TCG (SCX_VM_KVM=0)".
func Accelerator() (string, error) {
	c, err := chooseAccel()
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// kvmFailureRE matches what QEMU prints when KVM cannot run the guest. Seen
// on nested-virtualisation hosts: "failed to set MSR 0x10a" (QEMU exits),
// and "KVM internal error. Suberror: 1 ... emulation failure" (QEMU pauses
// the guest and never exits). The rest are QEMU's other KVM start-up and
// vCPU-entry errors.
var kvmFailureRE = regexp.MustCompile(`(?i)KVM internal error|emulation failure|failed to set MSR|` +
	`KVM: entry failed|kvm run failed|failed to initiali[sz]e kvm|Could not access KVM kernel module|` +
	`kvm_init_vcpu failed`)

// watcher reads vng's output as it streams and signals the first guest
// kernel line (the boot is alive) and the first KVM failure line.
type watcher struct {
	alive     chan struct{} // closed at the first kernel log line
	aliveOnce sync.Once
	kvmFail   chan string // receives the first KVM failure line
	failOnce  sync.Once
}

func newWatcher() *watcher {
	return &watcher{alive: make(chan struct{}), kvmFail: make(chan string, 1)}
}

// stream returns a writer for one of vng's outputs; each keeps its own
// partial line.
func (w *watcher) stream() *lineWriter { return &lineWriter{w: w} }

func (w *watcher) line(s string) {
	s = strings.TrimSpace(s)
	if kernelLineRE.MatchString(s) {
		w.aliveOnce.Do(func() { close(w.alive) })
		return // the guest's own log is not QEMU's verdict on KVM
	}
	if kvmFailureRE.MatchString(s) {
		w.failOnce.Do(func() { w.kvmFail <- s })
	}
}

type lineWriter struct {
	w       *watcher
	mu      sync.Mutex
	partial []byte
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.partial = append(lw.partial, p...)
	for {
		i := strings.IndexByte(string(lw.partial), '\n')
		if i < 0 {
			break
		}
		lw.w.line(string(lw.partial[:i]))
		lw.partial = lw.partial[i+1:]
	}
	// QEMU may pause right after an error with no newline yet; a long
	// unterminated line is judged as it is rather than kept forever.
	if len(lw.partial) > 0 && (kvmFailureRE.Match(lw.partial) || len(lw.partial) > 4096) {
		lw.w.line(string(lw.partial))
		lw.partial = lw.partial[:0]
	}
	return len(p), nil
}
