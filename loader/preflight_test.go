// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cilium/ebpf/btf"
)

func TestPreflightRefusals(t *testing.T) {
	noBTF := func() (*btf.Cache, error) { return nil, errors.New("no BTF") }
	tests := []struct {
		name  string
		host  Host
		want  ExitCode
		inMsg string
	}{
		{
			name:  "not root",
			host:  Host{EUID: 1000, Sysfs: fstest.MapFS{}, KernelBTF: noBTF},
			want:  ExitNotRoot,
			inMsg: "must run as root",
		},
		{
			name:  "no sched_ext",
			host:  Host{EUID: 0, Sysfs: fstest.MapFS{}, KernelBTF: noBTF},
			want:  ExitNoSchedExt,
			inMsg: "no sched_ext",
		},
		{
			name: "another scheduler",
			host: Host{EUID: 0, KernelBTF: noBTF, Sysfs: fstest.MapFS{
				"state":    {Data: []byte("enabled\n")},
				"root/ops": {Data: []byte("simple\n")},
			}},
			want:  ExitBusy,
			inMsg: `ops "simple"`,
		},
		{
			name: "scheduler still disabling",
			host: Host{EUID: 0, KernelBTF: noBTF, Sysfs: fstest.MapFS{
				"state": {Data: []byte("disabling\n")},
			}},
			want:  ExitBusy,
			inMsg: `state "disabling"`,
		},
		{
			name: "no kernel BTF",
			host: Host{EUID: 0, KernelBTF: noBTF, Sysfs: fstest.MapFS{
				"state": {Data: []byte("disabled\n")},
			}},
			want:  ExitNoSchedExt,
			inMsg: "BTF",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Preflight(tt.host)
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("Preflight() error = %v, want a *loader.Error", err)
			}
			if lerr.Code != tt.want {
				t.Errorf("code = %d, want %d (%v)", lerr.Code, tt.want, err)
			}
			if !strings.Contains(lerr.Msg, tt.inMsg) {
				t.Errorf("message %q does not mention %q", lerr.Msg, tt.inMsg)
			}
		})
	}
}

func TestExitCodesDistinct(t *testing.T) {
	codes := []ExitCode{ExitOK, ExitEjected, ExitUsage, ExitNotRoot, ExitNoSchedExt,
		ExitKernelTooOld, ExitBusy, ExitLoad, ExitAttach, ExitInternal}
	seen := map[ExitCode]bool{}
	for _, c := range codes {
		if seen[c] {
			t.Errorf("exit code %d used twice", c)
		}
		seen[c] = true
	}
}

func TestWaitDisabled(t *testing.T) {
	tests := []struct {
		state string
		want  bool
	}{
		{"disabled\n", true},
		{"disabling\n", false},
	}
	for _, tt := range tests {
		h := Host{Sysfs: fstest.MapFS{"state": {Data: []byte(tt.state)}}}
		if got := WaitDisabled(context.Background(), h, 100*time.Millisecond); got != tt.want {
			t.Errorf("WaitDisabled(%q) = %v, want %v", tt.state, got, tt.want)
		}
	}
}
