// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

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
// update_idle for its own idle tracking.
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
	want := map[string]bool{"update_idle": true}
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
