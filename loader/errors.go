// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"fmt"
)

// The ways the loader refuses or fails. Every error it returns wraps exactly
// one of them, so a caller can tell them apart with errors.Is (the CLI maps
// each to its own exit code).
var (
	ErrNotRoot      = errors.New("not privileged")
	ErrNoSchedExt   = errors.New("no sched_ext")          // kernel without sched_ext or BTF, or /sys not mounted
	ErrKernelTooOld = errors.New("kernel too old")        // sched_ext without what qmap needs (before 7.1)
	ErrBusy         = errors.New("scheduler busy")        // another sched_ext scheduler is attached
	ErrLoad         = errors.New("load failed")           // the BPF object failed to load (verifier, maps)
	ErrNoMemory     = errors.New("kernel out of memory")  // loading failed for want of kernel memory: may pass later
	ErrAttach       = errors.New("attach refused")        // the kernel refused to enable the scheduler
	ErrInvalid      = errors.New("invalid configuration") // a Config the running kernel makes meaningless

	// A sub-scheduler's refusals (Config.SubCgroupID; FindSubTarget).
	ErrNoCidForm   = errors.New("no cid form")               // the kernel has no sched_ext_ops_cid (7.1)
	ErrNoParent    = errors.New("no parent scheduler")       // nothing runs to attach under
	ErrNoSubScheds = errors.New("parent takes no children")  // the scheduler above has no ops.sub_attach
	ErrCgroupTaken = errors.New("cgroup has a scheduler")    // the cgroup (or one below it) has one already
	ErrTooDeep     = errors.New("nesting too deep")          // past the kernel's SCX_SUB_MAX_DEPTH
	ErrNoCgroup    = errors.New("no such cgroup")            // the -c path does not exist
	ErrNotCgroup   = errors.New("not a cgroup v2 directory") // the -c path is not in the cgroup2 mount
	ErrInternal    = errors.New("internal error")            // anything else
)

// Error is a refusal or failure with a one-line message that names the cause
// and what to do.
type Error struct {
	Kind error // one of the Err* sentinels above
	Msg  string
	Err  error // underlying cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

// Unwrap gives both the sentinel and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func newError(kind error, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}
