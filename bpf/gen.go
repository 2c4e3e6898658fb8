// SPDX-License-Identifier: Apache-2.0

// Package bpf holds the scheduler's BPF C and the Go bindings bpf2go
// generates for it. The generated object and bindings are committed, so
// building the Go code needs no clang; `make generate` rebuilds them.
//
// Go reaches the object only through these generated types: a renamed or
// removed global, map or program breaks the build, not a run.
package bpf

//go:generate go tool bpf2go -no-global-types -target bpfel -cc clang-19 -strip llvm-strip-19 -type exit_info -type qmap_stats qmap qmap.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3 -fms-extensions -Wno-microsoft-anon-tag -I.. -Iinclude

import "github.com/cilium/ebpf"

// Spec returns a fresh copy of the compiled scheduler's collection spec, for
// the loader to fill in before load.
func Spec() (*ebpf.CollectionSpec, error) { return loadQmap() }

type (
	// ExitInfoRecord is the layout of the BPF side's struct exit_info.
	ExitInfoRecord = qmapExitInfo
	// Stats is the layout of the BPF side's struct qmap_stats, the one
	// .bss global that holds every counter and gauge.
	Stats = qmapQmapStats
	// VariableSpecs are the object's globals before load (tunables are set
	// through them), Variables the same globals once loaded.
	VariableSpecs = qmapVariableSpecs
	Variables     = qmapVariables
	// MapSpecs are the object's maps before load (the FIFOs are sized
	// through them).
	MapSpecs = qmapMapSpecs
)

// MaxSubs is MAX_SUBS of qmap.bpf.c: the sub-schedulers one instance keeps
// in sub_cgroup_ids and sub_dispatched.
const MaxSubs = 8

// Names of the objects the loader looks up in a loaded collection.
const (
	OpsMap        = qmapMapQmapOps    // the cpu form's struct sched_ext_ops
	CidOpsMap     = qmapMapQmapCidOps // the cid form's struct sched_ext_ops_cid
	ArenaMap      = qmapMapArena      // the BPF arena the cid form must use
	ExitRingMap   = qmapMapExitRing   // the ring ops.exit writes its one record to
	SchedSwitchTP = qmapProgQmapSchedSwitch
)
