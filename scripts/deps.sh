#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs everything the build, the tests and the benchmarks need, and caches
# the sched_ext kernels the VM suite boots. Idempotent: a second run only
# checks, and reuses the kernel cache.
#
# Ground rule: the host stays a bookworm system. trixie and sid are pinned to
# priority 1, so apt never takes anything from them unless a package is named
# as pkg/suite here, and each such install is checked with `apt-get -s` first
# so it cannot pull in a newer libc or other base packages.
set -euo pipefail

CACHE_DIR=${KERNEL_CACHE:-/var/cache/scx-qmap-go/kernels}
IMAGE_DIR=${SYSTEMD_IMAGE:-/var/cache/scx-qmap-go/sysimage}
SOURCES=/etc/apt/sources.list.d/scx-qmap-go.sources
PREFS=/etc/apt/preferences.d/scx-qmap-go

say() { printf '[deps] %s\n' "$*"; }
die() { printf '[deps] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages): sudo make deps"

export DEBIAN_FRONTEND=noninteractive

setup_apt() {
	local want
	want=$(cat <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
	if [ ! -f "$SOURCES" ] || [ "$(cat "$SOURCES")" != "$want" ]; then
		say "adding bookworm-backports, trixie, trixie-backports and sid to $SOURCES"
		printf '%s\n' "$want" >"$SOURCES"
	fi
	want=$(cat <<'PIN'
# scx-qmap-go: never upgrade the base system from these suites; packages are
# taken from them only when named explicitly as pkg/suite.
Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: *
Pin: release n=trixie-backports
Pin-Priority: 1

Package: *
Pin: release n=sid
Pin-Priority: 1
PIN
)
	if [ ! -f "$PREFS" ] || [ "$(cat "$PREFS")" != "$want" ]; then
		say "pinning trixie, trixie-backports and sid to priority 1 in $PREFS"
		printf '%s\n' "$want" >"$PREFS"
	fi
	# Refresh the lists at most once an hour: a re-run should take seconds.
	local stamp=/var/lib/apt/lists/.scx-qmap-go-updated
	if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
		say "apt-get update"
		apt-get update -qq || die "apt-get update failed"
		touch "$stamp"
	fi
}

# installed PKG: true when PKG is installed (any version).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed'; }

# install_from SUITE PKG...: install PKGs from SUITE (empty: the default),
# refusing if the simulation would touch a base package from trixie or sid.
install_from() {
	local suite=$1; shift
	local todo=() p
	for p in "$@"; do installed "$p" || todo+=("$p"); done
	[ ${#todo[@]} -eq 0 ] && return 0
	local args=()
	for p in "${todo[@]}"; do
		if [ -n "$suite" ]; then args+=("$p/$suite"); else args+=("$p"); fi
	done
	local sim
	sim=$(apt-get -s install --no-install-recommends -y "${args[@]}" 2>&1) ||
		die "apt cannot install ${args[*]}: $sim"
	# Only the named packages may come from trixie or sid.
	local bad
	bad=$(printf '%s\n' "$sim" | awk '/^Inst /{print}' | grep -E '/(stable|stable-backports|testing|unstable|trixie|trixie-backports|sid)[] ]' |
		awk '{print $2}' | grep -vxF -f <(printf '%s\n' "${todo[@]}") || true)
	[ -z "$bad" ] || die "installing ${args[*]} would also take these from trixie/sid: $bad"
	say "installing ${args[*]}"
	apt-get install -y -qq --no-install-recommends "${args[@]}" >/dev/null ||
		die "apt-get install ${args[*]} failed"
}

# need_version PKG MIN: fail unless the installed PKG is at least MIN.
need_version() {
	local v
	v=$(dpkg-query -W -f='${Version}' "$1")
	dpkg --compare-versions "$v" ge "$2" || die "$1 $v is older than $2"
}

install_packages() {
	install_from "" clang-19 llvm-19 make git ca-certificates xz-utils zstd \
		stress-ng rt-tests udev kmod busybox-static python3 cpio bc util-linux \
		mmdebstrap e2fsprogs systemd \
		curl linux-perf # the metrics scrape in the VM suite; perf bench in make bench
	# QEMU 10: bookworm's 7.2 crashes TCG guests when a scheduler detaches.
	install_from bookworm-backports libbpf-dev bpftool qemu-system-x86 \
		qemu-system-common qemu-system-data seabios
	need_version libbpf-dev 1:1.4
	need_version bpftool 7.5
	need_version qemu-system-x86 1:10
	install_from sid virtme-ng
}

# newest_pkg REGEX SUITE: the newest package name matching REGEX in SUITE.
newest_pkg() {
	apt-cache search --names-only "$1" | awk '{print $1}' | sort -V |
		while read -r p; do
			apt-cache policy "$p" | grep -q " $2/main" && echo "$p"
		done | tail -n1
}

# fetch_kernel SERIES SUITE: download and unpack the newest -amd64 kernel of
# SERIES from SUITE into $CACHE_DIR/<version>, and point $CACHE_DIR/<SERIES> at it.
fetch_kernel() {
	local series=$1 suite=$2 bin ver dir
	bin=$(newest_pkg "^linux-binary-${series//./\\.}\.[0-9]+\+deb[0-9]+-amd64\$" "$suite")
	[ -n "$bin" ] || die "no linux-binary-${series}.*-amd64 package in $suite"
	ver=${bin#linux-binary-}
	dir=$CACHE_DIR/$ver
	if [ -f "$dir/.complete" ]; then
		say "kernel $ver already cached in $dir"
	else
		say "downloading kernel $ver from $suite into $dir"
		local tmp
		tmp=$(mktemp -d)
		chmod 755 "$tmp" # apt-get download drops privileges to _apt
		(cd "$tmp" && apt-get download -qq "linux-binary-$ver/$suite" "linux-modules-$ver/$suite") ||
			die "apt-get download of kernel $ver failed"
		rm -rf "$dir" && mkdir -p "$dir"
		local deb
		for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
		rm -rf "$tmp"
		[ -f "$dir/usr/lib/modules/$ver/vmlinuz" ] || die "kernel $ver has no vmlinuz"
		touch "$dir/.complete"
	fi
	ln -sfn "$ver" "$CACHE_DIR/$series"
}

setup_apt
install_packages
mkdir -p "$CACHE_DIR"
fetch_kernel 7.2 sid
fetch_kernel 7.3 trixie-backports
bash "$(dirname "$0")/sysimage.sh" "$CACHE_DIR" "$IMAGE_DIR" 7.2 7.3
say "done: kernels in $CACHE_DIR ($(readlink "$CACHE_DIR/7.2"), $(readlink "$CACHE_DIR/7.3"))"
