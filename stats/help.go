// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"fmt"
	"io"
)

// WriteHelp describes every statistics struct and field (--help-stats)
// from the metadata that stats_meta serves, in the layout of scx's
// --help-stats: the top struct, then the structs it holds.
func WriteHelp(w io.Writer) {
	meta := StatsMeta()
	top := []string{FieldTime}
	for _, c := range Counters {
		top = append(top, c.Name)
	}
	top = append(top, FieldEvents)
	writeStruct(w, meta[TopName], top)
	fmt.Fprintln(w)
	writeStruct(w, meta[EventName], []string{FieldCount})
}

// writeStruct prints @m's fields in @order, names aligned.
func writeStruct(w io.Writer, m Meta, order []string) {
	fmt.Fprintf(w, "[%s] %s\n", m.Name, m.Desc)
	type line struct{ name, kind, desc string }
	lines := make([]line, 0, len(order))
	width := 0
	for _, n := range order {
		f := m.Fields[n]
		var kind string
		switch {
		case f.Dict != nil:
			kind = fmt.Sprintf("{%s:%s}", f.Dict.Key, f.Dict.Datum)
		case f.Datum != nil:
			kind = f.Datum.String()
		}
		l := line{n, kind, f.Desc}
		if k := f.User["_kind"]; k != "" {
			l.desc += " [" + k + "]"
		}
		lines = append(lines, l)
		width = max(width, len(n)+len(kind)+3)
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s : %s\n", width, l.name+" ("+l.kind+")", l.desc)
	}
}
