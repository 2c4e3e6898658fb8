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
	Log      io.Writer     // the runner's own notices (KVM fallback, retries); default os.Stderr

	// AliveWithin bounds the wait for the guest's first kernel log line,
	// and, until the command starts, each wait for the next line of
	// vng's output (a kernel that hangs in its own start-up); default 30 s
	// under KVM, 2 minutes under TCG.
	AliveWithin time.Duration

	// WedgeGrace is how long a guest may go on after a kernel line that
	// says it is wedged (a panic, a hung task, a soft lockup) before it
	// is killed; default 2 minutes.
	WedgeGrace time.Duration

	// System, when set, boots that image with systemd as PID 1 under
	// QEMU instead of virtme-ng's view of the host.
	System *Image

	// RaceRetries is how many times a boot that hit multi-threaded TCG's
	// int3 race (staleBreakpoint) is booted again multi-threaded; the
	// boot after those runs under single-threaded TCG, which has no such
	// race but runs the vCPUs one at a time. Default 0: at once.
	RaceRetries int

	// Again, when set, gives the command for a boot started again after
	// that race, from the boot that hit it, so that a long run can go on
	// from where it got to. Nil: the same command.
	Again func(prev *Result) string

	// InstructionClock boots under single-threaded TCG with QEMU's
	// instruction-counting clock: the guest's time advances 1 ns per
	// instruction it runs (and jumps over idle), not with the host's
	// clock, so the host's speed leaves throughput measured in the guest
	// alone. The vCPUs take turns on one host thread and share that clock.
	InstructionClock bool
}

// DefaultImageDir is where `make deps` builds the systemd guest image.
const DefaultImageDir = "/var/cache/scx-qmap-go/sysimage"

// Image is the systemd guest that scripts/sysimage.sh builds: a bookworm
// root filesystem and, per kernel, an initramfs that can mount it. Once
// the system is up its guest-run unit runs Share/in/run, leaves the output
// in Share/out/output and the exit status in Share/out/rc, and powers off.
// The boot discards what the guest writes to its root filesystem.
type Image struct {
	Dir   string // default DefaultImageDir (or $SYSTEMD_IMAGE)
	Share string // a host directory, mounted at /mnt/share in the guest
}

// Result is what one boot produced.
type Result struct {
	ExitCode int           // the command's exit status (-1: the guest never ran it)
	Output   string        // the command's stdout and stderr
	Console  string        // the guest kernel's console log
	Elapsed  time.Duration // wall time of the last boot
	Attempts int           // boots it took (a failed KVM boot or a boot that died early adds one)

	Accelerator string // "KVM", "TCG" or "TCG (single-threaded)": what the last boot used

	// MainThread is the host policy QEMU's main thread ran at once the
	// guest was up (raiseMainThread), or why it kept QEMU's own.
	MainThread string
}

// ErrTimeout means the guest hit Config.Timeout and was killed.
var ErrTimeout = errors.New("guest timed out")

// ErrWedged means the guest's kernel said it was wedged and the guest had
// not finished Config.WedgeGrace later; it was killed.
var ErrWedged = errors.New("guest kernel wedged")

// What the guest's init logs right before the command: virtme-ng's, and
// the systemd image's guest-run unit.
const (
	startedMarker       = "virtme-init: starting script"
	systemStartedMarker = "guest-run: system "
)

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

// Default bounds on a boot's first kernel log line. QEMU under KVM prints
// it within seconds; one that stays silent for long has hung (a guest
// paused by a KVM error can show nothing at all). TCG is 10-50x slower.
const (
	defaultAliveKVM = 30 * time.Second
	defaultAliveTCG = 2 * time.Minute
)

// how says why a boot ended.
type how int

const (
	exited    how = iota // vng exited by itself
	kvmFailed            // killed: QEMU reported that KVM cannot run the guest
	silent               // killed: no kernel log line within the alive bound
	stalled              // killed: no output for the alive bound before the command started
	timedOut             // killed: Config.Timeout
	wedged               // killed: Config.WedgeGrace after a wedge line
	cancelled            // killed: the caller's context ended
)

// boot is one attempt's result and how it ended.
type boot struct {
	res     *Result
	how     how
	kvmLine string // with kvmFailed: QEMU's line
	wedge   string // the first wedge line, if any
	alive   time.Duration
	// mainThread is Result.MainThread.
	mainThread string
}

// engine is how QEMU runs the guest's vCPUs.
type engine int

const (
	engineKVM       engine = iota
	engineTCG              // a host thread per vCPU (QEMU's default)
	engineTCGSingle        // one host thread for all vCPUs: half the speed, none of the races between them
	engineICount           // engineTCGSingle with the instruction-counting clock (Config.InstructionClock)
)

// instructionClock is QEMU's -icount for Config.InstructionClock. shift=0:
// 1 ns per instruction; sleep=off: an idle guest's clock jumps to its next
// timer instead of waiting for it.
const instructionClock = "shift=0,sleep=off"

// guestKernelArgs go on every guest's kernel command line.
//   - oops=panic: an oops that kills a task holding a lock hangs the guest
//     until the boot's limit; a panic ends it at once (panic=-1, and QEMU
//     does not reboot).
//   - tsc=reliable: under TCG the clocksource watchdog compares the TSC
//     with an emulated HPET whose reads a busy host delays, and may mark
//     the TSC unstable (seen 39 s into a 7.2 boot running the bench). The
//     guest then reads the time from the HPET, an emulated device, for the
//     rest of the boot, and the boots of one benchmark differ in how they
//     keep time. QEMU's TSC is the host's clock, one for all vCPUs, and
//     reliable in fact; without the watchdog every boot keeps it.
const guestKernelArgs = "oops=panic tsc=reliable"

func (e engine) String() string {
	return [...]string{"KVM", "TCG", "TCG (single-threaded)", "TCG (instruction clock)"}[e]
}

// Run boots the guest and runs @command (a shell command line) in it.
//
// The first boot uses KVM when /dev/kvm opens. A KVM boot is killed the
// moment QEMU reports a KVM failure, or when it shows no kernel output
// within Config.AliveWithin; it is then booted again under TCG, and so is
// every later boot of this process. A boot that dies before the command
// starts, or goes quiet for Config.AliveWithin before it, is retried
// once. A TCG boot whose kernel hit a breakpoint it had
// already patched out (staleBreakpoint) is booted again, under
// single-threaded TCG once Config.RaceRetries multi-threaded boots have hit
// it too, with the command Config.Again gives. Config.InstructionClock
// skips KVM and boots single-threaded TCG on QEMU's instruction-counting
// clock.
func Run(ctx context.Context, cfg Config, command string) (*Result, error) {
	logw := cfg.log()
	retried, single, races := false, false, 0
	for attempt := 1; ; attempt++ {
		acc, err := chooseAccel()
		if err != nil {
			return nil, err
		}
		eng := engineTCG
		switch {
		case cfg.InstructionClock:
			eng = engineICount
		case acc.kvm:
			eng = engineKVM
		case single:
			eng = engineTCGSingle
		}
		b, err := runOnce(ctx, cfg, command, eng)
		if err != nil {
			return nil, err
		}
		res := b.res
		res.Attempts = attempt
		started := strings.Contains(res.Console, cfg.startMarker())
		if line := staleBreakpoint(res.Console); eng == engineTCG && line != "" && (b.how == exited || b.how == wedged) {
			races++
			single = races > cfg.RaceRetries
			next := fmt.Sprintf("multi-threaded TCG (retry %d of %d)", races, cfg.RaceRetries)
			if single {
				next = "single-threaded TCG"
			}
			fmt.Fprintf(logw, "scx-vm: the guest's kernel hit a breakpoint it had patched out (%s), "+
				"a race of multi-threaded TCG (docs/troubleshooting.md); booting again under %s\n", line, next)
			if cfg.Again != nil {
				command = cfg.Again(res)
			}
			continue
		}
		if eng == engineKVM {
			if why := b.kvmProblem(started); why != "" {
				if acc.forced {
					return res, fmt.Errorf("KVM cannot run the guest (%s), and SCX_VM_KVM=1 forbids falling back to TCG; console tail:\n%s",
						why, Tail(res.Console, 20))
				}
				markKVMBroken(why)
				fmt.Fprintf(logw, "scx-vm: KVM cannot run guests here (%s); using TCG\n", why)
				continue
			}
		}
		switch b.how {
		case timedOut:
			return res, fmt.Errorf("%w after %v (limit %v); console tail:\n%s", ErrTimeout,
				res.Elapsed.Round(time.Second), cfg.timeout(), Tail(res.Console, 20))
		case cancelled:
			return res, fmt.Errorf("guest stopped: %w", context.Cause(ctx))
		case wedged:
			return res, fmt.Errorf("%w: %q, and the guest had not finished %v later; console from there:\n%s",
				ErrWedged, b.wedge, cfg.wedgeGrace(), From(res.Console, b.wedge, 40))
		}
		if started {
			return res, nil
		}
		why := fmt.Sprintf("exit %d", res.ExitCode)
		if q := b.quiet(); q != "" {
			why = q
		}
		if retried {
			return res, fmt.Errorf("guest died twice before running the command (%s); console tail:\n%s",
				why, Tail(res.Console, 20))
		}
		retried = true
		fmt.Fprintf(logw, "scx-vm: the guest died before running the command (%s); booting again\n", why)
	}
}

// startMarker is the console line that shows the guest started the command.
func (cfg Config) startMarker() string {
	if cfg.System != nil {
		return systemStartedMarker
	}
	return startedMarker
}

// quiet says how a boot killed for going quiet went quiet, or "".
func (b *boot) quiet() string {
	switch b.how {
	case silent:
		return fmt.Sprintf("no kernel output within %v", b.alive)
	case stalled:
		return fmt.Sprintf("no output for %v while booting", b.alive)
	}
	return ""
}

// kvmProblem says why a KVM boot shows that KVM cannot run the guest, or "".
func (b *boot) kvmProblem(started bool) string {
	switch b.how {
	case kvmFailed:
		return b.kvmLine
	case silent, stalled:
		return b.quiet()
	case exited:
		if started {
			return ""
		}
		// QEMU gave up on KVM with a message the pattern does not know.
		for line := range strings.SplitSeq(b.res.Console, "\n") {
			if strings.Contains(strings.ToLower(line), "kvm") && !kernelLineRE.MatchString(line) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// log is where the runner's own notices go: Config.Log, or stderr.
func (c Config) log() io.Writer {
	if c.Log == nil {
		return os.Stderr
	}
	return c.Log
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return 10 * time.Minute
	}
	return c.Timeout
}

func (c Config) wedgeGrace() time.Duration {
	if c.WedgeGrace == 0 {
		return 2 * time.Minute
	}
	return c.WedgeGrace
}

// staleBreakpoint returns the kernel's line if the guest oopsed on an int3
// (see "Oops: int3" in docs/troubleshooting.md), or "".
func staleBreakpoint(console string) string {
	for line := range strings.SplitSeq(console, "\n") {
		if kernelLineRE.MatchString(line) && strings.Contains(line, "Oops: int3") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func runOnce(ctx context.Context, cfg Config, command string, eng engine) (*boot, error) {
	kvm := eng == engineKVM
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
	alive := cfg.AliveWithin
	if alive == 0 {
		alive = defaultAliveTCG
		if kvm {
			alive = defaultAliveKVM
		}
	}

	var cmd *exec.Cmd
	if cfg.System != nil {
		if cmd, err = cfg.System.command(kernel, cpus, mem, eng, command); err != nil {
			return nil, err
		}
	} else {
		args := []string{"--run", kernel, "--cpus", fmt.Sprint(cpus), "--memory", fmt.Sprintf("%dM", mem),
			"--verbose", "--force-9p",
			"--append", guestKernelArgs}
		switch eng {
		case engineTCG:
			args = append(args, "--disable-kvm")
		case engineTCGSingle:
			args = append(args, "--disable-kvm", "--qemu-opts=-accel tcg,thread=single")
		case engineICount:
			args = append(args, "--disable-kvm", "--qemu-opts=-accel tcg,thread=single -icount "+instructionClock)
		}
		for _, d := range cfg.RWDirs {
			args = append(args, "--rwdir", d)
		}
		args = append(args, "-e", command)
		cmd = exec.Command("vng", args...)
	}
	// vng runs from a directory the guest can see; keep the caller's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Should anything outside the process group hold the pipes, Wait
	// still returns soon after the kill.
	cmd.WaitDelay = 5 * time.Second
	var out, console bytes.Buffer
	watch := newWatcher(cfg.startMarker())
	cmd.Stdout = io.MultiWriter(tee(&out, cfg.Stdout), watch.stream())
	cmd.Stderr = io.MultiWriter(tee(&console, cfg.Console), watch.stream())
	if cfg.System != nil { // the serial console is QEMU's stdout
		cmd.Stdout = io.MultiWriter(tee(&console, cfg.Console), watch.stream())
		cmd.Stderr = cmd.Stdout
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting vng (run 'make deps'): %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	limit := time.NewTimer(cfg.timeout())
	defer limit.Stop()
	aliveTimer := time.NewTimer(alive)
	defer aliveTimer.Stop()
	aliveC, aliveT := watch.alive, aliveTimer.C
	var wedgeT <-chan time.Time
	// Until the command starts, a boot that goes quiet for the alive
	// bound has hung in the kernel's start-up.
	stallTick := time.NewTicker(max(alive/4, 10*time.Millisecond))
	defer stallTick.Stop()
	startedC, stallC := watch.started, stallTick.C

	b := &boot{how: exited, alive: alive}
	var werr error
wait:
	for {
		select {
		case werr = <-waited:
			break wait
		case <-aliveC:
			aliveC, aliveT = nil, nil
			b.mainThread = "as QEMU starts it (KVM)"
			if !kvm {
				var err error
				if b.mainThread, err = raiseQEMU(cmd.Process.Pid); err != nil {
					b.mainThread = "as QEMU starts it: " + err.Error()
					fmt.Fprintf(cfg.log(), "scx-vm: QEMU's main thread keeps its policy, so the guest's timers may fire late: %v\n", err)
				}
			}
			continue
		case <-startedC:
			startedC, stallC = nil, nil
			continue
		case now := <-stallC:
			if watch.quietFor(now) < alive {
				continue
			}
			b.how = stalled
		case b.wedge = <-watch.wedged:
			wedgeT = time.After(cfg.wedgeGrace())
			continue
		case <-wedgeT:
			b.how = wedged
		case b.kvmLine = <-watch.kvmFail:
			if !kvm {
				b.kvmLine = ""
				continue // TCG does not care; the message came from elsewhere
			}
			b.how = kvmFailed
		case <-aliveT:
			b.how = silent
		case <-limit.C:
			b.how = timedOut
		case <-ctx.Done():
			b.how = cancelled
		}
		// Kill vng and its QEMU together.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-waited
		break wait
	}
	b.res = &Result{
		ExitCode:    -1,
		Output:      out.String(),
		Console:     console.String(),
		Elapsed:     time.Since(start),
		Accelerator: eng.String(),
		MainThread:  b.mainThread,
	}
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		b.res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if cfg.System != nil {
		// QEMU's own status says nothing about the command's.
		b.res.Output, b.res.ExitCode = cfg.System.result()
	}
	var exitErr *exec.ExitError
	if b.how == exited && werr != nil && !errors.As(werr, &exitErr) {
		return nil, fmt.Errorf("running vng: %w", werr)
	}
	return b, nil
}

func tee(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// From returns up to @n lines of @s from the first that holds @line (a
// kernel oops's trace follows its first line), or the tail if none does.
func From(s, line string, n int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.Contains(l, line) {
			return strings.Join(lines[i:min(i+n, len(lines))], "\n")
		}
	}
	return Tail(s, n)
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
	// sched_ext's line when a scheduler or a sub-scheduler is disabled;
	// the reason is in brackets.
	disabledRE = regexp.MustCompile(`sched_ext: BPF (?:sub-)?scheduler "([^"]*)" disabled \((.*)\)`)
	// Reasons that are not faults: requested by userspace, BPF, the kernel
	// or the operator (sysrq-S), or a child unloaded with its parent.
	cleanReasons = []string{"unregistered from user space", "unregistered from BPF",
		"unregistered from the main kernel", "disabled by sysrq-S", "parent exiting"}
	// Errors the kernel reports for a scheduler it refuses while enabling
	// it, which the loader handles: the line after the disabled line.
	refusalMsgs = []string{
		"SCX_OPS_TID_TO_TASK requires root scheduler to enable it",
		"parent rejected (-28)", // scx-qmap-go's parent, full: ENOSPC
	}
)

// Problems lists the console lines that fail a run: kernel BUGs, WARNINGs,
// hung tasks, and sched_ext ejections (a scheduler disabled for a fault)
// unless @allowEjection.
func (r *Result) Problems(allowEjection bool) []string {
	var found []string
	lines := strings.Split(r.Console, "\n")
	for i, line := range lines {
		if !kernelLineRE.MatchString(line) {
			continue
		}
		if problemRE.MatchString(line) && !isBenign(line) {
			found = append(found, strings.TrimSpace(line))
			continue
		}
		m := disabledRE.FindStringSubmatch(line)
		if m == nil || allowEjection || isClean(m[2]) || i+1 < len(lines) && isRefusal(lines[i+1]) {
			continue
		}
		found = append(found, strings.TrimSpace(line))
	}
	return found
}

// isRefusal reports whether the kernel log @line gives the error of an
// enable the kernel refused, as the loader expects.
func isRefusal(line string) bool {
	for _, msg := range refusalMsgs {
		if strings.Contains(line, msg) {
			return true
		}
	}
	return false
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
