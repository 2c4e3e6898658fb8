// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
)

// exitCode is the process exit status. Every refusal has its own, so that
// scripts and systemd can tell them apart; the README lists them.
type exitCode int

const (
	exitOK           exitCode = 0  // detached normally (SIGINT/SIGTERM/SIGHUP or unregistered)
	exitEjected      exitCode = 1  // the kernel ejected the scheduler with an error
	exitUsage        exitCode = 2  // bad command line
	exitNotRoot      exitCode = 3  // lacks CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN): not root
	exitNoSchedExt   exitCode = 4  // kernel built without sched_ext (or BTF), or /sys not mounted
	exitKernelTooOld exitCode = 5  // sched_ext without scx_bpf_dsq_reenq (before 7.1)
	exitBusy         exitCode = 6  // another sched_ext scheduler is attached
	exitLoad         exitCode = 7  // the BPF object failed to load (verifier, maps)
	exitAttach       exitCode = 8  // the kernel refused to enable the scheduler
	exitInternal     exitCode = 9  // anything else
	exitNoInstance   exitCode = 10 // "stats": no running instance to ask
	exitNoTarget     exitCode = 11 // -d: the process it names does not exist
	exitNoParent     exitCode = 12 // -c: no scheduler runs to attach under
	exitNoSubScheds  exitCode = 13 // -c: the scheduler above takes no sub-schedulers
	exitCgroupTaken  exitCode = 14 // -c: the cgroup (or one below it) has a scheduler
	exitTooDeep      exitCode = 15 // -c: sub-schedulers nested too deep
	exitNotCgroup    exitCode = 16 // -c: not a cgroup v2 directory
	exitNoCgroup     exitCode = 17 // -c: the cgroup does not exist
	exitNoCidForm    exitCode = 18 // -c: the kernel has no cid form (before 7.2)
	exitNoMemory     exitCode = 19 // the kernel had no memory to load the BPF object
)

// exitCodes documents every exit status, for --help, the man page and the
// unit file's RestartPreventExitStatus= (TestUnitRestartPrevent).
var exitCodes = []struct {
	code    exitCode
	meaning string
	final   bool // a restart cannot fix it: systemd must not retry
}{
	{exitOK, "detached normally (SIGINT, SIGTERM or SIGHUP, or the scheduler unregistered)", false},
	{exitEjected, "the kernel ejected the scheduler with an error (the exit report says why)", false},
	{exitUsage, "bad command line (a crash is SIGABRT, not 2)", true},
	{exitNotRoot, "not root: it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN", true},
	{exitNoSchedExt, "this kernel has no sched_ext (or no BTF), or /sys is not mounted", true},
	{exitKernelTooOld, "sched_ext without scx_bpf_dsq_reenq(): Linux 7.1 or later is needed", true},
	{exitBusy, "another sched_ext scheduler is attached, or another instance serves the stats socket", false},
	{exitLoad, "the BPF object failed to load (verifier, maps; -v prints the log)", true},
	{exitAttach, "the kernel refused to enable the scheduler", false},
	{exitInternal, "any other failure", false},
	{exitNoInstance, "\"stats\"/--monitor: no running instance at the socket", true},
	{exitNoTarget, "-d: the process it names does not exist", true},
	{exitNoParent, "-c: no sched_ext scheduler is running to attach under", false},
	{exitNoSubScheds, "-c: the scheduler above the cgroup takes no sub-schedulers", true},
	{exitCgroupTaken, "-c: the cgroup, or one below it, has a scheduler already", false},
	{exitTooDeep, "-c: the sub-scheduler would nest deeper than the kernel allows", true},
	{exitNotCgroup, "-c: the path is not a cgroup v2 directory", true},
	{exitNoCgroup, "-c: no such cgroup", true},
	{exitNoCidForm, "-c: sub-schedulers need the cid form: Linux 7.2 or later", true},
	{exitNoMemory, "the kernel had no memory to load the BPF object (a memory cgroup's limit, or the system's)", false},
}

// loaderExits maps the loader's sentinel errors to exit codes.
var loaderExits = []struct {
	kind error
	code exitCode
}{
	{loader.ErrNotRoot, exitNotRoot},
	{loader.ErrNoSchedExt, exitNoSchedExt},
	{loader.ErrKernelTooOld, exitKernelTooOld},
	{loader.ErrBusy, exitBusy},
	{loader.ErrLoad, exitLoad},
	{loader.ErrNoMemory, exitNoMemory},
	{loader.ErrAttach, exitAttach},
	{loader.ErrInvalid, exitUsage},
	{loader.ErrNoParent, exitNoParent},
	{loader.ErrNoSubScheds, exitNoSubScheds},
	{loader.ErrCgroupTaken, exitCgroupTaken},
	{loader.ErrTooDeep, exitTooDeep},
	{loader.ErrNoCgroup, exitNoCgroup},
	{loader.ErrNoCidForm, exitNoCidForm},
	{loader.ErrNotCgroup, exitNotCgroup},
	{loader.ErrInternal, exitInternal},
}

// cliError is a refusal or failure the CLI itself decides on.
type cliError struct {
	code exitCode
	msg  string
	err  error // underlying cause, if any
}

func (e *cliError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *cliError) Unwrap() error { return e.err }

// exitCodeOf is the exit status for @err.
func exitCodeOf(err error) exitCode {
	var cerr *cliError
	if errors.As(err, &cerr) {
		return cerr.code
	}
	for _, e := range loaderExits {
		if errors.Is(err, e.kind) {
			return e.code
		}
	}
	return exitInternal
}
