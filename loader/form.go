// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

// Form is the struct_ops type the scheduler is loaded as. The BPF object
// holds both; Load loads one.
type Form int

const (
	FormAuto Form = iota // the cid form where the kernel has it, else the cpu form
	FormCPU              // struct sched_ext_ops: CPUs by number (Linux 7.1+)
	FormCID              // struct sched_ext_ops_cid: CPUs by cid (Linux 7.2+)
)

func (f Form) String() string {
	switch f {
	case FormCPU:
		return "cpu"
	case FormCID:
		return "cid"
	default:
		return "auto"
	}
}

// formObjects are a form's struct_ops map and the kernel type it has.
type formObjects struct {
	opsMap     string
	structName string
}

var formObjectsOf = map[Form]formObjects{
	FormCPU: {bpf.OpsMap, "sched_ext_ops"},
	FormCID: {bpf.CidOpsMap, "sched_ext_ops_cid"},
}

// pickForm resolves FormAuto for @k and refuses a form @k does not have.
func pickForm(k *Kernel, want Form) (Form, error) {
	switch want {
	case FormAuto:
		if k.HasCidForm {
			return FormCID, nil
		}
		return FormCPU, nil
	case FormCID:
		if !k.HasCidForm {
			return 0, newError(ErrKernelTooOld, nil, "this kernel has no cid-form struct_ops (struct sched_ext_ops_cid, Linux 7.2+): load the cpu form")
		}
		return FormCID, nil
	case FormCPU:
		return FormCPU, nil
	}
	return 0, newError(ErrInternal, nil, "unknown struct_ops form %d", want)
}

// keepForm removes the other form's struct_ops map and programs from
// @spec, and the arena if the cpu form, which does not use it, stays.
func keepForm(spec *ebpf.CollectionSpec, f Form) error {
	keep := formObjectsOf[f]
	for name, ps := range spec.Programs {
		if ps.Type != ebpf.StructOps {
			continue
		}
		st, _, ok := strings.Cut(ps.AttachTo, ":")
		if !ok {
			return fmt.Errorf("struct_ops program %s is in no struct_ops map", name)
		}
		if st != keep.structName {
			delete(spec.Programs, name)
		}
	}
	for _, other := range formObjectsOf {
		if other.opsMap != keep.opsMap {
			delete(spec.Maps, other.opsMap)
		}
	}
	if f == FormCPU {
		delete(spec.Maps, bpf.ArenaMap)
	}
	return nil
}

// arena is the cid form's BPF arena, mapped into this process.
type arena struct {
	m   *ebpf.Map
	mem []byte // all of it: &mem[0] is its user address, the one BPF sees
}

// newArena creates the cid form's arena and maps it: the verifier refuses a
// program that uses an arena whose user address is not set yet.
func newArena(spec *ebpf.CollectionSpec) (*arena, error) {
	ms, ok := spec.Maps[bpf.ArenaMap]
	if !ok {
		return nil, fmt.Errorf("no map %q in the object", bpf.ArenaMap)
	}
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return nil, fmt.Errorf("creating the arena: %w", err)
	}
	mem, err := unix.Mmap(m.FD(), 0, int(ms.MaxEntries)*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("mapping the arena: %w", err)
	}
	return &arena{m: m, mem: mem}, nil
}

func (a *arena) Close() {
	unix.Munmap(a.mem)
	a.m.Close()
}

// writeFullCmask writes a struct scx_cmask of all @nrCids cids at the start
// of the arena (the kernel marks a page written from user space as taken)
// and returns its arena address.
func (a *arena) writeFullCmask(nrCids int) (uint64, error) {
	const bitsOff = 16 // u32 base, nr_cids, alloc_words; then u64 bits[]
	words := (nrCids + 63) / 64
	// The kernel wants storage for the worst-case base alignment, a word
	// more than the cids take (SCX_CMASK_NR_WORDS).
	alloc := words + 1
	if nrCids <= 0 || bitsOff+8*alloc > len(a.mem) {
		return 0, fmt.Errorf("a cmask of %d cids does not fit the arena", nrCids)
	}
	b := a.mem
	binary.NativeEndian.PutUint32(b[0:], 0)
	binary.NativeEndian.PutUint32(b[4:], uint32(nrCids))
	binary.NativeEndian.PutUint32(b[8:], uint32(alloc))
	for w := range alloc {
		var bits uint64
		switch rest := nrCids - 64*w; {
		case rest >= 64:
			bits = ^uint64(0)
		case rest > 0:
			bits = 1<<rest - 1
		}
		binary.NativeEndian.PutUint64(b[bitsOff+8*w:], bits)
	}
	return uint64(uintptr(unsafe.Pointer(&b[0]))), nil
}

// possibleCPUs counts the CPUs in /sys/devices/system/cpu/possible ("0-3",
// "0,2-5"): the size of the cid space.
func possibleCPUs(sys fs.FS) (int, error) {
	b, err := fs.ReadFile(sys, "devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for r := range strings.SplitSeq(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("possible CPUs %q: %w", b, err)
		}
		last := first
		if found {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return 0, fmt.Errorf("possible CPUs %q: bad range %q", b, r)
			}
		}
		n += last - first + 1
	}
	return n, nil
}

// kernelMemberNames are the names a later kernel gave a struct_ops member
// that the object (built against 7.2's BTF) knows under its 7.2 name: 7.3's
// cid form calls the cgroup callbacks cpuctl_*.
func kernelMemberNames(member string) []string {
	if rest, ok := strings.CutPrefix(member, "cgroup_"); ok {
		return []string{"cpuctl_" + rest}
	}
	return nil
}

// matchKernelMembers renames the members of @f's struct_ops value, and the
// programs' attach points, that the running kernel's struct knows under a
// newer name. cilium/ebpf matches the object's members to the kernel's by
// name.
func matchKernelMembers(spec *ebpf.CollectionSpec, kernel *btf.Spec, f Form) error {
	obj := formObjectsOf[f]
	var kst *btf.Struct
	if err := kernel.TypeByName(obj.structName, &kst); err != nil {
		return fmt.Errorf("the kernel's struct %s: %w", obj.structName, err)
	}
	has := make(map[string]bool, len(kst.Members))
	for _, m := range kst.Members {
		has[m.Name] = true
	}
	ms, ok := spec.Maps[obj.opsMap]
	if !ok {
		return fmt.Errorf("no struct_ops map %q", obj.opsMap)
	}
	ust, ok := btf.Copy(ms.Value).(*btf.Struct)
	if !ok {
		return fmt.Errorf("%s: value is %T, not a struct", obj.opsMap, ms.Value)
	}
	renamed := map[string]string{}
	for i, m := range ust.Members {
		if has[m.Name] {
			continue
		}
		for _, alt := range kernelMemberNames(m.Name) {
			if has[alt] {
				ust.Members[i].Name = alt
				renamed[m.Name] = alt
				break
			}
		}
	}
	if len(renamed) == 0 {
		return nil
	}
	ms.Value = ust
	for _, ps := range spec.Programs {
		st, member, _ := strings.Cut(ps.AttachTo, ":")
		if alt, ok := renamed[member]; ok && st == obj.structName {
			ps.AttachTo = st + ":" + alt
		}
	}
	return nil
}
