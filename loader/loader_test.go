// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

// The embedded object's struct_ops values, in both forms, can be patched,
// and the patch lands at the members' offsets.
func TestPatchOps(t *testing.T) {
	// The C initializers set SCX_OPS_ENQ_EXITING (4), and the cpu form,
	// which keeps the kernel's idle tracking beside its ops.update_idle,
	// SCX_OPS_KEEP_BUILTIN_IDLE (1); the patch ORs in 8.
	wantFlags := map[string]uint64{bpf.OpsMap: 4 | 1 | 8, bpf.CidOpsMap: 4 | 8}
	for _, opsMap := range []string{bpf.OpsMap, bpf.CidOpsMap} {
		t.Run(opsMap, func(t *testing.T) {
			spec, err := bpf.Spec()
			if err != nil {
				t.Fatal(err)
			}
			if err := patchOps(spec, opsMap, map[string]uint64{"hotplug_seq": 7, "exit_dump_len": 4096}, 8); err != nil {
				t.Fatal(err)
			}
			ms := spec.Maps[opsMap]
			st := ms.Value.(*btf.Struct)
			data := ms.Contents[0].Value.([]byte)
			member := func(name string) btf.Member {
				for _, m := range st.Members {
					if m.Name == name {
						return m
					}
				}
				t.Fatalf("no member %s", name)
				return btf.Member{}
			}
			u64 := func(name string) uint64 {
				off := member(name).Offset.Bytes()
				return binary.NativeEndian.Uint64(data[off:])
			}
			u32 := func(name string) uint32 {
				off := member(name).Offset.Bytes()
				return binary.NativeEndian.Uint32(data[off:])
			}
			if got := u64("hotplug_seq"); got != 7 {
				t.Errorf("hotplug_seq = %d, want 7", got)
			}
			if got := u32("exit_dump_len"); got != 4096 {
				t.Errorf("exit_dump_len = %d, want 4096", got)
			}
			if got, want := u64("flags"), wantFlags[opsMap]; got != want {
				t.Errorf("flags = %#x, want %#x", got, want)
			}
			if got := u32("timeout_ms"); got != 5000 {
				t.Errorf("timeout_ms = %d, want 5000 (upstream qmap's watchdog)", got)
			}
			name := data[member("name").Offset.Bytes():]
			if string(name[:5]) != "qmap\x00" {
				t.Errorf("name = %q, want qmap", name[:5])
			}
		})
	}
}

// Every load-time enum placeholder in the object is filled, and a kernel
// lacking a required one is refused as too old.
func TestFillEnums(t *testing.T) {
	spec, err := bpf.Spec()
	if err != nil {
		t.Fatal(err)
	}
	enums := map[string]uint64{}
	for _, n := range requiredEnums {
		enums[n] = 1
	}
	if err := fillEnums(spec, enums); err != nil {
		t.Fatalf("fillEnums: %v", err)
	}
	delete(enums, "SCX_TASK_REENQ_KFUNC")
	err = fillEnums(spec, enums)
	if !errors.Is(err, ErrKernelTooOld) {
		t.Errorf("missing enum: got %v, want ErrKernelTooOld", err)
	}
}

// A load that fails because a module's BTF file vanished (udev at boot) is
// retried; any other failure, and the last try, are returned as they are.
func TestRetryModuleBTFRace(t *testing.T) {
	raced := fmt.Errorf("program qmap_cid_init: fixing up kfuncs: finding kfunc in kernel: find target in modules: parse types for module ahci: %w",
		&fs.PathError{Op: "open", Path: "/sys/kernel/btf/ahci", Err: syscall.ENOENT})
	verifier := errors.New("load program: permission denied")
	elsewhere := &fs.PathError{Op: "open", Path: "/sys/fs/bpf/qmap", Err: syscall.ENOENT}
	for _, tc := range []struct {
		name      string
		errs      []error // what each call returns, then success
		wantCalls int
		wantErr   error
	}{
		{"first try", nil, 1, nil},
		{"a race, then loaded", []error{raced, raced}, 3, nil},
		{"races every try", []error{raced, raced, raced, raced}, 3, raced},
		{"other errors are final", []error{verifier, raced}, 1, verifier},
		{"ENOENT elsewhere is final", []error{elsewhere}, 1, elsewhere},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			_, err := retryModuleBTFRace(func() (*ebpf.Collection, error) {
				calls++
				if calls <= len(tc.errs) {
					return nil, tc.errs[calls-1]
				}
				return nil, nil
			}, 3, 0)
			if calls != tc.wantCalls || err != tc.wantErr {
				t.Errorf("%d calls, error %v; want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

// A load that failed for want of kernel memory may pass on a retry, and says
// so; a verifier rejection or any other failure is final.
func TestLoadError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		want    error
		wantMsg string
	}{
		{"map out of memory", fmt.Errorf("map queue0: map create: %w", syscall.ENOMEM), ErrNoMemory, "no memory"},
		{"verifier out of memory", fmt.Errorf("program qmap_enqueue: %w", &ebpf.VerifierError{Cause: syscall.ENOMEM}),
			ErrNoMemory, "no memory"},
		{"verifier rejection", fmt.Errorf("program qmap_enqueue: %w", &ebpf.VerifierError{Cause: syscall.EACCES}),
			ErrLoad, "verifier rejected"},
		{"not permitted", fmt.Errorf("map queue0: map create: %w", syscall.EPERM), ErrNotRoot, "denied the permission"},
		{"anything else", fmt.Errorf("map queue0: map create: %w", syscall.EINVAL), ErrLoad, "loading the BPF scheduler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := loadError(tc.err, "loading the BPF scheduler")
			if !errors.Is(err, tc.want) || !errors.Is(err, tc.err) {
				t.Errorf("loadError(%v) = %v: want %v, wrapping the cause", tc.err, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("loadError(%v) says %q, want it to say %q", tc.err, err, tc.wantMsg)
			}
		})
	}
}
