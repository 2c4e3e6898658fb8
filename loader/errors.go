// SPDX-License-Identifier: Apache-2.0

package loader

import "fmt"

// ExitCode is the process exit status the CLI uses for each way of stopping.
// Every refusal has its own code so scripts can tell them apart.
type ExitCode int

const (
	ExitOK           ExitCode = 0  // detached normally (SIGINT/SIGTERM or unregistered)
	ExitEjected      ExitCode = 1  // the kernel ejected the scheduler with an error
	ExitUsage        ExitCode = 2  // bad command line
	ExitNotRoot      ExitCode = 3  // needs CAP_SYS_ADMIN / root
	ExitNoSchedExt   ExitCode = 4  // kernel built without sched_ext (or BTF), or /sys not mounted
	ExitKernelTooOld ExitCode = 5  // sched_ext without scx_bpf_dsq_reenq (before 7.1)
	ExitBusy         ExitCode = 6  // another sched_ext scheduler is attached
	ExitLoad         ExitCode = 7  // the BPF object failed to load (verifier, maps)
	ExitAttach       ExitCode = 8  // the kernel refused to enable the scheduler
	ExitInternal     ExitCode = 9  // anything else
	ExitNoInstance   ExitCode = 10 // "stats": no running instance to ask
	ExitNoTarget     ExitCode = 11 // a process (or cgroup) the flags name does not exist
)

// Error is a refusal or failure with a one-line message that names the cause
// and what to do, and the exit code the CLI should use for it.
type Error struct {
	Code ExitCode
	Msg  string
	Err  error // underlying cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func newError(code ExitCode, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}
