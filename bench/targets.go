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
	Stat  *Stat     // nil: the run did not measure it
	Value float64   // the measure the Target bounds
	CI    *Interval // the measure's 95% confidence interval; nil: none (Least, or too few rounds)
	Met   bool
}

// Settled reports whether the run tells met from missed: the confidence
// interval lies wholly on one side of the limit. A Least target is judged on
// every round, so it always is.
func (v Verdict) Settled() bool {
	if v.Of == Least {
		return true
	}
	if v.CI == nil {
		return false
	}
	if v.AtMost {
		return v.CI.High <= v.Limit || v.CI.Low > v.Limit
	}
	return v.CI.Low >= v.Limit || v.CI.High < v.Limit
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
		v.Value, v.CI, v.Stat = measure(v.Stat, t.Of)
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

// measure takes @of from @st, with its confidence interval where it has one;
// a nil Stat back means there is nothing to take.
func measure(st *Stat, of Measure) (float64, *Interval, *Stat) {
	switch {
	case st == nil:
		return 0, nil, nil
	case of == PairedRatio:
		if st.Paired == nil {
			return 0, nil, nil
		}
		return st.Paired.Median, st.Paired.CI, st
	case of == Least:
		return st.Min, nil, st
	default:
		return st.Median, MedianCI(slices.Sorted(slices.Values(st.Samples))), st
	}
}
