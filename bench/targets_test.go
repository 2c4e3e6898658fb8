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
