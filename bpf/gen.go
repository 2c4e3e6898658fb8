// SPDX-License-Identifier: Apache-2.0

// Package bpf holds the scheduler's BPF C and the Go bindings bpf2go
// generates for it. The generated object and bindings are committed, so
// building the Go code needs no clang; `make generate` rebuilds them.
package bpf

//go:generate go tool bpf2go -no-global-types -target bpfel -cc clang-19 -strip llvm-strip-19 -type exit_info qmap qmap.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3 -fms-extensions -Wno-microsoft-anon-tag -I.. -Iinclude

import "github.com/cilium/ebpf"

// Spec returns a fresh copy of the compiled scheduler's collection spec, for
// the loader to fill in before load.
func Spec() (*ebpf.CollectionSpec, error) { return loadQmap() }

// ExitInfoRecord is the layout of the BPF side's struct exit_info.
type ExitInfoRecord = qmapExitInfo
