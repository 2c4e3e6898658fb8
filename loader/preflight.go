// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SysfsRoot is where the kernel exposes sched_ext's state.
const SysfsRoot = "/sys/kernel/sched_ext"

// Host is what the preflight checks look at; tests replace its parts.
type Host struct {
	Sysfs      fs.FS                   // rooted at /sys/kernel/sched_ext
	Sys        fs.FS                   // rooted at /sys: tells "sysfs not mounted" from "no sched_ext"
	Caps       Caps                    // this process's effective capabilities
	Kernel     func() (*Kernel, error) // reads the running kernel's BTF
	ProcExists func(pid int) bool      // a process (not just a thread) with this pid is alive
}

// RealHost is the machine this process runs on.
func RealHost() Host {
	return Host{
		Sysfs:      os.DirFS(SysfsRoot),
		Sys:        os.DirFS("/sys"),
		Caps:       effectiveCaps(),
		Kernel:     readKernel,
		ProcExists: procExists,
	}
}

// Caps is a capability set: bit n is capability n (linux/capability.h).
type Caps uint64

// The capabilities a load checks for.
const (
	CapSysAdmin Caps = 1 << unix.CAP_SYS_ADMIN
	CapPerfmon  Caps = 1 << unix.CAP_PERFMON
	CapBPF      Caps = 1 << unix.CAP_BPF
)

// CanLoad tells whether @c lets a process load and attach the scheduler:
// struct_ops and tracing programs need CAP_BPF and CAP_PERFMON, and
// CAP_SYS_ADMIN stands for both. It is not the uid that counts: root in a
// container or a unit with a CapabilityBoundingSet= may lack them, and a
// service user may be given them (AmbientCapabilities=).
func (c Caps) CanLoad() bool {
	return c&CapSysAdmin != 0 || c&(CapBPF|CapPerfmon) == CapBPF|CapPerfmon
}

// effectiveCaps reads this process's effective capability set; none if
// the kernel will not say.
func effectiveCaps() Caps {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0
	}
	return Caps(data[0].Effective) | Caps(data[1].Effective)<<32
}

// procExists tells whether @pid names a live process: a thread-group leader,
// as the tgid -d takes must be. pidfd_open() needs no /proc and refuses the id
// of any other thread (EINVAL; ENOENT on recent kernels), which kill(pid, 0)
// would accept. Should it fail for another reason (out of fds, say),
// kill(pid, 0) answers: only ESRCH means no process.
func procExists(pid int) bool {
	if pid <= 0 { // 0 and negative pids name process groups
		return false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		unix.Close(fd)
		return true
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Preflight refuses, before anything is loaded, to start where the
// scheduler cannot run. It returns what it learned of the kernel's BTF.
// There is no bpffs check: nothing is pinned, so /sys/fs/bpf may be absent.
func Preflight(h Host) (*Kernel, error) { return preflight(h, true) }

// PreflightSub is Preflight for a sub-scheduler on cgroup @cgPath: it wants
// a scheduler running to attach under, a kernel with the cid form, and a
// place for it (FindSubTarget).
func PreflightSub(h Host, cgPath string) (*Kernel, *SubTarget, error) {
	k, err := preflight(h, false)
	if err != nil {
		return nil, nil, err
	}
	if !k.HasCidForm {
		return nil, nil, newError(ErrNoCidForm, nil, "sub-schedulers need the cid form (struct sched_ext_ops_cid), which this kernel lacks: boot Linux 7.2 or newer")
	}
	t, err := FindSubTarget(h, cgPath)
	if err != nil {
		return nil, nil, err
	}
	return k, t, nil
}

func preflight(h Host, root bool) (*Kernel, error) {
	if !h.Caps.CanLoad() {
		return nil, newError(ErrNotRoot, nil,
			"must run as root: loading a sched_ext scheduler needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, which this process lacks (try sudo)")
	}

	state, err := fs.ReadFile(h.Sysfs, "state")
	if errors.Is(err, fs.ErrNotExist) {
		// Every kernel with sysfs mounted has /sys/kernel; without it the
		// kernel may well have sched_ext, and mounting is the fix.
		if _, err := fs.Stat(h.Sys, "kernel"); errors.Is(err, fs.ErrNotExist) {
			return nil, newError(ErrNoSchedExt, nil,
				"/sys is not mounted (no /sys/kernel), so sched_ext cannot be found: mount it (mount -t sysfs sysfs /sys) and retry")
		}
		return nil, newError(ErrNoSchedExt, nil,
			"this kernel has no sched_ext (%s missing): boot a kernel built with CONFIG_SCHED_CLASS_EXT=y, e.g. Debian's 7.2 (make run does this in a VM)",
			filepath.Join(SysfsRoot, "state"))
	}
	if err != nil {
		return nil, newError(ErrNoSchedExt, err, "cannot read sched_ext state")
	}

	if s := strings.TrimSpace(string(state)); root && s != "disabled" {
		ops, _ := fs.ReadFile(h.Sysfs, "root/ops")
		name := strings.TrimSpace(string(ops))
		if name == "" {
			name = "unknown"
		}
		return nil, newError(ErrBusy, nil,
			"another sched_ext scheduler is active (state %q, ops %q): stop it first, then retry", s, name)
	}

	k, err := h.Kernel()
	if err != nil {
		return nil, newError(ErrNoSchedExt, err,
			"cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): sched_ext needs CONFIG_DEBUG_INFO_BTF=y")
	}
	if !k.HasReenq {
		return nil, newError(ErrKernelTooOld, nil,
			"kernel too old: it lacks the scx_bpf_dsq_reenq() kfunc this scheduler needs; boot Linux 7.1 or newer")
	}
	return k, nil
}

// WaitDisabled polls sched_ext's state until it reads "disabled", @timeout
// passes or @ctx is done, and reports whether it got there.
func WaitDisabled(ctx context.Context, h Host, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		state, err := fs.ReadFile(h.Sysfs, "state")
		if err == nil && strings.TrimSpace(string(state)) == "disabled" {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
