// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startServer serves a cache holding one snapshot from a fresh directory.
func startServer(t *testing.T, cfg ServerConfig) (*Server, *Cache) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "s.sock")
	}
	cache := &Cache{}
	cache.Publish(snap(t, 100, 1, nil, Event{"SCX_EV_A", 1}))
	s, err := StartServer(cfg, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cache
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) nconns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Several clients at once, each on its own connection, while the stats loop
// keeps publishing and two bad clients hang around: one silent, one that
// sends requests but never reads the answers.
func TestServerConcurrentClients(t *testing.T) {
	srv, cache := startServer(t, ServerConfig{WriteTimeout: 200 * time.Millisecond})

	silent, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	deaf, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer deaf.Close()
	go func() { // fills the socket buffers until the server gives up on it
		req := []byte(strings.Repeat(`{"req":"stats_meta"}`+"\n", 100))
		for {
			if _, err := deaf.Write(req); err != nil {
				return
			}
		}
	}()

	stop := make(chan struct{})
	var published atomic.Int64
	var slowest atomic.Int64
	go func() {
		for i := uint64(2); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			cache.Publish(Snapshot{Time: time.Unix(int64(100+i), 0), Values: map[string]uint64{"enq": i}})
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			published.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			c, err := Dial(srv.Path(), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var last uint64
			for i := range 20 {
				if i%5 == 4 {
					if _, err := c.Meta(); err != nil {
						errs <- err
						return
					}
					continue
				}
				s, _, err := c.Top()
				if err != nil {
					errs <- err
					return
				}
				if s.Values["enq"] < last {
					errs <- errors.New("snapshots went back in time")
					return
				}
				last = s.Values["enq"]
			}
		})
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if published.Load() == 0 {
		t.Error("the publisher never ran")
	}
	if d := time.Duration(slowest.Load()); d > 100*time.Millisecond {
		t.Errorf("a Publish took %v with clients connected", d)
	}
	// The client that never reads is dropped after the write timeout.
	deadline := time.Now().Add(5 * time.Second)
	for srv.nconns() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.nconns(); n != 1 {
		t.Errorf("%d connections left, want only the silent one", n)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	srv, _ := startServer(t, ServerConfig{IdleTimeout: 50 * time.Millisecond})
	c, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection read = %v, want EOF", err)
	}
}

func TestServerFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "scx")
	srv, _ := startServer(t, ServerConfig{Path: filepath.Join(dir, "s.sock")})
	tests := []struct {
		path string
		want os.FileMode
	}{{filepath.Dir(dir), os.ModeDir | 0o755}, {dir, os.ModeDir | 0o700}, {srv.Path(), os.ModeSocket | 0o600}}
	for _, tt := range tests {
		fi, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tt.want {
			t.Errorf("%s mode = %v, want %v", tt.path, fi.Mode(), tt.want)
		}
	}
}

func TestServerStartRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string
		inUse   bool
	}{
		{name: "live instance", inUse: true, setup: func(t *testing.T, path string) {
			startServer(t, ServerConfig{Path: path})
		}},
		{name: "not a socket", wantErr: "is not a socket", setup: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "world-writable directory", wantErr: "world-writable", setup: func(t *testing.T, path string) {
			if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.sock")
			tt.setup(t, path)
			before, _ := os.Lstat(path)
			s, err := StartServer(ServerConfig{Path: path}, &Cache{})
			if err == nil {
				s.Close()
				t.Fatal("StartServer succeeded")
			}
			if tt.inUse != errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("StartServer error = %v, want %q (in use: %v)", err, tt.wantErr, tt.inUse)
			}
			if after, _ := os.Lstat(path); before != nil && (after == nil || !os.SameFile(before, after)) {
				t.Errorf("the refused start replaced %s", path)
			}
		})
	}
}

// A crashed instance leaves its socket file behind; the next one replaces it.
func TestServerReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file missing: %v", err)
	}
	srv, _ := startServer(t, ServerConfig{Path: path})
	if _, _, err := dial(t, srv.Path()).Top(); err != nil {
		t.Errorf("Top on the new server: %v", err)
	}
}

func TestServerCloseRemovesSocket(t *testing.T) {
	srv, _ := startServer(t, ServerConfig{})
	c := dial(t, srv.Path()) // a connected client does not hold Close up
	if _, _, err := c.Top(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with a client connected")
	}
	if _, err := os.Lstat(srv.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := c.Top(); err == nil {
		t.Error("client still served after Close")
	}
}

// Close removes the directory StartServer made for the socket (a child's
// sub-<cgroup id>), and leaves one that was there before, or holds more.
func TestServerCloseRemovesItsDirectory(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	tests := []struct {
		name     string
		before   func(dir string) // what is there before StartServer
		wantGone bool
	}{
		{"made by the server", func(string) {}, true},
		{"there before", func(dir string) { mkdir(t, dir) }, false},
		{"other files in it", func(string) {}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(run, fmt.Sprintf("sub-%d", i))
			tt.before(dir)
			srv, _ := startServer(t, ServerConfig{Path: filepath.Join(dir, "stats")})
			if tt.name == "other files in it" {
				if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := srv.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			_, err := os.Stat(dir)
			if gone := errors.Is(err, os.ErrNotExist); gone != tt.wantGone {
				t.Errorf("directory gone after Close = %v, want %v (stat: %v)", gone, tt.wantGone, err)
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// Close leaves alone a socket another process put in our place.
func TestServerCloseKeepsForeignSocket(t *testing.T) {
	srv, _ := startServer(t, ServerConfig{})
	os.Remove(srv.Path())
	other, err := net.Listen("unix", srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	srv.Close()
	if _, err := os.Lstat(srv.Path()); err != nil {
		t.Errorf("Close removed the other socket: %v", err)
	}
}

func TestServerBadClients(t *testing.T) {
	tests := []struct {
		name      string
		cfg       ServerConfig
		send      string
		hold      int // connections opened first and left silent
		wantErrno syscall.Errno
	}{
		{name: "line too long", send: `{"req":"` + strings.Repeat("x", MaxRequestLine) + `"}` + "\n", wantErrno: syscall.E2BIG},
		{name: "too many clients", cfg: ServerConfig{MaxConns: 2}, hold: 2, wantErrno: syscall.EBUSY},
		{name: "garbage", send: "\x00\xff\n", wantErrno: syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := startServer(t, tt.cfg)
			for range tt.hold {
				c, err := net.Dial("unix", srv.Path())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			for tt.hold > 0 && srv.nconns() < tt.hold {
				time.Sleep(time.Millisecond)
			}
			c, err := net.Dial("unix", srv.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go c.Write([]byte(tt.send)) // may fail once the server hangs up
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			resp, err := ParseResponse(line[:len(line)-1])
			if err != nil || resp.Errno != int(tt.wantErrno) {
				t.Errorf("answer %q (%v), want errno %d", line, err, tt.wantErrno)
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{name: "two lines", in: "ab\ncd\n", max: 10, want: []string{"ab", "cd"}, wantErr: io.EOF},
		{name: "last line without newline", in: "ab\ncd", max: 10, want: []string{"ab", "cd"}, wantErr: io.EOF},
		{name: "exactly max", in: "abcd\n", max: 4, want: []string{"abcd"}, wantErr: io.EOF},
		{name: "over max", in: "abcde\n", max: 4, wantErr: errLineTooLong},
		{name: "over the buffer", in: strings.Repeat("x", 100) + "\n", max: 200, want: []string{strings.Repeat("x", 100)}, wantErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var err error
			for {
				var line []byte
				if line, err = readLine(r, tt.max); err != nil {
					break
				}
				got = append(got, string(line))
			}
			if !errors.Is(err, tt.wantErr) || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("readLine = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
