// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"errors"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// A sub-scheduler with no scheduler running is refused before any cgroup
// is looked at.
func TestFindSubTargetNoParent(t *testing.T) {
	h := Host{Sysfs: fstest.MapFS{"state": {Data: []byte("disabled\n")}}}
	if _, err := FindSubTarget(h, "anything"); !errors.Is(err, ErrNoParent) {
		t.Errorf("FindSubTarget with sched_ext disabled: %v, want ErrNoParent", err)
	}
}

// -c paths outside the cgroup2 mount, missing, or the root cgroup itself
// are refused with their own errors.
func TestCgroupID(t *testing.T) {
	var fs unix.Statfs_t
	if unix.Statfs(CgroupRoot, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("%s is not a cgroup v2 mount here", CgroupRoot)
	}
	tests := []struct {
		path string
		want error
	}{
		{"/tmp", ErrNotCgroup},
		{"../etc", ErrNotCgroup},
		{"scx-qmap-go-no-such-cgroup", ErrNoCgroup},
		{CgroupRoot, ErrCgroupTaken},
		{"/", ErrNotCgroup},
	}
	for _, tt := range tests {
		if _, _, err := CgroupID(tt.path); !errors.Is(err, tt.want) {
			t.Errorf("CgroupID(%q) = %v, want %v", tt.path, err, tt.want)
		}
	}
}

// The capability options are refused, each with its reason, where they
// cannot work; the checks on values come before the one on the kernel.
func TestCheckCaps(t *testing.T) {
	v72, v73 := &Kernel{}, &Kernel{HasCaps: true}
	const child = 42
	for _, tc := range []struct {
		name string
		k    *Kernel
		form Form
		cfg  Config
		want error // nil: accepted
	}{
		{"none on 7.2", v72, FormCID, Config{}, nil},
		{"-R", v73, FormCID, Config{RoundRobinMs: 50}, nil},
		{"-R below the timer", v73, FormCID, Config{RoundRobinMs: MinRoundRobinMs - 1}, ErrInvalid},
		{"-B 0 on the root", v73, FormCID, Config{RescueBandwidthPpt: RescueDisabled}, nil},
		{"-B over the kernel's max", v73, FormCID, Config{RescueBandwidthPpt: MaxRescuePpt + 1}, ErrInvalid},
		{"-q below the kernel's min", v73, FormCID, Config{RescueQuantumUs: MinRescueQuantum - 1}, ErrInvalid},
		{"-q over the kernel's max", v73, FormCID, Config{RescueQuantumUs: MaxRescueQuantum + 1}, ErrInvalid},
		{"-B on a child", v73, FormCID, Config{RescueBandwidthPpt: 10, SubCgroupID: child}, ErrInvalid},
		{"-J on the root", v73, FormCID, Config{InjectWrongCid: true}, ErrInvalid},
		{"-J on a child", v73, FormCID, Config{InjectWrongCid: true, SubCgroupID: child}, nil},
		{"-J on 7.2", v72, FormCID, Config{InjectWrongCid: true, SubCgroupID: child}, ErrKernelTooOld},
		{"-R in the cpu form", v73, FormCPU, Config{RoundRobinMs: 50}, ErrKernelTooOld},
		{"-B 300 on 7.2", v72, FormCID, Config{RescueBandwidthPpt: 300}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCaps(tc.k, tc.form, tc.cfg)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("checkCaps = %v, want %v", err, tc.want)
			}
		})
	}
}
