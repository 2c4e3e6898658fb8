// SPDX-License-Identifier: Apache-2.0

// Command scx-qmap-go runs the qmap sched_ext scheduler: it loads the BPF
// program, attaches it, prints live stats and reports how it stopped.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/sdnotify"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/metrics"
	"github.com/scx-qmap-go/scx-qmap-go/version"
)

// processStart is as close to exec as Go lets us get: after the runtime and
// the packages' init, which -v's timings then leave out.
var processStart = time.Now()

func main() {
	// The load decodes kernel BTF into heap that is freed after attach.
	// With transparent huge pages (Debian: "always"), khugepaged folds the
	// freed 4 KiB pages back into huge pages and the RSS never drops: 34
	// MiB of anonymous memory instead of 11 was measured in the 7.2 guest.
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)

	crashBySignal()
	ctx, stop := stopSignals()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, loader.RealHost())
	stop()
	os.Exit(int(code))
}

// crashBySignal makes a crash of the loader (a panic, a fatal runtime
// error) end in SIGABRT, with a core dump where they are enabled. Go's own
// exit status for a crash is 2, this command's "bad command line", which
// the unit does not restart.
func crashBySignal() { debug.SetTraceback("crash") }

// stopSignals returns a context that SIGINT, SIGTERM and SIGHUP (the
// terminal gone, unless nohup ignores it) end: the scheduler detaches and
// reports. After the first, the handlers are gone, so a second signal kills
// a detach that hangs (the kernel drops the scheduler with the link's fd).
func stopSignals() (context.Context, context.CancelFunc) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// outliveStdout keeps the scheduler running when a reader of its stdout
// goes away (--stats 1 | tee): SIGPIPE is ignored and the lines are lost.
// Not for "stats" and --monitor, which end with their reader (| head).
func outliveStdout() { signal.Ignore(syscall.SIGPIPE) }

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
	o, err := parseFlags(args)
	switch {
	case err != nil && !errors.Is(err, pflag.ErrHelp):
		fmt.Fprintf(stderr, "scx-qmap-go: %v (see --help)\n", err)
		return exitUsage
	case o.help || errors.Is(err, pflag.ErrHelp):
		_, groups := newFlags(&options{})
		printUsage(stdout, groups)
		return exitOK
	case o.manPage:
		_, groups := newFlags(&options{})
		writeManPage(stdout, groups)
		return exitOK
	case o.version:
		fmt.Fprintf(stdout, "scx-qmap-go %s\n", version.String())
		return exitOK
	case o.helpStats:
		stats.WriteHelp(stdout)
		return exitOK
	case o.monitor > 0:
		socket, code := instanceSocket(o.statsSocket, o.socketChosen, o.cgroup, stderr)
		if code != exitOK {
			return code
		}
		return watchStats(ctx, socket, o.monitor, false, stdout, stderr)
	}
	// Once, not before each restart: a target that exits later is no
	// reason to stop scheduling. 0 is "off", not a pid.
	if tgid := int(o.cfg.DisallowTgid); tgid != 0 && !host.ProcExists(tgid) {
		return fail(&cliError{code: exitNoTarget, msg: fmt.Sprintf(
			"-d/--disallow-tgid %d: no such process (a thread id is no tgid: check the pid, or use -1 for this loader)", tgid)})
	}

	outliveStdout()
	sd, err := sdnotify.FromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "scx-qmap-go: warning: cannot notify systemd: %v\n", err)
	}
	defer sd.Close()
	defer sd.Send(sdnotify.Stopping)

	for {
		ei, err := runOnce(ctx, o, stdout, stderr, host, sd)
		if errors.Is(err, errStoppedBeforeAttach) {
			fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
			return exitOK
		}
		if err != nil {
			sd.Send(sdnotify.Status("refused: " + firstLine(err)))
			return fail(err)
		}
		// stderr, as upstream and scx: journald keeps it apart, and it is
		// what people paste into bug reports.
		fmt.Fprintf(stderr, "scx-qmap-go %s: exit report\n%s", version.String(), ei.Report())
		if ei.Restart() && ctx.Err() == nil {
			fmt.Fprintln(stderr, "scx-qmap-go: the kernel asked for a restart; loading again")
			sd.Send(sdnotify.Status("restarting at the kernel's request"))
			// The old instance may still be disabling; preflight would call it busy.
			loader.WaitDisabled(ctx, host, 10*time.Second)
			if ctx.Err() != nil {
				return exitOK
			}
			continue
		}
		if ei.Kind.IsError() {
			sd.Send(sdnotify.Status(fmt.Sprintf("ejected: %s %s", ei.Kind, ei.Reason)))
			return exitEjected
		}
		return exitOK
	}
}

// load loads the scheduler through the verifier; -v prints the verifier's
// log on a refusal and each program's instruction count. A stop asked for
// during the load gives errStoppedBeforeAttach, with nothing left loaded:
// never attach, nor tell systemd READY, only to detach at once.
func load(ctx context.Context, host loader.Host, kernel *loader.Kernel, o options, stdout, stderr io.Writer) (*loader.Scheduler, error) {
	sched, err := loader.Load(host, kernel, o.cfg)
	if err != nil {
		var verr *ebpf.VerifierError
		if o.verbose && errors.As(err, &verr) {
			fmt.Fprintf(stderr, "%+v\n", verr)
		}
		return nil, err
	}
	if o.verbose {
		printVerified(sched, stdout, stderr)
	}
	if ctx.Err() != nil {
		sched.Close()
		return nil, errStoppedBeforeAttach
	}
	return sched, nil
}

// preflight runs the loader's checks for a root scheduler, or with -c for a
// sub-scheduler, whose cgroup also names its default stats socket.
func preflight(host loader.Host, o *options) (*loader.Kernel, *loader.SubTarget, error) {
	if o.cgroup == "" {
		k, err := loader.Preflight(host)
		return k, nil, err
	}
	k, t, err := loader.PreflightSub(host, o.cgroup)
	if err != nil {
		return nil, nil, err
	}
	o.cfg.SubCgroupID = t.ID
	if !o.socketChosen {
		o.statsSocket = stats.SubSocket(t.ID)
	}
	return k, t, nil
}

// errStoppedBeforeAttach: a signal came while the scheduler was loading.
var errStoppedBeforeAttach = errors.New("stopped before attaching: nothing was attached")

// runOnce loads, attaches and runs the scheduler until it stops.
func runOnce(ctx context.Context, o options, stdout, stderr io.Writer, host loader.Host, sd *sdnotify.Notifier) (loader.ExitInfo, error) {
	t0 := time.Now()
	kernel, target, err := preflight(host, &o)
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

	// A stop asked for during preflight: load nothing.
	if ctx.Err() != nil {
		return loader.ExitInfo{}, errStoppedBeforeAttach
	}
	t1 := time.Now()
	if o.verbose {
		fmt.Fprintf(stdout, "scx-qmap-go: preflight done in %v: loading the scheduler through the verifier\n",
			t1.Sub(t0).Round(time.Millisecond))
	}
	sched, err := load(ctx, host, kernel, o, stdout, stderr)
	if err != nil {
		return loader.ExitInfo{}, err
	}
	t2 := time.Now()
	err = sched.Attach()
	if loader.RootLacksTIDs(err) && o.cfg.QueueBy == loader.QueueAuto {
		sched.Close()
		fmt.Fprintln(stdout, "scx-qmap-go: the root scheduler does not turn tids on (SCX_OPS_TID_TO_TASK): loading again to queue by pid")
		o.cfg.QueueBy = loader.QueueByPID
		if sched, err = load(ctx, host, kernel, o, stdout, stderr); err != nil {
			return loader.ExitInfo{}, err
		}
		err = sched.Attach()
	}
	defer sched.Close()
	if err != nil {
		return loader.ExitInfo{}, err
	}
	if o.verbose {
		t3 := time.Now()
		fmt.Fprintf(stdout, "scx-qmap-go: since start %v: preflight and kernel BTF %v, load %v, attach %v\n",
			t3.Sub(processStart).Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond),
			t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond))
	}
	form := fmt.Sprintf("%s form", sched.Form)
	switch {
	case sched.Caps:
		form += ", children by capability"
	case sched.Form == loader.FormCID:
		form += ", children share every CPU" // 7.2: no capabilities
	}
	form += fmt.Sprintf(", queue by %s", sched.QueueBy)
	attached := fmt.Sprintf("attached (%s, slice %d us, batch %d)", form, sched.SliceNs/1000, o.cfg.DispatchBatch)
	if target != nil {
		attached = fmt.Sprintf("attached (sub-scheduler of cgroup %s, %s, slice %d us, batch %d)",
			target.Cgroup, form, sched.SliceNs/1000, o.cfg.DispatchBatch)
	}
	fmt.Fprintf(stdout, "scx-qmap-go: %s\n", attached)
	sd.Send(sdnotify.Ready, sdnotify.Status(attached))
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
		events := stats.NewEventsReader(host.Sysfs, schedDir(target))
		defer events.Close()
		statsLoop(statsCtx, sched, events, cache, o, stdout, stderr, extra, sd)
	}()
	sched.Wait(ctx)
	if ctx.Err() != nil {
		sd.Send(sdnotify.Stopping, sdnotify.Status("detaching"))
	}
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

// schedDir is the sysfs directory of this instance's scheduler, whose
// events its stats show: the root's, or with -c its own below its parent's.
func schedDir(target *loader.SubTarget) string {
	if target == nil {
		return stats.RootSchedDir
	}
	return target.SysfsDir()
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

// statsLoop makes @cache take snapshots when the socket or the metrics ask,
// at most --stats-interval apart, until @ctx ends. Under systemd it also
// takes one every --stats-interval for the unit's status line; every
// --stats N seconds it prints the block, then calls @extra (-P). Without
// either it takes none while nobody asks.
func statsLoop(ctx context.Context, src stats.Source, events *stats.EventsReader, cache *stats.Cache, o options,
	stdout, stderr io.Writer, extra func(stats.Snapshot), sd *sdnotify.Notifier) {
	var lastErr string
	warn := func(err error) { // once per distinct error, not every second
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
		}
	}
	// Called with the cache's lock held: never two at once.
	sample := func(now time.Time) (stats.Snapshot, bool) {
		s, err := stats.Take(src, now)
		if err != nil {
			warn(err)
			return s, false
		}
		if s, err = s.WithEvents(events); err != nil {
			warn(err)
		}
		return s, true
	}
	cache.Sample(sample, o.statsInterval)
	// @src and @events are closed after this returns.
	defer cache.Sample(nil, 0)

	printEvery := time.Duration(o.printEvery * float64(time.Second))
	var interval time.Duration
	if sd != nil {
		interval = o.statsInterval
	}
	if printEvery > 0 && (interval == 0 || printEvery < interval) {
		interval = printEvery
	}
	if interval == 0 {
		<-ctx.Done()
		return
	}
	prev, _ := cache.Refresh(time.Now())
	printed := prev
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			cur, ok := cache.Refresh(now)
			if !ok {
				continue
			}
			sd.Send(sdnotify.Status(stats.Summary(prev, cur)))
			prev = cur
			// Half an interval of slack: ticks are not exactly on time.
			if printEvery == 0 || cur.Time.Sub(printed.Time) < printEvery-interval/2 {
				continue
			}
			fmt.Fprint(stdout, stats.Render(printed, cur))
			if extra != nil {
				extra(cur)
			}
			printed = cur
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
func printVerified(sched *loader.Scheduler, stdout, stderr io.Writer) {
	counts, err := sched.VerifiedInstructions()
	if err != nil {
		fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
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
