#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the reliability suite: loads that must not get the scheduler
# ejected, and faults (kill -9, CPU hotplug) the machine must survive with
# the scheduler attaching cleanly afterwards. Every wait is bounded.
# Usage: reliability.sh <binary> <output dir>
set -u
BIN=$1
OUT=$2
. "$(dirname "$0")/lib.sh"
setup_guest

# start_sched NAME FLAGS...: start the loader, logging to NAME.log, and wait
# until the kernel says enabled. Sets S to its pid.
start_sched() {
	local name=$1
	shift
	"$BIN" --quiet "$@" >"$OUT/$name.log" 2>&1 &
	S=$!
	wait_state enabled 60
	res "${name}_enabled" "$(cat $SYS/state)"
}

# finish NAME: SIGINT the loader and report its exit status and exit kind.
finish() {
	stop_sched $S
	res "${1}_rc" $?
	res "${1}_kind" "$(exit_kind "$OUT/$1.log")"
	wait_state disabled 30
}

# took NAME START: seconds since START (the scenario's cost in VM time).
took() { res "${1}_secs" $((SECONDS - $2)); }

# kill -9 of the loader while a workload runs: closing the link's last fd
# unregisters the scheduler, the workload falls back to the fair class and
# finishes, and the next start attaches (replacing the stale stats socket).
t0=$SECONDS
start_sched kill9
timeout 120 stress-ng --cpu 2 --fork 2 --timeout 15 --quiet &
w=$!
timeout 120 hackbench -g 2 -l 400 >/dev/null 2>&1 &
h=$!
sleep 3
res kill9_workload_ext "$(ext_enabled $w)"
kill -KILL $S
wait $S 2>/dev/null
res kill9_rc $?
wait_state disabled 30
res kill9_state "$(cat $SYS/state)"
res kill9_workload_fair "$(ext_enabled $w)"
wait_pid $w 120
res kill9_stress_rc $?
wait_pid $h 120
res kill9_hackbench_rc $?
res kill9_socket_left "$([ -S /run/scx-qmap-go/stats.sock ] && echo 1 || echo 0)"
start_sched reattach
timeout 60 hackbench -g 2 -l 100 >/dev/null 2>&1
res reattach_hackbench_rc $?
res reattach_stats_rc "$("$BIN" stats --json >/dev/null 2>&1; echo $?)"
finish reattach
took kill9 $t0

# CPU hotplug under load: ops.cpu_offline/cpu_online keep the scheduler
# running, so the kernel never asks for a restart (enable_seq stays put).
t0=$SECONDS
start_sched hotplug
seq0=$(cat $SYS/enable_seq)
timeout 120 stress-ng --cpu 2 --fork 1 --timeout 20 --quiet &
w=$!
sleep 2
echo 0 >/sys/devices/system/cpu/cpu1/online
res hotplug_offline_rc $?
sleep 4
res hotplug_online_cpus_during "$(cat /sys/devices/system/cpu/online)"
res hotplug_state_offline "$(cat $SYS/state)"
echo 1 >/sys/devices/system/cpu/cpu1/online
res hotplug_online_rc $?
sleep 4
res hotplug_state_online "$(cat $SYS/state)"
wait_pid $w 120
res hotplug_stress_rc $?
res hotplug_reloads $(($(cat $SYS/enable_seq) - seq0))
finish hotplug
res hotplug_cpu_offline "$(total "$OUT/hotplug.log" cpu_offline)"
res hotplug_cpu_online "$(total "$OUT/hotplug.log" cpu_online)"
res hotplug_restart_msgs "$(grep -c 'asked for a restart' "$OUT/hotplug.log")"
took hotplug $t0

# hackbench, the issue's size: many short wakeups across pipes.
t0=$SECONDS
start_sched hackbench
for i in 1 2 3; do
	timeout 120 hackbench -g 4 -f 10 -l 400 >/dev/null 2>&1
	res "hackbench_rc_$i" $?
done
res hackbench_state "$(cat $SYS/state)"
finish hackbench
took hackbench $t0

# nice -20, 0 and 19 loops together, with an RT hog taking CPU 1 80% of the
# time: nobody starves (the watchdog would eject) and every loop progresses.
t0=$SECONDS
start_sched mixed
hog=$(rt_hog 20)
pids=()
for n in -20 0 19; do
	for i in 1 2; do
		nice -n $n bash -c "$SPIN" spin 15 "$OUT/mixed_nice${n}_$i" &
		pids+=($!)
	done
done
for p in "${pids[@]}"; do wait_pid "$p" 60; done
kill $hog 2>/dev/null
wait_pid $hog 10
res mixed_state "$(cat $SYS/state)"
for n in -20 0 19; do
	res "mixed_rounds_nice$n" $(($(cat "$OUT/mixed_nice${n}_1" 2>/dev/null || echo 0) + $(cat "$OUT/mixed_nice${n}_2" 2>/dev/null || echo 0)))
done
finish mixed
took mixed $t0

# 10,000 threads released at once by one Event: 10,000 tasks through
# init_task, enable and exit, and a wake-all of 10,000 waiters. All must finish
# with the scheduler still attached. Each does a token amount of work: with
# 2,000 loop iterations each they formed a GIL convoy (a GIL holder whose slice
# ran out queued behind thousands of waiters that could only fail to take the
# GIL), FIFO waits reached 2.1 s under TCG, and a slow host stretched them past
# the 5 s watchdog. The GIL keeps most threads asleep, so the FIFOs do not
# overflow here; the overflow count is logged, not asserted.
t0=$SECONDS
start_sched threads
timeout 300 python3 -c '
import threading
threading.stack_size(64 * 1024)
go = threading.Event()
done = []
def work():
    go.wait()
    x = 0
    for i in range(50):
        x += i
    done.append(x)
ts = [threading.Thread(target=work) for _ in range(10000)]
for t in ts:
    t.start()
go.set()
for t in ts:
    t.join()
print(len(done))' >"$OUT/threads.out" 2>&1
res threads_rc $?
res threads_done "$(tail -n1 "$OUT/threads.out")"
res threads_state "$(cat $SYS/state)"
finish threads
res threads_enq "$(total "$OUT/threads.log" enq)"
res threads_overflow "$(total "$OUT/threads.log" overflow)"
took threads $t0

# -p: only SCHED_EXT tasks are the scheduler's; the rest stay on the fair
# class, and both kinds make progress side by side.
t0=$SECONDS
start_sched partial -p
ext=()
fair=()
for i in 1 2; do
	python3 -c 'import os, sys; os.sched_setscheduler(0, 7, os.sched_param(0)); os.execvp("bash", ["bash", "-c"] + sys.argv[1:])' \
		"$SPIN" spin 8 "$OUT/partial_ext_$i" &
	ext+=($!)
	bash -c "$SPIN" spin 8 "$OUT/partial_fair_$i" &
	fair+=($!)
done
sleep 2
res partial_ext_enabled "$(for p in "${ext[@]}"; do ext_enabled "$p"; done | tr -d '\n')"
res partial_fair_enabled "$(for p in "${fair[@]}"; do ext_enabled "$p"; done | tr -d '\n')"
for p in "${ext[@]}" "${fair[@]}"; do wait_pid "$p" 60; done
res partial_state "$(cat $SYS/state)"
res partial_ext_rounds $(($(cat "$OUT/partial_ext_1" 2>/dev/null || echo 0) + $(cat "$OUT/partial_ext_2" 2>/dev/null || echo 0)))
res partial_fair_rounds $(($(cat "$OUT/partial_fair_1" 2>/dev/null || echo 0) + $(cat "$OUT/partial_fair_2" 2>/dev/null || echo 0)))
finish partial
res partial_enq "$(total "$OUT/partial.log" enq)"
took partial $t0

# No bpffs mounted: the loader pins nothing, so it needs none.
t0=$SECONDS
umount /sys/fs/bpf 2>/dev/null
res nobpffs_mounted "$(mountpoint -q /sys/fs/bpf && echo 1 || echo 0)"
start_sched nobpffs
timeout 60 hackbench -g 2 -l 100 >/dev/null 2>&1
res nobpffs_hackbench_rc $?
finish nobpffs
mount -t bpf bpf /sys/fs/bpf
took nobpffs $t0

res done 1
