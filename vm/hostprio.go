// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/procstat"
)

// Under TCG, QEMU's main thread runs the guest's timers (the emulated
// LAPIC's among them) and its I/O. With every vCPU busy, that thread waits
// for a host core behind the vCPU threads, and the guest's timers fire
// late by up to a host slice. In one 7.2 boot each way (2 vCPUs,
// cyclictest under CPU load, eight 6 s runs of EEVDF and scx-qmap-go),
// hrtimer delivery read p99 3.6–4.2 ms with the thread as QEMU starts it
// and 0.2–1.8 ms (six runs of eight at 0.2–0.4) at SCHED_FIFO 1. Raising it
// leaves more of the guest's latency to the guest.
const mainThreadPriority = 1

// raiseQEMU is raiseMainThread on this host's /proc; tests replace it.
var raiseQEMU = func(root int) (string, error) { return raiseMainThread("/proc", root) }

// raiseMainThread finds the QEMU process below @root and gives its main
// thread (whose tid is its pid) SCHED_FIFO at mainThreadPriority, with
// SCHED_RESET_ON_FORK so that the threads it starts later (its I/O
// workers) stay SCHED_OTHER. The vCPU threads exist by the time the guest
// kernel logs, so they keep QEMU's own policy. It returns what it did, for
// the result.
func raiseMainThread(procDir string, root int) (string, error) {
	pid, err := findQEMU(procDir, root)
	if err != nil {
		return "", err
	}
	attr := unix.SchedAttr{
		Size:     unix.SizeofSchedAttr,
		Policy:   unix.SCHED_FIFO,
		Priority: mainThreadPriority,
		Flags:    unix.SCHED_FLAG_RESET_ON_FORK,
	}
	if err := unix.SchedSetAttr(pid, &attr, 0); err != nil {
		return "", fmt.Errorf("sched_setattr(QEMU pid %d, SCHED_FIFO %d): %w", pid, mainThreadPriority, err)
	}
	return fmt.Sprintf("SCHED_FIFO %d", mainThreadPriority), nil
}

// findQEMU returns the pid of the qemu-system process that descends from
// @root (root itself when it is QEMU, as for the systemd image).
func findQEMU(procDir string, root int) (int, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return 0, fmt.Errorf("listing processes: %w", err)
	}
	parent := map[int]int{}
	var qemus []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, ok := readStat(filepath.Join(procDir, e.Name(), "stat"))
		if !ok {
			continue // gone meanwhile
		}
		parent[pid] = ppid
		if strings.HasPrefix(comm, "qemu-system") {
			qemus = append(qemus, pid)
		}
	}
	for _, q := range qemus {
		for p, hops := q, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == root {
				return q, nil
			}
		}
	}
	return 0, fmt.Errorf("no qemu-system process below pid %d", root)
}

// readStat returns the command name and parent pid from a /proc/PID/stat
// file.
func readStat(path string) (comm string, ppid int, ok bool) {
	comm, fields, err := procstat.Read(path)
	if err != nil || len(fields) <= procstat.PPID {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[procstat.PPID])
	if err != nil {
		return "", 0, false
	}
	return comm, ppid, true
}
