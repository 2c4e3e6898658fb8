// SPDX-License-Identifier: Apache-2.0

// Package stats is the one place that knows the scheduler's counters: their
// names, what they mean, how to snapshot them and how to render them.
package stats

import (
	"fmt"
	"strings"
	"time"
)

// Counter describes one of the scheduler's BPF values.
type Counter struct {
	Name  string // the name in every output, e.g. "enq"
	BPF   string // the BPF global it is read from
	Help  string
	Gauge bool // a level, not a running total: no rate is shown
}

// Counters lists the counters in display order.
var Counters = []Counter{
	{"enq", "nr_enqueued", "tasks queued on a FIFO by ops.enqueue", false},
	{"dsp", "nr_dispatched", "tasks moved out of a FIFO by ops.dispatch", false},
	{"deq", "nr_dequeued", "tasks taken back from the scheduler (ops.dequeue)", false},
	{"ddsp_sel", "nr_ddsp_from_select", "wakeups sent straight to an idle CPU found by ops.select_cpu", false},
	{"ddsp_enq", "nr_ddsp_from_enq", "tasks sent straight to an idle CPU found by ops.enqueue", false},
	{"overflow", "nr_overflow", "enqueues that found their FIFO full and used the shared DSQ", false},
	{"exiting", "nr_exiting", "exiting tasks queued on the shared DSQ, as their PID may be gone before they last run", false},
	{"core", "nr_core_sched_execed", "dequeues forced by core scheduling", false},
	{"lowpri", "nr_lowpri_queued", "nice 19 user tasks parked in the low-priority DSQ", false},
	{"reenq_total", "reenq_total", "tasks the kernel handed back to ops.enqueue (SCX_ENQ_REENQ)", false},
	{"reenq_cpu0", "reenq_cpu0", "reenqueues of tasks on CPU 0", false},
	{"reenq_kfunc", "reenq_kfunc", "reenqueues asked for by scx_bpf_dsq_reenq()", false},
	{"reenq_immed", "reenq_immed", "reenqueues of SCX_ENQ_IMMED inserts that could not run at once", false},
	{"reenq_preempted", "reenq_preempted", "reenqueues of IMMED tasks preempted by a higher class", false},
	{"reenq_cap", "reenq_cap", "reenqueues for a missing sub-scheduler capability (7.3+)", false},
	{"reenq_other", "reenq_other", "reenqueues with a reason this build does not know", false},
	{"lowpri_reenq_requests", "lowpri_reenq_requests", "scx_bpf_dsq_reenq() calls on the low-priority DSQ", false},
	{"remote_reenq_requests", "remote_reenq_requests", "scx_bpf_dsq_reenq() calls on a CPU's local DSQ behind an RT/DL task", false},
	{"immed_stress", "nr_immed_stress", "-F inserts into the task's own, possibly busy, local DSQ", false},
	{"exp_local", "nr_expedited_local", "-H tasks moved to the dispatching CPU's local DSQ", false},
	{"exp_remote", "nr_expedited_remote", "-H tasks moved to another CPU's local DSQ", false},
	{"exp_timer", "nr_expedited_from_timer", "-H moves made by the 1 s monitor timer", false},
	{"exp_lost", "nr_expedited_lost", "-H moves that lost a race with the task", false},
	{"cpu_online", "nr_cpu_online", "CPUs that came online while attached", false},
	{"cpu_offline", "nr_cpu_offline", "CPUs that went offline while attached", false},
	{"lat_kicks", "nr_lat_kicks", "-L: busy CPUs preempted because a waking task queued behind a task over its budget", false},
	{"lat_yields", "nr_lat_yields", "-L: tasks over their budget whose slice ops.tick ended because others waited", false},
	{"cpuperf_min", "cpuperf_min", "lowest current CPU performance level (1024 = full)", true},
	{"cpuperf_avg", "cpuperf_avg", "capacity-weighted average current performance level", true},
	{"cpuperf_max", "cpuperf_max", "highest current CPU performance level", true},
	{"cpuperf_target_min", "cpuperf_target_min", "lowest performance target set by ops.tick", true},
	{"cpuperf_target_avg", "cpuperf_target_avg", "average performance target set by ops.tick", true},
	{"cpuperf_target_max", "cpuperf_target_max", "highest performance target set by ops.tick", true},
}

// Source reads a counter by its BPF name.
type Source interface {
	Counter(bpfName string) (uint64, error)
}

// Snapshot is the value of every counter at one moment. Once published
// (Cache.Publish) it is shared by readers and must not be changed.
type Snapshot struct {
	Time   time.Time
	Values map[string]uint64 // by Counter.Name
	Events []Event           // the kernel's event counters; nil when unknown
}

// Take reads every counter from @src.
func Take(src Source, now time.Time) (Snapshot, error) {
	s := Snapshot{Time: now, Values: make(map[string]uint64, len(Counters))}
	for _, c := range Counters {
		v, err := src.Counter(c.BPF)
		if err != nil {
			return Snapshot{}, fmt.Errorf("snapshot: %w", err)
		}
		s.Values[c.Name] = v
	}
	return s, nil
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
