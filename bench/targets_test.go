// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"strings"
	"testing"
)

// pairedResult is a Result for configurations "eevdf" and "lat" (the
// latency mode), each round holding @metric's value for both; a negative
// value is a round that measured nothing.
func pairedResult(t *testing.T, metric string, base, lat []float64) *Result {
	t.Helper()
	var rounds []string
	add := func(cfg string, vs []float64) {
		for i, v := range vs {
			if v >= 0 {
				rounds = append(rounds, fmt.Sprintf(`{"config":%q,"round":%d,"values":{%q:%v}}`, cfg, i+1, metric, v))
			}
		}
	}
	add("eevdf", base)
	add("lat", lat)
	return decode(t, `{"configs":[{"name":"eevdf"},{"name":"lat","flags":"--latency -L 250"}],"rounds":[`+
		strings.Join(rounds, ",")+`]}`)
}

func TestPairedRatio(t *testing.T) {
	tests := []struct {
		name      string
		base, lat []float64
		want      *Spread
	}{
		// Round 3's 2.0 against 1.0 would make the medians' ratio 1.0.
		{"pairs by round", []float64{1, 2, 4}, []float64{1.5, 1, 2}, &Spread{Median: 0.5, Min: 0.5, Max: 1.5, N: 3}},
		{"a round one side missed", []float64{2, -1, 4}, []float64{1, 5, 4}, &Spread{Median: 0.75, Min: 0.5, Max: 1, N: 2}},
		{"no shared round", []float64{2, -1}, []float64{-1, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Summarise(pairedResult(t, "hackbench_s", tt.base, tt.lat)).Metric("hackbench_s").Stats["lat"]
			got := st.Paired
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("paired = %+v, want %+v", got, tt.want)
			}
			if got != nil && (!near(got.Median, tt.want.Median) || !near(got.Min, tt.want.Min) ||
				!near(got.Max, tt.want.Max) || got.N != tt.want.N) {
				t.Errorf("paired = %+v, want %+v", *got, *tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	target := func(metric string) Target {
		t.Helper()
		for _, tg := range LatencyTargets {
			if tg.Metric == metric {
				return tg
			}
		}
		t.Fatalf("no target for %s", metric)
		return Target{}
	}
	tests := []struct {
		name      string
		metric    string
		base, lat []float64
		met       bool
		value     float64
	}{
		{"ratio at most, met", "hackbench_s", []float64{2, 2, 2}, []float64{1.6, 1.5, 1.7}, true, 0.8},
		{"ratio at most, missed", "hackbench_s", []float64{2, 2, 2}, []float64{1.7, 1.5, 1.8}, false, 0.85},
		{"ratio at least, met", "stress_bogo_ops_s", []float64{100, 90}, []float64{100, 95}, true, 1.0277777777777777},
		{"ratio at least, missed", "stress_bogo_ops_s", []float64{100, 100, 100}, []float64{99, 120, 98}, false, 0.99},
		{"own median", "fair_misalloc_pct", []float64{1, 1, 1}, []float64{9, 11, 10}, true, 10},
		{"every round: one starved", "fair_share.19", []float64{1, 1, 1}, []float64{0.5, 0, 0.4}, false, 0},
		{"every round: all ran", "fair_share.19", []float64{1, 1, 1}, []float64{0.5, 0.04, 0.4}, true, 0.04},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarise(pairedResult(t, tt.metric, tt.base, tt.lat))
			got := s.Check("lat", []Target{target(tt.metric)})[0]
			if got.Stat == nil {
				t.Fatalf("%s: not measured", tt.metric)
			}
			if got.Met != tt.met || !near(got.Value, tt.value) {
				t.Errorf("%s: met %v at %v, want %v at %v", tt.metric, got.Met, got.Value, tt.met, tt.value)
			}
		})
	}
}

func TestCheckUnmeasured(t *testing.T) {
	s := Summarise(pairedResult(t, "hackbench_s", []float64{1}, []float64{1}))
	for _, v := range s.Check("lat", LatencyTargets) {
		if v.Metric != "hackbench_s" && (v.Stat != nil || v.Met) {
			t.Errorf("%s: unmeasured, yet %+v", v.Metric, v)
		}
	}
}

func TestLatencyMode(t *testing.T) {
	for flags, want := range map[string]bool{"": false, "--latency": true, "--latency -L 250": true, "-L 1000": false, "--latency-x": false} {
		if got := (Config{Name: "x", Flags: flags}).LatencyMode(); got != want {
			t.Errorf("LatencyMode(%q) = %v, want %v", flags, got, want)
		}
	}
}

func TestMedianCI(t *testing.T) {
	seq := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(i + 1)
		}
		return out
	}
	tests := []struct {
		n    int
		want *Interval // in ranks, from 1
	}{
		{5, nil},                 // P(all on one side) = 1/16 > 5%
		{6, &Interval{1, 6}},     // 96.9%
		{7, &Interval{1, 7}},     // 98.4%
		{8, &Interval{1, 8}},     // x(2) would give 93.0%
		{9, &Interval{2, 8}},     // 96.1%
		{16, &Interval{4, 13}},   // 97.9%; x(5) would give 92.3%
		{36, &Interval{12, 25}},  // 97.1%
		{100, &Interval{40, 61}}, // 96.5%
	}
	for _, tt := range tests {
		got := MedianCI(seq(tt.n))
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("MedianCI(1..%d) = %+v, want %+v", tt.n, got, tt.want)
		}
	}
}

// A verdict is settled only when its interval clears the limit; sixteen
// rounds whose paired ratios straddle 1.0 are not.
func TestSettled(t *testing.T) {
	ones := func(n int, v float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	straddle := []float64{75, 89, 92, 94, 96, 96, 96.5, 97.5, 100.1, 101, 103.5, 106, 108, 111, 119, 122}
	tests := []struct {
		name      string
		metric    string
		base, lat []float64
		met, sure bool
	}{
		{"too few rounds", "stress_bogo_ops_s", ones(3, 100), []float64{110, 120, 130}, true, false},
		{"met beyond noise", "stress_bogo_ops_s", ones(6, 100), []float64{101, 102, 103, 104, 105, 106}, true, true},
		{"missed beyond noise", "hackbench_s", ones(6, 1), []float64{0.81, 0.9, 1, 1, 1.1, 1.2}, false, true},
		{"straddles the limit", "stress_bogo_ops_s", ones(16, 100), straddle, false, false},
		{"own median, straddles", "fair_misalloc_pct", ones(6, 1), []float64{8, 9, 9.5, 10.5, 11, 12}, true, false},
		{"every round", "fair_share.19", ones(2, 1), []float64{0.5, 0.1}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var target Target
			for _, tg := range LatencyTargets {
				if tg.Metric == tt.metric {
					target = tg
				}
			}
			v := Summarise(pairedResult(t, tt.metric, tt.base, tt.lat)).Check("lat", []Target{target})[0]
			if v.Met != tt.met || v.Settled() != tt.sure {
				t.Errorf("met %v settled %v (CI %+v), want %v and %v", v.Met, v.Settled(), v.CI, tt.met, tt.sure)
			}
		})
	}
}

// A saved summary gets its paired intervals back from its samples, where
// every configuration ran every round.
func TestRepair(t *testing.T) {
	res := pairedResult(t, "stress_bogo_ops_s", []float64{100, 100, 100, 100, 100, 100}, []float64{90, 95, 100, 105, 110, 120})
	res.Meta = map[string]string{"rounds": "6"}
	s := Summarise(res)
	want := *s.Metric("stress_bogo_ops_s").Stats["lat"].Paired
	if want.CI == nil {
		t.Fatal("six rounds: no interval")
	}
	s.Metric("stress_bogo_ops_s").Stats["lat"].Paired.CI = nil
	s.Repair()
	got := s.Metric("stress_bogo_ops_s").Stats["lat"].Paired
	if got.CI == nil || *got.CI != *want.CI || got.Median != want.Median || got.N != want.N {
		t.Errorf("repaired %+v, want %+v", got, want)
	}

	// A round missing from one side: positions no longer name rounds.
	res = pairedResult(t, "stress_bogo_ops_s", []float64{100, 100, -1, 100, 100, 100, 100}, []float64{90, 95, 100, 105, 110, 120, 130})
	res.Meta = map[string]string{"rounds": "7"}
	s = Summarise(res)
	saved := s.Metric("stress_bogo_ops_s").Stats["lat"].Paired
	s.Repair()
	if got := s.Metric("stress_bogo_ops_s").Stats["lat"].Paired; got != saved {
		t.Errorf("a run with a missing round was re-paired: %+v", got)
	}
}
