#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# `make run`: runs scx-qmap-go here when this kernel has sched_ext, otherwise
# boots the cached 7.2 kernel and runs it there under a demo workload.
# DURATION (seconds, default 3600) bounds the run; Ctrl-C stops it sooner.
# ARGS are passed to the scheduler after --stats 1 (live stats every second).
set -eu
DURATION=${DURATION:-3600}
BIN=${BIN:-$PWD/bin/scx-qmap-go}
ARGS="--stats 1 ${ARGS:-}"

if [ -e /sys/kernel/sched_ext/state ]; then
	echo "sched_ext is available here: running $BIN $ARGS (Ctrl-C to stop)"
	exec timeout -s INT --foreground --preserve-status "$DURATION" "$BIN" $ARGS
fi

# No sched_ext here: scx-vm's first line names the guest kernel and its
# accelerator (KVM, or TCG when KVM cannot run guests on this host).
exec "$PWD/bin/scx-vm" --kernel "${KERNEL:-7.2}" --cpus "${CPUS:-2}" --timeout "$((DURATION + 300))s" \
	-- bash "$PWD/scripts/demo-guest.sh" "$BIN" "$DURATION" $ARGS
