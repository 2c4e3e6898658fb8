// SPDX-License-Identifier: Apache-2.0

package loader

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// CgroupRoot is where cgroup v2 is mounted; -c paths are under it.
const CgroupRoot = "/sys/fs/cgroup"

// maxSubDepth is the kernel's SCX_SUB_MAX_DEPTH: a sub-scheduler's level
// (the root is 0) must stay below it.
const maxSubDepth = 4

// SubTarget is where a sub-scheduler attaches, found before anything loads.
type SubTarget struct {
	Cgroup    string // the cgroup's path below CgroupRoot, "/" separated
	ID        uint64 // its cgroup id: the inode number of its directory
	ParentDir string // the scheduler above it, as a directory of Host.Sysfs ("root", "root/sub/sub-N", ...)
	Level     int    // the new scheduler's nesting level (1: a child of the root)
}

// SysfsDir is the sub-scheduler's own directory of Host.Sysfs, once attached.
func (t *SubTarget) SysfsDir() string { return subDir(t.ParentDir, t.ID) }

// subDir is the sysfs directory of the sub-scheduler on cgroup @id below the
// scheduler whose directory is @parent.
func subDir(parent string, id uint64) string {
	return path.Join(parent, "sub", fmt.Sprintf("sub-%d", id))
}

// CgroupID resolves a -c path (absolute, or relative to CgroupRoot) to its
// cgroup v2 directory and id.
func CgroupID(cgPath string) (rel string, id uint64, err error) {
	abs := cgPath
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(CgroupRoot, abs)
	}
	abs = filepath.Clean(abs)
	rel, err = filepath.Rel(CgroupRoot, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", 0, newError(ErrNotCgroup, nil, "%s is not below %s, where cgroup v2 is mounted", cgPath, CgroupRoot)
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return "", 0, newError(ErrNoCgroup, nil, "no cgroup %s: create it (mkdir %s) and move tasks into it", cgPath, abs)
		}
		return "", 0, newError(ErrNoCgroup, err, "cannot stat cgroup %s", cgPath)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(abs, &sfs); err != nil {
		return "", 0, newError(ErrNotCgroup, err, "cannot statfs %s", abs)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return "", 0, newError(ErrNotCgroup, nil, "%s is not a cgroup v2 directory (sub-schedulers need the unified hierarchy at %s)", abs, CgroupRoot)
	}
	if rel == "." {
		return "", 0, newError(ErrCgroupTaken, nil, "%s is the root cgroup, which the root scheduler schedules: name a cgroup below it", abs)
	}
	return filepath.ToSlash(rel), st.Ino, nil
}

// FindSubTarget refuses, before anything is loaded, to attach a
// sub-scheduler on @cgPath where the kernel would refuse it: it finds the
// scheduler above the cgroup in sched_ext's sysfs tree
// (root/sub/sub-<cgroup id>/sub/...) and checks what the kernel checks.
func FindSubTarget(h Host, cgPath string) (*SubTarget, error) {
	state, _ := fs.ReadFile(h.Sysfs, "state")
	if s := strings.TrimSpace(string(state)); s != "enabled" {
		return nil, newError(ErrNoParent, nil, "no sched_ext scheduler is running (state %q) to attach under: start the parent first", s)
	}
	rel, id, err := CgroupID(cgPath)
	if err != nil {
		return nil, err
	}
	t := &SubTarget{Cgroup: rel, ID: id, ParentDir: "root", Level: 1}

	// Descend through the sub-schedulers of the cgroup's ancestors.
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		_, aid, err := CgroupID(strings.Join(parts[:i], "/"))
		if err != nil {
			return nil, err
		}
		dir := subDir(t.ParentDir, aid)
		if _, err := fs.Stat(h.Sysfs, dir); err == nil {
			t.ParentDir, t.Level = dir, t.Level+1
		}
	}

	if _, err := fs.Stat(h.Sysfs, t.SysfsDir()); err == nil {
		return nil, newError(ErrCgroupTaken, nil, "cgroup %s already has a sub-scheduler: stop it first", rel)
	}
	if _, err := fs.Stat(h.Sysfs, path.Join(t.ParentDir, "sub")); err != nil {
		ops, _ := fs.ReadFile(h.Sysfs, path.Join(t.ParentDir, "ops"))
		return nil, newError(ErrNoSubScheds, nil, "the scheduler above cgroup %s (%q, %s) takes no sub-schedulers: run a parent that does, such as scx-qmap-go in the cid form",
			rel, strings.TrimSpace(string(ops)), path.Join(SysfsRoot, t.ParentDir))
	}
	if below, err := subSchedBelow(h, t); err != nil {
		return nil, err
	} else if below != "" {
		return nil, newError(ErrCgroupTaken, nil, "cgroup %s has a sub-scheduler below it, on %s: stop that one first", rel, below)
	}
	if t.Level >= maxSubDepth {
		return nil, newError(ErrTooDeep, nil, "cgroup %s would nest a scheduler %d deep; the kernel allows %d", rel, t.Level, maxSubDepth-1)
	}
	return t, nil
}

// subSchedBelow names a cgroup below @t's that has a child of @t's parent
// attached (the kernel will not insert a scheduler above it), or "".
func subSchedBelow(h Host, t *SubTarget) (string, error) {
	entries, err := fs.ReadDir(h.Sysfs, path.Join(t.ParentDir, "sub"))
	if err != nil || len(entries) == 0 {
		return "", nil
	}
	taken := map[uint64]bool{}
	for _, e := range entries {
		var n uint64
		if _, err := fmt.Sscanf(e.Name(), "sub-%d", &n); err == nil {
			taken[n] = true
		}
	}
	var found string
	root := filepath.Join(CgroupRoot, t.Cgroup)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == root {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && taken[st.Ino] {
			found, _ = filepath.Rel(CgroupRoot, p)
			return filepath.SkipAll
		}
		return nil
	})
	return found, err
}

// subAttachError names the refusal behind the kernel's errno when attaching
// a sub-scheduler failed (scx_sub_enable_workfn): what FindSubTarget checks,
// lost to a race.
func subAttachError(err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return newError(ErrNoParent, err, "the scheduler to attach under went away")
	case errors.Is(err, unix.EOPNOTSUPP):
		return newError(ErrNoSubScheds, err, "the scheduler above the cgroup takes no sub-schedulers")
	case errors.Is(err, unix.EBUSY):
		return newError(ErrCgroupTaken, err, "the cgroup, or one below it, has a scheduler already")
	case errors.Is(err, unix.ENOENT):
		return newError(ErrNoCgroup, err, "the cgroup went away")
	}
	return nil
}

// Subs reads the sub-schedulers attached below this one (its ops.sub_attach
// fills the table) and the dispatches handed to each, by cgroup id.
func (s *Scheduler) Subs() ([]stats.Sub, error) {
	var ids, dsp [bpf.MaxSubs]uint64
	if err := s.vars.SubCgroupIds.Get(&ids); err != nil {
		return nil, fmt.Errorf("reading sub_cgroup_ids: %w", err)
	}
	if err := s.vars.SubDispatched.Get(&dsp); err != nil {
		return nil, fmt.Errorf("reading sub_dispatched: %w", err)
	}
	var subs []stats.Sub
	for i, id := range ids {
		if id != 0 {
			subs = append(subs, stats.Sub{CgroupID: id, Dispatched: dsp[i]})
		}
	}
	slices.SortFunc(subs, func(a, b stats.Sub) int { return cmp.Compare(a.CgroupID, b.CgroupID) })
	return subs, nil
}

// setCaps fills what the capability hierarchy needs on a 7.3 kernel: the
// single-cid cmasks BPF grants and revokes with, in the arena, and the
// tunables. On 7.2 the hierarchy stays off and children share every CPU.
func setCaps(h Host, k *Kernel, cfg Config, ar *arena, vars *bpf.VariableSpecs) error {
	if !k.HasCaps {
		return nil
	}
	n, err := possibleCPUs(h.Sys)
	if err != nil {
		return fmt.Errorf("counting the possible CPUs: %w", err)
	}
	addr, err := ar.writeCidCmasks(n)
	if err != nil {
		return err
	}
	rr := uint64(cmp.Or(cfg.RoundRobinMs, DefaultRoundRobinMs))
	return setTunables([]tunable{
		{vars.CapsHier, true},
		{vars.CidCmasks, addr},
		{vars.IsSub, cfg.SubCgroupID != 0},
		{vars.RoundRobinNs, rr * 1_000_000},
		{vars.InjectWrongCid, cfg.InjectWrongCid},
	})
}

// checkCaps refuses the capability options (-R, -B, -q, -J wrong-cid) where
// they cannot work, before anything is loaded.
func checkCaps(k *Kernel, form Form, cfg Config) error {
	var used []string
	for _, o := range []struct {
		set  bool
		name string
	}{
		{cfg.RoundRobinMs != 0, "-R"},
		{cfg.RescueBandwidthPpt != 0, "-B"},
		{cfg.RescueQuantumUs != 0, "-q"},
		{cfg.InjectWrongCid, "-J wrong-cid"},
	} {
		if o.set {
			used = append(used, o.name)
		}
	}
	if len(used) == 0 {
		return nil
	}
	ppt, quantum := cfg.RescueBandwidthPpt, cfg.RescueQuantumUs
	switch {
	case cfg.RoundRobinMs != 0 && cfg.RoundRobinMs < MinRoundRobinMs:
		return newError(ErrInvalid, nil, "-R %d: the shared cids' turns are at least %d ms", cfg.RoundRobinMs, MinRoundRobinMs)
	case ppt > MaxRescuePpt && ppt != RescueDisabled:
		return newError(ErrInvalid, nil, "-B %d: rescue bandwidth is 0 (off) to %d per thousand", ppt, MaxRescuePpt)
	case quantum != 0 && (quantum < MinRescueQuantum || quantum > MaxRescueQuantum):
		return newError(ErrInvalid, nil, "-q %d: the rescue quantum is %d to %d µs", quantum, MinRescueQuantum, MaxRescueQuantum)
	case (ppt != 0 || quantum != 0) && cfg.SubCgroupID != 0:
		return newError(ErrInvalid, nil, "-B and -q set the root scheduler's rescue bandwidth; the kernel ignores a sub-scheduler's")
	case cfg.InjectWrongCid && cfg.SubCgroupID == 0:
		return newError(ErrInvalid, nil, "-J wrong-cid is for a sub-scheduler (-c): the root holds every cid")
	case !k.HasCaps || form != FormCID:
		return newError(ErrKernelTooOld, nil, "%s need sub-scheduler capabilities, in the cid form of Linux 7.3 or newer", strings.Join(used, ", "))
	}
	return nil
}
