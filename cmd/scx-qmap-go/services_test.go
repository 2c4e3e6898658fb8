// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/sdnotify"
	"github.com/scx-qmap-go/scx-qmap-go/sdnotify/sdnotifytest"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// syncBuffer is a bytes.Buffer the stats loop may write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestStatsLoop(t *testing.T) {
	tests := []struct {
		name       string
		printEvery float64
		sysfs      fstest.MapFS
		wantBlocks bool
		wantStderr string
	}{
		{name: "--stats prints and publishes", printEvery: 0.02, sysfs: fakeSysfs, wantBlocks: true},
		{name: "quiet by default, still publishes", sysfs: fakeSysfs},
		{name: "bad events warn once", printEvery: 0.01, sysfs: fstest.MapFS{"root/events": {Data: []byte("bad\n")}}, wantBlocks: true,
			wantStderr: "events line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := &stats.Cache{}
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			var extras atomic.Int32
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			o := options{statsInterval: 10 * time.Millisecond, printEvery: tt.printEvery}
			systemd := sdnotifytest.Listen(t, filepath.Join(t.TempDir(), "notify"))
			sd, err := sdnotify.FromEnv()
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			statsLoop(ctx, &fakeSched{}, stats.NewEventsReader(tt.sysfs, stats.RootSchedDir), cache, o, stdout, stderr, func(stats.Snapshot) { extras.Add(1) }, sd)

			s, ok := cache.Load()
			if !ok || s.Values["enq"] == 0 {
				t.Fatalf("nothing published: %+v", s)
			}
			blocks := len(blockStart.FindAllString(stdout.String(), -1))
			if tt.wantBlocks != (blocks >= 2) || tt.wantBlocks != (extras.Load() >= 2) {
				t.Errorf("%d blocks, %d -P calls; want them: %v\n%s", blocks, extras.Load(), tt.wantBlocks, stdout.String())
			}
			// systemd hears a summary every snapshot, printed or not.
			if status := systemd.Next(t); !strings.HasPrefix(status, "STATUS=enq ") {
				t.Errorf("systemd got %q, want a STATUS= summary", status)
			}
			if tt.wantStderr != "" && strings.Count(stderr.String(), tt.wantStderr) != 1 {
				t.Errorf("stderr = %q, want %q once", stderr.String(), tt.wantStderr)
			}
			if tt.wantStderr == "" && stderr.String() != "" {
				t.Errorf("stderr = %q", stderr.String())
			}
		})
	}
}

// Quiet and not under systemd, the loop takes no snapshot until the socket
// or the metrics ask, and then one per --stats-interval at most.
func TestStatsLoopTakesNoneUnasked(t *testing.T) {
	cache, src := &stats.Cache{}, &fakeSched{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := options{statsInterval: time.Hour}
		statsLoop(ctx, src, stats.NewEventsReader(fakeSysfs, stats.RootSchedDir), cache, o, io.Discard, io.Discard, nil, nil)
	}()
	taken := func() uint64 {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.n
	}
	time.Sleep(50 * time.Millisecond)
	if n := taken(); n != 0 {
		t.Errorf("%d snapshots taken with nobody asking", n)
	}
	// The loop may not have set the sampler yet: ask until it has.
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := cache.Load(); !ok && time.Now().Before(deadline); _, ok = cache.Load() {
		time.Sleep(time.Millisecond)
	}
	cache.Load()
	if n := taken(); n != 1 {
		t.Errorf("%d snapshots taken for two reads within the interval, want 1", n)
	}
	cancel()
	<-done
	cache.Load()
	if n := taken(); n != 1 {
		t.Errorf("%d snapshots taken after the loop ended, want 1", n)
	}
}

func TestStartServices(t *testing.T) {
	busyPort, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyPort.Close()

	tests := []struct {
		name        string
		socket      bool
		liveSocket  bool // another instance already serves the path
		unusable    bool // the socket's directory cannot be created
		chosen      bool // --stats-socket was given
		metricsAddr string
		wantCode    exitCode // 0: starts
		wantServed  int
		wantWarning string
	}{
		{name: "nothing", wantServed: 0},
		{name: "socket", socket: true, wantServed: 1},
		{name: "socket and metrics", socket: true, metricsAddr: "127.0.0.1:0", wantServed: 2},
		{name: "live instance", socket: true, liveSocket: true, wantCode: exitBusy},
		{name: "metrics port taken", socket: true, metricsAddr: busyPort.Addr().String(), wantCode: exitInternal},
		{name: "default path unusable", socket: true, unusable: true, wantServed: 0, wantWarning: "running without the stats socket"},
		{name: "chosen path unusable", socket: true, unusable: true, chosen: true, wantCode: exitInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := options{socketChosen: tt.chosen}
			if tt.socket {
				o.statsSocket = filepath.Join(t.TempDir(), "run", "s.sock")
			}
			if tt.unusable { // "run" is a file, so no directory can go there
				if err := os.WriteFile(filepath.Dir(o.statsSocket), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o.metricsAddr = tt.metricsAddr
			if tt.liveSocket {
				other, err := stats.StartServer(stats.ServerConfig{Path: o.statsSocket}, &stats.Cache{})
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
			}
			var stderr bytes.Buffer
			stop, served, err := startServices(o, &stats.Cache{}, &stderr)
			if tt.wantCode != 0 {
				if err == nil || exitCodeOf(err) != tt.wantCode {
					t.Fatalf("startServices error = %v, want exit code %d", err, tt.wantCode)
				}
				if !tt.liveSocket {
					if _, err := os.Lstat(o.statsSocket); err == nil {
						t.Error("failed start left the socket behind")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(served) != tt.wantServed {
				t.Errorf("served = %q, want %d entries", served, tt.wantServed)
			}
			if !strings.Contains(stderr.String(), tt.wantWarning) || (tt.wantWarning == "" && stderr.Len() > 0) {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantWarning)
			}
			if tt.socket && !tt.unusable {
				if fi, err := os.Lstat(o.statsSocket); err != nil || fi.Mode() != os.ModeSocket|0o600 {
					t.Errorf("socket = %v, %v; want mode 0600", fi, err)
				}
			}
			stop()
			if tt.socket && !tt.unusable {
				if _, err := os.Lstat(o.statsSocket); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("socket left after stop: %v", err)
				}
			}
		})
	}
}
