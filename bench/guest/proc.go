// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// startOther starts @cmd as SCHED_OTHER at nice 0, in a process group of
// its own. The guest runs as SCHED_FIFO, and a child takes the policy of
// the thread that forks it: the fork happens on a thread locked for the
// purpose that drops to SCHED_OTHER first, and that ends with it.
func startOther(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine rather
		// than run the guest's other goroutines as SCHED_OTHER.
		runtime.LockOSThread()
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			errc <- fmt.Errorf("dropping to SCHED_OTHER: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	return nil
}

// proc is a child running in the background.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // cmd.Wait's, once done
}

// background starts @cmd as SCHED_OTHER and reaps it when it exits.
func background(cmd *exec.Cmd) (*proc, error) {
	// Should a grandchild hold an output pipe, Wait returns anyway.
	cmd.WaitDelay = 5 * time.Second
	if err := startOther(cmd); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends @sig to the process alone.
func (p *proc) signal(sig syscall.Signal) { _ = syscall.Kill(p.pid(), sig) }

// signalGroup sends @sig to the process and whatever it started.
func (p *proc) signalGroup(sig syscall.Signal) { _ = syscall.Kill(-p.pid(), sig) }

// wait waits up to @limit for the process to exit, kills its group past
// that, and returns its exit status as a shell shows it (128+signal when a
// signal ended it; -1 when it could not be reaped).
func (p *proc) wait(limit time.Duration) int {
	select {
	case <-p.done:
		return workload.ExitStatus(p.err)
	case <-time.After(limit):
	}
	p.signalGroup(syscall.SIGKILL)
	select {
	case <-p.done:
		return workload.ExitStatus(p.err)
	case <-time.After(10 * time.Second):
		return -1 // stuck in the kernel: leave it
	}
}

// stopAll ends background load: SIGTERM to every group, then up to 10 s
// each to exit before SIGKILL. Nil entries are skipped.
func stopAll(ps ...*proc) {
	for _, p := range ps {
		if p != nil {
			p.signalGroup(syscall.SIGTERM)
		}
	}
	for _, p := range ps {
		if p != nil {
			p.wait(10 * time.Second)
		}
	}
}

// runTool runs @name with @args as SCHED_OTHER to completion within
// @limit (its process group is killed past it) and returns what it
// printed, stdout and stderr together.
func runTool(ctx context.Context, limit time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := startOther(cmd); err != nil {
		return "", err
	}
	err := cmd.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return out.String(), fmt.Errorf("%s did not finish within %v", name, limit)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w", name, err)
	}
	return out.String(), nil
}

// sleep waits @d or until @ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
