// SPDX-License-Identifier: Apache-2.0

// Package bench holds what `make bench` measures and how it is summarised:
// the guest's Result (written as JSON by `scx-bench guest`, package
// bench/guest), the metrics derived from its raw samples (latency
// percentiles from cyclictest histograms, CPU shares from tick counts), and
// each metric's median with its range and its ratio to EEVDF's median.
package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Baseline is the configuration every ratio is taken against.
const Baseline = "eevdf"

// Marker starts the one output line that carries the guest's Result as
// JSON; the guest's other output (progress) is free text around it.
const Marker = "SCX-BENCH-RESULT "

// CheckpointMarker starts the line the guest prints after each round: what
// that round measured, which the host keeps should the boot die later
// (Checkpoints), to go on from the next round in a new boot.
const CheckpointMarker = "SCX-BENCH-ROUND "

// Checkpoint is one finished round, as the guest reports it.
type Checkpoint struct {
	Round  int      `json:"round"`
	Rounds []*Round `json:"rounds"`          // every configuration's, this round
	Notes  []string `json:"notes,omitempty"` // added since the checkpoint before
	Secs   int      `json:"secs"`            // guest time in rounds so far, this boot
}

// WriteLine writes @c as the marker line the host looks for.
func (c *Checkpoint) WriteLine(w io.Writer) error {
	if err := writeMarked(w, CheckpointMarker, c); err != nil {
		return fmt.Errorf("round %d's checkpoint: %w", c.Round, err)
	}
	return nil
}

// writeMarked writes @v as JSON on one line that starts with @marker.
func writeMarked(w io.Writer, marker string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s%s\n", marker, b); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// Checkpoints reads the checkpoints in a guest's output, in order. A line
// that does not decode (a boot that died while printing it) ends them.
func Checkpoints(text string) []*Checkpoint {
	var out []*Checkpoint
	for line := range strings.SplitSeq(text, "\n") {
		_, js, ok := strings.Cut(line, CheckpointMarker)
		if !ok {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal([]byte(strings.TrimRight(js, "\r")), &c); err != nil {
			break
		}
		out = append(out, &c)
	}
	return out
}

// Config is one configuration the guest ran: a name and scheduler flags
// (none for the baseline).
type Config struct {
	Name  string `json:"name"`
	Flags string `json:"flags"`
}

// Label is how tables and charts name a configuration.
func (c Config) Label() string {
	switch {
	case c.Name == Baseline:
		return "EEVDF"
	case c.Flags == "":
		return "qmap"
	default:
		return "qmap " + c.Flags
	}
}

// Result is one guest run: facts about the machine and the run, the
// configurations in table order, what each configuration measured in each
// round, and what the reader of the results should know.
type Result struct {
	Meta    map[string]string `json:"meta"`
	Configs []Config          `json:"configs"`
	Rounds  []*Round          `json:"rounds"` // in the order they ran
	Notes   []string          `json:"notes,omitempty"`
}

// Round is what one configuration measured in one round: raw values by
// metric name (hackbench_s, fair_ticks.-20, bpf_ns.qmap_enqueue...) and
// cyclictest histograms (cyc_load, cyc_rt). A measurement that failed is
// missing, with a note in the Result.
type Round struct {
	Config string               `json:"config"`
	Number int                  `json:"round"` // from 1
	Values map[string]float64   `json:"values,omitempty"`
	Hists  map[string]Histogram `json:"hists,omitempty"`
}

// WriteLine writes @r as the marker line the host looks for.
func (r *Result) WriteLine(w io.Writer) error {
	if err := writeMarked(w, Marker, r); err != nil {
		return fmt.Errorf("the result: %w", err)
	}
	return nil
}

// FindResult reads a Result from @text: the last marker line in a guest's
// output, or, when there is none, the whole of @text as JSON (a result
// saved by the host).
func FindResult(text string) (*Result, error) {
	js, found := "", false
	for line := range strings.SplitSeq(text, "\n") {
		if _, after, ok := strings.Cut(line, Marker); ok {
			js, found = strings.TrimRight(after, "\r"), true
		}
	}
	if !found {
		if !strings.HasPrefix(strings.TrimSpace(text), "{") {
			return nil, errors.New("no " + strings.TrimSpace(Marker) + " line: the guest did not finish")
		}
		js = text
	}
	var r Result
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return nil, fmt.Errorf("decoding the result: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Meta == nil {
		r.Meta = map[string]string{} // the host adds to it
	}
	return &r, nil
}

// Validate checks what the summary relies on: configurations, rounds of
// known configurations numbered from 1, histograms in ascending order.
func (r *Result) Validate() error {
	if len(r.Configs) == 0 {
		return errors.New("the result names no configurations")
	}
	known := map[string]bool{}
	for _, c := range r.Configs {
		known[c.Name] = true
	}
	for _, rd := range r.Rounds {
		if rd == nil || !known[rd.Config] || rd.Number < 1 {
			return fmt.Errorf("round %+v: want a known configuration and a round from 1", rd)
		}
		for name, h := range rd.Hists {
			for i := 1; i < len(h.Buckets); i++ {
				if h.Buckets[i].US <= h.Buckets[i-1].US {
					return fmt.Errorf("%s round %d: histogram %s: buckets not ascending", rd.Config, rd.Number, name)
				}
			}
		}
	}
	return nil
}
