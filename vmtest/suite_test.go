// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

// kernels lists the kernel series the suite boots ($SCX_VM_KERNELS).
func kernels() []string {
	if k := os.Getenv("SCX_VM_KERNELS"); k != "" {
		return strings.Fields(k)
	}
	return []string{"7.2", "7.3"}
}

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv("SCX_VM_TESTS") != "1" {
		t.Skip("VM suite: set SCX_VM_TESTS=1 (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the VM suite needs root (virtme-ng, and the guest runs as root)")
	}
}

// built is a binary the suite builds once per process, static, into a
// directory the guest can see.
type built struct {
	once sync.Once
	path string
	err  error
}

// get builds @pkg with `go @verb... -o FILE` the first time, and returns
// the binary's path.
func (b *built) get(t *testing.T, file, pkg string, verb ...string) string {
	t.Helper()
	return b.do(t, pkg, func() (string, error) {
		dir, err := os.MkdirTemp("", "scx-qmap-go-vm")
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, file)
		cmd := exec.Command("go", append(verb, "-o", path, pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return path, fmt.Errorf("%v\n%s", err, out) // the path, for TestMain to remove
		}
		return path, nil
	})
}

// do runs @build the first time and returns the path it made; @what names
// it in the failure.
func (b *built) do(t *testing.T, what string, build func() (string, error)) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = build() })
	if b.err != nil {
		t.Fatalf("building %s: %v", what, b.err)
	}
	return b.path
}

var cli built

// suiteCtx bounds every boot of the suite. It ends a few minutes before
// go test's -timeout would, so that a guest still running then is stopped
// and its tests reported as unfinished, and the run ends with the digest
// of failures instead of a goroutine dump.
var suiteCtx = context.Background()

// suiteDeadline is suiteCtx for a test binary run with -timeout @timeout.
func suiteDeadline(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(context.Background())
	}
	margin := min(timeout/10, 5*time.Minute)
	return context.WithTimeoutCause(context.Background(), timeout-margin,
		fmt.Errorf("the suite's deadline, %v before go test's -timeout of %v", margin, timeout))
}

// TestMain removes the binaries the suite built once all tests are done,
// and ends the output with what failed in the guests, where a reader of
// only the tail of a long log (CI) sees it.
func TestMain(m *testing.M) {
	flag.Parse()
	timeout, _ := time.ParseDuration(flag.Lookup("test.timeout").Value.String())
	ctx, cancel := suiteDeadline(timeout)
	suiteCtx = ctx
	code := m.Run()
	cancel()
	printGuestFailures(os.Stdout)
	for _, b := range []*built{&cli, &guestTests, &serviceTests} {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
	os.Exit(code)
}

// buildBinary builds the CLI.
func buildBinary(t *testing.T) string {
	t.Helper()
	return cli.get(t, "scx-qmap-go", "../cmd/scx-qmap-go", "build")
}

// dumpOnFailure logs every file the guest wrote, when the test failed.
func dumpOnFailure(t *testing.T, dir string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		t.Logf("--- %s:\n%s", e.Name(), excerpt(string(b)))
	}
}

// excerpt is what dumpOnFailure shows of a guest file. A loader's log that
// ends in an exit report shows the report's head: the reason (which task
// stalled, for how long) and what each CPU was doing; the kernel's dump runs
// to tens of KiB, and its tail is only the last runnable tasks. Any other
// file shows its tail. (The lines just before the report, the final totals
// among them, come along.)
func excerpt(s string) string {
	const before, reportLines, tailLines = 3, 80, 60
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "EXIT: ") {
			continue
		}
		end := min(i+reportLines, len(lines))
		head := strings.Join(lines[max(i-before, 0):end], "\n")
		if end < len(lines) {
			head += fmt.Sprintf("\n[%d more lines]", len(lines)-end)
		}
		return head
	}
	return vm.Tail(s, tailLines)
}

// formOf is the struct_ops form the suite tests on @kernel: the cpu form on
// 7.2, where it stands in for 7.1 (the suite has no 7.1 kernel, and 7.1 has
// no other form), the cid form, the loader's choice, on later kernels.
// $SCX_VM_FORM overrides it.
func formOf(kernel string) string {
	if f := os.Getenv("SCX_VM_FORM"); f != "" {
		return f
	}
	if kernel == "7.2" {
		return "cpu"
	}
	return "cid"
}

// forEachKernel runs the guest tests @names in one 2-vCPU boot per kernel,
// each with the form formOf gives it, within @limit.
func forEachKernel(t *testing.T, limit time.Duration, allowEjection bool, names ...string) {
	t.Helper()
	requireVM(t)
	for _, kernel := range kernels() {
		form := formOf(kernel)
		t.Run(kernel+"-"+form, func(t *testing.T) {
			runGuest(t, guestBoot{kernel: kernel, cpus: 2, tests: names, limit: limit, allowEjection: allowEjection, form: form})
		})
	}
}

// TestGuest runs, in one boot per kernel, the guest tests that must never
// get the scheduler ejected: scenarios.TestBasic (attach, a real workload,
// stats clients, refusals, a clean detach, a kernel-initiated exit),
// TestFeatures (every flag's effect in the counters or the kernel's view)
// and TestReliability (loads and faults the machine must survive).
// $SCX_GUEST_TESTS (space-separated) runs only those named.
func TestGuest(t *testing.T) {
	names := []string{"TestBasic", "TestFeatures", "TestReliability", "TestSubScheds"}
	if s := os.Getenv("SCX_GUEST_TESTS"); s != "" {
		names = strings.Fields(s)
	}
	forEachKernel(t, guestLimit, false, names...)
}

// Limits for the guest's tests of one boot, about 2.5 times what they
// take under TCG here: a hang costs that much, not the whole run.
const (
	guestLimit  = 25 * time.Minute // TestGuest: about 10 minutes
	faultsLimit = 10 * time.Minute // TestFaults: about 2 minutes
	gateLimit   = 5 * time.Minute  // TestStressGate, beside gateRunLimit a run
	// a 45 s gate run and its stop take about a minute
	gateRunLimit = 2 * time.Minute
)

// TestFaults: each injected fault ejects the scheduler with the expected
// exit kind and a readable report, and the machine recovers
// (scenarios.TestFaults). A boot of its own: ejections are its point.
func TestFaults(t *testing.T) { forEachKernel(t, faultsLimit, true, "TestFaults") }

// gateRuns is how many times TestStressGate runs the gate per vCPU count:
// $SCX_GATE_RUNS, default 1 (`make stress` asks for 10): a second run in
// every `make test` cost CI minutes that `make stress` spends better.
func gateRuns(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SCX_GATE_RUNS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 50 {
		t.Fatalf("SCX_GATE_RUNS=%q: want 1..50", s)
	}
	return n
}

// TestStressGate: the scx project's CI gate, on 2 and 4 vCPUs
// (scenarios.TestStressGate): the cpu form on 2 vCPUs, the cid form on 4
// (unless $SCX_VM_FORM names one for both). The first kernel of
// $SCX_VM_KERNELS runs it all; the others, to bound make test, only the
// run with a child, whose hierarchy differs by kernel.
func TestStressGate(t *testing.T) {
	requireVM(t)
	runs := gateRuns(t)
	for i, kernel := range kernels() {
		if i > 0 {
			runs = 0
		}
		for _, g := range []struct {
			cpus int
			form string
		}{{2, "cpu"}, {4, "cid"}} {
			if f := os.Getenv("SCX_VM_FORM"); f != "" {
				g.form = f
			}
			t.Run(fmt.Sprintf("%s/%dcpus-%s", kernel, g.cpus, g.form), func(t *testing.T) {
				runGuest(t, guestBoot{kernel: kernel, cpus: g.cpus, tests: []string{"TestStressGate"}, form: g.form,
					limit: gateLimit + time.Duration(runs+1)*gateRunLimit, // the +1: the run with a child
					env:   []string{fmt.Sprintf("SCX_GATE_RUNS=%d", runs)}})
			})
		}
	}
}
