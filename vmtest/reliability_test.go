// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"strings"
	"testing"

	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

// TestReliability: loads that must not get the scheduler ejected (hackbench,
// mixed nice levels under an RT hog, 10,000 threads, -p with a mix of
// classes) and faults the machine must survive (kill -9 of the loader, CPU
// hotplug, no bpffs), each followed by a clean detach or a clean reattach.
func TestReliability(t *testing.T) {
	forEachKernel(t, "reliability.sh", func(t *testing.T, r map[string]string, boot *vm.Result, out string) {
		t.Logf("kernel %s", r["kernel"])
		for _, s := range []string{"kill9", "hotplug", "hackbench", "mixed", "threads", "partial", "nobpffs"} {
			t.Logf("%s: %ss of VM time", s, r[s+"_secs"])
		}
		for _, name := range []string{"kill9", "reattach", "hotplug", "hackbench", "mixed", "threads", "partial", "nobpffs"} {
			equal(t, r, name+"_enabled", "enabled")
		}
		// Every scenario but kill -9 ends with SIGINT: exit 0, UNREG.
		for _, name := range []string{"reattach", "hotplug", "hackbench", "mixed", "threads", "partial", "nobpffs"} {
			equal(t, r, name+"_rc", "0")
			equal(t, r, name+"_kind", "UNREG")
		}

		// What each scenario's RESULT lines must read.
		want := []struct {
			scenario string
			checks   []struct{ key, want string }
		}{
			{"kill9", []struct{ key, want string }{
				{"kill9_workload_ext", "1"}, {"kill9_rc", "137"}, {"kill9_state", "disabled"},
				{"kill9_workload_fair", "0"}, {"kill9_stress_rc", "0"}, {"kill9_hackbench_rc", "0"},
				{"reattach_hackbench_rc", "0"}, {"reattach_stats_rc", "0"},
			}},
			// Handled in BPF: no restart asked for, none made.
			{"hotplug", []struct{ key, want string }{
				{"hotplug_offline_rc", "0"}, {"hotplug_online_cpus_during", "0"},
				{"hotplug_state_offline", "enabled"}, {"hotplug_online_rc", "0"},
				{"hotplug_state_online", "enabled"}, {"hotplug_stress_rc", "0"},
				{"hotplug_reloads", "0"}, {"hotplug_restart_msgs", "0"},
			}},
			{"nobpffs", []struct{ key, want string }{
				{"nobpffs_mounted", "0"}, {"nobpffs_hackbench_rc", "0"},
			}},
			{"hackbench", []struct{ key, want string }{
				{"hackbench_rc_1", "0"}, {"hackbench_rc_2", "0"}, {"hackbench_rc_3", "0"},
				{"hackbench_state", "enabled"},
			}},
		}
		for _, w := range want {
			t.Run(w.scenario, func(t *testing.T) {
				for _, c := range w.checks {
					equal(t, r, c.key, c.want)
				}
			})
		}
		t.Logf("stats socket left behind by the killed loader: %s (the next start replaces it)", r["kill9_socket_left"])
		atLeast(t, r, "hotplug_cpu_offline", 1)
		atLeast(t, r, "hotplug_cpu_online", 1)
		t.Run("mixed", func(t *testing.T) {
			equal(t, r, "mixed_state", "enabled")
			for _, n := range []string{"-20", "0", "19"} {
				t.Logf("nice %s: %s rounds", n, r["mixed_rounds_nice"+n])
				atLeast(t, r, "mixed_rounds_nice"+n, 1)
			}
		})
		t.Run("threads", func(t *testing.T) {
			equal(t, r, "threads_rc", "0")
			equal(t, r, "threads_done", "10000")
			equal(t, r, "threads_state", "enabled")
			atLeast(t, r, "threads_enq", 10000)
			t.Logf("enq %s, overflow to the shared DSQ %s", r["threads_enq"], r["threads_overflow"])
		})
		t.Run("partial", func(t *testing.T) {
			equal(t, r, "partial_ext_enabled", "11")
			equal(t, r, "partial_fair_enabled", "00")
			equal(t, r, "partial_state", "enabled")
			atLeast(t, r, "partial_ext_rounds", 1)
			atLeast(t, r, "partial_fair_rounds", 1)
			atLeast(t, r, "partial_enq", 1)
			t.Logf("-p rounds: ext %s, fair %s", r["partial_ext_rounds"], r["partial_fair_rounds"])
		})

		// kill -9 and hotplug are faults to the machine, not to the
		// scheduler: no ejection, BUG, WARNING or hung task anywhere.
		if p := boot.Problems(false); len(p) > 0 {
			t.Errorf("guest kernel log shows problems:\n%s", strings.Join(p, "\n"))
		}
	})
}
