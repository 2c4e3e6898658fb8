// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Kernel is what the loader needs from the running kernel's BTF.
type Kernel struct {
	Cache    *btf.Cache        // shared with the collection load
	Enums    map[string]uint64 // sched_ext's enumerators, by name
	HasReenq bool              // scx_bpf_dsq_reenq() exists (Linux 7.1+)
	// HasCidForm: struct sched_ext_ops_cid exists (Linux 7.2+).
	HasCidForm bool
	// HasCaps: sub-schedulers run only where their parent grants them
	// capabilities (scx_bpf_sub_grant(), the SCX_CAP_* flags and rescue
	// bandwidth; Linux 7.3+).
	HasCaps bool
	// HasTIDs: tasks have scx tids, which scx_bpf_tid_to_task() resolves
	// under SCX_OPS_TID_TO_TASK (Linux 7.2+).
	HasTIDs bool
}

// readKernel reads the running kernel's BTF (/sys/kernel/btf/vmlinux) and
// what the loader needs of it.
func readKernel() (*Kernel, error) {
	return inspectKernel(btf.NewCache())
}

// inspectKernel reads the enums and kfuncs of the cached kernel BTF.
func inspectKernel(cache *btf.Cache) (*Kernel, error) {
	spec, err := cache.Kernel()
	if err != nil {
		return nil, err
	}
	k, err := inspectSpec(spec)
	if err != nil {
		return nil, err
	}
	k.Cache = cache
	return k, nil
}

// enumTypes are the sched_ext enums holding every value the loader and the
// BPF code read at load time (requiredEnums, the BPF side's SCX_ENUM()s and
// the ops flags).
var enumTypes = []string{"scx_public_consts", "scx_consts", "scx_enq_flags", "scx_ent_flags", "scx_ops_flags", "scx_cap_flags"}

// capsEnums are what the capability hierarchy needs of a 7.3 kernel.
var capsEnums = []string{"SCX_CAP_ENQ_IMMED", "SCX_CAP_ENQ", "SCX_CAP_PREEMPT", "SCX_CAP_PERF", "SCX_ENQ_RESCUE", "SCX_RESCUE_DISABLE"}

// inspectSpec collects sched_ext's enumerators and whether the reenqueue
// kfunc exists. It looks types up by name: a pass over all of the kernel's
// ~130k types costs 0.2 s natively and seconds under emulation, most of the
// time from exec to "enabled". Only if a kernel moved a required value to
// another enum does it fall back to that pass.
func inspectSpec(spec *btf.Spec) (*Kernel, error) {
	k := &Kernel{Enums: make(map[string]uint64)}
	for _, name := range enumTypes {
		types, err := spec.AnyTypesByName(name)
		if errors.Is(err, btf.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up enum %s: %w", name, err)
		}
		for _, t := range types {
			if e, ok := t.(*btf.Enum); ok {
				addEnum(k.Enums, e)
			}
		}
	}
	if missingRequired(k.Enums) {
		if err := scanEnums(spec, k.Enums); err != nil {
			return nil, err
		}
	}

	reenq, err := hasFunc(spec, "scx_bpf_dsq_reenq")
	if err != nil {
		return nil, err
	}
	k.HasReenq = reenq

	grant, err := hasFunc(spec, "scx_bpf_sub_grant")
	if err != nil {
		return nil, err
	}
	k.HasCaps = grant
	for _, name := range capsEnums {
		if _, ok := k.Enums[name]; !ok {
			k.HasCaps = false
		}
	}

	tids, err := hasFunc(spec, "scx_bpf_tid_to_task")
	if err != nil {
		return nil, err
	}
	_, flag := k.Enums["SCX_OPS_TID_TO_TASK"]
	k.HasTIDs = tids && flag

	var cidOps *btf.Struct
	switch err := spec.TypeByName("sched_ext_ops_cid", &cidOps); {
	case err == nil:
		k.HasCidForm = true
	case !errors.Is(err, btf.ErrNotFound):
		return nil, fmt.Errorf("looking up sched_ext_ops_cid: %w", err)
	}
	return k, nil
}

func addEnum(enums map[string]uint64, e *btf.Enum) {
	for _, v := range e.Values {
		enums[v.Name] = v.Value
	}
}

func missingRequired(enums map[string]uint64) bool {
	for _, name := range requiredEnums {
		if _, ok := enums[name]; !ok {
			return true
		}
	}
	return false
}

// scanEnums adds every enumerator of the kernel: the slow path.
func scanEnums(spec *btf.Spec, enums map[string]uint64) error {
	for typ, err := range spec.All() {
		if err != nil {
			return fmt.Errorf("iterating kernel BTF: %w", err)
		}
		if e, ok := typ.(*btf.Enum); ok {
			addEnum(enums, e)
		}
	}
	return nil
}

func hasFunc(spec *btf.Spec, name string) (bool, error) {
	types, err := spec.AnyTypesByName(name)
	if errors.Is(err, btf.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up %s: %w", name, err)
	}
	for _, t := range types {
		if _, ok := t.(*btf.Func); ok && t.TypeName() == name {
			return true, nil
		}
	}
	return false, nil
}

// hideKfuncFlavours makes every kfunc the object calls resolve to one kernel
// function.
//
// Linux 7.x has both scx_bpf_dsq_insert and scx_bpf_dsq_insert___v2 (and
// ___v2_impl). cilium/ebpf v0.22 looks a kfunc up by its name without the
// ___ suffix and drops inexact matches with a loop that skips the entry after
// each one it drops, so it can find two candidates and refuse to load. This
// runs that same lookup and renames the flavours it lets through until only
// exact matches come back; a renamed type (same type ID) no longer shares
// the kfunc's name.
func hideKfuncFlavours(kernel, object *btf.Spec) error {
	return forEachKfunc(object, func(fn *btf.Func) error {
		return hideFlavoursOf(kernel, fn.Name)
	})
}

// forEachKfunc calls @do with each function the object declares extern.
func forEachKfunc(object *btf.Spec, do func(*btf.Func) error) error {
	for typ, err := range object.All() {
		if err != nil {
			return fmt.Errorf("iterating the object's BTF: %w", err)
		}
		if fn, ok := typ.(*btf.Func); ok && fn.Linkage == btf.ExternFunc {
			if err := do(fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func hideFlavoursOf(kernel *btf.Spec, name string) error {
	// Each round renames at least one type out of the name's bucket.
	for range 32 {
		types, err := kernel.AnyTypesByName(name)
		if errors.Is(err, btf.ErrNotFound) {
			return nil // a __weak kfunc this kernel lacks
		}
		if err != nil {
			return fmt.Errorf("looking up kfunc %s: %w", name, err)
		}
		renamed := false
		for _, t := range types {
			if fn, ok := t.(*btf.Func); ok && fn.Name != name && strings.Contains(fn.Name, "___") {
				fn.Name = strings.ReplaceAll(fn.Name, "___", "__flavour_")
				renamed = true
			}
		}
		if !renamed {
			return nil
		}
	}
	return fmt.Errorf("kfunc %s: its flavours could not be told apart", name)
}

// adaptVoidKfuncs lets the object call a kfunc that a newer kernel made
// return a value (7.3's scx_bpf_cidperf_set returns an int; 7.2's and the
// object's, built against 7.2, return void). cilium/ebpf refuses a kfunc
// whose prototype differs from the kernel's; the object ignores the return
// value, so its prototype takes the kernel's return type. Only void becomes
// a value: code that reads a return value a kernel does not give stays
// refused.
func adaptVoidKfuncs(kernel, object *btf.Spec) error {
	return forEachKfunc(object, func(fn *btf.Func) error {
		var kfn *btf.Func
		if err := kernel.TypeByName(fn.Name, &kfn); err != nil {
			return nil // absent (a __weak kfunc) or ambiguous: left to the loader
		}
		if btf.CheckTypeCompatibility(fn.Type, kfn.Type) == nil {
			return nil
		}
		proto, ok := fn.Type.(*btf.FuncProto)
		kproto, kok := kfn.Type.(*btf.FuncProto)
		if !ok || !kok || !isVoid(proto.Return) {
			return nil
		}
		adapted := &btf.FuncProto{Return: kproto.Return, Params: proto.Params}
		if btf.CheckTypeCompatibility(adapted, kproto) == nil {
			fn.Type = adapted
		}
		return nil
	})
}

func isVoid(t btf.Type) bool {
	_, ok := t.(*btf.Void)
	return ok || t == nil
}
