// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"testing"

	"github.com/cilium/ebpf/btf"
)

// buildSpec builds a BTF spec from @types, as the kernel or an object would
// carry them.
func buildSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		if _, err := b.Add(typ); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func kfunc(name string, linkage btf.FuncLinkage) *btf.Func {
	return &btf.Func{Name: name, Type: &btf.FuncProto{Return: &btf.Void{}}, Linkage: linkage}
}

func enum(name string, values ...btf.EnumValue) *btf.Enum {
	return &btf.Enum{Name: name, Size: 8, Values: values}
}

// The values every kernel this loader supports has, in their usual enums.
func requiredValues() []btf.Type {
	return []btf.Type{
		enum("scx_public_consts", btf.EnumValue{Name: "SCX_SLICE_DFL", Value: 20000000}),
		enum("scx_enq_flags", btf.EnumValue{Name: "SCX_ENQ_REENQ", Value: 1 << 40},
			btf.EnumValue{Name: "SCX_ENQ_CPU_SELECTED", Value: 1 << 10}),
		enum("scx_ent_flags", btf.EnumValue{Name: "SCX_TASK_REENQ_REASON_MASK", Value: 3 << 12},
			btf.EnumValue{Name: "SCX_TASK_REENQ_KFUNC", Value: 1 << 12}),
	}
}

func TestInspectSpec(t *testing.T) {
	tests := []struct {
		name      string
		types     []btf.Type
		wantReenq bool
		wantTIDs  bool
		wantEnum  string // an enumerator that must be found
	}{
		{name: "before 7.1", types: append(requiredValues(), kfunc("scx_bpf_dsq_insert", btf.GlobalFunc)),
			wantEnum: "SCX_SLICE_DFL"},
		{name: "7.1+", types: append(requiredValues(), kfunc("scx_bpf_dsq_reenq", btf.GlobalFunc)),
			wantReenq: true, wantEnum: "SCX_TASK_REENQ_KFUNC"},
		{name: "7.2+: tids", types: append(requiredValues(), kfunc("scx_bpf_tid_to_task", btf.GlobalFunc),
			enum("scx_ops_flags", btf.EnumValue{Name: "SCX_OPS_TID_TO_TASK", Value: 1 << 8})),
			wantTIDs: true, wantEnum: "SCX_OPS_TID_TO_TASK"},
		{name: "tid kfunc without the ops flag", types: append(requiredValues(), kfunc("scx_bpf_tid_to_task", btf.GlobalFunc))},
		{name: "flavour only", types: append(requiredValues(), kfunc("scx_bpf_dsq_reenq___v2", btf.GlobalFunc))},
		// A kernel that moved a required value: found by the full pass.
		{name: "value in another enum", types: []btf.Type{
			enum("scx_public_consts", btf.EnumValue{Name: "SCX_SLICE_DFL", Value: 20000000}),
			enum("scx_new_home", btf.EnumValue{Name: "SCX_ENQ_REENQ", Value: 1 << 40}),
		}, wantEnum: "SCX_ENQ_REENQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := inspectSpec(buildSpec(t, tt.types...))
			if err != nil {
				t.Fatal(err)
			}
			if k.HasReenq != tt.wantReenq {
				t.Errorf("HasReenq = %v, want %v", k.HasReenq, tt.wantReenq)
			}
			if k.HasTIDs != tt.wantTIDs {
				t.Errorf("HasTIDs = %v, want %v", k.HasTIDs, tt.wantTIDs)
			}
			if _, ok := k.Enums[tt.wantEnum]; tt.wantEnum != "" && !ok {
				t.Errorf("%s not found; enums = %v", tt.wantEnum, k.Enums)
			}
		})
	}
}

// After hideKfuncFlavours, the lookup cilium/ebpf's linker makes for each
// kfunc the object calls finds exactly one function.
func TestHideKfuncFlavours(t *testing.T) {
	tests := []struct {
		name   string
		kernel []string
	}{
		{"no flavours", []string{"scx_bpf_dsq_insert"}},
		{"7.x insert", []string{"scx_bpf_dsq_insert", "scx_bpf_dsq_insert___v2", "scx_bpf_dsq_insert___v2_impl"}},
		{"flavours first", []string{"scx_bpf_dsq_insert___v2_impl", "scx_bpf_dsq_insert___v2", "scx_bpf_dsq_insert"}},
		{"many", []string{"scx_bpf_dsq_insert", "scx_bpf_dsq_insert___a", "scx_bpf_dsq_insert___b",
			"scx_bpf_dsq_insert___c", "scx_bpf_dsq_insert___d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var types []btf.Type
			for _, n := range tt.kernel {
				types = append(types, kfunc(n, btf.GlobalFunc))
			}
			kernel := buildSpec(t, types...)
			// The object calls insert and a __weak kfunc the kernel lacks.
			object := buildSpec(t, kfunc("scx_bpf_dsq_insert", btf.ExternFunc), kfunc("scx_bpf_gone", btf.ExternFunc))

			var fn *btf.Func
			if err := kernel.TypeByName("scx_bpf_dsq_insert", &fn); err != nil {
				t.Logf("before: %v (the cilium/ebpf v0.22 lookup this works around)", err)
			}
			if err := hideKfuncFlavours(kernel, object); err != nil {
				t.Fatal(err)
			}
			if err := kernel.TypeByName("scx_bpf_dsq_insert", &fn); err != nil {
				t.Fatalf("after: %v", err)
			}
			if fn.Name != "scx_bpf_dsq_insert" {
				t.Errorf("resolved to %s", fn.Name)
			}
		})
	}
}

// A kfunc the object declares void takes the kernel's return type; one the
// object reads a value from, or whose parameters differ, keeps its own.
func TestAdaptVoidKfuncs(t *testing.T) {
	s32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	u64 := &btf.Int{Name: "long long unsigned int", Size: 8}
	param := []btf.FuncParam{{Name: "cid", Type: s32}}
	fn := func(name string, ret btf.Type, params []btf.FuncParam) *btf.Func {
		return &btf.Func{Name: name, Type: &btf.FuncProto{Return: ret, Params: params}, Linkage: btf.ExternFunc}
	}
	tests := []struct {
		name        string
		obj, kernel *btf.Func
		wantRet     btf.Type // the object's return type after the call
	}{
		{"void to int", fn("f", &btf.Void{}, param), fn("f", s32, param), s32},
		{"int to void stays", fn("f", s32, param), fn("f", &btf.Void{}, param), s32},
		{"params differ", fn("f", &btf.Void{}, param), fn("f", s32, append(param, btf.FuncParam{Name: "x", Type: u64})), &btf.Void{}},
		{"same", fn("f", &btf.Void{}, param), fn("f", &btf.Void{}, param), &btf.Void{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, kernel := buildSpec(t, tt.obj), buildSpec(t, tt.kernel)
			if err := adaptVoidKfuncs(kernel, obj); err != nil {
				t.Fatal(err)
			}
			var got *btf.Func
			if err := obj.TypeByName("f", &got); err != nil {
				t.Fatal(err)
			}
			ret := got.Type.(*btf.FuncProto).Return
			if _, wantVoid := tt.wantRet.(*btf.Void); wantVoid != isVoid(ret) || !wantVoid && ret.TypeName() != tt.wantRet.TypeName() {
				t.Errorf("return type %v, want %v", ret, tt.wantRet)
			}
		})
	}
}
