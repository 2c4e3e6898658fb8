// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

func TestToolOutputs(t *testing.T) {
	const stress = `stress-ng: info:  [412] dispatching hogs: 2 cpu
stress-ng: metrc: [412] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s
stress-ng: metrc: [412]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)
stress-ng: metrc: [412] cpu                4012      5.00      9.95      0.01       802.31        402.81
stress-ng: info:  [412] successful run completed in 5.01 secs
`
	tests := []struct {
		name   string
		parse  func(string) (float64, bool)
		out    string
		want   float64
		wantOK bool
	}{
		{"hackbench", hackbenchTime, "Running in process mode with 4 groups\nEach sender will pass 400 messages\nTime: 1.802\n", 1.802, true},
		{"hackbench failed", hackbenchTime, "hackbench: fork: Resource temporarily unavailable\n", 0, false},
		{"hackbench bad number", hackbenchTime, "Time: soon\n", 0, false},
		{"perf", perfTotal, "# Running 'sched/messaging' benchmark:\n# 4 groups == 160 processes run\n\n     Total time: 0.532 [sec]\n", 0.532, true},
		{"perf failed", perfTotal, "perf: 'bench' is not a perf-command.\n", 0, false},
		{"stress-ng", stressBogoOps, stress, 802.31, true},
		{"stress-ng CPU share", func(s string) (float64, bool) { return stressCPUShare(s, 2) }, stress, 99.6, true},
		{"stress-ng CPU share without metrics", func(s string) (float64, bool) { return stressCPUShare(s, 2) }, "stress-ng: info:  [412] cpu stressor\n", 0, false},
		{"stress-ng CPU share, no real time", func(s string) (float64, bool) { return stressCPUShare(s, 2) }, "stress-ng: metrc: [1] cpu 0 0.00 0.00 0.00 0 0\n", 0, false},
		{"stress-ng without metrics", stressBogoOps, "stress-ng: info:  [412] cpu stressor\n", 0, false},
		{"empty", stressBogoOps, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.parse(tt.out)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVerified(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want map[string]float64
	}{
		{"padded names", "scx-qmap-go: attached\nverified: qmap_dispatch            1356 insns\nverified: qmap_sched_switch        40 insns\n",
			map[string]float64{"qmap_dispatch": 1356, "qmap_sched_switch": 40}},
		{"other lines", "enq=1 dsp=2\nverified:\nverified: qmap_tick many insns\nnot verified: qmap_x 3 insns\n", map[string]float64{}},
		{"none", "", map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verified(tt.log); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("verified = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKBField(t *testing.T) {
	const status = "Name:\tscx-qmap-go\nVmHWM:\t   61220 kB\nVmRSS:\t   61176 kB\nRssAnon:\t   20000 kB\nVmRSSX:\t1 kB\n"
	tests := []struct {
		text, key string
		want      int64
		wantErr   string
	}{
		{status, "VmRSS", 61176, ""},
		{status, "VmHWM", 61220, ""},
		{status, "RssAnon", 20000, ""},
		{"AnonHugePages:         0 kB\n", "AnonHugePages", 0, ""},
		{status, "VmSwap", 0, "no VmSwap line"},
		{"VmRSS:\n", "VmRSS", 0, "no VmRSS line"},
		{"VmRSS: lots kB\n", "VmRSS", 0, "VmRSS"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := kbField(tt.text, tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestProcKB(t *testing.T) {
	tests := []struct {
		file, key string
		positive  bool
	}{
		{"status", "VmRSS", true},
		{"status", "VmHWM", true},
		{"status", "RssAnon", true},
		{"smaps_rollup", "AnonHugePages", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := procKB(os.Getpid(), tt.file, tt.key)
			if err != nil || got < 0 || (tt.positive && got == 0) {
				t.Errorf("procKB(self, %s, %s) = %d, %v", tt.file, tt.key, got, err)
			}
		})
	}
	if _, err := procKB(1<<22+1, "status", "VmRSS"); err == nil {
		t.Error("procKB of a pid that cannot exist succeeded")
	}
}

// histfile is what cyclictest -t 2 -h N --histfile writes.
const histfile = `# Histogram
000000 000000	000000
000001 000000	000002
000003 000005	000000
000004 000000	000000
000150 000001	000001
# Total: 000000007 000000004
# Min Latencies: 00003 00001
# Avg Latencies: 00003 00001
# Max Latencies: 00070 00120
# Histogram Overflows: 00001 00002
# Histogram Overflow at cycle number:
# Thread 0: 00042
# Thread 1: 00012 00013
`

func TestParseHistfile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    bench.Histogram
		wantErr string
	}{
		{"two threads", histfile, bench.Histogram{
			Buckets: []bench.Bucket{{US: 1, Count: 2}, {US: 3, Count: 5}, {US: 150, Count: 2}}, Overflow: 3, Max: 120}, ""},
		{"nothing measured", "# Histogram\n000000 000000\n# Max Latencies: -0001\n# Histogram Overflows: 00000\n",
			bench.Histogram{}, ""},
		{"row without counts", "# Histogram\n000001\n", bench.Histogram{}, "no counts"},
		{"rows out of order", "000005 000001\n000002 000001\n", bench.Histogram{}, "out of order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHistfile(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReadHistfile(t *testing.T) {
	dir := t.TempDir()
	write := func(t *testing.T, name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"written", write(t, "cyc.hist", histfile), false},
		{"empty", write(t, "empty.hist", ""), true},
		{"missing", filepath.Join(dir, "none.hist"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := readHistfile(tt.path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v", err, tt.wantErr)
			}
			if !tt.wantErr && h.Total() != 12 {
				t.Errorf("total %d, want 12", h.Total())
			}
		})
	}
}

func TestBPFCost(t *testing.T) {
	before := map[string]progStat{
		"qmap_enqueue":  {runtime: 1000, runs: 10},
		"qmap_dispatch": {runtime: 500, runs: 5},
		"qmap_idle":     {runtime: 7, runs: 1},
	}
	after := map[string]progStat{
		"qmap_enqueue":  {runtime: 5000, runs: 30}, // 4000 ns in 20 runs
		"qmap_dispatch": {runtime: 3500, runs: 7},  // 3000 ns in 2 runs
		"qmap_idle":     {runtime: 7, runs: 1},     // did not run
		"qmap_new":      {runtime: 3000, runs: 3},  // loaded in between
	}
	perRun, pct := bpfCost(before, after, time.Microsecond, 2)
	want := map[string]float64{"qmap_enqueue": 200, "qmap_dispatch": 1500, "qmap_new": 1000}
	if !reflect.DeepEqual(perRun, want) {
		t.Errorf("ns per run = %v, want %v", perRun, want)
	}
	// 10000 ns of BPF in 1 µs on 2 CPUs: 5 CPUs' worth.
	if pct != 500 {
		t.Errorf("BPF CPU = %v %%, want 500", pct)
	}
	if _, pct := bpfCost(before, after, 0, 2); pct != 0 {
		t.Errorf("BPF CPU over no time = %v, want 0", pct)
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\nd\n", 3, "b c d"},
		{"a\n\n  b  \n\n", 3, "a b"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// wakeTraceText is tracefs text as the guest's kernel writes it (trace_clock
// mono): two wakeups that ran, on one CPU and across two, a switch back to
// a preempted thread, a wakeup of a thread still on its CPU that is then
// preempted and run again, and another thread's wakeup that has not run yet.
const wakeTraceText = `# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
          <idle>-0       [001] d.h4.  4321.000950: sched_wakeup: comm=cyclictest pid=356 prio=120 target_cpu=001
   stress-ng-cpu-354     [001] d..2.  4321.001002: sched_switch: prev_comm=stress-ng-cpu prev_pid=354 prev_prio=120 prev_state=R+ ==> next_comm=cyclictest next_pid=356 next_prio=120
   stress-ng-cpu-353     [000] d..2.  4321.001500: sched_switch: prev_comm=stress-ng-cpu prev_pid=353 prev_prio=120 prev_state=R ==> next_comm=cyclictest next_pid=357 next_prio=120
   stress-ng-cpu-354     [001] dNh4.  4321.999990: sched_wakeup: comm=cyclictest pid=357 prio=120 target_cpu=000
   stress-ng-cpu-353     [000] d..2.  4322.002490: sched_switch: prev_comm=stress-ng-cpu prev_pid=353 prev_prio=120 prev_state=R+ ==> next_comm=cyclictest next_pid=357 next_prio=120
          <idle>-0       [001] d.h4.  4322.002600: sched_wakeup: comm=cyclictest pid=357 prio=120 target_cpu=000
      cyclictest-357     [000] d..2.  4322.002700: sched_switch: prev_comm=cyclictest prev_pid=357 prev_prio=120 prev_state=R+ ==> next_comm=stress-ng-cpu next_pid=353 next_prio=120
   stress-ng-cpu-353     [000] d..2.  4322.009700: sched_switch: prev_comm=stress-ng-cpu prev_pid=353 prev_prio=120 prev_state=R+ ==> next_comm=cyclictest next_pid=357 next_prio=120
          <idle>-0       [001] d.h4.  4322.003000: sched_wakeup: comm=cyclictest pid=356 prio=120 target_cpu=001
`

func TestParseWakeTrace(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		skip     string
		want     bench.Histogram
		wantLost uint64
		wantErr  string
	}{
		{"pairs", wakeTraceText, "0", bench.Histogram{
			Buckets: []bench.Bucket{{US: 52, Count: 1}, {US: 2500, Count: 1}}, Max: 2500}, 0, ""},
		{"one task left out", wakeTraceText, "357", bench.Histogram{
			Buckets: []bench.Bucket{{US: 52, Count: 1}}, Max: 52}, 0, ""},
		{"lost events", "CPU:1 [LOST 17 EVENTS]\n" + wakeTraceText, "0", bench.Histogram{
			Buckets: []bench.Bucket{{US: 52, Count: 1}, {US: 2500, Count: 1}}, Max: 2500}, 17, ""},
		{"lost events, count unreadable", "CPU:0 [LOST EVENTS]\n", "0", bench.Histogram{}, 1, ""},
		{"nothing traced", "# tracer: nop\n#\n", "0", bench.Histogram{}, 0, ""},
		{"timestamp in another clock", "  a-1 [000] d..2. 123456789: sched_wakeup: comm=cyclictest pid=356 prio=120 target_cpu=000\n",
			"0", bench.Histogram{}, 0, "timestamp"},
		{"wakeup without a pid", "  a-1 [000] d..2. 1.000001: sched_wakeup: comm=cyclictest prio=120\n",
			"0", bench.Histogram{}, 0, "no pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, lost, err := parseWakeTrace(strings.NewReader(tt.in), tt.skip)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || lost != tt.wantLost || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, lost %d, %v; want %+v, lost %d", got, lost, err, tt.want, tt.wantLost)
			}
		})
	}
}
