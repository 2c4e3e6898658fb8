// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

func (im *Image) dir() string {
	switch {
	case im.Dir != "":
		return im.Dir
	case os.Getenv("SYSTEMD_IMAGE") != "":
		return os.Getenv("SYSTEMD_IMAGE")
	}
	return DefaultImageDir
}

// command writes @command as the guest's Share/in/run and returns the QEMU
// command line that boots the image on @kernel.
func (im *Image) command(kernel string, cpus, mem int, eng engine, command string) (*exec.Cmd, error) {
	if im.Share == "" {
		return nil, fmt.Errorf("systemd image boot: no share directory")
	}
	kdir := filepath.Dir(kernel) // usr/lib/modules/<release>/vmlinuz
	rootfs := filepath.Join(im.dir(), "rootfs.ext4")
	initrd := filepath.Join(im.dir(), "initrd-"+filepath.Base(kdir)+".cpio.gz")
	for _, f := range []string{rootfs, initrd} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("systemd guest image: %w (run 'make deps')", err)
		}
	}
	in, out := filepath.Join(im.Share, "in"), filepath.Join(im.Share, "out")
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	for _, d := range []string{in, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(in, "run"), []byte("#!/bin/sh\n"+command+"\n"), 0o755); err != nil {
		return nil, err
	}
	accel, cpu := "tcg", "max"
	switch eng {
	case engineKVM:
		accel, cpu = "kvm", "host"
	case engineTCGSingle, engineICount:
		accel = "tcg,thread=single"
	}
	args := []string{
		"-accel", accel, "-cpu", cpu, "-machine", "q35", "-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-kernel", kernel, "-initrd", initrd,
		"-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=auto " + guestKernelArgs,
		// -snapshot: the guest's writes go to a temporary overlay.
		"-drive", "file=" + rootfs + ",if=virtio,format=raw,cache=unsafe", "-snapshot",
		"-virtfs", "local,path=" + im.Share + ",mount_tag=share,security_model=none",
		"-virtfs", "local,path=" + kdir + ",mount_tag=kmods,security_model=none,readonly=on",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-net", "none",
	}
	if eng == engineICount {
		args = append(args, "-icount", instructionClock)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdin = nil
	return cmd, nil
}

// result reads what the guest's run left: its output and exit status (-1
// when it never finished).
func (im *Image) result() (string, int) {
	out, _ := os.ReadFile(filepath.Join(im.Share, "out", "output"))
	rc, err := os.ReadFile(filepath.Join(im.Share, "out", "rc"))
	if err != nil {
		return string(out), -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(rc)))
	if err != nil {
		return string(out), -1
	}
	return string(out), n
}
