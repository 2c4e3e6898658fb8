// SPDX-License-Identifier: Apache-2.0

// Package scxcompat talks to a stats socket as the scx project's tools do,
// byte for byte, and reads the replies as they do, so that tests can hold
// the server to what those tools accept. scxtop and the scx schedulers'
// --monitor ask for "stats"; scxstats_to_openmetrics.py asks for
// "stats_meta" once and then "stats" on the same connection, and turns
// every number it can place into a gauge.
package scxcompat

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The requests, exactly as each tool writes them (Python's json.dumps puts
// a space after ':' and ',', serde_json does not).
const (
	BridgeMeta   = `{"req": "stats_meta", "args": {}}` + "\n"
	BridgeStats  = `{"req": "stats", "args": {}}` + "\n"
	ScxtopStats  = `{"req":"stats","args":{}}` + "\n"
	MonitorStats = `{"req":"stats","args":{"target":"top"}}` + "\n"
)

// Conn is one connection to a stats socket.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// Dial connects to the socket at @path.
func Dial(path string) (*Conn, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (c *Conn) Close() error { return c.c.Close() }

// Ask sends @request (one line) and returns the reply's "resp", failing
// as the tools do on a non-zero errno.
func (c *Conn) Ask(request string) (json.RawMessage, error) {
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write([]byte(request)); err != nil {
		return nil, err
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var reply struct {
		Errno int                        `json:"errno"`
		Args  map[string]json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(line, &reply); err != nil {
		return nil, fmt.Errorf("reply %q: %w", line, err)
	}
	if reply.Errno != 0 {
		return nil, fmt.Errorf("errno %d: %s", reply.Errno, reply.Args["resp"])
	}
	return reply.Args["resp"], nil
}

// Sample is one OpenMetrics sample as the bridge prints it.
type Sample struct {
	Name   string
	Labels string // `event="SCX_EV_X"`, or ""
	Value  float64
}

func (s Sample) String() string {
	if s.Labels == "" {
		return fmt.Sprintf("%s %g", s.Name, s.Value)
	}
	return fmt.Sprintf("%s{%s} %g", s.Name, s.Labels, s.Value)
}

// gauge is one metric the bridge registers from stats_meta.
type gauge struct {
	name   string
	labels []string
}

type structMeta struct {
	Top    *string              `json:"top"`
	User   map[string]string    `json:"user"`
	Fields map[string]fieldMeta `json:"fields"`
}

type fieldMeta struct {
	Datum json.RawMessage `json:"datum"`
	Dict  *struct {
		Datum json.RawMessage `json:"datum"`
	} `json:"dict"`
	User map[string]string `json:"user"`
}

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// Bridge does what scxstats_to_openmetrics.py does for @scrapes scrapes on
// one connection, and returns the samples of the last. Each of the
// script's failures (it would retry forever and print nothing) is an error.
func Bridge(path string, scrapes int) ([]Sample, error) {
	c, err := Dial(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rawMeta, err := c.Ask(BridgeMeta)
	if err != nil {
		return nil, fmt.Errorf("stats_meta: %w", err)
	}
	var meta map[string]structMeta
	if err := json.Unmarshal(rawMeta, &meta); err != nil {
		return nil, fmt.Errorf("stats_meta: %w", err)
	}
	gauges, err := registerGauges(meta)
	if err != nil {
		return nil, err
	}
	var samples []Sample
	for range scrapes {
		raw, err := c.Ask(BridgeStats)
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		var resp map[string]any
		if err := json.Unmarshal(raw, &resp); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		samples = samples[:0]
		if err := update(resp, "", nil, gauges, &samples); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(samples, func(a, b Sample) int { return strings.Compare(a.String(), b.String()) })
	return samples, nil
}

// registerGauges walks stats_meta from the top struct: a numeric datum is
// a gauge named by its struct's _om_prefix; a dict of structs is followed
// into that struct, which must name its key's label with _om_label.
func registerGauges(meta map[string]structMeta) (map[string]gauge, error) {
	var top string
	for name, s := range meta {
		if s.Top != nil {
			top = name
		}
	}
	if top == "" {
		return nil, errors.New("top-level statistics struct not found")
	}
	gauges := map[string]gauge{}
	names := map[string]bool{}
	var walk func(structName, omid string, labels []string) error
	walk = func(structName, omid string, labels []string) error {
		s, ok := meta[structName]
		if !ok {
			return fmt.Errorf("struct %s is not in stats_meta", structName)
		}
		prefix := s.User["_om_prefix"]
		for fname, f := range s.Fields {
			if _, skip := f.User["_om_skip"]; skip {
				continue
			}
			id := omid + "." + fname
			var scalar string
			if f.Datum != nil && json.Unmarshal(f.Datum, &scalar) == nil && (scalar == "i64" || scalar == "u64" || scalar == "float") {
				name := prefix + fname
				if !metricName.MatchString(name) {
					return fmt.Errorf("%s: %q is not a metric name", id, name)
				}
				if names[name] {
					return fmt.Errorf("%s: duplicated timeseries %q", id, name)
				}
				names[name] = true
				gauges[id] = gauge{name, labels}
				continue
			}
			var nested struct {
				Struct string `json:"struct"`
			}
			if f.Dict == nil || json.Unmarshal(f.Dict.Datum, &nested) != nil || nested.Struct == "" {
				continue // the script logs "unsupported type, skipping"
			}
			label := meta[nested.Struct].User["_om_label"]
			if label == "" {
				return fmt.Errorf("%s is nested inside but does not have _om_label", id)
			}
			if err := walk(nested.Struct, id, append(slices.Clone(labels), label)); err != nil {
				return err
			}
		}
		return nil
	}
	return gauges, walk(top, "", nil)
}

// update sets the gauges from one "stats" reply: the script descends into
// every JSON object, taking its keys as label values, and every value
// inside must be an object in turn.
func update(resp map[string]any, omid string, values []string, gauges map[string]gauge, out *[]Sample) error {
	for k, v := range resp {
		id := omid + "." + k
		if dict, ok := v.(map[string]any); ok {
			for dk, dv := range dict {
				inner, ok := dv.(map[string]any)
				if !ok {
					return fmt.Errorf("%s[%q]: '%T' object has no attribute 'items'", id, dk, dv)
				}
				if err := update(inner, id, append(slices.Clone(values), dk), gauges, out); err != nil {
					return err
				}
			}
			continue
		}
		g, ok := gauges[id]
		if !ok {
			continue
		}
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%s = %v: float() argument must be a number", id, v)
		}
		if len(values) != len(g.labels) {
			return fmt.Errorf("%s: %d label values for labels %v", id, len(values), g.labels)
		}
		var labels []string
		for i, l := range g.labels {
			labels = append(labels, fmt.Sprintf("%s=%q", l, values[i]))
		}
		*out = append(*out, Sample{Name: g.name, Labels: strings.Join(labels, ","), Value: n})
	}
	return nil
}
