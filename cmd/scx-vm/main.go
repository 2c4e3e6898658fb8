// SPDX-License-Identifier: Apache-2.0

// Command scx-vm runs one shell command as root in a guest booted on a cached
// sched_ext kernel (see package vm), streaming its output. It exits with the
// command's status, or 125 when the guest failed or its kernel log shows a
// problem.
package main

import (
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

	"github.com/scx-qmap-go/scx-qmap-go/vm"
)

const exitVMFailed = 125

func main() {
	var cfg vm.Config
	var consolePath string
	var rw string
	flag.StringVar(&cfg.Kernel, "kernel", "7.2", "kernel series in the cache (7.2, 7.3) or a path to a vmlinuz")
	flag.IntVar(&cfg.CPUs, "cpus", 2, "guest vCPUs")
	flag.IntVar(&cfg.MemoryMB, "memory", 2048, "guest memory in MiB")
	flag.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "hard limit for the whole boot")
	flag.StringVar(&consolePath, "console", "", "write the guest's kernel log to this file")
	flag.StringVar(&rw, "rwdir", "", "comma-separated host directories the guest may write")
	allowEject := flag.Bool("allow-ejection", false, "do not fail when sched_ext ejects a scheduler")
	flag.BoolVar(&cfg.InstructionClock, "instruction-clock", false, "single-threaded TCG whose clock counts instructions, not host time")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: scx-vm [flags] -- COMMAND...\n\nRuns COMMAND as root in a sched_ext guest (virtme-ng).\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if rw != "" {
		cfg.RWDirs = strings.Split(rw, ",")
	}
	cfg.Stdout = os.Stdout
	if consolePath != "" {
		f, err := os.Create(consolePath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scx-vm: %v\n", err)
			os.Exit(exitVMFailed)
		}
		defer f.Close()
		cfg.Console = f
	} else {
		cfg.Console = io.Discard
	}

	kernel, err := cfg.KernelPath()
	if err == nil {
		var acc string
		acc, err = cfg.Accelerator()
		// The first line says which accelerator the guest uses; a KVM
		// failure adds a second one when it falls back to TCG.
		fmt.Fprintf(os.Stderr, "scx-vm: booting %s on %d vCPUs under %s\n",
			filepath.Base(filepath.Dir(kernel)), cfg.CPUs, acc)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scx-vm: %v\n", err)
		os.Exit(exitVMFailed)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := vm.Run(ctx, cfg, strings.Join(flag.Args(), " "))
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scx-vm: %v\n", err)
		os.Exit(exitVMFailed)
	}
	if p := res.Problems(*allowEject); len(p) > 0 {
		fmt.Fprintf(os.Stderr, "scx-vm: the guest kernel log shows problems:\n%s\n", strings.Join(p, "\n"))
		os.Exit(exitVMFailed)
	}
	os.Exit(res.ExitCode)
}
