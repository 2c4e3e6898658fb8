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
