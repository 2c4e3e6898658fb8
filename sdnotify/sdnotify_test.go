// SPDX-License-Identifier: Apache-2.0

package sdnotify

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/scx-qmap-go/scx-qmap-go/sdnotify/sdnotifytest"
)

func TestSend(t *testing.T) {
	tests := []struct {
		name string
		addr string
	}{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@scx-qmap-go-test-" + strings.ReplaceAll(t.Name(), "/", "-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := sdnotifytest.Listen(t, tt.addr)
			n, err := FromEnv()
			if err != nil || n == nil {
				t.Fatalf("FromEnv() = %v, %v", n, err)
			}
			defer n.Close()
			if err := n.Send(Ready, Status("attached\nslice 20000 us")); err != nil {
				t.Fatal(err)
			}
			if got, want := sd.Next(t), "READY=1\nSTATUS=attached slice 20000 us"; got != want {
				t.Errorf("systemd got %q, want %q", got, want)
			}
			n.Close()
			if err := n.Send(Stopping); err != nil {
				t.Errorf("Send after Close: %v", err)
			}
		})
	}
}

func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Fatalf("FromEnv() without NOTIFY_SOCKET = %v, %v; want nil, nil", n, err)
	}
	if err := n.Send(Ready); err != nil {
		t.Errorf("nil Notifier Send: %v", err)
	}
	n.Close()
}

func TestBadSocket(t *testing.T) {
	for _, addr := range []string{"vsock:2:1234", filepath.Join(t.TempDir(), "absent")} {
		t.Setenv("NOTIFY_SOCKET", addr)
		if n, err := FromEnv(); err == nil {
			n.Close()
			t.Errorf("FromEnv(%q) succeeded, want an error", addr)
		}
	}
}
