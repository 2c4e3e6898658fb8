#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the load gate the scx project runs in its CI: the scheduler
# runs 45 s under stress-ng's affinity/fork/cpu mix and must neither be
# ejected nor fail to exit 0 on SIGTERM. Default watchdog (timeout_ms 5000).
# Usage: stress.sh <binary> <output dir> <runs>
set -u
BIN=$1
OUT=$2
RUNS=$3
. "$(dirname "$0")/lib.sh"
setup_guest
N=$(nproc)
res cpus "$N"
for run in $(seq "$RUNS"); do
	timeout --foreground --preserve-status 45 "$BIN" -v --stats-socket "" >"$OUT/gate$run.log" 2>&1 &
	s=$!
	wait_state enabled 60
	timeout 60 stress-ng -t 31 --aggressive -M -c "$N" -f "$N" --affinity 1 --affinity-delay 1 --affinity-pin \
		>"$OUT/stress$run.log" 2>&1
	res "stress_rc_$run" $?
	wait_pid $s 60
	res "gate_rc_$run" $?
	res "gate_kind_$run" "$(exit_kind "$OUT/gate$run.log")"
	wait_state disabled 30
done
res done 1
