#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of `make bench`: in one boot, runs the same workloads under EEVDF
# (no scheduler attached) and under scx-qmap-go in several configurations,
# round-robin, so that drift in the emulator hits every configuration alike.
# Usage: guest.sh <scx-qmap-go binary> <rounds>
#
# Everything the host needs is on stdout, one record a line:
#   META <key> <value...>              about the machine and the run
#   CONFIG <name> [scheduler flags...] a configuration, in order
#   BENCH <config> <round> <metric> <value>
#   HIST <config> <round> <metric> max=<us> overflow=<n> <us>:<count>...
#                                      a cyclictest histogram, non-empty buckets
#   NOTE <text>                        something the reader of the results should know
#   # <text>                           progress
# Sizes can be overridden from the environment: BENCH_SECS (length of the
# timed phases), BENCH_HACKBENCH, BENCH_PERF (their arguments), BENCH_CONFIGS
# (which configurations, by name, comma-separated) and BENCH_PHASES (which
# workloads).
set -u
BIN=$1
ROUNDS=${2:-5}
SECS=${BENCH_SECS:-5}
# Sized so a 2-vCPU TCG guest runs each in a few seconds.
HACKBENCH=${BENCH_HACKBENCH:--g 4 -f 10 -l 400}
PERF_ARGS=${BENCH_PERF:--g 4 -l 100}
SYS=/sys/kernel/sched_ext
N=$(nproc)
TCK=$(getconf CLK_TCK)
HISTMAX=50000 # µs; over twice the 20 ms slice, so p99 under CPU load stays inside

cd /tmp || exit 1 # the guest sees the host read-only; /tmp is writable
# Run the scheduler from the guest's tmpfs, as a deployed binary runs from a
# local disk: over the host share every page of it faults in through emulated
# 9p, which made exec -> enabled 2-4 s instead of ~1.5 s.
cp "$BIN" /tmp/scx-qmap-go.bench && BIN=/tmp/scx-qmap-go.bench
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
# This script only starts, times and reads the workloads; it runs as
# SCHED_FIFO so that the scheduler under test cannot slow that down (at
# nice 0 next to nice -20 loops it would get ~1% of a CPU). Everything it
# measures is started with `chrt -o 0` (SCHED_OTHER) or its own policy.
chrt -f -p 50 $$

# Configurations: name and scheduler flags ("" is EEVDF, no scheduler).
CONFIGS=${BENCH_CONFIGS:-eevdf,qmap,qmap-remote-reenq,qmap-I,qmap-L}
NAMES=(${CONFIGS//,/ })
declare -A FLAGS=([eevdf]="" [qmap]="-v" [qmap-remote-reenq]="-v --remote-reenq" [qmap-I]="-v -I" [qmap-L]="-v -L 2000")

note() { echo "NOTE $*"; }
# out METRIC VALUE: one record; a value that could not be read is a note.
out() {
	if [ -n "${2:-}" ]; then
		echo "BENCH $CFG $ROUND $1 $2"
	else
		note "$CFG round $ROUND: no value for $1"
	fi
}
# nap SECONDS: sleep without forking (a read that times out on a pipe
# nobody writes), so polling costs next to nothing.
exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u $NAPFD; }
# calc EXPR: floating point arithmetic (bash has only integers).
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }

# wait_state STATE SECONDS: poll sched_ext's state. No forks in the loop:
# this script is SCHED_FIFO, and a fork every few ms would take a CPU from
# the loader being timed.
wait_state() {
	local s end=$((${EPOCHREALTIME/./} + $2 * 1000000))
	while ((${EPOCHREALTIME/./} < end)); do
		read -r s <$SYS/state
		[ "$s" = "$1" ] && return 0
		nap 0.005
	done
	return 1
}

# wait_attached SECONDS: wait_state enabled, giving up early if the loader exits.
wait_attached() {
	local s end=$((${EPOCHREALTIME/./} + $1 * 1000000))
	while ((${EPOCHREALTIME/./} < end)) && kill -0 $SCHED 2>/dev/null; do
		read -r s <$SYS/state
		[ "$s" = enabled ] && return 0
		nap 0.005
	done
	return 1
}

# wait_pid PID SECONDS: wait for a child; kill it if it does not exit in time.
wait_pid() {
	timeout "$2" tail -s 0.05 --pid="$1" -f /dev/null || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# stop PID...: end background load and reap it.
stop() {
	kill "$@" 2>/dev/null
	local p
	for p in "$@"; do wait_pid "$p" 10; done
}

# cpu_ticks PID: the process's utime+stime in clock ticks (all its threads).
cpu_ticks() {
	local l
	read -r l <"/proc/$1/stat" 2>/dev/null || { echo 0; return; }
	l=${l##*) } # comm may hold spaces; state is the first field after it
	set -- $l
	echo $((${12} + ${13}))
}

# status_kb PID FIELD: a "kB" line of /proc/PID/status.
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }

# spin SECONDS: a CPU-bound loop that ends by itself, so a kill that misses
# cannot leave a busy loop (perhaps an RT one) behind.
spin() {
	local end=$((SECONDS + $1))
	while ((SECONDS < end)); do :; done
}
export -f spin
# duty SECONDS: busy 80 ms, asleep 20 ms, for SECONDS.
duty() {
	local stop=$((${EPOCHREALTIME/./} + $1 * 1000000)) busy
	while ((${EPOCHREALTIME/./} < stop)); do
		busy=$((${EPOCHREALTIME/./} + 80000))
		while ((${EPOCHREALTIME/./} < busy)); do :; done
		sleep 0.02
	done
}
export -f duty

# bpf_snap: "name run_time_ns run_cnt" for each of the scheduler's programs.
bpf_snap() {
	bpftool prog show 2>/dev/null | awk '
		/^[0-9]+:/ {
			name = ""; ns = 0; cnt = 0
			for (i = 1; i < NF; i++) {
				if ($i == "name") name = $(i + 1)
				if ($i == "run_time_ns") ns = $(i + 1)
				if ($i == "run_cnt") cnt = $(i + 1)
			}
			if (name ~ /^qmap_/) print name, ns, cnt
		}'
}

# bpf_cost BEFORE AFTER WALL_US: per-program ns per run over the interval,
# and the scheduler's total BPF time as a share of all CPUs' time.
bpf_cost() {
	awk -v pre="BENCH $CFG $ROUND" -v wall="$3" -v n="$N" '
		FNR == NR { ns[$1] = $2; cnt[$1] = $3; next }
		{
			dn = $2 - ns[$1]; dc = $3 - cnt[$1]; total += dn
			if (dc > 0) printf "%s bpf_ns.%s %.1f\n", pre, $1, dn / dc
		}
		END { if (wall > 0) printf "%s bpf_cpu_pct %.3f\n", pre, total / (wall * 1000 * n) * 100 }' "$1" "$2"
}

# hist CYCLICTEST_HISTFILE METRIC: the histogram summed over threads, as one HIST line.
hist() {
	if [ ! -s "$1" ]; then
		note "$CFG round $ROUND: cyclictest wrote no histogram for $2"
		return
	fi
	awk -v pre="HIST $CFG $ROUND $2" '
		/^# Max Latencies:/ { for (i = 4; i <= NF; i++) if ($i + 0 > max) max = $i + 0 }
		/^# Histogram Overflows:/ { for (i = 4; i <= NF; i++) ov += $i }
		/^[0-9]/ { c = 0; for (i = 2; i <= NF; i++) c += $i; if (c) s = s " " ($1 + 0) ":" c }
		END { printf "%s max=%d overflow=%d%s\n", pre, max, ov, s }' "$1"
}

# start_sched: attach scx-qmap-go with the configuration's flags; measure the
# time to enabled, then, once settled, its stats loop's CPU and its RSS over
# an idle period.
start_sched() {
	LOG=/tmp/bench-$CFG-$ROUND.log
	local t0 t1 c0 c1
	t0=${EPOCHREALTIME/./}
	chrt -o 0 "$BIN" ${FLAGS[$CFG]} >"$LOG" 2>&1 &
	SCHED=$!
	if ! wait_attached 120; then
		note "$CFG round $ROUND: scheduler did not attach: $(tail -3 "$LOG" | tr '\n' ' ')"
		stop $SCHED
		SCHED=
		return 1
	fi
	t1=${EPOCHREALTIME/./}
	out attach_ms "$(calc "($t1 - $t0) / 1000")"
	# The loader's first seconds after attach are one-off work (giving the
	# kernel's BTF back, starting the stats socket): steady state comes after.
	nap 2
	t0=${EPOCHREALTIME/./}
	c0=$(cpu_ticks $SCHED)
	sleep "$SECS"
	c1=$(cpu_ticks $SCHED)
	t1=${EPOCHREALTIME/./}
	out stats_cpu_pct "$(calc "($c1 - $c0) / $TCK / (($t1 - $t0) / 1e6) * 100")"
	out rss_steady_kb "$(status_kb $SCHED VmRSS)"
}

# stop_sched: peak RSS, then SIGINT and the time until sched_ext is disabled.
stop_sched() {
	local t0 t1 rc
	if [ "$(cat $SYS/state)" != enabled ] || ! kill -0 $SCHED 2>/dev/null; then
		note "$CFG round $ROUND: the scheduler was not attached at the end (ejected?): $(tail -3 "$LOG" | tr '\n' ' ')"
	fi
	out rss_peak_kb "$(status_kb $SCHED VmHWM)"
	t0=${EPOCHREALTIME/./}
	kill -INT $SCHED
	wait_state disabled 60 && t1=${EPOCHREALTIME/./} && out detach_ms "$(calc "($t1 - $t0) / 1000")"
	wait_pid $SCHED 60
	rc=$?
	[ $rc -eq 0 ] || note "$CFG round $ROUND: scx-qmap-go exited with $rc"
	awk '$1 == "verified:" { print "BENCH '"$CFG $ROUND"' insns." $2, $3 }' "$LOG"
	SCHED=
}

run_hackbench() {
	local t0 t1 v
	echo 1 >/proc/sys/kernel/bpf_stats_enabled
	[ -n "$SCHED" ] && bpf_snap >/tmp/bpf0
	t0=${EPOCHREALTIME/./}
	v=$(timeout 300 chrt -o 0 hackbench $HACKBENCH 2>&1 | awk '$1 == "Time:" {print $2}')
	t1=${EPOCHREALTIME/./}
	[ -n "$SCHED" ] && bpf_snap >/tmp/bpf1
	echo 0 >/proc/sys/kernel/bpf_stats_enabled
	[ -n "$v" ] && out hackbench_s "$v" || note "$CFG round $ROUND: hackbench failed"
	[ -n "$SCHED" ] && bpf_cost /tmp/bpf0 /tmp/bpf1 $((t1 - t0))
}

run_perf() {
	[ -n "$PERF" ] || return 0
	local v
	v=$(timeout 300 chrt -o 0 perf bench sched messaging $PERF_ARGS 2>&1 | awk '/Total time:/ {print $3}')
	[ -n "$v" ] && out perf_msg_s "$v" || note "$CFG round $ROUND: perf bench failed"
}

run_stress() {
	local v
	v=$(timeout $((SECS + 60)) chrt -o 0 stress-ng --cpu "$N" --metrics-brief -t "$SECS" 2>&1 |
		awk '$2 == "metrc:" && $4 == "cpu" {print $9}')
	[ -n "$v" ] && out stress_bogo_ops_s "$v" || note "$CFG round $ROUND: stress-ng failed"
}

# Wakeup latency of SCHED_OTHER threads (what the scheduler decides) with a
# CPU hog per CPU.
run_cyclictest_load() {
	local load
	chrt -o 0 stress-ng --cpu "$N" -t $((SECS + 30)) --quiet &
	load=$!
	sleep 0.5
	rm -f /tmp/cyc.hist
	timeout $((SECS + 60)) chrt -o 0 cyclictest -q -D "$SECS" -i 1000 -t "$N" -h $HISTMAX \
		--histfile=/tmp/cyc.hist >/dev/null 2>&1
	stop $load
	hist /tmp/cyc.hist cyc_load
}

# Wakeup latency of SCHED_OTHER threads (scheduled by the scheduler under
# test, free to move) while a SCHED_FIFO 10 task on CPU 1 runs 80 ms in every
# 100 and a CPU hog per CPU runs: each time the RT task wakes it strands
# whatever waits in CPU 1's local DSQ, which is what --remote-reenq hands
# back. (RT cyclictest threads would measure the RT class, not sched_ext.)
run_cyclictest_rt() {
	local load hog
	chrt -o 0 stress-ng --cpu "$N" -t $((SECS + 30)) --quiet &
	load=$!
	taskset -c 1 chrt -f 10 bash -c "duty $((SECS + 60))" &
	hog=$!
	sleep 0.5
	rm -f /tmp/cyc.hist
	timeout $((SECS + 60)) chrt -o 0 cyclictest -q -D "$SECS" -i 1000 -t "$N" -h $HISTMAX \
		--histfile=/tmp/cyc.hist >/dev/null 2>&1
	stop $hog $load
	hist /tmp/cyc.hist cyc_rt
}

# Three CPU-bound groups (one busy loop per CPU each) at nice -20, 0 and 19;
# each group's CPU time over the window, in ticks.
run_fairness() {
	local nice i p c t0 t1 pids=() groups=() c0=()
	for ((i = 0; i < N; i++)); do
		for nice in -20 0 19; do
			chrt -o 0 nice -n $nice bash -c "spin $((SECS + 60))" &
			pids+=($!)
			groups+=($nice)
		done
	done
	sleep 0.5
	t0=${EPOCHREALTIME/./}
	for p in "${pids[@]}"; do c0+=($(cpu_ticks $p)); done
	sleep "$SECS"
	declare -A sum=([-20]=0 [0]=0 [19]=0)
	for i in "${!pids[@]}"; do
		c=$(cpu_ticks ${pids[$i]})
		# A loop that is gone (0) makes its group's sum negative: the host
		# then leaves this round's shares out.
		sum[${groups[$i]}]=$((${sum[${groups[$i]}]} + c - ${c0[$i]}))
	done
	t1=${EPOCHREALTIME/./}
	stop "${pids[@]}"
	for nice in -20 0 19; do out "fair_ticks.$nice" "${sum[$nice]}"; done
	# The shares do not depend on the window's length, but a long one means
	# this script was held up, which the reader should know.
	if (((t1 - t0) / 1000000 > SECS * 2)); then
		note "$CFG round $ROUND: the fairness window took $(((t1 - t0) / 1000000)) s instead of $SECS"
	fi
}

bench_one() {
	echo "# round $ROUND/$ROUNDS: $CFG ($(date +%T))"
	SCHED=
	if [ "$CFG" != eevdf ]; then
		start_sched || return
	fi
	local phase
	PHASES=${BENCH_PHASES:-hackbench,perf,stress,cyclictest_load,cyclictest_rt,fairness}
	for phase in ${PHASES//,/ }; do
		echo "# $CFG $phase ($(date +%T.%N | cut -c1-12))"
		run_$phase
	done
	[ -z "$SCHED" ] || stop_sched
}

echo "META kernel $(uname -r)"
echo "META vcpus $N"
echo "META rounds $ROUNDS"
if dmesg | grep -q 'Hypervisor detected: KVM'; then echo "META emulation KVM"; else echo "META emulation TCG"; fi
echo "META hackbench hackbench $HACKBENCH"
echo "META phase_secs $SECS"
PERF=$(command -v perf)
if [ -n "$PERF" ] && perf bench sched messaging -g 1 -l 1 >/dev/null 2>&1; then
	echo "META perf perf bench sched messaging $PERF_ARGS ($(perf --version))"
else
	PERF=
	note "perf is not installed: perf bench sched messaging skipped (apt-get install linux-perf)"
fi
for c in "${NAMES[@]}"; do echo "CONFIG $c ${FLAGS[$c]#-v}"; done

# Warm up: the first run of a program in a fresh guest pays for reading it
# over 9p and for the emulator translating its code; no configuration
# should pay that in its numbers.
echo "# warm-up"
timeout 300 chrt -o 0 hackbench $HACKBENCH >/dev/null 2>&1
[ -z "$PERF" ] || timeout 300 chrt -o 0 perf bench sched messaging $PERF_ARGS >/dev/null 2>&1
timeout 60 chrt -o 0 stress-ng --cpu "$N" -t 1 --quiet

t_start=${EPOCHREALTIME/./}
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	# Rotate the starting configuration each round so that none always
	# follows the same one.
	for ((k = 0; k < ${#NAMES[@]}; k++)); do
		CFG=${NAMES[$(((ROUND - 1 + k) % ${#NAMES[@]}))]}
		bench_one
	done
done
echo "META guest_secs $(((${EPOCHREALTIME/./} - t_start) / 1000000))"
echo "# done"
