// SPDX-License-Identifier: Apache-2.0

// Package service holds the VM suite's test of the Debian package and the
// systemd unit. It runs inside the systemd guest image (vm.Image), where
// systemd is PID 1; the host side is vmtest.TestService.
package service

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/stats/scxcompat"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// EnvDeb names the package to install.
const EnvDeb = "SCX_GUEST_DEB"

const (
	unit     = "scx-qmap-go.service"
	defaults = "/etc/default/scx-qmap-go"
)

func TestMain(m *testing.M) {
	workload.RunIfAsked()
	os.Exit(m.Run())
}

// systemctl runs systemctl with @args and returns its exit status and output.
func systemctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return guest.RunOutput(t, 2*time.Minute, "systemctl", args...)
}

// show reads properties of the unit.
func show(t *testing.T) map[string]string {
	t.Helper()
	_, out := systemctl(t, "show", unit, "-p", "ActiveState,SubState,Result,ExecMainStatus,NRestarts,StatusText,MainPID")
	props := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	return props
}

// waitFor polls the unit's properties until @ok holds, for up to @limit.
func waitFor(t *testing.T, limit time.Duration, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p := show(t)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; unit: %v", what, limit, p)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// journal is the unit's journal since boot.
func journal(t *testing.T) string {
	t.Helper()
	_, out := guest.RunOutput(t, time.Minute, "journalctl", "-b", "--no-pager", "-o", "short-monotonic", "-u", unit)
	return out
}

// waitJournal waits for @want in the unit's journal.
func waitJournal(t *testing.T, want string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j := journal(t)
		if strings.Contains(j, want) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in the journal within %v:\n%s", want, limit, j)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func setFlags(t *testing.T, flags string) {
	t.Helper()
	body := fmt.Sprintf("SCX_QMAP_GO_FLAGS=%q\n", flags)
	if err := os.WriteFile(defaults, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// load keeps both CPUs busy (and the scheduler enqueueing) for @secs.
func load(t *testing.T, secs int) {
	t.Helper()
	for range 2 {
		guest.StartHelper(t, "spin", secs, 0)
	}
}

// TestService installs the package, runs the scheduler from its unit under
// systemd, and follows it through a refusal, an ejection and its restart,
// a crash and its restart, a clean stop, and a run without root.
func TestService(t *testing.T) {
	guest.Require(t)
	deb := os.Getenv(EnvDeb)
	if deb == "" {
		t.Fatalf("$%s is not set", EnvDeb)
	}
	if b, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(b)) != "systemd" {
		t.Fatalf("PID 1 is %q, not systemd", b)
	}

	t.Run("install", func(t *testing.T) {
		if rc, out := guest.RunOutput(t, 2*time.Minute, "dpkg", "-i", deb); rc != 0 {
			t.Fatalf("dpkg -i: exit %d\n%s", rc, out)
		}
		for _, f := range []string{"/usr/bin/scx-qmap-go", "/usr/lib/systemd/system/" + unit, defaults,
			"/usr/share/man/man8/scx-qmap-go.8.gz", "/usr/share/doc/scx-qmap-go/copyright"} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("the package installed no %s", f)
			}
		}
		if _, out := systemctl(t, "is-enabled", unit); strings.TrimSpace(out) != "disabled" {
			t.Errorf("is-enabled = %q, want disabled: installing starts nothing", strings.TrimSpace(out))
		}
		if s := guest.State(t); s != "disabled" {
			t.Errorf("sched_ext %s after install, want disabled", s)
		}
		_, v := guest.RunOutput(t, 10*time.Second, "scx-qmap-go", "-V")
		t.Logf("installed: %s", strings.TrimSpace(v))
	})
	if t.Failed() {
		t.FailNow()
	}

	// A refusal that a restart cannot fix: systemd gives up at once.
	t.Run("refusal is final", func(t *testing.T) {
		setFlags(t, "--batch 0")
		if rc, _ := systemctl(t, "start", unit); rc == 0 {
			t.Error("start with --batch 0 succeeded")
		}
		p := waitFor(t, 30*time.Second, "failed", func(p map[string]string) bool { return p["ActiveState"] == "failed" })
		if p["ExecMainStatus"] != "2" || p["NRestarts"] != "0" {
			t.Errorf("unit %v: want exit 2 and no restart", p)
		}
		waitJournal(t, "-b/--batch 0 out of range", 30*time.Second)
		systemctl(t, "reset-failed", unit)
	})

	var firstPID string
	t.Run("start", func(t *testing.T) {
		setFlags(t, "")
		// Type=notify: start returns once the scheduler sent READY=1.
		if rc, out := systemctl(t, "start", unit); rc != 0 {
			t.Fatalf("systemctl start: exit %d\n%s\n%s", rc, out, journal(t))
		}
		if s := guest.State(t); s != "enabled" {
			t.Errorf("sched_ext %s once the unit is started, want enabled", s)
		}
		if b, _ := os.ReadFile(filepath.Join(guest.SysfsRoot, "root/ops")); strings.TrimSpace(string(b)) != "qmap" {
			t.Errorf("root/ops = %q, want qmap", b)
		}
		load(t, 10)
		p := waitFor(t, 30*time.Second, "a STATUS= summary", func(p map[string]string) bool {
			return strings.HasPrefix(p["StatusText"], "enq ")
		})
		firstPID = p["MainPID"]
		_, status := systemctl(t, "status", "--no-pager", "-l", unit)
		t.Logf("systemctl status:\n%s", status)
		if !strings.Contains(status, "Status: \"enq ") {
			t.Errorf("systemctl status shows no STATUS line")
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// scx's tools find the service's stats where they look.
	t.Run("stats", func(t *testing.T) {
		samples, err := scxcompat.Bridge(stats.DefaultSocket, 2)
		if err != nil {
			t.Fatalf("the OpenMetrics bridge against the service: %v", err)
		}
		var lines []string
		for _, s := range samples {
			if s.Name == "scx_qmap_go_enq" || s.Name == "scx_qmap_go_dsp" || s.Name == "scx_qmap_go_reenq_total" ||
				strings.Contains(s.Labels, "SELECT_CPU_FALLBACK") || strings.Contains(s.Labels, "DISPATCH_KEEP_LAST") {
				lines = append(lines, s.String())
			}
		}
		t.Logf("the bridge's samples (%d in all), some of them:\n%s", len(samples), strings.Join(lines, "\n"))
		if rc, out := guest.RunOutput(t, 10*time.Second, "scx-qmap-go", "stats"); rc != 0 || !strings.HasPrefix(out, "enq=") {
			t.Errorf("scx-qmap-go stats: exit %d\n%s", rc, out)
		}
	})

	// The kernel ejects the scheduler (an injected scx_bpf_error()) and
	// systemd starts it again, with the flags as they are by then.
	t.Run("ejection and restart", func(t *testing.T) {
		setFlags(t, "-e 300")
		if rc, out := systemctl(t, "restart", unit); rc != 0 {
			t.Fatalf("systemctl restart: exit %d\n%s", rc, out)
		}
		setFlags(t, "")
		load(t, 20)
		p := waitFor(t, 2*time.Minute, "a restart after the ejection", func(p map[string]string) bool {
			return p["NRestarts"] == "1" && p["ActiveState"] == "active" && p["SubState"] == "running"
		})
		if p["MainPID"] == firstPID {
			t.Errorf("MainPID %s unchanged", p["MainPID"])
		}
		waitJournal(t, "EXIT: ERROR_BPF", 30*time.Second)
		waitJournal(t, "Scheduled restart job", 30*time.Second)
		if !guest.WaitState(t, "enabled", 30*time.Second) {
			t.Errorf("sched_ext %s after the restart, want enabled", guest.State(t))
		}
	})

	// A crash of the loader (SIGQUIT: Go dumps its goroutines and dies)
	// ends in SIGABRT, not Go's exit 2, the bad-flags code systemd would
	// not restart: the unit runs the scheduler again.
	t.Run("crash and restart", func(t *testing.T) {
		before := show(t)["MainPID"]
		if rc, out := systemctl(t, "kill", "--kill-whom=main", "--signal=SIGQUIT", unit); rc != 0 {
			t.Fatalf("systemctl kill: exit %d\n%s", rc, out)
		}
		p := waitFor(t, 2*time.Minute, "a restart after the crash", func(p map[string]string) bool {
			return p["NRestarts"] == "2" && p["ActiveState"] == "active" && p["SubState"] == "running"
		})
		if p["MainPID"] == before {
			t.Errorf("MainPID %s unchanged", p["MainPID"])
		}
		waitJournal(t, "status=6/ABRT", 30*time.Second)
		if !guest.WaitState(t, "enabled", 30*time.Second) {
			t.Errorf("sched_ext %s after the restart, want enabled", guest.State(t))
		}
	})

	t.Run("stop", func(t *testing.T) {
		if rc, out := systemctl(t, "stop", unit); rc != 0 {
			t.Fatalf("systemctl stop: exit %d\n%s", rc, out)
		}
		p := show(t)
		if p["ActiveState"] != "inactive" || p["ExecMainStatus"] != "0" || p["Result"] != "success" {
			t.Errorf("after stop: %v; want inactive, exit 0, success", p)
		}
		j := waitJournal(t, "EXIT: UNREG", 30*time.Second)
		if !guest.WaitState(t, "disabled", 30*time.Second) {
			t.Errorf("sched_ext %s after stop, want disabled", guest.State(t))
		}
		if _, err := os.Lstat(stats.DefaultSocket); err == nil {
			t.Errorf("%s left behind", stats.DefaultSocket)
		}
		if err := os.WriteFile(guest.OutFile(t, "journal.txt"), []byte(j), 0o644); err != nil {
			t.Error(err)
		}
		t.Logf("journal of the unit (debug dumps elided; the whole of it in %s):\n%s", guest.OutFile(t, "journal.txt"), elideDumps(j))
	})

	// docs/service.md's drop-in: a user of its own with the two
	// capabilities, and the stats socket where the tools look.
	t.Run("without root", func(t *testing.T) {
		dir := "/etc/systemd/system/" + unit + ".d"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			systemctl(t, "stop", unit)
			os.RemoveAll(dir)
			systemctl(t, "daemon-reload")
		})
		if err := os.WriteFile(filepath.Join(dir, "nonroot.conf"), []byte(nonRootDropIn), 0o644); err != nil {
			t.Fatal(err)
		}
		systemctl(t, "daemon-reload")
		systemctl(t, "reset-failed", unit) // the starts above count against StartLimitBurst=
		if rc, out := systemctl(t, "start", unit); rc != 0 {
			t.Fatalf("systemctl start with the drop-in: exit %d\n%s\n%s", rc, out, journal(t))
		}
		pid, err := strconv.Atoi(show(t)["MainPID"])
		if err != nil {
			t.Fatalf("MainPID: %v", err)
		}
		if uid := guest.ProcStatus(t, pid, "Uid"); uid == "0" || uid == "?" {
			t.Errorf("the scheduler runs with uid %q, want a user of its own", uid)
		}
		if s := guest.State(t); s != "enabled" {
			t.Errorf("sched_ext %s, want enabled", s)
		}
		load(t, 5)
		if rc, out := guest.RunOutput(t, 10*time.Second, "scx-qmap-go", "stats"); rc != 0 || !strings.HasPrefix(out, "enq=") {
			_, ls := guest.RunOutput(t, 10*time.Second, "ls", "-laR", "/run/scx")
			t.Errorf("scx-qmap-go stats against the unprivileged service: exit %d\n%s\n%s\n%s", rc, out, ls, journal(t))
		}
		if rc, out := systemctl(t, "stop", unit); rc != 0 {
			t.Fatalf("systemctl stop: exit %d\n%s", rc, out)
		}
		if p := show(t); p["ExecMainStatus"] != "0" || p["Result"] != "success" {
			t.Errorf("after stop: %v; want exit 0, success", p)
		}
		if !guest.WaitState(t, "disabled", 30*time.Second) {
			t.Errorf("sched_ext %s after stop, want disabled", guest.State(t))
		}
	})
}

// nonRootDropIn is the drop-in docs/service.md gives for running the
// scheduler without root.
const nonRootDropIn = `[Service]
DynamicUser=yes
AmbientCapabilities=CAP_BPF CAP_PERFMON
CapabilityBoundingSet=CAP_BPF CAP_PERFMON
RuntimeDirectory=scx/root
`

// elideDumps drops the kernel's debug dump from the exit reports in the
// journal @j: from each "debug dump:" line to the next line systemd logs.
func elideDumps(j string) string {
	var b strings.Builder
	inDump, elided := false, 0
	for line := range strings.Lines(j) {
		switch {
		case strings.Contains(line, "debug dump:"):
			inDump, elided = true, 0
		case inDump && strings.Contains(line, " systemd[1]: "):
			inDump = false
			fmt.Fprintf(&b, "        [%d lines of debug dump]\n", elided)
		case inDump:
			elided++
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

func TestElideDumps(t *testing.T) {
	j := "a systemd[1]: Starting\nb x[2]: EXIT: ERROR_BPF\nc x[2]: debug dump:\nd x[2]: CPU 0\ne x[2]: CPU 1\nf systemd[1]: Main process exited\n"
	want := "a systemd[1]: Starting\nb x[2]: EXIT: ERROR_BPF\nc x[2]: debug dump:\n        [2 lines of debug dump]\nf systemd[1]: Main process exited\n"
	if got := elideDumps(j); got != want {
		t.Errorf("elideDumps =\n%s\nwant\n%s", got, want)
	}
}
