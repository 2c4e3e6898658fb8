// SPDX-License-Identifier: Apache-2.0

package scenarios

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/metrics"
	"github.com/scx-qmap-go/scx-qmap-go/stats/scxcompat"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

// sample is one `scx-qmap-go stats --json` line: the counters by name,
// at_ms, the kernel's events, and the dispatches handed to each
// sub-scheduler by cgroup id.
type sample struct {
	values map[string]uint64
	events map[string]int64
	subs   map[string]uint64
}

// statsJSON runs `scx-qmap-go stats --json` and parses its one line.
func statsJSON(t *testing.T, bin string) sample {
	t.Helper()
	rc, out := guest.RunOutput(t, 10*time.Second, bin, "stats", "--json")
	if rc != 0 {
		t.Fatalf("stats --json: exit %d\n%s", rc, out)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &raw); err != nil {
		t.Fatalf("stats --json: not one JSON object: %v\n%s", err, out)
	}
	s := sample{values: map[string]uint64{}}
	for name, v := range raw {
		switch name {
		case stats.FieldSubs:
			s.subs = innerField[uint64](t, name, v, stats.FieldSubDsp)
			continue
		case stats.FieldEvents:
			s.events = innerField[int64](t, name, v, stats.FieldCount)
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			t.Fatalf("stats --json: %s = %s, want a number", name, v)
		}
		s.values[name] = n
	}
	return s
}

// innerField reads @v, the object @name of an object of objects, and keeps
// @field of each inner one, by its key.
func innerField[T any](t *testing.T, name string, v json.RawMessage, field string) map[string]T {
	t.Helper()
	var outer map[string]map[string]T
	if err := json.Unmarshal(v, &outer); err != nil {
		t.Fatalf("stats --json: %s: %v", name, err)
	}
	out := make(map[string]T, len(outer))
	for key, fields := range outer {
		out[key] = fields[field]
	}
	return out
}

// checkStatsClients, while a workload runs: a second process reads
// counters that move, the socket is root's alone, and a metrics scrape
// agrees with the socket.
func checkStatsClients(t *testing.T, bin string) {
	t.Helper()
	first := statsJSON(t, bin)
	time.Sleep(2 * time.Second)
	second := statsJSON(t, bin)
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
		t.Error("stats --json: no kernel events")
	}
	t.Logf("stats --json 2 s apart under load: enq %d -> %d, dsp %d -> %d",
		first.values["enq"], second.values["enq"], first.values["dsp"], second.values["dsp"])

	st, err := os.Stat(stats.DefaultSocket)
	if err != nil {
		t.Fatal(err)
	}
	if mode, uid := st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid; mode != 0o600 || uid != 0 {
		t.Errorf("socket mode %o owner %d, want 600 root", mode, uid)
	}
	if rc := guest.Run(t, 10*time.Second, "setpriv", append(nobody, bin, "stats")...); rc != exitNotRoot {
		t.Errorf("non-root stats: exit %d, want %d", rc, exitNotRoot)
	}
	checkScxClients(t)

	// --monitor watches the running instance as "stats --watch" does. The
	// 2 s count from its first block, not from its start, which a slow
	// host delays.
	mon := guest.Start(t, bin, "--monitor", "0.5")
	if !mon.WaitOutput(t, "enq=", 30*time.Second) {
		t.Fatalf("--monitor 0.5 printed no block in 30 s:\n%s", mon.Output(t))
	}
	time.Sleep(2 * time.Second)
	mon.Signal(os.Interrupt)
	if rc := mon.Wait(t, 30*time.Second); rc != 0 {
		t.Errorf("--monitor 0.5: exit %d", rc)
	}
	blocks := 0
	for line := range strings.Lines(mon.Output(t)) {
		if strings.HasPrefix(line, "enq=") {
			blocks++
		}
	}
	t.Logf("--monitor 0.5: %d blocks", blocks)
	if blocks < 2 {
		t.Errorf("--monitor 0.5 printed %d blocks, its first and those of the 2 s after it; want >= 2:\n%s", blocks, mon.Output(t))
	}

	// A scrape between two socket samples of the same snapshot must agree
	// with them; five tries to land inside one stats interval.
	var before sample
	var scrape string
	same := false
	for try := 0; try < 5 && !same; try++ {
		before = statsJSON(t, bin)
		scrape = httpGet(t, "http://127.0.0.1:9464/metrics")
		after := statsJSON(t, bin)
		same = before.values[stats.FieldTime] == after.values[stats.FieldTime]
	}
	if !same {
		t.Log("metrics: no scrape fell inside one snapshot; comparing names only")
	}
	checkScrape(t, scrape, before, same)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

// checkScrape parses the scrape with the client library's own text parser
// and, when @same says the socket saw one snapshot around it, compares every
// counter and event with the socket's @want.
func checkScrape(t *testing.T, text string, want sample, same bool) {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
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
		t.Error("metrics: no kernel events")
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

// checkScxClients: the scx project's tools, asking the default socket
// exactly as they do, get what they can use: scxtop and --monitor the top
// struct, and the OpenMetrics bridge a gauge per counter and kernel event.
func checkScxClients(t *testing.T) {
	t.Helper()
	for _, req := range []string{scxcompat.ScxtopStats, scxcompat.MonitorStats} {
		c, err := scxcompat.Dial(stats.DefaultSocket)
		if err != nil {
			t.Fatalf("%s: %v", stats.DefaultSocket, err)
		}
		resp, err := c.Ask(req)
		c.Close()
		if s, derr := stats.DecodeTop(resp); err != nil || derr != nil || s.Values["enq"] == 0 {
			t.Errorf("%q: %v, %v, enq %d", strings.TrimSpace(req), err, derr, s.Values["enq"])
		}
	}
	samples, err := scxcompat.Bridge(stats.DefaultSocket, 2)
	if err != nil {
		t.Fatalf("scxstats_to_openmetrics would loop on: %v", err)
	}
	names := map[string]int{}
	for _, s := range samples {
		names[s.Name]++
		if s.Name == "scx_qmap_go_enq" {
			t.Logf("bridge: %s", s)
		}
	}
	for _, c := range stats.Counters {
		if names["scx_qmap_go_"+c.Name] != 1 {
			t.Errorf("bridge: no gauge scx_qmap_go_%s", c.Name)
		}
	}
	if names["scx_qmap_go_event_count"] < 5 {
		t.Errorf("bridge: %d kernel event samples, want the kernel's events", names["scx_qmap_go_event_count"])
	}
}
