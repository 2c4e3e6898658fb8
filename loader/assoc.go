// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// bpfProgAssocStructOps is BPF_PROG_ASSOC_STRUCT_OPS (Linux 6.19+), which
// cilium/ebpf v0.22 does not wrap.
const bpfProgAssocStructOps = 38

// associate ties @prog, a program outside the struct_ops map (the
// sched_switch tracepoint), to the scheduler @ops. The kernel finds the
// scheduler a kfunc call acts for through that tie; without it, once
// schedulers nest, it acts for none (and warns of an unassociated program).
func associate(prog *ebpf.Program, ops *ebpf.Map) error {
	attr := struct {
		mapFD  uint32
		progFD uint32
		flags  uint32
	}{uint32(ops.FD()), uint32(prog.FD()), 0}
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgAssocStructOps, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return fmt.Errorf("BPF_PROG_ASSOC_STRUCT_OPS: %w", errno)
	}
	return nil
}
