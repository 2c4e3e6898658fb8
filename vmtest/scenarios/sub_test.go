// SPDX-License-Identifier: Apache-2.0

package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

// The CLI's exit codes for -c's refusals, as the README documents them.
const (
	exitUsage       = 2
	exitTooOld      = 5
	exitAttach      = 8
	exitNoParent    = 12
	exitNoSubScheds = 13
	exitCgroupTaken = 14
	exitTooDeep     = 15
	exitNotCgroup   = 16
	exitNoCgroup    = 17
)

// TestSubScheds: scx-qmap-go as a parent and as sub-schedulers on cgroups
// (-c). Sub-schedulers exist only in the cid form, so every instance here
// loads it, whichever form the rest of the boot tests.
func TestSubScheds(t *testing.T) {
	guest.Require(t)
	bin := guest.Binary(t)
	cgA, idA := makeCgroup(t, "qmap-a")
	cgB, idB := makeCgroup(t, "qmap-b")
	refuse := func(t *testing.T, what string, wantCode int, wantMsg string, args ...string) {
		t.Helper()
		rc, out := guest.RunOutput(t, 60*time.Second, bin, args...)
		if rc != wantCode || !strings.Contains(out, wantMsg) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("%s: exit %d, want %d and one line saying %q; got:\n%s", what, rc, wantCode, wantMsg, out)
		}
	}

	t.Run("refusals_without_parent", func(t *testing.T) {
		refuse(t, "no parent", exitNoParent, "no sched_ext scheduler is running", "-c", cgA)
		refuse(t, "--form cpu", exitUsage, "needs the cid form", "--form", "cpu", "-c", cgA)
		parent := guest.StartScheduler(t, "--form", "cpu")
		refuse(t, "cpu-form parent", exitNoSubScheds, "takes no sub-schedulers", "-c", cgA)
		parent.StopUnreg(t)
	})

	root := guest.StartScheduler(t, "--form", "cid")

	t.Run("refusals_with_parent", func(t *testing.T) {
		refuse(t, "no such cgroup", exitNoCgroup, "no cgroup", "-c", "qmap-none")
		refuse(t, "not cgroup v2", exitNotCgroup, "not below /sys/fs/cgroup", "-c", "/tmp")
		refuse(t, "root cgroup", exitCgroupTaken, "is the root cgroup", "-c", "/sys/fs/cgroup")
		if st := guest.State(t); st != "enabled" {
			t.Errorf("state after the refusals = %s, want enabled (the parent untouched)", st)
		}
	})

	t.Run("two_children", func(t *testing.T) {
		// a serves stats on a child's default socket, which stats -c finds.
		a := guest.LaunchAtDefaultSocket(t, stats.SubSocket(idA), "--form", "cid", "-c", cgA)
		a.WaitAttached(t)
		b := startSub(t, cgB)
		cgOut, _ := makeCgroup(t, "qmap-out")
		refuse(t, "taken cgroup", exitCgroupTaken, "already has a sub-scheduler", "-c", cgA)
		for _, id := range []uint64{idA, idB} {
			if _, err := os.Stat(subSysfs(id)); err != nil {
				t.Errorf("no sysfs directory for the sub-scheduler: %v", err)
			}
		}
		before := root.Snapshot(t)
		loadCgroup(t, cgA)
		loadCgroup(t, cgB)
		guest.Start(t, "sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec stress-ng --cpu 1 --timeout 30 --quiet", cgOut))
		time.Sleep(6 * time.Second)

		for _, cg := range []string{cgA, cgB, cgOut} {
			checkOnExt(t, cg)
		}
		checkOwnEvents(t, a, idA)
		for name, s := range map[string]*guest.Scheduler{cgA: a, cgB: b} {
			c := s.Counters(t)
			t.Logf("%s: enq=%d dsp=%d ddsp_sel=%d", name, c.NrEnqueued, c.NrDispatched, c.NrDdspFromSelect)
			if c.NrEnqueued == 0 || c.NrDispatched == 0 {
				t.Errorf("%s: enq=%d dsp=%d, want both moving", name, c.NrEnqueued, c.NrDispatched)
			}
		}
		after := root.Snapshot(t)
		t.Logf("root: subs %v, sub_dsp %d", after.Subs, after.Values["sub_dsp"])
		for _, id := range []uint64{idA, idB} {
			if d := subDispatched(after, id) - subDispatched(before, id); d == 0 {
				t.Errorf("root handed cgroup %d no dispatches under load (subs %v)", id, after.Subs)
			}
		}

		// The stats subcommand finds a child by its cgroup.
		rc, out := guest.RunOutput(t, 30*time.Second, bin, "stats", "-c", cgA, "--json")
		var top map[string]any
		if rc != 0 || json.Unmarshal([]byte(out), &top) != nil || top["enq"] == nil {
			t.Errorf("stats -c %s: exit %d, want 0 and a JSON snapshot; got:\n%s", cgA, rc, out)
		}

		// kill -9 of a child: the kernel unloads it, its tasks go back to
		// the parent, which runs on.
		b.Signal(syscall.SIGKILL)
		b.Wait(t, 30*time.Second)
		waitGone(t, subSysfs(idB))
		checkOnExt(t, cgB)

		// A child detached under load.
		a.StopUnreg(t)
		waitGone(t, subSysfs(idA))
		checkOnExt(t, cgA)
		if st := guest.State(t); st != "enabled" {
			t.Errorf("state after the children left = %s, want enabled", st)
		}
	})

	// Schedulers nest: a child takes children of its own, to three levels
	// below the root; a fourth is refused before load.
	t.Run("nesting", func(t *testing.T) {
		mid := filepath.Join(cgA, "x")
		deep := filepath.Join(mid, "y")
		mkdirAll(t, filepath.Join(deep, "z"))
		startSub(t, cgA)
		startSub(t, mid)
		startSub(t, deep)
		refuse(t, "too deep", exitTooDeep, "would nest a scheduler 4 deep", "-c", filepath.Join(deep, "z"))
		if st := guest.State(t); st != "enabled" {
			t.Errorf("state after the refusal = %s, want enabled", st)
		}
	})

	// Our parent holds eight children. It refuses a ninth in
	// ops.sub_attach, which the kernel reports through ops.exit after it
	// made the link: the child says so and exits 8, never "attached".
	t.Run("ninth_child", func(t *testing.T) {
		for i := range 8 {
			cg, _ := makeCgroup(t, fmt.Sprintf("qmap-n%d", i))
			startSub(t, cg)
		}
		cg, _ := makeCgroup(t, "qmap-n8")
		rc, out := guest.RunOutput(t, 60*time.Second, bin, "--form", "cid", "-c", cg)
		if rc != exitAttach || !strings.Contains(out, "the kernel refused to enable the scheduler (runtime error: parent rejected (-28))") ||
			strings.Contains(out, "attached (") {
			t.Errorf("ninth child: exit %d, want %d and the parent's refusal, not attached; got:\n%s", rc, exitAttach, out)
		}
		if st := guest.State(t); st != "enabled" {
			t.Errorf("state after the refused child = %s, want enabled (the parent untouched)", st)
		}
	})

	t.Run("parent_leaves", func(t *testing.T) {
		a := startSub(t, cgA)
		loadCgroup(t, cgA)
		time.Sleep(2 * time.Second)
		root.StopUnreg(t)
		code, kind := a.Wait(t, 60*time.Second)
		out := a.Output(t)
		if code != 0 || kind != "PARENT" || !strings.Contains(out, "the scheduler above this sub-scheduler was unloaded") {
			t.Errorf("child after its parent left: exit %d, kind %q; want 0, PARENT and the explanation\n%s", code, kind, vm.Tail(out, 15))
		}
		if !guest.WaitState(t, "disabled", 30*time.Second) {
			t.Errorf("state %s after both left, want disabled", guest.State(t))
		}
	})

	t.Run("capabilities", func(t *testing.T) {
		if !kernelAtLeast(t, 7, 3) {
			if !strings.Contains(root.Output(t), "children share every CPU") {
				t.Errorf("the root's attached line does not say its children share every CPU:\n%s", vm.Tail(root.Output(t), 5))
			}
			refuse(t, "-B on 7.2", exitTooOld, "need sub-scheduler capabilities", "--form", "cid", "-B", "0")
			return
		}
		testCapabilities(t, bin, cgA, idA, refuse)
	})

	// 7.3: the root divides its CPUs among its children by weight, and again
	// over the online ones when one goes offline. A child left holding only
	// an offline CPU could run nothing, and the watchdog would eject it.
	t.Run("hotplug", func(t *testing.T) {
		if !kernelAtLeast(t, 7, 3) {
			t.Skip("children hold CPUs by capability from 7.3 on")
		}
		root := guest.StartScheduler(t, "--form", "cid")
		child := startSub(t, cgB)
		loadCgroup(t, cgB)
		time.Sleep(2 * time.Second)
		// Back online even if the test stops early (Fatal cannot run here).
		t.Cleanup(func() { _ = os.WriteFile(cpu1Online, []byte("1"), 0) })
		setCPU1Online(t, false)
		time.Sleep(8 * time.Second) // past the 5 s watchdog
		if _, err := os.Stat(subSysfs(idB)); err != nil {
			code, kind := child.Wait(t, 30*time.Second)
			t.Errorf("the child left with CPU 1 offline (%v): exit %d, kind %q\n%s", err, code, kind, guest.ExitReason(child.Output(t)))
			setCPU1Online(t, true)
			root.StopUnreg(t)
			return
		}
		checkOnExt(t, cgB)
		before := child.Counters(t).NrDispatched
		time.Sleep(time.Second)
		if d := child.Counters(t).NrDispatched - before; d == 0 {
			t.Error("the child dispatched nothing in 1 s with CPU 1 offline, its cgroup loaded")
		}
		setCPU1Online(t, true)
		time.Sleep(2 * time.Second)
		r := root.Snapshot(t)
		t.Logf("root: cap_grants=%d cap_revokes=%d cpu_offline=%d cpu_online=%d",
			r.Values["cap_grants"], r.Values["cap_revokes"], r.Values["cpu_offline"], r.Values["cpu_online"])
		killCgroup(cgB)
		child.StopUnreg(t)
		root.StopUnreg(t)
	})

	// A root that queues by pid leaves tids off (SCX_OPS_TID_TO_TASK), and
	// the kernel refuses a child that queues by tid under it: the child
	// loads again by pid and runs its cgroup.
	t.Run("pid_root", func(t *testing.T) {
		root := guest.StartScheduler(t, "--form", "cid", "--queue-by", "pid")
		child := startSub(t, cgA)
		out := child.Output(t)
		if !strings.Contains(out, "loading again to queue by pid") || !strings.Contains(out, "queue by pid,") {
			t.Errorf("the child under a pid root does not say it loaded again by pid:\n%s", vm.Tail(out, 10))
		}
		loadCgroup(t, cgA)
		time.Sleep(4 * time.Second)
		checkOnExt(t, cgA)
		if c := child.Counters(t); c.NrEnqueued == 0 || c.NrDispatched == 0 {
			t.Errorf("child: enq=%d dsp=%d, want both moving", c.NrEnqueued, c.NrDispatched)
		}
		killCgroup(cgA)
		child.StopUnreg(t)
		root.StopUnreg(t)
	})
}

// testCapabilities: 7.3's hierarchy. The root, with rescue off (-B 0),
// gives its child a CPU whole; the child's -J wrong-cid inserts onto the
// CPU it does not hold come back with SCX_TASK_REENQ_CAP, one for each.
// Raising the child's cpu.weight leaves a CPU over, which the two then hold
// in turns.
func testCapabilities(t *testing.T, bin, cg string, id uint64, refuse func(*testing.T, string, int, string, ...string)) {
	root := guest.StartScheduler(t, "--form", "cid", "-B", "0", "-R", "100")
	refuse(t, "-B on a child", exitUsage, "ignores a sub-scheduler's", "-c", cg, "-B", "10")
	// A root task pinned to each CPU: the one on the CPU the child gets
	// whole is stranded there, and the root must still run it.
	for _, cpu := range []string{"0", "1"} {
		guest.Start(t, "taskset", "-c", cpu, "stress-ng", "--cpu", "1", "--timeout", "20", "--quiet")
	}
	child := startSub(t, cg, "-J", "wrong-cid")
	if !strings.Contains(root.Output(t), "children by capability") {
		t.Errorf("the root's attached line does not say it grants by capability:\n%s", vm.Tail(root.Output(t), 5))
	}

	loadCgroup(t, cg)
	time.Sleep(8 * time.Second)
	checkOnExt(t, cg)
	killCgroup(cg)
	time.Sleep(2 * time.Second) // the last bounced inserts come back

	c, r := child.Counters(t), root.Snapshot(t)
	t.Logf("child: enq=%d dsp=%d wrong_cid=%d reenq_cap=%d reenq_total=%d; root: cap_grants=%d cap_revokes=%d stranded=%d subs %v",
		c.NrEnqueued, c.NrDispatched, c.NrWrongCid, c.ReenqCap, c.ReenqTotal,
		r.Values["cap_grants"], r.Values["cap_revokes"], r.Values["stranded"], r.Subs)
	if r.Values["stranded"] == 0 {
		t.Error("root: stranded=0, want its task pinned to the child's CPU sent there")
	}
	if r.Values["cap_grants"] == 0 || subDispatched(r, id) == 0 {
		t.Errorf("root: cap_grants=%d, dispatches to the child %d; want both > 0", r.Values["cap_grants"], subDispatched(r, id))
	}
	if c.NrWrongCid == 0 || c.ReenqCap != c.NrWrongCid {
		t.Errorf("child: wrong_cid=%d reenq_cap=%d; want reenq_cap > 0 and one for each injection", c.NrWrongCid, c.ReenqCap)
	}

	// Weights 100 (the root) and 300 give the child floor(2*3/4) = 1 CPU
	// and the root floor(2/4) = 0: the CPU over goes round every -R.
	before := root.Counters(t).NrCapGrants
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0); err != nil {
		t.Fatalf("enabling the cpu controller: %v", err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cpu.weight"), []byte("300"), 0); err != nil {
		t.Fatalf("setting cpu.weight: %v", err)
	}
	time.Sleep(3 * time.Second)
	if got := root.Counters(t).NrCapGrants - before; got < 3 {
		t.Errorf("%d grants in 3 s after the weight change, want the shared CPU's turns (about one per 200 ms)", got)
	}
	if st := guest.State(t); st != "enabled" {
		t.Errorf("state = %s, want enabled", st)
	}
	child.StopUnreg(t)
	root.StopUnreg(t)
}

// checkOwnEvents wants @child's stats to carry the kernel's event counters
// of its own sysfs directory, not its parent's: every counter no higher
// than the file reads now (they only grow, and the snapshot is older).
func checkOwnEvents(t *testing.T, child *guest.Scheduler, id uint64) {
	t.Helper()
	snap := child.Snapshot(t)
	own := readEvents(t, subSysfs(id))
	now := map[string]int64{}
	for _, e := range own {
		now[e.Name] = e.Value
	}
	if len(snap.Events) != len(own) {
		t.Errorf("child's stats carry %d kernel events, its sysfs directory %d", len(snap.Events), len(own))
	}
	for _, e := range snap.Events {
		if v, ok := now[e.Name]; !ok || e.Value > v {
			t.Errorf("child's stats: %s=%d, its own counter reads %d (present %v): not the child's events", e.Name, e.Value, v, ok)
		}
	}
}

// kernelAtLeast reports whether the guest runs Linux @major.@minor or later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var maj, min int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	return maj > major || maj == major && min >= minor
}

// makeCgroup creates cgroup @name under /sys/fs/cgroup for the test and
// returns its path and id.
func makeCgroup(t *testing.T, name string) (string, uint64) {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	// Registered first, so it runs after the cleanups that stop the tasks.
	t.Cleanup(func() {
		killCgroup(dir)
		for range 100 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("cgroup %s could not be removed", dir)
	})
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

// mkdirAll creates the cgroups down to @dir below an existing test cgroup,
// removing them (deepest first) when the test ends.
func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	for i := len(made) - 1; i >= 0; i-- {
		if err := os.Mkdir(made[i], 0o755); err != nil {
			t.Fatalf("creating cgroup: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, d := range made {
			_ = os.Remove(d)
		}
	})
}

// startSub starts a sub-scheduler on @cgroup and waits until it is attached.
func startSub(t *testing.T, cgroup string, flags ...string) *guest.Scheduler {
	t.Helper()
	s := guest.LaunchScheduler(t, append([]string{"--form", "cid", "-c", cgroup}, flags...)...)
	s.WaitAttached(t)
	return s
}

// killCgroup kills every process in @cgroup: hackbench's workers outlive
// the hackbench the test started.
func killCgroup(cgroup string) {
	_ = os.WriteFile(filepath.Join(cgroup, "cgroup.kill"), []byte("1"), 0)
}

// loadCgroup runs stress-ng and hackbench inside @cgroup until the test
// ends (30 s at most).
func loadCgroup(t *testing.T, cgroup string) {
	t.Helper()
	t.Cleanup(func() { killCgroup(cgroup) })
	for _, cmd := range []string{
		"exec stress-ng --cpu 2 --timeout 30 --quiet",
		"exec hackbench -g 2 -l 100000",
	} {
		guest.Start(t, "sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && %s", cgroup, cmd))
	}
}

// checkOnExt wants every task in @cgroup on the ext class, and at least one.
func checkOnExt(t *testing.T, cgroup string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroup, "cgroup.threads"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			continue // exited since
		}
		n++
		if !guest.ExtEnabled(t, pid) {
			t.Errorf("task %d in %s is not on the ext class", pid, cgroup)
		}
	}
	if n == 0 {
		t.Errorf("no task running in %s", cgroup)
	}
}

func subSysfs(id uint64) string {
	return filepath.Join(guest.SysfsRoot, "root", "sub", fmt.Sprintf("sub-%d", id))
}

func subDispatched(s stats.Snapshot, id uint64) uint64 {
	for _, sub := range s.Subs {
		if sub.CgroupID == id {
			return sub.Dispatched
		}
	}
	return 0
}

// waitGone waits up to 10 s for @path to disappear.
func waitGone(t *testing.T, path string) {
	t.Helper()
	for range 100 {
		if _, err := os.Stat(path); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s still there 10 s after its scheduler left", path)
}
