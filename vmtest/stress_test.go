// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// gateRuns is how many times TestStressGate runs the gate per vCPU count:
// $SCX_GATE_RUNS, default 2 (`make stress` asks for 10).
func gateRuns(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SCX_GATE_RUNS")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 50 {
		t.Fatalf("SCX_GATE_RUNS=%q: want 1..50", s)
	}
	return n
}

// TestStressGate: the scx project's CI gate, on 2 and 4 vCPUs, with the
// default 5 s watchdog. Every run must end in UNREG with exit 0 on SIGTERM.
// It boots the first kernel of $SCX_VM_KERNELS only, to bound make test.
func TestStressGate(t *testing.T) {
	requireVM(t)
	bin := buildBinary(t)
	runs := gateRuns(t)
	kernel := kernels()[0]
	for _, cpus := range []int{2, 4} {
		t.Run(fmt.Sprintf("%s/%dcpus", kernel, cpus), func(t *testing.T) {
			out := t.TempDir()
			defer dumpOnFailure(t, out)
			r, _ := bootScriptCPUs(t, kernel, cpus, "stress.sh", bin, out, strconv.Itoa(runs))
			equal(t, r, "cpus", strconv.Itoa(cpus))
			ejected := 0
			for i := 1; i <= runs; i++ {
				key := strconv.Itoa(i)
				if r["gate_rc_"+key] != "0" || r["gate_kind_"+key] != "UNREG" {
					ejected++
					t.Errorf("run %d: loader exit %q, exit kind %q; want 0 and UNREG (gate%d.log below)",
						i, r["gate_rc_"+key], r["gate_kind_"+key], i)
				}
				equal(t, r, "stress_rc_"+key, "0")
			}
			t.Logf("%d vCPUs: %d of %d runs ejected", cpus, ejected, runs)
		})
	}
}
