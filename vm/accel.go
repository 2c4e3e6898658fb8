// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"sync"
)

// The accelerator is chosen once per process: KVM while /dev/kvm opens and
// no KVM boot has failed, TCG from the first KVM failure on. $SCX_VM_KVM
// overrides the choice: 0 forces TCG, 1 forces KVM with no fallback.
var accel struct {
	sync.Mutex
	broken string // why KVM cannot run guests here; "" while it may
}

// openKVM checks that /dev/kvm can be opened; tests replace it.
var openKVM = func() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// accelChoice is the accelerator for one boot.
type accelChoice struct {
	kvm    bool
	forced bool   // by $SCX_VM_KVM: no fallback
	why    string // for the user: what decided it
}

func (c accelChoice) String() string {
	switch {
	case c.kvm && c.forced:
		return "KVM (" + c.why + ")"
	case c.kvm:
		return "KVM (TCG if KVM cannot run the guest)"
	default:
		return "TCG (" + c.why + ")"
	}
}

func chooseAccel() (accelChoice, error) {
	switch v := os.Getenv("SCX_VM_KVM"); v {
	case "0":
		return accelChoice{forced: true, why: "SCX_VM_KVM=0"}, nil
	case "1":
		return accelChoice{kvm: true, forced: true, why: "SCX_VM_KVM=1"}, nil
	case "":
	default:
		return accelChoice{}, fmt.Errorf("SCX_VM_KVM=%q: want 0 (TCG), 1 (KVM, no fallback) or unset (KVM when it works)", v)
	}
	accel.Lock()
	broken := accel.broken
	accel.Unlock()
	if broken != "" {
		return accelChoice{why: "KVM cannot run guests here: " + broken}, nil
	}
	if err := openKVM(); err != nil {
		return accelChoice{why: err.Error()}, nil
	}
	return accelChoice{kvm: true, why: "/dev/kvm opens"}, nil
}

// markKVMBroken sends every later boot of this process to TCG.
func markKVMBroken(why string) {
	accel.Lock()
	accel.broken = why
	accel.Unlock()
}

// Accelerator describes what the next boot will use, e.g. "TCG (SCX_VM_KVM=0)".
func Accelerator() (string, error) {
	c, err := chooseAccel()
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// Accelerator describes what the next boot with this configuration will
// use: the instruction clock, or what the package-level Accelerator says.
func (c Config) Accelerator() (string, error) {
	if c.InstructionClock {
		return engineICount.String(), nil
	}
	return Accelerator()
}
