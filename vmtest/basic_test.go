// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
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

// buildBinary builds the CLI into a directory the guest can see.
func buildBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "scx-qmap-go")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/scx-qmap-go")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building scx-qmap-go: %v\n%s", err, out)
	}
	return bin
}

// bootScript runs a testdata script in a 2-vCPU guest and returns its
// RESULT lines.
func bootScript(t *testing.T, kernel, script string, args ...string) (map[string]string, *vm.Result) {
	t.Helper()
	return bootScriptCPUs(t, kernel, 2, script, args...)
}

// bootScriptCPUs is bootScript with @cpus vCPUs.
func bootScriptCPUs(t *testing.T, kernel string, cpus int, script string, args ...string) (map[string]string, *vm.Result) {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	cmdline := "bash " + path
	for _, a := range args {
		cmdline += " " + a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	res, err := vm.Run(ctx, vm.Config{Kernel: kernel, CPUs: cpus, Timeout: 10 * time.Minute, RWDirs: rwDirs(args)}, cmdline)
	if err != nil {
		t.Fatalf("boot %s: %v", kernel, err)
	}
	t.Logf("kernel %s: boot took %v (attempts %d)", kernel, res.Elapsed.Round(time.Second), res.Attempts)
	results := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(res.Output))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) >= 2 && f[0] == "RESULT" {
			v := ""
			if len(f) == 3 {
				v = strings.TrimSpace(f[2])
			}
			results[f[1]] = v
		}
	}
	if results["done"] != "1" {
		t.Fatalf("guest script did not finish (exit %d); output:\n%s\nconsole tail:\n%s",
			res.ExitCode, res.Output, vm.Tail(res.Console, 40))
	}
	return results, res
}

func rwDirs(args []string) []string {
	var dirs []string
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			dirs = append(dirs, a)
		}
	}
	return dirs
}

var statsRE = regexp.MustCompile(`^enq=(\d+)\b.*? dsp=(\d+)\b.*? deq=(\d+)\b`)

// statsLines returns the enq/dsp/deq totals of every periodic stats line.
func statsLines(t *testing.T, log string) [][3]uint64 {
	t.Helper()
	var rows [][3]uint64
	for line := range strings.SplitSeq(log, "\n") {
		m := statsRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var row [3]uint64
		for i := range row {
			row[i], _ = strconv.ParseUint(m[i+1], 10, 64)
		}
		rows = append(rows, row)
	}
	return rows
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

// totalsLine parses the loader's final "totals: name=value ..." line.
func totalsLine(log string) map[string]uint64 {
	totals := map[string]uint64{}
	for line := range strings.SplitSeq(log, "\n") {
		rest, ok := strings.CutPrefix(line, "totals: ")
		if !ok {
			continue
		}
		for _, field := range strings.Fields(rest) {
			name, value, _ := strings.Cut(field, "=")
			totals[name], _ = strconv.ParseUint(value, 10, 64)
		}
	}
	return totals
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading guest output: %v", err)
	}
	return string(b)
}

// forEachKernel boots @script once per kernel, as a subtest, with the CLI
// built once and a fresh output directory, and hands the results to @check.
func forEachKernel(t *testing.T, script string, check func(t *testing.T, r map[string]string, boot *vm.Result, out string)) {
	t.Helper()
	requireVM(t)
	bin := buildBinary(t)
	for _, kernel := range kernels() {
		t.Run(kernel, func(t *testing.T) {
			out := t.TempDir() // the guest runs as root: 0700 is fine
			defer dumpOnFailure(t, out)
			r, boot := bootScript(t, kernel, script, bin, out)
			check(t, r, boot, out)
		})
	}
}

// TestBasic: the scheduler attaches, schedules a real workload, refuses a
// second instance and a non-root caller, and detaches on SIGINT.
func TestBasic(t *testing.T) {
	forEachKernel(t, "basic.sh", func(t *testing.T, r map[string]string, boot *vm.Result, out string) {
		run := readFile(t, filepath.Join(out, "run.log"))

		checks := []struct{ key, want string }{
			{"attach_state", "enabled"},
			{"ops", "qmap"},
			{"workload_ext", "1"},
			{"stress_rc", "0"},
			{"hackbench_rc", "0"},
			{"lowpri_rc", "0"},
			{"second_rc", strconv.Itoa(int(loader.ExitBusy))},
			{"still_enabled", "enabled"},
			{"nonroot_rc", strconv.Itoa(int(loader.ExitNotRoot))},
			{"sigint_rc", "0"},
			{"detach_state", "disabled"},
			{"pinned_after", r["pinned_before"]},
			{"struct_ops_after", "0"},
			{"sysrq_attach", "enabled"},
			{"sysrq_rc", "0"},
			{"sysrq_state", "disabled"},
		}
		for _, c := range checks {
			if got := r[c.key]; got != c.want {
				t.Errorf("%s = %q, want %q", c.key, got, c.want)
			}
		}
		t.Logf("kernel %s, exec to enabled %ss", r["kernel"], r["attach_secs"])
		checkStats(t, r, out)
		t.Logf("loader idle at a 1 s stats interval: %s%% of a CPU, RSS %s KiB (peak %s KiB)",
			r["loader_cpu_pct"], r["loader_rss_kb"], r["loader_hwm_kb"])

		verified := 0
		for line := range strings.SplitSeq(run, "\n") {
			if strings.HasPrefix(line, "verified: ") {
				t.Log(line)
				verified++
			}
		}
		if verified == 0 {
			t.Errorf("-v printed no verified instruction counts")
		}

		rows := statsLines(t, run)
		if len(rows) < 3 {
			t.Fatalf("want at least 3 stats lines, got %d:\n%s", len(rows), run)
		}
		first, last := rows[0], rows[len(rows)-1]
		for i, name := range []string{"enq", "dsp", "deq"} {
			if last[i] <= first[i] {
				t.Errorf("%s did not rise under load: %d -> %d", name, first[i], last[i])
			}
		}
		totals := totalsLine(run)
		t.Logf("totals: %v", totals)
		for _, name := range []string{"lowpri", "reenq_total", "reenq_kfunc", "lowpri_reenq_requests"} {
			if totals[name] == 0 {
				t.Errorf("%s = 0 after nice 19 load, want > 0", name)
			}
		}
		if totals["reenq_kfunc"] > totals["reenq_total"] {
			t.Errorf("reenq_kfunc %d > reenq_total %d", totals["reenq_kfunc"], totals["reenq_total"])
		}
		t.Logf("nice 19 stress-ng bogo ops beside nice 0 hogs: %s", r["lowpri_bogo_ops"])
		if n, _ := strconv.Atoi(r["lowpri_bogo_ops"]); n <= 0 {
			t.Errorf("nice 19 hogs made no progress: bogo ops %q", r["lowpri_bogo_ops"])
		}
		if !strings.Contains(run, "EXIT: UNREG (kind 64)") {
			t.Errorf("no unregister exit report in the loader's output:\n%s", run)
		}
		second := readFile(t, filepath.Join(out, "second.log"))
		if !strings.Contains(second, "another sched_ext scheduler is active") || strings.Contains(second, "goroutine") {
			t.Errorf("second instance: want one clear line, got:\n%s", second)
		}
		nonroot := readFile(t, filepath.Join(out, "nonroot.log"))
		if !strings.Contains(nonroot, "must run as root") {
			t.Errorf("non-root: want a clear refusal, got:\n%s", nonroot)
		}
		if sysrq := readFile(t, filepath.Join(out, "sysrq.log")); !strings.Contains(sysrq, "EXIT: SYSRQ (kind 67): disabled by sysrq-S") {
			t.Errorf("sysrq-S: want a SYSRQ exit report, got:\n%s", sysrq)
		}
		if r["dump_fifo_lines"] != "5" {
			t.Errorf("sysrq-D dump: %q ops.dump FIFO lines, want 5", r["dump_fifo_lines"])
		}
		if n, _ := strconv.Atoi(r["dump_task_lines"]); n < 1 {
			t.Errorf("sysrq-D dump: no ops.dump_task lines")
		}
		if p := boot.Problems(false); len(p) > 0 {
			t.Errorf("guest kernel log shows problems:\n%s", strings.Join(p, "\n"))
		}
	})
}
