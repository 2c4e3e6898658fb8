// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"encoding/json"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Request
		wantErr string
	}{
		{name: "stats top", line: `{"req":"stats","args":{"target":"top"}}`,
			want: Request{Req: "stats", Args: map[string]string{"target": "top"}}},
		{name: "no args", line: `{"req":"stats_meta"}`, want: Request{Req: "stats_meta"}},
		{name: "unknown fields ignored", line: ` {"req":"stats","args":{},"x":[1]} `, want: Request{Req: "stats", Args: map[string]string{}}},
		{name: "empty line", line: ``, wantErr: "not a JSON object"},
		{name: "not an object", line: `["stats"]`, wantErr: "not a JSON object"},
		{name: "trailing garbage", line: `{"req":"stats"}x`, wantErr: "not a JSON object"},
		{name: "no req", line: `{"args":{}}`, wantErr: `no "req"`},
		{name: "req differs in case", line: `{"REQ":"stats"}`, wantErr: `no "req"`},
		{name: "req not a string", line: `{"req":1}`, wantErr: `"req"`},
		{name: "empty req", line: `{"req":""}`, wantErr: "empty"},
		{name: "args not strings", line: `{"req":"stats","args":{"target":1}}`, wantErr: `"args"`},
		{name: "args a list", line: `{"req":"stats","args":["top"]}`, wantErr: `"args"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest(%q) error = %v, want %q", tt.line, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.line, err)
			}
			if got.Req != tt.want.Req || len(got.Args) != len(tt.want.Args) || got.Args["target"] != tt.want.Args["target"] {
				t.Errorf("ParseRequest(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

// handle runs one request line through Handle and parses the answer.
func handle(t *testing.T, line string, c *Cache) Response {
	t.Helper()
	out := Handle([]byte(line), c)
	if !strings.HasSuffix(string(out), "\n") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("Handle(%q) = %q: want exactly one line", line, out)
	}
	resp, err := ParseResponse(out[:len(out)-1])
	if err != nil {
		t.Fatalf("Handle(%q) = %q: %v", line, out, err)
	}
	return resp
}

func TestHandle(t *testing.T) {
	ready := &Cache{}
	ready.Publish(snap(t, 100, 7, nil, Event{"SCX_EV_SELECT_CPU_FALLBACK", 3}))
	tests := []struct {
		name      string
		line      string
		cache     *Cache
		wantErrno syscall.Errno
		check     func(t *testing.T, resp json.RawMessage)
	}{
		{name: "stats top", line: `{"req":"stats","args":{"target":"top"}}`, cache: ready, check: checkTop},
		{name: "target defaults to top", line: `{"req":"stats","args":{}}`, cache: ready, check: checkTop},
		{name: "stats_meta", line: `{"req":"stats_meta","args":{}}`, cache: ready, check: checkMeta},
		{name: "meta before the first snapshot", line: `{"req":"stats_meta"}`, cache: &Cache{}, check: checkMeta},
		{name: "stats before the first snapshot", line: `{"req":"stats"}`, cache: &Cache{}, wantErrno: syscall.EAGAIN},
		{name: "unknown target", line: `{"req":"stats","args":{"target":"domains"}}`, cache: ready, wantErrno: syscall.EINVAL},
		{name: "unknown command", line: `{"req":"reset","args":{}}`, cache: ready, wantErrno: syscall.EINVAL},
		{name: "malformed", line: `{"req":`, cache: ready, wantErrno: syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := handle(t, tt.line, tt.cache)
			if resp.Errno != int(tt.wantErrno) {
				t.Fatalf("errno = %d, want %d (resp %s)", resp.Errno, tt.wantErrno, resp.Args["resp"])
			}
			if tt.wantErrno != 0 {
				var msg string
				if err := json.Unmarshal(resp.Args["resp"], &msg); err != nil || msg == "" {
					t.Errorf("error resp = %s, want a message string", resp.Args["resp"])
				}
				return
			}
			tt.check(t, resp.Args["resp"])
		})
	}
}

func checkTop(t *testing.T, resp json.RawMessage) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal(resp, &top); err != nil {
		t.Fatal(err)
	}
	for _, c := range Counters {
		if top[c.Name] != float64(7) {
			t.Errorf("top[%s] = %v, want 7", c.Name, top[c.Name])
		}
	}
	if top[FieldTime] != float64(100000) {
		t.Errorf("top[%s] = %v, want 100000", FieldTime, top[FieldTime])
	}
	// A dict of structs, as scxstats_to_openmetrics.py walks it.
	ev, _ := top[FieldEvents].(map[string]any)
	fallback, _ := ev["SCX_EV_SELECT_CPU_FALLBACK"].(map[string]any)
	if fallback[FieldCount] != float64(3) {
		t.Errorf("top events = %v", top[FieldEvents])
	}
}

func checkMeta(t *testing.T, resp json.RawMessage) {
	t.Helper()
	var meta map[string]Meta
	if err := json.Unmarshal(resp, &meta); err != nil {
		t.Fatal(err)
	}
	m, ok := meta[TopName]
	if !ok || m.Top != "true" || m.Name != TopName {
		t.Fatalf("stats_meta = %+v, want a top struct %s", meta, TopName)
	}
	for _, c := range Counters {
		f, ok := m.Fields[c.Name]
		if !ok || f.Datum == nil || f.Datum.Scalar != "u64" || f.Desc != c.Help {
			t.Errorf("field %s = %+v", c.Name, f)
		}
		if kind := f.User["_kind"]; (kind == "gauge") != c.Gauge || kind == "" {
			t.Errorf("field %s kind = %q, gauge %v", c.Name, kind, c.Gauge)
		}
	}
	if f := m.Fields[FieldEvents]; f.Dict == nil || f.Dict.Key.Scalar != "string" || f.Dict.Datum.Struct != EventName {
		t.Errorf("events field = %+v", f)
	}
	ev, ok := meta[EventName]
	if !ok || ev.Top != "" || ev.User["_om_label"] != "event" || ev.Fields[FieldCount].Datum.Scalar != "i64" {
		t.Errorf("event struct = %+v", ev)
	}
	if m.User["_om_prefix"] == "" || m.User["_om_prefix"] == ev.User["_om_prefix"] || m.User["version"] == "" {
		t.Errorf("top user attributes = %v, event's %v: want distinct metric prefixes and a version", m.User, ev.User)
	}
	// Exactly upstream's shape for a field: {"datum":"u64","desc":...}.
	var raw map[string]struct {
		Fields map[string]map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(resp, &raw); err != nil {
		t.Fatal(err)
	}
	if enq := raw[TopName].Fields["enq"]; enq["datum"] != "u64" || enq["desc"] == nil {
		t.Errorf("enq field = %v", enq)
	}
	// And a dict of structs: {"dict":{"key":"string","datum":{"struct":NAME}}}.
	dict, _ := raw[TopName].Fields[FieldEvents]["dict"].(map[string]any)
	if datum, _ := dict["datum"].(map[string]any); dict["key"] != "string" || datum["struct"] != EventName {
		t.Errorf("events field dict = %v", dict)
	}
}

func TestTopRoundTrip(t *testing.T) {
	want := snap(t, 1700000000, 9, map[string]uint64{"enq": 1 << 60}, Event{"SCX_EV_Z", 1}, Event{"SCX_EV_A", -2})
	want.Subs = []Sub{{CgroupID: 7, Dispatched: 3}, {CgroupID: 1 << 40, Dispatched: 0}}
	got, err := DecodeTop(EncodeTop(want))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("time = %v, want %v", got.Time, want.Time)
	}
	for _, c := range Counters {
		if got.Values[c.Name] != want.Values[c.Name] {
			t.Errorf("%s = %d, want %d", c.Name, got.Values[c.Name], want.Values[c.Name])
		}
	}
	if len(got.Events) != 2 || got.Events[0] != want.Events[0] || got.Events[1] != want.Events[1] {
		t.Errorf("events = %v, want %v in order", got.Events, want.Events)
	}
	if !slices.Equal(got.Subs, want.Subs) {
		t.Errorf("subs = %v, want %v", got.Subs, want.Subs)
	}
	if !json.Valid(EncodeTop(Snapshot{})) {
		t.Errorf("EncodeTop(zero) = %s: invalid JSON", EncodeTop(Snapshot{}))
	}
}

func TestDecodeTopRejects(t *testing.T) {
	for _, in := range []string{``, `[]`, `{}`, `{"enq":"x"}`, `{"enq":-1}`, `{"enq":1,"events":[]}`, `{"enq":1,"at_ms":"now"}`,
		`{"enq":1,"events":{"SCX_EV_A":"x"}}`, `{"enq":1,"subs":{"x":{"dispatched":1}}}`, `{"enq":1,"subs":[]}`} {
		if _, err := DecodeTop([]byte(in)); err == nil {
			t.Errorf("DecodeTop(%q) succeeded", in)
		}
	}
	// A newer server's extra non-numeric field is ignored.
	if _, err := DecodeTop([]byte(`{"enq":1,"sched":"qmap"}`)); err != nil {
		t.Errorf("DecodeTop with an extra field: %v", err)
	}
}

// Malformed requests are errors, never panics, and whatever parses
// survives a round trip and gets a one-line answer.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"req":"stats","args":{"target":"top"}}`, `{"req":"stats_meta","args":{}}`, `{"req":"x"}`,
		`{"req":"stats","args":null}`, `{"req":"\u0000","args":{"":""}}`, `{`, `null`, `{"req":["a"]}`,
	} {
		f.Add([]byte(seed))
	}
	cache := &Cache{}
	cache.Publish(Snapshot{Values: map[string]uint64{"enq": 1}})
	f.Fuzz(func(t *testing.T, line []byte) {
		out := Handle(line, cache)
		if _, err := ParseResponse(out[:len(out)-1]); err != nil {
			t.Fatalf("Handle(%q) = %q: %v", line, out, err)
		}
		req, err := ParseRequest(line)
		if err != nil {
			return
		}
		if req.Req == "" {
			t.Fatalf("ParseRequest(%q) accepted an empty req", line)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(b)
		if err != nil || again.Req != req.Req || len(again.Args) != len(req.Args) {
			t.Fatalf("round trip of %q: %+v, %v", line, again, err)
		}
	})
}

// Clients parse whatever a server sends: errors, never panics.
func FuzzParseResponse(f *testing.F) {
	c := &Cache{}
	c.Publish(Snapshot{Values: map[string]uint64{"enq": 1}, Events: []Event{{"SCX_EV_A", 1}}})
	f.Add(Handle([]byte(`{"req":"stats"}`), c))
	f.Add(Handle([]byte(`{"req":"nope"}`), c))
	f.Add([]byte(`{"errno":0,"args":{"resp":{"enq":1,"events":{"a":1,"b":{}}}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		resp, err := ParseResponse(line)
		if err != nil {
			return
		}
		if s, err := DecodeTop(resp.Args["resp"]); err == nil {
			if _, ok := s.Values["enq"]; !ok {
				t.Fatalf("DecodeTop(%q) accepted a response without enq", resp.Args["resp"])
			}
		}
	})
}
