#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Guest side of the basic VM suite: runs every check in one boot and prints
# "RESULT <key> <value>" lines for the Go test to assert on. Every wait is
# bounded. Usage: basic.sh <scx-qmap-go binary> <writable output dir>
set -u
BIN=$1
OUT=$2
. "$(dirname "$0")/lib.sh"
setup_guest
res pinned_before "$(ls /sys/fs/bpf | wc -l)"

# Attach, and check the kernel's view.
start=$(date +%s.%N)
"$BIN" -v --stats-interval 1s --metrics-addr 127.0.0.1:9464 >"$OUT/run.log" 2>&1 &
sched=$!
wait_state enabled 60
res attach_state "$(cat $SYS/state)"
res attach_secs "$(echo "$(date +%s.%N) - $start" | bc)"
res ops "$(cat $SYS/root/ops 2>/dev/null)"

# A workload of CPU-bound and short-lived tasks must complete on it.
timeout 120 stress-ng --cpu 2 --fork 2 --timeout 8 --metrics-brief >"$OUT/stress.log" 2>&1 &
work=$!
sleep 2
res workload_ext "$(awk '/^ext.enabled/ {print $3}' /proc/$work/sched)"
# Stats from a second process while the workload runs: two JSON samples
# 2 s apart, the socket's mode, a non-root client, and a metrics scrape taken
# between two socket samples of the same snapshot (same at_ms) so the Go
# side can check they agree.
SOCK=/run/scx-qmap-go/stats.sock
timeout 10 "$BIN" stats --json >"$OUT/stats1.json" 2>"$OUT/stats1.err"
res stats_json_rc $?
sleep 2
timeout 10 "$BIN" stats --json >"$OUT/stats2.json" 2>&1
res socket_mode "$(stat -c '%a %U' $SOCK)"
timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" stats >"$OUT/stats-nonroot.log" 2>&1
res stats_nonroot_rc $?
for try in 1 2 3 4 5; do
	timeout 10 "$BIN" stats --json >"$OUT/pair-before.json" 2>&1
	timeout 10 curl -s http://127.0.0.1:9464/metrics >"$OUT/metrics.txt"
	timeout 10 "$BIN" stats --json >"$OUT/pair-after.json" 2>&1
	before=$(grep -o '"at_ms":[0-9]*' "$OUT/pair-before.json")
	[ -n "$before" ] && [ "$before" = "$(grep -o '"at_ms":[0-9]*' "$OUT/pair-after.json")" ] && break
done
res metrics_tries $try
wait $work
res stress_rc $?
timeout 180 hackbench -g 4 -f 10 -l 400 >"$OUT/hackbench.log" 2>&1
res hackbench_rc $?

# Nice 19 hogs park in the low-priority DSQ and run when the 10 ms timer
# reenqueues them; they must still make progress beside nice 0 hogs.
timeout 120 nice -n 19 stress-ng --cpu 2 --timeout 6 --metrics-brief >"$OUT/lowpri.log" 2>&1 &
lowpri=$!
timeout 120 stress-ng --cpu 2 --timeout 6 --quiet
wait $lowpri
res lowpri_rc $?
res lowpri_bogo_ops "$(awk '/metrc:.* cpu / {print $5}' "$OUT/lowpri.log")"
sleep 1.5 # one more stats line after the workload

# The loader's own cost while it idles at the default 1 s stats interval:
# CPU ticks (1/100 s) over 5 s, and its resident memory.
t0=$(awk '{print $14 + $15}' /proc/$sched/stat)
sleep 5
t1=$(awk '{print $14 + $15}' /proc/$sched/stat)
res loader_cpu_pct "$(echo "scale=2; ($t1 - $t0) / 5" | bc)"
res loader_rss_kb "$(awk '/^VmRSS/ {print $2}' /proc/$sched/status)"
res loader_hwm_kb "$(awk '/^VmHWM/ {print $2}' /proc/$sched/status)"

# sysrq-D emits the kernel's debug dump, with the scheduler's ops.dump and
# ops.dump_task lines, through the sched_ext_dump tracepoint.
echo 1 >$T/events/sched_ext/sched_ext_dump/enable
echo D >/proc/sysrq-trigger
sleep 1
echo 0 >$T/events/sched_ext/sched_ext_dump/enable
grep sched_ext_dump $T/trace >"$OUT/sysrq-dump.log"
res dump_fifo_lines "$(grep -c 'FIFO\[' "$OUT/sysrq-dump.log")"
res dump_task_lines "$(grep -c 'QMAP: highpri=' "$OUT/sysrq-dump.log")"

# A second instance must refuse, and leave the first attached.
timeout 60 "$BIN" >"$OUT/second.log" 2>&1
res second_rc $?
res still_enabled "$(cat $SYS/state)"

# A non-root caller must refuse.
timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" >"$OUT/nonroot.log" 2>&1
res nonroot_rc $?

# SIGINT detaches cleanly.
kill -INT $sched
timeout 60 tail --pid=$sched -f /dev/null
wait $sched
res sigint_rc $?
wait_state disabled 30
res detach_state "$(cat $SYS/state)"
res socket_after "$(ls $SOCK 2>/dev/null | wc -l)"
timeout 10 "$BIN" stats >"$OUT/stats-none.log" 2>&1
res stats_none_rc $?
res pinned_after "$(ls /sys/fs/bpf | wc -l)"
res struct_ops_after "$(bpftool struct_ops list 2>/dev/null | wc -l)"

# An exit the kernel initiates (sysrq-S) is noticed and reported.
"$BIN" --quiet >"$OUT/sysrq.log" 2>&1 &
sched=$!
wait_state enabled 60
res sysrq_attach "$(cat $SYS/state)"
echo S >/proc/sysrq-trigger
timeout 60 tail --pid=$sched -f /dev/null
wait $sched
res sysrq_rc $?
wait_state disabled 30
res sysrq_state "$(cat $SYS/state)"
res done 1
