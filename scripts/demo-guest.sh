#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of `make run`: a demo workload under scx-qmap-go with live stats.
# Usage: demo-guest.sh <scx-qmap-go binary> <seconds> [scheduler flags...]
set -u
BIN=$1
SECS=$2
shift 2
cd /tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null

echo "== $(uname -r), $(nproc) vCPUs: scx-qmap-go for ${SECS}s under stress-ng and hackbench"
timeout -s INT --preserve-status --kill-after=30 "$SECS" "$BIN" "$@" &
sched=$!
# Start the load once the scheduler is on, so it is the one that carries it.
for ((i = 0; i < 300; i++)); do
	[ "$(cat /sys/kernel/sched_ext/state)" = enabled ] && break
	kill -0 $sched 2>/dev/null || break
	sleep 0.1
done

# Demo workload: CPU hogs and forks at nice 0, and a message-passing storm at
# nice 19, which the scheduler parks in its low-priority DSQ and reenqueues.
stress-ng --cpu "$(nproc)" --fork 1 --timeout "$SECS" --quiet &
load1=$!
nice -n 19 bash -c "end=\$((SECONDS + $SECS)); while [ \$SECONDS -lt \$end ]; do hackbench -g 2 -l 200 >/dev/null; done" &
load2=$!

wait $sched
rc=$?
kill $load1 $load2 2>/dev/null
wait
echo "== scx-qmap-go exited with $rc; sched_ext state: $(cat /sys/kernel/sched_ext/state)"
exit $rc
