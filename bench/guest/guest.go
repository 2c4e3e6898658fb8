// SPDX-License-Identifier: Apache-2.0

// Package guest is the guest side of scx-bench. Run is `make bench`'s
// benchmark: in one boot it runs the same workloads under EEVDF (no
// scheduler attached) and under scx-qmap-go in several configurations,
// round-robin, so that drift in the emulator hits every configuration
// alike, and returns what it measured as a bench.Result. Cost measures the
// loader's idle cost under several flag sets.
//
// Both run inside a guest booted by package vm, as root, with the host's
// files read-only and /tmp writable. The program that calls them must call
// workload.RunIfAsked first thing in main: the busy loops and the RT hog
// are that program started again.
package guest

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// Defaults of the Options that size the run. The workloads are sized so
// that a 2-vCPU TCG guest runs each in a few seconds.
const (
	DefaultRounds    = 5
	DefaultSecs      = 5
	DefaultHackbench = "-g 4 -f 10 -l 400"
	DefaultPerf      = "-g 4 -l 100"
	// cyclictest wakes each thread every DefaultCycInterval µs beside
	// DefaultLoadPerCPU stress-ng workers per CPU.
	DefaultCycInterval = 1000
	DefaultLoadPerCPU  = 1
)

// configurations are the scheduler flags of each configuration, in table
// order; nil is EEVDF, no scheduler. -v makes the loader list its
// programs' verified instruction counts. A configuration with child flags
// also runs a sub-scheduler with them on benchCgroup, and the workloads run
// in that cgroup: the root's cost and the child's together.
var configurations = []struct {
	name  string
	flags []string
	child []string
}{
	{bench.Baseline, nil, nil},
	{"qmap", []string{"-v"}, nil},
	{"qmap-remote-reenq", []string{"-v", "--remote-reenq"}, nil},
	{"qmap-I", []string{"-v", "-I"}, nil},
	{"qmap-latency", []string{"-v", "--latency"}, nil},
	// The latency mode's trade-off curve: the preset at other budgets.
	{"qmap-latency-250", []string{"-v", "--latency", "-L", "250"}, nil},
	{"qmap-latency-500", []string{"-v", "--latency", "-L", "500"}, nil},
	{"qmap-latency-2000", []string{"-v", "--latency", "-L", "2000"}, nil},
	{"qmap-child", []string{"-v", "--form", "cid"}, []string{"--form", "cid", "--stats-socket", ""}},
}

// ConfigNames are the configurations Run knows, in table order.
func ConfigNames() []string {
	var out []string
	for _, c := range configurations {
		out = append(out, c.name)
	}
	return out
}

// phase is the workload named @name (checked by Options.check).
func phase(name string) func(*runner, context.Context) {
	for _, p := range phases {
		if p.name == name {
			return p.run
		}
	}
	panic("unknown phase " + name)
}

// PhaseNames are the workloads Run knows, in the order it runs them.
func PhaseNames() []string {
	var out []string
	for _, p := range phases {
		out = append(out, p.name)
	}
	return out
}

// Options size one benchmark run.
type Options struct {
	Bin    string // the scx-qmap-go binary; copied to /tmp before use
	Rounds int    // each runs every configuration once
	// FirstRound is the round to start from (0 or 1: the first): a run
	// that a boot lost goes on in a new one from the round it was in.
	FirstRound int
	Secs       int      // length of the timed phases, seconds
	Hackbench  []string // hackbench's arguments
	Perf       []string // perf bench sched messaging's arguments
	// The cyclictest phases' setup: each thread's wakeup interval (µs)
	// and the CPU hogs per CPU beside it, so that the latency rows can be
	// checked under other setups than the default one.
	CycInterval int
	LoadPerCPU  int
	Configs     []string  // configurations by name (ConfigNames), in table order
	Phases      []string  // workloads by name (PhaseNames), in the order to run them
	Progress    io.Writer // "# " progress lines, and a checkpoint line after each round
}

func (o *Options) check() error {
	if o.FirstRound == 0 {
		o.FirstRound = 1
	}
	switch {
	case o.Bin == "":
		return fmt.Errorf("no scheduler binary given")
	case o.Rounds < 1 || o.Secs < 1:
		return fmt.Errorf("rounds (%d) and seconds (%d) must be positive", o.Rounds, o.Secs)
	case o.FirstRound < 1 || o.FirstRound > o.Rounds:
		return fmt.Errorf("the first round (%d) must be between 1 and the rounds (%d)", o.FirstRound, o.Rounds)
	case o.CycInterval < 1 || o.LoadPerCPU < 1:
		return fmt.Errorf("cyclictest's interval (%d µs) and the hogs per CPU (%d) must be positive", o.CycInterval, o.LoadPerCPU)
	case len(o.Configs) == 0:
		return fmt.Errorf("no configurations to run")
	}
	for _, c := range o.Configs {
		if !slices.Contains(ConfigNames(), c) {
			return fmt.Errorf("unknown configuration %q (known: %s)", c, strings.Join(ConfigNames(), ", "))
		}
	}
	for _, p := range o.Phases {
		if !slices.Contains(PhaseNames(), p) {
			return fmt.Errorf("unknown phase %q (known: %s)", p, strings.Join(PhaseNames(), ", "))
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// guestCopy is where the scheduler runs from: the guest's tmpfs, as a
// deployed binary runs from a local disk. Over the host share every page
// of it faults in through emulated 9p, which made exec -> enabled 2-4 s
// instead of ~1.5 s.
const guestCopy = "/tmp/scx-qmap-go.bench"

// controllerPrio is the guest's own SCHED_FIFO priority: it only starts,
// times and reads the workloads, and the scheduler under test must not
// slow that down (at nice 0 next to nice -20 loops it would get ~1% of a
// CPU). What it measures runs as SCHED_OTHER (startOther) or under a
// policy of its own.
const controllerPrio = 50

// runner is one benchmark run in progress.
type runner struct {
	o     Options
	ncpu  int
	bin   string // the scheduler binary to run
	perf  bool   // perf bench works here
	res   *bench.Result
	cfg   string       // the configuration being measured
	cur   *bench.Round // what it measured this round
	sched *scheduler   // attached scx-qmap-go; nil under EEVDF
	child *scheduler   // its sub-scheduler on benchCgroup, if the configuration has one
	names map[ebpf.ProgramID]string
	clock string // the guest kernel's clocksource, as last read
}

// Run runs the benchmark and returns what it measured. Measurements that
// fail become notes in the result; an error means no result at all.
func Run(ctx context.Context, o Options) (*bench.Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	r := &runner{
		o:     o,
		ncpu:  runtime.NumCPU(),
		res:   &bench.Result{Meta: map[string]string{}},
		names: map[ebpf.ProgramID]string{},
	}
	if err := r.setup(); err != nil {
		return nil, err
	}
	r.describe(ctx)
	r.warmUp(ctx)
	start, noted := time.Now(), len(r.res.Notes)
	for round := o.FirstRound; round <= o.Rounds; round++ {
		first := len(r.res.Rounds)
		// Rotate the starting configuration each round so that none
		// always follows the same one.
		for k := range o.Configs {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("stopped in round %d: %w", round, err)
			}
			r.benchOne(ctx, o.Configs[(round-1+k)%len(o.Configs)], round)
		}
		r.checkClock(round)
		cp := bench.Checkpoint{Round: round, Rounds: r.res.Rounds[first:], Notes: r.res.Notes[noted:],
			Secs: int(time.Since(start).Seconds())}
		if err := cp.WriteLine(o.Progress); err != nil {
			return nil, err
		}
		noted = len(r.res.Notes)
	}
	r.res.Meta["guest_secs"] = strconv.Itoa(int(time.Since(start).Seconds()))
	r.progress("done")
	return r.res, nil
}

// setup prepares the guest: /tmp as the working directory, the scheduler
// copied there, bpffs, tracefs, and SCHED_FIFO for this process.
func (r *runner) setup() error {
	if err := os.Chdir("/tmp"); err != nil {
		return fmt.Errorf("the guest needs a writable /tmp: %w", err)
	}
	r.bin = r.o.Bin
	if err := copyFile(r.o.Bin, guestCopy); err != nil {
		r.note("running the scheduler from the host share: %v", err)
	} else {
		r.bin = guestCopy
	}
	_ = syscall.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "")      // may be mounted already
	_ = syscall.Mount("tracefs", tracefsDir, "tracefs", 0, "") // likewise
	// One P: fewer SCHED_FIFO threads to take CPUs from the workloads.
	runtime.GOMAXPROCS(1)
	if err := workload.SetPolicy(unix.SCHED_FIFO, controllerPrio); err != nil {
		r.note("the benchmark could not run as SCHED_FIFO, the scheduler under test may slow its timing: %v", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	return nil
}

// describe records the facts about the machine and the run, and the
// configurations.
func (r *runner) describe(ctx context.Context) {
	m := r.res.Meta
	m["kernel"] = kernelRelease()
	m["vcpus"] = strconv.Itoa(r.ncpu)
	m["rounds"] = strconv.Itoa(r.o.Rounds)
	m["emulation"] = emulation()
	r.clock = clocksource()
	m["clocksource"] = r.clock
	m["hackbench"] = strings.Join(append([]string{"hackbench"}, r.o.Hackbench...), " ")
	m["phase_secs"] = strconv.Itoa(r.o.Secs)
	m["cyclictest"] = fmt.Sprintf("cyclictest -i %d -t %d beside %d stress-ng --cpu workers", r.o.CycInterval, r.ncpu, r.cycHogs())
	if v, ok := perfVersion(ctx); ok {
		r.perf = true
		m["perf"] = fmt.Sprintf("perf bench sched messaging %s (%s)", strings.Join(r.o.Perf, " "), v)
	} else {
		r.note("perf is not installed: perf bench sched messaging skipped (apt-get install linux-perf)")
	}
	for _, name := range r.o.Configs {
		r.res.Configs = append(r.res.Configs, bench.Config{Name: name, Flags: strings.Join(publishedFlags(name), " ")})
	}
}

// publishedFlags are a configuration's scheduler flags as tables show
// them: without -v, which only adds output, and a child's after a "+".
func publishedFlags(name string) []string {
	for _, c := range configurations {
		if c.name == name {
			flags := slices.DeleteFunc(slices.Clone(c.flags), func(f string) bool { return f == "-v" })
			if c.child != nil {
				flags = append(flags, "+", "-c", benchCgroup)
			}
			return flags
		}
	}
	return nil
}

func schedFlags(name string) []string {
	for _, c := range configurations {
		if c.name == name {
			return c.flags
		}
	}
	return nil
}

// childFlags are the flags of a configuration's sub-scheduler; nil: none.
func childFlags(name string) []string {
	for _, c := range configurations {
		if c.name == name {
			return c.child
		}
	}
	return nil
}

// kernelRelease is `uname -r`.
func kernelRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// emulation is KVM when the kernel found KVM's hypervisor, TCG otherwise.
func emulation() string {
	if strings.Contains(kernelLog(), "Hypervisor detected: KVM") {
		return "KVM"
	}
	return "TCG"
}

// clocksourceFile names the clock the guest kernel reads the time from;
// tests replace it.
var clocksourceFile = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

// clocksource is the guest kernel's clocksource: "tsc", or "hpet" once the
// kernel has stopped trusting the TSC; "" when it cannot be read.
func clocksource() string {
	b, err := os.ReadFile(clocksourceFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// checkClock notes a change of the guest's clocksource since the last
// look: from then on every clock read takes another path (under TCG the
// HPET is an emulated device), and rounds on either side do not compare.
func (r *runner) checkClock(round int) {
	if cs := clocksource(); cs != r.clock {
		r.note("round %d: the guest's clocksource changed from %q to %q (the kernel log says why)", round, r.clock, cs)
		r.clock = cs
	}
}

// kernelLog is the kernel's log buffer, as dmesg reads it.
func kernelLog() string {
	size, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || size <= 0 {
		return ""
	}
	buf := make([]byte, size)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// perfVersion is `perf --version` when perf bench runs here.
func perfVersion(ctx context.Context) (string, bool) {
	if _, err := runTool(ctx, time.Minute, "perf", "bench", "sched", "messaging", "-g", "1", "-l", "1"); err != nil {
		return "", false
	}
	v, err := runTool(ctx, time.Minute, "perf", "--version")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(v), true
}

// warmUp runs each program once: the first run in a fresh guest pays for
// reading it over 9p and for the emulator translating its code, and no
// configuration should pay that in its numbers.
func (r *runner) warmUp(ctx context.Context) {
	r.progress("warm-up")
	_, _ = runTool(ctx, 300*time.Second, "hackbench", r.o.Hackbench...)
	if r.perf {
		_, _ = runTool(ctx, 300*time.Second, "perf", append([]string{"bench", "sched", "messaging"}, r.o.Perf...)...)
	}
	_, _ = runTool(ctx, time.Minute, "stress-ng", "--cpu", strconv.Itoa(r.ncpu), "-t", "1", "--quiet")
}

// benchOne measures configuration @cfg for round @round.
func (r *runner) benchOne(ctx context.Context, cfg string, round int) {
	r.cfg = cfg
	r.cur = &bench.Round{Config: cfg, Number: round}
	r.res.Rounds = append(r.res.Rounds, r.cur)
	r.progress("round %d/%d: %s (%s)", round, r.o.Rounds, cfg, time.Now().Format("15:04:05"))
	if cfg != bench.Baseline {
		if !r.startSched(ctx) {
			return
		}
		defer r.stopSched()
	}
	for _, name := range r.o.Phases {
		r.progress("%s %s (%s)", cfg, name, time.Now().Format("15:04:05.000"))
		phase(name)(r, ctx)
	}
}

// progress prints a "# " line, which the host shows as it comes.
func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "# "+format+"\n", args...)
}

// note records something the reader of the results should know, and
// shows it at once.
func (r *runner) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, n)
	r.progress("note: %s", n)
}

// where names the current configuration and round in notes.
func (r *runner) where() string { return fmt.Sprintf("%s round %d", r.cfg, r.cur.Number) }

// set records @metric for the current configuration and round.
func (r *runner) set(metric string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.missing(metric, fmt.Errorf("not a number: %v", v))
		return
	}
	if r.cur.Values == nil {
		r.cur.Values = map[string]float64{}
	}
	r.cur.Values[metric] = v
}

// missing notes a value that could not be measured.
func (r *runner) missing(metric string, err error) {
	r.note("%s: no value for %s: %v", r.where(), metric, err)
}

// sig6 keeps 6 significant digits, what the published figures need.
func sig6(v float64) float64 {
	out, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return out
}

func ms(d time.Duration) float64 { return sig6(float64(d) / float64(time.Millisecond)) }
