#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the fault suite: each injected fault ejects the scheduler
# with the right exit kind and a readable report, the loader exits 1, and the
# machine keeps working. Usage: faults.sh <binary> <output dir>
set -u
BIN=$1
OUT=$2
. "$(dirname "$0")/lib.sh"
setup_guest

# fault NAME FLAGS...: run the scheduler with FLAGS under a small workload
# until the kernel ejects it (bounded), then report how it ended.
fault() {
	local name=$1 s w i start=$SECONDS
	shift
	"$BIN" --quiet "$@" >"$OUT/$name.log" 2>&1 &
	s=$!
	# A fault can end it while it is still enabling: stop waiting then too.
	for ((i = 0; i < 600; i++)); do
		[ "$(cat $SYS/state)" = enabled ] && break
		kill -0 $s 2>/dev/null || break
		sleep 0.1
	done
	timeout 90 stress-ng --cpu 2 --fork 2 --timeout 60 --quiet >/dev/null 2>&1 &
	w=$!
	wait_pid $s 90
	res ${name}_rc $?
	pkill -TERM stress-ng
	wait_pid $w 30
	wait_state disabled 30
	res ${name}_state "$(cat $SYS/state)"
	res ${name}_kind "$(exit_kind "$OUT/$name.log")"
	res ${name}_secs "$((SECONDS - start))"
}

fault error -e 200 -D 512
fault stall_user -t 20
fault stall_kernel -T 20
fault dispatch_loop -l 100

# The machine recovers: a clean attach, a workload, a clean detach.
"$BIN" --quiet >"$OUT/after.log" 2>&1 &
s=$!
wait_state enabled 60
res after_state "$(cat $SYS/state)"
timeout 60 hackbench -g 2 -l 100 >/dev/null 2>&1
res after_hackbench_rc $?
stop_sched $s
res after_rc $?
res done 1
