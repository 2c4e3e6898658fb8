// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

// tracefsDir is where setup() mounts the guest's tracefs.
const tracefsDir = "/sys/kernel/tracing"

// wakeTrace records the scheduler's part of cyclictest's latency: for each
// wakeup of a thread named comm, the time from the kernel's sched_wakeup
// event to the sched_switch that runs it. cyclictest's own figure adds the
// time from its timer's expiry to the wakeup, which under emulation is
// mostly the host's: a vCPU thread waiting for a host core to run on.
type wakeTrace struct{}

// wakeEvents are the events a wakeTrace enables, with their filters (%[1]q
// is the command). Switches out are traced too: a wakeup of a task still on
// its CPU is followed by its switch out, not in, and makes no sample.
var wakeEvents = []struct{ event, filter string }{
	{"sched/sched_wakeup", "comm == %[1]q"},
	{"sched/sched_switch", "next_comm == %[1]q || prev_comm == %[1]q"},
}

// startWakeTrace clears the trace buffer and starts recording @comm's
// wakeups. The clock is "mono", one clock for all CPUs: a task can wake on
// one CPU and run on another.
func startWakeTrace(comm string) (*wakeTrace, error) {
	w := &wakeTrace{}
	steps := [][2]string{
		{"tracing_on", "0"},
		{"trace_clock", "mono"},
		{"buffer_size_kb", "4096"},
		{"trace", ""},
	}
	for _, e := range wakeEvents {
		steps = append(steps, [2]string{"events/" + e.event + "/filter", fmt.Sprintf(e.filter, comm)})
		steps = append(steps, [2]string{"events/" + e.event + "/enable", "1"})
	}
	steps = append(steps, [2]string{"tracing_on", "1"})
	for _, s := range steps {
		if err := w.write(s[0], s[1]); err != nil {
			w.reset()
			return nil, err
		}
	}
	return w, nil
}

func (w *wakeTrace) write(file, value string) error {
	if err := os.WriteFile(filepath.Join(tracefsDir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("tracefs: writing %q to %s: %w", value, file, err)
	}
	return nil
}

// reset turns the events and their filters off, as they were.
func (w *wakeTrace) reset() {
	for _, e := range wakeEvents {
		_ = w.write("events/"+e.event+"/enable", "0")
		_ = w.write("events/"+e.event+"/filter", "0")
	}
	_ = w.write("tracing_on", "1")
}

// stop ends the recording and returns the delays in µs, leaving out task
// @skip (cyclictest's main thread, which measures nothing; 0: none). A
// trace whose ring buffer lost events is refused: its pairs could be wrong.
func (w *wakeTrace) stop(skip int) (bench.Histogram, error) {
	if err := w.write("tracing_on", "0"); err != nil {
		w.reset()
		return bench.Histogram{}, err
	}
	f, err := os.Open(filepath.Join(tracefsDir, "trace"))
	if err != nil {
		w.reset()
		return bench.Histogram{}, fmt.Errorf("reading the trace: %w", err)
	}
	h, lost, perr := parseWakeTrace(f, strconv.Itoa(skip))
	f.Close()
	w.reset()
	_ = w.write("trace", "")
	switch {
	case perr != nil:
		return h, perr
	case lost > 0:
		return bench.Histogram{}, fmt.Errorf("the trace buffer lost %d events", lost)
	case h.Total() == 0:
		return h, errors.New("the trace holds no wakeup that ran")
	}
	return h, nil
}

// parseWakeTrace reads a tracefs text trace of sched_wakeup and
// sched_switch events and returns, as a histogram in µs, the time from each
// task's wakeup but pid @skip's to the switch that ran it, and how many
// events the ring buffer reported lost. A switch to a task with no wakeup
// pending (it was preempted, not asleep) is no sample, nor is a wakeup that
// found the task on its CPU (it is switched out before it is switched in
// again): paired with the switch back after a preemption, it read as a wait
// of all the time the task ran and then waited.
func parseWakeTrace(r io.Reader, skip string) (bench.Histogram, uint64, error) {
	woke := map[string]uint64{} // pid: wakeup time, µs
	counts := map[uint64]uint64{}
	var h bench.Histogram
	var lost uint64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if _, after, ok := strings.Cut(line, "[LOST "); ok {
			n, _, _ := strings.Cut(after, " ")
			v, _ := strconv.ParseUint(n, 10, 64)
			lost += max(v, 1) // unreadable, it still says events were lost
			continue
		}
		event, key := "", ""
		switch {
		case strings.Contains(line, " sched_wakeup: "):
			event, key = "sched_wakeup:", "pid"
		case strings.Contains(line, " sched_switch: "):
			event, key = "sched_switch:", "next_pid"
		default:
			continue
		}
		us, err := traceTime(line, event)
		if err != nil {
			return h, lost, err
		}
		pid, ok := traceField(line, key)
		if !ok {
			return h, lost, fmt.Errorf("trace line %q: no %s", line, key)
		}
		if event == "sched_wakeup:" {
			if pid != skip {
				woke[pid] = us
			}
			continue
		}
		if prev, ok := traceField(line, "prev_pid"); ok {
			delete(woke, prev)
		}
		if t0, ok := woke[pid]; ok && us >= t0 {
			d := us - t0
			counts[d]++
			h.Max = max(h.Max, d)
			delete(woke, pid)
		}
	}
	if err := sc.Err(); err != nil {
		return h, lost, fmt.Errorf("reading the trace: %w", err)
	}
	for _, us := range slices.Sorted(maps.Keys(counts)) {
		h.Buckets = append(h.Buckets, bench.Bucket{US: us, Count: counts[us]})
	}
	return h, lost, nil
}

// traceTime is the timestamp of @line's event, in µs: the field before
// @event, "<seconds>.<microseconds>:".
func traceTime(line, event string) (uint64, error) {
	before, _, _ := strings.Cut(line, " "+event)
	fields := strings.Fields(before)
	if len(fields) == 0 {
		return 0, fmt.Errorf("trace line %q: no timestamp", line)
	}
	sec, usec, ok := strings.Cut(strings.TrimSuffix(fields[len(fields)-1], ":"), ".")
	s, err1 := strconv.ParseUint(sec, 10, 64)
	u, err2 := strconv.ParseUint(usec, 10, 64)
	if !ok || len(usec) != 6 || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("trace line %q: timestamp not <s>.<µs>", line)
	}
	return s*1e6 + u, nil
}

// traceField is the value of " @key=" in @line, up to the next space.
func traceField(line, key string) (string, bool) {
	_, after, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return "", false
	}
	v, _, _ := strings.Cut(after, " ")
	return v, v != ""
}
