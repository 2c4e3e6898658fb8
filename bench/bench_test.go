// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"math"
	"os"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func parseString(t *testing.T, s string) *Run {
	t.Helper()
	run, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return run
}

func fixture(t *testing.T) *Summary {
	t.Helper()
	f, err := os.Open("testdata/guest.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(testdata/guest.log): %v", err)
	}
	return Summarise(run)
}

func TestParseRecords(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		config string
		round  int
		metric string
		want   float64
	}{
		{"bench", "CONFIG eevdf\nBENCH eevdf 1 hackbench_s 1.5\n", "eevdf", 1, "hackbench_s", 1.5},
		{"exponent", "CONFIG eevdf\nBENCH eevdf 2 attach_ms 1.2e+04\n", "eevdf", 2, "attach_ms", 12000},
		{"crlf", "CONFIG eevdf\r\nBENCH eevdf 1 x 3\r\n", "eevdf", 1, "x", 3},
		{"hist p50", "CONFIG a\nHIST a 1 cyc max=9 overflow=0 1:50 5:49 9:1\n", "a", 1, "cyc_p50_us", 1},
		{"hist p99", "CONFIG a\nHIST a 1 cyc max=9 overflow=0 1:50 5:49 9:1\n", "a", 1, "cyc_p99_us", 5},
		{"hist max", "CONFIG a\nHIST a 1 cyc max=9 overflow=0 1:50 5:49 9:1\n", "a", 1, "cyc_max_us", 9},
		{"hist p99 in overflow", "CONFIG a\nHIST a 1 cyc max=70000 overflow=5 1:95\n", "a", 1, "cyc_p99_us", 70000},
		{"noise skipped", "[ 1.0] BENCH-like kernel line\nenq=1 dsp=2\nCONFIG a\nBENCH a 1 m 7\n", "a", 1, "m", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := parseString(t, tt.in)
			got, ok := run.Samples[tt.config][tt.round][tt.metric]
			if !ok || !near(got, tt.want) {
				t.Errorf("%s/%d/%s = %v (present %v), want %v", tt.config, tt.round, tt.metric, got, ok, tt.want)
			}
		})
	}
}

func TestParseMetaConfigsNotes(t *testing.T) {
	run := parseString(t, "META kernel 7.2.13\nMETA perf perf bench x (v 6.1)\nCONFIG eevdf \nCONFIG qmap-I  -I\nNOTE something odd \n")
	if run.Meta["kernel"] != "7.2.13" || run.Meta["perf"] != "perf bench x (v 6.1)" {
		t.Errorf("meta = %v", run.Meta)
	}
	want := []Config{{"eevdf", ""}, {"qmap-I", "-I"}}
	if len(run.Configs) != len(want) || run.Configs[0] != want[0] || run.Configs[1] != want[1] {
		t.Errorf("configs = %v, want %v", run.Configs, want)
	}
	if len(run.Notes) != 1 || run.Notes[0] != "something odd" {
		t.Errorf("notes = %q", run.Notes)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no configs", "META kernel x\n", "no CONFIG"},
		{"short bench", "CONFIG a\nBENCH a 1 m\n", "want <config>"},
		{"bad round", "CONFIG a\nBENCH a one m 1\n", "round"},
		{"bad value", "CONFIG a\nBENCH a 1 m fast\n", "value"},
		{"nan", "CONFIG a\nBENCH a 1 m NaN\n", "not finite"},
		{"short hist", "CONFIG a\nHIST a 1 cyc max=1\n", "too short"},
		{"bad bucket", "CONFIG a\nHIST a 1 cyc max=1 overflow=0 x:1\n", "bad bucket"},
		{"bad count", "CONFIG a\nHIST a 1 cyc max=1 overflow=0 1:-1\n", "bad field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHistogramPercentile(t *testing.T) {
	h := Histogram{Buckets: []Bucket{{10, 50}, {20, 40}, {30, 8}}, Overflow: 2, Max: 99000}
	tests := []struct {
		p    float64
		want uint64
	}{
		{0, 10}, {1, 10}, {50, 10}, {50.5, 20}, {90, 20}, {98, 30}, {99, 99000}, {100, 99000},
	}
	for _, tt := range tests {
		if got := h.Percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := (Histogram{}).Percentile(50); got != 0 {
		t.Errorf("empty histogram p50 = %d, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{1, 2}, 1.5},
		{[]float64{1, 2, 10}, 2},
		{[]float64{1, 2, 3, 100}, 2.5},
	}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFairness(t *testing.T) {
	tests := []struct {
		name         string
		ticks        [3]string // nice -20, 0, 19
		wantShares   [3]float64
		wantMisalloc float64
		derived      bool
	}{
		{"as weighted", [3]string{"88761", "1024", "15"}, [3]float64{WantShare("-20"), WantShare("0"), WantShare("19")}, 0, true},
		{"equal", [3]string{"100", "100", "100"}, [3]float64{100.0 / 3, 100.0 / 3, 100.0 / 3}, WantShare("-20") - 100.0/3, true},
		{"group gone", [3]string{"-40", "500", "10"}, [3]float64{}, 0, false},
		{"nothing ran", [3]string{"0", "0", "0"}, [3]float64{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := parseString(t, "CONFIG a\nBENCH a 1 fair_ticks.-20 "+tt.ticks[0]+
				"\nBENCH a 1 fair_ticks.0 "+tt.ticks[1]+"\nBENCH a 1 fair_ticks.19 "+tt.ticks[2]+"\n")
			m := run.Samples["a"][1]
			for k := range m {
				if strings.HasPrefix(k, "fair_ticks.") {
					t.Errorf("raw %s left in the samples", k)
				}
			}
			got, ok := m["fair_misalloc_pct"]
			if ok != tt.derived {
				t.Fatalf("fair_misalloc_pct present = %v, want %v", ok, tt.derived)
			}
			if !tt.derived {
				return
			}
			if !near(got, tt.wantMisalloc) {
				t.Errorf("fair_misalloc_pct = %v, want %v", got, tt.wantMisalloc)
			}
			for i, nice := range []string{"-20", "0", "19"} {
				if s := m["fair_share."+nice]; !near(s, tt.wantShares[i]) {
					t.Errorf("fair_share.%s = %v, want %v", nice, s, tt.wantShares[i])
				}
			}
		})
	}
}

func TestSummariseFixture(t *testing.T) {
	s := fixture(t)
	tests := []struct {
		metric, config   string
		median, min, max float64
		n                int
		ratio            float64 // 0: none
	}{
		{"hackbench_s", "eevdf", 1.6, 1.5, 1.7, 3, 0},
		{"hackbench_s", "qmap", 2.0, 1.8, 2.4, 3, 1.25},
		{"hackbench_s", "qmap-I", 1.2, 1.0, 1.6, 3, 0.75},
		{"perf_msg_s", "qmap", 1.1, 1.0, 1.2, 3, 0.5},
		{"perf_msg_s", "qmap-I", 3.0, 3.0, 3.0, 1, 3.0 / 2.2},
		{"stress_bogo_ops_s", "qmap", 160, 150, 170, 2, 160.0 / 195},
		{"cyc_load_p50_us", "eevdf", 200, 100, 300, 2, 0},
		{"cyc_load_p99_us", "eevdf", 950, 900, 1000, 2, 0},
		{"cyc_load_p99_us", "qmap", 60000, 60000, 60000, 1, 60000.0 / 950},
		{"cyc_load_p99_us", "qmap-I", 21000, 21000, 21000, 1, 21000.0 / 950},
		{"fair_share.19", "qmap", 50, 50, 50, 1, 0}, // no direction, no ratio
		{"attach_ms", "qmap", 5182.845, 5000, 5365.69, 2, 0},
		{"insns.qmap_enqueue", "qmap", 963, 963, 963, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.metric+"/"+tt.config, func(t *testing.T) {
			m := s.Metric(tt.metric)
			if m == nil {
				t.Fatalf("no metric %s", tt.metric)
			}
			st := m.Stats[tt.config]
			if st == nil {
				t.Fatalf("no %s for %s", tt.metric, tt.config)
			}
			if !near(st.Median, tt.median) || !near(st.Min, tt.min) || !near(st.Max, tt.max) || st.N != tt.n {
				t.Errorf("got median %v [%v–%v] n=%d, want %v [%v–%v] n=%d", st.Median, st.Min, st.Max, st.N, tt.median, tt.min, tt.max, tt.n)
			}
			if !near(st.Ratio, tt.ratio) {
				t.Errorf("ratio = %v, want %v", st.Ratio, tt.ratio)
			}
		})
	}
	if m := s.Metric("fair_misalloc_pct"); m == nil || m.Stats["qmap-I"] != nil {
		t.Errorf("qmap-I's fairness round with a vanished group should be left out")
	}
	if len(s.Notes) != 1 || s.Meta["command"] != "make bench CPUS=2 ROUNDS=3" {
		t.Errorf("notes %q, command %q", s.Notes, s.Meta["command"])
	}
}

func TestMetricOrder(t *testing.T) {
	s := fixture(t)
	var names []string
	for _, m := range s.Metrics {
		names = append(names, m.Name)
	}
	// Catalogue order; families by name.
	want := []string{"hackbench_s", "perf_msg_s", "stress_bogo_ops_s", "cyc_load_p50_us"}
	for i, w := range want {
		if names[i] != w {
			t.Fatalf("metric %d = %s, want %s (order %v)", i, names[i], w, names)
		}
	}
	idx := func(n string) int {
		for i, x := range names {
			if x == n {
				return i
			}
		}
		t.Fatalf("no metric %s", n)
		return -1
	}
	if !(idx("bpf_ns.qmap_dispatch") < idx("bpf_ns.qmap_enqueue") && idx("bpf_ns.qmap_enqueue") < idx("insns.qmap_dispatch") &&
		idx("insns.qmap_enqueue") < idx("attach_ms")) {
		t.Errorf("families out of order: %v", names)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name, label string
		better      Better
	}{
		{"hackbench_s", "hackbench", Lower},
		{"stress_bogo_ops_s", "stress-ng --cpu bogo-ops/s", Higher},
		{"bpf_ns.qmap_tick", "ns/run qmap_tick", Lower},
		{"insns.qmap_tick", "verified insns qmap_tick", None},
		{"fair_share.-20", "CPU share nice -20 (weights: 98.8)", None},
		{"mystery", "mystery", None},
	}
	for _, tt := range tests {
		if got := Describe(tt.name); got.Label != tt.label || got.Better != tt.better || got.Name != tt.name {
			t.Errorf("Describe(%q) = %+v, want label %q better %q", tt.name, got, tt.label, tt.better)
		}
	}
}

func TestConfigLabel(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Config{"eevdf", ""}, "EEVDF"},
		{Config{"qmap", ""}, "qmap"},
		{Config{"qmap-remote-reenq", "--remote-reenq"}, "qmap --remote-reenq"},
	}
	for _, tt := range tests {
		if got := tt.c.Label(); got != tt.want {
			t.Errorf("%+v.Label() = %q, want %q", tt.c, got, tt.want)
		}
	}
}
