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

# --remote-reenq: an RT hog on CPU 1; time a CPU-bound job with and without.
rt_job() { # FLAGS...: prints the job's wall time in ms
	"$BIN" "$@" >"$OUT/rt$*.log" 2>&1 &
	local s=$! hog start end
	wait_state enabled 60
	timeout 60 taskset -c 1 chrt -f 50 bash -c 'end=$((SECONDS + 8)); while [ $SECONDS -lt $end ]; do :; done' &
	hog=$!
	sleep 0.5
	start=$(date +%s%N)
	timeout 60 stress-ng --cpu 4 --cpu-ops 400 --quiet
	end=$(date +%s%N)
	wait_pid $hog 30 >/dev/null
	stop_sched $s >/dev/null
	echo $(((end - start) / 1000000))
}
res rt_off_ms "$(rt_job)"
res rt_on_ms "$(rt_job --remote-reenq)"
res remote_reenq_requests "$(total "$OUT/rt--remote-reenq.log" remote_reenq_requests)"
res remote_reenq_kfunc "$(total "$OUT/rt--remote-reenq.log" reenq_kfunc)"

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
