// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Better says which direction of a metric is an improvement.
type Better string

const (
	Lower  Better = "lower"
	Higher Better = "higher"
	None   Better = "" // informational (sizes, shares that have a target)
)

// Info describes a metric for tables and charts.
type Info struct {
	Name   string `json:"name"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`
	Better Better `json:"better,omitempty"`
	Group  string `json:"group"`
}

// catalogue lists the known metrics in table order. Metrics with a trailing
// "." are families (one per BPF program); their members sort by name.
var catalogue = []Info{
	{"hackbench_s", "hackbench", "s", Lower, "throughput"},
	{"perf_msg_s", "perf bench sched messaging", "s", Lower, "throughput"},
	{"stress_bogo_ops_s", "stress-ng --cpu bogo-ops/s", "ops/s", Higher, "throughput"},
	{"stress_cpu_pct", "stress-ng workers' CPU share", "%", Higher, "throughput"},
	{"cyc_load_p50_us", "cyclictest p50, CPU load", "µs", Lower, "latency"},
	{"cyc_load_p99_us", "cyclictest p99, CPU load", "µs", Lower, "latency"},
	{"cyc_load_max_us", "cyclictest max, CPU load", "µs", Lower, "latency"},
	{"cyc_rt_p50_us", "cyclictest p50, RT hog", "µs", Lower, "latency"},
	{"cyc_rt_p99_us", "cyclictest p99, RT hog", "µs", Lower, "latency"},
	{"cyc_rt_max_us", "cyclictest max, RT hog", "µs", Lower, "latency"},
	{"cyc_load_wake_p50_us", "wakeup to run p50, CPU load", "µs", Lower, "latency"},
	{"cyc_load_wake_p99_us", "wakeup to run p99, CPU load", "µs", Lower, "latency"},
	{"cyc_load_wake_max_us", "wakeup to run max, CPU load", "µs", Lower, "latency"},
	{"cyc_rt_wake_p50_us", "wakeup to run p50, RT hog", "µs", Lower, "latency"},
	{"cyc_rt_wake_p99_us", "wakeup to run p99, RT hog", "µs", Lower, "latency"},
	{"cyc_rt_wake_max_us", "wakeup to run max, RT hog", "µs", Lower, "latency"},
	{"fair_share.-20", "", "%", None, "fairness"},
	{"fair_share.0", "", "%", None, "fairness"},
	{"fair_share.19", "", "%", None, "fairness"},
	{"fair_misalloc_pct", "CPU misallocated vs weights", "%", Lower, "fairness"},
	{"bpf_cpu_pct", "BPF time during hackbench", "% CPU", Lower, "bpf"},
	{"bpf_ns.", "ns/run ", "ns", Lower, "bpf"},
	{"insns.", "verified insns ", "insns", None, "bpf"},
	{"attach_ms", "exec to enabled", "ms", Lower, "loader"},
	{"detach_ms", "SIGINT to disabled", "ms", Lower, "loader"},
	{"rss_peak_kb", "peak RSS (VmHWM)", "KiB", Lower, "loader"},
	{"rss_steady_kb", "steady RSS (VmRSS)", "KiB", Lower, "loader"},
	{"stats_cpu_pct", "loader CPU, nobody watching", "%", Lower, "loader"},
}

// Describe returns a metric's Info; unknown metrics keep their name.
func Describe(name string) Info {
	if nice, ok := strings.CutPrefix(name, "fair_share."); ok {
		return Info{name, fmt.Sprintf("CPU share nice %s (weights: %.3g)", nice, WantShare(nice)), "%", None, "fairness"}
	}
	for _, c := range catalogue {
		if c.Name == name {
			return c
		}
		if strings.HasSuffix(c.Name, ".") && strings.HasPrefix(name, c.Name) {
			c.Label += strings.TrimPrefix(name, c.Name)
			c.Name = name
			return c
		}
	}
	return Info{Name: name, Label: name, Group: "other"}
}

// rank orders metrics by the catalogue, then by name.
func rank(name string) int {
	for i, c := range catalogue {
		if c.Name == name || (strings.HasSuffix(c.Name, ".") && strings.HasPrefix(name, c.Name)) {
			return i
		}
	}
	return len(catalogue)
}

// Stat summarises one metric of one configuration over the rounds.
type Stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	N       int       `json:"n"`
	Ratio   float64   `json:"ratio_to_eevdf,omitempty"` // Median / the baseline's; 0 when there is none
	Paired  *Spread   `json:"paired_ratio_to_eevdf,omitempty"`
	Samples []float64 `json:"samples"` // in round order
}

// Spread summarises a configuration's paired ratios: in each round where
// both ran, its value over the baseline's in that round. Drift in the
// emulator over a run hits both sides of a pair alike, so these are steadier
// than the ratio of the medians when the host is noisy.
type Spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	N      int       `json:"n"`
	CI     *Interval `json:"ci95,omitempty"` // of the median; nil: too few rounds
}

// Interval is a 95% confidence interval of a median: two of the samples,
// chosen by rank (MedianCI).
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// MedianCI is the distribution-free 95% confidence interval of the median of
// @sorted: [x(k), x(n+1-k)] for the largest k at which fewer than k of n
// samples fall below the median with probability at most 2.5%, a binomial
// tail with p = 1/2. It assumes nothing of the samples' spread, which on an
// emulated host is neither normal nor steady. Six samples are the fewest
// that have one; with fewer it returns nil.
func MedianCI(sorted []float64) *Interval {
	n := len(sorted)
	k := 0
	// term is C(n, j) / 2^n, tail its sum up to j.
	term, tail := math.Pow(0.5, float64(n)), 0.0
	for j := 0; j < n; j++ {
		tail += term
		if tail > 0.025 {
			break
		}
		k = j + 1
		term = term * float64(n-j) / float64(j+1)
	}
	if k == 0 {
		return nil
	}
	return &Interval{Low: sorted[k-1], High: sorted[n-k]}
}

// Metric is one row of the results: a metric for every configuration that
// has it.
type Metric struct {
	Info
	Stats map[string]*Stat `json:"stats"` // by config name
}

// Summary is a whole run, summarised.
type Summary struct {
	Meta    map[string]string `json:"meta"`
	Configs []Config          `json:"configs"`
	Metrics []Metric          `json:"metrics"`
	Notes   []string          `json:"notes,omitempty"`
}

// Summarise derives the metrics of a guest's Result and computes each one's
// median, range and ratio to the baseline.
func Summarise(res *Result) *Summary {
	s := &Summary{Meta: res.Meta, Configs: res.Configs, Notes: res.Notes}
	// byMetric[metric][config][round] is one sample.
	byMetric := map[string]map[string]map[int]float64{}
	for cfg, rounds := range samples(res) {
		for r, values := range rounds {
			for metric, v := range values {
				if byMetric[metric] == nil {
					byMetric[metric] = map[string]map[int]float64{}
				}
				if byMetric[metric][cfg] == nil {
					byMetric[metric][cfg] = map[int]float64{}
				}
				byMetric[metric][cfg][r] = v
			}
		}
	}
	names := slices.Collect(maps.Keys(byMetric))
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		m := Metric{Info: Describe(name), Stats: map[string]*Stat{}}
		for cfg, byRound := range byMetric[name] {
			m.Stats[cfg] = summarise(inRoundOrder(byRound))
		}
		// A ratio says better or worse; metrics without a direction get none.
		if base := m.Stats[Baseline]; base != nil && base.Median != 0 && m.Better != None {
			for cfg, st := range m.Stats {
				if cfg != Baseline {
					st.Ratio = st.Median / base.Median
					st.Paired = paired(byMetric[name][cfg], byMetric[name][Baseline])
				}
			}
		}
		s.Metrics = append(s.Metrics, m)
	}
	return s
}

// inRoundOrder lists @byRound's samples by round number.
func inRoundOrder(byRound map[int]float64) []float64 {
	var out []float64
	for _, r := range slices.Sorted(maps.Keys(byRound)) {
		out = append(out, byRound[r])
	}
	return out
}

// paired spreads @values' ratios to @base's in the rounds both have; nil if
// they share none.
func paired(values, base map[int]float64) *Spread {
	var ratios []float64
	for r, v := range values {
		if b, ok := base[r]; ok && b != 0 {
			ratios = append(ratios, v/b)
		}
	}
	if len(ratios) == 0 {
		return nil
	}
	slices.Sort(ratios)
	n := len(ratios)
	return &Spread{Median: Median(ratios), Min: ratios[0], Max: ratios[n-1], N: n, CI: MedianCI(ratios)}
}

func summarise(samples []float64) *Stat {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return &Stat{
		Median:  Median(sorted),
		Min:     sorted[0],
		Max:     sorted[len(sorted)-1],
		N:       len(sorted),
		Samples: samples,
	}
}

// Median of sorted values; the mean of the middle two for an even count.
func Median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Metric returns the named metric, or nil.
func (s *Summary) Metric(name string) *Metric {
	for i := range s.Metrics {
		if s.Metrics[i].Name == name {
			return &s.Metrics[i]
		}
	}
	return nil
}

// Repair recomputes the paired spreads of a saved summary, which may predate
// their confidence intervals, from its samples: for each configuration with
// a sample in every one of the run's rounds, beside a baseline that has one
// too, where a sample's place is its round. The others keep what was saved.
func (s *Summary) Repair() {
	rounds, err := strconv.Atoi(s.Meta["rounds"])
	if err != nil || rounds <= 0 {
		return
	}
	for i := range s.Metrics {
		base := s.Metrics[i].Stats[Baseline]
		if base == nil || len(base.Samples) != rounds {
			continue
		}
		for cfg, st := range s.Metrics[i].Stats {
			if cfg != Baseline && st.Paired != nil && len(st.Samples) == rounds {
				st.Paired = paired(byRound(st.Samples), byRound(base.Samples))
			}
		}
	}
}

// byRound keys @samples, one per round in order, by round number.
func byRound(samples []float64) map[int]float64 {
	out := make(map[int]float64, len(samples))
	for i, v := range samples {
		out[i+1] = v
	}
	return out
}
