// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// standIn is a vng on PATH for the runner's tests. Under --disable-kvm it
// behaves as STANDIN_TCG says (STANDIN_SINGLE, default works, when QEMU
// is asked for single-threaded TCG), otherwise as STANDIN_KVM says:
//
//	works           boots, runs the command (prints "ran: CMD"), exits 0
//	internal-error  prints QEMU's KVM internal error, then hangs (QEMU paused)
//	msr             prints QEMU's "failed to set MSR" and exits 1
//	silent          prints nothing and hangs
//	stalls          prints kernel lines, then hangs before the command
//	stalls-first    as stalls the first time it is called, then as works
//	wedged          starts the command, logs a hung task, then hangs
//	wedged-recovers starts the command, logs a hung task, then finishes
//	int3            starts the command, oopses on an int3 and panics
//	int3-first      as int3 the first time it is called, then as works
//
// Every call appends "kvm", "tcg", "tcg-single" or "tcg-icount" to
// $STANDIN_LOG.
const standIn = `#!/bin/bash
mode=$STANDIN_KVM accel=kvm
for a in "$@"; do [ "$a" = --disable-kvm ] && { mode=$STANDIN_TCG; accel=tcg; }; done
for a in "$@"; do [ "$a" = "--qemu-opts=-accel tcg,thread=single" ] && { mode=${STANDIN_SINGLE:-works}; accel=tcg-single; }; done
for a in "$@"; do [ "$a" = "--qemu-opts=-accel tcg,thread=single -icount shift=0,sleep=off" ] && { mode=works; accel=tcg-icount; }; done
echo $accel >>"$STANDIN_LOG"
cmd=${!#}
case $mode in
works)
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "virtme-init: starting script" >&2
	echo "ran: $cmd"
	exit 0 ;;
internal-error)
	echo "KVM internal error. Suberror: 1" >&2
	echo "extra data[0]: 0x0000000000000000" >&2
	echo "emulation failure" >&2
	echo "RAX=0000000000000000 RBX=0000000000000000" >&2
	exec sleep 1000 ;;
msr)
	echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0" >&2
	exit 1 ;;
silent)
	exec sleep 1000 ;;
stalls-first)
	if [ -e "$STANDIN_LOG.stalled" ]; then
		echo "[    0.000000] Linux version 7.2.0" >&2
		echo "virtme-init: starting script" >&2
		echo "ran: $cmd"
		exit 0
	fi
	touch "$STANDIN_LOG.stalled"
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "[    1.827706] hpet0: 3 comparators, 64-bit 100.000000 MHz counter" >&2
	exec sleep 1000 ;;
stalls)
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "[    1.827706] hpet0: 3 comparators, 64-bit 100.000000 MHz counter" >&2
	exec sleep 1000 ;;
wedged|wedged-recovers)
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "virtme-init: starting script" >&2
	echo "[  130.000000] INFO: task kworker/0:1:12 blocked for more than 120 seconds." >&2
	echo "[  130.000001] Call Trace:" >&2
	[ $mode = wedged ] && exec sleep 1000
	sleep 0.2
	echo "ran: $cmd"
	exit 0 ;;
int3-first)
	if [ -e "$STANDIN_LOG.int3" ]; then
		echo "[    0.000000] Linux version 7.2.0" >&2
		echo "virtme-init: starting script" >&2
		echo "ran: $cmd"
		exit 0
	fi
	touch "$STANDIN_LOG.int3"
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "virtme-init: starting script" >&2
	echo "[   50.000000] Oops: int3: 0000 [#1] SMP NOPTI" >&2
	exit 0 ;;
int3)
	echo "[    0.000000] Linux version 7.2.0" >&2
	echo "virtme-init: starting script" >&2
	echo "[   50.000000] Oops: int3: 0000 [#1] SMP NOPTI" >&2
	echo "[   50.000001] Kernel panic - not syncing: Fatal exception in interrupt" >&2
	exit 0 ;;
esac
exit 99
`

// standInPolicy is what the stand-in's QEMU main thread is raised to.
const standInPolicy = "SCHED_FIFO 1 (stand-in)"

// withStandIn puts the stand-in vng first on PATH, makes /dev/kvm look
// usable, and forgets any earlier KVM verdict. It returns the call log.
func withStandIn(t *testing.T, kvmMode, tcgMode string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vng"), []byte(standIn), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "calls")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("STANDIN_KVM", kvmMode)
	t.Setenv("STANDIN_TCG", tcgMode)
	t.Setenv("STANDIN_LOG", logPath)
	t.Setenv("SCX_VM_KVM", "")
	saved, savedRaise := openKVM, raiseQEMU
	openKVM = func() error { return nil }
	raiseQEMU = func(int) (string, error) { return standInPolicy, nil }
	markKVMBroken("")
	t.Cleanup(func() {
		openKVM, raiseQEMU = saved, savedRaise
		markKVMBroken("")
	})
	return logPath
}

func calls(t *testing.T, logPath string) string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), ",")
}

func TestRunFallsBackToTCG(t *testing.T) {
	tests := []struct {
		name     string
		kvmMode  string
		env      string // SCX_VM_KVM
		wantErr  string // "" for success
		wantLog  string // "" for no fallback line
		wantAcc  string
		wantBoot string // the stand-in's calls
	}{
		{name: "kvm works", kvmMode: "works", wantAcc: "KVM", wantBoot: "kvm"},
		{name: "internal error then pause", kvmMode: "internal-error", wantAcc: "TCG", wantBoot: "kvm,tcg",
			wantLog: "scx-vm: KVM cannot run guests here (KVM internal error. Suberror: 1); using TCG"},
		{name: "failed to set MSR", kvmMode: "msr", wantAcc: "TCG", wantBoot: "kvm,tcg",
			wantLog: "scx-vm: KVM cannot run guests here (qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0); using TCG"},
		{name: "silent hang", kvmMode: "silent", wantAcc: "TCG", wantBoot: "kvm,tcg",
			wantLog: "scx-vm: KVM cannot run guests here (no kernel output within 2s); using TCG"},
		{name: "forced TCG", kvmMode: "works", env: "0", wantAcc: "TCG", wantBoot: "tcg"},
		{name: "forced KVM fails", kvmMode: "internal-error", env: "1", wantBoot: "kvm",
			wantErr: "SCX_VM_KVM=1 forbids falling back to TCG"},
		{name: "bad override", kvmMode: "works", env: "yes", wantBoot: "",
			wantErr: `SCX_VM_KVM="yes": want 0 (TCG), 1 (KVM, no fallback) or unset`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := withStandIn(t, tt.kvmMode, "works")
			t.Setenv("SCX_VM_KVM", tt.env)
			var notices bytes.Buffer
			cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, AliveWithin: 2 * time.Second, Log: &notices}
			if tt.kvmMode == "internal-error" {
				// Must be noticed on the line itself, not by the alive bound.
				cfg.AliveWithin = time.Minute
			}
			start := time.Now()
			res, err := Run(context.Background(), cfg, "true")
			took := time.Since(start)
			if took > 10*time.Second {
				t.Errorf("Run took %v; the fallback must take seconds", took)
			}
			if got := calls(t, logPath); got != tt.wantBoot {
				t.Errorf("boots = %q, want %q", got, tt.wantBoot)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != 0 || !strings.Contains(res.Output, "ran: true") {
				t.Errorf("exit %d, output %q; want 0 and the command's output", res.ExitCode, res.Output)
			}
			if res.Accelerator != tt.wantAcc {
				t.Errorf("Accelerator = %q, want %q", res.Accelerator, tt.wantAcc)
			}
			// Only a TCG guest's timers run on QEMU's main thread.
			wantMain := standInPolicy
			if tt.wantAcc == "KVM" {
				wantMain = "as QEMU starts it (KVM)"
			}
			if res.MainThread != wantMain {
				t.Errorf("MainThread = %q, want %q", res.MainThread, wantMain)
			}
			if got := strings.TrimSpace(notices.String()); got != tt.wantLog {
				t.Errorf("notice = %q, want %q", got, tt.wantLog)
			}
		})
	}
}

// The instruction clock boots single-threaded TCG with QEMU's icount even
// where KVM works, and leaves KVM usable for the process's other boots.
func TestRunInstructionClock(t *testing.T) {
	logPath := withStandIn(t, "works", "works")
	cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, Log: &bytes.Buffer{}, InstructionClock: true}
	res, err := Run(context.Background(), cfg, "true")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Accelerator != "TCG (instruction clock)" || !strings.Contains(res.Output, "ran: true") {
		t.Errorf("Accelerator %q, output %q; want TCG (instruction clock) and the command's output", res.Accelerator, res.Output)
	}
	if acc, err := cfg.Accelerator(); acc != res.Accelerator || err != nil {
		t.Errorf("cfg.Accelerator() = %q, %v; want %q, as the boot said", acc, err, res.Accelerator)
	}
	cfg.InstructionClock = false
	if _, err := Run(context.Background(), cfg, "true"); err != nil {
		t.Fatalf("Run without the clock: %v", err)
	}
	if got := calls(t, logPath); got != "tcg-icount,kvm" {
		t.Errorf("boots = %q, want tcg-icount,kvm", got)
	}
}

// After one KVM failure, the process boots straight under TCG.
func TestRunRemembersBrokenKVM(t *testing.T) {
	logPath := withStandIn(t, "internal-error", "works")
	cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, Log: &bytes.Buffer{}}
	for i := 0; i < 2; i++ {
		if _, err := Run(context.Background(), cfg, "true"); err != nil {
			t.Fatalf("Run %d: %v", i, err)
		}
	}
	if got := calls(t, logPath); got != "kvm,tcg,tcg" {
		t.Errorf("boots = %q, want kvm,tcg,tcg", got)
	}
	acc, err := Accelerator()
	if err != nil || !strings.HasPrefix(acc, "TCG (KVM cannot run guests here: KVM internal error") {
		t.Errorf("Accelerator() = %q, %v; want TCG with the reason", acc, err)
	}
}

// A TCG boot that never shows a kernel line, or whose kernel goes quiet
// before the command starts (seen: a 4-vCPU boot that hung 1.8 s into the
// kernel's start-up), is killed after the alive bound, not at the boot's
// limit, and booted again once.
func TestRunQuietBootIsBounded(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string // "" when the second boot runs the command
	}{
		{"silent", "guest died twice before running the command (no kernel output within 1s)"},
		{"stalls", "guest died twice before running the command (no output for 1s while booting)"},
		{"stalls-first", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			logPath := withStandIn(t, "works", tt.mode)
			t.Setenv("SCX_VM_KVM", "0")
			var notices bytes.Buffer
			cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Hour, AliveWithin: time.Second, Log: &notices}
			start := time.Now()
			res, err := Run(context.Background(), cfg, "true")
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("Run took %v, want a few seconds", took)
			}
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Run error = %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || !strings.Contains(res.Output, "ran: true") || res.Attempts != 2):
				t.Errorf("Run = %+v, %v; want the command run in the second boot", res, err)
			}
			if got := calls(t, logPath); got != "tcg,tcg" {
				t.Errorf("boots = %q, want tcg,tcg", got)
			}
			if !strings.Contains(notices.String(), "booting again") {
				t.Errorf("notices = %q, want a retry notice", notices.String())
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	withStandIn(t, "works", "silent")
	t.Setenv("SCX_VM_KVM", "0")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Config{Kernel: "/stand-in/vmlinuz", AliveWithin: time.Hour, Log: &bytes.Buffer{}}, "true")
	if err == nil || !strings.Contains(err.Error(), "guest stopped") || time.Since(start) > 10*time.Second {
		t.Errorf("Run = %v after %v; want a prompt 'guest stopped'", err, time.Since(start))
	}
}

// A guest whose kernel says it is wedged is killed a grace period later,
// not at the boot's limit; one that finishes within the grace is not.
func TestRunWedged(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string
	}{
		{"wedged", `guest kernel wedged: "[  130.000000] INFO: task kworker/0:1:12 blocked for more than 120 seconds."`},
		{"wedged-recovers", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			withStandIn(t, "works", tt.mode)
			t.Setenv("SCX_VM_KVM", "0")
			cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Hour, WedgeGrace: 2 * time.Second, Log: &bytes.Buffer{}}
			start := time.Now()
			res, err := Run(context.Background(), cfg, "true")
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Run took %v, want about the 2 s grace", took)
			}
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(res.Output, "ran: true") {
					t.Errorf("Run = %v, output %q; want the command's output", err, res.Output)
				}
				return
			}
			if !errors.Is(err, ErrWedged) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Call Trace:") {
				t.Errorf("Run error = %v, want ErrWedged with %q and the console after it", err, tt.wantErr)
			}
		})
	}
}

// A TCG guest that oopses on an int3 is booted again once, under
// single-threaded TCG; a second int3 there is the guest's own and stands.
func TestRunStaleBreakpoint(t *testing.T) {
	tests := []struct {
		name, single string // the single-threaded boot's mode
		wantBoots    string
		wantAcc      string
		wantConsole  string
	}{
		{"retried and passes", "works", "tcg,tcg-single", "TCG (single-threaded)", ""},
		{"int3 again", "int3", "tcg,tcg-single", "TCG (single-threaded)", "Oops: int3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := withStandIn(t, "works", "int3")
			t.Setenv("SCX_VM_KVM", "0")
			t.Setenv("STANDIN_SINGLE", tt.single)
			var notices bytes.Buffer
			res, err := Run(context.Background(), Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, Log: &notices}, "true")
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := calls(t, logPath); got != tt.wantBoots {
				t.Errorf("boots = %q, want %q", got, tt.wantBoots)
			}
			if res.Accelerator != tt.wantAcc || res.Attempts != 2 {
				t.Errorf("Accelerator %q after %d attempts, want %q after 2", res.Accelerator, res.Attempts, tt.wantAcc)
			}
			if !strings.Contains(notices.String(), "booting again under single-threaded TCG") {
				t.Errorf("notices = %q, want the retry's reason", notices.String())
			}
			if got := strings.Contains(res.Console, "Oops: int3"); got != (tt.wantConsole != "") {
				t.Errorf("console has the oops: %v, want %v", got, tt.wantConsole != "")
			}
			if tt.wantConsole != "" && len(res.Problems(false)) == 0 {
				t.Error("a second int3 is no problem in Problems(); want it reported")
			}
		})
	}
}

// With Config.RaceRetries, a boot that hit the int3 race is booted again
// multi-threaded that many times before single-threaded TCG, each time with
// the command Config.Again gives from the boot before.
func TestRunRaceRetries(t *testing.T) {
	tests := []struct {
		name, tcg    string // the multi-threaded boots' mode
		retries      int
		wantBoots    string
		wantAcc      string
		wantNotice   string
		wantAgainFor int // boots Again was asked after
	}{
		{"retried multi-threaded", "int3-first", 1, "tcg,tcg", "TCG", "multi-threaded TCG (retry 1 of 1)", 1},
		{"retries used up", "int3", 1, "tcg,tcg,tcg-single", "TCG (single-threaded)", "single-threaded TCG", 2},
		{"no retries", "int3", 0, "tcg,tcg-single", "TCG (single-threaded)", "single-threaded TCG", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := withStandIn(t, "works", tt.tcg)
			t.Setenv("SCX_VM_KVM", "0")
			var notices bytes.Buffer
			asked := 0
			cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, Log: &notices, RaceRetries: tt.retries,
				Again: func(prev *Result) string {
					if !strings.Contains(prev.Console, "Oops: int3") {
						t.Errorf("Again given a boot without the race: console %q", prev.Console)
					}
					asked++
					return fmt.Sprintf("again-%d", asked)
				}}
			res, err := Run(context.Background(), cfg, "first")
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := calls(t, logPath); got != tt.wantBoots {
				t.Errorf("boots = %q, want %q", got, tt.wantBoots)
			}
			if res.Accelerator != tt.wantAcc {
				t.Errorf("Accelerator %q, want %q", res.Accelerator, tt.wantAcc)
			}
			if !strings.Contains(notices.String(), "booting again under "+tt.wantNotice) {
				t.Errorf("notices = %q, want %q", notices.String(), tt.wantNotice)
			}
			if want := fmt.Sprintf("ran: again-%d", tt.wantAgainFor); asked != tt.wantAgainFor || !strings.Contains(res.Output, want) {
				t.Errorf("Again asked %d times, output %q; want %d times and %q", asked, res.Output, tt.wantAgainFor, want)
			}
		})
	}
}

// A TCG boot whose QEMU main thread cannot be raised still runs, and says so.
func TestRunWhenMainThreadStaysLow(t *testing.T) {
	withStandIn(t, "works", "works")
	t.Setenv("SCX_VM_KVM", "0")
	raiseQEMU = func(int) (string, error) { return "", errors.New("operation not permitted") }
	var notices bytes.Buffer
	cfg := Config{Kernel: "/stand-in/vmlinuz", Timeout: time.Minute, AliveWithin: 2 * time.Second, Log: &notices}
	res, err := Run(context.Background(), cfg, "true")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 || res.MainThread != "as QEMU starts it: operation not permitted" {
		t.Errorf("exit %d, MainThread %q; want 0 and the reason it stayed low", res.ExitCode, res.MainThread)
	}
	if want := "QEMU's main thread keeps its policy, so the guest's timers may fire late: operation not permitted"; !strings.Contains(notices.String(), want) {
		t.Errorf("notices = %q, want one containing %q", notices.String(), want)
	}
}
