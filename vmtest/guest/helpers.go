// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// StartHelper starts workload @name (package workload: spin, ext-spin,
// ext-sleep, rt-hog, pingpong, thread-storm) for @secs seconds with @arg
// (nice level, CPU, burst in ms, thread count), stopped by the test's
// cleanup if still running.
// TestMain must call workload.RunIfAsked first.
func StartHelper(t *testing.T, name string, secs, arg int) *Proc {
	t.Helper()
	cmd, err := workload.Command(name, secs, arg)
	if err != nil {
		t.Fatal(err)
	}
	return startLogged(t, cmd, fmt.Sprintf("%s%d", name, arg))
}

// WaitReady waits up to 30 s for a helper to print "ready" (it has its
// scheduling policy).
func (p *Proc) WaitReady(t *testing.T) {
	t.Helper()
	if !p.WaitOutput(t, "ready", 30*time.Second) {
		t.Fatalf("%s did not get ready:\n%s", filepath.Base(p.Log), p.Output(t))
	}
}

// WaitOutput waits up to @limit for @want in what the process printed, and
// reports whether it came before the process ended.
func (p *Proc) WaitOutput(t *testing.T, want string, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.Output(t), want) {
		if time.Now().After(deadline) || !p.Running() {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Rounds is what a finished spin helper printed last: how many rounds it
// made.
func (p *Proc) Rounds(t *testing.T) int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(p.Output(t)), "\n")
	out := lines[len(lines)-1]
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Errorf("%s: want a round count, got %q", filepath.Base(p.Log), out)
	}
	return n
}

// ExtEnabled reports whether task @pid is on the ext class (its
// /proc/PID/sched says ext.enabled 1).
func ExtEnabled(t *testing.T, pid int) bool {
	t.Helper()
	return procSched(t, pid, "ext.enabled") == "1"
}

// Policy is task @pid's scheduling policy (7 is SCHED_EXT).
func Policy(t *testing.T, pid int) string {
	t.Helper()
	return procSched(t, pid, "policy")
}

// ProcStatus is the first field of @key's value in /proc/@pid/status (the
// real uid of "Uid", the kB of "VmRSS"), "" if the value is empty, or "?"
// if it has no such line. (procstat reads /proc/@pid/stat, not this file.)
func ProcStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
			return ""
		}
	}
	return "?"
}

func procSched(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/sched", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/sched: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == key && f[1] == ":" {
			return f[2]
		}
	}
	t.Fatalf("/proc/%d/sched has no %s", pid, key)
	return ""
}
