// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/scx-qmap-go/scx-qmap-go/loader"
	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// statsTimeout bounds connecting and each request; the server answers from
// a cache, so anything slower is a hung process.
const statsTimeout = 5 * time.Second

// runStats is "scx-qmap-go stats": print the running scheduler's stats
// from its socket, once or every --watch seconds.
func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) exitCode {
	fs := pflag.NewFlagSet("scx-qmap-go stats", pflag.ContinueOnError)
	// Silent while parsing, as the main command: a bad flag is one line,
	// and only --help prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	socket := fs.String("socket", stats.DefaultSocket, "the running scheduler's stats socket `PATH` (its --stats-socket)")
	cgroup := fs.StringP("cgroup", "c", "", "read the sub-scheduler of cgroup `CG_PATH` (its -c), at its default socket")
	watch := fs.Float64("watch", 0, "print a sample every `N` seconds, with the change since the previous one, until interrupted (0: once)")
	asJSON := fs.Bool("json", false, "print each sample as one JSON object per line, with the socket's field names (at_ms is the snapshot time)")
	help := fs.BoolP("help", "h", false, "print this help and exit")
	usage := func(format string, a ...any) exitCode {
		fmt.Fprintf(stderr, "scx-qmap-go stats: "+format+" (see --help)\n", a...)
		return exitUsage
	}
	err := fs.Parse(oldSpellings(fs, args))
	if *help || errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: scx-qmap-go stats [--socket PATH | -c CG_PATH] [--watch N] [--json]\n\n"+
			"Prints the running scx-qmap-go scheduler's counters and the kernel's sched_ext events.\n\nOptions:\n%s",
			fs.FlagUsagesWrapped(100))
		return exitOK
	}
	if err != nil {
		return usage("%v", err)
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if err := checkSeconds("--watch", *watch); err != nil {
		return usage("%v", err)
	}
	if *socket == "" {
		return usage("--socket needs a path")
	}
	path, code := instanceSocket(*socket, fs.Changed("socket"), *cgroup, stderr)
	if code != exitOK {
		return code
	}
	return watchStats(ctx, path, *watch, *asJSON, stdout, stderr)
}

// instanceSocket is the stats socket of the instance to watch: @socket if
// chosen, else the default of the sub-scheduler on @cgroup, or of the root.
func instanceSocket(socket string, chosen bool, cgroup string, stderr io.Writer) (string, exitCode) {
	if chosen || cgroup == "" {
		return socket, exitOK
	}
	_, id, err := loader.CgroupID(cgroup)
	if err != nil {
		fmt.Fprintf(stderr, "scx-qmap-go: %v\n", err)
		return "", exitCodeOf(err)
	}
	return stats.SubSocket(id), exitOK
}

// watchStats prints the stats served on @socket once (@every 0) or every
// @every seconds until @ctx ends; --monitor and "stats" share it.
func watchStats(ctx context.Context, socket string, every float64, asJSON bool, stdout, stderr io.Writer) exitCode {
	c, err := stats.Dial(socket, statsTimeout)
	if err != nil {
		return statsFailure(err, socket, stderr)
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()

	interval := time.Duration(every * float64(time.Second))
	var prev stats.Snapshot
	for {
		s, raw, err := c.Top()
		var remote *stats.RemoteError
		if err != nil && interval > 0 && !errors.As(err, &remote) {
			// The server drops idle connections; one fresh try.
			c.Close()
			if c, err = stats.Dial(socket, statsTimeout); err == nil { // c is nil on error
				s, raw, err = c.Top()
			}
		}
		if err != nil {
			return statsFailure(err, socket, stderr)
		}
		if asJSON {
			fmt.Fprintf(stdout, "%s\n", raw)
		} else {
			fmt.Fprint(stdout, stats.Render(prev, s))
		}
		if interval == 0 {
			return exitOK
		}
		prev = s
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(interval):
		}
	}
}

// statsFailure prints one line naming the cause and picks the exit code:
// exitNoInstance, ExitNotRoot for a permission problem, else ExitInternal.
func statsFailure(err error, path string, stderr io.Writer) exitCode {
	var remote *stats.RemoteError
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTDIR):
		fmt.Fprintf(stderr, "scx-qmap-go: no scx-qmap-go instance is running (no stats socket at %s)\n", path)
		return exitNoInstance
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		fmt.Fprintf(stderr, "scx-qmap-go: permission denied on %s: run as root\n", path)
		return exitNotRoot
	case errors.As(err, &remote) && remote.Errno == int(syscall.EAGAIN):
		fmt.Fprintf(stderr, "scx-qmap-go: the scheduler is starting and has no stats yet: try again in a second\n")
		return exitInternal
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		fmt.Fprintf(stderr, "scx-qmap-go: the scx-qmap-go instance at %s stopped\n", path)
		return exitNoInstance
	default:
		fmt.Fprintf(stderr, "scx-qmap-go: reading stats from %s: %v\n", path, err)
		return exitInternal
	}
}
