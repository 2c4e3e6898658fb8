// SPDX-License-Identifier: Apache-2.0

package scenarios

import (
	"cmp"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/bpf"
	"github.com/scx-qmap-go/scx-qmap-go/procstat"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

const exitNoTarget = 11

// TestFeatures: every scheduler flag shows its effect in the counters or in
// the kernel's view.
func TestFeatures(t *testing.T) {
	guest.Require(t)

	// -H: nice -20 tasks are expedited to a local DSQ with SCX_ENQ_PREEMPT;
	// cpuperf targets follow the weights.
	t.Run("highpri", func(t *testing.T) {
		s := guest.StartScheduler(t, "-H", "-b", "8")
		boosted := guest.Start(t, "nice", "-n", "-20", "stress-ng", "--cpu", "2", "--fork", "1", "--timeout", "5", "--quiet")
		guest.Run(t, 60*time.Second, "stress-ng", "--cpu", "2", "--fork", "1", "--timeout", "5", "--quiet")
		boosted.Wait(t, 60*time.Second)
		time.Sleep(1200 * time.Millisecond) // one monitor tick
		c := s.Counters(t)
		t.Logf("-H: exp_local=%d exp_remote=%d exp_timer=%d", c.NrExpeditedLocal, c.NrExpeditedRemote, c.NrExpeditedFromTimer)
		if c.NrExpeditedLocal+c.NrExpeditedRemote == 0 {
			t.Error("-H: no expedited nice -20 tasks")
		}
		if c.CpuperfTargetMax < 1 || c.CpuperfAvg < 1 {
			t.Errorf("cpuperf: target max %d, current avg %d; want both >= 1", c.CpuperfTargetMax, c.CpuperfAvg)
		}
	})

	// -I -F: local inserts that cannot run at once come back as IMMED or
	// PREEMPTED reenqueues.
	t.Run("immed", func(t *testing.T) {
		s := guest.StartScheduler(t, "-I", "-F", "4")
		guest.Run(t, 60*time.Second, "stress-ng", "--cpu", "3", "--fork", "2", "--timeout", "5", "--quiet")
		guest.Run(t, 60*time.Second, "hackbench", "-g", "2", "-l", "200")
		c := s.Counters(t)
		t.Logf("-I -F: immed_stress=%d reenq_immed=%d reenq_preempted=%d", c.NrImmedStress, c.ReenqImmed, c.ReenqPreempted)
		if c.NrImmedStress < 1 {
			t.Error("-F: no stress inserts")
		}
		if c.ReenqImmed+c.ReenqPreempted == 0 {
			t.Error("-I -F: no IMMED or PREEMPTED reenqueues")
		}
	})

	// --remote-reenq: an RT task on CPU 1 that runs 80 ms of every 100 takes
	// the CPU from whatever ext task runs there, which then waits at the
	// head of CPU 1's local DSQ; with the flag, the scheduler reenqueues
	// that DSQ. A two-worker CPU-bound job runs once without the flag and
	// once with it, and its times are logged: what the flag is worth is
	// the benchmark's to say (p99 beside the RT task), over paired rounds.
	t.Run("remote_reenq", func(t *testing.T) {
		offMs, off := rtJob(t)
		onMs, on := rtJob(t, "--remote-reenq")
		t.Logf("--remote-reenq, RT task on CPU 1 80%% of the time: 2-worker job %d ms without, %d ms with; %d requests",
			offMs, onMs, on.RemoteReenqRequests)
		if on.RemoteReenqRequests < 1 || on.ReenqKfunc < 1 {
			t.Errorf("--remote-reenq: %d requests, %d kfunc reenqueues; want both >= 1", on.RemoteReenqRequests, on.ReenqKfunc)
		}
		if off.RemoteReenqRequests != 0 {
			t.Errorf("without --remote-reenq: %d requests, want 0", off.RemoteReenqRequests)
		}
	})

	// -s: the slice the kernel holds for each task (slice= in its sysrq-D
	// dumps) never exceeds -s; by default it reaches SCX_SLICE_DFL's 20 ms.
	t.Run("slice", func(t *testing.T) {
		def, short := maxSlice(t), maxSlice(t, "-s", "2000")
		t.Logf("largest slice %d ns by default, %d with -s 2000", def, short)
		if short <= 0 || short > 2_000_000 {
			t.Errorf("-s 2000: largest slice %d ns, want 1..2000000", short)
		}
		if def <= 2_000_000 {
			t.Errorf("default: largest slice %d ns, want > 2000000", def)
		}
	})

	// -b: dispatch moves up to -b tasks from a FIFO at once, the first to
	// its own CPU and the rest to the shared DSQ, so the user tasks -P
	// samples there are more with a bigger batch. (Kernel threads go to
	// the shared DSQ whatever -b says; they are not counted.)
	t.Run("batch", func(t *testing.T) {
		b1, b16 := dsqUserTasks(t, "1"), dsqUserTasks(t, "16")
		t.Logf("user tasks seen in the shared DSQ over the samples: %d with -b 1, %d with -b 16", b1, b16)
		if b16 <= b1 {
			t.Errorf("-b 16: %d user tasks seen in the shared DSQ, -b 1: %d; want more with -b 16", b16, b1)
		}
	})

	// -P: the shared DSQ and the kernel's event counters every interval.
	t.Run("print", func(t *testing.T) {
		s := guest.StartScheduler(t, "-P", "-b", "8", "--stats-interval", "1s")
		guest.Run(t, 60*time.Second, "stress-ng", "--cpu", "3", "--timeout", "3", "--quiet")
		s.StopUnreg(t)
		out := s.Output(t)
		dsq := len(regexp.MustCompile(`(?m)^shared_dsq: nr=`).FindAllString(out, -1))
		events := len(regexp.MustCompile(`(?m)^events: .*SELECT_CPU_FALLBACK=`).FindAllString(out, -1))
		if dsq < 2 || events < 2 {
			t.Errorf("-P printed %d shared_dsq and %d events lines, want >= 2 each", dsq, events)
		}
	})

	// -M: cgroup events reach the trace buffer; CPU hotplug is handled in
	// place.
	t.Run("msgs_hotplug", func(t *testing.T) {
		const cg = "/sys/fs/cgroup/"
		writeFile(t, "/sys/kernel/tracing/trace", "")
		writeFile(t, "/sys/kernel/tracing/tracing_on", "1")
		_ = os.WriteFile(cg+"cgroup.subtree_control", []byte("+cpu"), 0)
		if err := os.MkdirAll(cg+"qmaptest", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(cg + "qmaptest") })
		s := guest.StartScheduler(t, "-M")
		writeFile(t, cg+"qmaptest/cpu.weight", "50")
		writeFile(t, cg+"qmaptest/cpu.max", "50000 100000")
		time.Sleep(500 * time.Millisecond)
		setCPU1Online(t, false)
		time.Sleep(time.Second)
		setCPU1Online(t, true)
		time.Sleep(time.Second)
		if st := guest.State(t); st != "enabled" {
			t.Errorf("state after hotplug = %s, want enabled", st)
		}
		c := s.Counters(t)
		if c.NrCpuOffline < 1 || c.NrCpuOnline < 1 {
			t.Errorf("cpu_offline %d, cpu_online %d; want both >= 1", c.NrCpuOffline, c.NrCpuOnline)
		}
		trace := readTrim(t, "/sys/kernel/tracing/trace")
		if n := strings.Count(trace, "CGRP INIT"); n < 1 {
			t.Error("-M: no CGRP INIT line in the trace buffer")
		}
		if n := strings.Count(trace, "CGRP SET"); n < 2 {
			t.Errorf("-M: %d CGRP SET lines, want >= 2", n)
		}
	})

	// -L: with more CPU hogs than CPUs and a 1 ms periodic waker, the
	// wakers, which run little, preempt the hogs, and hogs over the 2 ms
	// budget are cut short at ticks. (Kicks, for wakers too busy to
	// preempt, are logged: whether any come depends on the timing.)
	t.Run("lat_budget", func(t *testing.T) {
		s := guest.StartScheduler(t, "-L", "2000")
		w := guest.Start(t, "stress-ng", "--cpu", "4", "--timeout", "6", "--quiet")
		time.Sleep(500 * time.Millisecond)
		if rc := guest.Run(t, 60*time.Second, "cyclictest", "-q", "-D", "4", "-i", "1000", "-t", "2"); rc != 0 {
			t.Errorf("cyclictest exit = %d, want 0", rc)
		}
		w.Wait(t, 60*time.Second)
		c := s.Counters(t)
		t.Logf("-L 2000: %d preempts (%d resumed), %d local waits, %d kicks, %d yields", c.NrLatPreempts, c.NrLatResumes, c.NrLatLocal, c.NrLatKicks, c.NrLatYields)
		if c.NrLatPreempts < 1 || c.NrLatYields < 1 || c.NrLatResumes < 1 {
			t.Errorf("-L 2000: %d preempts, %d yields, %d resumes; want each >= 1", c.NrLatPreempts, c.NrLatYields, c.NrLatResumes)
		}
		// cyclictest pins a thread to each CPU, and its main thread runs
		// beside them: some wakeups find a task they may not preempt.
		if c.NrLatLocal < 1 {
			t.Errorf("-L 2000: no pinned waking task waited on its CPU's local DSQ, want >= 1")
		}
	})

	// --latency: with an RT task holding CPU 1 and two CPU hogs per CPU,
	// tasks that wake every 250 µs find CPU 1 taken and CPU 0's hog often
	// just preempted (shielded); they wait in the shared DSQ, ahead of the
	// FIFOs' hogs, not behind them.
	t.Run("lat_shared", func(t *testing.T) {
		s := guest.StartScheduler(t, "--latency", "--quiet")
		hog := guest.StartHelper(t, "rt-hog", 20, 1)
		load := guest.Start(t, "stress-ng", "--cpu", "4", "--timeout", "6", "--quiet")
		time.Sleep(300 * time.Millisecond)
		wakers := []*guest.Proc{guest.StartHelper(t, "waker", 4, 250), guest.StartHelper(t, "waker", 4, 250)}
		for _, w := range wakers {
			if rc := w.Wait(t, 60*time.Second); rc != 0 {
				t.Errorf("waker exit = %d, want 0", rc)
			}
		}
		load.Wait(t, 60*time.Second)
		hog.Signal(os.Kill)
		c := s.Counters(t)
		t.Logf("--latency beside an RT task: %d shared waits, %d preempts, %d kicks, %d yields", c.NrLatShared, c.NrLatPreempts, c.NrLatKicks, c.NrLatYields)
		if c.NrLatShared < 1 {
			t.Error("--latency: no light waking task waited in the shared DSQ, want >= 1")
		}
		// The RT task gone and the FIFOs empty, the timer has no work.
		checkTimerSleeps(t, s)
	})

	// --latency: kernel threads that wake beside CPU hogs preempt them, or
	// wait at the head of their CPU's local DSQ, as light user tasks do.
	// Each write to vm/stat_refresh queues work for every CPU's kworker and
	// waits for them all. (How long a write took is logged: it moves with
	// the host.)
	t.Run("lat_kthreads", func(t *testing.T) {
		const writes = 40
		s := guest.StartScheduler(t, "--latency", "--quiet")
		load := guest.Start(t, "stress-ng", "--cpu", strconv.Itoa(2*runtime.NumCPU()), "--timeout", "6", "--quiet")
		time.Sleep(time.Second) // past the hogs' first ticks, so their use is known
		c0 := s.Counters(t)
		took := make([]time.Duration, 0, writes)
		for range writes {
			start := time.Now()
			writeFile(t, "/proc/sys/vm/stat_refresh", "1")
			took = append(took, time.Since(start))
			time.Sleep(20 * time.Millisecond)
		}
		c1 := s.Counters(t)
		load.Wait(t, 60*time.Second)
		slices.Sort(took)
		kthreads := c1.NrLatKthreads - c0.NrLatKthreads
		t.Logf("--latency beside %d CPU hogs: %d kernel threads preempted or waited on their CPU in %d stat_refresh writes; a write took %v (median), %v (max)",
			2*runtime.NumCPU(), kthreads, writes, took[writes/2], took[writes-1])
		if kthreads < writes {
			t.Errorf("--latency: %d kernel threads preempted or waited on their CPU in %d writes, want at least one a write", kthreads, writes)
		}
	})

	// --latency under hackbench, beside the default mode in the same boot:
	// preemption must not feed on itself. It did once: a preempted task
	// counted as busy and was preempted whenever it ran (hackbench 7 times
	// slower, more preemptions than FIFO enqueues). The context switches
	// are logged against the default mode's, not bounded: which of
	// hackbench's tasks run long enough between blocks to be hogs, and so
	// are cut at ticks, depends on the host's speed (1.2-1.7 times the
	// default mode's here, 2.1 on a slower host). latency_bursts checks
	// that cut itself.
	t.Run("latency_hackbench", func(t *testing.T) {
		baseSwitches, _ := hackbenchUnder(t)
		switches, c := hackbenchUnder(t, "--latency")
		placed := c.NrEnqueued + c.NrDdspFromSelect + c.NrDdspFromEnq + c.NrLatPreempts
		t.Logf("--latency, hackbench: %d preempts (%d resumed), %d tick yields, %d kicks for %d placements (%d FIFO, %d direct from select, %d from enqueue); %d context switches, default mode %d",
			c.NrLatPreempts, c.NrLatResumes, c.NrLatYields, c.NrLatKicks, placed, c.NrEnqueued, c.NrDdspFromSelect, c.NrDdspFromEnq, switches, baseSwitches)
		if placed == 0 || c.NrLatPreempts*4 > placed {
			t.Errorf("--latency: %d of %d placements preempted, want under a quarter", c.NrLatPreempts, placed)
		}
	})

	// --latency cuts a task over its budget at a tick only if it is a CPU
	// hog: a task that sleeps between bursts is cut only when another
	// wakes to find it over budget. Cutting every task at ticks (an
	// earlier build did) doubled hackbench's context switches. Here two
	// pingpong pairs per CPU each run bursts of @burst CPU time and sleep
	// while the partner runs, so none uses more than half a CPU, on any
	// host. Cut at ticks, each burst would be cut at least once (6 ms
	// against the 1 ms budget: 1840-2070 yields in 1150-1380 bursts on 7.2
	// and 7.3); as hogs only, a few just cut by a wakeup count (0-54, at
	// most 4.6% of the bursts).
	t.Run("latency_bursts", func(t *testing.T) {
		const burst = 6 * time.Millisecond
		s := guest.StartScheduler(t, "--quiet", "--latency")
		var pairs []*guest.Proc
		for range 2 * runtime.NumCPU() {
			pairs = append(pairs, guest.StartHelper(t, "pingpong", 60, int(burst.Milliseconds())))
		}
		time.Sleep(time.Second) // past the first bursts, before their use is known
		group := [][]*guest.Proc{pairs}
		before, c0 := groupRead(t, group, workload.ThreadRuns), s.Counters(t)
		time.Sleep(5 * time.Second)
		after, c1 := groupRead(t, group, workload.ThreadRuns), s.Counters(t)
		ran := busiest(before[0], after[0], 2)
		bursts, yields := uint64(time.Duration(ran.Ns)/burst), c1.NrLatYields-c0.NrLatYields
		t.Logf("--latency: %d pingpong pairs ran %d bursts of %v, %v a turn; %d tick yields, %d preempts, %d kicks",
			len(pairs), bursts, burst, meanTurn(ran), yields,
			c1.NrLatPreempts-c0.NrLatPreempts, c1.NrLatKicks-c0.NrLatKicks)
		if bursts < 100 || yields*4 > bursts {
			t.Errorf("%d tick yields in %d bursts, want at least 100 bursts and a quarter as many yields at most: tasks that sleep between bursts were cut as hogs", yields, bursts)
		}
	})

	// --latency: CPU hogs at nice -20, 0 and 19, one of each per CPU, share
	// the CPUs close to their weights (98.8, 1.1 and 0.02%), and nice 19
	// still runs. The share is the target (misallocated <= 10%); it
	// also reads how late the host delivers ticks, at which lighter hogs
	// are cut. What sets it, a nice -20 hog's slice scaled by weight to 4
	// slices, is checked in the turns themselves: 80 ms here; not scaled,
	// 15 ms, and nice -20 got 89% (10% misallocated). The hogs are the
	// bench's Go busy loops, whose runtime threads wake now and then.
	t.Run("latency_weights", func(t *testing.T) {
		w := weighHogs(t, func(nice int) *guest.Proc { return guest.StartHelper(t, "spin", 120, nice) })
		if sliceMs := 20.0; w.turnMs[2] < 2*sliceMs {
			t.Errorf("nice -20 hogs ran %.1f ms a turn, want >= %.0f (their slice, scaled by weight, is %.0f ms; not scaled, %.0f)",
				w.turnMs[2], 2*sliceMs, 4*sliceMs, sliceMs)
		}
	})

	// --latency with shell loops for hogs, which never sleep: nothing else
	// waits in nice -20's FIFO as a hog's slice ends, and the hog runs on
	// (lat_kept). Skipped as empty, the FIFO lost its turn at each slice end:
	// at 4 vCPUs nice -20 got 89.5% and nice 0 8.2%.
	t.Run("latency_weights_shell", func(t *testing.T) {
		w := weighHogs(t, func(nice int) *guest.Proc {
			return guest.Start(t, "nice", "-n", strconv.Itoa(nice), "sh", "-c", "while :; do :; done")
		})
		if w.kept == 0 {
			t.Error("lat_kept did not grow: no hog ran on past a slice end with its FIFO empty, and each slice end gave a lighter FIFO a turn")
		}
	})

	// -p: only SCHED_EXT tasks are scheduled by it. -d: a SCHED_EXT process
	// named at load is reverted to SCHED_NORMAL and counted as rejected.
	t.Run("partial_disallow", func(t *testing.T) {
		ext := extSleeper(t)
		victim := extSleeper(t)
		normal := guest.Start(t, "sleep", "60")
		rejected := sysfs(t, "nr_rejected")
		guest.StartScheduler(t, "-p", "-d", strconv.Itoa(victim.Pid()))
		time.Sleep(500 * time.Millisecond)
		if v := sysfs(t, "switch_all"); v != "0" {
			t.Errorf("-p: switch_all = %s, want 0", v)
		}
		if guest.ExtEnabled(t, normal.Pid()) {
			t.Error("-p: a SCHED_NORMAL task is on the ext class")
		}
		if !guest.ExtEnabled(t, ext.Pid()) {
			t.Error("-p: a SCHED_EXT task is not on the ext class")
		}
		if guest.ExtEnabled(t, victim.Pid()) || guest.Policy(t, victim.Pid()) != "0" {
			t.Errorf("-d: the disallowed task is on ext %v with policy %s; want off, 0",
				guest.ExtEnabled(t, victim.Pid()), guest.Policy(t, victim.Pid()))
		}
		before, _ := strconv.Atoi(rejected)
		after, _ := strconv.Atoi(sysfs(t, "nr_rejected"))
		if after-before < 1 {
			t.Errorf("nr_rejected %d -> %d, want it to rise", before, after)
		}
	})

	// -d given a thread's id, not its process's: refused at start, since the
	// scheduler matches tgids and would refuse nothing.
	t.Run("disallow_thread", func(t *testing.T) {
		tid := otherThread(t)
		rc, out := guest.RunOutput(t, 60*time.Second, guest.Binary(t), "-d", strconv.Itoa(tid))
		if rc != exitNoTarget || !strings.Contains(out, "no such process") {
			t.Errorf("-d %d (a thread of pid %d): exit %d, want %d with 'no such process'; got:\n%s",
				tid, os.Getpid(), rc, exitNoTarget, out)
		}
	})

	// -S: the kernel's dump has no scheduler lines.
	t.Run("suppress_dump", func(t *testing.T) {
		guest.StartScheduler(t, "-S", "--quiet")
		dump := sysrqDump(t)
		if strings.Count(dump, "FIFO[")+strings.Count(dump, "QMAP:") != 0 {
			t.Errorf("-S: the dump has scheduler lines:\n%s", dump)
		}
		if !strings.Contains(dump, "sched_ext_dump") {
			t.Error("-S: no dump at all")
		}
	})
}

// rtJob times a two-worker CPU-bound job beside an RT task on CPU 1 under a
// scheduler started with @flags, and returns its wall time and the
// scheduler's counters.
func rtJob(t *testing.T, flags ...string) (int, bpf.Stats) {
	t.Helper()
	s := guest.StartScheduler(t, append([]string{"--quiet"}, flags...)...)
	hog := guest.StartHelper(t, "rt-hog", 20, 1)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	guest.Run(t, 60*time.Second, "stress-ng", "--cpu", "2", "--cpu-ops", "300", "--quiet")
	ms := int(time.Since(start).Milliseconds())
	hog.Signal(os.Kill)
	c := s.Counters(t)
	s.StopUnreg(t)
	return ms, c
}

// busiest is what a group's working threads ran between two reads of
// workload.ThreadRuns, by helper: only each helper's @n busiest threads
// count, which the runtime's own threads (sysmon's many short turns) would
// dilute.
func busiest(before, after []map[int]workload.Runs, n int) workload.Runs {
	var sum workload.Runs
	for j := range after {
		var ran []workload.Runs
		for tid, a := range after[j] {
			b := before[j][tid]
			ran = append(ran, workload.Runs{Ns: a.Ns - b.Ns, Turns: a.Turns - b.Turns})
		}
		slices.SortFunc(ran, func(a, b workload.Runs) int { return cmp.Compare(b.Ns, a.Ns) })
		for _, r := range ran[:min(n, len(ran))] {
			sum.Ns += r.Ns
			sum.Turns += r.Turns
		}
	}
	return sum
}

// weighed is what weighHogs measured.
type weighed struct {
	turnMs [3]float64 // mean turn of the busiest hog at nice 19, 0, -20
	kept   uint64     // slices renewed meanwhile (lat_kept)
}

// weighHogs runs a --latency scheduler and a CPU hog per CPU at nice 19, 0
// and -20, started by @start, for 5 s. It fails the test if their CPU
// shares stray over 10% from the weights or a nice 19 hog never runs.
func weighHogs(t *testing.T, start func(nice int) *guest.Proc) weighed {
	t.Helper()
	s := guest.StartScheduler(t, "--quiet", "--latency")
	// Started lightest first: once the nice -20 hogs run, this nice 0
	// test gets little CPU, as its weight says. They outlive the test,
	// which stops them.
	nices := []int{19, 0, -20}
	var hogs [][]*guest.Proc
	for _, nice := range nices {
		var group []*guest.Proc
		for range runtime.NumCPU() {
			group = append(group, start(nice))
		}
		hogs = append(hogs, group)
	}
	time.Sleep(time.Second)
	before, runsBefore, c0 := groupRead(t, hogs, workload.CPUTicks), groupRead(t, hogs, workload.ThreadRuns), s.Counters(t)
	time.Sleep(5 * time.Second)
	after, runsAfter, c1 := groupRead(t, hogs, workload.CPUTicks), groupRead(t, hogs, workload.ThreadRuns), s.Counters(t)
	var used [3]int64
	var total int64
	for i := range nices {
		for j := range hogs[i] {
			used[i] += after[i][j] - before[i][j]
		}
		total += used[i]
	}
	if total <= 0 {
		t.Fatalf("the hogs used %d ticks", total)
	}
	shares := map[string]float64{}
	var w weighed
	for i, nice := range nices {
		shares[strconv.Itoa(nice)] = pct(used[i], total)
		w.turnMs[i] = meanTurn(busiest(runsBefore[i], runsAfter[i], 1)).Seconds() * 1000
	}
	w.kept = c1.NrLatKept - c0.NrLatKept
	misallocated := bench.Misallocated(shares)
	t.Logf("--latency: CPU shares nice -20/0/19 = %.1f/%.1f/%.1f%% (%d ticks), %.1f%% misallocated; turns %.1f/%.1f/%.1f ms; %d slices kept",
		shares["-20"], shares["0"], shares["19"], total, misallocated, w.turnMs[2], w.turnMs[1], w.turnMs[0], w.kept)
	if misallocated > 10 {
		t.Errorf("%.1f%% of the CPU misallocated against the weights, want <= 10", misallocated)
	}
	for j, p := range hogs[0] {
		if after[0][j] == before[0][j] {
			t.Errorf("nice 19 hog %d (pid %d) did not run in 5 s", j, p.Pid())
		}
	}
	return w
}

// meanTurn is how long @r's threads ran each time they were put on a CPU.
func meanTurn(r workload.Runs) time.Duration {
	if r.Turns == 0 {
		return 0
	}
	return time.Duration(r.Ns / r.Turns)
}

// groupRead reads each helper with @read (workload.CPUTicks,
// workload.ThreadRuns), by group.
func groupRead[T any](t *testing.T, groups [][]*guest.Proc, read func(pid int) (T, error)) [][]T {
	t.Helper()
	out := make([][]T, len(groups))
	for i, g := range groups {
		for _, p := range g {
			v, err := read(p.Pid())
			if err != nil {
				t.Fatal(err)
			}
			out[i] = append(out[i], v)
		}
	}
	return out
}

func pct(part, total int64) float64 { return 100 * float64(part) / float64(total) }

var (
	// A task in the kernel's dump: "R comm[pid] ...", "*R" for a CPU's
	// current task; then its dsq_id=, slice= and no_mig= lines.
	dumpTaskRE  = regexp.MustCompile(`^\s*(\*?)R \S+\[\d+\]`)
	dumpDSQRE   = regexp.MustCompile(`dsq_id=(\S+)`)
	dumpSliceRE = regexp.MustCompile(` slice=(\d+)`)
	dumpNoMigRE = regexp.MustCompile(` no_mig=(\d+)`)
)

// dumpTask is what grantedSlices needs of one task in a kernel dump.
type dumpTask struct {
	curr, inDSQ, noMig bool
	slice              int64
}

// granted says whether the scheduler gave the task its slice: it runs or
// waits in a DSQ. A task still queued in the BPF FIFOs (dsq_id=(n/a), not
// current) shows what is left of its last slice, which may be the kernel's
// own (SCX_SLICE_BYPASS while the scheduler was being enabled). A task with
// migration disabled is inserted by the kernel itself with SCX_SLICE_DFL,
// since qmap does not set SCX_OPS_ENQ_MIGRATION_DISABLED.
func (d dumpTask) granted() bool { return (d.curr || d.inDSQ) && !d.noMig && d.slice >= 0 }

// grantedSlices are the slices in a kernel dump that the scheduler granted.
func grantedSlices(dump string) []int64 {
	var out []int64
	task := dumpTask{slice: -1}
	flush := func() {
		if task.granted() {
			out = append(out, task.slice)
		}
	}
	for line := range strings.SplitSeq(dump, "\n") {
		_, text, ok := strings.Cut(line, "sched_ext_dump: ")
		if !ok {
			continue
		}
		if m := dumpTaskRE.FindStringSubmatch(text); m != nil {
			flush()
			task = dumpTask{curr: m[1] == "*", slice: -1}
			continue
		}
		if m := dumpDSQRE.FindStringSubmatch(text); m != nil {
			task.inDSQ = m[1] != "(n/a)"
		}
		if m := dumpSliceRE.FindStringSubmatch(text); m != nil {
			task.slice, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := dumpNoMigRE.FindStringSubmatch(text); m != nil {
			task.noMig = m[1] != "0"
		}
	}
	flush()
	return out
}

// maxSlice is the largest slice the scheduler granted, in a kernel dump
// taken under load with a scheduler started with @flags.
func maxSlice(t *testing.T, flags ...string) int64 {
	t.Helper()
	// One dump is one instant: the tasks running then may all be near the
	// end of their slices. Three dumps, a second apart, see the slices the
	// scheduler grants rather than what one moment left of them.
	const dumps = 3
	s := guest.StartScheduler(t, append([]string{"--quiet"}, flags...)...)
	w := guest.Start(t, "stress-ng", "--cpu", "4", "--timeout", "9", "--quiet")
	time.Sleep(1500 * time.Millisecond)
	var top int64
	for i := range dumps {
		dump := sysrqDump(t)
		slices := grantedSlices(dump)
		if len(slices) == 0 {
			t.Errorf("dump %d: no granted slice (%s):\n%s", i+1, strings.Join(flags, " "), head(dump, 40))
		}
		for _, n := range slices {
			top = max(top, n)
		}
	}
	w.Wait(t, 60*time.Second)
	s.StopUnreg(t)
	return top
}

var dsqRE = regexp.MustCompile(`(?m)^shared_dsq: nr=\d+ pids=\[([\d ]*)\]`)

// dsqUserTasks is how many user tasks -P's samples of the shared DSQ held
// in all, under a load of CPU hogs with -b @batch.
func dsqUserTasks(t *testing.T, batch string) int {
	t.Helper()
	s := guest.StartScheduler(t, "-P", "-b", batch)
	guest.Run(t, 60*time.Second, "stress-ng", "--cpu", "16", "--timeout", "8", "--quiet")
	s.StopUnreg(t)
	n := 0
	for _, m := range dsqRE.FindAllStringSubmatch(s.Output(t), -1) {
		for _, f := range strings.Fields(m[1]) {
			if pid, _ := strconv.Atoi(f); !isKthread(pid) {
				n++
			}
		}
	}
	return n
}

// isKthread reports whether @pid is a kernel thread (PF_KTHREAD in
// /proc/PID/stat's flags). A task that is gone counts as a user task: the
// kernel's threads outlive a test, a stress-ng worker does not.
func isKthread(pid int) bool {
	_, f, err := procstat.Read(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || len(f) <= procstat.Flags {
		return false
	}
	flags, _ := strconv.ParseUint(f[procstat.Flags], 10, 64)
	const pfKthread = 0x00200000
	return flags&pfKthread != 0
}

// extSleeper starts a sleeping task with the SCHED_EXT policy and waits
// until the policy is set.
func extSleeper(t *testing.T) *guest.Proc {
	t.Helper()
	p := guest.StartHelper(t, "ext-sleep", 60, 0)
	p.WaitReady(t)
	return p
}

// otherThread is the id of a thread of this process that is not its leader.
func otherThread(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		if tid, _ := strconv.Atoi(e.Name()); tid != os.Getpid() {
			return tid
		}
	}
	t.Fatal("this process has no thread but its leader")
	return 0
}

func writeFile(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		t.Fatalf("writing %q to %s: %v", v, path, err)
	}
}

func TestGrantedSlices(t *testing.T) {
	dump := `kworker-1 [000] 1.0: sched_ext_dump:  *R stress-ng[300] *root -1ms
kworker-1 [000] 1.0: sched_ext_dump:       sticky/holding_cpu=-1/-1 dsq_id=(n/a)
kworker-1 [000] 1.0: sched_ext_dump:       dsq_vtime=0 slice=1500000 weight=100
kworker-1 [000] 1.0: sched_ext_dump:    R python3[301] *root -5ms
kworker-1 [000] 1.0: sched_ext_dump:       sticky/holding_cpu=-1/-1 dsq_id=(n/a)
kworker-1 [000] 1.0: sched_ext_dump:       dsq_vtime=0 slice=5000000 weight=100
kworker-1 [000] 1.0: sched_ext_dump:    R bash[302] *root -2ms
kworker-1 [000] 1.0: sched_ext_dump:       sticky/holding_cpu=-1/-1 dsq_id=0x0
kworker-1 [000] 1.0: sched_ext_dump:       dsq_vtime=0 slice=2000000 weight=100
kworker-1 [000] 1.0: sched_ext_dump:       cpus=3 no_mig=0
kworker-1 [000] 1.0: sched_ext_dump:    R kworker/0:1[303] *root -2ms
kworker-1 [000] 1.0: sched_ext_dump:       sticky/holding_cpu=-1/-1 dsq_id=0x8000000000000002
kworker-1 [000] 1.0: sched_ext_dump:       dsq_vtime=0 slice=20000000 weight=100
kworker-1 [000] 1.0: sched_ext_dump:       cpus=1 no_mig=1
`
	got := grantedSlices(dump)
	if len(got) != 2 || got[0] != 1500000 || got[1] != 2000000 {
		t.Errorf("grantedSlices = %v, want [1500000 2000000]: the running task and the one in a DSQ, not the one queued in BPF nor the kernel-inserted one with migration disabled", got)
	}
}

func TestIsKthread(t *testing.T) {
	if isKthread(os.Getpid()) {
		t.Error("this test process counts as a kernel thread")
	}
	if _, err := os.Stat("/proc/2/stat"); err == nil && !isKthread(2) {
		t.Error("kthreadd (pid 2) does not count as a kernel thread")
	}
}

// hackbenchUnder runs hackbench under a scheduler started with @flags and
// returns the context switches it took and the scheduler's counters.
func hackbenchUnder(t *testing.T, flags ...string) (uint64, bpf.Stats) {
	t.Helper()
	s := guest.StartScheduler(t, flags...)
	before := contextSwitches(t)
	if rc := guest.Run(t, 120*time.Second, "hackbench", "-g", "4", "-f", "10", "-l", "400"); rc != 0 {
		t.Fatalf("%v: hackbench exit = %d, want 0", flags, rc)
	}
	switches := contextSwitches(t) - before
	c := s.Counters(t)
	s.StopUnreg(t)
	return switches, c
}

// contextSwitches is the guest's count of context switches since boot.
func contextSwitches(t *testing.T) uint64 {
	t.Helper()
	for line := range strings.Lines(readTrim(t, "/proc/stat")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ctxt "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("/proc/stat: ctxt %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("/proc/stat has no ctxt line")
	return 0
}
