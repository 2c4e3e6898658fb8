// SPDX-License-Identifier: Apache-2.0

// Package sdnotifytest stands in for systemd's notify socket in tests.
package sdnotifytest

import (
	"net"
	"testing"
	"time"
)

// Systemd is the receiving end of a notify socket.
type Systemd struct {
	conn *net.UnixConn
}

// Listen opens a notify socket at @addr (a path, or "@name" for the
// abstract namespace), points $NOTIFY_SOCKET at it for the test, and
// closes it when the test ends.
func Listen(t *testing.T, addr string) *Systemd {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return &Systemd{conn: c}
}

// Next returns the next notification, failing the test after 5 s.
func (s *Systemd) Next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}
