// SPDX-License-Identifier: Apache-2.0

// Package stats is the one place that knows the scheduler's counters: their
// names, what they mean, how to snapshot them and how to render them.
package stats

import (
	"fmt"
	"strings"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

// Counter describes one of the scheduler's statistics: a field of the BPF
// side's struct qmap_stats (bpf.Stats).
type Counter struct {
	Name  string // the name in every output, e.g. "enq"
	BPF   string // the struct qmap_stats field, as the C names it
	Help  string
	Gauge bool                     // a level, not a running total: no rate is shown
	Field func(*bpf.Stats) *uint64 // where it lives in bpf.Stats
}

// Counters lists the counters in display order; TestCountersCoverStats
// keeps it and struct qmap_stats in step.
var Counters = []Counter{
	{"enq", "nr_enqueued", "tasks queued on a FIFO by ops.enqueue", false, func(s *bpf.Stats) *uint64 { return &s.NrEnqueued }},
	{"dsp", "nr_dispatched", "tasks moved out of a FIFO by ops.dispatch", false, func(s *bpf.Stats) *uint64 { return &s.NrDispatched }},
	{"deq", "nr_dequeued", "tasks taken back from the scheduler (ops.dequeue)", false, func(s *bpf.Stats) *uint64 { return &s.NrDequeued }},
	{"ddsp_sel", "nr_ddsp_from_select", "wakeups sent straight to an idle CPU found by ops.select_cpu", false, func(s *bpf.Stats) *uint64 { return &s.NrDdspFromSelect }},
	{"ddsp_enq", "nr_ddsp_from_enq", "tasks sent straight to an idle CPU found by ops.enqueue", false, func(s *bpf.Stats) *uint64 { return &s.NrDdspFromEnq }},
	{"overflow", "nr_overflow", "enqueues that found their FIFO full and used the shared DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrOverflow }},
	{"exiting", "nr_exiting", "exiting tasks queued on the shared DSQ, as their PID may be gone before they last run", false, func(s *bpf.Stats) *uint64 { return &s.NrExiting }},
	{"core", "nr_core_sched_execed", "dequeues forced by core scheduling", false, func(s *bpf.Stats) *uint64 { return &s.NrCoreSchedExeced }},
	{"lowpri", "nr_lowpri_queued", "nice 19 user tasks parked in the low-priority DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrLowpriQueued }},
	{"reenq_total", "reenq_total", "tasks the kernel handed back to ops.enqueue (SCX_ENQ_REENQ)", false, func(s *bpf.Stats) *uint64 { return &s.ReenqTotal }},
	{"reenq_cpu0", "reenq_cpu0", "reenqueues of tasks on CPU 0", false, func(s *bpf.Stats) *uint64 { return &s.ReenqCpu0 }},
	{"reenq_kfunc", "reenq_kfunc", "reenqueues asked for by scx_bpf_dsq_reenq()", false, func(s *bpf.Stats) *uint64 { return &s.ReenqKfunc }},
	{"reenq_immed", "reenq_immed", "reenqueues of SCX_ENQ_IMMED inserts that could not run at once", false, func(s *bpf.Stats) *uint64 { return &s.ReenqImmed }},
	{"reenq_preempted", "reenq_preempted", "reenqueues of IMMED tasks preempted by a higher class", false, func(s *bpf.Stats) *uint64 { return &s.ReenqPreempted }},
	{"reenq_cap", "reenq_cap", "reenqueues for a missing sub-scheduler capability (7.3+)", false, func(s *bpf.Stats) *uint64 { return &s.ReenqCap }},
	{"reenq_other", "reenq_other", "reenqueues with a reason this build does not know", false, func(s *bpf.Stats) *uint64 { return &s.ReenqOther }},
	{"lowpri_reenq_requests", "lowpri_reenq_requests", "scx_bpf_dsq_reenq() calls on the low-priority DSQ", false, func(s *bpf.Stats) *uint64 { return &s.LowpriReenqRequests }},
	{"remote_reenq_requests", "remote_reenq_requests", "scx_bpf_dsq_reenq() calls on a CPU's local DSQ behind an RT/DL task", false, func(s *bpf.Stats) *uint64 { return &s.RemoteReenqRequests }},
	{"timer_runs", "nr_timer_runs", "runs of the 10 ms timer, which sleeps while it has no low-priority, RT-held, -L or 7.3 partition work", false, func(s *bpf.Stats) *uint64 { return &s.NrTimerRuns }},
	{"immed_stress", "nr_immed_stress", "-F inserts into the task's own, possibly busy, local DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrImmedStress }},
	{"exp_local", "nr_expedited_local", "-H tasks moved to the dispatching CPU's local DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrExpeditedLocal }},
	{"exp_remote", "nr_expedited_remote", "-H tasks moved to another CPU's local DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrExpeditedRemote }},
	{"exp_timer", "nr_expedited_from_timer", "-H moves made by the 1 s monitor timer", false, func(s *bpf.Stats) *uint64 { return &s.NrExpeditedFromTimer }},
	{"exp_lost", "nr_expedited_lost", "-H moves that lost a race with the task", false, func(s *bpf.Stats) *uint64 { return &s.NrExpeditedLost }},
	{"cpu_online", "nr_cpu_online", "CPUs that came online while attached", false, func(s *bpf.Stats) *uint64 { return &s.NrCpuOnline }},
	{"cpu_offline", "nr_cpu_offline", "CPUs that went offline while attached", false, func(s *bpf.Stats) *uint64 { return &s.NrCpuOffline }},
	{"lat_kicks", "nr_lat_kicks", "-L: busy CPUs preempted because a waking task queued behind a task over its budget", false, func(s *bpf.Stats) *uint64 { return &s.NrLatKicks }},
	{"lat_preempts", "nr_lat_preempts", "-L: waking tasks that ran little lately, put straight onto a CPU running a busier task, preempting it", false, func(s *bpf.Stats) *uint64 { return &s.NrLatPreempts }},
	{"lat_yields", "nr_lat_yields", "-L: tasks over their budget whose slice ops.tick ended: a CPU hog for a task that ran little lately, a heavier one or a kernel thread; any task for one waiting on its CPU's local DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrLatYields }},
	{"lat_local", "nr_lat_local", "-L: waking tasks that ran little lately and may run on one CPU only, which could not preempt and wait on that CPU's local DSQ, ahead of the FIFOs", false, func(s *bpf.Stats) *uint64 { return &s.NrLatLocal }},
	{"lat_local_full", "nr_lat_local_full", "-L: waking tasks lat_local would have taken, sent on to the shared DSQ or the FIFOs: their CPU's local DSQ had taken two such since that CPU last dispatched", false, func(s *bpf.Stats) *uint64 { return &s.NrLatLocalFull }},
	{"lat_shared", "nr_lat_shared", "-L: waking tasks that ran little lately, which could not preempt nor wait on their own CPU, queued on the shared DSQ, ahead of the FIFOs", false, func(s *bpf.Stats) *uint64 { return &s.NrLatShared }},
	{"lat_resumes", "nr_lat_resumes", "-L: tasks a waking task preempted within their budget, put back first on their CPU with the slice they had left", false, func(s *bpf.Stats) *uint64 { return &s.NrLatResumes }},
	{"lat_kept", "nr_lat_kept", "-L: slices renewed for a task whose own turn in its FIFO came up again as the slice ended, the FIFO holding nothing else", false, func(s *bpf.Stats) *uint64 { return &s.NrLatKept }},
	{"lat_kthreads", "nr_lat_kthreads", "-L: of lat_preempts and lat_local, kernel threads that woke: they skip the FIFOs, and without -L wait in the shared DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrLatKthreads }},
	{"slice_cut", "nr_slice_cut", "tasks that left a deep FIFO with a slice cut short so that every waiting task runs within 1 s", false, func(s *bpf.Stats) *uint64 { return &s.NrSliceCut }},
	{"sub_dsp", "nr_sub_dispatched", "dispatches this scheduler handed to its sub-schedulers (scx_bpf_sub_dispatch())", false, func(s *bpf.Stats) *uint64 { return &s.NrSubDispatched }},
	{"cap_grants", "nr_cap_grants", "7.3: cids this scheduler granted to a sub-scheduler, whole or for its turn of the shared ones", false, func(s *bpf.Stats) *uint64 { return &s.NrCapGrants }},
	{"cap_revokes", "nr_cap_revokes", "7.3: cids this scheduler took back from a sub-scheduler", false, func(s *bpf.Stats) *uint64 { return &s.NrCapRevokes }},
	{"wrong_cid", "nr_wrong_cid", "-J wrong-cid: tasks inserted onto a cid this sub-scheduler does not hold; under a root with -B 0 each comes back as reenq_cap", false, func(s *bpf.Stats) *uint64 { return &s.NrWrongCid }},
	{"stranded", "nr_stranded", "7.3: tasks restricted to cids this scheduler does not hold, sent to one of theirs (a child asks for rescue), at enqueue or from the shared DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrStranded }},
	{"fifo_kept", "nr_fifo_kept", "enqueues of a task whose entry from an earlier enqueue still waited in its FIFO (its CPU mask, policy or cgroup changed while it waited): it keeps that entry and its place", false, func(s *bpf.Stats) *uint64 { return &s.NrFifoKept }},
	{"mask_lost", "nr_mask_lost", "tasks ops.dispatch popped for its CPU whose CPU mask lost that CPU before they reached it (a sched_setaffinity() meanwhile), sent on to the shared DSQ", false, func(s *bpf.Stats) *uint64 { return &s.NrMaskLost }},
	{"idle_kicks", "nr_idle_kicks", "tasks queued in a FIFO or the shared DSQ while a CPU they may run on was idle: that CPU was woken to dispatch", false, func(s *bpf.Stats) *uint64 { return &s.NrIdleKicks }},
	{"idle_rechecks", "nr_idle_rechecks", "CPUs marked idle while tasks waited in the FIFOs or the shared DSQ, kicked to dispatch once more: a push had landed after their dispatch looked, or what waits is for other CPUs", false, func(s *bpf.Stats) *uint64 { return &s.NrIdleRechecks }},
	{"cpuperf_min", "cpuperf_min", "lowest current CPU performance level (1024 = full)", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfMin }},
	{"cpuperf_avg", "cpuperf_avg", "capacity-weighted average current performance level", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfAvg }},
	{"cpuperf_max", "cpuperf_max", "highest current CPU performance level", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfMax }},
	{"cpuperf_target_min", "cpuperf_target_min", "lowest performance target set by ops.tick", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfTargetMin }},
	{"cpuperf_target_avg", "cpuperf_target_avg", "average performance target set by ops.tick", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfTargetAvg }},
	{"cpuperf_target_max", "cpuperf_target_max", "highest performance target set by ops.tick", true, func(s *bpf.Stats) *uint64 { return &s.CpuperfTargetMax }},
}

// Source reads the scheduler's statistics.
type Source interface {
	Stats() (bpf.Stats, error)
}

// Snapshot is the value of every counter at one moment. Once published
// (Cache.Publish) it is shared by readers and must not be changed.
type Snapshot struct {
	Time   time.Time
	Values map[string]uint64 // by Counter.Name
	Events []Event           // the kernel's event counters; nil when unknown
	Subs   []Sub             // the sub-schedulers attached below, by cgroup id
}

// Sub is a sub-scheduler attached below this one, and how many dispatches
// this one handed it.
type Sub struct {
	CgroupID   uint64
	Dispatched uint64
}

// SubSource is a Source that also knows its sub-schedulers.
type SubSource interface {
	Subs() ([]Sub, error)
}

// Take reads every counter from @src.
func Take(src Source, now time.Time) (Snapshot, error) {
	st, err := src.Stats()
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	s := Snapshot{Time: now, Values: make(map[string]uint64, len(Counters))}
	for _, c := range Counters {
		s.Values[c.Name] = *c.Field(&st)
	}
	if ss, ok := src.(SubSource); ok {
		if s.Subs, err = ss.Subs(); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: %w", err)
		}
	}
	return s, nil
}

// Stats returns the counters of @s in the BPF side's layout, for code that
// wants them by field rather than by name.
func (s Snapshot) Stats() bpf.Stats {
	var st bpf.Stats
	for _, c := range Counters {
		*c.Field(&st) = s.Values[c.Name]
	}
	return st
}

// WithEvents returns @s with the kernel's event counters read by @r (nil:
// none). On error @s is returned unchanged: the counters stay usable.
func (s Snapshot) WithEvents(r *EventsReader) (Snapshot, error) {
	if r == nil {
		return s, nil
	}
	events, err := r.Read()
	if err != nil {
		return s, err
	}
	s.Events = events
	return s, nil
}

// Line renders @cur as one line of totals, each followed by its rate per
// second since @prev (omitted when @prev is the zero Snapshot).
func Line(prev, cur Snapshot) string {
	var b strings.Builder
	secs := cur.Time.Sub(prev.Time).Seconds()
	for i, c := range Counters {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := cur.Values[c.Name]
		fmt.Fprintf(&b, "%s=%d", c.Name, v)
		if prev.Values != nil && secs > 0 && !c.Gauge {
			d := v - prev.Values[c.Name]
			if v < prev.Values[c.Name] {
				d = 0
			}
			fmt.Fprintf(&b, "(+%.0f/s)", float64(d)/secs)
		}
	}
	return b.String()
}
