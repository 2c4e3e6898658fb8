// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// scrape fetches /metrics from a server on a free loopback port.
func scrape(t *testing.T, cache *stats.Cache) map[string]*dto.MetricFamily {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", cache)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return families
}

func TestScrapeAgreesWithSnapshot(t *testing.T) {
	snap := stats.Snapshot{Time: time.Unix(1700000000, 0), Values: map[string]uint64{},
		Events: []stats.Event{{Name: "SCX_EV_SELECT_CPU_FALLBACK", Value: 12}, {Name: "SCX_EV_BYPASS_DURATION", Value: 0}}}
	for i, c := range stats.Counters {
		snap.Values[c.Name] = uint64(1000 + i)
	}
	cache := &stats.Cache{}
	cache.Publish(snap)
	families := scrape(t, cache)

	for _, c := range stats.Counters {
		t.Run(c.Name, func(t *testing.T) {
			f := families[Name(c)]
			if f == nil {
				t.Fatalf("no metric %s", Name(c))
			}
			wantType := dto.MetricType_COUNTER
			if c.Gauge {
				wantType = dto.MetricType_GAUGE
			}
			if f.GetType() != wantType || f.GetHelp() != c.Help || len(f.Metric) != 1 {
				t.Fatalf("%s = %v", Name(c), f)
			}
			m := f.Metric[0]
			got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if got != float64(snap.Values[c.Name]) {
				t.Errorf("%s = %v, want %d", Name(c), got, snap.Values[c.Name])
			}
		})
	}

	ev := families["scx_qmap_go_kernel_event_total"]
	if ev == nil || ev.GetType() != dto.MetricType_COUNTER || len(ev.Metric) != len(snap.Events) {
		t.Fatalf("kernel events = %v", ev)
	}
	byName := map[string]float64{}
	for _, m := range ev.Metric {
		if len(m.Label) != 1 || m.Label[0].GetName() != "event" {
			t.Fatalf("event labels = %v", m.Label)
		}
		byName[m.Label[0].GetValue()] = m.GetCounter().GetValue()
	}
	for _, e := range snap.Events {
		if byName[e.Name] != float64(e.Value) {
			t.Errorf("event %s = %v, want %d", e.Name, byName[e.Name], e.Value)
		}
	}
	if ts := families["scx_qmap_go_snapshot_timestamp_seconds"]; ts == nil || ts.Metric[0].GetGauge().GetValue() != 1700000000 {
		t.Errorf("snapshot timestamp = %v", ts)
	}
	if families["process_resident_memory_bytes"] == nil {
		t.Error("no process metrics")
	}
}

// Before the first snapshot there are no scheduler metrics at all.
func TestScrapeBeforeFirstSnapshot(t *testing.T) {
	for name := range scrape(t, &stats.Cache{}) {
		if strings.HasPrefix(name, Namespace) {
			t.Errorf("metric %s before the first snapshot", name)
		}
	}
}

func TestResolveAddr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: ":9090", want: "127.0.0.1:9090"},
		{in: "0.0.0.0:9090", want: "0.0.0.0:9090"},
		{in: "[::]:9090", want: "[::]:9090"},
		{in: "localhost:1", want: "localhost:1"},
		{in: "9090", wantErr: true},
		{in: ":http", wantErr: true},
		{in: ":70000", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ResolveAddr(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ResolveAddr(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestListenBusyPort(t *testing.T) {
	a, err := Listen("127.0.0.1:0", &stats.Cache{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := Listen(a.Addr(), &stats.Cache{}); err == nil {
		b.Close()
		t.Error("a second Listen on the same port succeeded")
	}
}
