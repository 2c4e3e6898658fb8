// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// costFlagSets are the loader flag sets Cost compares. Only the first takes
// snapshots in the window, where nobody asks for one: the others read the
// process's baseline (the Go runtime) with each service on or off.
var costFlagSets = [][]string{
	{"--stats", "1"},
	{},
	{"--stats-socket="},
	{"--metrics-addr", "127.0.0.1:9464"},
	{"--stats-interval", "1h"},
}

// CostOptions size a Cost run.
type CostOptions struct {
	Bin    string // the scx-qmap-go binary
	Rounds int    // each runs every flag set once
	Secs   int    // length of the measured window, seconds
	Out    io.Writer
}

// costSettle is the one-off work after attach that the window leaves out.
const costSettle = 3 * time.Second

// Cost measures the loader's idle cost: for each flag set, it starts the
// scheduler, lets it settle, then reads its CPU time over a window and its
// memory (VmRSS, VmHWM, RssAnon; AnonHugePages from smaps_rollup). It
// prints one COST row per flag set and round.
func Cost(ctx context.Context, o CostOptions) error {
	if o.Bin == "" || o.Rounds < 1 || o.Secs < 1 {
		return fmt.Errorf("want a binary, and positive rounds and seconds")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := os.Chdir("/tmp"); err != nil {
		return fmt.Errorf("the guest needs a writable /tmp: %w", err)
	}
	_ = syscall.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "") // may be mounted already
	fmt.Fprintf(o.Out, "# kernel %s\n", kernelRelease())
	for round := 1; round <= o.Rounds; round++ {
		for _, flags := range costFlagSets {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("stopped in round %d: %w", round, err)
			}
			fmt.Fprintln(o.Out, costRow(ctx, o, round, flags))
		}
	}
	return nil
}

// costRow measures one flag set and formats its row.
func costRow(ctx context.Context, o CostOptions, round int, flags []string) string {
	row := fmt.Sprintf("COST round=%d flags=[%s]", round, strings.Join(flags, " "))
	s, err := startScheduler(o.Bin, flags, "/tmp/cost.log")
	if err != nil {
		return row + " error=" + err.Error()
	}
	defer func() {
		s.p.signal(syscall.SIGINT)
		s.p.wait(60 * time.Second)
		waitState("disabled", 30*time.Second, nil)
		sleep(ctx, time.Second)
	}()
	if !waitState("enabled", 60*time.Second, s.p.done) {
		return row + " error=not attached: " + s.tail()
	}
	sleep(ctx, costSettle)
	pct, err := s.cpuPct(ctx, time.Duration(o.Secs)*time.Second)
	if err != nil {
		return row + " error=" + err.Error()
	}
	row += fmt.Sprintf(" cpu_pct=%.2f", pct)
	for _, m := range []struct{ name, file, key string }{
		{"rss_kb", "status", "VmRSS"},
		{"hwm_kb", "status", "VmHWM"},
		{"anon_kb", "status", "RssAnon"},
		{"anon_huge_kb", "smaps_rollup", "AnonHugePages"},
	} {
		if kb, err := procKB(s.p.pid(), m.file, m.key); err == nil {
			row += fmt.Sprintf(" %s=%d", m.name, kb)
		} else {
			row += " " + m.name + "="
		}
	}
	return row
}
