// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/metrics"
)

// options is the parsed command line.
type options struct {
	cfg           loader.Config
	cgroup        string        // -c: attach as a sub-scheduler of this cgroup
	latency       bool          // --latency: the latency mode's preset
	statsInterval time.Duration // the oldest snapshot the socket and metrics answer with; systemd's status period
	printEvery    float64       // --stats: print the block every N s (0: never)
	monitor       float64       // --monitor: watch a running instance every N s instead of scheduling
	statsSocket   string        // "" disables the stats server
	socketChosen  bool          // --stats-socket given: failing to serve it is fatal
	metricsAddr   string        // "" disables Prometheus metrics
	quiet         bool
	verbose       bool
	version       bool
	help          bool
	helpStats     bool
	manPage       bool // hidden: print the man page (make deb)
}

// choiceFlag is a flag whose value is one of @choices, given by name.
type choiceFlag[T interface {
	comparable
	String() string
}] struct {
	v       *T
	typ     string
	choices []T
}

func (f choiceFlag[T]) String() string { return (*f.v).String() }
func (f choiceFlag[T]) Type() string   { return f.typ }

func (f choiceFlag[T]) Set(s string) error {
	names := make([]string, len(f.choices))
	for i, c := range f.choices {
		if s == c.String() {
			*f.v = c
			return nil
		}
		names[i] = c.String()
	}
	return fmt.Errorf("want %s", strings.Join(names, ", "))
}

// rescueFlag is -B: the root's rescue bandwidth in 1/1000 of each CPU, where
// 0 turns rescue off (loader.RescueDisabled), as in upstream qmap.
type rescueFlag struct{ ppt *uint32 }

func (v rescueFlag) String() string {
	switch *v.ppt {
	case 0:
		return ""
	case loader.RescueDisabled:
		return "0"
	}
	return fmt.Sprint(*v.ppt)
}

func (v rescueFlag) Type() string { return "PPT" }

func (v rescueFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return errors.New("want a number of thousandths, 0 for off")
	}
	*v.ppt = uint32(n)
	if n == 0 {
		*v.ppt = loader.RescueDisabled
	}
	return nil
}

// injectFlag is -J: the fault a sub-scheduler injects (upstream qmap's
// names; wrong-cid is the one that exercises the kernel's capability check).
type injectFlag struct{ wrongCid *bool }

func (v injectFlag) String() string {
	if *v.wrongCid {
		return "wrong-cid"
	}
	return ""
}

func (v injectFlag) Type() string { return "MODE" }

func (v injectFlag) Set(s string) error {
	if s != "wrong-cid" {
		return errors.New("want wrong-cid")
	}
	*v.wrongCid = true
	return nil
}

// latencyBudgetUs is --latency's budget: the middle of make bench's curve
// (250 to 2000 µs), whose points differ less than the emulator's noise.
const latencyBudgetUs = 1000

// flagGroup is one section of --help and of the man page.
type flagGroup struct {
	title string
	flags *pflag.FlagSet
}

// newFlags defines every option of the scheduler once, short letter
// (upstream qmap's, where it has one) and long name together, bound
// straight into @o. The groups are the sections --help prints.
func newFlags(o *options) (*pflag.FlagSet, []flagGroup) {
	group := func(title string) flagGroup {
		return flagGroup{title, pflag.NewFlagSet(title, pflag.ContinueOnError)}
	}
	sched, reenq, st, faults, debug := group("Scheduling"), group("Reenqueue"),
		group("Stats and monitoring"), group("Fault injection"), group("Debugging")
	c := &o.cfg

	f := sched.flags
	f.Uint64VarP(&c.SliceUs, "slice-us", "s", 0, "task slice in `US` microseconds (default: the kernel's SCX_SLICE_DFL, 20000)")
	f.Uint32VarP(&c.DispatchBatch, "batch", "b", 1, "move up to `N` tasks out of the FIFOs per dispatch call")
	f.Uint32Var(&c.FifoDepth, "fifo-depth", 0, "how many tasks each FIFO holds before the rest overflow to the shared DSQ (0: 4096)")
	f.Int32VarP(&c.DisallowTgid, "disallow-tgid", "d", 0, "refuse to schedule the tasks of process `TGID` (-1: this loader)")
	f.BoolVarP(&c.PartialSwitch, "partial", "p", false, "schedule only tasks set to SCHED_EXT; others stay on the fair class")
	f.BoolVarP(&c.HighpriBoost, "highpri-boost", "H", false, "boost nice -20 tasks: move them to a CPU's local DSQ with preemption (use with -b)")
	f.StringVarP(&o.cgroup, "cgroup", "c", "", "attach as a sub-scheduler of cgroup `CG_PATH` (cgroup v2, under /sys/fs/cgroup) below a running cid-form parent")
	f.Var(choiceFlag[loader.Form]{&c.Form, "FORM", []loader.Form{loader.FormCID, loader.FormCPU, loader.FormAuto}}, "form", "load the struct_ops `FORM`: cid (CPUs named by cid, Linux 7.2+), cpu (by number), or auto: cid where the kernel has it")
	f.Var(choiceFlag[loader.QueueKey]{&c.QueueBy, "KEY", []loader.QueueKey{loader.QueueByTID, loader.QueueByPID, loader.QueueAuto}}, "queue-by", "name tasks in the FIFOs by `KEY`: tid (SCX_OPS_TID_TO_TASK, Linux 7.2+), pid (Linux 7.1's way), or auto: tid where the kernel has it")
	f.Uint32VarP(&c.RoundRobinMs, "round-robin-ms", "R", 0, "Linux 7.3: each turn, in `MS`, of the CPUs the cpu.weight split among this scheduler and its children leaves over (default 200)")
	f.VarP(rescueFlag{&c.RescueBandwidthPpt}, "rescue-ppt", "B", "Linux 7.3, root only: CPU time in thousandths kept to rescue a child's tasks stranded where it holds no CPU (0: off; default: the kernel's, 20)")
	f.Uint32VarP(&c.RescueQuantumUs, "rescue-quantum-us", "q", 0, "Linux 7.3, root only: the rescue quantum in `US` microseconds (default: the kernel's, 5000)")
	f.Uint64VarP(&c.LatBudgetUs, "lat-budget-us", "L", 0, "latency budget in `US` microseconds: a nice 0 task that has run this much of its slice yields to a task waking behind it (a CPU hog, to any waiting at the next tick), others in proportion to their weight, and a waking task that ran little lately preempts a busier one (0: off, qmap's plain slices)")
	f.BoolVar(&o.latency, "latency", false, fmt.Sprintf("latency mode, the recommended preset: -L %d (unless -L gives another budget) and --remote-reenq", latencyBudgetUs))

	f = reenq.flags
	f.BoolVarP(&c.AlwaysEnqImmed, "always-enq-immed", "I", false, "set SCX_OPS_ALWAYS_ENQ_IMMED: local inserts that cannot run at once come back (IMMED/PREEMPTED reenqueues)")
	f.Uint32VarP(&c.ImmedStressNth, "immed-stress-nth", "F", 0, "insert every `N`th enqueue into its own CPU's local DSQ even when busy (needs -I)")
	f.BoolVar(&c.RemoteReenq, "remote-reenq", false, "when an RT/DL task takes a CPU, reenqueue the tasks waiting in its local DSQ")

	f = st.flags
	f.Float64Var(&o.printEvery, "stats", 0, "print the stats block every `N` seconds (default: quiet)")
	f.Float64Var(&o.monitor, "monitor", 0, "do not schedule: print a running instance's stats every `N` seconds (as \"stats --watch N\")")
	f.BoolVar(&o.helpStats, "help-stats", false, "describe every stats field and exit")
	f.BoolVarP(&c.PrintDSQs, "print-dsqs-events", "P", false, "print the shared DSQ and the kernel's event counters with each block (implies --stats 1)")
	f.DurationVar(&o.statsInterval, "stats-interval", time.Second, "answer the socket and metrics with a snapshot at most `DURATION` old, taken when asked; under systemd, update the status line this often (e.g. 500ms)")
	f.StringVar(&o.statsSocket, "stats-socket", stats.DefaultSocket, "serve stats (scx_stats protocol) on the unix socket `PATH`; empty: off")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics; \":9090\" binds 127.0.0.1 (default: off)")
	f.BoolVar(&o.quiet, "quiet", false, "print no stats block (the default; conflicts with --stats and -P)")

	f = faults.flags
	f.Uint32VarP(&c.ErrorAfterEnq, "error-after", "e", 0, "call scx_bpf_error() on the `N`th enqueue")
	f.Uint32VarP(&c.StallUserNth, "stall-user-nth", "t", 0, "never queue every `N`th user task (the watchdog ejects the scheduler)")
	f.Uint32VarP(&c.StallKernelNth, "stall-kernel-nth", "T", 0, "never queue every `N`th kernel task")
	f.Uint32VarP(&c.DispatchLoopAfter, "dispatch-loop-after", "l", 0, "make ops.dispatch loop after `N` dispatches")
	f.Uint32Var(&c.DispatchHoldUs, "dispatch-hold-us", 0, "busy-wait `US` microseconds (up to 1000) in ops.dispatch between choosing where a task popped from a FIFO goes and inserting it, so a change of its CPU mask can land in between")
	f.VarP(injectFlag{&c.InjectWrongCid}, "inject", "J", "Linux 7.3, a child (-c): wrong-cid inserts every 64th task onto a CPU it does not hold; under a root with -B 0 each comes back with SCX_TASK_REENQ_CAP")

	f = debug.flags
	f.Uint32VarP(&c.ExitDumpLen, "exit-dump-len", "D", loader.MaxExitDumpLen, "`BYTES` of the kernel's debug dump kept for the exit report")
	f.BoolVarP(&c.SuppressDump, "suppress-dump", "S", false, "leave the scheduler's own lines out of the debug dump")
	f.BoolVarP(&c.PrintMsgs, "print-msgs", "M", false, "log cgroup and CPU hotplug events to the trace buffer (/sys/kernel/tracing/trace_pipe)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print the verifier log on load failure, instruction counts and timings")
	f.BoolVarP(&o.version, "version", "V", false, "print the version and exit")
	f.BoolVarP(&o.help, "help", "h", false, "print this help and exit")
	f.BoolVar(&o.manPage, "man-page", false, "print the man page (troff) and exit")
	_ = f.MarkHidden("man-page")

	groups := []flagGroup{sched, reenq, st, faults, debug}
	all := pflag.NewFlagSet("scx-qmap-go", pflag.ContinueOnError)
	// Silent while parsing: a bad flag comes back as an error that run()
	// prints as one line, not followed by the whole usage.
	all.SetOutput(io.Discard)
	all.Usage = func() {}
	all.SortFlags = false
	for _, g := range groups {
		g.flags.SortFlags = false
		all.AddFlagSet(g.flags)
	}
	return all, groups
}

const usageHead = `Usage: scx-qmap-go [OPTIONS]
       scx-qmap-go stats [--socket PATH | -c CG_PATH] [--watch N] [--json]

Runs the qmap sched_ext scheduler until SIGINT/SIGTERM or until the kernel
ejects it. Quiet by default: --stats N prints the counters every N seconds,
and "scx-qmap-go stats" (or --monitor N) reads them from a running instance.
`

// printUsage writes --help: the usage line and each group's options.
func printUsage(w io.Writer, groups []flagGroup) {
	fmt.Fprint(w, usageHead)
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n%s", g.title, g.flags.FlagUsagesWrapped(100))
	}
	fmt.Fprint(w, "\nExit status:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(w, "  %2d  %s\n", e.code, e.meaning)
	}
}

// parseFlags parses @args into options and validates them: the one place
// that decides whether a command line is acceptable.
func parseFlags(args []string) (options, error) {
	var o options
	fs, _ := newFlags(&o)
	if err := fs.Parse(oldSpellings(fs, args)); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.socketChosen = fs.Changed("stats-socket")
	if o.latency {
		if !fs.Changed("lat-budget-us") {
			o.cfg.LatBudgetUs = latencyBudgetUs
		}
		o.cfg.RemoteReenq = true
	}
	if o.cfg.PrintDSQs && o.printEvery == 0 && !o.quiet {
		o.printEvery = 1
	}
	if o.cfg.DisallowTgid == -1 {
		o.cfg.DisallowTgid = int32(os.Getpid())
	}
	return o, o.validate()
}

// validate checks what the types alone do not.
func (o *options) validate() error {
	c := &o.cfg
	switch {
	case c.DispatchBatch < 1 || c.DispatchBatch > 1<<16:
		return fmt.Errorf("-b/--batch %d out of range: use 1..65536", c.DispatchBatch)
	case c.ExitDumpLen > loader.MaxExitDumpLen:
		return fmt.Errorf("-D/--exit-dump-len %d out of range: use 0..%d", c.ExitDumpLen, loader.MaxExitDumpLen)
	case c.DisallowTgid < 0 || c.DisallowTgid > 1<<22:
		return fmt.Errorf("-d/--disallow-tgid %d out of range: use a pid from 1 to %d, or -1 for the loader itself", c.DisallowTgid, 1<<22)
	case c.FifoDepth != 0 && (c.FifoDepth < loader.MinFifoDepth || c.FifoDepth > loader.MaxFifoDepth):
		return fmt.Errorf("--fifo-depth %d out of range: use %d..%d, or 0 for 4096", c.FifoDepth, loader.MinFifoDepth, loader.MaxFifoDepth)
	case c.SliceUs > 10_000_000:
		return fmt.Errorf("-s/--slice-us %d is too long: use at most 10000000 (10 s)", c.SliceUs)
	case o.latency && c.LatBudgetUs == 0:
		return errors.New("--latency needs a latency budget: drop -L 0")
	case c.LatBudgetUs > 0 && c.LatBudgetUs < 100:
		return fmt.Errorf("-L/--lat-budget-us %d is too short: use at least 100 (or 0 for off)", c.LatBudgetUs)
	case c.LatBudgetUs > 10_000_000:
		return fmt.Errorf("-L/--lat-budget-us %d is too long: use at most 10000000 (10 s)", c.LatBudgetUs)
	// Against the kernel's default slice, the loader checks it once it
	// has read that from BTF.
	case c.LatBudgetUs > 0 && c.SliceUs > 0 && c.LatBudgetUs >= c.SliceUs:
		return fmt.Errorf("-L/--lat-budget-us %d must be shorter than the slice (-s %d), or it never applies", c.LatBudgetUs, c.SliceUs)
	case o.cgroup != "" && c.Form == loader.FormCPU:
		return errors.New("-c/--cgroup needs the cid form: drop --form cpu")
	// The kernel ejects a sub-scheduler whose ops.init_task sets disallow.
	case o.cgroup != "" && c.DisallowTgid != 0:
		return errors.New("-d/--disallow-tgid works on the root scheduler only: the kernel ejects a sub-scheduler (-c) that refuses a task; drop one")
	case c.DispatchHoldUs > 1000:
		return fmt.Errorf("--dispatch-hold-us %d out of range: use 0..1000 (it holds a CPU's run queue lock that long)", c.DispatchHoldUs)
	case c.ImmedStressNth > 0 && !c.AlwaysEnqImmed:
		return errors.New("-F/--immed-stress-nth needs -I/--always-enq-immed")
	case o.quiet && (c.PrintDSQs || o.printEvery > 0):
		return errors.New("--quiet conflicts with --stats and -P/--print-dsqs-events, which print: drop one")
	case o.statsInterval < 10*time.Millisecond || o.statsInterval > time.Hour:
		return fmt.Errorf("--stats-interval %v out of range: use 10ms..1h", o.statsInterval)
	// sun_path holds 108 bytes with the terminating NUL.
	case len(o.statsSocket) > 107:
		return fmt.Errorf("--stats-socket path is %d bytes long: unix sockets allow at most 107", len(o.statsSocket))
	case o.monitor != 0 && o.statsSocket == "":
		return errors.New("--monitor reads the --stats-socket, which is empty")
	}
	for _, s := range []struct {
		name string
		v    float64
	}{{"--stats", o.printEvery}, {"--monitor", o.monitor}} {
		if err := checkSeconds(s.name, s.v); err != nil {
			return err
		}
	}
	for _, n := range []struct {
		name string
		v    uint32
	}{
		{"-e/--error-after", c.ErrorAfterEnq}, {"-t/--stall-user-nth", c.StallUserNth},
		{"-T/--stall-kernel-nth", c.StallKernelNth}, {"-l/--dispatch-loop-after", c.DispatchLoopAfter},
		{"-F/--immed-stress-nth", c.ImmedStressNth},
	} {
		if n.v > 1<<31 {
			return fmt.Errorf("%s %d out of range: use 0..%d", n.name, n.v, uint64(1)<<31)
		}
	}
	if o.metricsAddr != "" {
		if _, err := metrics.ResolveAddr(o.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	return nil
}

// checkSeconds accepts 0 (off) or an interval from 10 ms to an hour.
func checkSeconds(name string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 3600 || (v > 0 && v < 0.01) {
		return fmt.Errorf("%s %v out of range: use 0 (off) or 0.01..3600 seconds", name, v)
	}
	return nil
}

// oldSpellings rewrites the spellings Go's flag package accepted and
// getopt does not, so that existing scripts and unit files keep working:
// a long name after one dash (-remote-reenq) and a letter after two (--s).
// Values are left alone: the token after an option that takes one is its
// value, whatever it looks like (-d -1).
func oldSpellings(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	takesValue := func(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal == "" }
	valueNext := false
	for i, a := range args {
		if valueNext {
			out, valueNext = append(out, a), false
			continue
		}
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			if a == "--" {
				return append(out, args[i:]...)
			}
			out = append(out, a)
			continue
		}
		long := strings.HasPrefix(a, "--")
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case long && len(name) == 1 && fs.ShorthandLookup(name) != nil:
			a = a[1:]
			long = false
		case !long && len(name) > 1 && fs.Lookup(name) != nil:
			a = "-" + a
			long = true
		}
		out = append(out, a)
		switch {
		case hasValue:
		case long:
			valueNext = takesValue(fs.Lookup(name))
		default:
			// A bundle such as -pb8 or -pb: the value follows the
			// first letter that takes one, here or in the next token.
			for j := 0; j < len(name); j++ {
				if f := fs.ShorthandLookup(name[j : j+1]); takesValue(f) {
					valueNext = j == len(name)-1
					break
				}
			}
		}
	}
	return out
}
