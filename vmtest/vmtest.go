// SPDX-License-Identifier: Apache-2.0

// Package vmtest is the VM suite: it runs the scheduler in a guest booted on
// a real sched_ext kernel and asserts on what the kernel shows. Its tests run
// only with SCX_VM_TESTS=1 (make test sets it), as root on a host with the
// kernels cached by `make deps`.
package vmtest
