// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"fmt"
	"strings"
)

// ExitKind mirrors the kernel's enum scx_exit_kind.
type ExitKind int32

const (
	ExitKindNone       ExitKind = 0
	ExitKindDone       ExitKind = 1
	ExitKindUnreg      ExitKind = 64
	ExitKindUnregBPF   ExitKind = 65
	ExitKindUnregKern  ExitKind = 66
	ExitKindSysRq      ExitKind = 67
	ExitKindParent     ExitKind = 68
	ExitKindError      ExitKind = 1024
	ExitKindErrorBPF   ExitKind = 1025
	ExitKindErrorStall ExitKind = 1026
	ExitKindErrorReenq ExitKind = 1027 // 7.3+
)

var exitKindNames = map[ExitKind]string{
	ExitKindNone:       "NONE",
	ExitKindDone:       "DONE",
	ExitKindUnreg:      "UNREG",
	ExitKindUnregBPF:   "UNREG_BPF",
	ExitKindUnregKern:  "UNREG_KERN",
	ExitKindSysRq:      "SYSRQ",
	ExitKindParent:     "PARENT",
	ExitKindError:      "ERROR",
	ExitKindErrorBPF:   "ERROR_BPF",
	ExitKindErrorStall: "ERROR_STALL",
	ExitKindErrorReenq: "ERROR_REENQ",
}

func (k ExitKind) String() string {
	if n, ok := exitKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", int32(k))
}

// IsError reports whether the kernel ejected the scheduler for a fault, as
// opposed to a requested unregistration.
func (k ExitKind) IsError() bool { return k >= ExitKindError }

// Exit code bits (enum scx_exit_code): the low 32 bits are the scheduler's
// own code, then reason bits, then action bits for the loader.
const (
	ecodeUserMask     = 1<<32 - 1
	ecodeRsnHotplug   = 1 << 32
	ecodeRsnCgroupOff = 1 << 33
	ecodeActRestart   = 1 << 48
)

// ExitInfo is what the scheduler's ops.exit recorded about why it stopped.
type ExitInfo struct {
	Kind     ExitKind
	ExitCPU  int32
	ExitCode int64
	Reason   string
	Msg      string
	Dump     string
}

// Restart reports whether the kernel asked the loader to load the scheduler
// again (e.g. after CPU hotplug).
func (e ExitInfo) Restart() bool { return uint64(e.ExitCode)&ecodeActRestart != 0 }

// DecodeExitCode spells out the exit code's user value, reason and action bits.
func DecodeExitCode(code int64) string {
	u := uint64(code)
	parts := []string{fmt.Sprintf("user=%d", u&ecodeUserMask)}
	if u&ecodeRsnHotplug != 0 {
		parts = append(parts, "reason=HOTPLUG")
	}
	if u&ecodeRsnCgroupOff != 0 {
		parts = append(parts, "reason=CGROUP_OFFLINE")
	}
	if u&ecodeActRestart != 0 {
		parts = append(parts, "action=RESTART")
	}
	return strings.Join(parts, " ")
}

// Report renders the exit for a person: kind, code, reason, message and the
// debug dump when the kernel produced one.
func (e ExitInfo) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "EXIT: %s (kind %d)", e.Kind, int32(e.Kind))
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	b.WriteByte('\n')
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, "exit code: %#x (%s)\n", uint64(e.ExitCode), DecodeExitCode(e.ExitCode))
	}
	if e.ExitCPU >= 0 && e.Kind.IsError() {
		fmt.Fprintf(&b, "exit cpu: %d\n", e.ExitCPU)
	}
	if e.Msg != "" {
		fmt.Fprintf(&b, "message: %s\n", e.Msg)
	}
	if e.Kind == ExitKindParent {
		b.WriteString("the scheduler above this sub-scheduler was unloaded, and the kernel unloads its sub-schedulers with it: the cgroup's tasks went back to the nearest scheduler still loaded, or to the fair class\n")
	}
	if dump := strings.TrimRight(e.Dump, "\n"); dump != "" {
		fmt.Fprintf(&b, "debug dump:\n%s\n", dump)
	}
	return b.String()
}

// cString returns the bytes of @b up to the first NUL.
func cString[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
