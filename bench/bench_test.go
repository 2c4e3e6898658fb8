// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

// decode reads a Result from guest output or JSON text.
func decode(t *testing.T, s string) *Result {
	t.Helper()
	res, err := FindResult(s)
	if err != nil {
		t.Fatalf("FindResult: %v", err)
	}
	return res
}

// oneRound is a Result with configuration "a" and round 1 as @round, the
// JSON of a Round's fields.
func oneRound(round string) string {
	return `{"configs":[{"name":"a"}],"rounds":[{"config":"a","round":1,` + round + `}]}`
}

func fixture(t *testing.T) *Summary {
	t.Helper()
	b, err := os.ReadFile("testdata/guest.json")
	if err != nil {
		t.Fatal(err)
	}
	return Summarise(decode(t, string(b)))
}

func TestSamples(t *testing.T) {
	const hist = `"hists":{"cyc":{"buckets":[[1,50],[5,49],[9,1]],"overflow":0,"max_us":9}}`
	tests := []struct {
		name   string
		round  string
		metric string
		want   float64
	}{
		{"value", `"values":{"hackbench_s":1.5}`, "hackbench_s", 1.5},
		{"exponent", `"values":{"attach_ms":1.2e+04}`, "attach_ms", 12000},
		{"hist p50", hist, "cyc_p50_us", 1},
		{"hist p99", hist, "cyc_p99_us", 5},
		{"hist max", hist, "cyc_max_us", 9},
		{"hist p99 in overflow", `"hists":{"cyc":{"buckets":[[1,95]],"overflow":5,"max_us":70000}}`, "cyc_p99_us", 70000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := samples(decode(t, oneRound(tt.round)))["a"][1][tt.metric]
			if !ok || !near(got, tt.want) {
				t.Errorf("a/1/%s = %v (present %v), want %v", tt.metric, got, ok, tt.want)
			}
		})
	}
}

func TestEmptyHistogramHasNoMetrics(t *testing.T) {
	m := samples(decode(t, oneRound(`"hists":{"cyc":{"buckets":[],"overflow":0,"max_us":0}}`)))["a"][1]
	if len(m) != 0 {
		t.Errorf("an empty histogram gave %v, want no metrics", m)
	}
}

func TestFindResult(t *testing.T) {
	line := Marker + oneRound(`"values":{"m":7}`)
	tests := []struct {
		name, in string
	}{
		{"marker line", "# round 1/1: a\n" + line + "\n# done\n"},
		{"crlf", "# progress\r\n" + line + "\r\n"},
		{"noise around", "[ 1.0] kernel line\nenq=1 dsp=2\n" + line + "\nscx-qmap-go: detached\n"},
		{"last marker wins", Marker + oneRound(`"values":{"m":1}`) + "\n" + line + "\n"},
		{"saved json", "\n  " + oneRound(`"values":{"m":7}`) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := samples(decode(t, tt.in))["a"][1]["m"]; got != 7 {
				t.Errorf("m = %v, want 7", got)
			}
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	in := &Result{
		Meta:    map[string]string{"kernel": "7.2.13"},
		Configs: []Config{{"eevdf", ""}, {"qmap-I", "-I"}},
		Rounds: []*Round{{Config: "qmap-I", Number: 2, Values: map[string]float64{"x": 0.25},
			Hists: map[string]Histogram{"cyc_rt": {Buckets: []Bucket{{3, 4}, {50000, 1}}, Overflow: 2, Max: 70000}}}},
		Notes: []string{"something odd"},
	}
	var b strings.Builder
	if err := in.WriteLine(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), Marker+"{") || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("WriteLine wrote %q, want one marker line", b.String())
	}
	if !strings.Contains(b.String(), `"buckets":[[3,4],[50000,1]]`) {
		t.Errorf("buckets not written as [us, count] pairs: %s", b.String())
	}
	out := decode(t, b.String())
	if !reflect.DeepEqual(in, out) {
		t.Errorf("read back %+v, want %+v", out, in)
	}
}

// The checkpoints in a guest's output read back in order; a line the boot
// did not finish ends them.
func TestCheckpoints(t *testing.T) {
	var b strings.Builder
	b.WriteString("# round 1/3: eevdf\n")
	for i := 1; i <= 2; i++ {
		cp := &Checkpoint{Round: i, Secs: 10 * i, Rounds: []*Round{{Config: "eevdf", Number: i, Values: map[string]float64{"x": float64(i)}}}}
		if i == 2 {
			cp.Notes = []string{"a note"}
		}
		if err := cp.WriteLine(&b); err != nil {
			t.Fatal(err)
		}
		b.WriteString("# progress\n")
	}
	whole := b.String()
	b.WriteString(CheckpointMarker + `{"round":3,"rounds":[{"config":"ee`)

	tests := []struct {
		name, text string
		want       []int // rounds read
	}{
		{"none", "# round 1/3: eevdf\n", nil},
		{"two", whole, []int{1, 2}},
		{"two and one cut", b.String(), []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cps := Checkpoints(tt.text)
			var got []int
			for _, cp := range cps {
				got = append(got, cp.Round)
				if len(cp.Rounds) != 1 || cp.Rounds[0].Number != cp.Round || cp.Secs != 10*cp.Round {
					t.Errorf("checkpoint %d read back as %+v", cp.Round, cp)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rounds %v, want %v", got, tt.want)
			}
			if len(cps) == 2 && !reflect.DeepEqual(cps[1].Notes, []string{"a note"}) {
				t.Errorf("round 2's notes %q, want [a note]", cps[1].Notes)
			}
		})
	}
}

func TestMetaConfigsNotes(t *testing.T) {
	res := decode(t, `{"meta":{"kernel":"7.2.13","perf":"perf bench x (v 6.1)"},
		"configs":[{"name":"eevdf","flags":""},{"name":"qmap-I","flags":"-I"}],"rounds":[],"notes":["something odd"]}`)
	s := Summarise(res)
	if s.Meta["kernel"] != "7.2.13" || s.Meta["perf"] != "perf bench x (v 6.1)" {
		t.Errorf("meta = %v", s.Meta)
	}
	want := []Config{{"eevdf", ""}, {"qmap-I", "-I"}}
	if !reflect.DeepEqual(s.Configs, want) {
		t.Errorf("configs = %v, want %v", s.Configs, want)
	}
	if len(s.Notes) != 1 || s.Notes[0] != "something odd" {
		t.Errorf("notes = %q", s.Notes)
	}
}

func TestFindResultErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no marker", "# round 1/5: eevdf\nKernel panic\n", "did not finish"},
		{"bad json", Marker + `{"configs":[`, "decoding"},
		{"wrong type", Marker + `{"configs":[{"name":"a"}],"rounds":[{"config":"a","round":"one"}]}`, "decoding"},
		{"bad bucket", Marker + oneRound(`"hists":{"c":{"buckets":[[1]]}}`), "want [us, count]"},
		{"negative count", Marker + oneRound(`"hists":{"c":{"buckets":[[1,-1]]}}`), "want [us, count]"},
		{"no configs", Marker + `{"meta":{"kernel":"x"}}`, "no configurations"},
		{"unknown config", Marker + `{"configs":[{"name":"a"}],"rounds":[{"config":"b","round":1}]}`, "known configuration"},
		{"round 0", Marker + `{"configs":[{"name":"a"}],"rounds":[{"config":"a","round":0}]}`, "round from 1"},
		{"unsorted", Marker + oneRound(`"hists":{"c":{"buckets":[[5,1],[1,1]]}}`), "not ascending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FindResult(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FindResult error = %v, want one containing %q", err, tt.want)
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
			res := decode(t, oneRound(`"values":{"fair_ticks.-20":`+tt.ticks[0]+
				`,"fair_ticks.0":`+tt.ticks[1]+`,"fair_ticks.19":`+tt.ticks[2]+`}`))
			m := samples(res)["a"][1]
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
