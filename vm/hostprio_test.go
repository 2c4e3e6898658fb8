// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fakeProc writes a /proc of processes given as pid → "comm ppid".
func fakeProc(t *testing.T, procs map[int][2]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, fmt.Sprint(pid))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) S %s %d 0 0", pid, p[0], p[1], pid)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "self-like"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFindQEMU(t *testing.T) {
	tests := []struct {
		name    string
		procs   map[int][2]string
		root    int
		want    int
		wantErr bool
	}{
		{"below vng and virtme-run", map[int][2]string{
			100: {"vng", "1"}, 101: {"virtme-run", "100"}, 102: {"qemu-system-x86", "101"},
		}, 100, 102, false},
		{"the root itself (systemd image)", map[int][2]string{
			200: {"qemu-system-x86", "1"},
		}, 200, 200, false},
		{"another boot's QEMU is not ours", map[int][2]string{
			100: {"vng", "1"}, 101: {"virtme-run", "100"}, 300: {"qemu-system-x86", "1"},
		}, 100, 0, true},
		{"a name with spaces and parentheses", map[int][2]string{
			100: {"v) (g", "1"}, 102: {"qemu-system-x86", "100"},
		}, 100, 102, false},
		{"a parent loop ends the walk", map[int][2]string{
			100: {"vng", "1"}, 400: {"qemu-system-x86", "401"}, 401: {"sh", "400"},
		}, 100, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findQEMU(fakeProc(t, tt.procs), tt.root)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("findQEMU = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
