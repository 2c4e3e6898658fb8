#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the systemd guest the service tests boot (vm.Image): a Debian
# bookworm root filesystem with systemd as PID 1 (rootfs.ext4), and for each
# cached kernel a small initramfs that loads the modules needed to mount it
# (virtio_blk, ext4 and 9p are modules in Debian's kernels). virtme-ng cannot
# be used: its --systemd boots the host's root, where /.dockerenv makes the
# guest's systemd believe it runs in a container (docs/service.md).
#
# The guest runs /mnt/share/in/run (a 9p share from the host) once the
# system is up, with its output in /mnt/share/out/output and its exit status
# in /mnt/share/out/rc, then powers off.
#
# Usage: sysimage.sh KERNEL_CACHE_DIR IMAGE_DIR SERIES...   (root)
set -euo pipefail
CACHE_DIR=$1
IMAGE_DIR=$2
shift 2
say() { printf '[sysimage] %s\n' "$*"; }
die() { printf '[sysimage] error: %s\n' "$*" >&2; exit 1; }

# Bump when the image's contents change, so that make deps rebuilds it.
IMAGE_VERSION=1
MIRROR=http://deb.debian.org/debian
mkdir -p "$IMAGE_DIR"

guest_files() {
	local d=$1
	cat >"$d/fstab" <<-'END'
	/dev/vda  /          ext4  rw,relatime  0 1
	share     /mnt/share 9p    trans=virtio,version=9p2000.L,msize=512000,nofail  0 0
	END
	# Not Type=oneshot: inside the boot transaction, is-system-running
	# --wait would then wait for this unit itself.
	cat >"$d/guest-run.service" <<-'END'
	[Unit]
	Description=Run the host's command, then power off
	After=mnt-share.mount multi-user.target
	RequiresMountsFor=/mnt/share

	[Service]
	Type=exec
	ExecStart=/usr/local/sbin/guest-run
	StandardOutput=journal+console
	StandardError=journal+console

	[Install]
	WantedBy=multi-user.target
	END
	cat >"$d/guest-run" <<-'END'
	#!/bin/sh
	out=/mnt/share/out
	mkdir -p "$out"
	state=$(systemctl is-system-running --wait)
	echo "guest-run: system $state after $(cut -d' ' -f1 /proc/uptime) s; starting /mnt/share/in/run"
	/mnt/share/in/run >"$out/output" 2>&1
	echo $? >"$out/rc"
	echo "guest-run: done, exit $(cat "$out/rc"); powering off"
	sync
	systemctl --no-block poweroff
	END
	chmod +x "$d/guest-run"
}

build_rootfs() {
	local img=$IMAGE_DIR/rootfs.ext4 stamp=$IMAGE_DIR/rootfs.version
	if [ -f "$img" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$IMAGE_VERSION" ]; then
		say "root filesystem already built: $img"
		return
	fi
	local work
	work=$(mktemp -d)
	guest_files "$work"
	say "building the bookworm root filesystem with systemd (mmdebstrap, about a minute)"
	# essential: dpkg, coreutils, bash... but no apt. udev: the device
	# units (dev-vda.device); dbus: systemctl and logind.
	timeout 900 mmdebstrap --mode=root --variant=essential \
		--include=systemd,systemd-sysv,udev,dbus,kmod \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--customize-hook='echo scx-guest >"$1/etc/hostname"' \
		--customize-hook='chroot "$1" passwd -d root' \
		--customize-hook='mkdir -p "$1/mnt/share"' \
		--customize-hook="cp $work/fstab \"\$1/etc/fstab\"" \
		--customize-hook="cp $work/guest-run \"\$1/usr/local/sbin/guest-run\"" \
		--customize-hook="cp $work/guest-run.service \"\$1/etc/systemd/system/\"" \
		--customize-hook='chroot "$1" systemctl enable guest-run.service' \
		--customize-hook='chroot "$1" systemctl mask getty.target systemd-firstboot.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer' \
		--customize-hook='chroot "$1" systemd-machine-id-setup' \
		bookworm "$work/rootfs" "$MIRROR" >"$work/mmdebstrap.log" 2>&1 ||
		die "mmdebstrap failed: $(tail -5 "$work/mmdebstrap.log")"
	rm -f "$img"
	mke2fs -q -t ext4 -L root -d "$work/rootfs" "$img" 1G || die "mke2fs failed"
	echo "$IMAGE_VERSION" >"$stamp"
	rm -rf "$work"
	say "built $img"
}

# The modules the initramfs loads, in order; virtio_pci is built in.
MODULES="crc16 mbcache jbd2 ext4 virtio_blk netfs 9pnet 9pnet_virtio 9p"

build_initrd() {
	local series=$1 kdir kver out
	kdir=$(echo "$CACHE_DIR/$series"/usr/lib/modules/*/)
	kdir=${kdir%/}
	[ -f "$kdir/vmlinuz" ] || die "no cached $series kernel in $CACHE_DIR"
	kver=$(basename "$kdir")
	out=$IMAGE_DIR/initrd-$kver.cpio.gz
	if [ -f "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$IMAGE_VERSION" ]; then
		say "initramfs for $kver already built"
		return
	fi
	local d m f
	d=$(mktemp -d)
	mkdir -p "$d/bin" "$d/mods" "$d/dev" "$d/proc" "$d/sys" "$d/newroot"
	cp /bin/busybox "$d/bin/busybox"
	for m in $MODULES; do
		f=$(find "$kdir/kernel" -name "$m.ko*" | head -1)
		[ -n "$f" ] || die "kernel $kver has no module $m"
		case $f in
		*.xz) xz -dc "$f" >"$d/mods/$m.ko" ;;
		*.zst) zstd -dcq "$f" >"$d/mods/$m.ko" ;;
		*) cp "$f" "$d/mods/$m.ko" ;;
		esac
	done
	echo "$MODULES" >"$d/mods/order"
	cat >"$d/init" <<-'END'
	#!/bin/busybox sh
	/bin/busybox --install -s /bin
	mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
	for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "initrd: insmod $m failed"; done
	i=0; while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; poweroff -f; }
	# The host's module tree, so that modprobe works in the guest.
	mkdir -p "/newroot/lib/modules/$(uname -r)"
	mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000 kmods "/newroot/lib/modules/$(uname -r)" ||
		echo "initrd: no module share"
	umount /proc /sys /dev
	exec switch_root /newroot /lib/systemd/systemd
	END
	chmod +x "$d/init"
	(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	echo "$IMAGE_VERSION" >"$out.version"
	rm -rf "$d"
	say "built $out"
}

build_rootfs
for series in "$@"; do build_initrd "$series"; done
