// SPDX-License-Identifier: Apache-2.0

package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/procstat"
)

func TestMain(m *testing.M) {
	RunIfAsked()
	os.Exit(m.Run())
}

// output runs workload @name in a child to its end and returns what it
// printed.
func output(t *testing.T, name string, secs, arg int) string {
	t.Helper()
	cmd, err := Command(name, secs, arg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

func TestSpinRunsInAChild(t *testing.T) {
	out := output(t, "spin", 1, 5)
	if n, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || n <= 0 {
		t.Errorf("spin printed %q, want a positive round count", out)
	}
}

func TestWakerWakesOften(t *testing.T) {
	out := output(t, "waker", 1, 250)
	// 4000 at most; a busy host stretches each sleep.
	if n, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || n < 100 || n > 4000 {
		t.Errorf("waker printed %q, want 100-4000 sleeps in 1 s of 250 µs each", out)
	}
}

// Every spinner is woken, is busy until the deadline and finishes.
func TestSpinStormFinishes(t *testing.T) {
	out := output(t, "spin-storm", 1, 200)
	var finished, lateMs int
	if _, err := fmt.Sscan(out, &finished, &lateMs); err != nil || finished != 200 || lateMs < 0 {
		t.Errorf("spin-storm printed %q, want 200 finished, late by >= 0 ms", out)
	}
	t.Logf("200 spinners, the last %d ms late", lateMs)
}

// The churners keep setting masks until the busy threads finish, and stop
// cleanly when they do.
func TestAffinityChurnSetsMasks(t *testing.T) {
	out := output(t, "affinity-churn", 1, 4)
	var changes int
	if _, err := fmt.Sscan(out, &changes); err != nil || changes <= 0 {
		t.Errorf("affinity-churn printed %q, want a count of masks set > 0", out)
	}
	t.Logf("%d masks set in 1 s", changes)
}

// Every pinned thread runs bursts, on the one CPU they share.
func TestPinnedBurstsRun(t *testing.T) {
	out := output(t, "pinned-bursts", 1, 4)
	var fewest, gapMs int
	if _, err := fmt.Sscan(out, &fewest, &gapMs); err != nil || fewest <= 0 || gapMs < 0 {
		t.Errorf("pinned-bursts printed %q, want the fewest bursts > 0 and a gap >= 0 ms", out)
	}
	t.Logf("4 threads on one CPU for 1 s: the fewest ran %d bursts, the longest gap %d ms", fewest, gapMs)
}

// Every thread of the storm is woken by the one FUTEX_WAKE and finishes.
func TestThreadStormFinishes(t *testing.T) {
	start := time.Now()
	out := output(t, "thread-storm", 0, 2000)
	var finished, threads int
	if _, err := fmt.Sscan(out, &finished, &threads); err != nil || finished != 2000 || threads < 2000 {
		t.Errorf("thread-storm printed %q, want 2000 finished of >= 2000 threads", out)
	}
	t.Logf("2000 threads in %v", time.Since(start))
}

func TestCommandUnknown(t *testing.T) {
	if _, err := Command("nope", 1, 0); err == nil {
		t.Error("Command accepted an unknown workload")
	}
}

func TestCPUTicks(t *testing.T) {
	if _, err := CPUTicks(os.Getpid()); err != nil {
		t.Errorf("CPUTicks(self): %v", err)
	}
	if _, err := CPUTicks(1<<22 + 1); err == nil {
		t.Error("CPUTicks of a pid that cannot exist succeeded")
	}
}

// This process's threads ran, and the one running the test among them;
// a pid that cannot exist is an error.
func TestThreadRuns(t *testing.T) {
	runs, err := ThreadRuns(os.Getpid())
	if err != nil {
		t.Fatalf("ThreadRuns(self): %v", err)
	}
	var ns, turns int64
	for _, r := range runs {
		ns += r.Ns
		turns += r.Turns
	}
	if len(runs) == 0 || ns <= 0 || turns <= 0 {
		t.Errorf("ThreadRuns(self) = %v: want threads that ran", runs)
	}
	if _, err := ThreadRuns(1<<22 + 1); err == nil {
		t.Error("ThreadRuns of a pid that cannot exist succeeded")
	}
}

// threadStat is one thread's CPU ticks and nice level from
// /proc/PID/task/TID/stat.
type threadStat struct{ ticks, nice int }

func threadStats(t *testing.T, pid int) []threadStat {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []threadStat
	for _, tid := range tids {
		_, f, err := procstat.Read(filepath.Join(dir, tid.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		utime, _ := strconv.Atoi(f[procstat.UTime])
		stime, _ := strconv.Atoi(f[procstat.STime])
		nice, _ := strconv.Atoi(f[procstat.Nice])
		out = append(out, threadStat{utime + stime, nice})
	}
	return out
}

// A nice level belongs to a thread: every thread of a spin, the one that
// loops above all, must have it.
func TestSpinThreadsHaveTheNice(t *testing.T) {
	cmd, err := Command("spin", 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	time.Sleep(time.Second)
	busiest := threadStat{ticks: -1}
	for _, s := range threadStats(t, cmd.Process.Pid) {
		if s.nice != 5 {
			t.Errorf("a thread runs at nice %d, want 5", s.nice)
		}
		if s.ticks > busiest.ticks {
			busiest = s
		}
	}
	if busiest.ticks <= 0 {
		t.Errorf("no thread of the spin ran: %+v", busiest)
	}
}

// Two threads of 5 ms bursts for a second take turns: never more than 200
// bursts and the last two, however many CPUs the host has.
func TestPingPongTakesTurns(t *testing.T) {
	out := output(t, "pingpong", 1, 5)
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || n < 10 || n > 202 {
		t.Errorf("pingpong printed %q, want 10 to 202 bursts", out)
	}
	t.Logf("%d bursts", n)
}
