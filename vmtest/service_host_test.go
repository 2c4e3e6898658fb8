// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/vm"
	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
)

var serviceTests, debPackage built

// buildDeb builds the Debian package the way a user does, with make deb.
func buildDeb(t *testing.T) string {
	t.Helper()
	return debPackage.do(t, "the package (make deb)", func() (string, error) {
		if out, err := exec.Command("make", "-C", "..", "deb").CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v\n%s", err, out)
		}
		return filepath.Abs("../bin/scx-qmap-go.deb")
	})
}

// TestService boots the systemd guest image on each kernel, installs the
// package there and runs service.TestService: the unit under systemd as
// PID 1, through a refusal, an ejection and its restart, and a stop.
func TestService(t *testing.T) {
	requireVM(t)
	deb := buildDeb(t)
	testBin := serviceTests.get(t, "service.test", "./service", "test", "-c")
	for _, kernel := range kernels() {
		t.Run(kernel, func(t *testing.T) {
			share := t.TempDir()
			in := filepath.Join(share, "in")
			if err := os.MkdirAll(in, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{deb, testBin} {
				if err := copyFile(f, filepath.Join(in, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			}
			defer dumpOnFailure(t, filepath.Join(share, "out"))
			cmdline := strings.Join([]string{"cd /tmp &&",
				guest.EnvGuest + "=1", guest.EnvOutDir + "=/mnt/share/out",
				"SCX_GUEST_DEB=/mnt/share/in/" + filepath.Base(deb),
				"/mnt/share/in/service.test -test.v -test.count=1 -test.timeout=10m"}, " ")
			ctx, cancel := context.WithTimeout(suiteCtx, 16*time.Minute)
			defer cancel()
			res, err := vm.Run(ctx, vm.Config{Kernel: kernel, CPUs: 2, Timeout: 15 * time.Minute,
				System: &vm.Image{Share: share}}, cmdline)
			if err != nil {
				t.Fatalf("boot %s: %v", kernel, err)
			}
			t.Logf("kernel %s, systemd guest: the guest ran %v (%s)", kernel, res.Elapsed.Round(time.Second), res.Accelerator)
			results, err := parseGuestTests(res.Output)
			if err != nil {
				t.Fatalf("reading the guest's test output: %v\n%s", err, vm.Tail(res.Output, 40))
			}
			r, ok := results["TestService"]
			if !ok {
				t.Fatalf("TestService did not run in the guest (exit %d); output tail:\n%s\nconsole tail:\n%s",
					res.ExitCode, vm.Tail(res.Output, 40), vm.Tail(res.Console, 40))
			}
			replay(t, r, results)
			if p := res.Problems(true); len(p) > 0 {
				t.Errorf("guest kernel log shows problems:\n%s", strings.Join(p, "\n"))
			}
		})
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
