// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv names the part of this test binary that a test runs as a child
// process: signals and crashes end processes, so they are watched from outside.
const childEnv = "SCX_QMAP_GO_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		crashChild()
	case "signals":
		signalsChild()
	case "nohup":
		nohupChild()
	case "pipe":
		pipeChild()
	}
	os.Exit(99) // unknown part, or it did not end as it should
}

// runChild runs @part of this binary, under the command @wrap if not
// empty, and returns how it ended and its stderr.
func runChild(t *testing.T, part, wrap string) (*os.ProcessState, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	if wrap != "" {
		cmd = exec.Command(wrap, os.Args[0])
	}
	cmd.Env = append(os.Environ(), childEnv+"="+part, "GOTRACEBACK=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := startAtDefaults(cmd)
	if err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the %s child did not end within 30 s; stderr:\n%s", part, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("waiting for the child: %v", err)
	}
	return cmd.ProcessState, stderr.String()
}

// startAtDefaults starts @cmd with SIGHUP and SIGPIPE at their default
// actions. The tests may run under nohup, or a runner that ignores SIGPIPE,
// and a child inherits what is ignored; caught here for the moment of the
// fork, they are reset in the child.
func startAtDefaults(cmd *exec.Cmd) error {
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(c)
	return cmd.Start()
}

// signalled is the signal that ended @st, or 0.
func signalled(st *os.ProcessState) syscall.Signal {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

// A crash must not exit 2, the "bad command line" the unit never restarts.
func TestCrashIsSIGABRT(t *testing.T) {
	st, stderr := runChild(t, "crash", "")
	if sig := signalled(st); sig != syscall.SIGABRT {
		t.Errorf("a panicking loader ended with %v (exit %d), want SIGABRT; stderr:\n%s", sig, st.ExitCode(), firstLines(stderr, 5))
	}
	if !strings.Contains(stderr, "panic: boom") {
		t.Errorf("the crash does not say why:\n%s", firstLines(stderr, 5))
	}
}

func crashChild() {
	crashBySignal()
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}) // no core file from a test
	go panic("boom")                                     // not main's goroutine: no recover of ours could catch it
	time.Sleep(10 * time.Second)
}

// SIGPIPE leaves the loader running; SIGHUP stops it as SIGINT does; a
// second signal, with the first one's stop still under way, kills it.
func TestStopSignals(t *testing.T) {
	st, stderr := runChild(t, "signals", "")
	if !strings.Contains(stderr, "survived SIGPIPE") || !strings.Contains(stderr, "stopping on SIGHUP") {
		t.Errorf("the child did not survive SIGPIPE and stop on SIGHUP; stderr:\n%s", stderr)
	}
	if sig := signalled(st); sig != syscall.SIGHUP {
		t.Errorf("after the second SIGHUP the child ended with %v (exit %d), want killed by SIGHUP; stderr:\n%s",
			sig, st.ExitCode(), stderr)
	}
}

func signalsChild() {
	ctx, _ := stopSignals()
	outliveStdout()
	self := os.Getpid()
	syscall.Kill(self, syscall.SIGPIPE)
	time.Sleep(100 * time.Millisecond)
	fmt.Fprintln(os.Stderr, "survived SIGPIPE")
	syscall.Kill(self, syscall.SIGHUP)
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "stopping on SIGHUP")
	case <-time.After(10 * time.Second):
		return
	}
	// The detach hangs; the user signals again. AfterFunc's stop runs in a
	// goroutine of its own: signal until the default action takes over.
	for range 100 {
		syscall.Kill(self, syscall.SIGHUP)
		time.Sleep(100 * time.Millisecond)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// Under nohup, SIGHUP stays ignored: the user asked it to outlive the
// terminal.
func TestNohupKeepsRunning(t *testing.T) {
	if _, err := exec.LookPath("nohup"); err != nil {
		t.Skip("no nohup here")
	}
	st, stderr := runChild(t, "nohup", "nohup")
	if st.ExitCode() != 0 || !strings.Contains(stderr, "survived SIGHUP") {
		t.Errorf("under nohup, SIGHUP: exit %d, signal %v, want exit 0 and running on; stderr:\n%s", st.ExitCode(), signalled(st), stderr)
	}
}

func nohupChild() {
	ctx, _ := stopSignals()
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "stopped on SIGHUP under nohup")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "survived SIGHUP")
	os.Exit(0)
}

// Without outliveStdout ("stats --watch 1 | head"), a reader that goes
// away ends the command, as it ends any CLI.
func TestStatsEndsWithItsReader(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=pipe")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startAtDefaults(cmd); err != nil {
		t.Fatal(err)
	}
	out.Close() // the reader goes
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the child still writes 30 s after its reader went")
	}
	if sig := signalled(cmd.ProcessState); sig != syscall.SIGPIPE {
		t.Errorf("the child ended with %v (exit %d), want SIGPIPE", sig, cmd.ProcessState.ExitCode())
	}
}

func pipeChild() {
	stopSignals()
	for range 1000 {
		fmt.Println("enq=1")
		time.Sleep(10 * time.Millisecond)
	}
}
