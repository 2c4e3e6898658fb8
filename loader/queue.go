// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"strings"
)

// QueueKey is how the FIFOs name the tasks they hold.
type QueueKey int

const (
	QueueAuto  QueueKey = iota // by tid where the kernel has it, else by PID
	QueueByPID                 // PIDs (Linux 7.1's qmap): an exiting task bypasses the FIFOs
	QueueByTID                 // scx tids, SCX_OPS_TID_TO_TASK (Linux 7.2+)
)

func (q QueueKey) String() string {
	switch q {
	case QueueByPID:
		return "pid"
	case QueueByTID:
		return "tid"
	default:
		return "auto"
	}
}

// pickQueue resolves QueueAuto for @k and refuses tids on a kernel without
// them.
func pickQueue(k *Kernel, want QueueKey) (QueueKey, error) {
	switch want {
	case QueueAuto:
		if k.HasTIDs {
			return QueueByTID, nil
		}
		return QueueByPID, nil
	case QueueByTID:
		if !k.HasTIDs {
			return 0, newError(ErrKernelTooOld, nil, "this kernel cannot name tasks by tid (SCX_OPS_TID_TO_TASK, Linux 7.2+): queue by pid")
		}
		return QueueByTID, nil
	case QueueByPID:
		return QueueByPID, nil
	}
	return 0, newError(ErrInternal, nil, "unknown queue key %d", want)
}

// rootLacksTIDs is the kernel's exit message for a child that queues by tid
// under a root scheduler that did not turn tids on.
const rootLacksTIDs = "SCX_OPS_TID_TO_TASK requires root scheduler"

// errRootLacksTIDs is the cause Attach gives that refusal.
var errRootLacksTIDs = errors.New("the root scheduler does not turn tids on")

// tidRefusal is Attach's error for an enable the kernel refused, as @ei
// records it, because the root lacks tids; nil for any other record.
func tidRefusal(ei ExitInfo) error {
	if !strings.Contains(ei.Msg, rootLacksTIDs) {
		return nil
	}
	return newError(ErrAttach, errRootLacksTIDs, "the kernel refused to enable the scheduler (%s: %s)", ei.Reason, ei.Msg)
}

// RootLacksTIDs reports whether Attach failed because this child queues by
// tid and the root scheduler does not enable tids; loaded again with
// QueueByPID, it can attach.
func RootLacksTIDs(err error) bool { return errors.Is(err, errRootLacksTIDs) }
