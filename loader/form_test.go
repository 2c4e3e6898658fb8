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
		if opsStructName(st) != formObjectsOf[f].structName {
			t.Errorf("%s form keeps program %s of %s", f, name, st)
		}
		members[member] = true
	}
	return members, spec
}

// keepForm leaves one form's map and programs, and the two forms run the
// same callbacks: the cid form names CPU callbacks by cid, and adds
// sub_attach/sub_detach and 7.3's capability callbacks, which the kernel
// refuses in the cpu form.
func TestKeepForm(t *testing.T) {
	cpu, cpuSpec := formCallbacks(t, FormCPU)
	cid, cidSpec := formCallbacks(t, FormCID)

	if _, ok := cpuSpec.Maps[bpf.CidOpsMap]; ok {
		t.Errorf("cpu form keeps map %s", bpf.CidOpsMap)
	}
	if _, ok := cidSpec.Maps[bpf.OpsMap]; ok {
		t.Errorf("cid form keeps map %s", bpf.OpsMap)
	}
	for name, spec := range map[string]*ebpf.CollectionSpec{"cpu": cpuSpec, "cid": cidSpec} {
		if _, ok := spec.Maps[bpf.ArenaMap]; !ok {
			t.Errorf("%s form lost map %s", name, bpf.ArenaMap)
		}
	}

	cidName := map[string]string{"select_cpu": "select_cid", "cpu_online": "cid_online", "cpu_offline": "cid_offline"}
	want := map[string]bool{"sub_attach": true, "sub_detach": true, "sub_caps_updated": true, "sub_ecaps_updated": true}
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

// The object's sched_ext_ops_cid___qmap loads as the kernel's
// sched_ext_ops_cid: on 7.3 the cgroup callbacks are cpuctl_*; on 7.2 the
// capability callbacks and rescue fields do not exist, and go with their
// programs.
func TestMatchKernelMembers(t *testing.T) {
	v73 := []string{"sub_caps_updated", "sub_ecaps_updated", "rescue_bandwidth_ppt", "rescue_quantum_us"}
	for _, tc := range []struct {
		name   string
		cpuctl bool     // the kernel calls the cgroup callbacks cpuctl_*
		lacks  []string // members the kernel's struct lacks
		attach map[string]string
		gone   []string // programs dropped
	}{
		{
			name: "7.2", lacks: v73,
			attach: map[string]string{
				"qmap_cid_cgroup_set_weight": "sched_ext_ops_cid:cgroup_set_weight",
				"qmap_cid_enqueue":           "sched_ext_ops_cid:enqueue",
			},
			gone: []string{"qmap_cid_sub_caps_updated", "qmap_cid_sub_ecaps_updated"},
		},
		{
			name: "7.3", cpuctl: true,
			attach: map[string]string{
				"qmap_cid_cgroup_set_weight": "sched_ext_ops_cid:cpuctl_set_weight",
				"qmap_cid_cgroup_init":       "sched_ext_ops_cid:cpuctl_init",
				"qmap_cid_enqueue":           "sched_ext_ops_cid:enqueue",
				"qmap_cid_sub_caps_updated":  "sched_ext_ops_cid:sub_caps_updated",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := bpf.Spec()
			if err != nil {
				t.Fatal(err)
			}
			if err := keepForm(spec, FormCID); err != nil {
				t.Fatal(err)
			}
			kst := btf.Copy(spec.Maps[bpf.CidOpsMap].Value).(*btf.Struct)
			kst.Name = "sched_ext_ops_cid"
			var members []btf.Member
			for _, m := range kst.Members {
				if slices.Contains(tc.lacks, m.Name) {
					continue
				}
				if rest, ok := strings.CutPrefix(m.Name, "cgroup_"); ok && tc.cpuctl {
					m.Name = "cpuctl_" + rest
				}
				members = append(members, m)
			}
			kst.Members = members
			if err := matchKernelMembers(spec, buildSpec(t, kst), FormCID); err != nil {
				t.Fatal(err)
			}
			for prog, want := range tc.attach {
				ps, ok := spec.Programs[prog]
				if !ok || ps.AttachTo != want {
					t.Errorf("%s attaches to %v, want %q", prog, ps, want)
				}
			}
			for _, prog := range tc.gone {
				if _, ok := spec.Programs[prog]; ok {
					t.Errorf("%s is still there; the kernel has no member for it", prog)
				}
			}
			value := spec.Maps[bpf.CidOpsMap].Value.(*btf.Struct)
			if value.Name != "sched_ext_ops_cid" {
				t.Errorf("value type %q, want sched_ext_ops_cid", value.Name)
			}
			have := map[string]bool{}
			for _, m := range value.Members {
				have[m.Name] = true
			}
			for _, m := range tc.lacks {
				if have[m] {
					t.Errorf("member %s kept, the kernel lacks it", m)
				}
			}
			if have["cgroup_set_weight"] == tc.cpuctl || have["cpuctl_set_weight"] != tc.cpuctl || !have["enqueue"] {
				t.Errorf("struct_ops value members after the match: %v", slices.Sorted(maps.Keys(have)))
			}
		})
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

// Each single-cid cmask is struct scx_cmask's layout: base = the cid, one
// cid, two words, and the cid's bit in the 64-cid word its base is in.
func TestWriteCidCmasks(t *testing.T) {
	const n = 130
	a := &arena{mem: make([]byte, 8192)}
	for i := range a.mem {
		a.mem[i] = 0xff // what was there must not leak into the masks
	}
	addr, err := a.writeCidCmasks(n)
	if err != nil || addr != uint64(uintptr(unsafe.Pointer(&a.mem[0]))) {
		t.Fatalf("writeCidCmasks(%d) = %#x, %v", n, addr, err)
	}
	for _, cid := range []int{0, 1, 63, 64, 65, 129} {
		m := a.mem[cid*cmaskStride:]
		u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(m[off:]) }
		u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(m[off:]) }
		if u32(0) != uint32(cid) || u32(4) != 1 || u32(8) != 2 || u32(12) != 0 {
			t.Errorf("cid %d: header base=%d nr_cids=%d alloc_words=%d pad=%#x", cid, u32(0), u32(4), u32(8), u32(12))
		}
		if got, want := u64(16), uint64(1)<<(cid%64); got != want || u64(24) != 0 {
			t.Errorf("cid %d: bits %#x %#x, want %#x 0", cid, got, u64(24), want)
		}
	}
	if bits.OnesCount64(binary.NativeEndian.Uint64(a.mem[n*cmaskStride:])) != 64 {
		t.Error("the arena past the last cmask was written")
	}
	if _, err := (&arena{mem: make([]byte, 64)}).writeCidCmasks(3); err == nil {
		t.Error("cmasks larger than the arena were written")
	}
}

// sizeFIFOs gives all five FIFOs, and the inner map the FIFO array is
// made from, the depth asked for; 0 keeps the object's 4096.
func TestSizeFIFOs(t *testing.T) {
	for _, tc := range []struct {
		ask, want uint32
	}{{0, 4096}, {MinFifoDepth, MinFifoDepth}, {65536, 65536}} {
		spec, err := bpf.Spec()
		if err != nil {
			t.Fatal(err)
		}
		got, err := sizeFIFOs(spec, tc.ask)
		if err != nil {
			t.Fatalf("sizeFIFOs(%d): %v", tc.ask, err)
		}
		if got != tc.want {
			t.Errorf("sizeFIFOs(%d) = %d, want %d", tc.ask, got, tc.want)
		}
		var maps bpf.MapSpecs
		if err := spec.Assign(&maps); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*ebpf.MapSpec{maps.Queue0, maps.Queue1, maps.Queue2, maps.Queue3, maps.Queue4, maps.QueueArr.InnerMap} {
			if m.MaxEntries != tc.want {
				t.Errorf("depth %d: %s holds %d", tc.ask, m.Name, m.MaxEntries)
			}
		}
	}
}
