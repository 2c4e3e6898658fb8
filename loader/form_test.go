// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"encoding/binary"
	"errors"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

func TestPickForm(t *testing.T) {
	tests := []struct {
		want    Form
		hasCid  bool
		got     Form
		wantErr error
	}{
		{FormAuto, true, FormCID, nil},
		{FormAuto, false, FormCPU, nil},
		{FormCPU, true, FormCPU, nil},
		{FormCPU, false, FormCPU, nil},
		{FormCID, true, FormCID, nil},
		{FormCID, false, 0, ErrKernelTooOld},
	}
	for _, tt := range tests {
		got, err := pickForm(&Kernel{HasCidForm: tt.hasCid}, tt.want)
		if !errors.Is(err, tt.wantErr) || (err == nil && got != tt.got) {
			t.Errorf("pickForm(%s, cid kernel %v) = %s, %v; want %s, %v", tt.want, tt.hasCid, got, err, tt.got, tt.wantErr)
		}
	}
}

// The callbacks each form's struct_ops map holds, by member name.
func formCallbacks(t *testing.T, f Form) (map[string]bool, *ebpf.CollectionSpec) {
	t.Helper()
	spec, err := bpf.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if err := keepForm(spec, f); err != nil {
		t.Fatal(err)
	}
	members := map[string]bool{}
	for name, ps := range spec.Programs {
		if ps.Type != ebpf.StructOps {
			continue
		}
		st, member, _ := strings.Cut(ps.AttachTo, ":")
		if st != formObjectsOf[f].structName {
			t.Errorf("%s form keeps program %s of %s", f, name, st)
		}
		members[member] = true
	}
	return members, spec
}

// keepForm leaves one form's map and programs, and the two forms run the
// same callbacks: the cid form names CPU callbacks by cid, and adds
// update_idle for its own idle tracking and sub_attach/sub_detach, which
// the kernel refuses in the cpu form.
func TestKeepForm(t *testing.T) {
	cpu, cpuSpec := formCallbacks(t, FormCPU)
	cid, cidSpec := formCallbacks(t, FormCID)

	for _, m := range []string{bpf.CidOpsMap, bpf.ArenaMap} {
		if _, ok := cpuSpec.Maps[m]; ok {
			t.Errorf("cpu form keeps map %s", m)
		}
	}
	if _, ok := cidSpec.Maps[bpf.OpsMap]; ok {
		t.Errorf("cid form keeps map %s", bpf.OpsMap)
	}
	if _, ok := cidSpec.Maps[bpf.ArenaMap]; !ok {
		t.Errorf("cid form lost map %s", bpf.ArenaMap)
	}

	cidName := map[string]string{"select_cpu": "select_cid", "cpu_online": "cid_online", "cpu_offline": "cid_offline"}
	want := map[string]bool{"update_idle": true, "sub_attach": true, "sub_detach": true}
	for m := range cpu {
		if n, ok := cidName[m]; ok {
			m = n
		}
		want[m] = true
	}
	if !maps.Equal(cid, want) {
		t.Errorf("cid form callbacks %v, want %v (the cpu form's %v)",
			slices.Sorted(maps.Keys(cid)), slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(cpu)))
	}
}

// The object's sub-scheduler table is bpf.MaxSubs long, as Subs reads it.
func TestSubTableSize(t *testing.T) {
	spec, err := bpf.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var vars bpf.VariableSpecs
	if err := spec.Assign(&vars); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*ebpf.VariableSpec{vars.SubCgroupIds, vars.SubDispatched} {
		if got, want := v.Size(), uint32(bpf.MaxSubs*8); got != want {
			t.Errorf("%s is %d bytes, want %d (bpf.MaxSubs u64s)", v.Name, got, want)
		}
	}
}

// A kernel that calls the cid form's cgroup callbacks cpuctl_* (7.3) gets
// them under those names; the rest keep theirs.
func TestMatchKernelMembers(t *testing.T) {
	spec, err := bpf.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if err := keepForm(spec, FormCID); err != nil {
		t.Fatal(err)
	}
	kst := btf.Copy(spec.Maps[bpf.CidOpsMap].Value).(*btf.Struct)
	for i, m := range kst.Members {
		if rest, ok := strings.CutPrefix(m.Name, "cgroup_"); ok {
			kst.Members[i].Name = "cpuctl_" + rest
		}
	}
	if err := matchKernelMembers(spec, buildSpec(t, kst), FormCID); err != nil {
		t.Fatal(err)
	}
	attach := map[string]string{}
	for name, ps := range spec.Programs {
		attach[name] = ps.AttachTo
	}
	for prog, want := range map[string]string{
		"qmap_cid_cgroup_set_weight": "sched_ext_ops_cid:cpuctl_set_weight",
		"qmap_cid_cgroup_init":       "sched_ext_ops_cid:cpuctl_init",
		"qmap_cid_enqueue":           "sched_ext_ops_cid:enqueue",
	} {
		if attach[prog] != want {
			t.Errorf("%s attaches to %q, want %q", prog, attach[prog], want)
		}
	}
	members := map[string]bool{}
	for _, m := range spec.Maps[bpf.CidOpsMap].Value.(*btf.Struct).Members {
		members[m.Name] = true
	}
	if !members["cpuctl_set_weight"] || members["cgroup_set_weight"] || !members["enqueue"] {
		t.Errorf("struct_ops value members after the match: %v", slices.Sorted(maps.Keys(members)))
	}
}

func TestPossibleCPUs(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"0\n", 1}, {"0-3\n", 4}, {"0,2-5,8\n", 6}, {"0-63,128-191", 128},
	}
	for _, tt := range tests {
		got, err := possibleCPUs(fstest.MapFS{"devices/system/cpu/possible": {Data: []byte(tt.in)}})
		if err != nil || got != tt.want {
			t.Errorf("possibleCPUs(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "0-"} {
		if _, err := possibleCPUs(fstest.MapFS{"devices/system/cpu/possible": {Data: []byte(bad)}}); err == nil {
			t.Errorf("possibleCPUs(%q) succeeded", bad)
		}
	}
}

// The full cmask is struct scx_cmask's layout: base 0, the cid count, the
// words, then a bit per cid and zero tail padding.
func TestWriteFullCmask(t *testing.T) {
	for _, n := range []int{1, 2, 64, 65, 130} {
		a := &arena{mem: make([]byte, 4096)}
		addr, err := a.writeFullCmask(n)
		if err != nil || addr != uint64(uintptr(unsafe.Pointer(&a.mem[0]))) {
			t.Fatalf("writeFullCmask(%d) = %#x, %v", n, addr, err)
		}
		u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(a.mem[off:]) }
		words := (n + 63) / 64
		if u32(0) != 0 || u32(4) != uint32(n) || u32(8) != uint32(words+1) {
			t.Errorf("%d cids: header base=%d nr_cids=%d alloc_words=%d", n, u32(0), u32(4), u32(8))
		}
		set := 0
		for w := range words + 1 {
			set += bits.OnesCount64(binary.NativeEndian.Uint64(a.mem[16+8*w:]))
		}
		if set != n {
			t.Errorf("%d cids: %d bits set", n, set)
		}
	}
	if _, err := (&arena{mem: make([]byte, 16)}).writeFullCmask(64); err == nil {
		t.Error("a cmask larger than the arena was written")
	}
}
