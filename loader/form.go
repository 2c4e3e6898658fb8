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

// keepForm removes the other form's struct_ops map and programs from @spec.
// Both keep the arena: the code the forms share (the 10 ms timer's
// repartition) passes arena cmasks to 7.3's kfuncs, dead in the cpu form but
// relocated all the same.
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
		if opsStructName(st) != keep.structName {
			delete(spec.Programs, name)
		}
	}
	for _, other := range formObjectsOf {
		if other.opsMap != keep.opsMap {
			delete(spec.Maps, other.opsMap)
		}
	}
	return nil
}

// arena is the object's BPF arena, mapped into this process.
type arena struct {
	m   *ebpf.Map
	mem []byte // all of it: &mem[0] is its user address, the one BPF sees
}

// newArena creates the arena and maps it: the verifier refuses a
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

// cmaskStride is the bytes of each single-cid cmask writeCidCmasks lays out,
// as BPF's CMASK_STRIDE: struct scx_cmask's u32 base, nr_cids and
// alloc_words, padding to the u64 bits[], and two words of bits (the kernel
// wants a word more than the cids take, SCX_CMASK_NR_WORDS).
const cmaskStride = 32

// writeCidCmasks writes, from the start of the arena (the kernel marks a page
// written from user space as taken), one struct scx_cmask per cid holding
// that cid alone, cmaskStride bytes apart, and returns the first one's arena
// address. A cmask's bits start at the 64-cid word its base is in.
func (a *arena) writeCidCmasks(nrCids int) (uint64, error) {
	if nrCids <= 0 || nrCids*cmaskStride > len(a.mem) {
		return 0, fmt.Errorf("%d single-cid cmasks do not fit the arena", nrCids)
	}
	for cid := range nrCids {
		b := a.mem[cid*cmaskStride : (cid+1)*cmaskStride]
		clear(b)
		binary.NativeEndian.PutUint32(b[0:], uint32(cid))
		binary.NativeEndian.PutUint32(b[4:], 1)
		binary.NativeEndian.PutUint32(b[8:], 2)
		binary.NativeEndian.PutUint64(b[16:], 1<<(cid%64))
	}
	return uint64(uintptr(unsafe.Pointer(&a.mem[0]))), nil
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

// opsStructName is the kernel struct that the object's struct_ops type
// @name stands for: the object declares its own sched_ext_ops_cid___qmap.
func opsStructName(name string) string {
	base, _, _ := strings.Cut(name, "___")
	return base
}

// matchKernelMembers fits @f's struct_ops value to the running kernel's
// struct, which cilium/ebpf matches to the object's by name: members the
// kernel knows under a newer name are renamed, and members it lacks (7.3's,
// on 7.2) are dropped with their programs. The value type takes the kernel
// struct's name.
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
	kernelName := map[string]string{} // the object's member name: the kernel's; "" if none
	members := ust.Members[:0]
	for _, m := range ust.Members {
		name := m.Name
		if !has[name] {
			name = ""
			for _, alt := range kernelMemberNames(m.Name) {
				if has[alt] {
					name = alt
					break
				}
			}
		}
		kernelName[m.Name] = name
		if name != "" {
			m.Name = name
			members = append(members, m)
		}
	}
	ust.Members = members
	ust.Name = obj.structName
	ms.Value = ust
	for progName, ps := range spec.Programs {
		st, member, _ := strings.Cut(ps.AttachTo, ":")
		if ps.Type != ebpf.StructOps || opsStructName(st) != obj.structName {
			continue
		}
		name, ok := kernelName[member]
		if !ok {
			return fmt.Errorf("program %s attaches to %s, which %s lacks", progName, ps.AttachTo, st)
		}
		if name == "" {
			delete(spec.Programs, progName)
			continue
		}
		ps.AttachTo = obj.structName + ":" + name
	}
	return nil
}
