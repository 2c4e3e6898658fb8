// SPDX-License-Identifier: Apache-2.0

// Package procstat splits /proc/PID/stat, whose command name may hold
// spaces and parentheses, for the host's VM tools and the guest's workloads.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Field indexes into Split's fields, which start at the process state
// (proc(5)'s field 3).
const (
	PPID  = 1  // parent pid
	Flags = 6  // the kernel's PF_* flags
	UTime = 11 // user time, clock ticks
	STime = 12 // system time, clock ticks
	Nice  = 16 // nice level
)

// Split returns the command name, without its parentheses, and the fields
// after it. The name ends at the last ')': it may hold ')' itself.
func Split(b []byte) (comm string, fields []string, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", nil, fmt.Errorf("no (command name) in %q", b)
	}
	return string(b[open+1 : end]), strings.Fields(string(b[end+1:])), nil
}

// Read is Split of the stat file at @path.
func Read(path string) (comm string, fields []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	comm, fields, err = Split(b)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return comm, fields, nil
}
