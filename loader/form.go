// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

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

// newArena creates the cid form's arena and maps it: the verifier refuses a
// program that uses an arena whose user address is not set yet.
func newArena(spec *ebpf.CollectionSpec) (*ebpf.Map, error) {
	ms, ok := spec.Maps[bpf.ArenaMap]
	if !ok {
		return nil, fmt.Errorf("no map %q in the object", bpf.ArenaMap)
	}
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return nil, fmt.Errorf("creating the arena: %w", err)
	}
	if _, err := m.Memory(); err != nil {
		m.Close()
		return nil, fmt.Errorf("mapping the arena: %w", err)
	}
	return m, nil
}
