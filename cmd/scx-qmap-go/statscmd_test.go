// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// fakeSched stands in for the loaded scheduler: each read counts one more
// enqueue and dispatch.
type fakeSched struct {
	mu sync.Mutex
	n  uint64
}

func (f *fakeSched) Stats() (bpf.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return bpf.Stats{NrEnqueued: f.n, NrDispatched: f.n}, nil
}

var fakeSysfs = fstest.MapFS{"root/events": {Data: []byte("SCX_EV_SELECT_CPU_FALLBACK 4\nSCX_EV_BYPASS_DURATION 0\n")}}

// serveStats runs a stats server whose cache the stats loop fills when a
// client asks, from a fake scheduler, as the loader does.
func serveStats(t *testing.T) string {
	t.Helper()
	cache := &stats.Cache{}
	path := filepath.Join(t.TempDir(), "s.sock")
	srv, err := stats.StartServer(stats.ServerConfig{Path: path}, cache)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := options{statsInterval: 5 * time.Millisecond, quiet: true}
		statsLoop(ctx, &fakeSched{}, stats.NewEventsReader(fakeSysfs, stats.RootSchedDir), cache, o, io.Discard, io.Discard, nil, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	for {
		if _, ok := cache.Load(); ok {
			return path
		}
		time.Sleep(time.Millisecond)
	}
}

var blockStart = regexp.MustCompile(`(?m)^enq=\d+`)

func TestStatsCommand(t *testing.T) {
	path := serveStats(t)
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	missing := filepath.Join(t.TempDir(), "none.sock")

	tests := []struct {
		name       string
		args       []string
		runFor     time.Duration // cancel a --watch after this long
		want       exitCode
		wantStderr string
		check      func(t *testing.T, stdout string)
	}{
		{name: "one snapshot", args: []string{"--socket", path}, check: func(t *testing.T, out string) {
			if n := len(blockStart.FindAllString(out, -1)); n != 1 || strings.Contains(out, "/s)") {
				t.Errorf("want one block of totals, got:\n%s", out)
			}
			if !strings.Contains(out, "kernel:   SELECT_CPU_FALLBACK=4") {
				t.Errorf("no kernel events in:\n%s", out)
			}
		}},
		{name: "json", args: []string{"--socket", path, "--json"}, check: func(t *testing.T, out string) {
			lines := jsonLines(t, out)
			if len(lines) != 1 {
				t.Errorf("want 1 JSON line, got %d", len(lines))
			}
		}},
		{name: "watch", args: []string{"--socket", path, "--watch", "0.03"}, runFor: 200 * time.Millisecond,
			check: func(t *testing.T, out string) {
				if n := len(blockStart.FindAllString(out, -1)); n < 2 || !strings.Contains(out, "/s)") {
					t.Errorf("want several blocks with rates, got:\n%s", out)
				}
			}},
		{name: "watch json", args: []string{"--socket", path, "--watch", "0.03", "--json"}, runFor: 200 * time.Millisecond,
			check: func(t *testing.T, out string) {
				if lines := jsonLines(t, out); len(lines) < 2 {
					t.Errorf("want several JSON lines, got %d", len(lines))
				}
			}},
		{name: "no instance", args: []string{"--socket", missing}, want: exitNoInstance,
			wantStderr: "scx-qmap-go: no scx-qmap-go instance is running (no stats socket at " + missing + ")\n"},
		{name: "stale socket", args: []string{"--socket", stale}, want: exitNoInstance,
			wantStderr: "no scx-qmap-go instance is running"},
		{name: "help", args: []string{"--help"}, want: exitOK, check: func(t *testing.T, out string) {
			if !strings.Contains(out, "      --watch N ") {
				t.Errorf("--help does not list --watch:\n%s", out)
			}
		}},
		{name: "bad flag", args: []string{"--frobnicate"}, want: exitUsage, wantStderr: "scx-qmap-go stats: unknown flag: --frobnicate (see --help)\n"},
		{name: "old spelling", args: []string{"-socket", missing}, want: exitNoInstance, wantStderr: "no stats socket at " + missing},
		{name: "negative watch", args: []string{"--watch", "-1"}, want: exitUsage, wantStderr: "--watch -1 out of range"},
		{name: "stray argument", args: []string{"top"}, want: exitUsage, wantStderr: `unexpected argument "top"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.runFor > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.runFor)
				defer cancel()
			}
			var stdout, stderr bytes.Buffer
			got := run(ctx, append([]string{"stats"}, tt.args...), &stdout, &stderr, loader.Host{})
			if got != tt.want {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			if tt.check != nil {
				tt.check(t, stdout.String())
			}
		})
	}
}

// jsonLines parses --json output: one object per line with the socket's
// field names.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, c := range stats.Counters {
			if _, ok := m[c.Name]; !ok {
				t.Errorf("line has no %s: %s", c.Name, line)
			}
		}
		ev, _ := m[stats.FieldEvents].(map[string]any)
		fallback, _ := ev["SCX_EV_SELECT_CPU_FALLBACK"].(map[string]any)
		if _, ok := m[stats.FieldTime]; !ok || fallback[stats.FieldCount] != float64(4) {
			t.Errorf("line lacks the time or the events: %s", line)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestStatsFailure(t *testing.T) {
	connErr := func(errno syscall.Errno) error {
		return fmt.Errorf("connecting: %w", &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errno)})
	}
	tests := []struct {
		name string
		err  error
		want exitCode
		msg  string
	}{
		{"missing", connErr(syscall.ENOENT), exitNoInstance, "no scx-qmap-go instance is running (no stats socket at /s)"},
		{"refused", connErr(syscall.ECONNREFUSED), exitNoInstance, "no scx-qmap-go instance is running"},
		{"not root", connErr(syscall.EACCES), exitNotRoot, "permission denied on /s: run as root"},
		{"not permitted", connErr(syscall.EPERM), exitNotRoot, "permission denied on /s: run as root"},
		{"starting", &stats.RemoteError{Errno: int(syscall.EAGAIN), Msg: "no snapshot yet"}, exitInternal, "try again"},
		{"went away", fmt.Errorf("reading: %w", syscall.ECONNRESET), exitNoInstance, "stopped"},
		{"other", errors.New("stats response is not a JSON object"), exitInternal, "reading stats from /s: stats response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := statsFailure(tt.err, "/s", &stderr); got != tt.want {
				t.Errorf("exit code = %d, want %d", got, tt.want)
			}
			if !strings.HasPrefix(stderr.String(), "scx-qmap-go: ") || !strings.Contains(stderr.String(), tt.msg) ||
				strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr = %q, want one line with %q", stderr.String(), tt.msg)
			}
		})
	}
}

// Permission is really checked by the kernel: only meaningful as non-root.
func TestStatsCommandPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may connect to any socket")
	}
	path := serveStats(t) // 0600, ours: take our own permission away
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"stats", "--socket", path}, &stdout, &stderr, loader.Host{}); got != exitNotRoot {
		t.Errorf("exit code = %d, want %d; stderr %q", got, exitNotRoot, stderr.String())
	}
}
