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
// ejected. $SCX_GATE_RUNS runs (default 1; 0 runs only the child), then
// one more with the load in a cgroup that has a sub-scheduler of its own
// below a cid-form root.
func TestStressGate(t *testing.T) {
	guest.Require(t)
	runs := 1
	if s := os.Getenv("SCX_GATE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("SCX_GATE_RUNS=%q: want a count", s)
		}
		runs = n
	}
	t.Logf("%d vCPUs, %d runs", runtime.NumCPU(), runs)
	for run := 1; run <= runs; run++ {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			start := time.Now()
			s := guest.StartScheduler(t, "-v", "--stats-socket", "")
			gateLoad(t, "")
			// As timeout --foreground --preserve-status 45 does.
			time.Sleep(time.Until(start.Add(45 * time.Second)))
			stopGate(t, s, true)
		})
	}
	t.Run("child", func(t *testing.T) {
		cg, _ := makeCgroup(t, "gate")
		start := time.Now()
		root := guest.StartScheduler(t, append([]string{"--form", "cid", "--stats-socket", ""}, gateRescue(t)...)...)
		child := startSub(t, cg, "-v")
		gateLoad(t, cg)
		c := child.Counters(t)
		t.Logf("child: enq=%d dsp=%d reenq_cap=%d stranded=%d", c.NrEnqueued, c.NrDispatched, c.ReenqCap, c.NrStranded)
		if c.NrEnqueued == 0 {
			t.Error("the child queued nothing: the load did not run under it")
		}
		time.Sleep(time.Until(start.Add(45 * time.Second)))
		stopGate(t, child, false)
		stopGate(t, root, true)
	})
}

// gateRescue is the root's rescue bandwidth for the child run. On 7.3 the
// child holds only its share of the CPUs, and the load's --aggressive
// pinning strands its tasks on the others, where they run on the kernel's
// rescue bandwidth alone. The default (2% in 5 ms quanta) lets the queue
// of stranded tasks on a CPU outgrow the kernel's overload threshold, and
// the kernel ejects the child. At 25% in 50 ms quanta a waiter is due
// within (waiters-1) x 17 ms, against a threshold of 3.2 s.
func gateRescue(t *testing.T) []string {
	t.Helper()
	if !kernelAtLeast(t, 7, 3) {
		return nil
	}
	return []string{"-B", "250", "-q", "50000"}
}

// gateLoad runs the gate's stress-ng mix, in @cgroup if not "".
func gateLoad(t *testing.T, cgroup string) {
	t.Helper()
	n := strconv.Itoa(runtime.NumCPU())
	cmd := "exec stress-ng -t 31 --aggressive -M -c " + n + " -f " + n + " --affinity 1 --affinity-delay 1 --affinity-pin"
	if cgroup != "" {
		cmd = fmt.Sprintf("echo $$ > %s/cgroup.procs && %s", cgroup, cmd)
	}
	if rc := guest.Run(t, 60*time.Second, "sh", "-c", cmd); rc != 0 {
		t.Errorf("stress-ng exit = %d, want 0", rc)
	}
}

// stopGate sends @s SIGTERM and wants it to leave as asked, not ejected:
// exit 0 and UNREG; and, for a @root, the state disabled after it.
func stopGate(t *testing.T, s *guest.Scheduler, root bool) {
	t.Helper()
	s.Signal(syscall.SIGTERM)
	code, kind := s.Wait(t, 60*time.Second)
	if code != 0 || kind != "UNREG" {
		t.Errorf("scheduler exit = %d, exit kind %q; want 0 and UNREG (ejected?)\n%s", code, kind, head(s.Output(t), 40))
	}
	if root && !guest.WaitState(t, "disabled", 30*time.Second) {
		t.Errorf("sched_ext state %s after the exit, want disabled", guest.State(t))
	}
}
