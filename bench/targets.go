// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"slices"
	"strings"
)

// Measure is what of a metric a Target bounds.
type Measure int

const (
	// PairedRatio is the median of the metric's paired ratios to EEVDF.
	PairedRatio Measure = iota
	// OwnMedian is the metric's own median over the rounds.
	OwnMedian
	// Least is the metric's smallest sample: every round must pass.
	Least
)

// Target is one goal a configuration is held to.
type Target struct {
	Label  string // the goal, as tables name it
	Metric string
	Of     Measure
	Limit  float64
	AtMost bool // the measure must be ≤ Limit; else ≥ Limit
}

// LatencyTargets are the latency mode's goals: EEVDF's wakeup latency with
// qmap's throughput, CPU shared by weight.
var LatencyTargets = []Target{
	{"cyclictest p99 under CPU load ≤ 1.0× EEVDF", "cyc_load_p99_us", PairedRatio, 1.0, true},
	{"cyclictest p50 under CPU load ≤ 3× EEVDF", "cyc_load_p50_us", PairedRatio, 3.0, true},
	{"hackbench ≤ 0.80× EEVDF", "hackbench_s", PairedRatio, 0.80, true},
	{"stress-ng ≥ 1.0× EEVDF", "stress_bogo_ops_s", PairedRatio, 1.0, false},
	{"cyclictest p99 beside the RT hog ≤ 1.0× EEVDF", "cyc_rt_p99_us", PairedRatio, 1.0, true},
	{"CPU misallocated vs weights ≤ 10%", "fair_misalloc_pct", OwnMedian, 10, true},
	// Any CPU at all: a tick's worth is far above 0.
	{"nice 19 runs in every round", "fair_share.19", Least, 1e-9, false},
}

// Verdict is how one configuration fared against one Target.
type Verdict struct {
	Target
	Stat  *Stat   // nil: the run did not measure it
	Value float64 // the measure the Target bounds
	Met   bool
}

// LatencyMode reports whether the configuration runs the latency mode.
func (c Config) LatencyMode() bool {
	return slices.Contains(strings.Fields(c.Flags), "--latency")
}

// Check judges configuration @config against @targets.
func (s *Summary) Check(config string, targets []Target) []Verdict {
	out := make([]Verdict, 0, len(targets))
	for _, t := range targets {
		v := Verdict{Target: t}
		if m := s.Metric(t.Metric); m != nil {
			v.Stat = m.Stats[config]
		}
		v.Value, v.Stat = measure(v.Stat, t.Of)
		if v.Stat != nil {
			v.Met = v.Value >= t.Limit
			if t.AtMost {
				v.Met = v.Value <= t.Limit
			}
		}
		out = append(out, v)
	}
	return out
}

// measure takes @of from @st; a nil Stat back means there is nothing to take.
func measure(st *Stat, of Measure) (float64, *Stat) {
	switch {
	case st == nil:
		return 0, nil
	case of == PairedRatio:
		if st.Paired == nil {
			return 0, nil
		}
		return st.Paired.Median, st
	case of == Least:
		return st.Min, st
	default:
		return st.Median, st
	}
}
