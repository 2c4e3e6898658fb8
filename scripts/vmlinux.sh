#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates vmlinux.h from the cached 7.2 kernel's BTF: unpacks the ELF
# vmlinux from the bzImage (the compressed payload is found by its magic), then
# dumps its BTF as C with bpftool >= 7.5, which includes the kfunc prototypes.
set -euo pipefail

CACHE_DIR=${KERNEL_CACHE:-/var/cache/scx-qmap-go/kernels}
SERIES=${1:-7.2}
OUT=${2:-vmlinux.h}

die() { printf 'vmlinux: %s\n' "$*" >&2; exit 1; }

kdir=$CACHE_DIR/$SERIES
[ -d "$kdir" ] || die "no cached $SERIES kernel in $CACHE_DIR: run 'make deps' first"
vmlinuz=$(ls "$kdir"/usr/lib/modules/*/vmlinuz 2>/dev/null | head -n1)
[ -n "$vmlinuz" ] || die "no vmlinuz under $kdir"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

is_elf() { [ "$(head -c4 "$1" | od -An -tx1 | tr -d ' ')" = "7f454c46" ]; }

# try MAGIC_HEX DECOMPRESSOR...: decompress from each offset where the magic
# occurs until one yields an ELF image.
try() {
	local magic=$1; shift
	local off
	for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | cut -d: -f1); do
		tail -c +$((off + 1)) "$vmlinuz" | "$@" >"$tmp/vmlinux" 2>/dev/null || true
		if is_elf "$tmp/vmlinux"; then return 0; fi
	done
	return 1
}

try '\x28\xb5\x2f\xfd' zstd -dcq ||
	try '\xfd\x37\x7a\x58\x5a\x00' xz -dcq ||
	try '\x1f\x8b\x08' gzip -dcq ||
	die "could not find a zstd, xz or gzip payload holding an ELF vmlinux in $vmlinuz"

command -v bpftool >/dev/null || die "bpftool not found: run 'make deps'"
bpftool btf dump file "$tmp/vmlinux" format c >"$tmp/vmlinux.h"
grep -q 'scx_bpf_dsq_reenq' "$tmp/vmlinux.h" ||
	die "the BTF of $vmlinuz has no scx_bpf_dsq_reenq prototype (bpftool too old, or kernel before 7.1)"
mv "$tmp/vmlinux.h" "$OUT"
printf 'vmlinux: wrote %s from %s (%d lines)\n' "$OUT" "$vmlinuz" "$(wc -l <"$OUT")"
