// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Kernel is what the loader needs from the running kernel's BTF.
type Kernel struct {
	Cache    *btf.Cache        // shared with the collection load
	Enums    map[string]uint64 // every enumerator, by name
	HasReenq bool              // scx_bpf_dsq_reenq() exists (Linux 7.1+)
}

func loadKernelBTF() (*btf.Cache, error) {
	cache := btf.NewCache()
	if _, err := cache.Kernel(); err != nil {
		return nil, err
	}
	return cache, nil
}

// inspectKernel reads the enums and kfuncs of the cached kernel BTF in one
// pass over its types (~150k), and hides kfunc "flavours" from cilium/ebpf.
//
// Linux 7.x has both scx_bpf_dsq_insert and scx_bpf_dsq_insert___v2 (and
// ___v2_impl). cilium/ebpf v0.22 looks a kfunc up by its name without the
// ___ suffix and drops inexact matches with a loop that skips the entry after
// each one it drops, so it finds two candidates and refuses to load. Renaming
// the suffixed functions in the cached spec (which the kfunc fixup uses, and
// whose type IDs stay the same) leaves one candidate per name.
func inspectKernel(cache *btf.Cache) (*Kernel, error) {
	spec, err := cache.Kernel()
	if err != nil {
		return nil, err
	}
	k := &Kernel{Cache: cache, Enums: make(map[string]uint64)}
	for typ, err := range spec.All() {
		if err != nil {
			return nil, fmt.Errorf("iterating kernel BTF: %w", err)
		}
		switch t := typ.(type) {
		case *btf.Enum:
			for _, v := range t.Values {
				k.Enums[v.Name] = v.Value
			}
		case *btf.Func:
			if t.Name == "scx_bpf_dsq_reenq" {
				k.HasReenq = true
			}
			if strings.Contains(t.Name, "___") {
				t.Name = strings.ReplaceAll(t.Name, "___", "__flavour_")
			}
		}
	}
	return k, nil
}
