// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/vm"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

var guestTests built

// buildGuestTests compiles the in-guest tests (package scenarios) into one
// static test binary.
func buildGuestTests(t *testing.T) string {
	t.Helper()
	return guestTests.get(t, "scenarios.test", "./scenarios", "test", "-c")
}

// guestBoot describes one boot that runs in-guest tests.
type guestBoot struct {
	kernel        string
	cpus          int
	tests         []string      // top-level tests of package scenarios
	limit         time.Duration // for the guest's tests together (go test -timeout there)
	allowEjection bool          // the tests eject the scheduler on purpose
	env           []string      // more NAME=value settings for the guest tests
	form          string        // --form for the schedulers under test ("": the loader's choice)
}

// bootMargin is what a boot takes beyond its tests: the kernel's start,
// and the guest's go test printing its goroutines when it times out.
const bootMargin = 2 * time.Minute

// runGuest boots @b.kernel, runs @b.tests there in one go, and replays each
// as a subtest of @t: its log, its subtests, and its verdict. The guest
// kernel's log is judged here, on the host. A boot that ends early (killed
// at its limit, wedged, stopped at the suite's deadline) still replays
// what the guest finished.
func runGuest(t *testing.T, b guestBoot) {
	t.Helper()
	if b.limit == 0 {
		t.Fatal("runGuest: the boot has no limit")
	}
	bin := buildBinary(t)
	testBin := buildGuestTests(t)
	out := t.TempDir() // the guest runs as root: 0700 is fine
	defer dumpOnFailure(t, out)

	env := append([]string{guest.EnvGuest + "=1", guest.EnvBinary + "=" + bin, guest.EnvOutDir + "=" + out}, b.env...)
	if b.form != "" {
		env = append(env, guest.EnvForm+"="+b.form)
	}
	cmdline := fmt.Sprintf("%s %s -test.v -test.count=1 -test.timeout=%v -test.run '^(%s)$'",
		strings.Join(env, " "), testBin, b.limit, strings.Join(b.tests, "|"))
	ctx, cancel := context.WithTimeout(suiteCtx, b.limit+bootMargin+time.Minute)
	defer cancel()
	res, err := vm.Run(ctx, vm.Config{Kernel: b.kernel, CPUs: b.cpus, Timeout: b.limit + bootMargin,
		RWDirs: []string{out}, Stdout: progress(t.Logf, time.Now())}, cmdline)
	if res == nil {
		t.Fatalf("boot %s: %v", b.kernel, err)
	}
	if err != nil {
		t.Errorf("boot %s: %v", b.kernel, err)
		noteGuestFailure(t.Name()+" (the boot)", bootFailure(err, res))
	} else {
		t.Logf("kernel %s: the guest ran %v (attempts %d, %s)", b.kernel, res.Elapsed.Round(time.Second), res.Attempts, res.Accelerator)
	}

	results, perr := parseGuestTests(res.Output)
	if perr != nil {
		t.Fatalf("reading the guest's test output: %v\n%s", perr, vm.Tail(res.Output, 40))
	}
	for _, name := range b.tests {
		t.Run(name, func(t *testing.T) {
			r, ok := results[name]
			if !ok {
				t.Fatalf("%s did not run in the guest (exit %d); output tail:\n%s\nconsole tail:\n%s",
					name, res.ExitCode, vm.Tail(res.Output, 40), vm.Tail(res.Console, 40))
			}
			if r.action == "skip" {
				t.Fatalf("skipped in the guest: the guest environment is wrong\n%s", strings.Join(r.output, ""))
			}
			replay(t, r, results)
		})
	}
	if p := res.Problems(b.allowEjection); len(p) > 0 {
		t.Errorf("guest kernel log shows problems:\n%s\nconsole from the first:\n%s",
			strings.Join(p, "\n"), vm.From(res.Console, p[0], 60))
	}
}

// progress returns a writer for the guest's output that logs its test
// framing lines (a test starts, fails, the guest's go test panics) with
// @logf as they come, with the time since @start: the replay comes only
// when the boot ends, and a boot that never ends should still say where
// it was.
func progress(logf func(format string, args ...any), start time.Time) io.Writer {
	return vm.Lines(func(line string) {
		if line = strings.TrimSpace(line); isFraming(line) {
			logf("guest +%ds: %s", int(time.Since(start).Seconds()), line)
		}
	})
}

// isFraming reports whether a line of the guest's `go test -v` output is
// one progress shows.
func isFraming(line string) bool {
	for _, prefix := range []string{"=== RUN", "--- FAIL", "panic:"} {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// guestResult is one guest test as test2json saw it.
type guestResult struct {
	name     string
	action   string // pass, fail, skip; "" if it never finished
	elapsed  float64
	output   []string
	children []string // full names, in the order they started
}

// parseGuestTests turns `go test -v` output into results by full test name.
func parseGuestTests(output string) (map[string]*guestResult, error) {
	cmd := exec.Command("go", "tool", "test2json")
	cmd.Stdin = strings.NewReader(output)
	js, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool test2json: %w", err)
	}
	results := map[string]*guestResult{}
	get := func(name string) *guestResult {
		r, ok := results[name]
		if !ok {
			r = &guestResult{name: name}
			results[name] = r
			if i := strings.LastIndexByte(name, '/'); i > 0 {
				parent := results[name[:i]]
				if parent != nil {
					parent.children = append(parent.children, name)
				}
			}
		}
		return r
	}
	sc := bufio.NewScanner(bytes.NewReader(js))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Action  string
			Test    string
			Elapsed float64
			Output  string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("test2json event %q: %w", sc.Text(), err)
		}
		if ev.Test == "" {
			continue
		}
		r := get(ev.Test)
		switch ev.Action {
		case "output":
			r.output = append(r.output, ev.Output)
		case "pass", "fail", "skip":
			r.action, r.elapsed = ev.Action, ev.Elapsed
		}
	}
	return results, sc.Err()
}

// replay reports a guest test's log, subtests and verdict through @t.
func replay(t *testing.T, r *guestResult, all map[string]*guestResult) {
	t.Helper()
	var log strings.Builder
	for _, line := range r.output {
		// test2json keeps the framing lines as output; the host prints its own.
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- ") {
			continue
		}
		log.WriteString(line)
	}
	if s := strings.TrimRight(log.String(), "\n"); s != "" {
		t.Log("guest:\n" + s)
	}
	for _, c := range r.children {
		t.Run(c[strings.LastIndexByte(c, '/')+1:], func(t *testing.T) { replay(t, all[c], all) })
	}
	switch r.action {
	case "pass":
	case "skip":
		t.Skip("skipped in the guest")
	case "fail":
		t.Errorf("failed in the guest after %.1fs", r.elapsed)
		if len(r.children) == 0 {
			noteGuestFailure(t.Name(), log.String())
		}
	default:
		t.Error("never finished in the guest (the guest died or timed out)")
		noteGuestFailure(t.Name(), log.String())
	}
}

// guestFailures is the log tail of each guest test that failed without a
// failed subtest to blame, for the digest at the end of the run.
var guestFailures struct {
	sync.Mutex
	tails []string
}

// failureTailLines is how much of a failed test's log the digest keeps:
// its errors come last.
const failureTailLines = 25

func noteGuestFailure(name, log string) {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > failureTailLines {
		lines = append([]string{"    [...]"}, lines[len(lines)-failureTailLines:]...)
	}
	guestFailures.Lock()
	defer guestFailures.Unlock()
	guestFailures.tails = append(guestFailures.tails, "--- "+name+"\n"+strings.Join(lines, "\n"))
}

// bootFailure is what the digest shows of a boot that failed (timed out,
// wedged): the error's first line, the guest's last output lines (which
// test was running) and the console's.
func bootFailure(err error, res *vm.Result) string {
	first, _, _ := strings.Cut(err.Error(), "\n")
	return fmt.Sprintf("%s\nguest output, last lines:\n%s\nconsole, last lines:\n%s",
		first, vm.Tail(res.Output, 10), vm.Tail(res.Console, 12))
}

// printGuestFailures writes the digest of failed guest tests, if any.
func printGuestFailures(w io.Writer) {
	guestFailures.Lock()
	defer guestFailures.Unlock()
	if len(guestFailures.tails) == 0 {
		return
	}
	fmt.Fprintf(w, "\n== %d guest tests or boots failed; the end of each one's log:\n", len(guestFailures.tails))
	for _, tail := range guestFailures.tails {
		fmt.Fprintln(w, tail)
	}
}

// The guest's `go test -v` output becomes one result per test, with its
// own log lines, its subtests in order, and its verdict.
func TestParseGuestTests(t *testing.T) {
	out := "=== RUN   TestFaults\n=== RUN   TestFaults/error\n    faults_test.go:40: exit kind ERROR_BPF\n" +
		"=== RUN   TestFaults/stall_user\n    faults_test.go:44: loader exit = 0, want 1\n" +
		"=== RUN   TestFaults/recovers\n" +
		"--- FAIL: TestFaults (9.00s)\n    --- PASS: TestFaults/error (3.00s)\n" +
		"    --- FAIL: TestFaults/stall_user (5.00s)\n    --- SKIP: TestFaults/recovers (0.00s)\nFAIL\n"
	results, err := parseGuestTests(out)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, action, log string
	}{
		{"TestFaults", "fail", ""},
		{"TestFaults/error", "pass", "exit kind ERROR_BPF"},
		{"TestFaults/stall_user", "fail", "loader exit = 0, want 1"},
		{"TestFaults/recovers", "skip", ""},
	}
	for _, tt := range tests {
		r := results[tt.name]
		if r == nil {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if r.action != tt.action || !strings.Contains(strings.Join(r.output, ""), tt.log) {
			t.Errorf("%s: action %q, output %q; want %q and a line with %q", tt.name, r.action, r.output, tt.action, tt.log)
		}
	}
	if got := strings.Join(results["TestFaults"].children, ","); got != "TestFaults/error,TestFaults/stall_user,TestFaults/recovers" {
		t.Errorf("children = %s", got)
	}
	// A test the guest never finished (the guest died) has no verdict.
	results, err = parseGuestTests("=== RUN   TestBasic\n    basic_test.go:9: attached\n")
	if err != nil || results["TestBasic"] == nil || results["TestBasic"].action != "" {
		t.Errorf("unfinished test: %+v, %v; want no verdict", results["TestBasic"], err)
	}
}

// Progress shows the guest's framing lines as they come, whole, however
// the writes split them, and nothing else.
func TestProgress(t *testing.T) {
	var got []string
	p := progress(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }, time.Now())
	for _, chunk := range []string{"=== RUN   TestBa", "sic\n    basic_test.go:9: attached\n=== RUN   TestBasic/x\n",
		"    --- FAIL: TestBasic/x (1.00s)\npanic: test timed out after 25m0s\n", "--- PASS: TestBasic (2.00s)\n=== RUN  unterminated"} {
		p.Write([]byte(chunk))
	}
	want := []string{"guest +0s: === RUN   TestBasic", "guest +0s: === RUN   TestBasic/x",
		"guest +0s: --- FAIL: TestBasic/x (1.00s)", "guest +0s: panic: test timed out after 25m0s"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The suite stops its guests before go test's own timeout, leaving time
// for the replay and the digest.
func TestSuiteDeadline(t *testing.T) {
	tests := []struct {
		timeout, want time.Duration // want 0: no deadline
	}{
		{80 * time.Minute, 75 * time.Minute},
		{10 * time.Minute, 9 * time.Minute},
		{0, 0},
	}
	for _, tt := range tests {
		ctx, cancel := suiteDeadline(tt.timeout)
		deadline, ok := ctx.Deadline()
		cancel()
		if ok != (tt.want != 0) {
			t.Errorf("timeout %v: deadline set = %v, want %v", tt.timeout, ok, tt.want != 0)
			continue
		}
		if left := time.Until(deadline); ok && (left > tt.want || left < tt.want-time.Minute) {
			t.Errorf("timeout %v: deadline in %v, want about %v", tt.timeout, left, tt.want)
		}
	}
}

// The digest keeps the end of a failed test's log, where its errors are.
func TestGuestFailureDigest(t *testing.T) {
	noteGuestFailure("TestGuest/7.2-cpu/TestFaults/error", numbered("log", 40))
	defer func() { guestFailures.tails = nil }()
	var b strings.Builder
	printGuestFailures(&b)
	out := b.String()
	for _, want := range []string{"1 guest tests or boots failed", "--- TestGuest/7.2-cpu/TestFaults/error\n    [...]\nlog16\n", "log40"} {
		if !strings.Contains(out, want) {
			t.Errorf("digest lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "log15\n") {
		t.Errorf("digest keeps more than the last %d lines:\n%s", failureTailLines, out)
	}
}

// A boot that timed out shows in the digest whole: its error, which test
// the guest was running, and how the console ended.
func TestBootFailureDigest(t *testing.T) {
	err := fmt.Errorf("%w after 13m0s (limit 13m0s); console tail:\n%s", vm.ErrTimeout, numbered("console", 20))
	res := &vm.Result{Output: numbered("out", 30), Console: numbered("console", 20)}
	noteGuestFailure("TestStressGate/7.2/4cpus-cid (the boot)", bootFailure(err, res))
	defer func() { guestFailures.tails = nil }()
	var b strings.Builder
	printGuestFailures(&b)
	out := b.String()
	for _, want := range []string{"--- TestStressGate/7.2/4cpus-cid (the boot)\n", "after 13m0s (limit 13m0s); console tail:\n",
		"guest output, last lines:\nout21\n", "out30\nconsole, last lines:\nconsole9\n", "console20"} {
		if !strings.Contains(out, want) {
			t.Errorf("digest lacks %q:\n%s", want, out)
		}
	}
}
