// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"
)

func TestPreflightRefusals(t *testing.T) {
	sys := fstest.MapFS{"kernel": {Mode: fs.ModeDir | 0o555}} // sysfs mounted
	tests := []struct {
		name    string
		host    Host
		want    error // the sentinel it wraps
		inMsg   string
		readBTF bool // the refusal comes only after reading the kernel's BTF
	}{
		{
			name:  "not root",
			host:  Host{Caps: 0, Sys: sys, Sysfs: fstest.MapFS{}},
			want:  ErrNotRoot,
			inMsg: "must run as root",
		},
		{
			name:  "sysfs not mounted",
			host:  Host{Caps: CapSysAdmin, Sys: fstest.MapFS{}, Sysfs: fstest.MapFS{}},
			want:  ErrNoSchedExt,
			inMsg: "/sys is not mounted (no /sys/kernel), so sched_ext cannot be found: mount it (mount -t sysfs sysfs /sys)",
		},
		{
			name:  "no sched_ext",
			host:  Host{Caps: CapSysAdmin, Sys: sys, Sysfs: fstest.MapFS{}},
			want:  ErrNoSchedExt,
			inMsg: "this kernel has no sched_ext (/sys/kernel/sched_ext/state missing)",
		},
		{
			name: "another scheduler",
			host: Host{Caps: CapSysAdmin, Sys: sys, Sysfs: fstest.MapFS{
				"state":    {Data: []byte("enabled\n")},
				"root/ops": {Data: []byte("simple\n")},
			}},
			want:  ErrBusy,
			inMsg: `ops "simple"`,
		},
		{
			name: "scheduler still disabling",
			host: Host{Caps: CapSysAdmin, Sys: sys, Sysfs: fstest.MapFS{
				"state": {Data: []byte("disabling\n")},
			}},
			want:  ErrBusy,
			inMsg: `state "disabling"`,
		},
		{
			name: "no kernel BTF",
			host: Host{Caps: CapSysAdmin, Sys: sys, Sysfs: fstest.MapFS{
				"state": {Data: []byte("disabled\n")},
			}},
			want:    ErrNoSchedExt,
			inMsg:   "BTF",
			readBTF: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readBTF := false
			tt.host.Kernel = func() (*Kernel, error) {
				readBTF = true
				return nil, errors.New("no BTF")
			}
			_, err := Preflight(tt.host)
			if readBTF != tt.readBTF {
				t.Errorf("kernel BTF read = %v, want %v", readBTF, tt.readBTF)
			}
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("Preflight() error = %v, want a *loader.Error", err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v does not wrap %v", err, tt.want)
			}
			if !strings.Contains(lerr.Msg, tt.inMsg) {
				t.Errorf("message %q does not mention %q", lerr.Msg, tt.inMsg)
			}
		})
	}
}

// A sub-scheduler needs the cid form: a kernel without it (7.1) is refused
// with its own error before the cgroup is looked at.
func TestPreflightSubNoCidForm(t *testing.T) {
	h := Host{
		Caps:  CapSysAdmin,
		Sys:   fstest.MapFS{"kernel": {Mode: fs.ModeDir | 0o555}},
		Sysfs: fstest.MapFS{"state": {Data: []byte("enabled\n")}},
		Kernel: func() (*Kernel, error) {
			return &Kernel{HasReenq: true}, nil
		},
	}
	_, _, err := PreflightSub(h, "no-such-cgroup")
	if !errors.Is(err, ErrNoCidForm) || errors.Is(err, ErrNoCgroup) {
		t.Fatalf("PreflightSub() on a kernel without the cid form = %v, want ErrNoCidForm", err)
	}
	if !strings.Contains(err.Error(), "Linux 7.2 or newer") {
		t.Errorf("message %q does not say which kernel to boot", err)
	}
}

// Each error wraps its sentinel and its cause, so errors.Is finds both.
func TestErrorUnwrap(t *testing.T) {
	cause := errors.New("EBUSY")
	err := fmt.Errorf("attach: %w", newError(ErrBusy, cause, "another scheduler"))
	if !errors.Is(err, ErrBusy) || !errors.Is(err, cause) || errors.Is(err, ErrLoad) {
		t.Errorf("errors.Is on %v: want ErrBusy and the cause, not ErrLoad", err)
	}
	if !errors.Is(newError(ErrInternal, nil, "x"), ErrInternal) {
		t.Error("an error without a cause does not wrap its sentinel")
	}
}

// threadID returns the id of a live thread of this process other than its
// leader, parked until the test ends.
func threadID(t *testing.T) int {
	t.Helper()
	tids := make(chan int)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// Two threads held at once: at most one of them is the leader.
	for range 2 {
		go func() {
			runtime.LockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
	}
	for range 2 {
		if tid := <-tids; tid != os.Getpid() {
			return tid
		}
	}
	t.Fatal("no thread other than the leader")
	return 0
}

func TestProcExists(t *testing.T) {
	tests := []struct {
		pid  int
		want bool
	}{
		{os.Getpid(), true},
		{threadID(t), false}, // a thread's id is no tgid: -d would match nothing
		{0, false},           // our process group, not a pid
		{-1, false},          // every process we may signal
		{1<<22 + 1, false},   // above PID_MAX_LIMIT: never a process
	}
	for _, tt := range tests {
		if got := procExists(tt.pid); got != tt.want {
			t.Errorf("procExists(%d) = %v, want %v", tt.pid, got, tt.want)
		}
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

func TestCapsCanLoad(t *testing.T) {
	tests := []struct {
		caps Caps
		want bool
	}{
		{0, false},
		{CapBPF, false},
		{CapPerfmon, false},
		{CapBPF | CapPerfmon, true},
		{CapSysAdmin, true},
		{^Caps(0) &^ (CapSysAdmin | CapBPF), false},
	}
	for _, tt := range tests {
		if got := tt.caps.CanLoad(); got != tt.want {
			t.Errorf("Caps(%#x).CanLoad() = %v, want %v", uint64(tt.caps), got, tt.want)
		}
	}
}
