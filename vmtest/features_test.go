// SPDX-License-Identifier: Apache-2.0

package vmtest

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

// atLeast fails the test unless the RESULT @key is a number >= @min.
func atLeast(t *testing.T, r map[string]string, key string, min int64) {
	t.Helper()
	n, err := strconv.ParseInt(r[key], 10, 64)
	if err != nil || n < min {
		t.Errorf("%s = %q, want >= %d", key, r[key], min)
	}
}

// number is the RESULT @key as a number; the test fails if it is not one.
func number(t *testing.T, r map[string]string, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r[key], 10, 64)
	if err != nil {
		t.Errorf("%s = %q, want a number", key, r[key])
	}
	return n
}

// equal fails the test unless the RESULT @key is @want.
func equal(t *testing.T, r map[string]string, key, want string) {
	t.Helper()
	if r[key] != want {
		t.Errorf("%s = %q, want %q", key, r[key], want)
	}
}

// TestFeatures: every scheduler flag shows its effect in the counters or in
// the kernel's view.
func TestFeatures(t *testing.T) {
	forEachKernel(t, "features.sh", func(t *testing.T, r map[string]string, boot *vm.Result, out string) {
		t.Logf("kernel %s", r["kernel"])

		for _, rc := range []string{"highpri_rc", "immed_rc", "print_rc", "msgs_rc", "partial_rc", "suppress_rc"} {
			equal(t, r, rc, "0")
		}

		// -H
		exp, _ := strconv.ParseInt(r["exp_local"], 10, 64)
		remote, _ := strconv.ParseInt(r["exp_remote"], 10, 64)
		if exp+remote == 0 {
			t.Errorf("-H: no expedited nice -20 tasks (exp_local %q, exp_remote %q)", r["exp_local"], r["exp_remote"])
		}
		t.Logf("-H: exp_local=%s exp_remote=%s exp_timer=%s", r["exp_local"], r["exp_remote"], r["exp_timer"])
		// cpuperf: targets follow the weights; the current level is known.
		atLeast(t, r, "cpuperf_target_max", 1)
		atLeast(t, r, "cpuperf_avg", 1)

		// -I -F
		atLeast(t, r, "immed_stress", 1)
		immed, _ := strconv.ParseInt(r["reenq_immed"], 10, 64)
		preempted, _ := strconv.ParseInt(r["reenq_preempted"], 10, 64)
		if immed+preempted == 0 {
			t.Errorf("-I -F: no IMMED or PREEMPTED reenqueues")
		}
		t.Logf("-I -F: immed_stress=%s reenq_immed=%s reenq_preempted=%s", r["immed_stress"], r["reenq_immed"], r["reenq_preempted"])

		// --remote-reenq
		atLeast(t, r, "remote_reenq_requests", 1)
		atLeast(t, r, "remote_reenq_kfunc", 1)
		equal(t, r, "remote_off_requests", "0")
		t.Logf("--remote-reenq, RT task on CPU 1 80%% of the time: 2-worker job median %s ms without (runs%s), %s ms with (runs%s); %s requests",
			r["rt_off_ms"], r["rt_off_runs"], r["rt_on_ms"], r["rt_on_runs"], r["remote_reenq_requests"])

		// -s: the kernel never holds a slice longer than -s; by default it does.
		if n := number(t, r, "slice_2ms_max"); n <= 0 || n > 2_000_000 {
			t.Errorf("-s 2000: largest slice in the kernel's dump %d ns, want 1..2000000", n)
		}
		if n := number(t, r, "slice_default_max"); n <= 2_000_000 {
			t.Errorf("default slice: largest slice in the kernel's dump %d ns, want > 2000000", n)
		}
		// -b: a bigger batch fills the shared DSQ deeper.
		if b1, b16 := number(t, r, "batch1_depth"), number(t, r, "batch16_depth"); b16 <= b1 {
			t.Errorf("-b: deepest shared DSQ %d with -b 16, %d with -b 1; want deeper with -b 16", b16, b1)
		}
		t.Logf("-s/-b: largest slice %s ns by default, %s with -s 2000; shared DSQ depth %s with -b 1, %s with -b 16",
			r["slice_default_max"], r["slice_2ms_max"], r["batch1_depth"], r["batch16_depth"])

		// -L
		equal(t, r, "lat_rc", "0")
		equal(t, r, "lat_cyclictest_rc", "0")
		atLeast(t, r, "lat_kicks", 1)
		atLeast(t, r, "lat_yields", 1)
		t.Logf("-L 2000: %s kicks, %s yields", r["lat_kicks"], r["lat_yields"])

		// -P
		atLeast(t, r, "print_dsq_lines", 2)
		atLeast(t, r, "print_event_lines", 2)

		// -M, hotplug
		atLeast(t, r, "cgrp_init_lines", 1)
		atLeast(t, r, "cgrp_set_lines", 2)
		equal(t, r, "hotplug_state", "enabled")
		atLeast(t, r, "cpu_offline", 1)
		atLeast(t, r, "cpu_online", 1)

		// -p
		equal(t, r, "partial_switch_all", "0")
		equal(t, r, "partial_normal_ext", "0")
		equal(t, r, "partial_ext_ext", "1")
		// -d
		equal(t, r, "disallowed_ext", "0")
		equal(t, r, "disallowed_policy", "0")
		equal(t, r, "thread_tid_is_thread", "1")
		equal(t, r, "thread_d_rc", strconv.Itoa(int(loader.ExitNoTarget)))
		equal(t, r, "thread_d_msg", "1")
		atLeast(t, r, "rejected", 1)

		// -S
		equal(t, r, "suppress_dump_lines", "0")
		atLeast(t, r, "suppress_kernel_lines", 1)

		if p := boot.Problems(false); len(p) > 0 {
			t.Errorf("guest kernel log shows problems:\n%s", strings.Join(p, "\n"))
		}
	})
}

// TestFaults: each injected fault ejects the scheduler with the expected
// exit kind and a readable report; the loader says it was ejected; the
// machine recovers.
func TestFaults(t *testing.T) {
	ejected := strconv.Itoa(int(loader.ExitEjected))
	forEachKernel(t, "faults.sh", func(t *testing.T, r map[string]string, boot *vm.Result, out string) {

		tests := []struct {
			name, kind, msg string
		}{
			{"error", "ERROR_BPF", "-e: error injected after 200 enqueues"},
			{"stall_user", "ERROR_STALL", "runnable task stall"},
			{"stall_kernel", "ERROR_STALL", "runnable task stall"},
			{"dispatch_loop", "", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				log := readFile(t, filepath.Join(out, tt.name+".log"))
				t.Logf("%s: exit kind %s after %ss", tt.name, r[tt.name+"_kind"], r[tt.name+"_secs"])
				t.Logf("report:\n%s", vm.Tail(log, 12))
				equal(t, r, tt.name+"_rc", ejected)
				equal(t, r, tt.name+"_state", "disabled")
				if tt.kind != "" {
					equal(t, r, tt.name+"_kind", tt.kind)
				} else if r[tt.name+"_kind"] == "" || !strings.HasPrefix(r[tt.name+"_kind"], "ERROR") {
					t.Errorf("%s: want an ERROR* exit kind, got %q", tt.name, r[tt.name+"_kind"])
				}
				if tt.msg != "" && !strings.Contains(log, tt.msg) {
					t.Errorf("%s: report does not say %q", tt.name, tt.msg)
				}
				if strings.Contains(log, "goroutine ") {
					t.Errorf("%s: Go stack trace in the report", tt.name)
				}
			})
		}
		// -D 512 caps the dump the report carries.
		errLog := readFile(t, filepath.Join(out, "error.log"))
		if _, dump, ok := strings.Cut(errLog, "debug dump:\n"); !ok {
			t.Errorf("-e: the report has no debug dump")
		} else if len(dump) > 600 {
			t.Errorf("-D 512: dump is %d bytes", len(dump))
		}

		equal(t, r, "after_state", "enabled")
		equal(t, r, "after_hackbench_rc", "0")
		equal(t, r, "after_rc", "0")
		if p := boot.Problems(true); len(p) > 0 {
			t.Errorf("guest kernel log shows problems:\n%s", strings.Join(p, "\n"))
		}
	})
}
