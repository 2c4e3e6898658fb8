// SPDX-License-Identifier: Apache-2.0

package scxcompat

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

type fixed bpf.Stats

func (f fixed) Stats() (bpf.Stats, error) { return bpf.Stats(f), nil }

// serve runs the scheduler's stats server on a snapshot with every
// counter at 7 and two kernel events.
func serve(t *testing.T) string {
	t.Helper()
	s, err := stats.Take(fixed{}, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range stats.Counters {
		s.Values[c.Name] = 7
	}
	s.Events = []stats.Event{{Name: "SCX_EV_SELECT_CPU_FALLBACK", Value: 3}, {Name: "SCX_EV_BYPASS_DURATION", Value: 0}}
	cache := &stats.Cache{}
	cache.Publish(s)
	path := filepath.Join(t.TempDir(), "stats")
	srv, err := stats.StartServer(stats.ServerConfig{Path: path}, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return path
}

// The OpenMetrics bridge turns every counter and every kernel event into
// a gauge, scrape after scrape on one connection.
func TestBridge(t *testing.T) {
	samples, err := Bridge(serve(t), 3)
	if err != nil {
		t.Fatalf("the bridge would loop on: %v", err)
	}
	got := map[string]float64{}
	for _, s := range samples {
		got[s.String()[:strings.LastIndexByte(s.String(), ' ')]] = s.Value
	}
	want := map[string]float64{
		`scx_qmap_go_event_count{event="SCX_EV_SELECT_CPU_FALLBACK"}`: 3,
		`scx_qmap_go_event_count{event="SCX_EV_BYPASS_DURATION"}`:     0,
	}
	for _, c := range stats.Counters {
		want["scx_qmap_go_"+c.Name] = 7
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d samples, want %d:\n%v", len(got), len(want), samples)
	}
}

// scxtop and the schedulers' --monitor each get the top struct.
func TestStatsRequests(t *testing.T) {
	path := serve(t)
	for _, req := range []string{ScxtopStats, MonitorStats, BridgeStats} {
		c, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Ask(req)
		c.Close()
		if err != nil {
			t.Errorf("%q: %v", req, err)
			continue
		}
		s, err := stats.DecodeTop(resp)
		if err != nil || s.Values["enq"] != 7 || len(s.Events) != 2 {
			t.Errorf("%q: %+v, %v", req, s, err)
		}
	}
}

// The checks catch what made the real script loop: a dict of plain
// numbers, a missing _om_label, no top struct, a name used twice.
func TestBridgeRefuses(t *testing.T) {
	const top = `"T":{"name":"T","top":"true","fields":{"a":{"datum":"u64"},"events":{"dict":{"key":"string","datum":%s}}}}`
	tests := []struct {
		name, meta, stats, want string
	}{
		{"dict of numbers", `{` + fmt.Sprintf(top, `"i64"`) + `}`, `{"a":1,"events":{"X":3}}`, "has no attribute 'items'"},
		{"no _om_label", `{` + fmt.Sprintf(top, `{"struct":"E"}`) + `,"E":{"name":"E","fields":{"count":{"datum":"u64"}}}}`,
			`{"a":1,"events":{}}`, "does not have _om_label"},
		{"no top", `{"T":{"name":"T","fields":{}}}`, `{}`, "top-level statistics struct not found"},
		{"name twice", `{` + fmt.Sprintf(top, `{"struct":"E"}`) + `,"E":{"name":"E","user":{"_om_label":"e"},"fields":{"a":{"datum":"u64"}}}}`,
			`{}`, "duplicated timeseries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fakeServer(t, tt.meta, tt.stats)
			if _, err := Bridge(path, 1); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Bridge = %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeServer answers stats_meta with @meta and anything else with @stats.
func fakeServer(t *testing.T, meta, statsResp string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					resp := statsResp
					if strings.Contains(line, "stats_meta") {
						resp = meta
					}
					fmt.Fprintf(c, `{"errno":0,"args":{"resp":%s}}`+"\n", resp)
				}
			}()
		}
	}()
	return path
}
