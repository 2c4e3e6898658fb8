// SPDX-License-Identifier: Apache-2.0

package scenarios

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

// TestStressGate is the load gate the scx project runs in its CI: the
// scheduler runs 45 s under stress-ng's affinity/fork/cpu mix, with the
// default 5 s watchdog, and must end in UNREG with exit 0 on SIGTERM, never
// ejected. $SCX_GATE_RUNS runs (default 2).
func TestStressGate(t *testing.T) {
	guest.Require(t)
	runs := 2
	if s := os.Getenv("SCX_GATE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SCX_GATE_RUNS=%q: want a positive count", s)
		}
		runs = n
	}
	n := strconv.Itoa(runtime.NumCPU())
	t.Logf("%s vCPUs, %d runs", n, runs)
	for run := 1; run <= runs; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			start := time.Now()
			s := guest.StartScheduler(t, "-v", "--stats-socket", "")
			rc := guest.Run(t, 60*time.Second, "stress-ng", "-t", "31", "--aggressive", "-M", "-c", n, "-f", n,
				"--affinity", "1", "--affinity-delay", "1", "--affinity-pin")
			if rc != 0 {
				t.Errorf("stress-ng exit = %d, want 0", rc)
			}
			// As timeout --foreground --preserve-status 45 does.
			time.Sleep(time.Until(start.Add(45 * time.Second)))
			s.Signal(syscall.SIGTERM)
			code, kind := s.Wait(t, 60*time.Second)
			if code != 0 || kind != "UNREG" {
				t.Errorf("scheduler exit = %d, exit kind %q; want 0 and UNREG (ejected?)\n%s", code, kind, head(s.Output(t), 40))
			}
			if !guest.WaitState(t, "disabled", 30*time.Second) {
				t.Errorf("sched_ext state %s after the exit, want disabled", guest.State(t))
			}
		})
	}
}
