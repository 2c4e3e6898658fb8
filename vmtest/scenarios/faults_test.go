// SPDX-License-Identifier: Apache-2.0

package scenarios

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

// TestFaults: each injected fault ejects the scheduler with the expected
// exit kind and a readable report, the loader exits 1, sched_ext goes back
// to disabled, and the machine then takes a clean attach.
func TestFaults(t *testing.T) {
	guest.Require(t)
	tests := []struct {
		name  string
		flags []string
		kind  string // "" for any ERROR* kind
		msg   string // in the report
	}{
		{"error", []string{"-e", "200", "-D", "512"}, "ERROR_BPF", "-e: error injected after 200 enqueues"},
		{"stall_user", []string{"-t", "20"}, "ERROR_STALL", "runnable task stall"},
		{"stall_kernel", []string{"-T", "20"}, "ERROR_STALL", "runnable task stall"},
		{"dispatch_loop", []string{"-l", "100"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			s := guest.LaunchScheduler(t, append([]string{"--quiet"}, tt.flags...)...)
			// Bounds for a hang only: under TCG on this machine the
			// ejections came 12 s to 57 s after the start, and a CI
			// machine runs guests up to twice as slow. The load must
			// outlast the wait: the faults need it to fire.
			load := guest.Start(t, "stress-ng", "--cpu", "2", "--fork", "2", "--timeout", "170", "--quiet")
			code, kind := s.Wait(t, 180*time.Second)
			load.Signal(syscall.SIGTERM)
			load.Wait(t, 30*time.Second)
			report := s.Output(t)
			t.Logf("exit kind %s after %v; report:\n%s", kind, time.Since(start).Round(time.Second), head(report, 12))

			if code != exitEjected {
				t.Errorf("loader exit = %d, want %d (ejected)", code, exitEjected)
			}
			if !guest.WaitState(t, "disabled", 30*time.Second) {
				t.Errorf("sched_ext state %s 30 s after the ejection, want disabled", guest.State(t))
			}
			switch {
			case tt.kind != "" && kind != tt.kind:
				t.Errorf("exit kind = %q, want %q", kind, tt.kind)
			case tt.kind == "" && !strings.HasPrefix(kind, "ERROR"):
				t.Errorf("exit kind = %q, want an ERROR* kind", kind)
			}
			if !strings.Contains(report, tt.msg) {
				t.Errorf("the report does not say %q", tt.msg)
			}
			if strings.Contains(report, "goroutine ") {
				t.Error("Go stack trace in the report")
			}
			if tt.name == "error" {
				// -D 512 caps the dump the report carries.
				if _, dump, ok := strings.Cut(report, "debug dump:\n"); !ok {
					t.Error("-e: the report has no debug dump")
				} else if len(dump) > 600 {
					t.Errorf("-D 512: the dump is %d bytes", len(dump))
				}
			}
		})
	}

	t.Run("recovers", func(t *testing.T) {
		guest.StartScheduler(t, "--quiet") // cleanup: SIGINT -> exit 0, UNREG
		if st := guest.State(t); st != "enabled" {
			t.Fatalf("state after attach = %s, want enabled", st)
		}
		if rc := guest.Run(t, 60*time.Second, "hackbench", "-g", "2", "-l", "100"); rc != 0 {
			t.Errorf("hackbench exit = %d, want 0", rc)
		}
	})
}

// head is the first @n lines of @s: a report's reason and message.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
