// SPDX-License-Identifier: Apache-2.0

// Command scx-qmap-go runs the qmap sched_ext scheduler: it loads the BPF
// program, attaches it, prints live stats and reports how it stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/metrics"
)

var version = "dev"

// processStart is as close to exec as Go lets us get: after the runtime and
// the packages' init, which -v's timings then leave out.
var processStart = time.Now()

func main() {
	// The load decodes kernel BTF into heap that is freed after attach.
	// With transparent huge pages (Debian: "always"), khugepaged folds the
	// freed 4 KiB pages back into huge pages and the RSS never drops: 34
	// MiB of anonymous memory instead of 11 was measured in the 7.2 guest.
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, loader.RealHost())
	stop()
	os.Exit(int(code))
}

// options is the parsed command line.
type options struct {
	cfg           loader.Config
	statsInterval time.Duration
	statsSocket   string // "" disables the stats server
	socketChosen  bool   // --stats-socket given: failing to serve it is fatal
	metricsAddr   string // "" disables Prometheus metrics
	quiet         bool
	verbose       bool
	version       bool
}

// parseFlags parses @args; every flag has upstream qmap's letter (where it
// has one) and a long name.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("scx-qmap-go", flag.ContinueOnError)
	// Silent while parsing: a bad flag comes back as an error that run()
	// prints as one line, not followed by the whole usage. Only --help
	// prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	both := func(short, long string, set func(name string)) {
		set(short)
		set(long)
	}
	var sliceUs, batch, dumpLen, errAfter, stallUser, stallKernel, loopAfter, immedNth uint64
	var tgid int64
	both("s", "slice-us", func(n string) {
		fs.Uint64Var(&sliceUs, n, 0, "task slice in microseconds (default: the kernel's SCX_SLICE_DFL, 20000)")
	})
	both("b", "batch", func(n string) { fs.Uint64Var(&batch, n, 1, "tasks one dispatch call moves out of the FIFOs") })
	both("d", "disallow-tgid", func(n string) {
		fs.Int64Var(&tgid, n, 0, "refuse to schedule the tasks of this process (tgid; -1: this loader)")
	})
	both("p", "partial", func(n string) {
		fs.BoolVar(&o.cfg.PartialSwitch, n, false, "schedule only tasks set to SCHED_EXT; others stay on the fair class")
	})
	both("D", "exit-dump-len", func(n string) {
		fs.Uint64Var(&dumpLen, n, loader.MaxExitDumpLen, "bytes of the kernel's debug dump kept for the exit report")
	})
	both("S", "suppress-dump", func(n string) {
		fs.BoolVar(&o.cfg.SuppressDump, n, false, "leave the scheduler's own lines out of the debug dump")
	})
	both("H", "highpri-boost", func(n string) {
		fs.BoolVar(&o.cfg.HighpriBoost, n, false, "boost nice -20 tasks: move them to a CPU's local DSQ with preemption (use with -b)")
	})
	both("P", "print-dsqs-events", func(n string) {
		fs.BoolVar(&o.cfg.PrintDSQs, n, false, "print the shared DSQ and the kernel's event counters every interval")
	})
	both("M", "print-msgs", func(n string) {
		fs.BoolVar(&o.cfg.PrintMsgs, n, false, "log cgroup and CPU hotplug events to the trace buffer (/sys/kernel/tracing/trace_pipe)")
	})
	both("I", "always-enq-immed", func(n string) {
		fs.BoolVar(&o.cfg.AlwaysEnqImmed, n, false, "set SCX_OPS_ALWAYS_ENQ_IMMED: local inserts that cannot run at once come back (IMMED/PREEMPTED reenqueues)")
	})
	both("F", "immed-stress-nth", func(n string) {
		fs.Uint64Var(&immedNth, n, 0, "insert every Nth enqueue into its own CPU's local DSQ even when busy (use with -I)")
	})
	var latBudget uint64
	both("L", "lat-budget-us", func(n string) {
		fs.Uint64Var(&latBudget, n, 0, "latency budget in microseconds: a task that has run this much of its slice yields as soon as another waits (0: off, qmap's plain slices; try 2000)")
	})
	fs.BoolVar(&o.cfg.RemoteReenq, "remote-reenq", false, "when an RT/DL task takes a CPU, reenqueue the tasks waiting in its local DSQ")
	both("e", "error-after", func(n string) { fs.Uint64Var(&errAfter, n, 0, "fault injection: scx_bpf_error() on the Nth enqueue") })
	both("t", "stall-user-nth", func(n string) {
		fs.Uint64Var(&stallUser, n, 0, "fault injection: never queue every Nth user task (the watchdog ejects the scheduler)")
	})
	both("T", "stall-kernel-nth", func(n string) {
		fs.Uint64Var(&stallKernel, n, 0, "fault injection: never queue every Nth kernel task")
	})
	both("l", "dispatch-loop-after", func(n string) {
		fs.Uint64Var(&loopAfter, n, 0, "fault injection: make ops.dispatch loop after N dispatches")
	})
	both("v", "verbose", func(n string) {
		fs.BoolVar(&o.verbose, n, false, "print the verifier log on load failure, and more detail")
	})
	both("V", "version", func(n string) { fs.BoolVar(&o.version, n, false, "print the version and exit") })
	fs.DurationVar(&o.statsInterval, "stats-interval", time.Second, "how often to take (and print) a stats snapshot")
	fs.BoolVar(&o.quiet, "quiet", false, "do not print the periodic stats block (the socket and metrics still update)")
	fs.StringVar(&o.statsSocket, "stats-socket", stats.DefaultSocket, "serve stats (scx_stats JSON protocol) on the unix socket `PATH`; empty: off")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics; \":9090\" binds 127.0.0.1 (default: off)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: scx-qmap-go [flags]\n       scx-qmap-go stats [--socket PATH] [--watch SECS] [--json]\n\n"+
				"Runs the qmap sched_ext scheduler until SIGINT/SIGTERM or until the kernel ejects it.\n"+
				"\"scx-qmap-go stats\" prints the running scheduler's stats (see scx-qmap-go stats --help).\n\n"+
				"Flags (each also as --long-name):\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.socketChosen = o.socketChosen || f.Name == "stats-socket" })
	if batch < 1 || batch > 1<<16 {
		return o, fmt.Errorf("-b/--batch %d out of range: use 1..65536", batch)
	}
	if dumpLen > loader.MaxExitDumpLen {
		return o, fmt.Errorf("-D/--exit-dump-len %d out of range: use 0..%d", dumpLen, loader.MaxExitDumpLen)
	}
	if tgid == -1 {
		tgid = int64(os.Getpid())
	}
	if tgid < 0 || tgid > 1<<22 {
		return o, fmt.Errorf("-d/--disallow-tgid %d out of range: use a pid from 1 to %d, or -1 for the loader itself", tgid, 1<<22)
	}
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"-e/--error-after", errAfter}, {"-t/--stall-user-nth", stallUser},
		{"-T/--stall-kernel-nth", stallKernel}, {"-l/--dispatch-loop-after", loopAfter},
		{"-F/--immed-stress-nth", immedNth},
	} {
		if c.v > 1<<31 {
			return o, fmt.Errorf("%s %d out of range: use 0..%d", c.name, c.v, uint64(1)<<31)
		}
	}
	if immedNth > 0 && !o.cfg.AlwaysEnqImmed {
		return o, fmt.Errorf("-F/--immed-stress-nth needs -I/--always-enq-immed")
	}
	if o.cfg.PrintDSQs && o.quiet {
		return o, fmt.Errorf("-P/--print-dsqs-events and --quiet conflict: -P prints every interval, --quiet prints nothing; drop one")
	}
	o.cfg.ErrorAfterEnq = uint32(errAfter)
	o.cfg.StallUserNth = uint32(stallUser)
	o.cfg.StallKernelNth = uint32(stallKernel)
	o.cfg.DispatchLoopAfter = uint32(loopAfter)
	o.cfg.ImmedStressNth = uint32(immedNth)
	if o.statsInterval < 10*time.Millisecond || o.statsInterval > time.Hour {
		return o, fmt.Errorf("--stats-interval %v out of range: use 10ms..1h", o.statsInterval)
	}
	// sun_path holds 108 bytes with the terminating NUL.
	if len(o.statsSocket) > 107 {
		return o, fmt.Errorf("--stats-socket path is %d bytes long: unix sockets allow at most 107", len(o.statsSocket))
	}
	if o.metricsAddr != "" {
		if _, err := metrics.ResolveAddr(o.metricsAddr); err != nil {
			return o, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	o.cfg.SliceUs = sliceUs
	o.cfg.LatBudgetUs = latBudget
	o.cfg.DispatchBatch = uint32(batch)
	o.cfg.ExitDumpLen = uint32(dumpLen)
	o.cfg.DisallowTgid = int32(tgid)
	if sliceUs > 10_000_000 {
		return o, fmt.Errorf("-s/--slice-us %d is too long: use at most 10000000 (10 s)", sliceUs)
	}
	if latBudget > 0 && latBudget < 100 {
		return o, fmt.Errorf("-L/--lat-budget-us %d is too short: use at least 100 (or 0 for off)", latBudget)
	}
	if latBudget > 10_000_000 {
		return o, fmt.Errorf("-L/--lat-budget-us %d is too long: use at most 10000000 (10 s)", latBudget)
	}
	// Against the kernel's default slice, the loader checks it once it
	// has read that from BTF.
	if latBudget > 0 && sliceUs > 0 && latBudget >= sliceUs {
		return o, fmt.Errorf("-L/--lat-budget-us %d must be shorter than the slice (-s %d), or it never applies", latBudget, sliceUs)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, host loader.Host) exitCode {
	fail := func(err error) exitCode {
		msg, cause := err.Error(), error(nil)
		var lerr *loader.Error
		var cerr *cliError
		switch {
		case errors.As(err, &cerr):
			msg, cause = cerr.msg, cerr.err
		case errors.As(err, &lerr):
			msg, cause = lerr.Msg, lerr.Err
		}
		fmt.Fprintf(stderr, "scx-qmap-go: %s\n", msg)
		if cause != nil {
			fmt.Fprintf(stderr, "scx-qmap-go: cause: %v\n", firstLine(cause))
		}
		return exitCodeOf(err)
	}

	if len(args) > 0 && args[0] == "stats" {
		return runStats(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "scx-qmap-go: %v (see --help)\n", err)
		return exitUsage
	}
	if o.version {
		fmt.Fprintf(stdout, "scx-qmap-go %s\n", version)
		return exitOK
	}
	// Once, not before each restart: a target that exits later is no
	// reason to stop scheduling. 0 is "off", not a pid.
	if tgid := int(o.cfg.DisallowTgid); tgid != 0 && !host.ProcExists(tgid) {
		return fail(&cliError{code: exitNoTarget, msg: fmt.Sprintf(
			"-d/--disallow-tgid %d: no such process (a thread id is no tgid: check the pid, or use -1 for this loader)", tgid)})
	}

	for {
		ei, err := runOnce(ctx, o, stdout, stderr, host)
		if err != nil {
			return fail(err)
		}
		fmt.Fprint(stdout, ei.Report())
		if ei.Restart() && ctx.Err() == nil {
			fmt.Fprintln(stdout, "scx-qmap-go: the kernel asked for a restart; loading again")
			// The old instance may still be disabling; preflight would call it busy.
			loader.WaitDisabled(ctx, host, 10*time.Second)
			continue
		}
		if ei.Kind.IsError() {
			return exitEjected
		}
		return exitOK
	}
}

// runOnce loads, attaches and runs the scheduler until it stops.
func runOnce(ctx context.Context, o options, stdout, stderr io.Writer, host loader.Host) (loader.ExitInfo, error) {
	t0 := time.Now()
	kernel, err := loader.Preflight(host)
	if err != nil {
		return loader.ExitInfo{}, err
	}
	// After preflight, so a second instance it refuses never touches this
	// one's socket; before the load, so a taken socket or port is refused
	// with nothing loaded. Stopped on every return below.
	cache := &stats.Cache{}
	stopServices, served, err := startServices(o, cache, stderr)
	if err != nil {
		return loader.ExitInfo{}, err
	}
	defer stopServices()

	t1 := time.Now()
	sched, err := loader.Load(host, kernel, o.cfg)
	if err != nil {
		var verr *ebpf.VerifierError
		if o.verbose && errors.As(err, &verr) {
			fmt.Fprintf(stderr, "%+v\n", verr)
		}
		return loader.ExitInfo{}, err
	}
	defer sched.Close()
	if o.verbose {
		printVerified(sched, stdout)
	}

	t2 := time.Now()
	if err := sched.Attach(); err != nil {
		return loader.ExitInfo{}, err
	}
	if o.verbose {
		t3 := time.Now()
		fmt.Fprintf(stdout, "scx-qmap-go: since start %v: preflight and kernel BTF %v, load %v, attach %v\n",
			t3.Sub(processStart).Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond),
			t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "scx-qmap-go: attached (slice %d us, batch %d)\n", sched.SliceNs/1000, o.cfg.DispatchBatch)
	// The kernel's BTF, decoded for the load, is not needed again in this
	// run: give it back so the steady RSS is the loop's own.
	kernel = nil
	debug.FreeOSMemory()
	for _, s := range served {
		fmt.Fprintf(stdout, "scx-qmap-go: %s\n", s)
	}

	statsCtx, stopStats := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var extra func(stats.Snapshot)
		if o.cfg.PrintDSQs {
			extra = func(cur stats.Snapshot) { printDSQsAndEvents(sched, cur, stdout, stderr) }
		}
		statsLoop(statsCtx, sched, host.Sysfs, cache, o, stdout, stderr, extra)
	}()
	sched.Wait(ctx)
	stopStats()
	<-done

	ei, err := sched.Detach()
	if err != nil {
		return ei, err
	}
	if s, err := stats.Take(sched, time.Now()); err == nil {
		fmt.Fprintf(stdout, "totals: %s\n", stats.Line(stats.Snapshot{}, s))
	}
	return ei, nil
}

// startServices starts the stats socket and the metrics endpoint that
// @o asks for, both reading @cache. The returned stop closes them (removing
// the socket file); on error nothing is left running. The default socket
// path failing (say, a read-only /run) only warns: stats are not worth
// refusing to schedule for, unless the user asked for them explicitly.
func startServices(o options, cache *stats.Cache, stderr io.Writer) (stop func(), served []string, err error) {
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if o.statsSocket != "" {
		srv, err := stats.StartServer(stats.ServerConfig{Path: o.statsSocket}, cache)
		if errors.Is(err, stats.ErrInUse) {
			return nil, nil, &cliError{code: exitBusy, msg: fmt.Sprintf(
				"another scx-qmap-go instance is serving stats on %s: stop it, or pass --stats-socket PATH", o.statsSocket)}
		}
		switch {
		case err != nil && o.socketChosen:
			return nil, nil, &cliError{code: exitInternal, err: err,
				msg: "cannot serve stats (pass --stats-socket PATH for another path, or --stats-socket \"\" for none)"}
		case err != nil:
			fmt.Fprintf(stderr, "scx-qmap-go: warning: running without the stats socket: %v\n", err)
		default:
			closers = append(closers, func() { srv.Close() })
			served = append(served, "stats on "+srv.Path())
		}
	}
	if o.metricsAddr != "" {
		ms, err := metrics.Listen(o.metricsAddr, cache)
		if err != nil {
			stop()
			return nil, nil, &cliError{code: exitInternal, err: err,
				msg: fmt.Sprintf("cannot serve metrics on --metrics-addr %s", o.metricsAddr)}
		}
		closers = append(closers, func() { ms.Close() })
		served = append(served, "metrics on http://"+ms.Addr()+"/metrics")
	}
	return stop, served, nil
}

// statsLoop takes a snapshot every interval and publishes it for the socket
// and metrics; unless --quiet it prints the block, then calls @extra (-P).
func statsLoop(ctx context.Context, src stats.Source, sysfs fs.FS, cache *stats.Cache, o options,
	stdout, stderr io.Writer, extra func(stats.Snapshot)) {
	var lastErr string
	warn := func(err error) { // once per distinct error, not every second
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
		}
	}
	events := stats.NewEventsReader(sysfs)
	defer events.Close()
	sample := func(now time.Time) (stats.Snapshot, bool) {
		s, err := stats.Take(src, now)
		if err != nil {
			warn(err)
			return s, false
		}
		if s, err = s.WithEvents(events); err != nil {
			warn(err)
		}
		cache.Publish(s)
		return s, true
	}

	prev, _ := sample(time.Now())
	tick := time.NewTicker(o.statsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			cur, ok := sample(now)
			if !ok {
				continue
			}
			if !o.quiet {
				fmt.Fprint(stdout, stats.Render(prev, cur))
				if extra != nil {
					extra(cur)
				}
			}
			prev = cur
		}
	}
}

// printDSQsAndEvents is -P: the shared DSQ as the BPF monitor last saw it,
// and the kernel's own event counters as the snapshot @cur read them.
func printDSQsAndEvents(sched *loader.Scheduler, cur stats.Snapshot, stdout, stderr io.Writer) {
	nr, pids, err := sched.SharedDSQ()
	if err != nil {
		fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
		return
	}
	fmt.Fprintf(stdout, "shared_dsq: nr=%d pids=%v\n", nr, pids)
	if len(cur.Events) > 0 {
		fmt.Fprintf(stdout, "events: %s\n", stats.EventsLine(cur.Events))
	}
}

// printVerified lists each program's verified instruction count.
func printVerified(sched *loader.Scheduler, stdout io.Writer) {
	counts, err := sched.VerifiedInstructions()
	if err != nil {
		fmt.Fprintf(stdout, "scx-qmap-go: %v\n", err)
		return
	}
	names := slices.Sorted(maps.Keys(counts))
	for _, n := range names {
		fmt.Fprintf(stdout, "verified: %-24s %d insns\n", n, counts[n])
	}
}

func firstLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
