// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"strings"
	"testing"
)

func TestExitKind(t *testing.T) {
	tests := []struct {
		kind    ExitKind
		name    string
		isError bool
	}{
		{ExitKindNone, "NONE", false},
		{ExitKindUnreg, "UNREG", false},
		{ExitKindSysRq, "SYSRQ", false},
		{ExitKindError, "ERROR", true},
		{ExitKindErrorBPF, "ERROR_BPF", true},
		{ExitKindErrorStall, "ERROR_STALL", true},
		{ExitKindErrorReenq, "ERROR_REENQ", true},
		{ExitKind(2000), "UNKNOWN(2000)", true},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.name {
			t.Errorf("ExitKind(%d).String() = %q, want %q", tt.kind, got, tt.name)
		}
		if got := tt.kind.IsError(); got != tt.isError {
			t.Errorf("ExitKind(%d).IsError() = %v, want %v", tt.kind, got, tt.isError)
		}
	}
}

func TestDecodeExitCode(t *testing.T) {
	tests := []struct {
		code    int64
		want    string
		restart bool
	}{
		{0, "user=0", false},
		{42, "user=42", false},
		{1<<48 | 1<<32, "user=0 reason=HOTPLUG action=RESTART", true},
		{1<<33 | 7, "user=7 reason=CGROUP_OFFLINE", false},
	}
	for _, tt := range tests {
		if got := DecodeExitCode(tt.code); got != tt.want {
			t.Errorf("DecodeExitCode(%#x) = %q, want %q", tt.code, got, tt.want)
		}
		if got := (ExitInfo{ExitCode: tt.code}).Restart(); got != tt.restart {
			t.Errorf("Restart(%#x) = %v, want %v", tt.code, got, tt.restart)
		}
	}
}

func TestReport(t *testing.T) {
	ei := ExitInfo{
		Kind: ExitKindErrorStall, ExitCPU: 1, ExitCode: 0,
		Reason: "runnable task stall",
		Msg:    "kworker/1:2[77] failed to run for 5.2s",
		Dump:   "CPU 1: nr_run=3\n\n",
	}
	got := ei.Report()
	for _, want := range []string{
		"EXIT: ERROR_STALL (kind 1026): runnable task stall",
		"exit cpu: 1",
		"message: kworker/1:2[77] failed to run for 5.2s",
		"debug dump:\nCPU 1: nr_run=3\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Report() missing %q:\n%s", want, got)
		}
	}
	unreg := ExitInfo{Kind: ExitKindUnreg, Reason: "unregistered from user space"}.Report()
	if strings.Contains(unreg, "exit code") || strings.Contains(unreg, "debug dump") {
		t.Errorf("a clean unregister should be one line, got:\n%s", unreg)
	}
}

func TestCString(t *testing.T) {
	if got := cString([]int8{'h', 'i', 0, 'x'}); got != "hi" {
		t.Errorf("cString = %q, want %q", got, "hi")
	}
	if got := cString([]byte("full")); got != "full" {
		t.Errorf("cString = %q, want %q", got, "full")
	}
}
