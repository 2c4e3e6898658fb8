// SPDX-License-Identifier: Apache-2.0

package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

func fixture(t *testing.T) *bench.Summary {
	t.Helper()
	b, err := os.ReadFile("../testdata/guest.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench.FindResult(string(b))
	if err != nil {
		t.Fatalf("FindResult: %v", err)
	}
	return bench.Summarise(res)
}

func render(t *testing.T, f func(io.Writer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNum(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {7, "7"}, {963, "963"}, {-2, "-2"}, {1234.56, "1235"},
		{12.34, "12.3"}, {1.234, "1.23"}, {0.01675, "0.0168"}, {0.5, "0.5"},
	}
	for _, tt := range tests {
		if got := Num(tt.v); got != tt.want {
			t.Errorf("Num(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestCell(t *testing.T) {
	tests := []struct {
		name string
		st   *bench.Stat
		want string
	}{
		{"missing", nil, "—"},
		{"one sample", &bench.Stat{Median: 2, Min: 2, Max: 2, N: 1}, "2"},
		{"range", &bench.Stat{Median: 1.6, Min: 1.5, Max: 1.7, N: 3}, "1.60 [1.50–1.70]"},
		{"ratio", &bench.Stat{Median: 2, Min: 1.8, Max: 2.4, N: 3, Ratio: 1.25}, "2 [1.80–2.40] ×1.25"},
		{"flat with ratio", &bench.Stat{Median: 3, Min: 3, Max: 3, N: 2, Ratio: 0.5}, "3 ×0.50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cell(tt.st); got != tt.want {
				t.Errorf("Cell = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	s := fixture(t)
	out := render(t, func(w io.Writer) error { return Text(w, s) })
	tests := []struct{ name, want string }{
		{"facts", "kernel 7.2.13+deb14-amd64, vCPUs 2, emulation TCG, rounds 3"},
		{"header", "EEVDF"},
		{"flags in header", "qmap -I"},
		{"ratio", "2 [1.80–2.40] ×1.25"},
		{"direction", "hackbench ↓"},
		{"note", "note: qmap-I round 1: the fairness window took 16 s instead of 5"},
	}
	for _, tt := range tests {
		if !strings.Contains(out, tt.want) {
			t.Errorf("%s: table lacks %q:\n%s", tt.name, tt.want, out)
		}
	}
	// Every row has the same width: the columns line up.
	lines := strings.Split(out, "\n")
	w := len([]rune(lines[1]))
	for _, l := range lines[3 : 3+len(s.Metrics)] {
		if len([]rune(l)) != w {
			t.Errorf("row %q is %d wide, header %d", l, len([]rune(l)), w)
		}
	}
}

func TestMarkdown(t *testing.T) {
	s := fixture(t)
	out := render(t, func(w io.Writer) error { return Markdown(w, s, "latest.svg") })
	tests := []string{
		"| kernel | 7.2.13+deb14-amd64 |",
		"| emulation | TCG |",
		"| command | make bench CPUS=2 ROUNDS=3 |",
		"| date | 2026-11-26T00:10:00Z |",
		"| metric | unit | EEVDF | qmap | qmap -I |",
		"|---|---|---:|---:|---:|",
		"![headline metrics normalised to EEVDF](latest.svg)",
		"- qmap-I round 1:",
	}
	for _, want := range tests {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	rows := strings.Count(out, "\n| ") - strings.Count(out, "\n| | |")
	if want := len(s.Metrics) + 1 + len(metaKeys); rows > want || rows < len(s.Metrics)+1 {
		t.Errorf("%d table rows, want %d metric rows plus header and facts", rows, len(s.Metrics))
	}
}

// The targets table judges latency-mode configurations on paired ratios,
// and is left out of a run without one.
func TestTargets(t *testing.T) {
	s := fixture(t)
	plain := render(t, func(w io.Writer) error { return Markdown(w, s, "") })
	if strings.Contains(plain, "Latency-mode targets") {
		t.Errorf("a run without the latency mode has a targets table:\n%s", plain)
	}
	// qmap-I's hackbench: 1.2, 1.0, 1.6 s against EEVDF's 1.5, 1.7, 1.6.
	s.Configs[2].Flags = "-I --latency"
	md := render(t, func(w io.Writer) error { return Markdown(w, s, "") })
	text := render(t, func(w io.Writer) error { return Text(w, s) })
	for _, want := range []string{
		"## Latency-mode targets",
		"| target | qmap -I --latency |",
		"|---|---:|",
		"| hackbench ≤ 0.80× EEVDF | ✓ ×0.80 [0.59–1.00], too few rounds for a CI |",
		"| CPU misallocated vs weights ≤ 10% | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if !strings.Contains(text, "hackbench ≤ 0.80× EEVDF") || !strings.Contains(text, "✓ ×0.80 [0.59–1.00]") {
		t.Errorf("text lacks the targets:\n%s", text)
	}
}

// A cell gives the measure's confidence interval and says when the run
// cannot tell met from missed.
func TestVerdictCell(t *testing.T) {
	ratio := func(ci *bench.Interval, met bool) bench.Verdict {
		return bench.Verdict{
			Target: bench.Target{Of: bench.PairedRatio, Limit: 1, AtMost: false},
			Stat:   &bench.Stat{Paired: &bench.Spread{Median: 0.988, Min: 0.75, Max: 1.216, N: 16, CI: ci}},
			Value:  0.988, CI: ci, Met: met,
		}
	}
	own := bench.Verdict{
		Target: bench.Target{Of: bench.OwnMedian, Limit: 10, AtMost: true},
		Stat:   &bench.Stat{Median: 8.02}, Value: 8.02, CI: &bench.Interval{Low: 6.5, High: 9.1}, Met: true,
	}
	least := bench.Verdict{Target: bench.Target{Of: bench.Least, Limit: 1e-9}, Stat: &bench.Stat{Min: 0.1}, Value: 0.1, Met: true}
	tests := []struct {
		name string
		v    bench.Verdict
		want string
	}{
		{"within noise", ratio(&bench.Interval{Low: 0.938, High: 1.083}, false), "✗ ×0.99 [0.75–1.22], CI 0.94–1.08: within noise"},
		{"settled", ratio(&bench.Interval{Low: 1.01, High: 1.083}, true), "✓ ×0.99 [0.75–1.22], CI 1.01–1.08"},
		{"few rounds", ratio(nil, false), "✗ ×0.99 [0.75–1.22], too few rounds for a CI"},
		{"own median", own, "✓ 8.02, CI 6.50–9.10"},
		{"every round", least, "✓ 0.1 (least)"},
		{"unmeasured", bench.Verdict{}, "—"},
	}
	for _, tt := range tests {
		if got := verdictCell(tt.v); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	s := fixture(t)
	out := render(t, func(w io.Writer) error { return JSON(w, s) })
	var back bench.Summary
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	m := back.Metric("hackbench_s")
	if m == nil || m.Stats["qmap"] == nil || m.Stats["qmap"].Ratio != 1.25 || len(m.Stats["qmap"].Samples) != 3 {
		t.Errorf("hackbench_s read back as %+v", m)
	}
	if back.Meta["vcpus"] != "2" || back.Meta["emulation"] != "TCG" || len(back.Configs) != 3 {
		t.Errorf("meta %v configs %v", back.Meta, back.Configs)
	}
}

func TestSVG(t *testing.T) {
	tests := []struct {
		name     string
		summary  func(t *testing.T) *bench.Summary
		bars     int
		contains []string
	}{
		{"fixture", fixture, 4*3 - 1, // cyc_rt has no qmap-I
			[]string{"hackbench time", "cyclictest p99, CPU load", "qmap -I", "×1", "emulation TCG"}},
		{"no baseline", func(t *testing.T) *bench.Summary {
			return &bench.Summary{Meta: map[string]string{}, Configs: []bench.Config{{Name: "qmap"}}}
		}, 0, []string{"no headline metric"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := render(t, func(w io.Writer) error { return SVG(w, tt.summary(t)) })
			// Well-formed XML with an svg root.
			dec := xml.NewDecoder(strings.NewReader(out))
			root := ""
			for {
				tok, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("SVG is not well-formed: %v", err)
				}
				if se, ok := tok.(xml.StartElement); ok && root == "" {
					root = se.Name.Local
				}
			}
			if root != "svg" {
				t.Errorf("root element %q, want svg", root)
			}
			if got := strings.Count(out, `class="bar"`); got != tt.bars {
				t.Errorf("%d bars, want %d", got, tt.bars)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("SVG lacks %q", want)
				}
			}
		})
	}
}
