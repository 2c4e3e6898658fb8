// SPDX-License-Identifier: Apache-2.0

// Package vmtest is the VM suite's host side: it boots each kernel, runs
// the in-guest tests (package scenarios, built as one static test binary)
// there, and reports each guest test as a subtest of its own, judging the
// guest kernel's log itself. Its tests run only with SCX_VM_TESTS=1 (make
// test sets it), as root on a host with the kernels cached by `make deps`.
package vmtest
