// SPDX-License-Identifier: Apache-2.0

// Package report renders a bench.Summary: a plain-text table for the
// terminal, a Markdown page, JSON, and an SVG chart of the headline
// metrics normalised to EEVDF.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

// metaKeys are the run's facts, in the order the headers list them.
var metaKeys = []struct{ key, label string }{
	{"kernel", "kernel"},
	{"vcpus", "vCPUs"},
	{"emulation", "emulation"},
	{"clocksource", "guest clocksource"},
	{"rounds", "rounds"},
	{"command", "command"},
	{"date", "date"},
	{"host_cpu", "host CPU"},
	{"qemu_main_thread", "QEMU main thread on the host"},
	{"hackbench", "hackbench"},
	{"perf", "perf"},
	{"phase_secs", "timed phases (s)"},
	{"cyclictest", "cyclictest"},
	{"elapsed_s", "wall time (s)"},
}

// Num formats a value with the precision its size deserves.
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// Cell is one table cell: "median [min–max]", and "×ratio" when there is one.
func Cell(st *bench.Stat) string {
	if st == nil {
		return "—"
	}
	s := Num(st.Median)
	if st.N > 1 && st.Min != st.Max {
		s += " [" + Num(st.Min) + "–" + Num(st.Max) + "]"
	}
	if st.Ratio != 0 {
		s += fmt.Sprintf(" ×%.2f", st.Ratio)
	}
	return s
}

// rows is the table as strings: a header, then one row per metric.
func rows(s *bench.Summary) [][]string {
	head := []string{"metric", "unit"}
	for _, c := range s.Configs {
		head = append(head, c.Label())
	}
	out := [][]string{head}
	for _, m := range s.Metrics {
		label := m.Label
		switch m.Better {
		case bench.Lower:
			label += " ↓"
		case bench.Higher:
			label += " ↑"
		}
		row := []string{label, m.Unit}
		for _, c := range s.Configs {
			row = append(row, Cell(m.Stats[c.Name]))
		}
		out = append(out, row)
	}
	return out
}

// targetRows is how each latency-mode configuration fares against
// bench.LatencyTargets: a header, then one row per target; nil when the run
// has no such configuration.
func targetRows(s *bench.Summary) [][]string {
	var configs []bench.Config
	for _, c := range s.Configs {
		if c.LatencyMode() {
			configs = append(configs, c)
		}
	}
	if len(configs) == 0 {
		return nil
	}
	head := []string{"target"}
	verdicts := make([][]bench.Verdict, len(configs))
	for i, c := range configs {
		head = append(head, c.Label())
		verdicts[i] = s.Check(c.Name, bench.LatencyTargets)
	}
	out := [][]string{head}
	for i, t := range bench.LatencyTargets {
		row := []string{t.Label}
		for _, vs := range verdicts {
			row = append(row, verdictCell(vs[i]))
		}
		out = append(out, row)
	}
	return out
}

// verdictCell is "✓" or "✗" and the measure: a paired ratio with its range,
// or the metric's median or smallest sample; then the measure's confidence
// interval, and whether the run can tell met from missed.
func verdictCell(v bench.Verdict) string {
	if v.Stat == nil {
		return "—"
	}
	mark := "✗ "
	if v.Met {
		mark = "✓ "
	}
	var cell string
	switch v.Of {
	case bench.PairedRatio:
		p := v.Stat.Paired
		cell = mark + fmt.Sprintf("×%.2f [%.2f–%.2f]", p.Median, p.Min, p.Max)
	case bench.Least:
		return mark + Num(v.Value) + " (least)"
	default:
		cell = mark + Num(v.Value)
	}
	switch {
	case v.CI == nil:
		return cell + ", too few rounds for a CI"
	case v.Settled():
		return cell + ", CI " + interval(v)
	default:
		return cell + ", CI " + interval(v) + ": within noise"
	}
}

// interval is a verdict's confidence interval, as its measure is written.
func interval(v bench.Verdict) string {
	if v.Of == bench.PairedRatio {
		return fmt.Sprintf("%.2f–%.2f", v.CI.Low, v.CI.High)
	}
	return Num(v.CI.Low) + "–" + Num(v.CI.High)
}

// targetsNote says how to read targetRows.
const targetsNote = "Latency-mode targets: ×ratio here is paired, the median over the rounds of the " +
	"configuration's value over EEVDF's in the same round, [min–max]; ✓ met, ✗ missed. " +
	"CI: the median's 95% confidence interval (order statistics, six rounds or more); " +
	"\"within noise\" where it holds the limit, so that this run cannot tell met from missed."

// Text writes the table aligned for a terminal.
func Text(w io.Writer, s *bench.Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scx-qmap-go vs EEVDF: %s\n", facts(s, "kernel", "vcpus", "emulation", "rounds"))
	writeAligned(&b, rows(s), 2)
	b.WriteString("median [min–max] over the rounds; ×ratio = median / EEVDF's median; ↓ lower is better, ↑ higher is better\n")
	if t := targetRows(s); t != nil {
		b.WriteString("\n")
		writeAligned(&b, t, 1)
		b.WriteString(targetsNote + "\n")
	}
	for _, n := range s.Notes {
		b.WriteString("note: " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAligned writes table @t with its columns aligned: the first @labels
// to the left, the rest to the right, a rule under the header.
func writeAligned(b *strings.Builder, t [][]string, labels int) {
	width := make([]int, len(t[0]))
	for _, r := range t {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for i, r := range t {
		for j, c := range r {
			pad := width[j] - utf8.RuneCountInString(c)
			if j < labels {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(strings.Repeat(" ", pad) + c)
			}
			if j < len(r)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
		if i == 0 {
			total := len(width)*2 - 2
			for _, n := range width {
				total += n
			}
			b.WriteString(strings.Repeat("-", total) + "\n")
		}
	}
}

// facts joins the named metadata as "label value" pairs.
func facts(s *bench.Summary, keys ...string) string {
	var parts []string
	for _, k := range keys {
		if v := s.Meta[k]; v != "" {
			for _, mk := range metaKeys {
				if mk.key == k {
					parts = append(parts, mk.label+" "+v)
				}
			}
		}
	}
	return strings.Join(parts, ", ")
}

// Markdown writes the results page: the run's facts, the table, how to
// read it, the chart and any notes.
func Markdown(w io.Writer, s *bench.Summary, svgName string) error {
	var b strings.Builder
	b.WriteString("<!-- SPDX-License-Identifier: Apache-2.0 -->\n# scx-qmap-go vs EEVDF\n\n")
	b.WriteString("| | |\n|---|---|\n")
	for _, mk := range metaKeys {
		if v := s.Meta[mk.key]; v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", mk.label, mdEscape(v))
		}
	}
	b.WriteString("\n")
	writeMdTable(&b, rows(s), 2)
	b.WriteString("\nEach cell is the median over the rounds, [min–max], and ×ratio = median / EEVDF's median " +
		"(↓: below 1 is better; ↑: above 1 is better). The fair CPU shares for the nice -20 / 0 / 19 groups are " +
		fmt.Sprintf("%.2f / %.2f / %.3f %%.\n", bench.WantShare("-20"), bench.WantShare("0"), bench.WantShare("19")))
	if svgName != "" {
		fmt.Fprintf(&b, "\n![headline metrics normalised to EEVDF](%s)\n", svgName)
	}
	if t := targetRows(s); t != nil {
		b.WriteString("\n## Latency-mode targets\n\n")
		writeMdTable(&b, t, 1)
		b.WriteString("\n" + targetsNote + "\n")
	}
	if len(s.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range s.Notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMdTable writes @t as a Markdown table, its first @labels columns
// left-aligned and the rest right-aligned.
func writeMdTable(b *strings.Builder, t [][]string, labels int) {
	for i, r := range t {
		b.WriteString("| " + strings.Join(mdEscapeAll(r), " | ") + " |\n")
		if i == 0 {
			b.WriteString("|" + strings.Repeat("---|", labels) + strings.Repeat("---:|", len(r)-labels) + "\n")
		}
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func mdEscapeAll(r []string) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = mdEscape(c)
	}
	return out
}

// JSON writes the summary, indented.
func JSON(w io.Writer, s *bench.Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	return nil
}
