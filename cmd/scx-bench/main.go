// SPDX-License-Identifier: Apache-2.0

// Command scx-bench is `make bench`: it boots the cached kernel once, runs
// itself there as `scx-bench guest` (EEVDF and scx-qmap-go configurations,
// interleaved round by round; package bench/guest), and writes the
// summarised results to bench/results: latest.json, latest.md and
// latest.svg, printing the table, and latest.guest.json, the guest's result
// as measured. With -from it re-renders a saved result without booting.
// Arguments after "--" go to `scx-bench guest` (-- -secs 2 -configs
// eevdf,qmap ...).
//
// Its guest sides, run in a guest booted by package vm:
//
//	scx-bench guest -bin SCHEDULER [-rounds N ...]   the benchmark; prints its result as JSON
//	scx-bench cost -bin SCHEDULER [-rounds N -secs S] the loader's idle cost per flag set
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/bench/report"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

// guestResult is the file that keeps the guest's result beside the
// summaries, for -from.
const guestResult = "latest.guest.json"

type options struct {
	kernel  string
	cpus    int
	rounds  int
	bin     string
	outDir  string
	from    string
	summary string
	timeout time.Duration
	iclock  bool     // vm.Config.InstructionClock
	guest   []string // more arguments for scx-bench guest
}

func main() {
	// The guest's busy loops and RT hog are this binary started again.
	workload.RunIfAsked()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "guest":
			os.Exit(guestMain(os.Args[2:]))
		case "cost":
			os.Exit(costMain(os.Args[2:]))
		}
	}

	var o options
	flag.StringVar(&o.kernel, "kernel", "7.2", "kernel series in the cache, or a path to a vmlinuz")
	flag.IntVar(&o.cpus, "cpus", 2, "guest vCPUs")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every configuration once")
	flag.StringVar(&o.bin, "bin", "bin/scx-qmap-go", "scheduler binary to benchmark")
	flag.StringVar(&o.outDir, "out", "bench/results", "where to write latest.{json,md,svg} and "+guestResult)
	flag.StringVar(&o.from, "from", "", "render this saved guest result ("+guestResult+") instead of booting a guest")
	flag.StringVar(&o.summary, "summary", "", "render this saved summary (latest.json) again, into its own directory unless -out is given, with what this version derives from its samples, instead of booting a guest")
	flag.DurationVar(&o.timeout, "timeout", 0, "hard limit for the guest (default: scaled to rounds and vCPUs)")
	flag.BoolVar(&o.iclock, "instruction-clock", false, "run the guest on QEMU's instruction-counting clock: the host's speed leaves the guest's figures alone (single-threaded TCG)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: scx-bench [flags] [-- scx-bench guest flags]\n"+
			"       scx-bench guest|cost -h\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.guest = flag.Args()
	// A summary renders again where it lies, not over the main table.
	if o.summary != "" && !flagSet("out") {
		o.outDir = filepath.Dir(o.summary)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scx-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.outDir, err)
	}
	s, err := summary(ctx, o)
	if err != nil {
		return err
	}
	if err := report.Text(os.Stdout, s); err != nil {
		return err
	}
	return write(o.outDir, s)
}

// summary is the run to render: a saved summary (-summary), a saved guest
// result (-from), or a guest booted now, whose result is saved beside.
func summary(ctx context.Context, o options) (*bench.Summary, error) {
	switch {
	case o.summary != "" && o.from != "":
		return nil, fmt.Errorf("-summary and -from both name a saved run: give one")
	case o.summary != "":
		return readSummary(o.summary)
	}
	var res *bench.Result
	if o.from != "" {
		b, err := os.ReadFile(o.from)
		if err != nil {
			return nil, fmt.Errorf("reading the saved result: %w", err)
		}
		if res, err = bench.FindResult(string(b)); err != nil {
			return nil, fmt.Errorf("%s: %w", o.from, err)
		}
	} else {
		var err error
		if res, err = boot(ctx, o); err != nil {
			return nil, err
		}
		if err := saveResult(filepath.Join(o.outDir, guestResult), res); err != nil {
			return nil, err
		}
	}
	return bench.Summarise(res), nil
}

// guestTimeout is the hard limit for a guest that runs @configs
// configurations @rounds times on @cpus vCPUs. One configuration's round
// takes about a minute on 2 vCPUs under TCG on a busy host: twice that,
// plus the boot. More vCPUs than host CPUs slow every one of them down.
func guestTimeout(rounds, configs, cpus int) time.Duration {
	perRun := 2 * time.Minute * time.Duration(max(1, cpus/2))
	return 5*time.Minute + time.Duration(rounds*max(1, configs))*perRun
}

// boot runs `scx-bench guest` in a guest and returns its result, with
// what the host knows about the run added, so that the saved result alone
// can be rendered again.
func boot(ctx context.Context, o options) (*bench.Result, error) {
	// The guest's flags are checked here, before a boot they would waste.
	g, err := guestOptions(o.guest, flag.ContinueOnError)
	if err != nil {
		return nil, fmt.Errorf("flags after --: %w", err)
	}
	// The guest reads the host's files live, and others may rebuild the
	// binaries meanwhile: it runs private copies. They live under bench/
	// because virtme-ng mounts tmpfs over /tmp and /var/tmp.
	dir, err := os.MkdirTemp("bench", ".run-")
	if err != nil {
		return nil, fmt.Errorf("creating a directory for the binaries (run from the repository root): %w", err)
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating scx-bench: %w", err)
	}
	bin, guestBin := filepath.Join(dir, "scx-qmap-go"), filepath.Join(dir, "scx-bench")
	if err := copyFile(o.bin, bin); err != nil {
		return nil, fmt.Errorf("the scheduler binary (make build): %w", err)
	}
	if err := copyFile(self, guestBin); err != nil {
		return nil, fmt.Errorf("scx-bench itself: %w", err)
	}

	timeout := o.timeout
	if timeout == 0 {
		timeout = guestTimeout(o.rounds, len(g.Configs), o.cpus)
		if o.iclock { // one host thread for every vCPU
			timeout *= 2
		}
	}
	args := append([]string{guestBin, "guest", "-bin", bin, "-rounds", fmt.Sprint(o.rounds)}, o.guest...)
	rs := newResumption(o.rounds, func(first int) string {
		if first == 1 {
			return shellJoin(args)
		}
		return shellJoin(append(slices.Clone(args), "-first-round", fmt.Sprint(first)))
	})
	cfg := vm.Config{
		Kernel:      o.kernel,
		CPUs:        o.cpus,
		Timeout:     timeout,
		Stdout:      progress(os.Stderr),
		Console:     io.Discard,
		RaceRetries: raceRetries,
		Again:       rs.again,

		InstructionClock: o.iclock,
	}
	date := time.Now().UTC().Format(time.RFC3339)
	fmt.Fprintf(os.Stderr, "scx-bench: booting %s with %d vCPUs for %d rounds (limit %v)\n", o.kernel, o.cpus, o.rounds, timeout)
	res, err := vm.Run(ctx, cfg, rs.command(1))
	if res == nil {
		return nil, fmt.Errorf("booting the guest: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("guest: %w; output tail:\n%s", err, vm.Tail(res.Output, 20))
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("scx-bench guest exited with %d; output tail:\n%s\nconsole tail:\n%s",
			res.ExitCode, vm.Tail(res.Output, 20), vm.Tail(res.Console, 20))
	}
	result, err := bench.FindResult(res.Output)
	if err != nil {
		return nil, fmt.Errorf("reading the guest's result: %w; output tail:\n%s", err, vm.Tail(res.Output, 20))
	}
	result.Meta["date"] = date
	result.Meta["command"] = command(o)
	result.Meta["host_cpu"] = hostCPU()
	result.Meta["qemu_main_thread"] = res.MainThread
	// The host knows what the guest cannot: how many boots the run took,
	// and which ran under single-threaded TCG (one vCPU at a time).
	rs.merge(result, res)
	if err := result.Validate(); err != nil {
		return nil, fmt.Errorf("the boots' rounds together: %w", err)
	}
	if p := res.Problems(false); len(p) > 0 {
		fmt.Fprintf(os.Stderr, "scx-bench: the guest kernel log shows problems:\n%s\n", strings.Join(p, "\n"))
		for _, l := range p {
			result.Notes = append(result.Notes, "guest kernel log: "+l)
		}
	}
	return result, nil
}

// shellJoin makes a command line of @args for the guest's shell.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// saveResult writes the guest's result as JSON, on one line: its
// histograms are long.
func saveResult(path string, res *bench.Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encoding the guest's result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the guest's result: %w", err)
	}
	return nil
}

// progress passes the guest's progress lines ("# ...", notes among them)
// and its errors through to @w as they come, and drops the rest (the
// result is one long line).
func progress(w io.Writer) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "# ") || strings.HasPrefix(l, "scx-bench ") {
				fmt.Fprintln(w, l)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}

// command is how this run was asked for, for the record.
func command(o options) string {
	if os.Getenv("MAKELEVEL") != "" {
		cmd := fmt.Sprintf("make bench CPUS=%d ROUNDS=%d", o.cpus, o.rounds)
		if o.kernel != flag.Lookup("kernel").DefValue {
			cmd += " KERNEL=" + o.kernel
		}
		if o.outDir != flag.Lookup("out").DefValue {
			cmd += " OUT=" + o.outDir
		}
		if o.iclock {
			cmd += " INSTRUCTION_CLOCK=1"
		}
		return cmd
	}
	return "scx-bench " + strings.Join(os.Args[1:], " ")
}

// hostCPU is the host's CPU model, which sets the emulator's speed.
func hostCPU() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return fmt.Errorf("copying: %w", err)
	}
	return nil
}

// flagSet reports whether the command line gave flag @name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// readSummary loads a saved summary and derives again what its samples give
// (bench.Summary.Repair).
func readSummary(path string) (*bench.Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the saved summary: %w", err)
	}
	var s bench.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a summary: %w", path, err)
	}
	if len(s.Configs) == 0 || len(s.Metrics) == 0 {
		return nil, fmt.Errorf("%s: not a summary: no configurations or metrics", path)
	}
	s.Repair()
	return &s, nil
}

// write saves the JSON, Markdown and SVG renderings.
func write(dir string, s *bench.Summary) error {
	files := []struct {
		name   string
		render func(io.Writer) error
	}{
		{"latest.json", func(w io.Writer) error { return report.JSON(w, s) }},
		{"latest.md", func(w io.Writer) error { return report.Markdown(w, s, "latest.svg") }},
		{"latest.svg", func(w io.Writer) error { return report.SVG(w, s) }},
	}
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.render(&buf); err != nil {
			return fmt.Errorf("rendering %s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	fmt.Fprintf(os.Stderr, "scx-bench: wrote %s/latest.{json,md,svg}\n", dir)
	return nil
}
