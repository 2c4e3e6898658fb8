// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/spf13/pflag"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
	"github.com/scx-qmap-go/scx-qmap-go/version"
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
			if o.statsSocket != stats.DefaultSocket || o.socketChosen || o.metricsAddr != "" || o.statsInterval != time.Second ||
				o.quiet || o.printEvery != 0 || o.monitor != 0 {
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
		{name: "latency budget", args: []string{"-L", "2000"}, check: func(t *testing.T, o options) {
			if o.cfg.LatBudgetUs != 2000 {
				t.Errorf("-L 2000: LatBudgetUs = %d", o.cfg.LatBudgetUs)
			}
		}},
		{name: "latency mode", args: []string{"--latency"}, check: func(t *testing.T, o options) {
			if o.cfg.LatBudgetUs != latencyBudgetUs || !o.cfg.RemoteReenq {
				t.Errorf("--latency: LatBudgetUs = %d, RemoteReenq = %v", o.cfg.LatBudgetUs, o.cfg.RemoteReenq)
			}
		}},
		{name: "latency mode with a budget", args: []string{"-L", "500", "--latency"}, check: func(t *testing.T, o options) {
			if o.cfg.LatBudgetUs != 500 || !o.cfg.RemoteReenq {
				t.Errorf("-L 500 --latency: LatBudgetUs = %d, RemoteReenq = %v", o.cfg.LatBudgetUs, o.cfg.RemoteReenq)
			}
		}},
		{name: "latency mode without a budget", args: []string{"--latency", "-L", "0"}, wantErr: "drop -L 0"},
		{name: "queue by pid", args: []string{"--queue-by", "pid"}, check: func(t *testing.T, o options) {
			if o.cfg.QueueBy != loader.QueueByPID {
				t.Errorf("--queue-by pid: QueueBy = %s", o.cfg.QueueBy)
			}
		}},
		{name: "queue by a bad key", args: []string{"--queue-by", "name"}, wantErr: "want tid, pid, auto"},
		{name: "a bad form", args: []string{"--form", "cpus"}, wantErr: "want cid, cpu, auto"},
		{name: "latency budget too short", args: []string{"-L", "50"}, wantErr: "too short"},
		{name: "latency budget not under the slice", args: []string{"-s", "1000", "--lat-budget-us", "1000"}, wantErr: "shorter than the slice"},
		{name: "latency budget huge", args: []string{"-L", "99999999999"}, wantErr: "too long"},
		{name: "immed stress without -I", args: []string{"-F", "4"}, wantErr: "needs -I"},
		{name: "print DSQs but quiet", args: []string{"--quiet", "--print-dsqs-events"}, wantErr: "--quiet conflicts with --stats and -P"},
		{name: "stats but quiet", args: []string{"--quiet", "--stats", "2"}, wantErr: "--quiet conflicts with --stats"},
		{name: "-P prints every second", args: []string{"-P"}, check: func(t *testing.T, o options) {
			if o.printEvery != 1 {
				t.Errorf("-P: printEvery = %v, want 1", o.printEvery)
			}
		}},
		{name: "-P at the --stats interval", args: []string{"--stats", "0.5", "-P"}, check: func(t *testing.T, o options) {
			if o.printEvery != 0.5 || !o.cfg.PrintDSQs {
				t.Errorf("--stats 0.5 -P: printEvery = %v, PrintDSQs %v", o.printEvery, o.cfg.PrintDSQs)
			}
		}},
		{name: "stats and monitor intervals", args: []string{"--stats", "2.5", "--monitor=1"}, check: func(t *testing.T, o options) {
			if o.printEvery != 2.5 || o.monitor != 1 {
				t.Errorf("printEvery %v, monitor %v", o.printEvery, o.monitor)
			}
		}},
		{name: "stats too often", args: []string{"--stats", "0.001"}, wantErr: "--stats 0.001 out of range"},
		{name: "monitor negative", args: []string{"--monitor", "-1"}, wantErr: "--monitor -1 out of range"},
		{name: "monitor without a socket", args: []string{"--monitor", "1", "--stats-socket="}, wantErr: "--monitor reads the --stats-socket"},
		// getopt: short options bundle, a value may follow its letter.
		{name: "bundled", args: []string{"-pSHb8", "-Ivs", "3000"}, check: func(t *testing.T, o options) {
			c := o.cfg
			if !c.PartialSwitch || !c.SuppressDump || !c.HighpriBoost || c.DispatchBatch != 8 ||
				!c.AlwaysEnqImmed || !o.verbose || c.SliceUs != 3000 {
				t.Errorf("cfg = %+v, verbose %v", c, o.verbose)
			}
		}},
		// What Go's flag package accepted keeps working.
		{name: "old spellings", args: []string{"-slice-us", "4000", "-remote-reenq", "--b", "4", "-quiet", "-stats-socket=/tmp/s", "-d", "-1"},
			check: func(t *testing.T, o options) {
				c := o.cfg
				if c.SliceUs != 4000 || !c.RemoteReenq || c.DispatchBatch != 4 || !o.quiet || o.statsSocket != "/tmp/s" ||
					c.DisallowTgid != int32(os.Getpid()) {
					t.Errorf("cfg = %+v, options %+v", c, o)
				}
			}},
		{name: "a value that looks like a flag", args: []string{"--stats-socket", "-quiet"}, check: func(t *testing.T, o options) {
			if o.statsSocket != "-quiet" || o.quiet {
				t.Errorf("--stats-socket -quiet: socket %q, quiet %v", o.statsSocket, o.quiet)
			}
		}},
		{name: "-d 0 is off", args: []string{"-d", "0"}, check: func(t *testing.T, o options) {
			if o.cfg.DisallowTgid != 0 {
				t.Errorf("-d 0 = %d, want 0", o.cfg.DisallowTgid)
			}
		}},
		{name: "huge error count", args: []string{"-e", "99999999999"}, wantErr: `"99999999999": value out of range`},
		{name: "error count over 2^31", args: []string{"-e", "4000000000"}, wantErr: "-e/--error-after 4000000000 out of range"},
		{name: "batch zero", args: []string{"-b", "0"}, wantErr: "-b/--batch 0 out of range"},
		{name: "negative slice", args: []string{"-s", "-5"}, wantErr: "invalid argument"},
		{name: "huge slice", args: []string{"-s", "99999999999"}, wantErr: "too long"},
		{name: "malformed batch", args: []string{"-b", "lots"}, wantErr: "invalid argument"},
		{name: "dump too long", args: []string{"-D", "40000"}, wantErr: "-D/--exit-dump-len 40000 out of range"},
		{name: "negative tgid", args: []string{"-d", "-3"}, wantErr: "-d/--disallow-tgid -3 out of range"},
		{name: "unknown flag", args: []string{"--frobnicate"}, wantErr: "unknown flag: --frobnicate"},
		{name: "unknown letter", args: []string{"-pZ"}, wantErr: "unknown shorthand flag: 'Z'"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
		{name: "tiny stats interval", args: []string{"--stats-interval", "1ns"}, wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
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

// Every refusal prints one line naming the cause (plus a "cause:" line
// where a call into the kernel failed), no usage text or stack trace, uses
// the exit code that names it, and comes before anything is loaded or served.
func TestRunRefusals(t *testing.T) {
	// The kernel as sched_ext before Linux 7.1: no scx_bpf_dsq_reenq().
	preReenq := &loader.Kernel{Enums: map[string]uint64{}}
	tests := []struct {
		name      string
		args      []string
		host      func(h *loader.Host) // changes to a root host with sched_ext disabled, every pid alive, and a pre-7.1 kernel BTF
		want      exitCode
		inMsg     string
		cause     bool // a second "scx-qmap-go: cause: ..." line follows
		readsBTF  bool // the refusal needs the kernel's BTF
		checksPid bool // -d's pid is looked up
	}{
		{name: "malformed value", args: []string{"-b", "lots"}, want: exitUsage,
			inMsg: `invalid argument "lots" for "-b, --batch" flag`},
		{name: "value out of range", args: []string{"-b", "0"}, want: exitUsage,
			inMsg: "-b/--batch 0 out of range"},
		{name: "missing value", args: []string{"-p", "-b"}, want: exitUsage,
			inMsg: "flag needs an argument: 'b' in -b"},
		{name: "unknown flag", args: []string{"--frobnicate"}, want: exitUsage,
			inMsg: "unknown flag: --frobnicate"},
		{name: "stray argument", args: []string{"-p", "extra"}, want: exitUsage,
			inMsg: `unexpected argument "extra"`},
		{name: "-P with --quiet", args: []string{"-P", "--quiet"}, want: exitUsage,
			inMsg: "--quiet conflicts with --stats and -P/--print-dsqs-events"},
		{name: "FIFO too shallow", args: []string{"--fifo-depth", "8"}, want: exitUsage,
			inMsg: "--fifo-depth 8 out of range: use 64..1048576, or 0 for 4096"},
		{name: "dispatch hold too long", args: []string{"--dispatch-hold-us", "1001"}, want: exitUsage,
			inMsg: "--dispatch-hold-us 1001 out of range: use 0..1000"},
		{name: "-d with -c", args: []string{"-c", "/sys/fs/cgroup/x", "-d", "1"}, want: exitUsage,
			inMsg: "-d/--disallow-tgid works on the root scheduler only"},
		{name: "-F without -I", args: []string{"-F", "4"}, want: exitUsage,
			inMsg: "-F/--immed-stress-nth needs -I/--always-enq-immed"},
		{name: "slice too long", args: []string{"-s", "99999999999"}, want: exitUsage,
			inMsg: "-s/--slice-us 99999999999 is too long"},
		{name: "not root", host: func(h *loader.Host) { h.Caps = loader.CapBPF }, want: exitNotRoot, // CAP_PERFMON missing
			inMsg: "must run as root"},
		{name: "sysfs not mounted", host: func(h *loader.Host) { h.Sys, h.Sysfs = fstest.MapFS{}, fstest.MapFS{} },
			want: exitNoSchedExt, inMsg: "/sys is not mounted (no /sys/kernel), so sched_ext cannot be found: mount it (mount -t sysfs sysfs /sys)"},
		{name: "no sched_ext", host: func(h *loader.Host) { h.Sysfs = fstest.MapFS{} },
			want: exitNoSchedExt, inMsg: "this kernel has no sched_ext (/sys/kernel/sched_ext/state missing)"},
		{name: "no kernel BTF",
			host: func(h *loader.Host) {
				h.Kernel = func() (*loader.Kernel, error) { return nil, errors.New("no BTF") }
			},
			want: exitNoSchedExt, inMsg: "cannot read the kernel's BTF", cause: true, readsBTF: true},
		{name: "kernel too old", want: exitKernelTooOld, inMsg: "lacks the scx_bpf_dsq_reenq() kfunc", readsBTF: true},
		{name: "busy",
			host: func(h *loader.Host) {
				h.Sysfs = fstest.MapFS{"state": {Data: []byte("enabled\n")}, "root/ops": {Data: []byte("simple\n")}}
			},
			want: exitBusy, inMsg: `another sched_ext scheduler is active (state "enabled", ops "simple")`},
		{name: "no target", args: []string{"-d", "4242"}, host: func(h *loader.Host) { h.ProcExists = func(int) bool { return false } },
			want: exitNoTarget, inMsg: "-d/--disallow-tgid 4242: no such process (a thread id is no tgid: check the pid, or use -1 for this loader)",
			checksPid: true},
		// -d passing its check: the run goes on to the next refusal.
		{name: "-d 0 is off, not a pid", args: []string{"-d", "0"}, host: func(h *loader.Host) { h.ProcExists = func(int) bool { return false } },
			want: exitKernelTooOld, inMsg: "kernel too old", readsBTF: true},
		{name: "-d live pid", args: []string{"--disallow-tgid", "4242"}, want: exitKernelTooOld, inMsg: "kernel too old",
			readsBTF: true, checksPid: true},
	}
	covered := map[exitCode]bool{}
	for _, tt := range tests {
		covered[tt.want] = true
		t.Run(tt.name, func(t *testing.T) {
			h := loader.Host{
				Caps:       loader.CapSysAdmin,
				Sys:        fstest.MapFS{"kernel": {Mode: fs.ModeDir | 0o555}},
				Sysfs:      fstest.MapFS{"state": {Data: []byte("disabled\n")}},
				Kernel:     func() (*loader.Kernel, error) { return preReenq, nil },
				ProcExists: func(int) bool { return true },
			}
			if tt.host != nil {
				tt.host(&h)
			}
			var readsBTF, checksPid bool
			kernel, procExists := h.Kernel, h.ProcExists
			h.Kernel = func() (*loader.Kernel, error) { readsBTF = true; return kernel() }
			h.ProcExists = func(pid int) bool { checksPid = true; return procExists(pid) }
			// A socket of its own: were the refusal late, the socket would be served.
			sock := filepath.Join(t.TempDir(), "stats.sock")
			args := append([]string{"--stats-socket", sock}, tt.args...)

			var stdout, stderr bytes.Buffer
			got := run(context.Background(), args, &stdout, &stderr, h)
			if got != tt.want {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			checkRefusal(t, stderr.String(), tt.inMsg, tt.cause)
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if readsBTF != tt.readsBTF {
				t.Errorf("kernel BTF read = %v, want %v", readsBTF, tt.readsBTF)
			}
			if checksPid != tt.checksPid {
				t.Errorf("pid looked up = %v, want %v", checksPid, tt.checksPid)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stats socket %s exists after a refusal (%v)", sock, err)
			}
		})
	}
	for _, c := range []exitCode{exitUsage, exitNotRoot, exitNoSchedExt,
		exitKernelTooOld, exitBusy, exitNoTarget} {
		if !covered[c] {
			t.Errorf("no case refuses with exit code %d", c)
		}
	}
}

// checkRefusal wants @stderr to be one "scx-qmap-go: " line containing
// @inMsg, followed by a "scx-qmap-go: cause: " line exactly when @cause.
func checkRefusal(t *testing.T, stderr, inMsg string, cause bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	want := 1
	if cause {
		want = 2
	}
	if len(lines) != want || !strings.HasPrefix(lines[0], "scx-qmap-go: ") {
		t.Fatalf("want %d 'scx-qmap-go: ...' line(s), got:\n%s", want, stderr)
	}
	if !strings.Contains(lines[0], inMsg) {
		t.Errorf("message %q does not contain %q", lines[0], inMsg)
	}
	if cause && !strings.HasPrefix(lines[1], "scx-qmap-go: cause: ") {
		t.Errorf("second line %q is not a cause", lines[1])
	}
}

// --help lists every option once, short and long spelling together, in
// its group; -V names the build; the man page has every option too.
func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"--help"}, &stdout, &stderr, loader.Host{}); got != exitOK || stderr.Len() > 0 {
		t.Errorf("--help exit = %d, stderr %q; want 0 and nothing", got, stderr.String())
	}
	help := stdout.String()
	var o options
	fs, groups := newFlags(&o)
	fs.VisitAll(func(f *pflag.Flag) {
		spelling := "      --" + f.Name
		if f.Shorthand != "" {
			spelling = "  -" + f.Shorthand + ", --" + f.Name
		}
		n := 0
		for line := range strings.Lines(help) {
			if strings.HasPrefix(line, spelling+" ") || strings.HasPrefix(line, spelling+"\n") {
				n++
			}
		}
		switch {
		case f.Hidden && n != 0:
			t.Errorf("--help shows the hidden --%s", f.Name)
		case !f.Hidden && n != 1:
			t.Errorf("--help lists --%s %d times (want once, as %q)", f.Name, n, spelling)
		}
	})
	for _, g := range groups {
		if !strings.Contains(help, "\n"+g.title+":\n") {
			t.Errorf("--help has no %q group", g.title)
		}
	}
	for _, e := range exitCodes {
		if !strings.Contains(help, fmt.Sprintf("%2d  %s", e.code, e.meaning)) {
			t.Errorf("--help does not explain exit status %d", e.code)
		}
	}

	stdout.Reset()
	if got := run(context.Background(), []string{"-V"}, &stdout, &stderr, loader.Host{}); got != exitOK ||
		stdout.String() != "scx-qmap-go "+version.String()+"\n" {
		t.Errorf("-V = %d, %q", got, stdout.String())
	}

	stdout.Reset()
	if got := run(context.Background(), []string{"--man-page"}, &stdout, &stderr, loader.Host{}); got != exitOK {
		t.Errorf("--man-page exit = %d", got)
	}
	man := stdout.String()
	if !strings.HasPrefix(man, ".TH SCX-QMAP-GO 8 ") {
		t.Errorf("man page starts %q", man[:min(len(man), 40)])
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if in := strings.Contains(man, `\fB\-\-`+troff(f.Name)+`\fR`); in == f.Hidden {
			t.Errorf("man page lists --%s: %v, want %v", f.Name, in, !f.Hidden)
		}
	})
	for _, e := range exitCodes {
		if !strings.Contains(man, fmt.Sprintf(".B %d\n%s\n", e.code, troff(e.meaning))) {
			t.Errorf("man page does not explain exit status %d", e.code)
		}
	}
}

// --help-stats describes every field the socket serves.
func TestHelpStats(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"--help-stats"}, &stdout, &stderr, loader.Host{}); got != exitOK {
		t.Fatalf("--help-stats exit = %d", got)
	}
	for _, c := range stats.Counters {
		if !strings.Contains(stdout.String(), "  "+c.Name+" (u64) ") || !strings.Contains(stdout.String(), c.Help) {
			t.Errorf("--help-stats does not describe %s", c.Name)
		}
	}
}

// No long name may read as a bundle of short options, or oldSpellings
// would turn a bundle into it. -help is the exception that Go's flag package
// made: as a bundle it is -h, then -e with the value "lp".
func TestOldSpellingsUnambiguous(t *testing.T) {
	var o options
	fs, _ := newFlags(&o)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		for _, c := range f.Name {
			if fs.ShorthandLookup(string(c)) == nil {
				return
			}
		}
		t.Errorf("--%s is also a bundle of short options", f.Name)
	})
}

func FuzzParseFlags(f *testing.F) {
	for _, seed := range []string{"-s 5000", "--batch 8 -p", "-D 40000", "-d -1", "--stats-interval 2s", "-b", "--=x",
		"-pSb8", "-slice-us=9", "--s 1", "--stats 1e9", "-- -p"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := parseFlags(strings.Fields(line))
		if err != nil {
			return
		}
		// What it accepts, the loader can use as it is.
		c := o.cfg
		if c.DispatchBatch < 1 || c.ExitDumpLen > loader.MaxExitDumpLen || c.SliceUs > 10_000_000 ||
			c.DisallowTgid < 0 || (c.LatBudgetUs > 0 && (c.LatBudgetUs < 100 || c.LatBudgetUs > 10_000_000)) ||
			(c.LatBudgetUs > 0 && c.SliceUs > 0 && c.LatBudgetUs >= c.SliceUs) ||
			o.printEvery < 0 || o.printEvery > 3600 || o.monitor < 0 || o.monitor > 3600 {
			t.Errorf("parseFlags accepted %q as %+v", line, c)
		}
	})
}

func TestExitCodes(t *testing.T) {
	seen := map[exitCode]bool{}
	for _, c := range exitCodes {
		if seen[c.code] {
			t.Errorf("exit code %d documented twice", c.code)
		}
		seen[c.code] = true
	}
	mapped := map[exitCode]bool{}
	for _, e := range loaderExits {
		if mapped[e.code] {
			t.Errorf("exit code %d stands for two loader errors", e.code)
		}
		mapped[e.code] = true
	}
	tests := []struct {
		err  error
		want exitCode
	}{
		{&loader.Error{Kind: loader.ErrBusy, Msg: "busy"}, exitBusy},
		{fmt.Errorf("run: %w", &loader.Error{Kind: loader.ErrLoad, Err: errors.New("verifier")}), exitLoad},
		{&loader.Error{Kind: loader.ErrNoMemory}, exitNoMemory},
		{&loader.Error{Kind: loader.ErrInvalid}, exitUsage},
		{&cliError{code: exitNoTarget}, exitNoTarget},
		{&loader.Error{Kind: loader.ErrNoCgroup}, exitNoCgroup},
		{&loader.Error{Kind: loader.ErrNoCidForm}, exitNoCidForm},
		{&loader.Error{Kind: loader.ErrKernelTooOld}, exitKernelTooOld},
		{errors.New("something else"), exitInternal},
	}
	for _, tt := range tests {
		if got := exitCodeOf(tt.err); got != tt.want {
			t.Errorf("exitCodeOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// On a host without sched_ext (like the development machine) the real host
// checks refuse with the no-sched_ext code.
func TestRealHostWithoutSchedExt(t *testing.T) {
	if _, err := os.Stat(loader.SysfsRoot); err == nil {
		t.Skip("this kernel has sched_ext")
	}
	host := loader.RealHost()
	host.Caps = loader.CapSysAdmin // reach the sysfs check even when not root
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), nil, &stdout, &stderr, host); got != exitNoSchedExt {
		t.Errorf("exit code = %d, want %d; stderr:\n%s", got, exitNoSchedExt, stderr.String())
	}
}

// Each instance's stats show its own scheduler's kernel events: a child's
// directory is below its parent's.
func TestSchedDir(t *testing.T) {
	tests := []struct {
		target *loader.SubTarget
		want   string
	}{
		{nil, "root"},
		{&loader.SubTarget{ParentDir: "root", ID: 54}, "root/sub/sub-54"},
		{&loader.SubTarget{ParentDir: "root/sub/sub-54", ID: 80}, "root/sub/sub-54/sub/sub-80"},
	}
	for _, tt := range tests {
		if got := schedDir(tt.target); got != tt.want {
			t.Errorf("schedDir(%+v) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
