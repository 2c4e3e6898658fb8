// SPDX-License-Identifier: Apache-2.0

// Package guest is what the VM suite's tests use inside the guest: start
// the scheduler and wait until the kernel enables it, start workloads, and
// read what the kernel shows. Every wait is bounded, and every process a
// test starts is stopped by the test's cleanup.
//
// The tests run in a guest booted by package vm, from a test binary the host
// built (see vmtest.RunGuest); they skip anywhere else.
package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// Environment the host passes to the guest test binary.
const (
	EnvGuest  = "SCX_GUEST"      // "1" inside the guest
	EnvBinary = "SCX_GUEST_BIN"  // path of the scx-qmap-go binary
	EnvOutDir = "SCX_GUEST_OUT"  // a host directory the guest may write: logs kept for a failure
	EnvForm   = "SCX_GUEST_FORM" // --form for every scheduler a test starts ("": the loader's choice)
)

// Form is the struct_ops form the schedulers under test load: $SCX_GUEST_FORM,
// else the loader's choice on the suite's kernels (7.2+), the cid form.
func Form() string {
	if f := os.Getenv(EnvForm); f != "" {
		return f
	}
	return "cid"
}

// Require skips the test unless it runs inside a VM suite guest.
func Require(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvGuest) != "1" {
		t.Skip("runs only inside the VM suite's guest (make test-vm)")
	}
}

// Binary is the scx-qmap-go binary under test.
func Binary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Fatalf("$%s is not set", EnvBinary)
	}
	return bin
}

// OutFile is a path for a log the host shows when the test fails: under
// $SCX_GUEST_OUT, named after the test.
func OutFile(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(EnvOutDir)
	if dir == "" {
		dir = t.TempDir()
	}
	base := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "." + name
	return filepath.Join(dir, base)
}

// SysfsRoot is sched_ext's directory.
const SysfsRoot = "/sys/kernel/sched_ext"

// State is sched_ext's state: disabled, enabling, enabled or disabling.
func State(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SysfsRoot, "state"))
	if err != nil {
		t.Fatalf("reading sched_ext state: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// WaitState waits up to @limit for sched_ext's state to be @want, and
// reports whether it got there.
func WaitState(t *testing.T, want string, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if State(t) == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Setup prepares the guest once per test binary: /tmp as the working
// directory (the host file system is read-only), bpffs, tracefs and
// cgroup v2.
func Setup() error {
	if err := os.Chdir("/tmp"); err != nil {
		return err
	}
	// Both may already be mounted; the scheduler copes without bpffs.
	_ = syscall.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "")
	_ = syscall.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
	// Sub-schedulers attach on cgroup v2 directories.
	var fs syscall.Statfs_t
	if syscall.Statfs("/sys/fs/cgroup", &fs) != nil || fs.Type != 0x63677270 { // CGROUP2_SUPER_MAGIC
		_ = syscall.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, "")
	}
	return nil
}

// Proc is a process a test started, stopped by the test's cleanup.
type Proc struct {
	Cmd  *exec.Cmd
	Log  string // its stdout and stderr
	done chan struct{}
	err  error
}

// Start starts @name with @args, output to a log file, and kills it (and
// waits for it) when the test ends.
func Start(t *testing.T, name string, args ...string) *Proc {
	t.Helper()
	return startLogged(t, exec.Command(name, args...), filepath.Base(name))
}

// StartCmd is Start for a command the test has prepared itself (its
// SysProcAttr, say).
func StartCmd(t *testing.T, cmd *exec.Cmd) *Proc {
	t.Helper()
	return startLogged(t, cmd, filepath.Base(cmd.Path))
}

// startLogged starts @cmd with its output in a log of its own, @name.log
// (@name-2.log for the test's second, and so on): two processes writing one
// file overwrite each other's lines.
func startLogged(t *testing.T, cmd *exec.Cmd, name string) *Proc {
	t.Helper()
	p := &Proc{Log: OutFile(t, name+".log"), done: make(chan struct{})}
	for i := 2; fileExists(p.Log); i++ {
		p.Log = OutFile(t, fmt.Sprintf("%s-%d.log", name, i))
	}
	f, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.Cmd = cmd
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	p.start(t)
	return p
}

func (p *Proc) start(t *testing.T) {
	t.Helper()
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.Cmd.Path, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
}

// killGrace bounds the wait for a killed process to go. One that outlives
// it is stuck in the kernel, and waiting longer would hang the guest's
// tests until their timeout.
const killGrace = 30 * time.Second

// kill sends SIGKILL and waits up to killGrace for the process to exit;
// past that it fails the test with the kernel stack the process is stuck in.
func (p *Proc) kill(t *testing.T) {
	t.Helper()
	p.Cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(killGrace):
		stack, err := os.ReadFile(fmt.Sprintf("/proc/%d/stack", p.Pid()))
		if err != nil {
			stack = []byte(err.Error())
		}
		t.Errorf("%s (pid %d) still there %v after SIGKILL, stuck in the kernel at:\n%s",
			p.Cmd.Path, p.Pid(), killGrace, stack)
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to @limit for the process to exit and returns its exit
// status; past @limit it kills the process and fails the test.
func (p *Proc) Wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.kill(t)
		t.Fatalf("%s did not exit within %v; killed", p.Cmd.Path, limit)
	}
	return workload.ExitStatus(p.err)
}

// Signal sends @sig to the process.
func (p *Proc) Signal(sig os.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Output is what the process printed so far.
func (p *Proc) Output(t *testing.T) string {
	t.Helper()
	b, err := readShared(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readShared reads a file on the host's 9p share. A read that races the
// writer of the file (another guest process) can fail with ENODATA under
// TCG; the next attempt reads it.
func readShared(path string) ([]byte, error) {
	for try := 0; ; try++ {
		b, err := os.ReadFile(path)
		if !errors.Is(err, syscall.ENODATA) || try == 10 {
			return b, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs @name with @args to completion within @limit and returns its
// exit status (124 when it had to be killed, as timeout(1) does).
func Run(t *testing.T, limit time.Duration, name string, args ...string) int {
	t.Helper()
	rc, out := RunOutput(t, limit, name, args...)
	if rc != 0 {
		t.Logf("%s %s: exit %d\n%s", name, strings.Join(args, " "), rc, tail(out, 10))
	}
	return rc
}

// RunOutput is Run that also returns what the command printed.
func RunOutput(t *testing.T, limit time.Duration, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return 124, string(out)
	}
	return workload.ExitStatus(err), string(out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Scheduler is a running scx-qmap-go.
type Scheduler struct {
	*Proc
	Socket string // its stats socket
	exited bool   // the test has collected its exit
}

// StartScheduler starts scx-qmap-go with @flags and waits until the kernel
// enables it; the test fails if it does not. The test's cleanup stops a
// scheduler still running with SIGINT and wants exit 0 with an UNREG exit;
// a test that expects another end calls Wait or Stop itself. Unless @flags
// name one, the scheduler gets a stats socket of its own.
func StartScheduler(t *testing.T, flags ...string) *Scheduler {
	t.Helper()
	s := LaunchScheduler(t, flags...)
	if !s.Running() {
		t.Fatalf("scheduler exited before the kernel enabled it\n%s", tail(s.Output(t), 20))
	}
	return s
}

// LaunchScheduler is StartScheduler for a scheduler that may stop before
// the kernel has enabled it (an injected fault can end it that early).
func LaunchScheduler(t *testing.T, flags ...string) *Scheduler {
	t.Helper()
	if i := slices.Index(flags, "--stats-socket"); i >= 0 && i+1 < len(flags) {
		return launch(t, flags[i+1], flags)
	}
	// A socket of its own, short enough for sun_path.
	dir, err := os.MkdirTemp("/run", "qmap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "stats.sock")
	return launch(t, socket, append([]string{"--stats-socket", socket}, flags...))
}

// LaunchAtDefaultSocket is LaunchScheduler for a scheduler left to pick its
// own stats socket, which must be @socket.
func LaunchAtDefaultSocket(t *testing.T, socket string, flags ...string) *Scheduler {
	t.Helper()
	return launch(t, socket, flags)
}

// launch starts scx-qmap-go with @flags, serving stats on @socket, and waits
// until the kernel enables it or it exits.
func launch(t *testing.T, socket string, flags []string) *Scheduler {
	t.Helper()
	s := &Scheduler{Socket: socket}
	if f := os.Getenv(EnvForm); f != "" && !slices.Contains(flags, "--form") {
		flags = append([]string{"--form", f}, flags...)
	}
	s.Proc = Start(t, Binary(t), flags...)
	t.Cleanup(func() {
		if !s.exited {
			s.StopUnreg(t)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for s.Running() && State(t) != "enabled" {
		if time.Now().After(deadline) {
			t.Fatalf("scheduler not enabled after 60 s (state %s)\n%s", State(t), tail(s.Output(t), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// WaitAttached waits until the loader says it is attached: the kernel has
// then finished enabling it, down to the enable_seq it bumps last, which
// may lag behind the state turning "enabled".
func (s *Scheduler) WaitAttached(t *testing.T) {
	t.Helper()
	if !s.WaitOutput(t, "scx-qmap-go: attached (", 60*time.Second) {
		t.Fatalf("the loader never said it was attached\n%s", tail(s.Output(t), 20))
	}
}

// Counters reads the scheduler's counters through its stats socket, from a
// snapshot taken after this call (the loader takes one every stats
// interval; keep the interval at its 1 s default).
func (s *Scheduler) Counters(t *testing.T) bpf.Stats {
	t.Helper()
	return s.Snapshot(t).Stats()
}

// Snapshot is Counters with the rest of the snapshot: the kernel's events
// and the sub-schedulers below this one.
func (s *Scheduler) Snapshot(t *testing.T) stats.Snapshot {
	t.Helper()
	since := time.Now()
	deadline := since.Add(10 * time.Second)
	for {
		snap, err := topSnapshot(s.Socket)
		if err == nil && !snap.Time.Before(since) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh stats snapshot on %s within 10 s (last error: %v)", s.Socket, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func topSnapshot(socket string) (stats.Snapshot, error) {
	c, err := stats.Dial(socket, 5*time.Second)
	if err != nil {
		return stats.Snapshot{}, err
	}
	defer c.Close()
	snap, _, err := c.Top()
	return snap, err
}

// Stop sends SIGINT and returns the exit status and the exit kind.
func (s *Scheduler) Stop(t *testing.T) (code int, kind string) {
	t.Helper()
	s.Signal(os.Interrupt)
	return s.Wait(t, 60*time.Second)
}

// StopUnreg stops the scheduler and wants what a clean detach gives: exit 0
// and exit kind UNREG.
func (s *Scheduler) StopUnreg(t *testing.T) {
	t.Helper()
	if code, kind := s.Stop(t); code != 0 || kind != "UNREG" {
		t.Errorf("scheduler stopped with exit %d, exit kind %q; want 0 and UNREG\n%s", code, kind, ExitReason(s.Output(t)))
	}
}

// ExitReason is the head of a loader's exit report: the kind, the message
// and the first lines of the dump, or the log's tail if it has no report.
func ExitReason(log string) string {
	i := exitKindRE.FindStringIndex(log)
	if i == nil {
		return tail(log, 20)
	}
	lines := strings.SplitN(log[i[0]:], "\n", 13)
	return strings.Join(lines[:min(len(lines), 12)], "\n")
}

// Wait waits up to @limit for the scheduler to exit by itself and returns
// its exit status and the exit kind of its report (UNREG, ERROR_STALL...).
func (s *Scheduler) Wait(t *testing.T, limit time.Duration) (code int, kind string) {
	t.Helper()
	s.exited = true
	code = s.Proc.Wait(t, limit)
	return code, ExitKind(s.Output(t))
}

var exitKindRE = regexp.MustCompile(`(?m)^EXIT: ([A-Z_]+) `)

// ExitKind is the exit kind in a loader's exit report, or "".
func ExitKind(log string) string {
	m := exitKindRE.FindStringSubmatch(log)
	if m == nil {
		return ""
	}
	return m[1]
}
