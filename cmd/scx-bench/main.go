// SPDX-License-Identifier: Apache-2.0

// Command scx-bench is `make bench`: it boots the cached kernel once, runs
// bench/guest.sh there (EEVDF and scx-qmap-go configurations, interleaved
// round by round), and writes the summarised results to bench/results:
// latest.log (the guest's raw output), latest.json, latest.md and
// latest.svg, printing the table. With -from it re-renders a saved log
// without booting.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/scx-qmap-go/scx-qmap-go/bench"
	"github.com/scx-qmap-go/scx-qmap-go/bench/report"
	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

type options struct {
	kernel  string
	cpus    int
	rounds  int
	bin     string
	outDir  string
	from    string
	timeout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.kernel, "kernel", "7.2", "kernel series in the cache, or a path to a vmlinuz")
	flag.IntVar(&o.cpus, "cpus", 2, "guest vCPUs")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every configuration once")
	flag.StringVar(&o.bin, "bin", "bin/scx-qmap-go", "scheduler binary to benchmark")
	flag.StringVar(&o.outDir, "out", "bench/results", "where to write latest.{log,json,md,svg}")
	flag.StringVar(&o.from, "from", "", "render this saved guest output instead of booting a guest")
	flag.DurationVar(&o.timeout, "timeout", 0, "hard limit for the guest (default: scaled to rounds and vCPUs)")
	flag.Parse()

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
	var raw []byte
	if o.from != "" {
		b, err := os.ReadFile(o.from)
		if err != nil {
			return fmt.Errorf("reading saved output: %w", err)
		}
		raw = b
	} else {
		b, err := boot(ctx, o)
		if b != nil {
			// Keep whatever the guest printed, even from a failed run.
			if werr := os.WriteFile(filepath.Join(o.outDir, "latest.log"), b, 0o644); werr != nil && err == nil {
				err = fmt.Errorf("saving guest output: %w", werr)
			}
		}
		if err != nil {
			return err
		}
		raw = b
	}

	parsed, err := bench.Parse(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("parsing guest output: %w", err)
	}
	s := bench.Summarise(parsed)
	if err := report.Text(os.Stdout, s); err != nil {
		return err
	}
	return write(o.outDir, s)
}

// boot runs the guest script and returns its output, followed by META and
// NOTE records of what the host knows about the run, so that the saved log
// alone can be rendered again.
func boot(ctx context.Context, o options) ([]byte, error) {
	script, err := filepath.Abs("bench/guest.sh")
	if err != nil {
		return nil, fmt.Errorf("locating bench/guest.sh: %w", err)
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	// The guest reads the host's files live, and others may rebuild
	// bin/scx-qmap-go meanwhile: benchmark a private copy. It lives beside
	// the script because virtme-ng mounts tmpfs over /tmp and /var/tmp.
	dir, err := os.MkdirTemp(filepath.Dir(script), ".run-")
	if err != nil {
		return nil, fmt.Errorf("creating a directory for the binary: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "scx-qmap-go")
	if err := copyFile(o.bin, bin); err != nil {
		return nil, err
	}

	timeout := o.timeout
	if timeout == 0 {
		// A 2-vCPU round takes about 3 minutes under TCG; more vCPUs than
		// host CPUs slow every one of them down.
		timeout = 5*time.Minute + time.Duration(o.rounds)*5*time.Minute*time.Duration(max(1, o.cpus/2))
	}
	cfg := vm.Config{
		Kernel:  o.kernel,
		CPUs:    o.cpus,
		Timeout: timeout,
		Stdout:  progress(os.Stderr),
		Console: io.Discard,
	}
	date := time.Now().UTC().Format(time.RFC3339)
	fmt.Fprintf(os.Stderr, "scx-bench: booting %s with %d vCPUs for %d rounds (limit %v)\n", o.kernel, o.cpus, o.rounds, timeout)
	res, err := vm.Run(ctx, cfg, fmt.Sprintf("bash %s %s %d", script, bin, o.rounds))
	if res == nil {
		return nil, fmt.Errorf("booting the guest: %w", err)
	}
	var out bytes.Buffer
	out.WriteString(res.Output)
	fmt.Fprintf(&out, "META date %s\nMETA command %s\nMETA host_cpu %s\nMETA elapsed_s %d\n",
		date, command(o), hostCPU(), int(res.Elapsed.Seconds()))
	if err != nil {
		return out.Bytes(), fmt.Errorf("guest: %w", err)
	}
	if res.ExitCode != 0 {
		return out.Bytes(), fmt.Errorf("guest script exited with %d; console tail:\n%s", res.ExitCode, vm.Tail(res.Console, 20))
	}
	if p := res.Problems(false); len(p) > 0 {
		fmt.Fprintf(os.Stderr, "scx-bench: the guest kernel log shows problems:\n%s\n", strings.Join(p, "\n"))
		for _, l := range p {
			fmt.Fprintf(&out, "NOTE guest kernel log: %s\n", l)
		}
	}
	return out.Bytes(), nil
}

// progress passes the guest's progress lines and notes through to @w as
// they come, and drops the records (a histogram is one long line).
func progress(w io.Writer) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "# ") || strings.HasPrefix(l, "NOTE ") {
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
		return fmt.Errorf("reading the scheduler binary (make build): %w", err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return fmt.Errorf("copying the scheduler binary: %w", err)
	}
	return nil
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
	fmt.Fprintf(os.Stderr, "scx-bench: wrote %s/latest.{log,json,md,svg}\n", dir)
	return nil
}
