# SPDX-License-Identifier: Apache-2.0
#
# Helpers shared by the guest scripts. Every wait is bounded.
SYS=/sys/kernel/sched_ext
T=/sys/kernel/tracing

res() { local k=$1; shift; echo "RESULT $k $*"; }

# wait_state STATE SECONDS: poll sched_ext's state until it is STATE.
wait_state() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(cat $SYS/state)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_pid PID SECONDS: wait for a child to exit; kill it if it does not.
# Prints nothing; returns the child's exit status.
wait_pid() {
	timeout "$2" tail --pid="$1" -f /dev/null || kill -KILL "$1" 2>/dev/null
	wait "$1"
}

# stop_sched PID: SIGINT the loader and return its exit status.
stop_sched() {
	kill -INT "$1"
	wait_pid "$1" 60
}

# total LOG NAME: a counter from the loader's final "totals:" line.
total() {
	grep '^totals:' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'
}

# exit_kind LOG: the exit kind (UNREG, ERROR_STALL...) of the loader's report.
exit_kind() { sed -n 's/^EXIT: \([A-Z_]*\) .*/\1/p' "$1"; }

# ext_enabled PID: 1 when the task is on the ext class.
ext_enabled() { awk '/^ext.enabled/ {print $3}' "/proc/$1/sched" 2>/dev/null; }

# policy PID: the task's scheduling policy number (7 is SCHED_EXT).
policy() { awk '/^policy/ {print $3}' "/proc/$1/sched" 2>/dev/null; }

# ext_sleeper SECS: start a sleep with the SCHED_EXT policy (allowed with no
# scheduler attached) and print its pid once the policy is set.
ext_sleeper() {
	python3 -c 'import os, sys; os.sched_setscheduler(0, 7, os.sched_param(0)); os.execvp("sleep", ["sleep", sys.argv[1]])' "$1" >/dev/null 2>&1 &
	local pid=$! i
	for ((i = 0; i < 300; i++)); do
		[ "$(policy $pid)" = 7 ] && break
		sleep 0.1
	done
	echo $pid
}

# rt_hog SECONDS: start a SCHED_FIFO task pinned to CPU 1 that runs 80 ms of
# every 100 ms, taking the CPU from whatever ext task runs there; print its pid.
rt_hog() {
	taskset -c 1 chrt -f 50 bash -c '
		stop=$((${EPOCHREALTIME/./} + $1 * 1000000))
		while ((${EPOCHREALTIME/./} < stop)); do
			busy=$((${EPOCHREALTIME/./} + 80000))
			while ((${EPOCHREALTIME/./} < busy)); do :; done
			sleep 0.02
		done' rt_hog "$1" >/dev/null 2>&1 &
	echo $!
}

# SPIN is a shell busy loop for `bash -c "$SPIN" spin SECONDS FILE`: it stops
# by itself and writes how many rounds it made to FILE, a measure of the CPU
# it got that needs no /proc sampling (and works under nice or chrt).
SPIN='n=0; end=$((SECONDS + $1)); while ((SECONDS < end)); do ((n++)); done; echo $n >"$2"'

setup_guest() {
	cd /tmp || exit 1 # the guest sees the host read-only; /tmp is writable
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null
	mountpoint -q $T || mount -t tracefs tracefs $T
	res kernel "$(uname -r)"
}
