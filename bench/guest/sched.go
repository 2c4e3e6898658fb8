// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// stateFile is sched_ext's state: disabled, enabling, enabled, disabling.
const stateFile = "/sys/kernel/sched_ext/state"

// userHZ is the unit of /proc's CPU times (USER_HZ, fixed by the ABI).
const userHZ = 100

func schedState() string {
	b, err := os.ReadFile(stateFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// waitState polls sched_ext's state every 5 ms until it reads @want, for
// up to @limit, or until @gone (if not nil) is closed. A read of sysfs
// forks nothing, so polling costs next to nothing to the loader being
// timed.
func waitState(want string, limit time.Duration, gone <-chan struct{}) bool {
	deadline := time.Now().Add(limit)
	for {
		if schedState() == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-gone:
			return schedState() == want
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// scheduler is a running scx-qmap-go.
type scheduler struct {
	p   *proc
	log string // its stdout and stderr
}

// startScheduler starts @bin with @flags, its output to @log.
func startScheduler(bin string, flags []string, log string) (*scheduler, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, fmt.Errorf("creating the scheduler's log: %w", err)
	}
	defer f.Close() // the child has its own
	cmd := exec.Command(bin, flags...)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := background(cmd)
	if err != nil {
		return nil, err
	}
	return &scheduler{p: p, log: log}, nil
}

// tail is the end of the scheduler's log, for notes.
func (s *scheduler) tail() string {
	b, _ := os.ReadFile(s.log)
	if t := lastLines(string(b), 3); t != "" {
		return t
	}
	return "(no output)"
}

// cpuPct is the scheduler's CPU use over @window, in percent of one CPU.
func (s *scheduler) cpuPct(ctx context.Context, window time.Duration) (float64, error) {
	c0, err := workload.CPUTicks(s.p.pid())
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	sleep(ctx, window)
	c1, err := workload.CPUTicks(s.p.pid())
	if err != nil {
		return 0, err
	}
	secs := time.Since(t0).Seconds()
	return float64(c1-c0) / userHZ / secs * 100, nil
}

// startSched attaches scx-qmap-go with the configuration's flags and
// measures the time to enabled; then, once settled, its stats loop's CPU
// and its RSS over an idle period. It reports whether the scheduler is
// attached.
func (r *runner) startSched(ctx context.Context) bool {
	log := fmt.Sprintf("/tmp/bench-%s-%d.log", r.cfg, r.cur.Number)
	t0 := time.Now()
	s, err := startScheduler(r.bin, schedFlags(r.cfg), log)
	if err != nil {
		r.note("%s: %v", r.where(), err)
		return false
	}
	if !waitState("enabled", 120*time.Second, s.p.done) {
		r.note("%s: scheduler did not attach: %s", r.where(), s.tail())
		stopAll(s.p)
		return false
	}
	r.set("attach_ms", ms(time.Since(t0)))
	r.sched = s
	if flags := childFlags(r.cfg); flags != nil && !r.startChild(flags) {
		r.stopSched()
		return false
	}
	// The loader's first seconds after attach are one-off work (giving
	// the kernel's BTF back, starting the stats socket): steady state
	// comes after.
	sleep(ctx, 2*time.Second)
	if pct, err := s.cpuPct(ctx, time.Duration(r.o.Secs)*time.Second); err != nil {
		r.missing("stats_cpu_pct", err)
	} else {
		r.set("stats_cpu_pct", sig6(pct))
	}
	r.setKB("rss_steady_kb", s, "VmRSS")
	return true
}

// stopSched reads the peak RSS, then sends SIGINT and times the way to
// disabled; the loader's log gives the verified instruction counts.
func (r *runner) stopSched() {
	r.stopChild()
	s := r.sched
	r.sched = nil
	if schedState() != "enabled" || !s.p.running() {
		r.note("%s: the scheduler was not attached at the end (ejected?): %s", r.where(), s.tail())
	}
	r.setKB("rss_peak_kb", s, "VmHWM")
	t0 := time.Now()
	s.p.signal(syscall.SIGINT)
	if waitState("disabled", 60*time.Second, nil) {
		r.set("detach_ms", ms(time.Since(t0)))
	} else {
		r.note("%s: sched_ext not disabled 60 s after SIGINT (state %q)", r.where(), schedState())
	}
	if rc := s.p.wait(60 * time.Second); rc != 0 {
		r.note("%s: scx-qmap-go exited with %d", r.where(), rc)
	}
	b, err := os.ReadFile(s.log)
	if err != nil {
		r.note("%s: no verified instruction counts: %v", r.where(), err)
		return
	}
	for prog, n := range verified(string(b)) {
		r.set("insns."+prog, n)
	}
}

// setKB records a "kB" line of the scheduler's /proc/PID/status.
func (r *runner) setKB(metric string, s *scheduler, key string) {
	kb, err := procKB(s.p.pid(), "status", key)
	if err != nil {
		r.missing(metric, err)
		return
	}
	r.set(metric, float64(kb))
}

// benchCgroup is the cgroup of a configuration's sub-scheduler, where the
// workloads run.
const benchCgroup = "/sys/fs/cgroup/bench"

// startChild attaches a sub-scheduler with @flags on benchCgroup and moves
// this process there, so that the workloads it starts run under the child.
func (r *runner) startChild(flags []string) bool {
	if err := os.Mkdir(benchCgroup, 0o755); err != nil && !os.IsExist(err) {
		r.note("%s: creating %s: %v", r.where(), benchCgroup, err)
		return false
	}
	log := fmt.Sprintf("/tmp/bench-%s-%d-child.log", r.cfg, r.cur.Number)
	c, err := startScheduler(r.bin, append([]string{"-c", benchCgroup}, flags...), log)
	if err != nil {
		r.note("%s: %v", r.where(), err)
		return false
	}
	r.child = c
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "attached (") {
			break
		}
		if !c.p.running() || time.Now().After(deadline) {
			r.note("%s: the sub-scheduler did not attach: %s", r.where(), c.tail())
			return false
		}
	}
	if err := moveTo(benchCgroup); err != nil {
		r.note("%s: %v", r.where(), err)
		return false
	}
	return true
}

// stopChild moves this process back to the root cgroup and stops the
// sub-scheduler, if there is one.
func (r *runner) stopChild() {
	c := r.child
	if c == nil {
		return
	}
	r.child = nil
	if err := moveTo("/sys/fs/cgroup"); err != nil {
		r.note("%s: %v", r.where(), err)
	}
	if !c.p.running() {
		r.note("%s: the sub-scheduler was not running at the end (ejected?): %s", r.where(), c.tail())
	}
	c.p.signal(syscall.SIGINT)
	if rc := c.p.wait(60 * time.Second); rc != 0 {
		r.note("%s: the sub-scheduler exited with %d: %s", r.where(), rc, c.tail())
	}
	_ = os.Remove(benchCgroup)
}

// moveTo moves this process, all its threads, into cgroup @dir.
func moveTo(dir string) error {
	err := os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(os.Getpid())), 0)
	if err != nil {
		return fmt.Errorf("moving the benchmark into %s: %w", dir, err)
	}
	return nil
}
