// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/metrics"
)

// sample is one `scx-qmap-go stats --json` line: the counters by name,
// at_ms, and the kernel's events.
type sample struct {
	values map[string]uint64
	events map[string]int64
}

func readSample(t *testing.T, path string) sample {
	t.Helper()
	var raw map[string]json.RawMessage
	text := strings.TrimSpace(readFile(t, path))
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		t.Fatalf("%s: not one JSON object: %v\n%s", filepath.Base(path), err, text)
	}
	s := sample{values: map[string]uint64{}, events: map[string]int64{}}
	for name, v := range raw {
		if name == "events" {
			if err := json.Unmarshal(v, &s.events); err != nil {
				t.Fatalf("%s: events: %v", filepath.Base(path), err)
			}
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			t.Fatalf("%s: %s = %s, want a number", filepath.Base(path), name, v)
		}
		s.values[name] = n
	}
	return s
}

// checkStats: a second process reads counters that move with the workload,
// the socket is root's alone, and a metrics scrape agrees with the socket.
func checkStats(t *testing.T, r map[string]string, out string) {
	t.Helper()
	for _, c := range []struct{ key, want string }{
		{"stats_json_rc", "0"},
		{"socket_mode", "600 root"},
		{"stats_nonroot_rc", strconv.Itoa(int(loader.ExitNotRoot))},
		{"socket_after", "0"},
		{"stats_none_rc", strconv.Itoa(int(loader.ExitNoInstance))},
	} {
		if got := r[c.key]; got != c.want {
			t.Errorf("%s = %q, want %q", c.key, got, c.want)
		}
	}
	if t.Failed() {
		return
	}

	first := readSample(t, filepath.Join(out, "stats1.json"))
	second := readSample(t, filepath.Join(out, "stats2.json"))
	for _, c := range stats.Counters {
		if _, ok := second.values[c.Name]; !ok {
			t.Errorf("stats --json has no %q", c.Name)
		}
	}
	for _, name := range []string{"enq", "dsp", stats.FieldTime} {
		if second.values[name] <= first.values[name] {
			t.Errorf("stats --json: %s did not move under load: %d -> %d", name, first.values[name], second.values[name])
		}
	}
	if len(second.events) == 0 {
		t.Errorf("stats --json: no kernel events")
	}
	t.Logf("stats --json 2 s apart under load: enq %d -> %d, dsp %d -> %d",
		first.values["enq"], second.values["enq"], first.values["dsp"], second.values["dsp"])

	if r["metrics_tries"] == "5" {
		// Five tries never saw one snapshot on both sides of the scrape.
		t.Logf("metrics: no scrape fell inside one snapshot; comparing names only")
	}
	before := readSample(t, filepath.Join(out, "pair-before.json"))
	after := readSample(t, filepath.Join(out, "pair-after.json"))
	sameSnapshot := before.values[stats.FieldTime] == after.values[stats.FieldTime]
	checkScrape(t, filepath.Join(out, "metrics.txt"), before, sameSnapshot)
}

// checkScrape parses the scrape with the client library's own text parser
// and, when @same says the socket saw one snapshot around it, compares every
// counter and event with the socket's @want.
func checkScrape(t *testing.T, path string, want sample, same bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parsing the metrics scrape: %v", err)
	}
	value := func(m *dto.Metric) float64 {
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	for _, c := range stats.Counters {
		fam := families[metrics.Name(c)]
		if fam == nil || len(fam.GetMetric()) != 1 {
			t.Errorf("metrics: no %s", metrics.Name(c))
			continue
		}
		if got := value(fam.GetMetric()[0]); same && got != float64(want.values[c.Name]) {
			t.Errorf("metrics: %s = %v, socket says %s = %d", metrics.Name(c), got, c.Name, want.values[c.Name])
		}
	}
	events := families[metrics.Namespace+"_kernel_event_total"]
	if events == nil || len(events.GetMetric()) == 0 {
		t.Errorf("metrics: no kernel events")
		return
	}
	for _, m := range events.GetMetric() {
		name := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "event" {
				name = l.GetValue()
			}
		}
		if v, ok := want.events[name]; same && (!ok || value(m) != float64(v)) {
			t.Errorf("metrics: event %s = %v, socket says %d (present %v)", name, value(m), v, ok)
		}
	}
	ts := families[metrics.Namespace+"_snapshot_timestamp_seconds"]
	if same && ts != nil && len(ts.GetMetric()) == 1 {
		if got := value(ts.GetMetric()[0]); math.Abs(got*1000-float64(want.values[stats.FieldTime])) > 1 {
			t.Errorf("metrics: snapshot at %v s, socket's at_ms %d", got, want.values[stats.FieldTime])
		}
	}
	t.Logf("metrics scrape: %d families, same snapshot as the socket: %v", len(families), same)
}
