// SPDX-License-Identifier: Apache-2.0

package guest

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// progPrefix names the scheduler's BPF programs.
const progPrefix = "qmap_"

// The kernel keeps BPF_OBJ_NAME_LEN-1 = 15 characters of a program's name.
const kernelNameLen = 15

// progSet is the scheduler's BPF programs, open for reading their run-time
// statistics (which ebpf.EnableStats turns on).
type progSet struct {
	progs []*ebpf.Program
	names []string
}

// openProgs opens every loaded program whose name starts with qmap_.
// @names caches full names by program id across calls.
func openProgs(names map[ebpf.ProgramID]string) (*progSet, error) {
	ps := &progSet{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ps, nil
		}
		if err != nil {
			ps.Close()
			return nil, fmt.Errorf("listing BPF programs: %w", err)
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		name, ok := names[id]
		if !ok {
			name = fullName(prog)
			names[id] = name
		}
		if !strings.HasPrefix(name, progPrefix) {
			prog.Close()
			continue
		}
		ps.progs = append(ps.progs, prog)
		ps.names = append(ps.names, name)
	}
}

// fullName is a program's name. The kernel keeps 15 characters of it
// (qmap_sched_swit); the whole one is that of its first function in BTF,
// as bpftool shows it.
func fullName(prog *ebpf.Program) string {
	info, err := prog.Info()
	if err != nil {
		return ""
	}
	if len(info.Name) < kernelNameLen {
		return info.Name
	}
	if funcs, err := info.FuncInfos(); err == nil && len(funcs) > 0 && funcs[0].Func != nil &&
		strings.HasPrefix(funcs[0].Func.Name, info.Name) {
		return funcs[0].Func.Name
	}
	return info.Name
}

// Close releases the programs.
func (ps *progSet) Close() {
	for _, p := range ps.progs {
		p.Close()
	}
}

// progStat is a program's accumulated run time and run count.
type progStat struct {
	runtime time.Duration
	runs    uint64
}

// snapshot reads every program's statistics, summed by name.
func (ps *progSet) snapshot() (map[string]progStat, error) {
	out := map[string]progStat{}
	for i, p := range ps.progs {
		st, err := p.Stats()
		if err != nil {
			return nil, fmt.Errorf("reading %s's run-time stats: %w", ps.names[i], err)
		}
		s := out[ps.names[i]]
		s.runtime += st.Runtime
		s.runs += st.RunCount
		out[ps.names[i]] = s
	}
	return out, nil
}

// bpfCost is, between two snapshots @wall apart, each program's mean run
// time in ns (programs that ran), and all the programs' run time as a
// percentage of @ncpu CPUs' time. A program missing from @before counts
// from zero.
func bpfCost(before, after map[string]progStat, wall time.Duration, ncpu int) (nsPerRun map[string]float64, cpuPct float64) {
	nsPerRun = map[string]float64{}
	var total float64
	for name, a := range after {
		b := before[name]
		dn := float64(a.runtime - b.runtime)
		total += dn
		if a.runs > b.runs {
			nsPerRun[name] = round(dn/float64(a.runs-b.runs), 1)
		}
	}
	if wall > 0 && ncpu > 0 {
		cpuPct = round(total/(float64(wall)*float64(ncpu))*100, 3)
	}
	return nsPerRun, cpuPct
}

// round rounds @v to @decimals places.
func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}
