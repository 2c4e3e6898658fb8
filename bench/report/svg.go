// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
)

// Headline is what the chart shows: lower-is-better metrics, so every bar
// reads the same way.
var Headline = []struct{ Metric, Label string }{
	{"hackbench_s", "hackbench time"},
	{"perf_msg_s", "perf sched messaging"},
	{"cyc_load_p99_us", "cyclictest p99, CPU load"},
	{"cyc_rt_p99_us", "cyclictest p99, RT hog"},
}

var palette = []string{"#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}

// Chart geometry, in SVG user units.
const (
	chartW   = 820
	chartH   = 420
	plotL    = 70
	plotR    = 800
	plotT    = 80
	plotB    = 340
	barWidth = 30
)

// SVG draws grouped bars, one group per headline metric and one bar per
// configuration: the median divided by EEVDF's median, on a log2 axis
// centred on ×1, so that twice as slow and twice as fast are the same
// distance from EEVDF. Whiskers span min–max, also divided by EEVDF's
// median.
func SVG(w io.Writer, s *bench.Summary) error {
	type group struct {
		label string
		m     *bench.Metric
	}
	var groups []group
	lo, hi := 0.5, 2.0
	for _, h := range Headline {
		m := s.Metric(h.Metric)
		if m == nil || m.Stats[bench.Baseline] == nil || m.Stats[bench.Baseline].Median <= 0 {
			continue
		}
		base := m.Stats[bench.Baseline].Median
		for _, st := range m.Stats {
			if st.Min > 0 {
				lo = math.Min(lo, st.Min/base)
			}
			hi = math.Max(hi, st.Max/base)
		}
		groups = append(groups, group{h.Label, m})
	}
	// Whole powers of two at both ends, for round gridlines.
	loExp, hiExp := math.Floor(math.Log2(lo)), math.Ceil(math.Log2(hi))
	y := func(ratio float64) float64 {
		ratio = math.Max(ratio, math.Exp2(loExp))
		return plotB - (math.Log2(ratio)-loExp)/(hiExp-loExp)*(plotB-plotT)
	}

	var b strings.Builder
	b.WriteString("<!-- SPDX-License-Identifier: Apache-2.0 -->\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">scx-qmap-go vs EEVDF: median / EEVDF median (lower is better)</text>`+"\n", plotL)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#444">%s</text>`+"\n", plotL,
		esc(facts(s, "kernel", "vcpus", "emulation", "rounds", "date")))
	fmt.Fprintf(&b, `<text x="%d" y="56" fill="#444">bars: median / EEVDF's median; whiskers: min–max over the rounds; log scale</text>`+"\n", plotL)

	// Gridlines at each power of two.
	for e := loExp; e <= hiExp; e++ {
		gy := y(math.Exp2(e))
		stroke, dash := "#ddd", ` stroke-dasharray="4 3"`
		if e == 0 {
			stroke, dash = "#333", ""
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"%s/>`+"\n", plotL, gy, plotR, gy, stroke, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">×%s</text>`+"\n", plotL-6, gy+4, Num(math.Exp2(e)))
	}

	if len(groups) > 0 {
		slot := float64(plotR-plotL) / float64(len(groups))
		n := len(s.Configs)
		for gi, g := range groups {
			base := g.m.Stats[bench.Baseline].Median
			x0 := plotL + slot*float64(gi) + (slot-float64(n*barWidth))/2
			for ci, c := range s.Configs {
				st := g.m.Stats[c.Name]
				if st == nil {
					continue
				}
				x := x0 + float64(ci*barWidth)
				ratio := st.Median / base
				top, bottom := math.Min(y(ratio), y(1)), math.Max(y(ratio), y(1))
				if bottom-top < 3 { // EEVDF itself: a visible stub on the ×1 line
					top, bottom = y(1)-1.5, y(1)+1.5
				}
				fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %s (×%.2f)</title></rect>`+"\n",
					x+2, top, barWidth-4, bottom-top, palette[ci%len(palette)],
					esc(c.Label()), esc(g.label), esc(Num(st.Median)+" "+g.m.Unit), ratio)
				cx := x + barWidth/2
				if st.Min != st.Max {
					fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000"/>`+"\n",
						cx, y(st.Min/base), cx, y(st.Max/base))
				}
				// Value labels go past the whisker's end, clear of it.
				ly := math.Min(top, y(st.Max/base)) - 4
				if ratio < 1 {
					ly = math.Max(bottom, y(st.Min/base)) + 12
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>`+"\n", cx, ly, ratio)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
				plotL+slot*(float64(gi)+0.5), plotB+22, esc(g.label))
		}
	} else {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no headline metric has an EEVDF baseline</text>`+"\n", plotL+10, (plotT+plotB)/2)
	}

	// Legend.
	lx := float64(plotL)
	for ci, c := range s.Configs {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="12" height="12" fill="%s"/>`, lx, plotB+42, palette[ci%len(palette)])
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", lx+16, plotB+52, esc(c.Label()))
		lx += 30 + 7*float64(len(c.Label()))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// esc escapes text for SVG (XML) character data.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
