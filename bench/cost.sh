#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the loader's idle cost: for each flag set, start the
# scheduler, let it settle, then measure its CPU time and RSS over a window.
# Usage (host): bin/scx-vm --kernel 7.2 -- bash bench/cost.sh "$PWD/bin/scx-qmap-go" [ROUNDS] [SECS]
set -u
BIN=$1
ROUNDS=${2:-2}
SECS=${3:-30}
. "$(dirname "$0")/../vmtest/testdata/lib.sh"
setup_guest
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/$3"; }
for round in $(seq "$ROUNDS"); do
	# The last set takes no snapshot in the window: the process's baseline
	# (Go runtime, the exit wait), which the others' stats loops add to.
	for flags in "" "--quiet" "--stats-socket=" "--metrics-addr 127.0.0.1:9464" "--quiet --stats-interval 1h"; do
		"$BIN" $flags >/tmp/cost.log 2>&1 &
		s=$!
		wait_state enabled 60
		sleep 3 # one-off work after attach
		c0=$(ticks $s)
		t0=$(date +%s%N)
		sleep "$SECS"
		c1=$(ticks $s)
		t1=$(date +%s%N)
		echo "COST round=$round flags=[$flags]" \
			"cpu_pct=$(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v h="$TCK" 'BEGIN { printf "%.2f", c / h / (t / 1e9) * 100 }')" \
			"rss_kb=$(kb $s VmRSS status) hwm_kb=$(kb $s VmHWM status) anon_kb=$(kb $s RssAnon status)" \
			"anon_huge_kb=$(kb $s AnonHugePages smaps_rollup)"
		stop_sched $s >/dev/null
		wait_state disabled 30
		sleep 1
	done
done
res done 1
