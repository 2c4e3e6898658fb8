// SPDX-License-Identifier: Apache-2.0

// Package sdnotify tells systemd how a Type=notify service is doing
// (sd_notify(3)): one datagram per state change, on the unix socket that
// systemd names in $NOTIFY_SOCKET. Outside systemd it does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
)

// The states the scheduler sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Status is a one-line summary "systemctl status" shows.
func Status(line string) string {
	return "STATUS=" + strings.ReplaceAll(line, "\n", " ")
}

// Notifier sends to systemd's notify socket. The nil Notifier (no
// $NOTIFY_SOCKET) accepts every call and sends nothing.
type Notifier struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// FromEnv connects to $NOTIFY_SOCKET, or returns nil when it is unset.
// Only path and abstract ("@name") sockets are supported; systemd passes a
// vsock address only to virtual machines it manages.
func FromEnv() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: only path and abstract sockets are supported", path)
	}
	// Go maps a leading '@' to the abstract namespace.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET %s: %w", path, err)
	}
	return &Notifier{conn: conn}, nil
}

// Send sends @states, one "KEY=value" each, in one datagram.
func (n *Notifier) Send(states ...string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	if _, err := n.conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Close closes the socket; later Sends do nothing.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}
