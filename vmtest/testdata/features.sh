#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the feature suite: each scheduler flag's effect, in the
# counters or in the kernel's view. Usage: features.sh <binary> <output dir>
set -u
BIN=$1
OUT=$2
. "$(dirname "$0")/lib.sh"
setup_guest

# -H: nice -20 tasks are expedited to a local DSQ with SCX_ENQ_PREEMPT.
"$BIN" -H -b 8 --stats-interval 1s >"$OUT/highpri.log" 2>&1 &
s=$!
wait_state enabled 60
timeout 60 nice -n -20 stress-ng --cpu 2 --fork 1 --timeout 5 --quiet &
boosted=$!
timeout 60 stress-ng --cpu 2 --fork 1 --timeout 5 --quiet
wait_pid $boosted 60
sleep 1.2 # one monitor tick
stop_sched $s
res highpri_rc $?
res exp_local "$(total "$OUT/highpri.log" exp_local)"
res exp_remote "$(total "$OUT/highpri.log" exp_remote)"
res exp_timer "$(total "$OUT/highpri.log" exp_timer)"
res cpuperf_target_max "$(total "$OUT/highpri.log" cpuperf_target_max)"
res cpuperf_avg "$(total "$OUT/highpri.log" cpuperf_avg)"

# -I -F: local inserts that cannot run at once come back as IMMED/PREEMPTED.
"$BIN" -I -F 4 >"$OUT/immed.log" 2>&1 &
s=$!
wait_state enabled 60
timeout 60 stress-ng --cpu 3 --fork 2 --timeout 5 --quiet
timeout 60 hackbench -g 2 -l 200 >/dev/null 2>&1
stop_sched $s
res immed_rc $?
res immed_stress "$(total "$OUT/immed.log" immed_stress)"
res reenq_immed "$(total "$OUT/immed.log" reenq_immed)"
res reenq_preempted "$(total "$OUT/immed.log" reenq_preempted)"

# --remote-reenq: an RT task on CPU 1 that runs 80 ms of every 100 ms takes
# the CPU from whatever ext task runs there, which then waits at the head of
# CPU 1's local DSQ. Time a two-worker CPU-bound job with and without the
# flag, alternating, three rounds each; report the medians.
rt_job() { # LOG FLAGS...: print the job's wall time in ms
	local log=$1 s hog start end
	shift
	"$BIN" --quiet "$@" >>"$log" 2>&1 &
	s=$!
	wait_state enabled 60
	hog=$(rt_hog 20)
	sleep 0.3
	start=$(date +%s%N)
	timeout 60 stress-ng --cpu 2 --cpu-ops 300 --quiet
	end=$(date +%s%N)
	kill $hog
	wait_pid $hog 10
	stop_sched $s >/dev/null
	echo $(((end - start) / 1000000))
}
median() { tr ' ' '\n' | sort -n | sed -n 2p; }
off="" on=""
for round in 1 2 3; do
	off="$off $(rt_job "$OUT/rt-off.log")"
	on="$on $(rt_job "$OUT/rt-on.log" --remote-reenq)"
done
res rt_off_runs $off
res rt_on_runs $on
res rt_off_ms "$(echo $off | median)"
res rt_on_ms "$(echo $on | median)"
res remote_reenq_requests "$(total "$OUT/rt-on.log" remote_reenq_requests | awk '{s += $1} END {print s}')"
res remote_reenq_kfunc "$(total "$OUT/rt-on.log" reenq_kfunc | awk '{s += $1} END {print s}')"
res remote_off_requests "$(total "$OUT/rt-off.log" remote_reenq_requests | awk '{s += $1} END {print s}')"

# -s: the slice the kernel holds for each task (slice= in its sysrq-D dump)
# never exceeds -s; by default it reaches SCX_SLICE_DFL's 20 ms.
max_slice() { # FLAGS...: the largest slice= in a dump taken under load
	local s w
	"$BIN" --quiet "$@" >"$OUT/slice$*.log" 2>&1 &
	s=$!
	wait_state enabled 60
	timeout 60 stress-ng --cpu 4 --timeout 4 --quiet &
	w=$!
	sleep 1.5
	echo >$T/trace
	echo 1 >$T/events/sched_ext/sched_ext_dump/enable
	echo D >/proc/sysrq-trigger
	sleep 1
	echo 0 >$T/events/sched_ext/sched_ext_dump/enable
	wait_pid $w 60
	stop_sched $s >/dev/null
	grep -o ' slice=[0-9]*' $T/trace | cut -d= -f2 | sort -n | tail -1
}
res slice_default_max "$(max_slice)"
res slice_2ms_max "$(max_slice -s 2000)"

# -b: dispatch moves up to -b tasks from a FIFO to the shared DSQ at once,
# so the shared DSQ the monitor samples is deeper with a bigger batch.
dsq_depth() { # BATCH: the deepest shared DSQ sampled under load
	local s
	"$BIN" -P -b "$1" >"$OUT/batch$1.log" 2>&1 &
	s=$!
	wait_state enabled 60
	timeout 60 stress-ng --cpu 16 --timeout 6 --quiet
	stop_sched $s >/dev/null
	grep -o '^shared_dsq: nr=[0-9]*' "$OUT/batch$1.log" | cut -d= -f2 | sort -n | tail -1
}
res batch1_depth "$(dsq_depth 1)"
res batch16_depth "$(dsq_depth 16)"

# -P: the shared DSQ and the kernel's event counters every interval.
"$BIN" -P -b 8 --stats-interval 1s >"$OUT/print.log" 2>&1 &
s=$!
wait_state enabled 60
timeout 60 stress-ng --cpu 3 --timeout 3 --quiet
stop_sched $s
res print_rc $?
res print_dsq_lines "$(grep -c '^shared_dsq: nr=' "$OUT/print.log")"
res print_event_lines "$(grep -c '^events: .*SELECT_CPU_FALLBACK=' "$OUT/print.log")"

# -M: cgroup events reach the trace buffer. CPU hotplug is handled in place.
echo >$T/trace
echo 1 >$T/tracing_on
CG=/sys/fs/cgroup
echo +cpu >$CG/cgroup.subtree_control 2>/dev/null
mkdir -p $CG/qmaptest
"$BIN" -M >"$OUT/msgs.log" 2>&1 &
s=$!
wait_state enabled 60
echo 50 >$CG/qmaptest/cpu.weight
echo "50000 100000" >$CG/qmaptest/cpu.max
sleep 0.5
echo 0 >/sys/devices/system/cpu/cpu1/online
sleep 1
echo 1 >/sys/devices/system/cpu/cpu1/online
sleep 1
res hotplug_state "$(cat $SYS/state)"
stop_sched $s
res msgs_rc $?
res cgrp_init_lines "$(grep -c 'CGRP INIT' $T/trace)"
res cgrp_set_lines "$(grep -c 'CGRP SET' $T/trace)"
res cpu_offline "$(total "$OUT/msgs.log" cpu_offline)"
res cpu_online "$(total "$OUT/msgs.log" cpu_online)"
rmdir $CG/qmaptest

# -L: with more CPU hogs than CPUs and a 1 ms periodic waker, tasks over the
# 2 ms budget are preempted for wakeups (kicks) and cut short at ticks.
"$BIN" -L 2000 >"$OUT/lat.log" 2>&1 &
s=$!
wait_state enabled 60
timeout 60 stress-ng --cpu 4 --timeout 6 --quiet &
w=$!
sleep 0.5
timeout 60 cyclictest -q -D 4 -i 1000 -t 2 >/dev/null 2>&1
res lat_cyclictest_rc $?
wait_pid $w 60
stop_sched $s
res lat_rc $?
res lat_kicks "$(total "$OUT/lat.log" lat_kicks)"
res lat_yields "$(total "$OUT/lat.log" lat_yields)"

# -p: only SCHED_EXT tasks are scheduled by it. -d: a SCHED_EXT process
# named at load is reverted to SCHED_NORMAL and counted as rejected.
ext=$(ext_sleeper 60)
victim=$(ext_sleeper 60)
sleep 60 &
normal=$!
rejected_before=$(cat $SYS/nr_rejected)
"$BIN" -p -d "$victim" >"$OUT/partial.log" 2>&1 &
s=$!
wait_state enabled 60
sleep 0.5
res partial_switch_all "$(cat $SYS/switch_all)"
res partial_normal_ext "$(ext_enabled $normal)"
res partial_ext_ext "$(ext_enabled $ext)"
res disallowed_ext "$(ext_enabled $victim)"
res disallowed_policy "$(policy $victim)"
res rejected "$(($(cat $SYS/nr_rejected) - rejected_before))"
stop_sched $s
res partial_rc $?
kill $normal $ext $victim

# -d given a thread's id, not its process's: refused at start (exit 11), since
# the scheduler matches tgids and would refuse nothing.
python3 -c 'import threading, time; t = threading.Thread(target=time.sleep, args=(60,)); t.start(); print(t.native_id, flush=True); t.join()' >"$OUT/thread_tid" &
tproc=$!
for ((i = 0; i < 100; i++)); do [ -s "$OUT/thread_tid" ] && break; sleep 0.1; done
tid=$(cat "$OUT/thread_tid")
res thread_tid_is_thread "$([ -n "$tid" ] && [ "$tid" != $tproc ] && grep -q "^Tgid:[[:space:]]*$tproc\$" /proc/$tid/status && echo 1 || echo 0)"
timeout 60 "$BIN" -d "$tid" >"$OUT/thread_d.log" 2>&1
res thread_d_rc $?
res thread_d_msg "$(grep -c 'no such process' "$OUT/thread_d.log")"
kill $tproc

# -S: the dump has no scheduler lines.
"$BIN" -S --quiet >"$OUT/suppress.log" 2>&1 &
s=$!
wait_state enabled 60
echo 1 >$T/events/sched_ext/sched_ext_dump/enable
echo D >/proc/sysrq-trigger
sleep 1
echo 0 >$T/events/sched_ext/sched_ext_dump/enable
res suppress_dump_lines "$(grep sched_ext_dump $T/trace | grep -c 'FIFO\[\|QMAP:')"
res suppress_kernel_lines "$(grep -c sched_ext_dump $T/trace)"
stop_sched $s
res suppress_rc $?
wait_state disabled 30
res done 1
