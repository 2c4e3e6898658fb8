// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/version"
)

// writeManPage writes scx-qmap-go(8) in troff from the flag definitions
// and the exit code table, so that the page cannot drift from the binary.
func writeManPage(w io.Writer, groups []flagGroup) {
	fmt.Fprintf(w, `.TH SCX-QMAP-GO 8 "" "scx-qmap-go %s" "System Administration"
.SH NAME
scx-qmap-go \- the qmap sched_ext CPU scheduler, with the Linux 7.1+ reenqueue API
.SH SYNOPSIS
.B scx-qmap-go
.RI [ OPTIONS ]
.br
.B scx-qmap-go stats
.RB [ \-\-socket
.IR PATH ]
.RB [ \-\-watch
.IR N ]
.RB [ \-\-json ]
.SH DESCRIPTION
.B scx-qmap-go
loads the qmap BPF scheduler into a kernel with sched_ext, attaches it, and
runs until SIGINT or SIGTERM, or until the kernel ejects it; it then prints
the exit report on standard error.
It is quiet by default: \fB\-\-stats\fR \fIN\fR prints the counters every
\fIN\fR seconds, and they are always served on the stats socket
(\fI%s\fR), where \fBscx-qmap-go stats\fR, \fB\-\-monitor\fR and the scx
project's tools read them.
Run as a service, it notifies systemd (Type=notify) when it is attached and
with a one-line STATUS each stats interval.
.SH OPTIONS
`, troff(version.String()), stats.DefaultSocket)
	for _, g := range groups {
		fmt.Fprintf(w, ".SS %s\n", troff(g.title))
		g.flags.VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			name, usage := pflag.UnquoteUsage(f)
			fmt.Fprint(w, ".TP\n")
			if f.Shorthand != "" {
				fmt.Fprintf(w, `\fB\-%s\fR, `, f.Shorthand)
			}
			fmt.Fprintf(w, `\fB\-\-%s\fR`, troff(f.Name))
			if name != "" && f.NoOptDefVal == "" {
				fmt.Fprintf(w, ` \fI%s\fR`, troff(name))
			}
			fmt.Fprintf(w, "\n%s", troff(usage))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				fmt.Fprintf(w, " (default: %s)", troff(f.DefValue))
			}
			fmt.Fprint(w, "\n")
		})
	}
	fmt.Fprint(w, ".SH EXIT STATUS\n")
	for _, e := range exitCodes {
		fmt.Fprintf(w, ".TP\n.B %d\n%s\n", e.code, troff(e.meaning))
	}
	fmt.Fprintf(w, `.SH FILES
.TP
.I /etc/default/scx-qmap-go
the options the systemd unit passes (SCX_QMAP_GO_FLAGS)
.TP
.I %s
the stats socket (scx_stats protocol)
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.BR scxtop (1)
`, stats.DefaultSocket)
}

// troff escapes @s for a man page line: backslashes, dashes, and a leading
// control character.
func troff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
