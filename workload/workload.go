// SPDX-License-Identifier: Apache-2.0

// Package workload runs small CPU workloads with a scheduling policy of
// their own, for the VM suite and the benchmark: busy loops at a nice level
// or under SCHED_EXT, a SCHED_FIFO task that takes one CPU 80 ms in every
// 100, a task that wakes every few hundred µs, threads that take turns in
// bursts of CPU time, storms of threads woken at once, busy threads whose
// CPU masks others keep changing, and light threads crowded onto one CPU.
// Each runs in a child process, the calling binary started again with
// $SCX_WORKLOAD naming it, so it needs nothing installed in the guest, and
// it stops by itself after its seconds (a kill that misses cannot leave a
// busy RT loop behind).
package workload

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/procstat"
)

const env = "SCX_WORKLOAD"

// PolicyExt is SCHED_EXT. A task may take it with no scheduler attached; it
// then runs on the fair class until one attaches.
const PolicyExt = 7

// The workloads, by name. @arg is the nice level, the CPU for rt-hog, or the
// µs between wakeups for waker.
var workloads = map[string]func(secs, arg int) error{
	// spin: a busy loop at nice @arg; prints how many rounds it made, a
	// measure of the CPU it got.
	"spin": func(secs, nice int) error {
		// A nice level belongs to a thread: the runtime's own threads
		// would otherwise use CPU at nice 0 in the process's name.
		err := eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, nice) })
		if err != nil {
			return fmt.Errorf("setpriority(%d): %w", nice, err)
		}
		// One thread spins throughout, as a CPU hog does. Locked to its
		// thread, the loop went to sleep at each of the runtime's 10 ms
		// preemptions while another thread handed it back: the hog ran
		// in sub-millisecond turns and woke as a new task each time,
		// and even EEVDF gave nice -20 loops only 74-87% of 4 CPUs.
		// With one P and no lock, a preempted loop resumes on its own
		// thread; every thread has the nice level.
		runtime.GOMAXPROCS(1)
		runtime.UnlockOSThread()
		return spin(secs)
	},
	// ext-spin: spin under SCHED_EXT; prints "ready" once it has the
	// policy.
	"ext-spin": func(secs, _ int) error {
		if err := SetPolicy(PolicyExt, 0); err != nil {
			return err
		}
		fmt.Println("ready")
		return spin(secs)
	},
	// ext-sleep: sleep under SCHED_EXT; prints "ready" once it has the
	// policy.
	"ext-sleep": func(secs, _ int) error {
		if err := SetPolicy(PolicyExt, 0); err != nil {
			return err
		}
		fmt.Println("ready")
		time.Sleep(time.Duration(secs) * time.Second)
		return nil
	},
	// rt-hog: SCHED_FIFO 10 on CPU @arg, busy 80 ms and asleep 20 ms in
	// turn, taking the CPU from whatever ext task runs there.
	"rt-hog": func(secs, cpu int) error {
		var set unix.CPUSet
		set.Set(cpu)
		// All threads: the runtime's own ones run as SCHED_FIFO too.
		if err := eachThread(func(tid int) error { return unix.SchedSetaffinity(tid, &set) }); err != nil {
			return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
		}
		if err := SetPolicy(unix.SCHED_FIFO, 10); err != nil {
			return err
		}
		for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
			for busy := time.Now().Add(80 * time.Millisecond); time.Now().Before(busy); {
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	},
	// waker: asleep @arg µs at a time, waking at once to sleep again: a
	// task that runs little, on no CPU in particular. Prints how many
	// sleeps it finished.
	"waker": func(secs, us int) error {
		n := 0
		for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); n++ {
			if err := nanosleep(time.Duration(us) * time.Microsecond); err != nil {
				return err
			}
		}
		fmt.Println(n)
		return nil
	},
	// pingpong: two threads in turn, each busy @arg ms of its own CPU
	// time, then waking the other through a pipe and sleeping until woken
	// back: neither ever uses more than half a CPU, whatever the host's
	// speed. Prints how many bursts the two ran.
	"pingpong": func(secs, burstMs int) error {
		n, err := pingPong(time.Duration(secs)*time.Second, time.Duration(burstMs)*time.Millisecond)
		fmt.Println(n)
		return err
	},
	// thread-storm: @arg threads, all asleep on one futex, woken together
	// by a single FUTEX_WAKE; each does a token amount of work. Prints how
	// many finished and how many threads the process had at the wake. No
	// user-space lock is contended after the wake, so the storm lasts as
	// long as the scheduler makes it, not a lock convoy.
	"thread-storm": func(_, n int) error {
		finished, threads, err := threadStorm(n)
		fmt.Println(finished, threads)
		return err
	},
	// spin-storm: @arg threads, all asleep on one futex, woken together,
	// each then busy for @secs. Prints how many finished and how late the
	// last of them finished, in ms past the deadline: how long a thread
	// waited for a CPU at most, near enough.
	"spin-storm": func(secs, n int) error {
		finished, late, err := spinStorm(n, time.Duration(secs)*time.Second)
		fmt.Println(finished, late.Milliseconds())
		return err
	},
	// affinity-churn: @arg busy threads, and two more at nice -20 (where
	// allowed) that keep moving them between CPU masks (one CPU, then all
	// it started with) as fast as they can for @secs. Prints how many
	// masks they set.
	"affinity-churn": func(secs, n int) error {
		changes, err := affinityChurn(n, time.Duration(secs)*time.Second, 0)
		fmt.Println(changes)
		return err
	},
	// affinity-churn-paced: affinity-churn with each churner asleep 1 ms
	// after each mask it sets.
	"affinity-churn-paced": func(secs, n int) error {
		changes, err := affinityChurn(n, time.Duration(secs)*time.Second, time.Millisecond)
		fmt.Println(changes)
		return err
	},
	// pinned-bursts: @arg threads on one CPU (the last it may use), each
	// busy 200 us and then asleep 100 us, over and over for @secs: light
	// tasks bound to one CPU, far more of them than it can run. Prints the
	// fewest bursts a thread ran and the longest a thread went between two
	// of its bursts' starts, in ms.
	"pinned-bursts": func(secs, n int) error {
		fewest, gap, err := pinnedBursts(n, time.Duration(secs)*time.Second)
		fmt.Println(fewest, gap.Milliseconds())
		return err
	},
}

// pinnedBursts runs @n threads pinned to the last CPU of the start mask for
// @d, each busy 200 us and then asleep 100 us in turn. It returns the fewest
// bursts one ran and the longest one went between two bursts' starts.
func pinnedBursts(n int, d time.Duration) (fewest int64, gap time.Duration, err error) {
	if n < 1 {
		return 0, 0, fmt.Errorf("pinned-bursts: %d threads, want at least 1", n)
	}
	_, cpus, err := startCPUs()
	if err != nil {
		return 0, 0, err
	}
	var set unix.CPUSet
	set.Set(cpus[len(cpus)-1])
	runtime.GOMAXPROCS(n + 1)
	end := time.Now().Add(d)
	bursts := make([]int64, n)
	gaps := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				errs[i] = fmt.Errorf("sched_setaffinity: %w", err)
				return
			}
			// The gap is taken before the deadline is checked, so a
			// wait that outlasts the run still counts.
			for last := time.Now(); ; {
				now := time.Now()
				gaps[i] = max(gaps[i], now.Sub(last))
				if !now.Before(end) {
					return
				}
				last = now
				spinUntil(now.Add(200 * time.Microsecond))
				if err := nanosleep(100 * time.Microsecond); err != nil {
					errs[i] = err
					return
				}
				bursts[i]++
			}
		}()
	}
	wg.Wait()
	fewest = bursts[0]
	for i := range n {
		fewest = min(fewest, bursts[i])
		gap = max(gap, gaps[i])
	}
	return fewest, gap, errors.Join(errs...)
}

// affinityChurn runs @n busy threads for @d while two others set each of
// them a new CPU mask in turn, one CPU or all it started with, asleep for
// @pause after each: a task waiting in the scheduler's queues has its mask
// changed under it. The churners take nice -20 where they may, so that one
// runs on some CPU most of the time. It returns how many masks were set.
func affinityChurn(n int, d, pause time.Duration) (int64, error) {
	const churners = 2
	allowed, cpus, err := startCPUs()
	if err != nil {
		return 0, err
	}
	runtime.GOMAXPROCS(n + churners + 1)
	end := time.Now().Add(d)
	tids := make([]int, n)
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			tids[i] = unix.Gettid()
			started.Done()
			spinUntil(end)
		}()
	}
	started.Wait()

	var changes atomic.Int64
	errs := make(chan error, churners)
	for c := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), -20)
			if err != nil && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
				errs <- fmt.Errorf("setpriority(-20): %w", err)
				return
			}
			for i := c; time.Now().Before(end); i++ {
				set := allowed
				if j := i % (len(cpus) + 1); j < len(cpus) {
					set.Zero()
					set.Set(cpus[j])
				}
				tid := tids[(i/(len(cpus)+1)+c)%n]
				err := unix.SchedSetaffinity(tid, &set)
				if errors.Is(err, unix.ESRCH) {
					return // its thread has finished
				}
				if err != nil {
					errs <- fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
					return
				}
				changes.Add(1)
				if pause > 0 {
					if err := nanosleep(pause); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return changes.Load(), <-errs
}

// startCPUs is the calling thread's CPU mask and the CPUs in it, in order.
func startCPUs() (unix.CPUSet, []int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return allowed, nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for cpu := range len(allowed) * 64 {
		if allowed.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) == 0 {
		return allowed, nil, errors.New("sched_getaffinity: an empty CPU mask")
	}
	return allowed, cpus, nil
}

// nanosleep sleeps @d in nanosleep(2) on the calling thread (time.Sleep's
// timers wake to the millisecond); a signal may end it early.
func nanosleep(d time.Duration) error {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	if err := unix.Nanosleep(&ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("nanosleep: %w", err)
	}
	return nil
}

// spinUntil keeps the calling thread busy until @end.
func spinUntil(end time.Time) {
	for i := 0; ; i++ {
		if i&0xffff == 0 && !time.Now().Before(end) {
			return
		}
	}
}

// threadStorm runs @n goroutines that each block in futex(2) and so hold a
// thread of their own, wakes them all at once, and returns how many
// finished and how many threads were there to wake. The threads outlive
// the goroutines, parked by the runtime, and all exit with the process.
func threadStorm(n int) (finished int64, threads int, err error) {
	var done atomic.Int64
	threads, err = gatedStorm(n, func() {}, func() {
		x := 0
		for i := range 50 {
			x += i
		}
		if x > 0 {
			done.Add(1)
		}
	})
	return done.Load(), threads, err
}

// spinStorm runs @n goroutines, each on a P and a thread of its own, asleep
// in futex(2) until all are, then busy until @d after the wake. It returns
// how many finished and how late the last of them did.
func spinStorm(n int, d time.Duration) (finished int64, late time.Duration, err error) {
	// A P for each: otherwise only GOMAXPROCS of the woken threads run Go
	// code and the rest park again, not runnable for the scheduler.
	runtime.GOMAXPROCS(n + 1)
	var end, lastDone, done atomic.Int64 // end: the deadline, in UnixNano
	_, err = gatedStorm(n, func() { end.Store(time.Now().Add(d).UnixNano()) }, func() {
		spinUntil(time.Unix(0, end.Load()))
		now := time.Now().UnixNano()
		for {
			last := lastDone.Load()
			if now <= last || lastDone.CompareAndSwap(last, now) {
				break
			}
		}
		done.Add(1)
	})
	return done.Load(), time.Duration(lastDone.Load() - end.Load()), err
}

// gatedStorm runs @work on @n goroutines, each blocked in futex(2) on one
// word, and so on a thread of its own, until all are; then it calls
// @beforeWake and wakes them all with one FUTEX_WAKE. It returns once every
// @work has, with how many threads there were to wake.
func gatedStorm(n int, beforeWake, work func()) (threads int, err error) {
	debug.SetMaxThreads(n + 1000)
	var gate uint32 // the futex word: 0 while the threads wait
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			for atomic.LoadUint32(&gate) == 0 {
				futex(&gate, futexWaitPrivate, 0)
			}
			work()
		}()
	}
	// A goroutine's thread exists once it blocks: wait for them all.
	for threads < n {
		if threads, err = threadCount(); err != nil {
			return threads, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	beforeWake()
	atomic.StoreUint32(&gate, 1)
	futex(&gate, futexWakePrivate, math.MaxInt32)
	wg.Wait()
	return threads, nil
}

// pingPong runs two threads that pass a turn back and forth through two
// pipes for @d, each busy for @burst of thread CPU time per turn, and
// returns how many bursts they ran. Each is woken by the other's write.
func pingPong(d, burst time.Duration) (int64, error) {
	var pipes [2][2]int // pipes[i]: side i reads [0], the other writes [1]
	for i := range pipes {
		if err := unix.Pipe2(pipes[i][:], unix.O_CLOEXEC); err != nil {
			return 0, fmt.Errorf("pipe: %w", err)
		}
	}
	end := time.Now().Add(d)
	var bursts atomic.Int64
	errs := make(chan error, 2)
	for side := range 2 {
		go func() {
			// The thread, not the goroutine, is what gets scheduled.
			runtime.LockOSThread()
			in, out := pipes[side][0], pipes[1-side][1]
			// Closing its end tells the other side, if it waits, that
			// this one stopped: its read returns 0.
			defer unix.Close(out)
			errs <- takeTurns(in, out, side == 0, burst, end, &bursts)
		}()
	}
	err := errors.Join(<-errs, <-errs)
	return bursts.Load(), err
}

// takeTurns is one side of pingPong: a burst, then a write to @out to wake
// the other side, then a read of @in to wait for it, until @end. The side
// that does not go @first waits for the other's first turn. Each side writes
// before it checks the time, so the other never waits on it for nothing.
func takeTurns(in, out int, first bool, burst time.Duration, end time.Time, bursts *atomic.Int64) error {
	b := []byte{0}
	wait := func() (bool, error) {
		n, err := unix.Read(in, b)
		if err != nil {
			return false, fmt.Errorf("read: %w", err)
		}
		return n > 0, nil // 0: the other side stopped
	}
	if !first {
		if ok, err := wait(); !ok {
			return err
		}
	}
	for {
		if err := busyFor(burst); err != nil {
			return err
		}
		bursts.Add(1)
		if _, err := unix.Write(out, b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if time.Now().After(end) {
			return nil
		}
		if ok, err := wait(); !ok {
			return err
		}
	}
}

// busyFor spins until the calling thread has used @d more CPU time.
func busyFor(d time.Duration) error {
	var ts unix.Timespec
	now := func() (time.Duration, error) {
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			return 0, fmt.Errorf("clock_gettime: %w", err)
		}
		return time.Duration(ts.Nano()), nil
	}
	start, err := now()
	sum := 0
	for t := start; err == nil && t-start < d; t, err = now() {
		for i := range 1000 {
			sum += i
		}
	}
	runtime.KeepAlive(sum)
	return err
}

// threadCount is the calling process's number of threads.
func threadCount() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("/proc/self/status has no Threads line")
}

// futex(2) operations on a process-private word.
const (
	futexWaitPrivate = 0 | 128
	futexWakePrivate = 1 | 128
)

// futex waits on or wakes @word; an early return (EAGAIN, EINTR) leaves the
// caller to recheck the word.
func futex(word *uint32, op, val int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), uintptr(op), uintptr(val), 0, 0, 0)
}

func spin(secs int) error {
	n := 0
	for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); n++ {
	}
	fmt.Println(n)
	return nil
}

// SetPolicy gives every thread of the calling process @policy at priority
// @prio (0 unless real-time): Go may run a goroutine on any of them, and
// threads it starts later inherit it.
func SetPolicy(policy, prio uint32) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Priority: prio}
	return eachThread(func(tid int) error {
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			return fmt.Errorf("sched_setattr(%d, policy %d): %w", tid, policy, err)
		}
		return nil
	})
}

// eachThread calls @f with the id of every thread of the process.
func eachThread(f func(tid int) error) error {
	tids, err := Threads(os.Getpid())
	if err != nil {
		return fmt.Errorf("listing threads: %w", err)
	}
	for _, tid := range tids {
		if err := f(tid); err != nil {
			return err
		}
	}
	return nil
}

// Threads lists the thread IDs of process @pid.
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// RunIfAsked runs the workload $SCX_WORKLOAD names and exits; it returns at
// once when none is named. Call it first in main (or TestMain).
func RunIfAsked() {
	name := os.Getenv(env)
	if name == "" {
		return
	}
	f, ok := workloads[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no workload %q\n", name)
		os.Exit(2)
	}
	secs, _ := strconv.Atoi(os.Getenv(env + "_SECS"))
	arg, _ := strconv.Atoi(os.Getenv(env + "_ARG"))
	// Nice levels and CPU affinity belong to a thread, not the process:
	// keep the loop on the thread that got them.
	runtime.LockOSThread()
	if err := f(secs, arg); err != nil {
		fmt.Fprintf(os.Stderr, "workload %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Command is workload @name for @secs seconds with @arg, as a command that
// runs this binary again; the caller starts it.
func Command(name string, secs, arg int) (*exec.Cmd, error) {
	if _, ok := workloads[name]; !ok {
		return nil, fmt.Errorf("no workload %q", name)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env+"="+name,
		fmt.Sprintf("%s_SECS=%d", env, secs), fmt.Sprintf("%s_ARG=%d", env, arg))
	return cmd, nil
}

// Runs is what one thread ran, from /proc/PID/task/TID/schedstat.
type Runs struct {
	Ns    int64 // time on a CPU
	Turns int64 // how many times it was put on one
}

// ThreadRuns is what each thread of process @pid ran so far, by tid.
func ThreadRuns(pid int) (map[int]Runs, error) {
	tids, err := Threads(pid)
	if err != nil {
		return nil, err
	}
	runs := map[int]Runs{}
	for _, tid := range tids {
		path := fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return nil, err
		}
		// sum_exec_runtime, run_delay (both ns), pcount
		var r Runs
		var delay int64
		if _, err := fmt.Sscan(string(b), &r.Ns, &delay, &r.Turns); err != nil {
			return nil, fmt.Errorf("%s %q: %w", path, b, err)
		}
		runs[tid] = r
	}
	return runs, nil
}

// CPUTicks is process @pid's user+system time, all threads, in clock ticks
// (USER_HZ, 100 a second).
func CPUTicks(pid int) (int64, error) {
	_, f, err := procstat.Read(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	if len(f) <= procstat.STime {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[procstat.UTime], 10, 64)
	stime, err2 := strconv.ParseInt(f[procstat.STime], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[procstat.UTime], f[procstat.STime])
	}
	return utime + stime, nil
}

// ExitStatus is a finished command's status as a shell reports it: the exit
// code, 128+N for death by signal N, 0 for no error, -1 when it never ran.
func ExitStatus(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		return -1
	}
}
