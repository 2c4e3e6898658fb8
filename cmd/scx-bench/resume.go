// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

// raceRetries is how many boots a run that multi-threaded TCG's int3 race
// stopped goes on in, multi-threaded, before single-threaded TCG: rounds of
// one kind of emulation compare with each other, and single-threaded boots
// run every vCPU on one host core.
const raceRetries = 2

// resumption carries a run over the boots that the int3 race stops: the
// rounds they finished, and what the result should say about them.
type resumption struct {
	rounds  int                              // the run's rounds
	command func(firstRound int) string      // the guest's command line from a round
	log     func(format string, args ...any) // the host's notices

	kept    []*bench.Round // finished rounds of the boots before
	notes   []string       // their notes, then what happened to each boot
	secs    int            // guest time in their finished rounds
	elapsed time.Duration  // their wall time
	eras    []string       // each boot's emulation, from the round it started at
	next    int            // the round the next boot starts from
}

func newResumption(rounds int, command func(int) string) *resumption {
	return &resumption{rounds: rounds, command: command, next: 1,
		log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format, args...) }}
}

// again is vm.Config.Again: it keeps the rounds @prev finished and gives
// the command that goes on from the next.
func (rs *resumption) again(prev *vm.Result) string {
	from := rs.next
	cps := bench.Checkpoints(prev.Output)
	// A boot that finished every round died before its result: the last
	// round is run again so that the new boot has one to run.
	if n := len(cps); n > 0 && cps[n-1].Round >= rs.rounds {
		cps = cps[:n-1]
	}
	for _, cp := range cps {
		rs.kept = append(rs.kept, cp.Rounds...)
		rs.notes = append(rs.notes, cp.Notes...)
		rs.next = cp.Round + 1
	}
	if n := len(cps); n > 0 {
		rs.secs += cps[n-1].Secs
	}
	rs.elapsed += prev.Elapsed
	rs.eras = append(rs.eras, era(prev.Accelerator, from))
	rs.notes = append(rs.notes, fmt.Sprintf("the emulator's int3 race (docs/troubleshooting.md) stopped boot %d in round %d; "+
		"the run went on from that round in a new boot", len(rs.eras), rs.next))
	rs.log("scx-bench: boot %d stopped in round %d; %d finished rounds kept, going on from there\n", len(rs.eras), rs.next, rs.next-1)
	return rs.command(rs.next)
}

// era names a boot's emulation and the round it started at.
func era(accel string, from int) string {
	return fmt.Sprintf("%s from round %d", accel, from)
}

// merge puts the boots before into the last boot's result @res, which
// @last ran: their rounds first, their notes, and what the boots were.
func (rs *resumption) merge(res *bench.Result, last *vm.Result) {
	if len(rs.eras) == 0 {
		if last.Accelerator != "" {
			res.Meta["emulation"] = last.Accelerator
		}
		res.Meta["elapsed_s"] = fmt.Sprint(int(last.Elapsed.Seconds()))
		return
	}
	res.Rounds = append(rs.kept, res.Rounds...)
	res.Notes = append(rs.notes, res.Notes...)
	eras := append(rs.eras, era(last.Accelerator, rs.next))
	res.Meta["emulation"] = strings.Join(eras, "; ")
	var secs int
	fmt.Sscan(res.Meta["guest_secs"], &secs)
	res.Meta["guest_secs"] = fmt.Sprint(rs.secs + secs)
	res.Meta["elapsed_s"] = fmt.Sprint(int((rs.elapsed + last.Elapsed).Seconds()))
}
