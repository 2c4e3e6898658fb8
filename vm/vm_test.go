// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func numbered(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

// From shows an oops with the trace after it, or the tail without one.
func TestFrom(t *testing.T) {
	console := numbered("boot", 10) + "[ 9.1] Oops: int3\n" + numbered("trace", 100)
	got := strings.Split(From(console, "Oops: int3", 5), "\n")
	if len(got) != 5 || got[0] != "[ 9.1] Oops: int3" || got[4] != "trace4" {
		t.Errorf("From = %q, want the oops and the 4 lines after it", got)
	}
	if got := From(numbered("line", 100), "absent", 3); got != "line98\nline99\nline100" {
		t.Errorf("From without the line = %q, want the tail", got)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name          string
		console       string
		allowEjection bool
		want          int
	}{
		{"clean boot", "[ 1.0] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug\n", false, 0},
		{"clean unregister", "[ 9.1] sched_ext: BPF scheduler \"qmap\" disabled (unregistered from user space)\n", false, 0},
		{"kernel BUG", "[ 3.2] BUG: kernel NULL pointer dereference, address: 0000000000000000\n", false, 1},
		{"warning", "[ 3.2] WARNING: CPU: 1 PID: 77 at kernel/sched/ext.c:123 foo\n", true, 1},
		{"hung task", "[ 120.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n", false, 1},
		{"stall ejection", "[ 9.1] sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)\n", false, 1},
		{"stall ejection allowed", "[ 9.1] sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)\n", true, 0},
		{"child ejected", "[ 9.1] sched_ext: BPF sub-scheduler \"qmap\" disabled (rescue bandwidth overload)\n", false, 1},
		{"child left with its parent", "[ 9.1] sched_ext: BPF sub-scheduler \"qmap\" disabled (parent exiting)\n", false, 0},
		{"child refused while enabling", "[ 9.1] sched_ext: BPF sub-scheduler \"qmap\" disabled (runtime error)\n" +
			"[ 9.1] sched_ext: qmap: SCX_OPS_TID_TO_TASK requires root scheduler to enable it\n", false, 0},
		{"ninth child refused by its parent", "[ 9.1] sched_ext: BPF sub-scheduler \"qmap\" disabled (runtime error)\n" +
			"[ 9.1] sched_ext: qmap: parent rejected (-28)\n", false, 0},
		{"command line echo", "[ 0.1] Kernel command line: panic=-1 BUG: no\n", false, 0},
		{"command output", "stress-ng: warn:  [1544] fork: WARNING: finished prematurely\n", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Result{Console: tt.console}
			if got := r.Problems(tt.allowEjection); len(got) != tt.want {
				t.Errorf("Problems() = %q, want %d line(s)", got, tt.want)
			}
		})
	}
}

func TestKernelPath(t *testing.T) {
	dir := t.TempDir()
	vmlinuz := filepath.Join(dir, "7.2", "usr/lib/modules/7.2.13+deb14-amd64/vmlinuz")
	if err := os.MkdirAll(filepath.Dir(vmlinuz), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vmlinuz, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kernel  string
		want    string
		wantErr bool
	}{
		{"7.2", vmlinuz, false},
		{"", vmlinuz, false},
		{"7.3", "", true},
		{"/boot/vmlinuz-x", "/boot/vmlinuz-x", false},
	}
	for _, tt := range tests {
		got, err := Config{Kernel: tt.kernel, CacheDir: dir}.KernelPath()
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("KernelPath(%q) = %q, %v; want %q, error %v", tt.kernel, got, err, tt.want, tt.wantErr)
		}
	}
}
