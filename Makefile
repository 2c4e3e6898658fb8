# SPDX-License-Identifier: Apache-2.0
#
# make deps     install the toolchain and cache the 7.2/7.3 kernels (root)
# make run      run the scheduler (here, or in a 7.2 VM when this kernel lacks sched_ext)
# make test     unit tests, generated-file check, and the VM suite
# make stress   the scx CI load gate, 10 runs each on 2 and 4 vCPUs
# make deb      build the Debian package into bin/ (nfpm)
# make generate rebuild the BPF object and Go bindings (bpf2go, clang-19)
# make vmlinux  regenerate vmlinux.h from the cached 7.2 kernel's BTF

GO ?= go
export CGO_ENABLED := 0

# Kernels the VM suite boots.
VM_KERNELS ?= 7.2 7.3
GENERATED := vmlinux.h bpf/qmap_bpfel.go bpf/qmap_bpfel.o

.PHONY: all build deb deps generate vmlinux check-generated test test-unit test-vm run stress bench clean

all: build

# -buildvcs=auto: -V names the revision even where GOFLAGS turns it off.
build:
	$(GO) build -buildvcs=auto -o bin/scx-qmap-go ./cmd/scx-qmap-go
	$(GO) build -o bin/scx-vm ./cmd/scx-vm

# The package version: the last commit's date and revision, or DEB_VERSION.
DEB_VERSION ?= $(shell git log -1 --format='0.0~git%cd.%h' --date=format:%Y%m%d --abbrev=12 2>/dev/null || echo 0.0~dev)

deb:
	mkdir -p bin/deb
	$(GO) build -buildvcs=auto -trimpath -ldflags "-s -w -X github.com/scx-qmap-go/scx-qmap-go/version.release=$(DEB_VERSION)" \
		-o bin/deb/scx-qmap-go ./cmd/scx-qmap-go
	bin/deb/scx-qmap-go --man-page | gzip -9n > bin/deb/scx-qmap-go.8.gz
	{ cat contrib/deb/copyright.head LICENSE; printf '\n==> GPL-2.0-only (bpf/) <==\n'; cat bpf/LICENSE; } > bin/deb/copyright
	SCX_DEB_VERSION='$(DEB_VERSION)' $(GO) tool nfpm package --config contrib/nfpm.yaml --packager deb --target bin/scx-qmap-go.deb

deps:
	bash scripts/deps.sh

generate:
	$(GO) generate ./bpf

vmlinux:
	bash scripts/vmlinux.sh 7.2 vmlinux.h

# Regenerates vmlinux.h and the bpf2go output and fails if they differ from
# the committed ones; the committed files are restored either way. vmlinux.h
# is compared only when the cached 7.2 kernel is the one it was made from:
# sid moves on, and a newer point release is not a reason to fail.
check-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	for f in $(GENERATED); do mkdir -p $$tmp/$$(dirname $$f) && cp -p $$f $$tmp/$$f; done && \
	status=0 && \
	made_from=$$(sed -n '1s/.*BTF of Linux \([^ ]*\)\. .*/\1/p' vmlinux.h) && \
	cached=$$(basename "$$(readlink -f $${KERNEL_CACHE:-/var/cache/scx-qmap-go/kernels}/7.2)") && \
	if [ "$$made_from" = "$$cached" ]; then \
		bash scripts/vmlinux.sh 7.2 vmlinux.h >/dev/null || status=1; \
	else \
		echo "check-generated: vmlinux.h is from $$made_from, the cache has $$cached: not comparing it (make vmlinux to move)"; \
	fi && \
	{ $(GO) generate ./bpf || status=1; } && \
	for f in $(GENERATED); do \
		if ! cmp -s $$f $$tmp/$$f; then echo "check-generated: $$f differs from a fresh regeneration (run make vmlinux generate and commit)"; status=1; fi; \
		cp -p $$tmp/$$f $$f; \
	done && \
	if [ $$status -eq 0 ]; then echo "check-generated: generated files match a fresh regeneration"; fi && \
	exit $$status

test-unit:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 ./...

test-vm: build
	SCX_VM_TESTS=1 SCX_VM_KERNELS="$(VM_KERNELS)" $(GO) test -count=1 -v -timeout 80m ./vmtest

test: test-unit check-generated test-vm

run: build
	bash scripts/run.sh

# The scx CI load gate only, GATE_RUNS times per vCPU count (2 and 4) on
# the first of VM_KERNELS; make test runs it twice per count.
stress: build
	SCX_VM_TESTS=1 SCX_VM_KERNELS="$(VM_KERNELS)" SCX_GATE_RUNS=$(or $(GATE_RUNS),10) \
		$(GO) test -count=1 -v -timeout 90m -run TestStressGate ./vmtest

# EEVDF vs scx-qmap-go in one guest (KERNEL, default 7.2), ROUNDS interleaved
# rounds on CPUS vCPUs; results in OUT, default bench/results;
# INSTRUCTION_CLOCK=1 runs the guest on QEMU's instruction-counting clock (see
# docs/benchmarks.md; the guest side is `scx-bench guest`, bench/guest).
bench: build
	$(GO) build -o bin/scx-bench ./cmd/scx-bench
	bin/scx-bench -kernel $(or $(KERNEL),7.2) -cpus $(or $(CPUS),2) -rounds $(or $(ROUNDS),5) -out $(or $(OUT),bench/results) \
		$(if $(INSTRUCTION_CLOCK),-instruction-clock)

clean:
	rm -rf bin
