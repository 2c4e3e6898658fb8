// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"fmt"
	"strings"
	"testing"
)

// numbered is n lines "prefix1".."prefixN", newline-terminated.
func numbered(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

func TestExcerpt(t *testing.T) {
	stall := "EXIT: ERROR_STALL (kind 1026): runnable task stall (python3[12218] failed to run for 5.12s)\n"
	tests := []struct {
		name      string
		in        string
		wantFirst string
		wantLast  string
		wantLines int
	}{
		{"no report: the tail", numbered("line", 100), "line41", "line100", 60},
		{"short file: all of it", numbered("line", 5), "line1", "line5", 5},
		{"report: from just before it, not the tail",
			numbered("stats", 10) + stall + numbered("dump", 500),
			"stats8", "[421 more lines]", 3 + 80 + 1},
		{"report at the end: the totals before it",
			numbered("stats", 10) + "totals: enq=1\nEXIT: UNREG (kind 64): unregistered from user space\n",
			"stats9", "EXIT: UNREG (kind 64): unregistered from user space", 4},
		{"EXIT: inside a line is no report", numbered("line", 70) + "x EXIT: y\n", "line12", "x EXIT: y", 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := strings.Split(excerpt(tc.in), "\n")
			if got := lines[0]; got != tc.wantFirst {
				t.Errorf("first line = %q, want %q", got, tc.wantFirst)
			}
			if got := lines[len(lines)-1]; got != tc.wantLast {
				t.Errorf("last line = %q, want %q", got, tc.wantLast)
			}
			if len(lines) != tc.wantLines {
				t.Errorf("%d lines, want %d", len(lines), tc.wantLines)
			}
		})
	}
}
