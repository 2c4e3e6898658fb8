// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.cfg.DispatchBatch != 1 || o.cfg.SliceUs != 0 || o.cfg.ExitDumpLen != loader.MaxExitDumpLen {
				t.Errorf("defaults = %+v", o.cfg)
			}
			if o.statsSocket != stats.DefaultSocket || o.socketChosen || o.metricsAddr != "" || o.statsInterval != time.Second || o.quiet {
				t.Errorf("stats defaults = %+v", o)
			}
		}},
		{name: "stats services", args: []string{"--stats-socket", "", "--metrics-addr", ":9090", "--quiet"},
			check: func(t *testing.T, o options) {
				if o.statsSocket != "" || !o.socketChosen || o.metricsAddr != ":9090" || !o.quiet {
					t.Errorf("options = %+v", o)
				}
			}},
		{name: "bad metrics address", args: []string{"--metrics-addr", "9090"}, wantErr: "--metrics-addr"},
		{name: "socket path too long", args: []string{"--stats-socket", "/" + strings.Repeat("x", 120)}, wantErr: "at most 107"},
		{name: "short and long forms", args: []string{"-s", "5000", "--batch", "8", "-p", "--disallow-tgid=42", "-S"},
			check: func(t *testing.T, o options) {
				c := o.cfg
				if c.SliceUs != 5000 || c.DispatchBatch != 8 || !c.PartialSwitch || c.DisallowTgid != 42 || !c.SuppressDump {
					t.Errorf("cfg = %+v", c)
				}
			}},
		{name: "qmap feature flags", args: []string{"-H", "-P", "-M", "-I", "-F", "4", "--remote-reenq"},
			check: func(t *testing.T, o options) {
				c := o.cfg
				if !c.HighpriBoost || !c.PrintDSQs || !c.PrintMsgs || !c.AlwaysEnqImmed || c.ImmedStressNth != 4 || !c.RemoteReenq {
					t.Errorf("cfg = %+v", c)
				}
			}},
		{name: "fault injection", args: []string{"-e", "10", "--stall-user-nth", "3", "-T", "4", "-l", "50"},
			check: func(t *testing.T, o options) {
				c := o.cfg
				if c.ErrorAfterEnq != 10 || c.StallUserNth != 3 || c.StallKernelNth != 4 || c.DispatchLoopAfter != 50 {
					t.Errorf("cfg = %+v", c)
				}
			}},
		{name: "disallow self", args: []string{"-d", "-1"}, check: func(t *testing.T, o options) {
			if o.cfg.DisallowTgid != int32(os.Getpid()) {
				t.Errorf("-d -1 = %d, want the loader's pid %d", o.cfg.DisallowTgid, os.Getpid())
			}
		}},
		{name: "immed stress without -I", args: []string{"-F", "4"}, wantErr: "needs -I"},
		{name: "huge error count", args: []string{"-e", "99999999999"}, wantErr: "-e/--error-after 99999999999 out of range"},
		{name: "batch zero", args: []string{"-b", "0"}, wantErr: "-b/--batch 0 out of range"},
		{name: "negative slice", args: []string{"-s", "-5"}, wantErr: "invalid value"},
		{name: "huge slice", args: []string{"-s", "99999999999"}, wantErr: "too long"},
		{name: "malformed batch", args: []string{"-b", "lots"}, wantErr: "invalid value"},
		{name: "dump too long", args: []string{"-D", "40000"}, wantErr: "-D/--exit-dump-len 40000 out of range"},
		{name: "negative tgid", args: []string{"-d", "-3"}, wantErr: "-d/--disallow-tgid -3 out of range"},
		{name: "unknown flag", args: []string{"--frobnicate"}, wantErr: "not defined"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "tiny stats interval", args: []string{"--stats-interval", "1ns"}, wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			tt.check(t, o)
		})
	}
}

// Refusals print one line naming the cause, no stack trace, and use the
// exit code that names it.
func TestRunRefusals(t *testing.T) {
	noBTF := func() (*btf.Cache, error) { return nil, errors.New("no BTF") }
	tests := []struct {
		name string
		args []string
		host loader.Host
		want loader.ExitCode
	}{
		{"bad flag", []string{"-b", "0"}, loader.Host{}, loader.ExitUsage},
		{"not root", nil, loader.Host{EUID: 1000, Sysfs: fstest.MapFS{}, KernelBTF: noBTF}, loader.ExitNotRoot},
		{"no sched_ext", nil, loader.Host{Sysfs: fstest.MapFS{}, KernelBTF: noBTF}, loader.ExitNoSchedExt},
		{"busy", nil, loader.Host{KernelBTF: noBTF, Sysfs: fstest.MapFS{"state": {Data: []byte("enabled")}}}, loader.ExitBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tt.args, &stdout, &stderr, tt.host)
			if got != tt.want {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "scx-qmap-go: ") {
				t.Errorf("want one 'scx-qmap-go: ...' line, got:\n%s", stderr.String())
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"--help"}, &stdout, &stderr, loader.Host{}); got != loader.ExitOK {
		t.Errorf("--help exit = %d, want 0", got)
	}
	for _, flag := range []string{"-slice-us", "-batch", "-partial", "-exit-dump-len", "-stats-interval",
		"-highpri-boost", "-print-dsqs-events", "-print-msgs", "-always-enq-immed", "-immed-stress-nth",
		"-remote-reenq", "-error-after", "-stall-user-nth", "-stall-kernel-nth", "-dispatch-loop-after",
		"-stats-socket", "-metrics-addr", "-quiet", "scx-qmap-go stats"} {
		if !strings.Contains(stderr.String(), flag) {
			t.Errorf("--help does not list %s", flag)
		}
	}
	stdout.Reset()
	if got := run(context.Background(), []string{"-V"}, &stdout, &stderr, loader.Host{}); got != loader.ExitOK ||
		!strings.HasPrefix(stdout.String(), "scx-qmap-go ") {
		t.Errorf("-V = %d, %q", got, stdout.String())
	}
}

func FuzzParseFlags(f *testing.F) {
	for _, seed := range []string{"-s 5000", "--batch 8 -p", "-D 40000", "-d -1", "--stats-interval 2s", "-b", "--=x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var stderr bytes.Buffer
		o, err := parseFlags(strings.Fields(line), &stderr)
		if err == nil {
			if verr := o.cfg.Validate(); verr != nil {
				t.Errorf("parseFlags accepted %q but Validate refuses: %v", line, verr)
			}
		}
	})
}

// On a host without sched_ext (like the development machine) the real host
// checks refuse with the no-sched_ext code.
func TestRealHostWithoutSchedExt(t *testing.T) {
	if _, err := os.Stat(loader.SysfsRoot); err == nil {
		t.Skip("this kernel has sched_ext")
	}
	host := loader.RealHost()
	host.EUID = 0 // reach the sysfs check even when not root
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), nil, &stdout, &stderr, host); got != loader.ExitNoSchedExt {
		t.Errorf("exit code = %d, want %d; stderr:\n%s", got, loader.ExitNoSchedExt, stderr.String())
	}
}
