// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"fmt"
	"math"
	"strings"
)

// field is one "label=value" item of the human block.
type field struct {
	label  string
	name   string                // a Counter.Name; "" for a derived value
	derive func(Snapshot) string // derived values have no delta or rate
}

func counter(name string) field                           { return field{label: name, name: name} }
func relabel(label, name string) field                    { return field{label: label, name: name} }
func derived(label string, f func(Snapshot) string) field { return field{label: label, derive: f} }

// blockLine is one line of the block; the first line has no group label and
// starts with "enq=" (scripts look for it).
type blockLine struct {
	group  string
	fields []field
}

// triple renders three gauges as "a/b/c".
func triple(a, b, c string) func(Snapshot) string {
	return func(s Snapshot) string {
		return fmt.Sprintf("%d/%d/%d", s.Values[a], s.Values[b], s.Values[c])
	}
}

// layout groups the counters the way upstream scx_qmap prints them.
// TestLayoutCoversCounters keeps it in step with Counters.
var layout = []blockLine{
	{"", []field{
		counter("enq"), counter("dsp"),
		derived("delta", func(s Snapshot) string { return fmt.Sprint(queued(s)) }),
		relabel("reenq", "reenq_total"), relabel("reenq/cpu0", "reenq_cpu0"),
		counter("deq"), counter("core"), counter("ddsp_sel"), counter("ddsp_enq"),
	}},
	// Reenqueues by reason, then what the scheduler did to cause them (split
	// so that neither line wraps in a 200-column terminal).
	{"reenq", []field{
		counter("reenq_kfunc"), counter("reenq_immed"), counter("reenq_preempted"),
		counter("reenq_cap"), counter("reenq_other"),
	}},
	{"requests", []field{counter("lowpri_reenq_requests"), counter("remote_reenq_requests"), counter("immed_stress")}},
	{"expedite", []field{counter("exp_local"), counter("exp_remote"), counter("exp_timer"), counter("exp_lost")}},
	{"latency", []field{counter("lat_preempts"), counter("lat_local"), counter("lat_local_full"), counter("lat_shared"), counter("lat_kicks"), counter("lat_yields"), counter("lat_resumes"), counter("lat_kept"), counter("lat_kthreads"), counter("slice_cut")}},
	{"other", []field{counter("overflow"), counter("exiting"), counter("lowpri"), counter("cpu_online"), counter("cpu_offline"), counter("timer_runs"), counter("fifo_kept"), counter("mask_lost"), counter("idle_kicks"), counter("idle_rechecks")}},
	{"hier", []field{counter("sub_dsp"), counter("cap_grants"), counter("cap_revokes"), counter("wrong_cid"), counter("stranded")}},
	{"cpuperf", []field{
		derived("cur min/avg/max", triple("cpuperf_min", "cpuperf_avg", "cpuperf_max")),
		derived("target min/avg/max", triple("cpuperf_target_min", "cpuperf_target_avg", "cpuperf_target_max")),
	}},
}

const groupWidth = len("expedite:")

// Render renders @cur as the multi-line block printed every interval. When
// @prev is an earlier snapshot, each counter also shows its change since
// @prev and the rate per second; gauges only show their value.
func Render(prev, cur Snapshot) string {
	secs := cur.Time.Sub(prev.Time).Seconds()
	withDelta := prev.Values != nil && secs > 0
	var b strings.Builder
	for _, l := range layout {
		if l.group != "" {
			fmt.Fprintf(&b, "  %-*s", groupWidth+1, l.group+":")
		}
		for i, f := range l.fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			switch {
			case f.derive != nil:
				fmt.Fprintf(&b, "%s=%s", f.label, f.derive(cur))
			case withDelta && !isGauge(f.name):
				v := cur.Values[f.name]
				writeCounter(&b, f.label, int64(v), int64(delta(prev.Values[f.name], v)), secs)
			default:
				fmt.Fprintf(&b, "%s=%d", f.label, cur.Values[f.name])
			}
		}
		b.WriteByte('\n')
	}
	if len(cur.Events) > 0 {
		fmt.Fprintf(&b, "  %-*s%s\n", groupWidth+1, "kernel:", eventsSummary(prev, cur, withDelta, secs))
	}
	if len(cur.Subs) > 0 {
		fmt.Fprintf(&b, "  %-*s%s\n", groupWidth+1, "subs:", subsSummary(prev, cur, withDelta, secs))
	}
	return b.String()
}

// subsSummary lists each sub-scheduler as cgroup-<id>=<dispatches handed to it>.
func subsSummary(prev, cur Snapshot, withDelta bool, secs float64) string {
	var b strings.Builder
	for _, s := range cur.Subs {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		name := fmt.Sprintf("cgroup-%d", s.CgroupID)
		if !withDelta {
			fmt.Fprintf(&b, "%s=%d", name, s.Dispatched)
			continue
		}
		var before uint64
		for _, p := range prev.Subs {
			if p.CgroupID == s.CgroupID {
				before = p.Dispatched
			}
		}
		writeCounter(&b, name, int64(s.Dispatched), int64(delta(before, s.Dispatched)), secs)
	}
	return b.String()
}

// eventsSummary lists the kernel events that changed since @prev, or the
// non-zero ones on a first sample: most of the dozen or so stay at 0.
func eventsSummary(prev, cur Snapshot, withDelta bool, secs float64) string {
	before := make(map[string]int64, len(prev.Events))
	for _, e := range prev.Events {
		before[e.Name] = e.Value
	}
	var b strings.Builder
	for _, e := range cur.Events {
		name := strings.TrimPrefix(e.Name, "SCX_EV_")
		d := e.Value - before[e.Name]
		switch {
		case withDelta && d > 0:
		case !withDelta && e.Value != 0:
		default:
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if withDelta {
			writeCounter(&b, name, e.Value, d, secs)
		} else {
			fmt.Fprintf(&b, "%s=%d", name, e.Value)
		}
	}
	if b.Len() == 0 {
		if withDelta {
			return fmt.Sprintf("no change (%d events)", len(cur.Events))
		}
		return fmt.Sprintf("all 0 (%d events)", len(cur.Events))
	}
	return b.String()
}

// writeCounter writes "name=value (+delta, rate/s)".
func writeCounter(b *strings.Builder, name string, v, d int64, secs float64) {
	fmt.Fprintf(b, "%s=%d (+%d, %s/s)", name, v, d, formatRate(float64(d)/secs))
}

// formatRate keeps whole rates whole and shows one decimal for small ones.
func formatRate(r float64) string {
	if r == math.Trunc(r) || r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

// delta is the increase from @prev to @cur; a counter that went back (a new
// scheduler instance) counts as no increase rather than wrapping.
func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

func isGauge(name string) bool {
	c, ok := lookup(name)
	return ok && c.Gauge
}

func isCounter(name string) bool {
	_, ok := lookup(name)
	return ok
}

func lookup(name string) (Counter, bool) {
	for _, c := range Counters {
		if c.Name == name {
			return c, true
		}
	}
	return Counter{}, false
}

// Summary is one short line for systemd's STATUS=: the main rates since
// @prev and the tasks still in the FIFOs.
func Summary(prev, cur Snapshot) string {
	secs := cur.Time.Sub(prev.Time).Seconds()
	rate := func(name string) float64 {
		if prev.Values == nil || secs <= 0 {
			return 0
		}
		return float64(delta(prev.Values[name], cur.Values[name])) / secs
	}
	return fmt.Sprintf("enq %.0f/s, dsp %.0f/s, reenq %.0f/s, lowpri %.0f/s, queued %d",
		rate("enq"), rate("dsp"), rate("reenq_total"), rate("lowpri"), queued(cur))
}

// queued is the tasks still in the FIFOs (or lost by fault injection).
func queued(s Snapshot) int64 {
	return int64(s.Values["enq"] - s.Values["dsp"])
}
