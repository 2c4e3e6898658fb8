// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/scx-qmap-go/scx-qmap-go/bench/guest"
)

// guestMain is `scx-bench guest`: the benchmark, inside the guest. It
// prints progress as "# " lines and, at the end, the result on one
// bench.Marker line.
func guestMain(args []string) int {
	o, _ := guestOptions(args, flag.ExitOnError)
	o.Progress = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := guest.Run(ctx, o)
	if err == nil {
		err = res.WriteLine(os.Stdout)
	}
	return exit("guest", err)
}

// guestOptions parses `scx-bench guest`'s flags: in the guest, and on the
// host to size the run before booting.
func guestOptions(args []string, onError flag.ErrorHandling) (guest.Options, error) {
	fs := flag.NewFlagSet("scx-bench guest", onError)
	var o guest.Options
	fs.StringVar(&o.Bin, "bin", "", "scx-qmap-go binary to benchmark (required)")
	fs.IntVar(&o.Rounds, "rounds", guest.DefaultRounds, "rounds; each runs every configuration once")
	fs.IntVar(&o.FirstRound, "first-round", 1, "round to start from (a run going on in a new boot)")
	fs.IntVar(&o.Secs, "secs", guest.DefaultSecs, "length of the timed phases, seconds")
	hackbench := fs.String("hackbench", guest.DefaultHackbench, "hackbench's arguments")
	perf := fs.String("perf", guest.DefaultPerf, "perf bench sched messaging's arguments")
	fs.IntVar(&o.CycInterval, "cyclictest-interval", guest.DefaultCycInterval, "cyclictest's wakeup interval, µs")
	fs.IntVar(&o.LoadPerCPU, "load-per-cpu", guest.DefaultLoadPerCPU, "stress-ng workers per CPU beside cyclictest")
	configs := fs.String("configs", strings.Join(guest.ConfigNames(), ","), "configurations, comma-separated, in table order")
	phases := fs.String("phases", strings.Join(guest.PhaseNames(), ","), "workloads, comma-separated")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.Hackbench = strings.Fields(*hackbench)
	o.Perf = strings.Fields(*perf)
	o.Configs = list(*configs)
	o.Phases = list(*phases)
	return o, nil
}

// costMain is `scx-bench cost`: the loader's idle cost, inside the guest.
func costMain(args []string) int {
	fs := flag.NewFlagSet("scx-bench cost", flag.ExitOnError)
	o := guest.CostOptions{Out: os.Stdout}
	fs.StringVar(&o.Bin, "bin", "", "scx-qmap-go binary to measure (required)")
	fs.IntVar(&o.Rounds, "rounds", 2, "rounds; each runs every flag set once")
	fs.IntVar(&o.Secs, "secs", 30, "length of the measured window, seconds")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return exit("cost", guest.Cost(ctx, o))
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func exit(cmd string, err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "scx-bench %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
