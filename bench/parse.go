// SPDX-License-Identifier: Apache-2.0

// Package bench turns the output of the guest benchmark script
// (bench/guest.sh) into per-configuration statistics: it parses the
// script's records, derives metrics from raw ones (latency percentiles from
// cyclictest histograms, CPU shares from tick counts) and summarises each
// metric as a median with its range and its ratio to EEVDF's median.
package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Baseline is the configuration every ratio is taken against.
const Baseline = "eevdf"

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

// Run is one guest run as parsed: its metadata, configurations, and every
// sample as config -> round -> metric -> value.
type Run struct {
	Meta    map[string]string
	Configs []Config
	Samples map[string]map[int]map[string]float64
	Notes   []string
}

// Parse reads the guest script's output. Lines it does not know (the
// kernel's, the scheduler's, progress) are skipped; a malformed record is an
// error, as it means the script and this parser disagree.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{Meta: map[string]string{}, Samples: map[string]map[int]map[string]float64{}}
	sc := bufio.NewScanner(r)
	// HIST lines carry a whole histogram.
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		kind, rest, _ := strings.Cut(line, " ")
		var err error
		switch kind {
		case "META":
			k, v, _ := strings.Cut(rest, " ")
			run.Meta[k] = strings.TrimSpace(v)
		case "CONFIG":
			name, flags, _ := strings.Cut(rest, " ")
			run.Configs = append(run.Configs, Config{Name: name, Flags: strings.TrimSpace(flags)})
		case "NOTE":
			run.Notes = append(run.Notes, strings.TrimSpace(rest))
		case "BENCH":
			err = run.parseBench(rest)
		case "HIST":
			err = run.parseHist(rest)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading guest output: %w", err)
	}
	if len(run.Configs) == 0 {
		return nil, fmt.Errorf("no CONFIG records: not the output of bench/guest.sh")
	}
	run.deriveFairness()
	return run, nil
}

// parseBench reads "<config> <round> <metric> <value>".
func (run *Run) parseBench(rest string) error {
	f := strings.Fields(rest)
	if len(f) != 4 {
		return fmt.Errorf("BENCH record %q: want <config> <round> <metric> <value>", rest)
	}
	round, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("BENCH record %q: round: %w", rest, err)
	}
	v, err := strconv.ParseFloat(f[3], 64)
	if err != nil {
		return fmt.Errorf("BENCH record %q: value: %w", rest, err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("BENCH record %q: value is not finite", rest)
	}
	run.set(f[0], round, f[2], v)
	return nil
}

// parseHist reads "<config> <round> <metric> max=<us> overflow=<n> <us>:<count>..."
// and records the metric's p50, p99 and max.
func (run *Run) parseHist(rest string) error {
	f := strings.Fields(rest)
	if len(f) < 5 {
		return fmt.Errorf("HIST record %.80q: too short", rest)
	}
	round, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("HIST record %.80q: round: %w", rest, err)
	}
	h := Histogram{}
	for _, kv := range f[3:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			k, v, ok = strings.Cut(kv, ":")
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if !ok || err != nil {
			return fmt.Errorf("HIST record %.80q: bad field %q", rest, kv)
		}
		switch k {
		case "max":
			h.Max = n
		case "overflow":
			h.Overflow = n
		default:
			us, err := strconv.ParseUint(k, 10, 64)
			if err != nil {
				return fmt.Errorf("HIST record %.80q: bad bucket %q", rest, kv)
			}
			h.Buckets = append(h.Buckets, Bucket{US: us, Count: n})
		}
	}
	if h.Total() == 0 {
		return nil // cyclictest measured nothing; leave the metric missing
	}
	run.set(f[0], round, f[2]+"_p50_us", float64(h.Percentile(50)))
	run.set(f[0], round, f[2]+"_p99_us", float64(h.Percentile(99)))
	run.set(f[0], round, f[2]+"_max_us", float64(h.Max))
	return nil
}

func (run *Run) set(config string, round int, metric string, v float64) {
	if run.Samples[config] == nil {
		run.Samples[config] = map[int]map[string]float64{}
	}
	if run.Samples[config][round] == nil {
		run.Samples[config][round] = map[string]float64{}
	}
	run.Samples[config][round][metric] = v
}
