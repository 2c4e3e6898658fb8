// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// phases are the workloads, in the order each round runs them.
var phases = []struct {
	name string
	run  func(*runner, context.Context)
}{
	{"hackbench", (*runner).hackbench},
	{"perf", (*runner).perfMessaging},
	{"stress", (*runner).stress},
	{"cyclictest_load", func(r *runner, ctx context.Context) { r.cyclictest(ctx, "cyc_load", false) }},
	{"cyclictest_rt", func(r *runner, ctx context.Context) { r.cyclictest(ctx, "cyc_rt", true) }},
	{"fairness", (*runner).fairness},
}

// histMax is cyclictest's histogram range, µs: over twice the 20 ms slice,
// so that p99 under CPU load stays inside.
const histMax = 50000

// histPath is where cyclictest writes its histogram.
const histPath = "/tmp/cyc.hist"

// hackbench times hackbench and, under scx-qmap-go, the BPF programs' run
// time meanwhile: each program's ns per run, and their total as a share of
// all CPUs' time.
func (r *runner) hackbench(ctx context.Context) {
	progs, done := r.watchBPF()
	defer done()
	before, errBefore := progs.snapshotIfAny()
	t0 := time.Now()
	out, err := runTool(ctx, 300*time.Second, "hackbench", r.o.Hackbench...)
	wall := time.Since(t0)
	after, errAfter := progs.snapshotIfAny()

	if v, ok := hackbenchTime(out); ok {
		r.set("hackbench_s", v)
	} else {
		r.note("%s: hackbench failed%s", r.where(), why(err, out))
	}
	if progs == nil {
		return
	}
	if errBefore != nil || errAfter != nil {
		r.note("%s: no BPF cost: %v", r.where(), firstErr(errBefore, errAfter))
		return
	}
	perRun, pct := bpfCost(before, after, wall, r.ncpu)
	for name, ns := range perRun {
		r.set("bpf_ns."+name, ns)
	}
	r.set("bpf_cpu_pct", pct)
}

// watchBPF turns the kernel's BPF run-time statistics on and, under
// scx-qmap-go, opens its programs (nil if that fails); done closes them
// and turns the statistics off.
func (r *runner) watchBPF() (progs *progSet, done func()) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		if r.sched != nil {
			r.note("%s: no BPF run-time stats: %v", r.where(), err)
		}
		return nil, func() {}
	}
	if r.sched != nil {
		progs, err = openProgs(r.names)
		if err == nil && len(progs.progs) == 0 {
			progs.Close()
			progs, err = nil, fmt.Errorf("no %s BPF programs loaded", progPrefix)
		}
		if err != nil {
			r.note("%s: no BPF cost: %v", r.where(), err)
		}
	}
	return progs, func() {
		if progs != nil {
			progs.Close()
		}
		stats.Close()
	}
}

// snapshotIfAny is snapshot, or nothing without programs.
func (ps *progSet) snapshotIfAny() (map[string]progStat, error) {
	if ps == nil {
		return nil, nil
	}
	return ps.snapshot()
}

// why explains a failed tool for a note: its error and the end of its
// output, each after ": " when there is one.
func why(err error, out string) string {
	var s string
	if err != nil {
		s += ": " + err.Error()
	}
	if tail := lastLines(out, 3); tail != "" {
		s += ": " + tail
	}
	return s
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// perfMessaging times perf bench sched messaging, when perf is here.
func (r *runner) perfMessaging(ctx context.Context) {
	if !r.perf {
		return
	}
	out, err := runTool(ctx, 300*time.Second, "perf", append([]string{"bench", "sched", "messaging"}, r.o.Perf...)...)
	if v, ok := perfTotal(out); ok {
		r.set("perf_msg_s", v)
	} else {
		r.note("%s: perf bench failed%s", r.where(), why(err, out))
	}
}

// stress is stress-ng's CPU-bound throughput, one worker per CPU.
func (r *runner) stress(ctx context.Context) {
	secs := r.o.Secs
	out, err := runTool(ctx, time.Duration(secs+60)*time.Second, "stress-ng",
		"--cpu", strconv.Itoa(r.ncpu), "--metrics-brief", "-t", strconv.Itoa(secs))
	if v, ok := stressBogoOps(out); ok {
		r.set("stress_bogo_ops_s", v)
		if share, ok := stressCPUShare(out, r.ncpu); ok {
			r.set("stress_cpu_pct", share)
		}
	} else {
		r.note("%s: stress-ng failed%s", r.where(), why(err, out))
	}
}

// cycHogs is how many stress-ng workers run beside cyclictest.
func (r *runner) cycHogs() int { return r.o.LoadPerCPU * r.ncpu }

// cyclictest measures the wakeup latency of SCHED_OTHER threads (what the
// scheduler decides; RT threads would measure the RT class) beside
// cycHogs() CPU hogs. With @rtHog, a SCHED_FIFO 10 task on CPU 1 also runs
// 80 ms in every 100: each time it wakes it strands whatever waits in CPU 1's
// local DSQ, which --remote-reenq hands back. cyclictest pins each thread
// to a CPU, so its thread on CPU 1 would wait out the RT task under any
// scheduler; with @rtHog the threads are unpinned, and the phase measures
// whether the scheduler runs them elsewhere.
func (r *runner) cyclictest(ctx context.Context, metric string, rtHog bool) {
	secs := r.o.Secs
	load, err := background(exec.Command("stress-ng", "--cpu", strconv.Itoa(r.cycHogs()), "-t", strconv.Itoa(secs+30), "--quiet"))
	if err != nil {
		r.note("%s: no CPU load for %s: %v", r.where(), metric, err)
	}
	var hog *proc
	var hogErr bytes.Buffer
	if rtHog {
		if hog, err = startWorkload("rt-hog", secs+60, 1, &hogErr); err != nil {
			r.note("%s: no RT hog for %s: %v", r.where(), metric, err)
		}
	}
	sleep(ctx, 500*time.Millisecond)
	if hog != nil && !hog.running() {
		r.note("%s: the RT hog exited early%s", r.where(), why(hog.err, hogErr.String()))
	}
	_ = os.Remove(histPath)
	trace, terr := startWakeTrace("cyclictest")
	if terr != nil {
		r.note("%s: no wakeup trace for %s: %v", r.where(), metric, terr)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "cyclictest", "-q", "-D", strconv.Itoa(secs),
		"-i", strconv.Itoa(r.o.CycInterval), "-t", strconv.Itoa(r.ncpu), "-h", strconv.Itoa(histMax), "--histfile="+histPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cyc, err := background(cmd)
	if err == nil && rtHog {
		// cyclictest starts its threads only once it has set up. Under
		// qmap's 20 ms slices behind two hogs per CPU that took 2-4 s
		// (its main thread still alone at 3 s): wait for them as long as
		// the phase lasts.
		if uerr := unpinThreads(cyc.pid(), r.ncpu, r.ncpu, time.Duration(secs)*time.Second); uerr != nil {
			r.note("%s: %s: %v", r.where(), metric, uerr)
		}
	}
	if err == nil {
		if status := cyc.wait(time.Duration(secs+60) * time.Second); status != 0 {
			err = fmt.Errorf("cyclictest exited with status %d", status)
		}
	}
	if trace != nil {
		mainPid := 0
		if cyc != nil {
			mainPid = cyc.pid()
		}
		if wh, werr := trace.stop(mainPid); werr != nil {
			r.note("%s: no wakeup trace for %s: %v", r.where(), metric, werr)
		} else {
			r.hist(metric+"_wake", wh)
		}
	}
	stopAll(hog, load)
	h, herr := readHistfile(histPath)
	if herr != nil {
		r.note("%s: cyclictest wrote no histogram for %s: %v%s", r.where(), metric, herr, why(err, out.String()))
		return
	}
	r.hist(metric, h)
}

// hist records histogram @name for this round.
func (r *runner) hist(name string, h bench.Histogram) {
	if r.cur.Hists == nil {
		r.cur.Hists = map[string]bench.Histogram{}
	}
	r.cur.Hists[name] = h
}

// unpinThreads lets @want threads of process @pid run on CPUs 0..@ncpu-1
// again, each once it has pinned itself to one CPU, waiting up to @limit
// for them: a thread unpinned before it pins itself would just pin itself
// afterwards. (cyclictest's main thread is not pinned, and is left alone.)
func unpinThreads(pid, want, ncpu int, limit time.Duration) error {
	var all unix.CPUSet
	for cpu := range ncpu {
		all.Set(cpu)
	}
	unpinned := map[int]bool{}
	for deadline := time.Now().Add(limit); len(unpinned) < want; {
		tids, err := workload.Threads(pid)
		if err != nil {
			return fmt.Errorf("unpinning: %w", err)
		}
		for _, tid := range tids {
			var set unix.CPUSet
			if unpinned[tid] || unix.SchedGetaffinity(tid, &set) != nil || set.Count() != 1 {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &all); err != nil {
				return fmt.Errorf("unpinning thread %d: %w", tid, err)
			}
			unpinned[tid] = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unpinned %d of %d threads within %v", len(unpinned), want, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// fairness runs three CPU-bound groups, one busy loop per CPU each, at
// nice -20, 0 and 19, and records each group's CPU time over the window,
// in ticks.
func (r *runner) fairness(ctx context.Context) {
	secs := r.o.Secs
	nices := []int{-20, 0, 19}
	type loop struct {
		nice int
		p    *proc
	}
	var loops []loop
	defer func() {
		var ps []*proc
		for _, l := range loops {
			ps = append(ps, l.p)
		}
		stopAll(ps...)
	}()
	for range r.ncpu {
		for _, nice := range nices {
			p, err := startWorkload("spin", secs+60, nice, nil)
			if err != nil {
				r.note("%s: no fairness groups: %v", r.where(), err)
				return
			}
			loops = append(loops, loop{nice, p})
		}
	}
	sleep(ctx, 500*time.Millisecond)
	t0 := time.Now()
	c0 := make([]int64, len(loops))
	for i, l := range loops {
		c0[i] = ticksOrZero(l.p)
	}
	sleep(ctx, time.Duration(secs)*time.Second)
	sum := map[int]int64{}
	for i, l := range loops {
		// A loop that is gone reads 0 and makes its group's sum
		// negative: the host then leaves this round's shares out.
		sum[l.nice] += ticksOrZero(l.p) - c0[i]
	}
	window := time.Since(t0)
	for _, nice := range nices {
		r.set(fmt.Sprintf("fair_ticks.%d", nice), float64(sum[nice]))
	}
	// The shares do not depend on the window's length, but a long one
	// means the guest was held up, which the reader should know.
	if s := int(window.Seconds()); s > secs*2 {
		r.note("%s: the fairness window took %d s instead of %d", r.where(), s, secs)
	}
}

func ticksOrZero(p *proc) int64 {
	t, err := workload.CPUTicks(p.pid())
	if err != nil {
		return 0
	}
	return t
}

// startWorkload starts workload @name (package workload) in the
// background, its stderr to @stderr (nil: discarded).
func startWorkload(name string, secs, arg int, stderr io.Writer) (*proc, error) {
	cmd, err := workload.Command(name, secs, arg)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	return background(cmd)
}
