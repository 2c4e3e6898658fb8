// SPDX-License-Identifier: Apache-2.0

// Package vm boots a cached sched_ext kernel under virtme-ng, runs one
// command in it as root with the host's file system (and so the repository)
// visible read-only, and returns the command's status, its output and the
// guest's kernel log.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultCacheDir is where `make deps` unpacks the kernels.
const DefaultCacheDir = "/var/cache/scx-qmap-go/kernels"

// Config describes one guest boot.
type Config struct {
	Kernel   string        // a series ("7.2", "7.3") in CacheDir, or a path to a vmlinuz
	CacheDir string        // default DefaultCacheDir (or $KERNEL_CACHE)
	CPUs     int           // default 2
	MemoryMB int           // default 2048
	Timeout  time.Duration // hard limit for the whole boot; default 10 minutes
	RWDirs   []string      // host directories the guest may write
	Stdout   io.Writer     // also receives the command's output live (optional)
	Console  io.Writer     // also receives the kernel console live (optional)
}

// Result is what one boot produced.
type Result struct {
	ExitCode int           // the command's exit status (-1: the guest never ran it)
	Output   string        // the command's stdout and stderr
	Console  string        // the guest kernel's console log
	Elapsed  time.Duration // wall time of the boot
	Attempts int           // boots it took (a failed KVM boot or a boot that died early adds one)
}

// ErrTimeout means the guest hit Config.Timeout and was killed.
var ErrTimeout = errors.New("guest timed out")

// startedMarker is what virtme-ng's init logs right before the command.
const startedMarker = "virtme-init: starting script"

// KernelPath resolves Config.Kernel to a vmlinuz inside an unpacked tree
// (virtme-ng finds the modules beside it).
func (c Config) KernelPath() (string, error) {
	if strings.Contains(c.Kernel, "/") {
		return c.Kernel, nil
	}
	dir := c.CacheDir
	if dir == "" {
		dir = os.Getenv("KERNEL_CACHE")
	}
	if dir == "" {
		dir = DefaultCacheDir
	}
	series := c.Kernel
	if series == "" {
		series = "7.2"
	}
	matches, _ := filepath.Glob(filepath.Join(dir, series, "usr/lib/modules/*/vmlinuz"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no cached %s kernel under %s: run 'make deps' first", series, dir)
	}
	return matches[0], nil
}

// kvmBroken is set once a KVM boot failed in QEMU's KVM code (seen with a
// /dev/kvm that nested virtualisation exposes but cannot serve); later boots
// of this process then use TCG directly.
var kvmBroken atomic.Bool

// useKVM reports whether to boot with KVM: when /dev/kvm can be opened,
// unless $SCX_VM_KVM=0 or an earlier KVM boot failed.
func useKVM() bool {
	if os.Getenv("SCX_VM_KVM") == "0" || kvmBroken.Load() {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Run boots the guest and runs @command (a shell command line) in it. A boot
// that dies before the command starts is retried once; a boot that failed in
// QEMU's KVM code is retried under TCG without counting as that retry.
func Run(ctx context.Context, cfg Config, command string) (*Result, error) {
	var res *Result
	var err error
	retried := false
	for attempt := 1; ; attempt++ {
		kvm := useKVM()
		res, err = runOnce(ctx, cfg, command, kvm)
		if res != nil {
			res.Attempts = attempt
		}
		if err != nil || strings.Contains(res.Console, startedMarker) {
			return res, err
		}
		if kvm && strings.Contains(strings.ToLower(res.Console), "kvm") {
			kvmBroken.Store(true)
			continue
		}
		if retried {
			break
		}
		retried = true
	}
	return res, fmt.Errorf("guest died twice before running the command (exit %d); console tail:\n%s",
		res.ExitCode, Tail(res.Console, 20))
}

func runOnce(ctx context.Context, cfg Config, command string, kvm bool) (*Result, error) {
	kernel, err := cfg.KernelPath()
	if err != nil {
		return nil, err
	}
	cpus := cfg.CPUs
	if cpus == 0 {
		cpus = 2
	}
	mem := cfg.MemoryMB
	if mem == 0 {
		mem = 2048
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}

	args := []string{"--run", kernel, "--cpus", fmt.Sprint(cpus), "--memory", fmt.Sprintf("%dM", mem),
		"--verbose", "--force-9p"}
	if !kvm {
		args = append(args, "--disable-kvm")
	}
	for _, d := range cfg.RWDirs {
		args = append(args, "--rwdir", d)
	}
	args = append(args, "-e", command)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command("vng", args...)
	// vng runs from a directory the guest can see; keep the caller's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out, console bytes.Buffer
	cmd.Stdout = tee(&out, cfg.Stdout)
	cmd.Stderr = tee(&console, cfg.Console)

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting vng (run 'make deps'): %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var werr error
	timedOut := false
	select {
	case werr = <-waited:
	case <-ctx.Done():
		// Kill vng and its QEMU together.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-waited
		timedOut = true
	}
	res := &Result{
		ExitCode: -1,
		Output:   out.String(),
		Console:  console.String(),
		Elapsed:  time.Since(start),
	}
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if timedOut {
		return res, fmt.Errorf("%w after %v (limit %v); console tail:\n%s", ErrTimeout,
			res.Elapsed.Round(time.Second), timeout, Tail(res.Console, 20))
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return res, fmt.Errorf("running vng: %w", werr)
	}
	return res, nil
}

func tee(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// Tail returns the last @n lines of @s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	// A kernel log line on the console: "[   12.345678] ...". The command's
	// own output can reach the console too, and is not judged.
	kernelLineRE = regexp.MustCompile(`^\s*\[\s*\d+\.\d+\]`)
	// Kernel log lines that mean the guest kernel is unhealthy.
	problemRE = regexp.MustCompile(`BUG:|WARNING:|blocked for more than|hung_task|Kernel panic|Oops`)
	// sched_ext's line when a scheduler is disabled; the reason is in brackets.
	disabledRE = regexp.MustCompile(`sched_ext: BPF scheduler "([^"]*)" disabled \((.*)\)`)
	// Reasons that are not faults: requested by userspace, BPF, the kernel
	// or the operator (sysrq-S).
	cleanReasons = []string{"unregistered from user space", "unregistered from BPF",
		"unregistered from the main kernel", "disabled by sysrq-S"}
)

// Problems lists the console lines that fail a run: kernel BUGs, WARNINGs,
// hung tasks, and sched_ext ejections (a scheduler disabled for a fault)
// unless @allowEjection.
func (r *Result) Problems(allowEjection bool) []string {
	var found []string
	for line := range strings.SplitSeq(r.Console, "\n") {
		if !kernelLineRE.MatchString(line) {
			continue
		}
		if problemRE.MatchString(line) && !isBenign(line) {
			found = append(found, strings.TrimSpace(line))
			continue
		}
		if m := disabledRE.FindStringSubmatch(line); m != nil && !allowEjection && !isClean(m[2]) {
			found = append(found, strings.TrimSpace(line))
		}
	}
	return found
}

// isBenign filters lines that match the patterns but are not faults, e.g.
// the kernel command line echoed back or ACPI's advisory text.
func isBenign(line string) bool {
	return strings.Contains(line, "Kernel command line") ||
		strings.Contains(line, "report a bug") ||
		strings.Contains(line, "virtme_link_mods")
}

func isClean(reason string) bool {
	for _, c := range cleanReasons {
		if strings.HasPrefix(reason, c) {
			return true
		}
	}
	return false
}
