// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"testing"
)

func TestPickQueue(t *testing.T) {
	tests := []struct {
		want    QueueKey
		hasTIDs bool
		got     QueueKey
		wantErr error
	}{
		{QueueAuto, true, QueueByTID, nil},
		{QueueAuto, false, QueueByPID, nil},
		{QueueByPID, true, QueueByPID, nil},
		{QueueByTID, true, QueueByTID, nil},
		{QueueByTID, false, 0, ErrKernelTooOld},
	}
	for _, tt := range tests {
		got, err := pickQueue(&Kernel{HasTIDs: tt.hasTIDs}, tt.want)
		if !errors.Is(err, tt.wantErr) || (err == nil && got != tt.got) {
			t.Errorf("pickQueue(%s, tid kernel %v) = %s, %v; want %s, %v", tt.want, tt.hasTIDs, got, err, tt.got, tt.wantErr)
		}
	}
}

func TestRootLacksTIDs(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{tidRefusal(ExitInfo{Kind: 1024, Reason: "runtime error", Msg: "SCX_OPS_TID_TO_TASK requires root scheduler to enable it"}), true},
		{tidRefusal(ExitInfo{Kind: 1024, Reason: "runtime error", Msg: "scx_sub_enable() failed (-12)"}), false},
		{newError(ErrAttach, nil, "attaching the scheduler: SCX_OPS_TID_TO_TASK requires root scheduler"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := RootLacksTIDs(tt.err); got != tt.want {
			t.Errorf("RootLacksTIDs(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if err := tidRefusal(ExitInfo{Msg: rootLacksTIDs}); !errors.Is(err, ErrAttach) {
		t.Errorf("tidRefusal = %v, want an ErrAttach refusal (exit 8)", err)
	}
}
