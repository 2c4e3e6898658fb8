// SPDX-License-Identifier: Apache-2.0

// Package scenarios holds the VM suite's tests that run inside the guest.
// The host side (package vmtest) builds this package's test binary, boots
// each kernel and runs it there; elsewhere every test skips.
package scenarios

import (
	"fmt"
	"os"
	"testing"

	"github.com/scx-qmap-go/scx-qmap-go/vmtest/guest"
	"github.com/scx-qmap-go/scx-qmap-go/workload"
)

func TestMain(m *testing.M) {
	workload.RunIfAsked()
	if os.Getenv(guest.EnvGuest) == "1" {
		if err := guest.Setup(); err != nil {
			fmt.Fprintf(os.Stderr, "guest setup: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// The CLI's exit codes, as the README documents them. Written out rather
// than imported, so that changing the contract fails here.
const (
	exitEjected = 1
)
