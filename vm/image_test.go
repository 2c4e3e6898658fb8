// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd image boots under each engine with the accelerator and
// clock that engine names.
func TestImageCommandEngine(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "modules", "7.2.0", "vmlinuz")
	for _, f := range []string{"rootfs.ext4", "initrd-7.2.0.cpio.gz"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		eng  engine
		want string // in the QEMU arguments
		not  string // absent from them ("" for nothing)
	}{
		{engineKVM, "-accel kvm -cpu host", "-icount"},
		{engineTCG, "-accel tcg -cpu max", "-icount"},
		{engineTCGSingle, "-accel tcg,thread=single -cpu max", "-icount"},
		{engineICount, "-accel tcg,thread=single -cpu max", ""},
	}
	for _, tt := range tests {
		t.Run(tt.eng.String(), func(t *testing.T) {
			im := &Image{Dir: dir, Share: t.TempDir()}
			cmd, err := im.command(kernel, 2, 1024, tt.eng, "true")
			if err != nil {
				t.Fatalf("command: %v", err)
			}
			args := strings.Join(cmd.Args, " ")
			if !strings.Contains(args, tt.want) {
				t.Errorf("args %q lack %q", args, tt.want)
			}
			if tt.not != "" && strings.Contains(args, tt.not) {
				t.Errorf("args %q hold %q", args, tt.not)
			}
			if !strings.Contains(args, "oops=panic tsc=reliable") {
				t.Errorf("args %q lack the guest kernel's arguments", args)
			}
			if tt.eng == engineICount && !strings.HasSuffix(args, "-icount shift=0,sleep=off") {
				t.Errorf("args %q do not end with the instruction clock", args)
			}
		})
	}
}
