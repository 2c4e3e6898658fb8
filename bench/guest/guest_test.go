// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

func TestMain(m *testing.M) {
	workload.RunIfAsked()
	os.Exit(m.Run())
}

func TestOptionsCheck(t *testing.T) {
	valid := func() Options {
		return Options{Bin: "scx-qmap-go", Rounds: 1, Secs: 1, CycInterval: DefaultCycInterval,
			LoadPerCPU: DefaultLoadPerCPU, Configs: ConfigNames(), Phases: PhaseNames()}
	}
	tests := []struct {
		name    string
		change  func(*Options)
		wantErr string
	}{
		{"defaults", func(*Options) {}, ""},
		{"no binary", func(o *Options) { o.Bin = "" }, "no scheduler binary"},
		{"no rounds", func(o *Options) { o.Rounds = 0 }, "must be positive"},
		{"first round given", func(o *Options) { o.Rounds, o.FirstRound = 3, 3 }, ""},
		{"first round past the rounds", func(o *Options) { o.Rounds, o.FirstRound = 3, 4 }, "first round (4) must be between 1 and the rounds (3)"},
		{"first round negative", func(o *Options) { o.FirstRound = -1 }, "first round (-1)"},
		{"no cyclictest interval", func(o *Options) { o.CycInterval = 0 }, "interval (0 µs)"},
		{"no load", func(o *Options) { o.LoadPerCPU = 0 }, "hogs per CPU (0)"},
		{"no configs", func(o *Options) { o.Configs = nil }, "no configurations"},
		{"unknown config", func(o *Options) { o.Configs = []string{"eevdf", "cfs"} }, `unknown configuration "cfs"`},
		{"unknown phase", func(o *Options) { o.Phases = []string{"fairness", "dbench"} }, `unknown phase "dbench"`},
		{"no phases", func(o *Options) { o.Phases = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.change(&o)
			err := o.check()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("check() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigurations(t *testing.T) {
	tests := []struct {
		name, published string
		sched           []string
	}{
		{"eevdf", "", nil},
		{"qmap", "", []string{"-v"}},
		{"qmap-remote-reenq", "--remote-reenq", []string{"-v", "--remote-reenq"}},
		{"qmap-I", "-I", []string{"-v", "-I"}},
		{"qmap-latency-250", "--latency -L 250", []string{"-v", "--latency", "-L", "250"}},
		{"qmap-child", "--form cid + -c /sys/fs/cgroup/bench", []string{"-v", "--form", "cid"}},
	}
	if got := strings.Join(ConfigNames(), ","); got != "eevdf,qmap,qmap-remote-reenq,qmap-I,qmap-latency,qmap-latency-250,qmap-latency-500,qmap-latency-2000,qmap-child" {
		t.Errorf("ConfigNames = %s", got)
	}
	for _, tt := range tests {
		if got := strings.Join(publishedFlags(tt.name), " "); got != tt.published {
			t.Errorf("%s: published flags %q, want %q", tt.name, got, tt.published)
		}
		if got := schedFlags(tt.name); strings.Join(got, " ") != strings.Join(tt.sched, " ") {
			t.Errorf("%s: scheduler flags %q, want %q", tt.name, got, tt.sched)
		}
		if child := childFlags(tt.name); (child != nil) != (tt.name == "qmap-child") {
			t.Errorf("%s: sub-scheduler flags %q", tt.name, child)
		}
	}
	if got := strings.Join(PhaseNames(), ","); got != "hackbench,perf,stress,cyclictest_load,cyclictest_rt,fairness" {
		t.Errorf("PhaseNames = %s", got)
	}
}

// setAllThreads gives every thread of this process @policy (unprivileged
// for the non-real-time ones).
func setAllThreads(t *testing.T, policy uint32) {
	t.Helper()
	if err := workload.SetPolicy(policy, 0); err != nil {
		t.Fatal(err)
	}
}

// A child takes the policy of the thread that forks it: startOther's
// children run as SCHED_OTHER whatever the starter's threads run as.
func TestStartOtherDropsThePolicy(t *testing.T) {
	setAllThreads(t, unix.SCHED_BATCH)
	t.Cleanup(func() { setAllThreads(t, unix.SCHED_NORMAL) })
	tests := []struct {
		name  string
		start func(*exec.Cmd) error
		want  uint32
	}{
		{"exec.Cmd.Start", func(c *exec.Cmd) error { return c.Start() }, unix.SCHED_BATCH},
		{"startOther", startOther, unix.SCHED_NORMAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "5")
			if err := tt.start(cmd); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}()
			attr, err := unix.SchedGetAttr(cmd.Process.Pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			if attr.Policy != tt.want {
				t.Errorf("child policy %d, want %d", attr.Policy, tt.want)
			}
		})
	}
}

func TestProcWait(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		limit time.Duration
		want  int
	}{
		{"exits", []string{"true"}, 5 * time.Second, 0},
		{"fails", []string{"false"}, 5 * time.Second, 1},
		{"killed past the limit", []string{"sleep", "30"}, 100 * time.Millisecond, 128 + int(syscall.SIGKILL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := background(exec.Command(tt.args[0], tt.args[1:]...))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.wait(tt.limit); got != tt.want {
				t.Errorf("wait = %d, want %d", got, tt.want)
			}
			if p.running() {
				t.Error("still running after wait")
			}
		})
	}
}

func TestStopAllEndsTheGroup(t *testing.T) {
	p, err := background(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stopAll(p, nil)
	if p.running() || time.Since(start) > 5*time.Second {
		t.Errorf("sleep not stopped at once (running %v, %v)", p.running(), time.Since(start))
	}
	if got := workload.ExitStatus(p.err); got != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want SIGTERM's", got)
	}
}

func TestRunTool(t *testing.T) {
	tests := []struct {
		name    string
		limit   time.Duration
		args    []string
		wantOut string
		wantErr string
	}{
		{"output", 5 * time.Second, []string{"echo", "Time: 1.5"}, "Time: 1.5\n", ""},
		{"failure", 5 * time.Second, []string{"ls", "/nonexistent"}, "nonexistent", "exit status"},
		{"missing", 5 * time.Second, []string{"no-such-benchmark"}, "", "no-such-benchmark"},
		{"too long", 200 * time.Millisecond, []string{"sleep", "30"}, "", "did not finish within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, err := runTool(context.Background(), tt.limit, tt.args[0], tt.args[1:]...)
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output %q, want it to contain %q", out, tt.wantOut)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

func TestSig6(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{5365.694213, 5365.69}, {67.2694, 67.2694}, {4.47341234, 4.47341}, {1234567, 1.23457e6}, {0, 0},
	}
	for _, tt := range tests {
		if got := sig6(tt.in); got != tt.want {
			t.Errorf("sig6(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestWhy(t *testing.T) {
	tests := []struct {
		err  error
		out  string
		want string
	}{
		{nil, "", ""},
		{errors.New("hackbench: exit status 1"), "", ": hackbench: exit status 1"},
		{nil, "a\nb\nc\nd\n", ": b c d"},
		{errors.New("x"), "fork failed\n", ": x: fork failed"},
	}
	for _, tt := range tests {
		if got := why(tt.err, tt.out); got != tt.want {
			t.Errorf("why(%v, %q) = %q, want %q", tt.err, tt.out, got, tt.want)
		}
	}
}

func TestCostChecksItsOptions(t *testing.T) {
	tests := []struct {
		name string
		o    CostOptions
	}{
		{"no binary", CostOptions{Rounds: 1, Secs: 1}},
		{"no rounds", CostOptions{Bin: "scx-qmap-go", Secs: 1}},
		{"no window", CostOptions{Bin: "scx-qmap-go", Rounds: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Cost(context.Background(), tt.o); err == nil || !strings.Contains(err.Error(), "positive rounds") {
				t.Errorf("Cost = %v, want a complaint about its options", err)
			}
		})
	}
}

// pinnedThreads starts @n threads of this process that pin themselves to
// CPU 0, as cyclictest's do, and returns their IDs; they end with the test.
func pinnedThreads(t *testing.T, n int) []int {
	t.Helper()
	tids := make(chan int, n)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for range n {
		go func() {
			// Never unlocked: the thread exits with the goroutine.
			runtime.LockOSThread()
			var cpu0 unix.CPUSet
			cpu0.Set(0)
			if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
				tids <- -1
				return
			}
			tids <- unix.Gettid()
			<-done
		}()
	}
	var out []int
	for range n {
		tid := <-tids
		if tid < 0 {
			t.Fatal("could not pin a thread to CPU 0")
		}
		out = append(out, tid)
	}
	return out
}

func TestUnpinThreads(t *testing.T) {
	ncpu := runtime.NumCPU()
	tests := []struct {
		name    string
		pinned  int // threads that pin themselves
		want    int // threads unpinThreads waits for
		wantErr string
	}{
		{"all found", 2, 2, ""},
		{"one missing", 1, 2, "unpinned 1 of 2 threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tids := pinnedThreads(t, tt.pinned)
			err := unpinThreads(os.Getpid(), tt.want, ncpu, 300*time.Millisecond)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			for _, tid := range tids {
				var set unix.CPUSet
				if err := unix.SchedGetaffinity(tid, &set); err != nil {
					t.Fatal(err)
				}
				if got := set.Count(); got != ncpu {
					t.Errorf("thread %d may run on %d CPUs, want %d", tid, got, ncpu)
				}
			}
		})
	}
}

func TestCheckClockNotesAChange(t *testing.T) {
	tests := []struct {
		name, was, now string
		notes          int
	}{
		{"kept", "tsc", "tsc\n", 0},
		{"moved to the HPET", "tsc", "hpet\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "current_clocksource")
			if err := os.WriteFile(file, []byte(tt.now), 0o644); err != nil {
				t.Fatal(err)
			}
			old := clocksourceFile
			clocksourceFile = file
			t.Cleanup(func() { clocksourceFile = old })
			r := &runner{o: Options{Progress: io.Discard}, res: &bench.Result{}, clock: tt.was}
			r.checkClock(3)
			r.checkClock(4) // a change is noted once
			if len(r.res.Notes) != tt.notes {
				t.Fatalf("notes = %q, want %d", r.res.Notes, tt.notes)
			}
			if want := strings.TrimSpace(tt.now); r.clock != want {
				t.Errorf("clock = %q, want %q", r.clock, want)
			}
		})
	}
}
