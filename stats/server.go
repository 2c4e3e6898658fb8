// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// DefaultSocket is where the scheduler serves its stats: where scx's tools
// (scxtop, the schedulers' --monitor, scxstats_to_openmetrics) look.
const DefaultSocket = "/var/run/scx/root/stats"

// SubSocket is where a sub-scheduler on the cgroup with id @cgroupID serves
// its stats by default.
func SubSocket(cgroupID uint64) string {
	return fmt.Sprintf("/var/run/scx/sub-%d/stats", cgroupID)
}

// MaxRequestLine bounds one request line; real requests are under 100 bytes.
const MaxRequestLine = 64 << 10

// ErrInUse means another live process answers on the socket path.
var ErrInUse = errors.New("another instance is serving stats on this socket")

// ServerConfig tunes a Server; zero values take the defaults.
type ServerConfig struct {
	Path         string
	IdleTimeout  time.Duration // close a connection idle this long (default 5m)
	WriteTimeout time.Duration // give up on a client not reading (default 5s)
	MaxConns     int           // refuse connections beyond this many (default 32)
}

// Server answers scx_stats requests on a unix socket from a Cache. Each
// connection has its own goroutine and deadlines, so no client can hold up
// another one or the stats loop.
type Server struct {
	cfg   ServerConfig
	cache *Cache
	ln    *net.UnixListener
	file  os.FileInfo // the socket we bound, to remove only our own
	// madeDir: StartServer created the socket's directory, which Close
	// removes if empty. A child's (sub-<cgroup id>) would otherwise stay
	// behind for every cgroup one ever ran on.
	madeDir bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	once   sync.Once
}

// StartServer creates the socket (its directory 0700 when it creates it,
// the socket 0600), replacing a stale socket file but refusing with
// ErrInUse when a live process answers there, and starts serving.
func StartServer(cfg ServerConfig, cache *Cache) (*Server, error) {
	if cfg.Path == "" {
		return nil, errors.New("stats socket: empty path")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 32
	}
	dir := filepath.Dir(cfg.Path)
	madeDir, err := prepareDir(dir)
	if err != nil {
		return nil, err
	}
	removeDir := func() {
		if madeDir {
			_ = os.Remove(dir)
		}
	}
	if err := removeStale(cfg.Path); err != nil {
		removeDir()
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		removeDir()
		return nil, fmt.Errorf("stats socket %s: %w", cfg.Path, err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it, and only if it is still ours
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(cfg.Path)
		removeDir()
		return nil, fmt.Errorf("stats socket %s: %w", cfg.Path, err)
	}
	if err := os.Chmod(cfg.Path, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(cfg.Path)
	if err != nil {
		return fail(err)
	}
	s := &Server{cfg: cfg, cache: cache, ln: ln, file: fi, madeDir: madeDir, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// prepareDir creates @dir 0700 if missing, and reports whether it did. Its
// parents (/run/scx) are made 0755: they are shared with other instances
// and the scx project's tools, and one made 0700 by root kept a service run
// as a user of its own from its RuntimeDirectory= below. An existing
// directory is left as it is (it may be /tmp), but one anybody may replace
// files in is refused.
func prepareDir(dir string) (made bool, err error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, fmt.Errorf("creating the stats socket directory: %w", err)
		}
		merr := os.Mkdir(dir, 0o700)
		if merr == nil {
			if err := os.Chmod(dir, 0o700); err != nil { // in case umask was odd
				_ = os.Remove(dir)
				return false, fmt.Errorf("stats socket directory: %w", err)
			}
			return true, nil
		}
		if !errors.Is(merr, fs.ErrExist) { // made meanwhile: checked below
			return false, fmt.Errorf("creating the stats socket directory: %w", merr)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return false, fmt.Errorf("stats socket directory: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("stats socket directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return false, fmt.Errorf("stats socket directory %s is world-writable without the sticky bit: choose another path", dir)
	}
	return false, nil
}

// removeStale removes a socket file nobody listens on any more (a crashed
// instance's), and refuses when somebody does.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stats socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("stats socket %s exists and is not a socket: remove it or choose another path", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("checking the old stats socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale stats socket: %w", err)
	}
	return nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.cfg.Path }

// Close stops accepting, drops every client, waits for their goroutines and
// removes the socket file. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		err = s.ln.Close()
		s.wg.Wait()
		// Another instance may have replaced a socket we could not answer on.
		if fi, lerr := os.Lstat(s.cfg.Path); lerr == nil && os.SameFile(fi, s.file) {
			if rerr := os.Remove(s.cfg.Path); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if s.madeDir {
			_ = os.Remove(filepath.Dir(s.cfg.Path)) // only if empty
		}
	})
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() || !isTemporary(err) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: let fds free up
			continue
		}
		if !s.track(conn) {
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			conn.Write(encodeError(syscall.EBUSY, "too many stats clients, try again later"))
			conn.Close()
			continue
		}
		go s.serve(conn)
	}
}

func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers @c, or reports false when closed or full.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= s.cfg.MaxConns {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// serve answers @c's requests until it hangs up, idles, stops reading or
// sends an oversized line.
func (s *Server) serve(c net.Conn) {
	defer s.untrack(c)
	defer func() {
		// A bug in answering one client must not kill the scheduler's loader
		// (the kernel would detach the scheduler with it), nor go unseen.
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stderr, "scx-qmap-go: stats: answering a client panicked (a bug, please report): %v\n%s", v, debug.Stack())
		}
	}()
	r := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		line, err := readLine(r, MaxRequestLine)
		if errors.Is(err, errLineTooLong) {
			c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			c.Write(encodeError(syscall.E2BIG, fmt.Sprintf("request line longer than %d bytes", MaxRequestLine)))
			return
		}
		if err != nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := c.Write(Handle(line, s.cache)); err != nil {
			return
		}
	}
}

func encodeError(errno syscall.Errno, msg string) []byte {
	b, _ := json.Marshal(errorResponse(errno, msg))
	return append(b, '\n')
}

var errLineTooLong = errors.New("line too long")

// readLine reads one '\n'-terminated line of at most @max bytes, without
// the newline. A last line without a newline counts.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case len(line) > 0 && errors.Is(err, io.EOF):
			return line, nil
		default:
			return nil, err
		}
	}
}
