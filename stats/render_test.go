// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// snap builds a snapshot at @secs with every counter at @v, then @set.
func snap(t *testing.T, secs int64, v uint64, set map[string]uint64, events ...Event) Snapshot {
	t.Helper()
	s, err := Take(allCounters(v), time.Unix(secs, 0))
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range set {
		s.Values[k] = n
	}
	s.Events = events
	return s
}

func TestRender(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur func(t *testing.T) Snapshot
		want      []string
		notWant   []string
	}{
		{
			name: "first sample shows totals only",
			cur:  func(t *testing.T) Snapshot { return snap(t, 100, 5, map[string]uint64{"dsp": 3}) },
			want: []string{"enq=5 dsp=3 delta=2 reenq=5 reenq/cpu0=5 deq=5", "reenq_kfunc=5 ", "exp_lost=5\n",
				"cur min/avg/max=5/5/5"},
			notWant: []string{"/s", "(+", "kernel:"},
		},
		{
			name: "delta and rate over two seconds",
			prev: func(t *testing.T) Snapshot { return snap(t, 100, 10, nil) },
			cur:  func(t *testing.T) Snapshot { return snap(t, 102, 30, map[string]uint64{"reenq_cap": 11}) },
			want: []string{"enq=30 (+20, 10/s) dsp=30 (+20, 10/s) delta=0 ", "reenq_cap=11 (+1, 0.5/s)",
				"reenq=30 (+20, 10/s)", "lowpri_reenq_requests=30 (+20, 10/s)"},
		},
		{
			name: "sub-schedulers with their dispatches",
			prev: func(t *testing.T) Snapshot {
				s := snap(t, 100, 10, nil)
				s.Subs = []Sub{{CgroupID: 42, Dispatched: 4}}
				return s
			},
			cur: func(t *testing.T) Snapshot {
				s := snap(t, 102, 10, nil)
				s.Subs = []Sub{{CgroupID: 42, Dispatched: 10}, {CgroupID: 43, Dispatched: 2}}
				return s
			},
			want: []string{"subs:     cgroup-42=10 (+6, 3/s) cgroup-43=2 (+2, 1/s)\n"},
		},
		{
			name: "gauges show their value only",
			prev: func(t *testing.T) Snapshot { return snap(t, 100, 10, nil) },
			cur: func(t *testing.T) Snapshot {
				return snap(t, 101, 20, map[string]uint64{"cpuperf_min": 512, "cpuperf_avg": 900, "cpuperf_max": 1024})
			},
			want:    []string{"cpuperf:  cur min/avg/max=512/900/1024 target min/avg/max=20/20/20\n"},
			notWant: []string{"cpuperf_min"},
		},
		{
			name: "counter going back does not wrap",
			prev: func(t *testing.T) Snapshot { return snap(t, 100, 10, nil) },
			cur:  func(t *testing.T) Snapshot { return snap(t, 101, 10, map[string]uint64{"deq": 2}) },
			want: []string{"deq=2 (+0, 0/s)"},
		},
		{
			name: "more dispatched than queued gives a negative delta",
			cur:  func(t *testing.T) Snapshot { return snap(t, 100, 0, map[string]uint64{"enq": 3, "dsp": 5}) },
			want: []string{"delta=-2 "},
		},
		{
			name:    "kernel events: the changed ones",
			prev:    func(t *testing.T) Snapshot { return snap(t, 100, 1, nil, Event{"SCX_EV_A", 4}, Event{"SCX_EV_B", 7}) },
			cur:     func(t *testing.T) Snapshot { return snap(t, 101, 1, nil, Event{"SCX_EV_A", 4}, Event{"SCX_EV_B", 9}) },
			want:    []string{"  kernel:   B=9 (+2, 2/s)\n"},
			notWant: []string{"A=4"},
		},
		{
			name: "kernel events: none changed",
			prev: func(t *testing.T) Snapshot { return snap(t, 100, 1, nil, Event{"SCX_EV_A", 4}) },
			cur:  func(t *testing.T) Snapshot { return snap(t, 101, 1, nil, Event{"SCX_EV_A", 4}) },
			want: []string{"  kernel:   no change (1 events)\n"},
		},
		{
			name:    "kernel events: first sample shows the non-zero ones",
			cur:     func(t *testing.T) Snapshot { return snap(t, 100, 1, nil, Event{"SCX_EV_A", 0}, Event{"SCX_EV_B", 3}) },
			want:    []string{"  kernel:   B=3\n"},
			notWant: []string{"A=0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev Snapshot
			if tt.prev != nil {
				prev = tt.prev(t)
			}
			got := Render(prev, tt.cur(t))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Render() =\n%s\nwant it to contain %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("Render() =\n%s\nwant no %q", got, w)
				}
			}
		})
	}
}

// Scripts find each block by a line starting "enq=<number>"; the other
// lines are indented so that "^events:"/"^totals:" greps do not see them.
func TestRenderShape(t *testing.T) {
	got := Render(snap(t, 100, 1, nil), snap(t, 101, 2, nil, Event{"SCX_EV_A", 1}))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if !regexp.MustCompile(`^enq=\d+ `).MatchString(lines[0]) {
		t.Errorf("first line %q does not start with enq=<number>", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "  ") {
			t.Errorf("line %q is not indented", l)
		}
	}
	if len(lines) != len(layout)+1 {
		t.Errorf("got %d lines, want %d", len(lines), len(layout)+1)
	}
}

// Every counter appears in the block, so a new one cannot be forgotten.
func TestLayoutCoversCounters(t *testing.T) {
	shown := map[string]bool{}
	for _, l := range layout {
		for _, f := range l.fields {
			shown[f.name] = true
		}
	}
	// The derived cpuperf fields read these.
	for _, n := range []string{"cpuperf_min", "cpuperf_avg", "cpuperf_max", "cpuperf_target_min", "cpuperf_target_avg", "cpuperf_target_max"} {
		shown[n] = true
	}
	for _, c := range Counters {
		if !shown[c.Name] {
			t.Errorf("counter %s is missing from the stats block layout", c.Name)
		}
	}
}

func TestFormatRate(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{0, "0"}, {120, "120"}, {0.5, "0.5"}, {2.25, "2.2"}, {12.7, "13"}}
	for _, tt := range tests {
		if got := formatRate(tt.in); got != tt.want {
			t.Errorf("formatRate(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
