// SPDX-License-Identifier: Apache-2.0

package stats

// The stats socket speaks the scx project's scx_stats protocol, so its
// generic clients work too: one JSON object per line each way.
//
//	-> {"req":"stats","args":{"target":"top"}}
//	<- {"errno":0,"args":{"resp":{"at_ms":1700000000000,"enq":12,...,"events":{"SCX_EV_...":{"count":0}}}}}
//	-> {"req":"stats_meta","args":{}}
//	<- {"errno":0,"args":{"resp":{"QmapStats":{"name":"QmapStats","top":"true",...},"KernelEvent":{...}}}}
//
// The shapes are the ones scx's own clients walk: scxtop and the scx
// schedulers' --monitor send {"req":"stats","args":{}}, and
// scxstats_to_openmetrics.py descends into every JSON object of the reply
// as a dict of structs, so the kernel events are structs keyed by name.
//
// A failed request gets a non-zero errno (EINVAL for a malformed or unknown
// request) and a message string as "resp".

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/version"
)

// Request is one request line. Args values are strings, as upstream's.
type Request struct {
	Req  string            `json:"req"`
	Args map[string]string `json:"args"`
}

// Response is one reply line; Args["resp"] holds the answer or, when Errno
// is not 0, an error message string.
type Response struct {
	Errno int                        `json:"errno"`
	Args  map[string]json.RawMessage `json:"args"`
}

// Names of the statistics structs in stats_meta: the "top" one, and the
// one each kernel event is, in the top struct's "events" dict.
const (
	TopName   = "QmapStats"
	EventName = "KernelEvent"
	SubName   = "SubSched"
)

// Names of the "top" response's fields that are not counters.
const (
	FieldTime   = "at_ms"  // when the snapshot was taken, Unix milliseconds
	FieldEvents = "events" // the kernel's event counters by their own names
	FieldCount  = "count"  // an event's value, the one field of EventName
	FieldSubs   = "subs"   // the sub-schedulers below, by cgroup id
	FieldSubDsp = "dispatched"
)

// ParseRequest parses one request line. Field names match exactly (unlike
// encoding/json's case-insensitive structs); unknown fields are ignored.
func ParseRequest(line []byte) (Request, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Request{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	var r Request
	reqRaw, ok := raw["req"]
	if !ok {
		return Request{}, errors.New(`request has no "req" field`)
	}
	if err := json.Unmarshal(reqRaw, &r.Req); err != nil {
		return Request{}, fmt.Errorf(`request field "req": %w`, err)
	}
	if r.Req == "" {
		return Request{}, errors.New(`request field "req" is empty`)
	}
	if a, ok := raw["args"]; ok {
		if err := json.Unmarshal(a, &r.Args); err != nil {
			return Request{}, fmt.Errorf(`request field "args" must map names to strings: %w`, err)
		}
	}
	return r, nil
}

// ParseResponse parses one response line.
func ParseResponse(line []byte) (Response, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Response{}, fmt.Errorf("response is not a JSON object: %w", err)
	}
	var r Response
	e, ok := raw["errno"]
	if !ok {
		return Response{}, errors.New(`response has no "errno" field`)
	}
	if err := json.Unmarshal(e, &r.Errno); err != nil {
		return Response{}, fmt.Errorf(`response field "errno": %w`, err)
	}
	if a, ok := raw["args"]; ok {
		if err := json.Unmarshal(a, &r.Args); err != nil {
			return Response{}, fmt.Errorf(`response field "args": %w`, err)
		}
	}
	return r, nil
}

// Handle answers one request line from @c's latest snapshot and returns the
// response line, newline included. It never fails: errors become errno.
func Handle(line []byte, c *Cache) []byte {
	resp := answer(line, c)
	b, err := json.Marshal(resp)
	if err != nil { // only RawMessage we built ourselves: cannot happen
		b = []byte(`{"errno":5,"args":{"resp":"encoding the response failed"}}`)
	}
	return append(b, '\n')
}

func answer(line []byte, c *Cache) Response {
	req, err := ParseRequest(line)
	if err != nil {
		return errorResponse(syscall.EINVAL, err.Error())
	}
	switch req.Req {
	case "stats":
		if t, ok := req.Args["target"]; ok && t != "top" {
			return errorResponse(syscall.EINVAL, fmt.Sprintf("unknown stat target %q: only \"top\"", t))
		}
		top, ok := c.topJSON()
		if !ok {
			return errorResponse(syscall.EAGAIN, "no snapshot yet: the scheduler is starting")
		}
		return Response{Args: map[string]json.RawMessage{"resp": top}}
	case "stats_meta":
		return Response{Args: map[string]json.RawMessage{"resp": metaJSON}}
	default:
		return errorResponse(syscall.EINVAL, fmt.Sprintf("unknown command %q: use \"stats\" or \"stats_meta\"", req.Req))
	}
}

func errorResponse(errno syscall.Errno, msg string) Response {
	m, _ := json.Marshal(msg)
	return Response{Errno: int(errno), Args: map[string]json.RawMessage{"resp": m}}
}

// RemoteError is a non-zero errno answer from the server.
type RemoteError struct {
	Errno int
	Msg   string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("stats server: %s (errno %d)", e.Msg, e.Errno)
}

// EncodeTop renders @s as the "top" response object: counters under their
// Counter.Name in display order, then "events". Every output that shows a
// snapshot as JSON (socket, --json) goes through here.
func EncodeTop(s Snapshot) []byte {
	b := make([]byte, 0, 1024)
	b = append(b, `{"`+FieldTime+`":`...)
	var ms int64
	if !s.Time.IsZero() {
		ms = s.Time.UnixMilli()
	}
	b = strconv.AppendInt(b, ms, 10)
	for _, c := range Counters {
		b = append(b, ',', '"')
		b = append(b, c.Name...)
		b = append(b, '"', ':')
		b = strconv.AppendUint(b, s.Values[c.Name], 10)
	}
	b = append(b, `,"`+FieldEvents+`":{`...)
	for i, e := range s.Events {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(e.Name) // escapes whatever the kernel wrote
		b = append(b, name...)
		b = append(b, `:{"`+FieldCount+`":`...)
		b = strconv.AppendInt(b, e.Value, 10)
		b = append(b, '}')
	}
	b = append(b, `},"`+FieldSubs+`":{`...)
	for i, sub := range s.Subs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendUint(b, sub.CgroupID, 10)
		b = append(b, `":{"`+FieldSubDsp+`":`...)
		b = strconv.AppendUint(b, sub.Dispatched, 10)
		b = append(b, '}')
	}
	return append(b, '}', '}')
}

// DecodeTop parses a "top" response object back into a Snapshot, keeping
// the kernel events in the server's order.
func DecodeTop(b []byte) (Snapshot, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Snapshot{}, fmt.Errorf("stats response is not a JSON object: %w", err)
	}
	if _, ok := raw["enq"]; !ok {
		return Snapshot{}, errors.New(`not a scx-qmap-go stats response: no "enq" field`)
	}
	s := Snapshot{Values: make(map[string]uint64, len(raw))}
	for k, v := range raw {
		switch k {
		case FieldTime:
			var ms int64
			if err := json.Unmarshal(v, &ms); err != nil {
				return Snapshot{}, fmt.Errorf("stats response field %s: %w", k, err)
			}
			if ms != 0 {
				s.Time = time.UnixMilli(ms)
			}
		case FieldEvents:
			events, err := decodeEvents(v)
			if err != nil {
				return Snapshot{}, err
			}
			s.Events = events
		case FieldSubs:
			subs, err := decodeSubs(v)
			if err != nil {
				return Snapshot{}, err
			}
			s.Subs = subs
		default:
			var n uint64
			err := json.Unmarshal(v, &n)
			if err != nil && isCounter(k) {
				return Snapshot{}, fmt.Errorf("stats response field %s: %w", k, err)
			}
			if err == nil { // fields a newer server added are kept if numeric
				s.Values[k] = n
			}
		}
	}
	return s, nil
}

// decodeEvents reads the "events" object in order, which a map would lose.
func decodeEvents(b []byte) ([]Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New(`stats response field "events" is not an object`)
	}
	var events []Event
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf(`stats response field "events": %w`, err)
		}
		name, _ := t.(string) // object keys are always strings
		var v map[string]int64
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("stats response event %s: %w", name, err)
		}
		count, ok := v[FieldCount]
		if !ok {
			return nil, fmt.Errorf("stats response event %s has no %q", name, FieldCount)
		}
		events = append(events, Event{Name: name, Value: count})
	}
	return events, nil
}

// decodeSubs reads the "subs" object, sorted by cgroup id.
func decodeSubs(b []byte) ([]Sub, error) {
	var raw map[string]map[string]uint64
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf(`stats response field "subs": %w`, err)
	}
	subs := make([]Sub, 0, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf(`stats response field "subs": key %q is not a cgroup id`, k)
		}
		subs = append(subs, Sub{CgroupID: id, Dispatched: v[FieldSubDsp]})
	}
	slices.SortFunc(subs, func(a, b Sub) int { return cmp.Compare(a.CgroupID, b.CgroupID) })
	return subs, nil
}

// Meta describes one statistics struct, as upstream's StatsMeta.
type Meta struct {
	Name   string            `json:"name"`
	Top    string            `json:"top,omitempty"` // "true" on the struct "stats" returns by default
	Desc   string            `json:"desc,omitempty"`
	User   map[string]string `json:"user,omitempty"`
	Fields map[string]Field  `json:"fields"`
}

// Field describes one field, as upstream's StatsField: exactly one of
// Datum or Dict is set.
type Field struct {
	Datum *Kind             `json:"datum,omitempty"`
	Dict  *DictKind         `json:"dict,omitempty"`
	Desc  string            `json:"desc,omitempty"`
	User  map[string]string `json:"user,omitempty"`
}

// DictKind is a map field's key and value kinds.
type DictKind struct {
	Key   Kind `json:"key"`
	Datum Kind `json:"datum"`
}

// Kind is a field's type as upstream's StatsKind: a scalar ("u64", "i64",
// "float", "string"), serialised as that string, or a struct, serialised
// as {"struct":"Name"}.
type Kind struct {
	Scalar string
	Struct string // when Scalar is ""
}

func scalar(name string) *Kind { return &Kind{Scalar: name} }

func (k Kind) MarshalJSON() ([]byte, error) {
	if k.Scalar != "" {
		return json.Marshal(k.Scalar)
	}
	return json.Marshal(map[string]string{"struct": k.Struct})
}

func (k *Kind) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &k.Scalar); err == nil {
		return nil
	}
	var st map[string]string
	if err := json.Unmarshal(b, &st); err != nil || st["struct"] == "" {
		return fmt.Errorf("stats kind %s: want a scalar name or {\"struct\":NAME}", b)
	}
	k.Struct = st["struct"]
	return nil
}

// String is the kind as scx's --help-stats prints it.
func (k Kind) String() string {
	if k.Scalar != "" {
		return k.Scalar
	}
	return k.Struct
}

// StatsMeta is the stats_meta answer. User attributes: "_kind" is "counter"
// (a running total) or "gauge" (a level); "_bpf" names the BPF global;
// "version" is the build's; "_om_prefix", "_om_label" and "_om_skip" are
// read by upstream's scxstats_to_openmetrics.py, which names the metrics
// scx_qmap_go_enq, ..., scx_qmap_go_event_count{event="SCX_EV_..."}.
func StatsMeta() map[string]Meta {
	fields := map[string]Field{
		FieldTime: {Datum: scalar("u64"), Desc: "when the scheduler took this snapshot, Unix time in milliseconds",
			User: map[string]string{"_om_skip": "true"}},
		FieldEvents: {Dict: &DictKind{Key: Kind{Scalar: "string"}, Datum: Kind{Struct: EventName}},
			Desc: "the kernel's sched_ext event counters (/sys/kernel/sched_ext/root/events) by their names, e.g. SCX_EV_SELECT_CPU_FALLBACK; the set depends on the kernel"},
		FieldSubs: {Dict: &DictKind{Key: Kind{Scalar: "string"}, Datum: Kind{Struct: SubName}},
			Desc: "the sub-schedulers attached below this one (-c), by the id of their cgroup"},
	}
	for _, c := range Counters {
		kind := "counter"
		if c.Gauge {
			kind = "gauge"
		}
		fields[c.Name] = Field{Datum: scalar("u64"), Desc: c.Help, User: map[string]string{"_kind": kind, "_bpf": c.BPF}}
	}
	return map[string]Meta{
		TopName: {
			Name:   TopName,
			Top:    "true",
			Desc:   "scx-qmap-go scheduler counters and the kernel's sched_ext events",
			User:   map[string]string{"_om_prefix": "scx_qmap_go_", "version": version.String()},
			Fields: fields,
		},
		SubName: {
			Name: SubName,
			Desc: "a sub-scheduler attached below this one",
			User: map[string]string{"_om_prefix": "scx_qmap_go_sub_", "_om_label": "cgroup_id"},
			Fields: map[string]Field{FieldSubDsp: {Datum: scalar("u64"),
				Desc: "dispatches this scheduler handed it through scx_bpf_sub_dispatch()", User: map[string]string{"_kind": "counter"}}},
		},
		EventName: {
			Name: EventName,
			Desc: "one of the kernel's sched_ext event counters",
			User: map[string]string{"_om_prefix": "scx_qmap_go_event_", "_om_label": "event"},
			Fields: map[string]Field{FieldCount: {Datum: scalar("i64"),
				Desc: "times the event happened since the scheduler attached", User: map[string]string{"_kind": "counter"}}},
		},
	}
}

// metaJSON is the stats_meta answer, encoded once.
var metaJSON = func() json.RawMessage {
	b, err := json.Marshal(StatsMeta())
	if err != nil {
		panic(err) // static data
	}
	return b
}()
