// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const unitPath = "../../contrib/systemd/scx-qmap-go.service"

// unitSettings reads the unit file's KEY=value lines.
func unitSettings(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			kv[k] = v
		}
	}
	return kv
}

// The unit runs the scheduler as the README promises, and systemd gives
// up at once on exactly the refusals that the exit code table calls final.
func TestUnit(t *testing.T) {
	kv := unitSettings(t)
	for k, want := range map[string]string{
		"Type":                     "notify",
		"KillSignal":               "SIGINT",
		"Restart":                  "on-failure",
		"ConditionPathIsDirectory": "/sys/kernel/sched_ext",
		"Conflicts":                "scx.service scx_loader.service",
		"EnvironmentFile":          "-/etc/default/scx-qmap-go",
		"ExecStart":                "/usr/bin/scx-qmap-go $SCX_QMAP_GO_FLAGS",
		"StartLimitBurst":          kv["StartLimitBurst"],
		"StartLimitIntervalSec":    kv["StartLimitIntervalSec"],
		"RestartPreventExitStatus": kv["RestartPreventExitStatus"],
	} {
		if kv[k] != want || want == "" {
			t.Errorf("%s=%q, want %q", k, kv[k], want)
		}
	}
	var final []int
	for _, e := range exitCodes {
		if e.final {
			final = append(final, int(e.code))
		}
	}
	var prevent []int
	for _, f := range strings.Fields(kv["RestartPreventExitStatus"]) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("RestartPreventExitStatus: %v", err)
		}
		prevent = append(prevent, n)
	}
	slices.Sort(prevent)
	if !slices.Equal(prevent, final) {
		t.Errorf("RestartPreventExitStatus=%v, want the final exit codes %v", prevent, final)
	}

	defaults, err := os.ReadFile("../../contrib/default/scx-qmap-go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(defaults), "\nSCX_QMAP_GO_FLAGS=") {
		t.Error("/etc/default/scx-qmap-go does not set SCX_QMAP_GO_FLAGS")
	}
}

// systemd's own parser has nothing to say about the unit. ExecStart must
// name an executable, so a copy points at this test binary.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here")
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "scx-qmap-go.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/bin/scx-qmap-go", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
