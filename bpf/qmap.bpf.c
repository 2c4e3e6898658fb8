// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * scx-qmap-go: a port of the kernel's classic scx_qmap scheduler.
 *
 * Runnable tasks are kept, by PID, in five global FIFOs chosen by their
 * weight. Each CPU's dispatch walks the FIFOs round-robin, taking 1, 2, 4, 8
 * and 16 tasks from queue 0..4 in turn, so heavier tasks get proportionally
 * more dispatches. Tasks that find an idle CPU on wakeup skip the FIFOs and go
 * straight to that CPU's local DSQ. A CPU puts the first task it pops into its
 * own local DSQ; the rest of a batch, and tasks that may not run there, go to
 * the shared DSQ, which any CPU the task may run on can consume. Kernel
 * threads skip the FIFOs for the shared DSQ, which dispatch drains first.
 *
 * This is a demonstration scheduler: the FIFOs are global and never
 * load-balanced by locality. It exists to exercise the sched_ext interfaces.
 *
 * The policy is built into both struct_ops forms: qmap_ops (sched_ext_ops,
 * CPUs by number, every kernel from 7.1) and qmap_cid_ops (sched_ext_ops_cid,
 * CPUs by cid, 7.2+). Each callback is written once; BPF_STRUCT_OPS_TWIN
 * makes the cid form's program from it. The loader loads one form only.
 */
#include "scx_qmap_go.bpf.h"

char _license[] SEC("license") = "GPL";

enum consts {
	NR_QUEUES	= 5,
	/* Each FIFO's size in the object; the loader may change it (fifo_depth). */
	QUEUE_DEPTH	= 4096,
	SHARED_DSQ	= 0,
	HIGHPRI_DSQ	= 1,
	LOWPRI_DSQ	= 2,
	/*
	 * HANDOFF_DSQ + cpu: where a task popped from a FIFO for that CPU waits
	 * for scx_bpf_dsq_move_to_local() (move_popped()), one per CPU below
	 * MAX_CIDS.
	 */
	HANDOFF_DSQ	= 1 << 16,
	/* Weight of nice -20: tasks at least this heavy are boosted with -H. */
	HIGHPRI_WEIGHT	= 8668,
	ONE_SEC_IN_NS	= 1000 * 1000 * 1000,
	/* Shared-DSQ pids the monitor snapshots for -P. */
	NR_DSQ_SNAPSHOT	= 16,
	/* How often the low-priority DSQ is handed back through ops.enqueue. */
	LOWPRI_INTV_NS	= 10 * 1000 * 1000,
	/* Weight below which a user task is parked in LOWPRI_DSQ (nice 19 is 1). */
	LOWPRI_WEIGHT	= 2,
	/*
	 * Wait bound: when so many tasks wait in the FIFOs that a full slice
	 * each would keep the last of them waiting longer than this, tasks
	 * leave the FIFOs with a shorter slice (never below MIN_FIFO_SLICE_NS),
	 * so the FIFOs turn over well inside the kernel's 5 s watchdog.
	 */
	WAIT_BOUND_NS	= 1000 * 1000 * 1000,
	MIN_FIFO_SLICE_NS = 1000 * 1000,
	/* Weight of nice 0: -L scales budgets and loads by weight / NICE0_WEIGHT. */
	NICE0_WEIGHT	= 100,
	/*
	 * -L: a task's recent CPU use, as a fraction of LAT_UTIL_ONE of the
	 * wall time, averaged over about the last LAT_UTIL_WINDOW_NS: each
	 * stretch between enqueues counts for its length (lat_blend()). New
	 * tasks start at half.
	 */
	LAT_UTIL_ONE	= 1024,
	LAT_UTIL_WINDOW_NS = 32 * 1000 * 1000,
	/*
	 * -L: a waking task preempts a busy CPU when the task running there
	 * used at least this much more of a CPU lately (in LAT_UTIL_ONE units,
	 * both scaled to nice 0 by weight), looking at its own CPU and the
	 * next LAT_PROBES - 1. With a quarter, tasks that run alike
	 * (hackbench's) preempted each other in a quarter of their wakeups.
	 */
	LAT_GAP		= LAT_UTIL_ONE / 2,
	LAT_PROBES	= 4,
	/*
	 * -L: a task that used this much of a CPU lately is a CPU hog, which
	 * ops.tick cuts short once over its budget while others wait. Tasks
	 * that sleep between bursts keep their bursts whole.
	 */
	LAT_BUSY	= LAT_UTIL_ONE / 2,
	/*
	 * -L: a task that may run on one CPU only counts as light below this
	 * much of a CPU (lat_pinned_light()). It cannot move to a CPU that runs
	 * lighter tasks, and in a FIFO it waits behind every hog of every CPU.
	 * At LAT_BUSY, cyclictest's threads every 250 us beside two hogs per
	 * CPU, at 0.51-0.54 of a CPU in the emulated guest, went to the FIFOs
	 * in 161 of the 197 wakeups that waited over 2.5 ms.
	 */
	LAT_PINNED_BUSY	= LAT_UTIL_ONE * 3 / 4,
	/*
	 * -L: how many waking tasks lat_wait_local() puts at the head of one
	 * CPU's local DSQ between two of its dispatches; past it they take the
	 * FIFOs' way. Each goes ahead of what waits there, and the CPU calls
	 * ops.dispatch only once that DSQ is empty: unbounded, 64 light
	 * threads pinned to one CPU (200 us busy, 100 us asleep) kept it full
	 * and one of them waited 7 s, till the watchdog ejected us. Beside a
	 * hog per CPU, cyclictest's pinned threads never met the bound.
	 */
	LAT_LOCAL_JUMPS	= 2,
	/*
	 * -L: a task heavier than nice 0 gets a slice longer in proportion to
	 * its weight, up to this many slices (80 ms for nice -20 by default).
	 * The FIFOs' turns alone gave nice -20 hogs 81% of 4 CPUs beside nice 0
	 * ones, where the weights ask for 99. The cost: a lighter task that
	 * cannot preempt one waits up to that long.
	 */
	LAT_SLICE_SCALE	= 4,
	/*
	 * -L: lat_keep_prev() renews a slice only while no task at the head
	 * of another FIFO has waited this long. Past it, the cursor moves on
	 * at every slice end, so a long queue of lighter tasks behind nice -20
	 * hogs is served as fast as without renewals, well inside the watchdog.
	 */
	LAT_KEEP_WAIT_NS = WAIT_BOUND_NS / 2,
};

#define CLOCK_MONOTONIC 1

/* Tunables: written by the loader before load. */

/* Slice given to every task; the loader sets it from -s or SCX_SLICE_DFL. */
const volatile u64 slice_ns;
/* How many tasks one ops.dispatch call moves out of the FIFOs at most. */
const volatile u32 dsp_batch;
/* --fifo-depth: how many tasks each FIFO holds; the loader sizes the maps. */
const volatile u32 fifo_depth = QUEUE_DEPTH;
/* A tgid whose tasks are refused by ops.init_task (0: none). */
const volatile s32 disallow_tgid;
/* Leave the debug dump callbacks quiet. */
const volatile bool suppress_dump;
/* -H: move nice -20 tasks ahead through HIGHPRI_DSQ, with preemption. */
const volatile bool highpri_boosting;
/* -P: snapshot the shared DSQ every second for the loader to print. */
const volatile bool print_dsqs_and_events;
/* -M: bpf_printk() cgroup and CPU hotplug events to the trace buffer. */
const volatile bool print_msgs;
/* -F: every Nth enqueue goes to the task's own CPU even when it is busy. */
const volatile u32 immed_stress_nth;
/* --remote-reenq: reenqueue a CPU's local DSQ when an RT/DL task takes it. */
const volatile bool remote_reenq;
/*
 * -L: latency budget, beyond upstream qmap; 0: off (qmap's plain FIFO
 * slices). A nice 0 task that has run this long of its slice gives the CPU
 * up as soon as another task waits (others in proportion to their weight):
 * at once when a task wakes up to find its CPU busy with such a task, else at
 * the next tick if it is a CPU hog (LAT_BUSY) and what waits is not a hog of
 * its weight or lighter (lat_cut_due()). Slices stay long while nobody
 * waits, and are longer for heavier tasks (LAT_SLICE_SCALE). A waking task
 * that ran little lately (LAT_GAP) does not queue at all: it preempts a
 * busier task, which keeps its place if it was within its budget, unless
 * the busier task is its sync waker. Pinned to one CPU, it preempts any CPU
 * hog there, and else waits at the head of that CPU's local DSQ.
 */
const volatile u64 lat_budget_ns;
/* Which form the loader loads: sched_ext_ops_cid if set, else sched_ext_ops. */
const volatile bool cid_form;
/*
 * What the FIFOs hold. Set (7.2+, SCX_OPS_TID_TO_TASK): scx tids, which
 * scx_bpf_tid_to_task() resolves until the task has run for the last time.
 * Clear (7.1, or --queue-by pid): PIDs, which an exiting task can lose
 * while it still has to run once more.
 */
const volatile bool queue_by_tid;
/*
 * 7.3+ capabilities (caps_hier; off on 7.2, which has none): a scheduler may
 * place tasks only on the cids where it holds them. See "Capabilities" below.
 * cid_cmasks: the arena address of one struct scx_cmask per cid, each of that
 *	cid alone, CMASK_STRIDE bytes apart; the loader writes them, and BPF
 *	passes them to scx_bpf_sub_grant()/scx_bpf_sub_revoke().
 * is_sub: this scheduler is a child (-c); the root holds every cid whole.
 * round_robin_ns: -R, how long each participant holds the shared cids.
 * inject_wrong_cid: -J wrong-cid, every 64th enqueue goes to a cid this
 *	child does not hold (a fault injection the kernel must bounce).
 */
const volatile bool caps_hier;
const volatile u64 cid_cmasks;
const volatile bool is_sub;
const volatile u64 round_robin_ns = 200 * 1000 * 1000;
const volatile bool inject_wrong_cid;

/*
 * Fault injection, to exercise the kernel's safety nets. Each is off at 0.
 * -e: scx_bpf_error() on the Nth enqueue.
 * -t/-T: drop every Nth user/kernel task on the floor, so the watchdog ejects
 *        the scheduler for a runnable task stall.
 * -l: after N dispatches, keep dispatching kthreadd so ops.dispatch loops.
 * --dispatch-hold-us: busy-wait N µs in ops.dispatch between choosing where
 *        a task popped from a FIFO goes and inserting it, so that a change
 *        of its CPU mask can land in between (a few instructions otherwise).
 */
const volatile u32 error_after_enq;
const volatile u32 stall_user_nth;
const volatile u32 stall_kernel_nth;
const volatile u32 dsp_inf_loop_after;
const volatile u32 dispatch_hold_us;

/*
 * Statistics, read by the loader in one piece from the mmapped .bss (the Go
 * side sees this struct as bpf.Stats; stats.Counters names every field).
 * Counters are updated with atomic adds because every CPU writes them.
 */
struct qmap_stats {
	u64 nr_enqueued;	/* tasks pushed onto a FIFO by ops.enqueue */
	u64 nr_dispatched;	/* tasks moved out of a FIFO by ops.dispatch */
	u64 nr_dequeued;	/* ops.dequeue calls: tasks taken back from us */
	u64 nr_ddsp_from_enq;	/* direct dispatches decided in ops.enqueue */
	u64 nr_ddsp_from_select; /* direct dispatches decided in ops.select_cpu */
	u64 nr_overflow;	/* FIFO full: task went to the shared DSQ instead */
	u64 nr_exiting;		/* PID queues: exiting tasks sent to the shared DSQ */
	u64 nr_core_sched_execed; /* dequeues forced by core scheduling */
	u64 nr_lowpri_queued;	/* nice 19 user tasks parked in LOWPRI_DSQ */
	u64 nr_immed_stress;	/* -F inserts into a possibly busy local DSQ */
	u64 nr_expedited_local;	/* -H tasks moved to this CPU's local DSQ */
	u64 nr_expedited_remote; /* -H tasks moved to another CPU's local DSQ */
	u64 nr_expedited_from_timer; /* of those, moved by the monitor timer */
	u64 nr_expedited_lost;	/* -H moves that lost a race with the task */
	u64 nr_cpu_online;	/* ops.cpu_online calls */
	u64 nr_cpu_offline;	/* ops.cpu_offline calls */
	u64 nr_lat_kicks;	/* -L: busy CPUs preempted for a waking task */
	u64 nr_lat_preempts;	/* -L: waking tasks put straight onto a busier task's CPU */
	u64 nr_lat_yields;	/* -L: tasks over budget cut short by ops.tick */
	u64 nr_lat_resumes;	/* -L: preempted tasks put back first on their CPU */
	u64 nr_lat_local;	/* -L: waking tasks of one CPU queued on its local DSQ */
	u64 nr_lat_local_full;	/* -L: ones kept off it past LAT_LOCAL_JUMPS */
	u64 nr_lat_shared;	/* -L: light waking tasks queued on the shared DSQ */
	u64 nr_lat_kept;	/* -L: slices renewed for prev, the task its FIFO would pop */
	u64 nr_lat_kthreads;	/* -L: of preempts and local waits, kernel threads' */
	u64 nr_slice_cut;	/* tasks that left a deep FIFO with less than slice_ns */
	u64 nr_sub_dispatched;	/* dispatches handed to sub-schedulers */
	u64 nr_cap_grants;	/* 7.3: cids granted to a child (whole or shared) */
	u64 nr_cap_revokes;	/* 7.3: cids taken back from a child */
	u64 nr_wrong_cid;	/* -J wrong-cid: inserts onto a cid not held */
	u64 nr_stranded;	/* 7.3: tasks sent to a cid of theirs we do not hold */
	u64 nr_mask_lost;	/* popped tasks whose CPU mask lost the CPU meanwhile */
	u64 nr_fifo_kept;	/* enqueues that kept the task's waiting FIFO entry */
	u64 nr_idle_kicks;	/* tasks queued while a CPU they may use was idle: it was woken */
	u64 nr_idle_rechecks;	/* CPUs going idle with tasks queued, which dispatched again */

	/*
	 * Reenqueues: tasks the kernel handed back to ops.enqueue with
	 * SCX_ENQ_REENQ, in total, on CPU 0, and by p->scx.flags' reason (mask
	 * and values come from the running kernel's BTF: 7.2 has
	 * KFUNC/IMMED/PREEMPTED, 7.3 adds CAP).
	 */
	u64 reenq_total;
	u64 reenq_cpu0;
	u64 reenq_kfunc;	/* asked for by scx_bpf_dsq_reenq() */
	u64 reenq_immed;	/* an SCX_ENQ_IMMED insert could not run at once */
	u64 reenq_preempted;	/* an IMMED task lost its CPU to a higher class */
	u64 reenq_cap;		/* a sub-scheduler capability was missing (7.3+) */
	u64 reenq_other;	/* a reason this build does not know */
	u64 lowpri_reenq_requests; /* scx_bpf_dsq_reenq() on LOWPRI_DSQ by the 10 ms timer */
	u64 remote_reenq_requests; /* scx_bpf_dsq_reenq() on a CPU's local DSQ (--remote-reenq) */
	u64 nr_timer_runs;	/* runs of the 10 ms timer, which sleeps while it has no work */

	/*
	 * cpuperf gauges, refreshed by the monitor timer every second: the
	 * current performance level of the CPUs (min/avg/max, in
	 * SCX_CPUPERF_ONE units, the average weighted by capacity) and the
	 * targets ops.tick set from the running tasks' weights.
	 */
	u64 cpuperf_min, cpuperf_avg, cpuperf_max;
	u64 cpuperf_target_min, cpuperf_target_avg, cpuperf_target_max;
};

struct qmap_stats stats;

/* Scheduler state beside the statistics. */
u64 nr_enqueue_calls;	/* every ops.enqueue call, for -e */
u64 nr_highpri_queued;	/* -H tasks in the FIFOs, not yet popped */
s64 lat_light_queued;	/* -L: tasks in the FIFOs that ran little lately, not yet popped */
/* -L: a FIFO's head has waited LAT_KEEP_WAIT_NS; the 10 ms timer sets it. */
bool lat_fifos_starved;

/*
 * PIDs in each FIFO: counted up before a push and down after a pop, so never
 * below what the FIFO holds. Dispatch skips a FIFO whose count is 0 without
 * touching it, and -L asks them whether a heavier task waits.
 */
s64 fifo_nr_queued[NR_QUEUES];

/*
 * Sub-schedulers attached under this one (cid form), by the id of their
 * cgroup; 0 is a free slot. ops.dispatch hands them the CPU in turn when it
 * has nothing of its own, and counts in sub_dispatched what each took.
 */
enum { MAX_SUBS = 8 };
u64 sub_cgroup_ids[MAX_SUBS];
u64 sub_dispatched[MAX_SUBS];

/* -P: the shared DSQ's length and first pids, as of the last monitor tick. */
s32 shared_dsq_nr;
s32 shared_dsq_pids[NR_DSQ_SNAPSHOT];

/*
 * Core-scheduling order: each FIFO hands out a sequence number per enqueue
 * (tail) and records the number of the last task dispatched out of it (head).
 * A task's distance from its queue's head tells how long it has waited.
 */
u64 core_sched_head_seqs[NR_QUEUES];
u64 core_sched_tail_seqs[NR_QUEUES];

EXIT_INFO_DEFINE(uei);

/*
 * ops.exit's one record, after uei is written: the loader sleeps in poll(2)
 * on this ring and wakes the moment the scheduler stops. The kernel does not
 * hang up the struct_ops link when it disables a scheduler, so the link
 * alone would not wake it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} exit_ring SEC(".maps");

/* A FIFO of tasks, each named by its tid or PID (queue_by_tid). */
struct fifo {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, QUEUE_DEPTH);
	__type(value, u64);
};

struct fifo queue0 SEC(".maps"), queue1 SEC(".maps"), queue2 SEC(".maps"),
	    queue3 SEC(".maps"), queue4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NR_QUEUES);
	__type(key, int);
	__array(values, struct fifo);
} queue_arr SEC(".maps") = {
	.values = { [0] = &queue0, [1] = &queue1, [2] = &queue2,
		    [3] = &queue3, [4] = &queue4 },
};

/* Per-task state. */
struct task_ctx {
	bool highpri;		/* -H: queued as a nice -20 task, not yet popped */
	u32 util;		/* -L: recent CPU use, of LAT_UTIL_ONE */
	u64 core_sched_seq;	/* position in its FIFO, for core_sched_before */
	u64 util_at;		/* -L: when util was last updated (enqueue) */
	u64 util_ran;		/* -L: the task's CPU time then */
	u64 woke_ran;		/* -L: the task's CPU time at its last wakeup */
	u64 resume_slice;	/* -L: slice left when preempted within budget */
	u64 shield_until;	/* -L: not preempted again before this time */
	bool woke_sync;		/* -L: its waker means to sleep soon */
	bool queued_light;	/* -L: counted in lat_light_queued */
	u32 fifo_entries;	/* its entries in the FIFOs, not yet popped */
	s32 fifo_idx;		/* the FIFO of its latest entry (fifo_push()) */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctx_stor SEC(".maps");

struct timer_wrap {
	struct bpf_timer timer;
};

/* Drives the low-priority reenqueues every 10 ms. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct timer_wrap);
} lowpri_timer SEC(".maps");

/*
 * The 10 ms timer (lowpri_timerfn()) sleeps while it has nothing to do, so
 * that an idle machine is not woken 100 times a second for it. Whatever
 * queues its work wakes it (timer_wake()). A wakeup can still be missed:
 * a DSQ insert lands only after ops.enqueue returns, so the timer may look
 * just before and sleep while the enqueuer saw it awake. ops.tick, and
 * ops.dispatch on a CPU about to idle, look again (timer_check()); the
 * enqueuer's CPU does one or the other within a tick.
 */
static u32 timer_asleep;

static void timer_wake(void)
{
	struct bpf_timer *timer;
	u32 key = 0;

	if (!timer_asleep || __sync_val_compare_and_swap(&timer_asleep, 1, 0) != 1)
		return;
	timer = bpf_map_lookup_elem(&lowpri_timer, &key);
	/* Failed (no memory to defer the start): the next timer_check() retries. */
	if (!timer || bpf_timer_start(timer, LOWPRI_INTV_NS, 0))
		timer_asleep = 1;
}

/* The 1 s monitor: -H expedites, cpuperf aggregation, -P snapshots. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct timer_wrap);
} monitor_timer SEC(".maps");

/* Per-CPU state. */
struct cpu_ctx {
	u64 dsp_idx;		/* the FIFO dispatch is taking from */
	u64 dsp_cnt;		/* how many more to take from it */
	u32 avg_weight;		/* running average of the weights ticking here */
	u32 cpuperf_target;	/* performance level asked for this CPU */
	bool rt_busy;		/* an RT/DL task took the CPU (--remote-reenq) */
	u32 sub_turn;		/* dispatches here, for SUB_TURN_NTH */
	u32 shared_turn;	/* dispatches here while a FIFO is full (shared_first()) */
	s32 resumed_pid;	/* -L: put back on the local DSQ by lat_resume(), not yet run */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctx_stor SEC(".maps");

/*
 * The kernel attaches a cid-form scheduler only if one of its programs uses
 * a BPF arena, and takes the masks it passes to ops.set_cmask from it. qmap
 * keeps its own state in classic maps: cilium/ebpf cannot load the
 * addr_space_cast instructions that reading arena memory takes. The loader
 * mmaps the arena before load, which fixes its user address.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1024);	/* pages, allocated only as used */
} arena SEC(".maps");

/* A use of the arena, which ties it to the calling program for the verifier. */
#define TOUCH_ARENA() asm volatile("" :: "r"(&arena))

/*
 * CPU ids. Every CPU id the policy passes around is in the loaded form's
 * numbering: a CPU number in the cpu form, a cid in the cid form, as the
 * kernel's callbacks give them. The kernel refuses cpu-only kfuncs in cid-form
 * programs, so these helpers are the only code that picks a kfunc by form.
 * cid_form is read-only data: the verifier prunes the other form's branch as
 * dead code and never checks its kfuncs.
 */
enum { MAX_CIDS = 1024 };

/*
 * cid form: the idle cids, as ops.update_idle reports them (the kernel's
 * built-in idle tracking and its kfuncs serve the cpu form only). A cid is
 * cleared when a task is sent to it. A CPU that wakes for it and finds
 * nothing goes back to idle without an ops.update_idle call: its own
 * dispatch sets the bit again (dispatch_found_nothing()). Only online cids
 * are ever idle: an offline CPU's local DSQ runs nothing.
 */
u64 idle_cids[MAX_CIDS / 64];
/*
 * cid form: the online cids. The kernel numbers the online CPUs first when
 * it enables the scheduler; ops.cid_online/cid_offline track them after.
 */
u64 online_cids[MAX_CIDS / 64];

static s32 current_cpu(void)
{
	return cid_form ? scx_bpf_this_cid() : bpf_get_smp_processor_id();
}

static s32 task_cpu(const struct task_struct *p)
{
	return cid_form ? scx_bpf_task_cid(p) : scx_bpf_task_cpu(p);
}

/* The kernel's CPU number for CPU id @cpu, and the other way round. */
static s32 kernel_cpu(s32 cpu)
{
	return cid_form ? scx_bpf_cid_to_cpu(cpu) : cpu;
}

static s32 form_cpu(s32 kcpu)
{
	return cid_form ? scx_bpf_cpu_to_cid(kcpu) : kcpu;
}

static u32 nr_form_cpus(void)
{
	u32 nr = cid_form ? scx_bpf_nr_cids() : scx_bpf_nr_cpu_ids();

	return nr < MAX_CIDS ? nr : MAX_CIDS;
}

static void kick_cpu(s32 cpu, u64 flags)
{
	if (cid_form)
		scx_bpf_kick_cid(cpu, flags);
	else
		scx_bpf_kick_cpu(cpu, flags);
}

/* Needs bpf_rcu_read_lock(). */
static struct task_struct *cpu_curr(s32 cpu)
{
	return cid_form ? scx_bpf_cid_curr(cpu) : scx_bpf_cpu_curr(cpu);
}

static bool task_may_run(struct task_struct *p, s32 cpu)
{
	return bpf_cpumask_test_cpu(kernel_cpu(cpu), p->cpus_ptr);
}

static u32 cpuperf_cap(s32 cpu)
{
	return cid_form ? scx_bpf_cidperf_cap(cpu) : scx_bpf_cpuperf_cap(cpu);
}

static u32 cpuperf_cur(s32 cpu)
{
	return cid_form ? scx_bpf_cidperf_cur(cpu) : scx_bpf_cpuperf_cur(cpu);
}

static void cpuperf_set(s32 cpu, u32 perf)
{
	if (cid_form)
		scx_bpf_cidperf_set(cpu, perf);
	else
		scx_bpf_cpuperf_set(cpu, perf);
}

/* The word of cid mask @mask (idle_cids, online_cids) that holds @cid. */
static u64 *cid_word(u64 *mask, s32 cid, u64 *bit)
{
	u32 i = cid;

	if (cid < 0 || i >= MAX_CIDS)
		return NULL;
	*bit = 1ULL << (i % 64);
	return &mask[i / 64];
}

static u64 *idle_word(s32 cid, u64 *bit)
{
	return cid_word(idle_cids, cid, bit);
}

static bool cid_online(s32 cid)
{
	u64 bit, *word = cid_word(online_cids, cid, &bit);

	return word && (*word & bit);
}

static void set_cid_bit(u64 *mask, s32 cid, bool set)
{
	u64 bit, *word = cid_word(mask, cid, &bit);

	if (!word)
		return;
	if (set)
		__sync_fetch_and_or(word, bit);
	else
		__sync_fetch_and_and(word, ~bit);
}

static void set_cid_idle(s32 cid, bool idle)
{
	set_cid_bit(idle_cids, cid, idle && cid_online(cid));
}

/* An offline cid is never idle; a cid coming online reports idle itself. */
static void set_cid_online(s32 cid, bool online)
{
	set_cid_bit(online_cids, cid, online);
	if (!online)
		set_cid_idle(cid, false);
}

/*
 * Capabilities (7.3, caps_hier). A parent divides the cids it holds whole
 * among itself and its children in proportion to cpu.weight (its own counts
 * as 100), each a contiguous range of floor(share) cids in cid order; the
 * cids rounding leaves over are shared, held by one participant at a time
 * for round_robin_ns. A child gets its cids whole (SCX_CAP_ENQ and the rest,
 * which it may pass on) and the shared ones with SCX_CAP_ENQ_IMMED only: it
 * may run tasks there only with SCX_ENQ_IMMED, so nothing waits in a local
 * DSQ it loses. On a cid it gave away the parent runs nothing of its own: its
 * dispatch there hands the CPU to the cid's holder.
 *
 * What this scheduler holds comes from the kernel, per cid, in
 * ops.sub_ecaps_updated; the root holds every cid whole from the start.
 */
enum {
	CMASK_STRIDE	= 32,	/* u32 base, nr_cids, alloc_words; pad; u64 bits[2] */
	OWNER_SELF	= -1,	/* runs this scheduler's tasks */
	OWNER_SHARED	= -2,	/* time-shared: whoever's turn it is */
	OWNER_NONE	= -3,	/* not held */
	SELF_WEIGHT	= 100,
	DFL_WEIGHT	= 100,	/* cpu.weight's default */
};

#define CAPS_WHOLE	(SCX_CAP_ENQ | SCX_CAP_PREEMPT | SCX_CAP_ENQ_IMMED | SCX_CAP_PERF)
#define CAPS_SHARED	(SCX_CAP_ENQ_IMMED | SCX_CAP_PERF)

u64 whole_cids[MAX_CIDS / 64];	/* held with SCX_CAP_ENQ */
u64 avail_cids[MAX_CIDS / 64];	/* held with SCX_CAP_ENQ_IMMED at least */
s32 cid_owner[MAX_CIDS];	/* OWNER_* or the child slot of each held cid */
u8 granted_whole[MAX_CIDS];	/* slot + 1 of the child granted the cid whole; 0: none */
u8 granted_shared[MAX_CIDS];	/* slot + 1 of the child granted it shared; 0: none */
u32 sub_weights[MAX_SUBS];	/* cpu.weight of each child's cgroup; 0: free slot */
u32 rr_turn;			/* whose turn the shared cids are: 0 self, slot + 1 */
u32 nr_shared;			/* cids left over by the division, taken in turns */
static u32 part_stale;		/* what we hold changed since the last partition */
static u32 part_busy, part_pending; /* one partition pass at a time; rerun if asked meanwhile */

static bool cid_test(u64 *mask, s32 cid)
{
	u64 bit, *word = cid_word(mask, cid, &bit);

	return word && (*word & bit);
}

/* The slot of the child whose turn the shared cids are; -1 if ours. */
static s32 rr_holder(void)
{
	u32 slot = rr_turn - 1;

	if (!rr_turn || slot >= MAX_SUBS || !sub_cgroup_ids[slot])
		return -1;
	return slot;
}

/* Whether this scheduler may send its own tasks to @cid (any, without caps). */
static bool cid_usable(s32 cid)
{
	u32 i = cid;
	s32 owner;

	if (!caps_hier)
		return true;
	if (!cid_test(whole_cids, cid) || i >= MAX_CIDS)
		return false;
	owner = cid_owner[i];
	return owner == OWNER_SELF || (owner == OWNER_SHARED && rr_holder() < 0);
}

/* Whether our dispatch runs on @cid, now or in its turn. */
static bool cid_ours(s32 cid)
{
	u32 i = cid;

	if (i >= MAX_CIDS || !cid_test(avail_cids, cid))
		return false;
	return cid_owner[i] == OWNER_SELF || cid_owner[i] == OWNER_SHARED;
}

/* SCX_ENQ_IMMED where this scheduler holds @cid only shared. */
static u64 immed_if_shared(s32 cid)
{
	if (!caps_hier || cid_test(whole_cids, cid))
		return 0;
	return SCX_ENQ_IMMED;
}

static const struct scx_cmask *cid_cmask(s32 cid)
{
	return (const struct scx_cmask *)(cid_cmasks + (u64)cid * CMASK_STRIDE);
}

/*
 * Whether the kernel granted @caps on @cid to child @slot: it refuses what we
 * do not hold ourselves, as we learn only when the change reaches the CPU.
 */
static bool cap_grant(u32 slot, s32 cid, u64 caps)
{
	u64 cgid = sub_cgroup_ids[slot % MAX_SUBS];

	TOUCH_ARENA();	/* the cmask argument is an arena pointer */
	if (!cgid || scx_bpf_sub_grant(cgid, caps, cid_cmask(cid), NULL))
		return false;
	__sync_fetch_and_add(&stats.nr_cap_grants, 1);
	return true;
}

static void cap_revoke(u32 slot, s32 cid, u64 caps)
{
	u64 cgid = sub_cgroup_ids[slot % MAX_SUBS];

	TOUCH_ARENA();
	if (!cgid)
		return;
	scx_bpf_sub_revoke(cgid, caps, cid_cmask(cid));
	__sync_fetch_and_add(&stats.nr_cap_revokes, 1);
}

/* Who gets whole cid number @pos of the ones held: see cum_shares(). */
static s32 owner_of_pos(u32 pos, u32 *cum)
{
	u32 k;

	for (k = 0; k <= MAX_SUBS; k++)
		if (pos < cum[k])
			return k ? (s32)k - 1 : OWNER_SELF;
	return OWNER_SHARED;
}

/*
 * cum[0] is our share of @nr_whole cids, cum[k] the end of child slot k-1's
 * range after it: floors of nr_whole * weight / sum of weights.
 */
static void cum_shares(u32 nr_whole, u32 *cum)
{
	u64 sum = SELF_WEIGHT, end;
	u32 k;

	for (k = 0; k < MAX_SUBS; k++)
		sum += sub_weights[k];
	end = (u64)nr_whole * SELF_WEIGHT / sum;
	cum[0] = end;
	for (k = 0; k < MAX_SUBS; k++) {
		end += (u64)nr_whole * sub_weights[k] / sum;
		cum[k + 1] = end;
	}
}

/*
 * Grant and revoke @cid so that it goes to @owner, and record it. A cid the
 * kernel would not grant stays ours; the next pass tries again.
 */
static int apply_owner(s32 cid, s32 owner, s32 holder)
{
	u8 whole = owner >= 0 ? owner + 1 : 0;
	u8 shared = owner == OWNER_SHARED && holder >= 0 ? holder + 1 : 0;
	u32 i = cid;

	if (!caps_hier || i >= MAX_CIDS)
		return 0;
	if (granted_shared[i] && granted_shared[i] != shared) {
		cap_revoke(granted_shared[i] - 1, cid, CAPS_SHARED);
		granted_shared[i] = 0;
	}
	if (granted_whole[i] && granted_whole[i] != whole) {
		cap_revoke(granted_whole[i] - 1, cid, CAPS_WHOLE);
		granted_whole[i] = 0;
	}
	if (whole && !granted_whole[i]) {
		if (cap_grant(whole - 1, cid, CAPS_WHOLE))
			granted_whole[i] = whole;
		else
			owner = OWNER_SELF;
	}
	if (shared && !granted_shared[i] && cap_grant(shared - 1, cid, CAPS_SHARED))
		granted_shared[i] = shared;
	cid_owner[i] = owner;
	return 0;
}

u32 part_cum[MAX_SUBS + 1];	/* the pass's cum_shares() */

enum {
	PART_WHOLE	= 1 << 0,	/* the cid is held whole: it took a position */
	PART_SHARED	= 1 << 1,	/* left over: taken in turns */
};

/*
 * A cid to divide: held whole and online. A child granted only offline cids
 * has nowhere to run, and the watchdog ejects it; an offline cid stays ours.
 */
__noinline int cid_held_whole(s32 cid)
{
	return cid_test(whole_cids, cid) && cid_online(cid);
}

/*
 * A pass's work on one cid, whole cid number @pos if held whole. Returns
 * PART_* bits. Global: the verifier checks it once, and the loop that calls
 * it has no branches of its own, so its states converge at once.
 */
__noinline int partition_cid(s32 cid, u32 pos, s32 holder)
{
	s32 owner = OWNER_NONE;
	int ret = 0;

	if (!caps_hier)
		return 0;
	if (cid_held_whole(cid)) {
		owner = owner_of_pos(pos, part_cum);
		ret |= PART_WHOLE;
	} else if (cid_test(avail_cids, cid)) {
		owner = OWNER_SELF;
	}
	apply_owner(cid, owner, holder);
	if (owner == OWNER_SHARED)
		ret |= PART_SHARED;
	return ret;
}

/* One pass: divide the whole cids by weight and grant the difference. */
__noinline int partition_once(void)
{
	u32 nr = nr_form_cpus(), nr_whole = 0, pos = 0, shared = 0;
	s32 cid, holder = rr_holder();
	int ret;

	/* Verified on its own: prune the kfuncs 7.2 lacks here too. */
	if (!caps_hier)
		return 0;
	bpf_for(cid, 0, nr)
		nr_whole += cid_held_whole(cid) & 1;
	cum_shares(nr_whole, part_cum);

	bpf_for(cid, 0, nr) {
		ret = partition_cid(cid, pos, holder);
		pos += ret & PART_WHOLE;
		shared += (ret & PART_SHARED) >> 1;
	}
	nr_shared = shared;
	return 0;
}

/*
 * Repartition after a child came or went, a weight or what we hold changed,
 * or a turn passed. Callers race (attach, the timer, the kernel's
 * callbacks): one runs the passes, the others leave a request behind it.
 */
__noinline int repartition(void)
{
	u32 i;

	if (!caps_hier)
		return 0;
	__sync_lock_test_and_set(&part_pending, 1);
	if (__sync_val_compare_and_swap(&part_busy, 0, 1)) {
		/* The runner may be past its last look: the timer retries. */
		part_stale = 1;
		timer_wake();
		return 0;
	}
	for (i = 0; i < 8 && __sync_lock_test_and_set(&part_pending, 0); i++)
		partition_once();
	__sync_val_compare_and_swap(&part_busy, 1, 0);
	return 0;
}

/* The shared cids' next turn: ours, then each child's, in slot order. */
static void next_turn(void)
{
	u32 k, turn;

	for (k = 1; k <= MAX_SUBS + 1; k++) {
		turn = (rr_turn + k) % (MAX_SUBS + 1);
		if (!turn || sub_cgroup_ids[(turn - 1) % MAX_SUBS])
			break;
	}
	if (turn == rr_turn)
		return;
	rr_turn = turn;
	repartition();
}

/*
 * From the 10 ms timer: repartition after the cids we hold changed (the
 * kernel reports that under a runqueue lock, where we do not grant), and
 * pass the shared cids on every round_robin_ns.
 */
static void caps_tick(void)
{
	static u64 last_turn;
	u64 now = bpf_ktime_get_ns();

	if (part_stale && __sync_lock_test_and_set(&part_stale, 0))
		repartition();
	if (nr_shared && now - last_turn >= round_robin_ns) {
		last_turn = now;
		next_turn();
	}
}

/* -J wrong-cid: a cid @p may run on that this scheduler does not hold. */
static s32 unheld_cid(struct task_struct *p)
{
	s32 cid;

	bpf_for(cid, 0, nr_form_cpus())
		if (!cid_test(avail_cids, cid) && cid_online(cid) &&
		    task_may_run(p, cid))
			return cid;
	return -1;
}

/*
 * -J wrong-cid: insert every 64th eligible enqueue onto a cid this child
 * does not hold, asking for rescue. Under a root with rescue off (-B 0) the
 * kernel bounces each back through ops.enqueue with SCX_TASK_REENQ_CAP.
 */
static bool inject_wrong(struct task_struct *p, u64 enq_flags)
{
	static u32 nth;
	s32 cid;

	if (!inject_wrong_cid || (enq_flags & SCX_ENQ_REENQ) ||
	    p->nr_cpus_allowed <= 1 || ++nth % 64)
		return false;
	cid = unheld_cid(p);
	if (cid < 0)
		return false;
	__sync_fetch_and_add(&stats.nr_wrong_cid, 1);
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cid, slice_ns,
			   enq_flags | SCX_ENQ_RESCUE);
	return true;
}

/*
 * The cid to send @p to when it is restricted to cids none of which is ours:
 * the first online one it may run on. Negative when @p may run on one of
 * ours (or on none online).
 */
static s32 stranded_cid(struct task_struct *p)
{
	s32 cid, first = -1;

	if (!caps_hier || p->nr_cpus_allowed >= scx_bpf_nr_cpu_ids())
		return -1;
	bpf_for(cid, 0, nr_form_cpus()) {
		if (!task_may_run(p, cid))
			continue;
		if (cid_ours(cid))
			return -1;
		if (first < 0 && cid_online(cid))
			first = cid;
	}
	return first;
}

/*
 * A task restricted to cids none of which is ours would wait in our queues
 * forever: send it to a cid it may run on, asking for rescue. The root is
 * never refused (a per-CPU kthread on a cid it gave away); a child's task
 * runs on the kernel's rescue bandwidth. A task free to run anywhere waits
 * for our cids instead, even while we hold none: a child between its turns
 * of the shared cids would otherwise send all its tasks to rescue, where
 * they wait past the watchdog.
 */
static bool place_stranded(struct task_struct *p, u64 enq_flags)
{
	s32 cid = stranded_cid(p);

	if (cid < 0)
		return false;
	__sync_fetch_and_add(&stats.nr_stranded, 1);
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cid, slice_ns,
			   enq_flags | (is_sub ? SCX_ENQ_RESCUE : 0));
	return true;
}

/*
 * stranded_cid() of the task @pid names, verified once on its own: inlined
 * into rescue_stranded()'s walk of the shared DSQ, its cid loop multiplies
 * the states the verifier explores for the 10 ms timer (with ops.init).
 */
__noinline s32 stranded_cid_of(s32 pid)
{
	struct task_struct *p;
	s32 cid;

	p = bpf_task_from_pid(pid);
	if (!p)
		return -1;
	cid = stranded_cid(p);
	bpf_task_release(p);
	return cid;
}

/* How deep rescue_stranded() looks into the shared DSQ per pass. */
enum { STRANDED_SCAN_MAX = 1024 };

/*
 * A task that went to the shared DSQ before its cids were given away (a
 * per-CPU kthread, say), or that a CPU it may not use popped from a FIFO,
 * waits there for a CPU that never drains it for us: a delegated cid
 * dispatches only for its holder, and the watchdog ejects us. Send each
 * such task on as place_stranded() does. A task deeper than the scan moves
 * up as the DSQ drains.
 */
static void rescue_stranded(void)
{
	/*
	 * In .bss, not on the stack: the verifier then sees an unknown count
	 * and checks the loop body once, not once per value up to the cap.
	 */
	static u32 scan_left;
	struct task_struct *p;
	s32 cid;

	scan_left = STRANDED_SCAN_MAX;
	bpf_for_each(scx_dsq, p, SHARED_DSQ, 0) {
		if (!scan_left--)
			break;
		if (p->nr_cpus_allowed >= scx_bpf_nr_cpu_ids())
			continue;
		cid = stranded_cid_of(p->pid);
		if (cid < 0)
			continue;
		if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL_ON | cid,
				     is_sub ? SCX_ENQ_RESCUE : 0))
			__sync_fetch_and_add(&stats.nr_stranded, 1);
	}
}

/*
 * Whether idle_recheck() has kicked each CPU since it last went idle from a
 * task or was claimed for one: it kicks once per such turn.
 */
static u8 idle_rechecked[MAX_CIDS];

/* Claim @cpu if it is idle: the caller sends it a task. */
static bool test_and_clear_idle(s32 cpu)
{
	u64 bit, *word;

	if (!cid_form)
		return scx_bpf_test_and_clear_cpu_idle(cpu);
	word = idle_word(cpu, &bit);
	if (!word || !(*word & bit))
		return false;
	if (!(__sync_fetch_and_and(word, ~bit) & bit))
		return false;
	/* Woken for a task that may run elsewhere, it looks once more. */
	idle_rechecked[cpu & (MAX_CIDS - 1)] = 0;
	return true;
}

/* Claim an idle CPU @p may run on; negative if none. */
static s32 pick_idle_cpu(struct task_struct *p)
{
	u64 bit, *word;
	s32 cid;

	if (!cid_form)
		return scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	bpf_for(cid, 0, nr_form_cpus()) {
		word = idle_word(cid, &bit);
		if (!word || !(*word & bit) || !task_may_run(p, cid) ||
		    !cid_usable(cid))
			continue;
		if (test_and_clear_idle(cid))
			return cid;
	}
	return -1;
}

/* An idle CPU @p may run on if there is one, else any it may run on. */
static s32 pick_any_cpu(struct task_struct *p)
{
	s32 cid;

	if (!cid_form)
		return scx_bpf_pick_any_cpu(p->cpus_ptr, 0);
	cid = pick_idle_cpu(p);
	if (cid >= 0)
		return cid;
	bpf_for(cid, 0, nr_form_cpus())
		if (cid_online(cid) && task_may_run(p, cid) && cid_usable(cid))
			return cid;
	return -1;
}

static struct task_ctx *lookup_task_ctx(struct task_struct *p)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (!tctx)
		scx_bpf_error("task_ctx lookup failed for pid %d", p->pid);
	return tctx;
}

/* Weight 100 is nice 0; the boundaries split nice levels into five bands. */
static int weight_to_idx(u32 weight)
{
	if (weight <= 25)
		return 0;
	if (weight <= 50)
		return 1;
	if (weight < 200)
		return 2;
	if (weight < 400)
		return 3;
	return 4;
}

/*
 * An idle CPU @p can run on right away, preferring @prev_cpu; -1 if none.
 *
 * Upstream qmap also sends a task pinned to one CPU straight to that CPU's
 * local DSQ when it is busy. We do not: a CPU runs its local DSQ before it
 * calls ops.dispatch, so a stream of pinned tasks (stress-ng --affinity-pin,
 * per-CPU kworkers) keeps it from ever draining the FIFOs, and the tasks
 * there starve until the watchdog ejects the scheduler. Pinned tasks take
 * their turn in the FIFOs; drain_fifo() kicks their CPU when another pops them.
 */
static s32 pick_direct_dispatch_cpu(struct task_struct *p, s32 prev_cpu)
{
	s32 cpu;

	if (cid_usable(prev_cpu) && test_and_clear_idle(prev_cpu))
		return prev_cpu;
	if (p->nr_cpus_allowed == 1)
		return -1;

	cpu = pick_idle_cpu(p);
	if (cpu >= 0)
		return cpu;
	return -1;
}

/* -L: @p's wakeup, which ops.enqueue sees next, came from a sync waker. */
static void lat_mark_sync(struct task_struct *p)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (tctx)
		tctx->woke_sync = true;
}

/*
 * A waking task that finds an idle CPU is inserted into its local DSQ here, so
 * the kernel skips ops.enqueue for it. (Upstream qmap flags the task and
 * inserts it from ops.enqueue: a task storage lookup and a call more.) It
 * runs at once, so it takes no place in its FIFO's core-sched order.
 */
s32 BPF_STRUCT_OPS(qmap_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
{
	s32 cpu;

	cpu = pick_direct_dispatch_cpu(p, prev_cpu);
	if (cpu < 0) {
		if (lat_budget_ns && (wake_flags & SCX_WAKE_SYNC))
			lat_mark_sync(p);
		return prev_cpu;
	}

	__sync_fetch_and_add(&stats.nr_ddsp_from_select, 1);
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
	return cpu;
}

/*
 * How many CPUs are online, for fifo_slice(): nr_cpu_ids counts the possible
 * ones, and a machine with hotplug slots ("Allowing 64 CPUs, 60 hotplug
 * CPUs") has many more of those. Counted at init, kept by ops.cpu_online and
 * ops.cpu_offline; a child gets no hotplug calls and keeps its init's count.
 */
static s32 nr_cpus_online;

static s32 count_online_cpus(void)
{
	const struct cpumask *online;
	s32 nr;

	if (cid_form)
		return scx_bpf_nr_online_cids();
	online = scx_bpf_get_online_cpumask();
	nr = bpf_cpumask_weight(online);
	scx_bpf_put_cpumask(online);
	return nr;
}

/* How many tasks wait in the FIFOs, all of them. */
static s64 fifos_nr_queued(void)
{
	s64 queued = 0;
	int i;

	for (i = 0; i < NR_QUEUES; i++)
		queued += fifo_nr_queued[i];
	return queued;
}

/*
 * How many tasks wait for a FIFO's turn: in the FIFOs, and while one is full,
 * its overflow in the shared DSQ too.
 */
static s64 fifos_nr_waiting(void)
{
	s64 queued = 0, n;
	bool full = false;
	int i;

	for (i = 0; i < NR_QUEUES; i++) {
		n = fifo_nr_queued[i];
		queued += n;
		full |= n >= fifo_depth;
	}
	if (full)
		queued += scx_bpf_dsq_nr_queued(SHARED_DSQ);
	return queued;
}

/* Whether a FIFO is full, so that its overflow waits in the shared DSQ. */
static bool fifos_full(void)
{
	int i;

	for (i = 0; i < NR_QUEUES; i++)
		if (fifo_nr_queued[i] >= fifo_depth)
			return true;
	return false;
}

/*
 * The slice for a task leaving the FIFOs, or overflowing them: slice_ns,
 * unless that many tasks waiting with it would not all run within
 * WAIT_BOUND_NS on the online CPUs. A convoy of thousands of threads that each burn their whole slice
 * (10,000 Python threads fighting over the GIL in futex_wake) otherwise
 * keeps the last of them waiting past the watchdog.
 */
static u64 fifo_slice(void)
{
	s64 waiting = fifos_nr_waiting(), nr_cpus = nr_cpus_online;
	u64 slice;

	if (waiting <= 0)
		return slice_ns;
	if (nr_cpus < 1)
		nr_cpus = 1;
	slice = (u64)WAIT_BOUND_NS * nr_cpus / (u64)waiting;
	if (slice < MIN_FIFO_SLICE_NS)
		slice = MIN_FIFO_SLICE_NS;
	/* Never longer than -s asks, even when that is below the minimum. */
	return slice < slice_ns ? slice : slice_ns;
}

/* How a FIFO names @p. */
static u64 fifo_key(struct task_struct *p)
{
	return queue_by_tid ? p->scx.tid : (u64)p->pid;
}

/*
 * Whether @p must not wait in a FIFO: by PID, an exiting task can be reaped,
 * and its PID freed, while it still has to run once more to finish exiting.
 * Popped then, its PID would find no task and it would be lost until the
 * watchdog ejects us. A tid finds it until its last run.
 */
static bool fifo_would_lose(struct task_struct *p)
{
	return !queue_by_tid && (p->flags & PF_EXITING);
}

/*
 * Queue @p on a FIFO; falls back to the shared DSQ when the FIFO is full.
 * Returns whether @p went onto the FIFO.
 */
static bool fifo_enqueue(struct task_struct *p, int idx, u64 enq_flags)
{
	u64 key = fifo_key(p);
	s64 *nr_queued;
	void *fifo;

	if (idx < 0 || idx >= NR_QUEUES)
		return false;
	nr_queued = &fifo_nr_queued[idx];

	fifo = bpf_map_lookup_elem(&queue_arr, &idx);
	if (!fifo) {
		scx_bpf_error("failed to find FIFO %d", idx);
		return false;
	}

	__sync_fetch_and_add(nr_queued, 1);
	if (bpf_map_push_elem(fifo, &key, 0)) {
		__sync_fetch_and_sub(nr_queued, 1);
		__sync_fetch_and_add(&stats.nr_overflow, 1);
		/*
		 * The shared DSQ is mostly drained ahead of the FIFOs
		 * (shared_first()): thousands of overflowed tasks on full
		 * slices would keep the full FIFO waiting for a minute. They
		 * get the FIFO's bounded slice.
		 */
		scx_bpf_dsq_insert(p, SHARED_DSQ, fifo_slice(), enq_flags);
		return false;
	}

	__sync_fetch_and_add(&stats.nr_enqueued, 1);
	return true;
}

/*
 * Queue @p on FIFO @idx, at most once: a task queued again before its entry
 * there came up (a change of its CPU mask, policy or cgroup dequeues and
 * enqueues it without running it) keeps that entry and its place, and the
 * pop moves whichever queueing of it is current then. Pushed again each
 * time, a few tasks whose masks kept changing filled their FIFO with
 * entries, each of which ran them a slice, while a task behind waited until
 * the watchdog ejected us. Returns whether @p waits in the FIFO.
 *
 * The count is taken with an atomic read-modify-write, ordered after the
 * kernel marked this queueing (QUEUEING), as move_popped() uncounts before
 * it inserts: an entry counted here is either still to be popped, or its
 * insert sees this queueing and moves it.
 */
static bool fifo_push(struct task_struct *p, struct task_ctx *tctx, int idx,
		      u64 enq_flags)
{
	if (__sync_fetch_and_add(&tctx->fifo_entries, 1) && tctx->fifo_idx == idx) {
		__sync_fetch_and_sub(&tctx->fifo_entries, 1);
		__sync_fetch_and_add(&stats.nr_fifo_kept, 1);
		return true;
	}
	tctx->fifo_idx = idx;
	if (fifo_enqueue(p, idx, enq_flags))
		return true;
	__sync_fetch_and_sub(&tctx->fifo_entries, 1);
	return false;
}

/*
 * A pop took one of @tctx's FIFO entries (fifo_push()). Never below 0: by
 * PID, the entry may have been pushed for an earlier task with that PID, and
 * a count left above the entries that wait would keep a queueing with none
 * (lost until the watchdog ejects us). A fully ordered compare-and-swap,
 * before the pop's insert.
 */
static void fifo_entry_popped(struct task_ctx *tctx)
{
	u32 n = tctx->fifo_entries, seen;

	bpf_repeat(64) {
		if (!n)
			break;
		seen = __sync_val_compare_and_swap(&tctx->fifo_entries, n, n - 1);
		if (seen == n)
			break;
		n = seen;
	}
}

/* Count a reenqueue by the reason the kernel gave in p->scx.flags. */
static void account_reenq(struct task_struct *p)
{
	u64 reason = p->scx.flags & SCX_TASK_REENQ_REASON_MASK;

	__sync_fetch_and_add(&stats.reenq_total, 1);
	if (kernel_cpu(task_cpu(p)) == 0)
		__sync_fetch_and_add(&stats.reenq_cpu0, 1);

	if (reason == SCX_TASK_REENQ_KFUNC)
		__sync_fetch_and_add(&stats.reenq_kfunc, 1);
	else if (reason == SCX_TASK_REENQ_IMMED)
		__sync_fetch_and_add(&stats.reenq_immed, 1);
	else if (reason == SCX_TASK_REENQ_PREEMPTED)
		__sync_fetch_and_add(&stats.reenq_preempted, 1);
	else if (SCX_TASK_REENQ_CAP && reason == SCX_TASK_REENQ_CAP)
		__sync_fetch_and_add(&stats.reenq_cap, 1);
	else
		__sync_fetch_and_add(&stats.reenq_other, 1);
}

static bool is_lowpri(struct task_struct *p)
{
	return p->scx.weight < LOWPRI_WEIGHT && !(p->flags & PF_KTHREAD);
}

/* -t/-T: whether to lose this task, leaving it runnable but never queued. */
static bool inject_stall(struct task_struct *p)
{
	static u32 user_cnt, kernel_cnt;

	if (p->flags & PF_KTHREAD)
		return stall_kernel_nth && !(++kernel_cnt % stall_kernel_nth);
	return stall_user_nth && !(++user_cnt % stall_user_nth);
}

/* -F: every Nth (non-reenqueue) enqueue is inserted into its own CPU. */
static bool immed_stress(struct task_struct *p, u64 enq_flags)
{
	static u32 cnt;

	if (!immed_stress_nth || (enq_flags & SCX_ENQ_REENQ))
		return false;
	if (++cnt % immed_stress_nth)
		return false;

	__sync_fetch_and_add(&stats.nr_immed_stress, 1);
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | task_cpu(p), slice_ns,
			   enq_flags);
	return true;
}

/* -L: @base scaled up for a task heavier than nice 0 (LAT_SLICE_SCALE). */
static u64 weighted_slice(const struct task_struct *p, u64 base)
{
	u64 weight = p->scx.weight;

	if (!lat_budget_ns || weight <= NICE0_WEIGHT)
		return base;
	if (weight > NICE0_WEIGHT * LAT_SLICE_SCALE)
		weight = NICE0_WEIGHT * LAT_SLICE_SCALE;
	return base * weight / NICE0_WEIGHT;
}

/* -L: @p's budget: lat_budget_ns for nice 0, in proportion to its weight. */
static u64 lat_budget(const struct task_struct *p)
{
	u64 budget = lat_budget_ns * p->scx.weight / NICE0_WEIGHT;
	u64 slice = weighted_slice(p, slice_ns);

	return budget < slice ? budget : slice;
}

/*
 * -L: whether @p, running, has used up its latency budget of its slice, read
 * off what a full weighted slice has lost: a task given less (a resumed
 * budget, a deep FIFO's cut slice) counts as over budget from its start.
 */
static bool over_budget(struct task_struct *p)
{
	u64 slice = weighted_slice(p, slice_ns), left = p->scx.slice;

	return left < slice && slice - left >= lat_budget(p);
}

/* -L: how much of its budget @p, running, has left (at least 1 ns). */
static u64 lat_budget_left(struct task_struct *p)
{
	u64 slice = weighted_slice(p, slice_ns), left = p->scx.slice;
	u64 used = left < slice ? slice - left : 0, budget = lat_budget(p);

	return used < budget ? budget - used : 1;
}

/*
 * -L: the share of a CPU, of LAT_UTIL_ONE, that @p used from its last
 * enqueue to @now; -1 before its first or when no time passed.
 */
static s32 lat_use_since(struct task_struct *p, struct task_ctx *tctx, u64 now)
{
	u64 wall = now - tctx->util_at;
	u64 used = p->se.sum_exec_runtime - tctx->util_ran;

	if (!tctx->util_at || !wall)
		return -1;
	return used >= wall ? LAT_UTIL_ONE : used * LAT_UTIL_ONE / wall;
}

/*
 * -L: @util, a task's recent use, with @use over the last @wall ns folded in,
 * in proportion to @wall. Averaged over enqueues instead, a quarter each, a
 * light task cut short after a long burst (the host held its vCPU) had its
 * few ms of running count as much as a whole period: cyclictest's threads at
 * 4 vCPUs, using a fifth of a CPU, read as about half, were cut at ticks and
 * queued behind the hogs.
 */
static u32 lat_blend(u32 util, u32 use, u64 wall)
{
	if (wall >= LAT_UTIL_WINDOW_NS)
		return use;
	return ((u64)util * (LAT_UTIL_WINDOW_NS - wall) + (u64)use * wall) /
	       LAT_UTIL_WINDOW_NS;
}

/*
 * -L: fold @p's CPU use since its last enqueue into its recent use. A task
 * enqueued again without a wakeup (preempted, slice over, reenqueued) after
 * running a whole slice or more since it last woke has not slept in all that
 * time: it counts as a whole CPU. Counting only the time it ran made a CPU
 * hog that had waited its turn in a FIFO look light, and a task waking on
 * its CPU queued behind it. A short burst cut by a preemption still counts
 * what it ran: as a whole CPU, every task preempted once became a victim,
 * and hackbench's wakers preempted each other seven times slower.
 */
static void lat_track(struct task_struct *p, struct task_ctx *tctx,
		      u64 enq_flags)
{
	u64 now = bpf_ktime_get_ns();
	u64 ran = p->se.sum_exec_runtime;
	s32 use = lat_use_since(p, tctx, now);

	if (enq_flags & SCX_ENQ_WAKEUP)
		tctx->woke_ran = ran;
	else if (use >= 0 && ran - tctx->woke_ran >= slice_ns)
		use = LAT_UTIL_ONE;

	if (use >= 0)
		tctx->util = lat_blend(tctx->util, use, now - tctx->util_at);
	tctx->util_at = now;
	tctx->util_ran = ran;
}

/*
 * -L: @p's recent use at @now, counting what it ran since its last enqueue
 * once a slice has passed since it: a CPU hog alone on its CPU keeps running
 * through dispatch refills and is not enqueued again, so its stored use grows
 * stale. Sooner, a task that just came out of its FIFO would read as a whole
 * CPU for the burst it is in.
 */
static u32 lat_util_now(struct task_struct *p, struct task_ctx *tctx, u64 now)
{
	s32 use;

	if (now - tctx->util_at < slice_ns)
		return tctx->util;
	use = lat_use_since(p, tctx, now);

	return use > (s32)tctx->util ? use : tctx->util;
}

/*
 * -L: whether @p, running, is a CPU hog (LAT_BUSY). Cutting the bursts of
 * tasks that work in turns (hackbench's senders and receivers) at ticks
 * doubled their context switches.
 */
static bool lat_busy(struct task_struct *p)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	return tctx && lat_util_now(p, tctx, bpf_ktime_get_ns()) >= LAT_BUSY;
}

/* -L: @util as a nice 0 task's: a heavier task may use more for the same. */
static u64 lat_load(const struct task_struct *p, u32 util)
{
	u32 weight = p->scx.weight ?: 1;

	return (u64)util * NICE0_WEIGHT / weight;
}

/* Whether FIFO @first, or any heavier one after it, may hold a task. */
static bool fifos_queued_from(int first)
{
	int i;

	for (i = first; i < NR_QUEUES; i++)
		if (fifo_nr_queued[i] > 0)
			return true;
	return false;
}

/* Whether CPU @cpu is online: the cid form tracks it, the kernel's mask else. */
static bool form_cpu_online(s32 cpu)
{
	const struct cpumask *online;
	bool on;

	if (cid_form)
		return cid_online(cpu);
	online = scx_bpf_get_online_cpumask();
	on = bpf_cpumask_test_cpu(cpu, online);
	scx_bpf_put_cpumask(online);
	return on;
}

/*
 * cid form: whether any cid is idle, read a word at a time: words past the
 * online cids stay 0. No kfunc, as it runs at every FIFO push.
 */
static bool any_idle_cid(void)
{
	int i;

	for (i = 0; i < MAX_CIDS / 64; i++)
		if (idle_cids[i])
			return true;
	return false;
}

/*
 * @p has just been queued in a FIFO or the shared DSQ, where only a dispatch
 * finds it: wake an idle CPU it may run on to dispatch. A CPU whose dispatch
 * found the queues empty a moment before the push, and that went idle after
 * ops.select_cpu looked, would otherwise sleep while @p waited for another
 * CPU's slice to end. The kernel marks a CPU idle before it calls
 * ops.update_idle, which looks at the queues from the other side
 * (idle_recheck()): of a push and a CPU going idle, one sees the other.
 */
static void kick_idle_for(struct task_struct *p)
{
	s32 cpu;

	if (cid_form && !any_idle_cid())
		return;
	cpu = pick_idle_cpu(p);
	if (cpu < 0)
		return;
	kick_cpu(cpu, SCX_KICK_IDLE);
	__sync_fetch_and_add(&stats.nr_idle_kicks, 1);
}

/*
 * CPU @cpu has just been marked idle: if tasks wait in the FIFOs or the
 * shared DSQ, kick it to dispatch once more (kick_idle_for()'s other half).
 * Once until it is sent a task or goes idle anew (idle_rechecked[]): what
 * waits may be tasks it may not run (pinned elsewhere, in the shared DSQ),
 * and its dispatch finding nothing comes here again. A global function: the
 * verifier walks it once, not in every path of ops.dispatch that reaches it.
 */
__noinline int idle_recheck(s32 cpu)
{
	u32 i = cpu;

	if (i >= MAX_CIDS || idle_rechecked[i] || !cid_usable(cpu))
		return 0;
	/*
	 * Not on a CPU going offline: it goes idle once more after its local
	 * APIC is off, and a kick from there queues its irq_work, whose
	 * interrupt is lost. The work stays on the CPU's list, and back online
	 * nothing queued there raises an interrupt again (only a push onto an
	 * empty list does): RCU stalls, and the next disable never finishes.
	 */
	if (!form_cpu_online(cpu))
		return 0;
	if (!fifos_queued_from(0) && scx_bpf_dsq_nr_queued(SHARED_DSQ) <= 0)
		return 0;
	idle_rechecked[i] = 1;
	kick_cpu(cpu, SCX_KICK_IDLE);
	__sync_fetch_and_add(&stats.nr_idle_rechecks, 1);
	return 0;
}

/* @cpu went idle from running a task (ops.update_idle): look once more. */
static void went_idle(s32 cpu)
{
	u32 i = cpu;

	if (i < MAX_CIDS)
		idle_rechecked[i] = 0;
	idle_recheck(cpu);
}

/* -L: count a task just queued in a FIFO if it ran little lately. */
static void lat_mark_light(struct task_ctx *tctx)
{
	if (tctx->queued_light || tctx->util >= LAT_BUSY)
		return;
	tctx->queued_light = true;
	__sync_fetch_and_add(&lat_light_queued, 1);
}

/* -L: a counted task left its FIFO (popped, or exiting): uncount it. */
static void lat_unmark_light(struct task_ctx *tctx)
{
	if (!tctx->queued_light)
		return;
	tctx->queued_light = false;
	__sync_fetch_and_sub(&lat_light_queued, 1);
}

/*
 * Count @p, about to be pushed onto a FIFO, among the FIFOs' -L light and -H
 * boosted tasks. Before the push: another CPU may pop it at once, and its
 * uncount, coming first, would leave the count one too high (with -L, every
 * CPU hog over budget would then be cut at every tick).
 */
static void fifo_count(struct task_struct *p, struct task_ctx *tctx)
{
	if (lat_budget_ns)
		lat_mark_light(tctx);
	if (highpri_boosting && p->scx.weight >= HIGHPRI_WEIGHT && !tctx->highpri) {
		tctx->highpri = true;
		__sync_fetch_and_add(&nr_highpri_queued, 1);
	}
}

/* @p left the FIFOs (popped, overflowed, exiting): uncount it. */
static void fifo_uncount(struct task_ctx *tctx)
{
	if (tctx->highpri) {
		tctx->highpri = false;
		__sync_fetch_and_sub(&nr_highpri_queued, 1);
	}
	lat_unmark_light(tctx);
}

/*
 * -L: whether a CPU hog running @p gives way at a tick: a task that ran
 * little lately waits in a FIFO, or one of a heavier FIFO, or one in the
 * shared DSQ. Hogs of one weight wait for each other's slices to end. Cut
 * for any waiter, a hog cut on one CPU was the waiter the next CPU's tick
 * cut its own hog for, and the hogs traded CPUs in a chain.
 */
static bool lat_cut_due(struct task_struct *p)
{
	return lat_light_queued > 0 ||
	       scx_bpf_dsq_nr_queued(SHARED_DSQ) > 0 ||
	       fifos_queued_from(weight_to_idx(p->scx.weight) + 1);
}

/* -L: whether @p, of recent load @load, is light and bound to one CPU. */
static bool lat_pinned_light(const struct task_struct *p, u64 load)
{
	return p->nr_cpus_allowed == 1 && load < LAT_PINNED_BUSY;
}

/* -L: whether waking @p may be put straight onto CPU @cpu's local DSQ. */
static bool lat_cpu_open(struct task_struct *p, s32 cpu)
{
	return cid_usable(cpu) && !immed_if_shared(cpu) && task_may_run(p, cpu);
}

/*
 * -L: whether waking @p, of recent load @load, outweighs a running task of
 * recent load @cload: that task used LAT_GAP more of a CPU lately, or it is
 * a CPU hog busier than @p, light, which may run on this CPU only. Tasks
 * that run alike do not preempt each other (LAT_GAP); a pinned one has no
 * other CPU: behind a hog within its budget, it waited to the tick past it.
 */
static bool lat_outweighs(const struct task_struct *p, u64 load, u64 cload)
{
	if (cload >= load + LAT_GAP)
		return true;
	return lat_pinned_light(p, load) && cload >= LAT_BUSY && cload > load;
}

/*
 * -L: whether waking @p, of recent load @load, may preempt CPU @cpu at @now:
 * one of ours, held whole, that runs one of our tasks @p outweighs, or, if
 * @p is light, that is idle though not free, a task being on its way there.
 * Queued, @p waited behind that task, often a CPU hog, to a tick past its
 * budget; a hog that woke went ahead of a light task that had claimed the CPU.
 */
static bool lat_victim(struct task_struct *p, s32 cpu, u64 load, u64 now,
		       struct task_struct *waker)
{
	struct task_struct *curr;
	struct task_ctx *cctx;
	bool victim = false;

	if (!lat_cpu_open(p, cpu))
		return false;

	bpf_rcu_read_lock();
	curr = cpu_curr(cpu);
	if (curr && (curr->flags & PF_IDLE)) {
		victim = load < LAT_BUSY;
	/* Only ours are QUEUED; an RT task there would just run on. */
	} else if (curr && curr != p && curr != waker &&
		   (curr->scx.flags & SCX_TASK_QUEUED)) {
		cctx = bpf_task_storage_get(&task_ctx_stor, curr, 0, 0);
		victim = cctx && now >= cctx->shield_until &&
			 lat_outweighs(p, load, lat_load(curr, lat_util_now(curr, cctx, now)));
		/* Within its budget, it keeps its place: see lat_resume(). */
		if (victim && !over_budget(curr))
			cctx->resume_slice = lat_budget_left(curr);
	}
	bpf_rcu_read_unlock();
	return victim;
}

/*
 * -L: the @i-th CPU, of the form's @nr, that a task waking on CPU @own
 * looks at: @own, then the next ones round, up to LAT_PROBES; -1 past
 * them, or if @own is not one of the form's. Inlined so that the verifier
 * sees the loops' bound.
 */
static __always_inline s32 lat_probe(s32 own, u32 i, u32 nr)
{
	if (i >= LAT_PROBES || i >= nr || own < 0 || (u32)own >= nr)
		return -1;
	return (own + i) % nr;
}

/*
 * -L: waking @p found no idle CPU. If it ran little lately, it goes ahead of
 * the FIFOs onto a CPU where a busier task of ours runs, preempting it, as
 * EEVDF lets a task with lag preempt: its own CPU if it can, else one of the
 * next few (an RT task may hold its own). Returns whether @p was placed.
 * lat_track() ran for @p in this enqueue: its time is now.
 */
static bool lat_preempt(struct task_struct *p, struct task_ctx *tctx,
			struct task_struct *waker, u64 enq_flags)
{
	u64 load = lat_load(p, tctx->util);
	u32 nr = nr_form_cpus(), i;
	s32 own = task_cpu(p), cpu;

	for (i = 0; (cpu = lat_probe(own, i, nr)) >= 0; i++) {
		if (!lat_victim(p, cpu, load, tctx->util_at, waker))
			continue;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns,
				   enq_flags | SCX_ENQ_PREEMPT);
		__sync_fetch_and_add(&stats.nr_lat_preempts, 1);
		return true;
	}
	return false;
}

/*
 * -L: the task that woke @p, if it did so saying it would sleep soon (a
 * write to a pipe or socket): @p may not preempt it, only wait for it.
 */
static struct task_struct *lat_sync_waker(struct task_ctx *tctx, u64 enq_flags)
{
	bool sync = tctx->woke_sync;

	tctx->woke_sync = false;
	if (!sync || !(enq_flags & SCX_ENQ_WAKEUP))
		return NULL;
	return bpf_get_current_task_btf();
}

/*
 * -L: @p, which lat_preempt() preempted within its budget, comes back: it
 * resumes first on its CPU for what is left of its budget, as EEVDF's
 * preempted task keeps its place, and no waking task may preempt it
 * (lat_victim()) for half of lat_budget_ns. Its slice, shorter than a full
 * one, reads as over budget (over_budget()), so a wakeup queued behind it or
 * a tick may still end it; design.md says what counting otherwise cost.
 * Sent to the tail of a FIFO instead, a busy task that
 * wakes others (hackbench's senders on a slow host) was preempted by each
 * and ran one burst per turn of the FIFOs. It goes behind the tasks that
 * preempted it with it (two woke at once): ahead of them, it ran on to the
 * next tick, since the kernel ends a slice only at a tick. Returns whether
 * @p was placed.
 */
static bool lat_resume(struct task_struct *p, struct task_ctx *tctx,
		       u64 enq_flags)
{
	u64 slice = tctx->resume_slice;
	s32 cpu = task_cpu(p);
	struct cpu_ctx *cpuc;
	u32 zero = 0;

	tctx->resume_slice = 0;
	if (!slice || (enq_flags & (SCX_ENQ_WAKEUP | SCX_ENQ_REENQ)))
		return false;
	if (!cid_usable(cpu) || !task_may_run(p, cpu))
		return false;

	if (scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL_ON | cpu) <= 0)
		enq_flags |= SCX_ENQ_HEAD;
	/* Preempted here, it is enqueued here: see lat_local_waits(). */
	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	if (cpuc && cpu == current_cpu())
		cpuc->resumed_pid = p->pid;
	tctx->shield_until = bpf_ktime_get_ns() + lat_budget_ns / 2;
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags);
	__sync_fetch_and_add(&stats.nr_lat_resumes, 1);
	return true;
}

/*
 * -L: a task woke up and had to queue, so its CPU @cpu is busy. If what runs
 * there is one of ours and has used its budget, preempt it: it goes back to
 * its FIFO and the CPU dispatches again. The slice is ended here, on the task
 * found over its budget, and the kick only reschedules: SCX_KICK_PREEMPT ends
 * the slice of whatever runs when the kick lands, often a pinned light task
 * that has just preempted this one and, cut before it ran, went to its FIFO.
 */
static bool kick_over_budget(s32 cpu)
{
	struct task_struct *curr;
	bool kick;

	bpf_rcu_read_lock();
	curr = cpu_curr(cpu);
	/* Only ours are QUEUED; an RT task there would just run on. */
	kick = curr && (curr->scx.flags & SCX_TASK_QUEUED) && over_budget(curr);
	if (kick)
		scx_bpf_task_set_slice(curr, 0);
	bpf_rcu_read_unlock();
	if (!kick)
		return false;

	kick_cpu(cpu, 0);
	__sync_fetch_and_add(&stats.nr_lat_kicks, 1);
	return true;
}

/* -L: preempt the first CPU over its budget of @own and the next few. */
static void kick_first_over_budget(s32 own)
{
	u32 nr = nr_form_cpus(), i;
	s32 cpu;

	for (i = 0; (cpu = lat_probe(own, i, nr)) >= 0; i++)
		if (kick_over_budget(cpu))
			return;
}

/* -L: lat_wait_local()'s head inserts on each CPU since its last dispatch. */
static u32 lat_local_jumps[MAX_CIDS];

/*
 * -L: waking @p ran little lately, could not preempt, and may run on one CPU
 * only: it waits at the head of that CPU's local DSQ, ahead of the FIFOs,
 * from which no other CPU could have taken it, and ahead of a preempted task
 * put back there (lat_resume()). Behind either, it waited for a CPU hog to
 * run on to a tick when the light task running there slept (cyclictest's
 * threads behind its main thread); ops.tick ends the slice of a task over
 * its budget for it. Up to LAT_LOCAL_JUMPS of them between two dispatches
 * of that CPU, so that what waits there, and the CPU's turn at the shared
 * DSQ and the FIFOs, comes. Returns whether @p was placed.
 */
static bool lat_wait_local(struct task_struct *p, struct task_ctx *tctx,
			   u64 enq_flags)
{
	s32 cpu = task_cpu(p);

	if (!lat_pinned_light(p, lat_load(p, tctx->util)) || !lat_cpu_open(p, cpu))
		return false;
	if ((u32)cpu >= MAX_CIDS)
		return false;
	if (lat_local_jumps[cpu] >= LAT_LOCAL_JUMPS) {
		__sync_fetch_and_add(&stats.nr_lat_local_full, 1);
		return false;
	}

	__sync_fetch_and_add(&lat_local_jumps[cpu], 1);
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns,
			   enq_flags | SCX_ENQ_HEAD);
	__sync_fetch_and_add(&stats.nr_lat_local, 1);
	kick_over_budget(cpu);
	return true;
}

/*
 * -L: waking @p ran little lately but could neither preempt nor wait on its
 * own CPU: it waits in the shared DSQ, which every CPU drains ahead of the
 * FIFOs, and the first CPU over its budget, of its own and the next
 * LAT_PROBES - 1, gives way. At the tail of its FIFO it waited for every
 * CPU hog queued ahead to run its budget, each to the tick past it:
 * cyclictest every 250 us, unpinned beside an RT task and two hogs per
 * CPU, read p99 2.4x EEVDF's. Not while a FIFO's head has waited
 * LAT_KEEP_WAIT_NS (lat_fifos_starved): light tasks enough to fill the
 * CPUs would hold the FIFOs back. The heads are looked at every 10 ms by
 * the timer, not in every such enqueue (a map peek and a task lookup per
 * FIFO). Nor unless CPU hogs are most of what the FIFOs hold: behind
 * light tasks (hackbench's) the tail moves fast, and the shared DSQ only
 * reordered them, at a kick and a move under its lock each; at 4 vCPUs
 * hackbench ran a quarter slower. Returns whether @p was placed.
 */
static bool lat_wait_shared(struct task_struct *p, struct task_ctx *tctx,
			    u64 enq_flags)
{
	if (lat_load(p, tctx->util) >= LAT_BUSY || lat_fifos_starved)
		return false;
	if (fifos_nr_queued() <= 2 * lat_light_queued)
		return false;

	scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
	__sync_fetch_and_add(&stats.nr_lat_shared, 1);
	kick_idle_for(p);
	kick_first_over_budget(task_cpu(p));
	return true;
}

/*
 * Kernel threads skip the FIFOs for the shared DSQ, which every CPU drains
 * first: the kernel's own work must not wait behind a deep FIFO.
 * sched_ext's watchdog is a kworker; queued behind hundreds of user threads
 * (10,000 Python threads on 7.3 under TCG), it failed to check in within
 * the 5 s timeout and the kernel ejected the scheduler.
 *
 * -L: one that wakes and ran little lately preempts, or waits on its CPU,
 * as a light user task does; else a CPU over its budget gives way to it.
 * In the shared DSQ alone, it waited for the tick past a CPU hog's budget.
 */
static void enqueue_kthread(struct task_struct *p, struct task_ctx *tctx,
			    struct task_struct *waker, u64 enq_flags)
{
	bool lat_wakeup = lat_budget_ns && (enq_flags & SCX_ENQ_WAKEUP);

	if (lat_wakeup && (lat_preempt(p, tctx, waker, enq_flags) ||
			   lat_wait_local(p, tctx, enq_flags))) {
		__sync_fetch_and_add(&stats.nr_lat_kthreads, 1);
		return;
	}

	scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
	kick_idle_for(p);
	if (lat_wakeup && lat_load(p, tctx->util) < LAT_BUSY)
		kick_first_over_budget(task_cpu(p));
}

/*
 * A reenqueued task should run soon, elsewhere if its CPU is taken: an idle
 * CPU if there is one, else the shared DSQ, which every CPU drains first.
 * It keeps the slice it had left (slice 0 keeps p->scx.slice).
 *
 * Not so a nice 19 task handed back from LOWPRI_DSQ: it takes its turn in its
 * FIFO. Through the shared DSQ, the parked tasks would come back every 10 ms
 * ahead of every FIFO, take most of the CPU and starve the FIFOs' tasks
 * until the watchdog ejects us. (One the FIFO would lose takes the shared DSQ,
 * as in qmap_enqueue().)
 */
static void enqueue_reenqueued(struct task_struct *p, struct task_ctx *tctx,
			       u64 enq_flags)
{
	u64 slice = p->scx.slice ? 0 : slice_ns;
	s32 cpu;

	if (is_lowpri(p) && !fifo_would_lose(p)) {
		fifo_push(p, tctx, weight_to_idx(p->scx.weight), enq_flags);
		kick_idle_for(p);
		return;
	}

	cpu = pick_direct_dispatch_cpu(p, task_cpu(p));
	if (cpu >= 0) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags);
		kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	/* -L: handed back from a CPU an RT task took, it may preempt too. */
	if (lat_budget_ns && lat_preempt(p, tctx, NULL, enq_flags))
		return;

	scx_bpf_dsq_insert(p, SHARED_DSQ, slice, enq_flags);
	kick_idle_for(p);
}

/* --remote-reenq: CPUs an RT/DL task holds, whose local DSQs the timer sweeps. */
static s32 nr_rt_busy;

/* 7.3: whether a sub-scheduler is attached, whose turns the timer passes. */
static bool have_subs(void)
{
	u32 i;

	for (i = 0; i < MAX_SUBS; i++)
		if (sub_cgroup_ids[i])
			return true;
	return false;
}

/* Whether the 10 ms timer has anything to do at its next run. */
static bool timer_has_work(void)
{
	if (scx_bpf_dsq_nr_queued(LOWPRI_DSQ) > 0)
		return true;
	if (remote_reenq && nr_rt_busy > 0)
		return true;
	/* -L: a FIFO's head may come to wait LAT_KEEP_WAIT_NS. */
	if (lat_budget_ns && fifos_queued_from(0))
		return true;
	/* 7.3: a partition to redo, turns to pass, stranded tasks to look for. */
	return caps_hier && (part_stale || have_subs() ||
			     scx_bpf_dsq_nr_queued(SHARED_DSQ) > 0);
}

static void timer_check(void)
{
	if (timer_asleep && timer_has_work())
		timer_wake();
}

void BPF_STRUCT_OPS(qmap_enqueue, struct task_struct *p, u64 enq_flags)
{
	int idx = weight_to_idx(p->scx.weight);
	struct task_struct *waker = NULL;
	struct task_ctx *tctx;
	bool pushed;
	s32 cpu;

	if (enq_flags & SCX_ENQ_REENQ)
		account_reenq(p);

	if (inject_stall(p))
		return;

	if (error_after_enq &&
	    __sync_add_and_fetch(&nr_enqueue_calls, 1) == error_after_enq)
		scx_bpf_error("-e: error injected after %u enqueues", error_after_enq);

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;
	if (lat_budget_ns && lat_resume(p, tctx, enq_flags))
		return;
	if (lat_budget_ns) {
		waker = lat_sync_waker(tctx, enq_flags);
		lat_track(p, tctx, enq_flags);
	}

	/* Every enqueue takes a place in its FIFO's core-sched order. */
	tctx->core_sched_seq = core_sched_tail_seqs[idx]++;

	if (inject_wrong(p, enq_flags) || immed_stress(p, enq_flags))
		return;

	if (enq_flags & SCX_ENQ_REENQ) {
		enqueue_reenqueued(p, tctx, enq_flags);
		return;
	}

	if (place_stranded(p, enq_flags))
		return;

	/*
	 * Nice 19 user tasks wait in LOWPRI_DSQ, which dispatch never drains:
	 * they run only when lowpri_timerfn() hands them back.
	 */
	if (is_lowpri(p)) {
		__sync_fetch_and_add(&stats.nr_lowpri_queued, 1);
		scx_bpf_dsq_insert(p, LOWPRI_DSQ, slice_ns, enq_flags);
		timer_wake();
		return;
	}

	/* ops.select_cpu was skipped (e.g. not a wakeup): look for idle here. */
	if (!(enq_flags & SCX_ENQ_CPU_SELECTED)) {
		cpu = pick_direct_dispatch_cpu(p, task_cpu(p));
		if (cpu >= 0) {
			__sync_fetch_and_add(&stats.nr_ddsp_from_enq, 1);
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns,
					   enq_flags);
			return;
		}
	}

	if (p->flags & PF_KTHREAD) {
		enqueue_kthread(p, tctx, waker, enq_flags);
		return;
	}

	if (lat_budget_ns && (enq_flags & SCX_ENQ_WAKEUP) &&
	    (lat_preempt(p, tctx, waker, enq_flags) ||
	     lat_wait_local(p, tctx, enq_flags) ||
	     lat_wait_shared(p, tctx, enq_flags)))
		return;

	/* The shared DSQ holds the task itself. */
	if (fifo_would_lose(p)) {
		__sync_fetch_and_add(&stats.nr_exiting, 1);
		scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
		kick_idle_for(p);
		return;
	}

	fifo_count(p, tctx);
	pushed = fifo_push(p, tctx, idx, enq_flags);
	if (!pushed)
		fifo_uncount(tctx);
	kick_idle_for(p);
	if (pushed && lat_budget_ns && (enq_flags & SCX_ENQ_WAKEUP))
		kick_over_budget(task_cpu(p));
}

void BPF_STRUCT_OPS(qmap_dequeue, struct task_struct *p, u64 deq_flags)
{
	__sync_fetch_and_add(&stats.nr_dequeued, 1);
	if (deq_flags & SCX_DEQ_CORE_SCHED_EXEC)
		__sync_fetch_and_add(&stats.nr_core_sched_execed, 1);
}

/* --dispatch-hold-us: widen the window between a choice and its insert. */
static void dispatch_hold(void)
{
	u64 until;

	if (!dispatch_hold_us)
		return;
	until = bpf_ktime_get_ns() + dispatch_hold_us * 1000ULL;
	bpf_repeat(1 << 20)
		if (bpf_ktime_get_ns() >= until)
			break;
}

/* How many handoff DSQs init created: one per CPU (cid), up to MAX_CIDS. */
static u32 nr_handoff_dsqs;

/*
 * Move @p, popped from its FIFO, to this CPU if it may run here and none has
 * yet in this dispatch (@here), else to the shared DSQ (-H sends all there,
 * where dispatch_highpri() looks for them). Not by inserting it
 * into SCX_DSQ_LOCAL: a change of its CPU mask may land between our check
 * and the insert, and the kernel ejects a scheduler whose local insert
 * breaks the mask. It goes through this CPU's handoff DSQ instead, which
 * take_handoff() moves to the local DSQ with the kernel's own check, under
 * the task's lock. Where we hold the CPU only shared (7.3), the move needs
 * SCX_ENQ_IMMED, which scx_bpf_dsq_move_to_local() does not take, and an
 * iterator sees no insert of this dispatch yet: the task goes to the head
 * of the shared DSQ instead, where the next dispatch call finds it
 * (@handoff is false).
 */
static __always_inline void move_popped(struct task_struct *p, u64 slice,
					s32 this_cpu, bool handoff, bool *here)
{
	struct task_ctx *tctx;
	bool allowed;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (tctx) {
		/* Its FIFO's head has moved up to it. */
		core_sched_head_seqs[weight_to_idx(p->scx.weight)] =
			tctx->core_sched_seq;
		fifo_uncount(tctx);
		/* Before the insert: see fifo_push(). */
		fifo_entry_popped(tctx);
	}

	__sync_fetch_and_add(&stats.nr_dispatched, 1);
	if (slice < slice_ns)
		__sync_fetch_and_add(&stats.nr_slice_cut, 1);
	slice = weighted_slice(p, slice);
	allowed = task_may_run(p, this_cpu);
	dispatch_hold();
	if (allowed && !*here && !highpri_boosting) {
		if (!handoff)
			scx_bpf_dsq_insert(p, SHARED_DSQ, slice, SCX_ENQ_HEAD);
		else
			scx_bpf_dsq_insert(p, HANDOFF_DSQ + this_cpu, slice, 0);
		*here = true;
	} else {
		scx_bpf_dsq_insert(p, SHARED_DSQ, slice, 0);
	}
	/*
	 * The FIFOs are global: a task that may not run here would wait in
	 * the shared DSQ until a CPU it may use dispatches. Kick its CPU so
	 * that happens now.
	 */
	if (!allowed)
		kick_cpu(task_cpu(p), 0);
}

/*
 * Move up to @batch tasks from FIFO @idx (move_popped()), charging them to
 * @cpuc's round-robin budget. Returns how many were moved; a task that has
 * gone since it was queued is dropped and not counted.
 */
static u32 drain_fifo(struct cpu_ctx *cpuc, int idx, u32 batch, s32 this_cpu,
		      bool *here)
{
	struct task_struct *p;
	u32 moved = 0;
	s64 *nr_queued;
	bool handoff;
	void *fifo;
	u64 slice, key;

	if (idx < 0 || idx >= NR_QUEUES)
		return 0;
	nr_queued = &fifo_nr_queued[idx];
	if (*nr_queued <= 0)
		return 0;
	slice = fifo_slice();
	/* Decided once: the batch's loop then holds one state fewer per task. */
	handoff = !immed_if_shared(this_cpu) && (u32)this_cpu < nr_handoff_dsqs;

	fifo = bpf_map_lookup_elem(&queue_arr, &idx);
	if (!fifo) {
		scx_bpf_error("failed to find FIFO %d", idx);
		return 0;
	}

	bpf_repeat(QUEUE_DEPTH) {
		if (moved >= batch || !cpuc->dsp_cnt || !scx_bpf_dispatch_nr_slots())
			break;
		if (bpf_map_pop_elem(fifo, &key))
			break;
		__sync_fetch_and_sub(nr_queued, 1);

		if (queue_by_tid) {
			/* RCU-protected: no reference to drop. */
			p = scx_bpf_tid_to_task(key);
			if (!p)
				continue;
			move_popped(p, slice, this_cpu, handoff, here);
		} else {
			p = bpf_task_from_pid(key);
			if (!p)
				continue;
			move_popped(p, slice, this_cpu, handoff, here);
			bpf_task_release(p);
		}
		moved++;
		cpuc->dsp_cnt--;
	}
	return moved;
}

/*
 * @p runs on without going through its FIFO: give it a new place in its
 * FIFO's core-sched order, as if it had been enqueued and dispatched.
 */
static void core_sched_requeue(struct task_struct *p)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (tctx)
		tctx->core_sched_seq =
			core_sched_tail_seqs[weight_to_idx(p->scx.weight)]++;
}

/* -L: when @p was last enqueued (lat_track() stamps it); 0 if unknown. */
static u64 lat_enqueued_at(struct task_struct *p)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	return tctx ? tctx->util_at : 0;
}

/*
 * -L: how long the task at the head of FIFO @idx has waited there at @now;
 * 0 if it holds none.
 */
static u64 fifo_head_wait(int idx, u64 now)
{
	struct task_struct *p;
	u64 key, at;
	void *fifo;

	if (idx < 0 || idx >= NR_QUEUES || fifo_nr_queued[idx] <= 0)
		return 0;
	fifo = bpf_map_lookup_elem(&queue_arr, &idx);
	if (!fifo || bpf_map_peek_elem(fifo, &key))
		return 0;

	if (queue_by_tid) {
		/* RCU-protected: no reference to drop. */
		p = scx_bpf_tid_to_task(key);
		if (!p)
			return 0;
		at = lat_enqueued_at(p);
	} else {
		p = bpf_task_from_pid(key);
		if (!p)
			return 0;
		at = lat_enqueued_at(p);
		bpf_task_release(p);
	}
	return at && now > at ? now - at : 0;
}

/* -L: whether a task at the head of a FIFO other than @idx waited too long. */
static bool fifos_waited_long(int idx)
{
	u64 now = bpf_ktime_get_ns();
	int i;

	for (i = 0; i < NR_QUEUES; i++)
		if (i != idx && fifo_head_wait(i, now) >= LAT_KEEP_WAIT_NS)
			return true;
	return false;
}

/*
 * -L: the kernel asks for a task before it puts @prev, its slice over, back
 * in its FIFO. If the cursor is at that FIFO with budget left, and the FIFO
 * holds nothing else, @prev is what a pop would find: it runs on, charged to
 * the budget, unless a tick or a kick ended its slice for a task that waits
 * (lat_cut_due()), or a task in another FIFO has waited LAT_KEEP_WAIT_NS.
 * Skipping the FIFO as empty handed a lighter FIFO a turn at every slice end
 * of a nice -20 hog alone on its CPU: beside them, nice 0 hogs took 8% of 4
 * CPUs, where the weights ask for 1.1.
 */
static bool lat_keep_prev(struct cpu_ctx *cpuc, struct task_struct *prev,
			  s32 cpu)
{
	int idx;

	if (!lat_budget_ns || !prev || !cpuc->dsp_cnt)
		return false;
	/* Only ours are QUEUED. */
	if (!(prev->scx.flags & SCX_TASK_QUEUED) || prev->scx.slice)
		return false;
	/* Those go to the shared DSQ or LOWPRI_DSQ, not to a FIFO. */
	if ((prev->flags & PF_KTHREAD) || is_lowpri(prev) || fifo_would_lose(prev))
		return false;
	idx = weight_to_idx(prev->scx.weight);
	if (idx < 0 || idx >= NR_QUEUES || idx != cpuc->dsp_idx)
		return false;
	if (!cid_usable(cpu) || lat_cut_due(prev) || fifos_waited_long(idx))
		return false;

	scx_bpf_task_set_slice(prev, weighted_slice(prev, fifo_slice()));
	cpuc->dsp_cnt--;
	core_sched_requeue(prev);
	__sync_fetch_and_add(&stats.nr_lat_kept, 1);
	return true;
}

/*
 * -H: pull nice -20 tasks out of the shared DSQ into HIGHPRI_DSQ (ordered by
 * arrival), then move them to a local DSQ with SCX_ENQ_PREEMPT: this CPU's
 * when they may run here, else any CPU they may use. Called from dispatch
 * and from the monitor timer. Returns whether a task now waits on this CPU.
 */
static bool dispatch_highpri(bool from_timer)
{
	static u64 highpri_seq;
	s32 this_cpu = current_cpu(), cpu;
	struct task_ctx *tctx;
	struct task_struct *p;
	bool here;

	bpf_for_each(scx_dsq, p, SHARED_DSQ, 0) {
		tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
		if (!tctx || p->scx.weight < HIGHPRI_WEIGHT)
			continue;
		scx_bpf_dsq_move_set_slice(BPF_FOR_EACH_ITER, slice_ns * 2);
		scx_bpf_dsq_move_set_vtime(BPF_FOR_EACH_ITER, highpri_seq++);
		scx_bpf_dsq_move_vtime(BPF_FOR_EACH_ITER, p, HIGHPRI_DSQ, 0);
	}

	bpf_for_each(scx_dsq, p, HIGHPRI_DSQ, 0) {
		here = task_may_run(p, this_cpu);
		cpu = here ? this_cpu : pick_any_cpu(p);
		if (cpu < 0)
			continue;

		if (!scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL_ON | cpu,
				      SCX_ENQ_PREEMPT)) {
			__sync_fetch_and_add(&stats.nr_expedited_lost, 1);
			continue;
		}
		if (from_timer)
			__sync_fetch_and_add(&stats.nr_expedited_from_timer, 1);
		if (cpu != this_cpu) {
			__sync_fetch_and_add(&stats.nr_expedited_remote, 1);
			continue;
		}
		__sync_fetch_and_add(&stats.nr_expedited_local, 1);
		return true;
	}
	return false;
}

/*
 * -l: keep handing kthreadd (PID 2, almost always idle and so off the
 * scheduler) to the local DSQ, which the kernel ignores, so dispatch is
 * called again and again until the kernel gives up on the scheduler.
 */
static bool dispatch_inf_loop(void)
{
	struct task_struct *p;

	if (!dsp_inf_loop_after || stats.nr_dispatched <= dsp_inf_loop_after)
		return false;

	p = bpf_task_from_pid(2);
	if (!p)
		return false;
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
	bpf_task_release(p);
	return true;
}

/* Let the child in @slot dispatch; count it if it found a task. */
static bool sub_dispatch(u32 slot)
{
	u64 cgid;

	slot %= MAX_SUBS;
	cgid = sub_cgroup_ids[slot];
	if (!cgid || !scx_bpf_sub_dispatch(cgid))
		return false;
	__sync_fetch_and_add(&sub_dispatched[slot], 1);
	__sync_fetch_and_add(&stats.nr_sub_dispatched, 1);
	return true;
}

/*
 * Let each sub-scheduler dispatch in turn, starting after the one served
 * last. Returns whether one found a task.
 */
static bool dispatch_subs(void)
{
	static u32 next;	/* shared; a racy start point only spreads turns */
	u32 i, slot;

	for (i = 0; i < MAX_SUBS; i++) {
		slot = (next + i) % MAX_SUBS;
		if (sub_dispatch(slot)) {
			next = slot + 1;
			return true;
		}
	}
	return false;
}

/*
 * Move a task from the shared DSQ to this CPU. Where we hold the CPU only
 * shared, it must go with SCX_ENQ_IMMED, which scx_bpf_dsq_move_to_local()
 * does not take.
 */
static bool move_shared_to_local(s32 cpu)
{
	u64 immed = immed_if_shared(cpu);
	struct task_struct *p;

	if (!immed)
		return scx_bpf_dsq_move_to_local(SHARED_DSQ);
	bpf_for_each(scx_dsq, p, SHARED_DSQ, 0) {
		if (task_may_run(p, cpu) &&
		    scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, immed))
			return true;
	}
	return false;
}

/*
 * Move the task move_popped() just put in @cpu's handoff DSQ to the local
 * DSQ. If its CPU mask has lost @cpu since, it goes on to the shared DSQ,
 * and its own CPU is kicked to take it. Returns whether a task reached the
 * local DSQ.
 */
static bool take_handoff(s32 cpu)
{
	u64 dsq_id = HANDOFF_DSQ + cpu;
	struct task_struct *p;

	if ((u32)cpu >= nr_handoff_dsqs || immed_if_shared(cpu))
		return false;
	/* Flushes this dispatch's inserts first. */
	if (scx_bpf_dsq_move_to_local(dsq_id))
		return true;
	bpf_for_each(scx_dsq, p, dsq_id, 0) {
		if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SHARED_DSQ, 0))
			__sync_fetch_and_add(&stats.nr_mask_lost, 1);
		kick_cpu(task_cpu(p), 0);
	}
	return false;
}

/*
 * cid form: this CPU's dispatch found nothing to run. Without @prev it goes
 * idle; if it was claimed (woken for a task that ran elsewhere), that is no
 * idle transition and ops.update_idle stays silent, so give the claim back.
 * Only the CPU's own dispatch may: a CPU being taken offline still runs its
 * idle task but refuses tasks, which the kernel then runs on the sender's
 * CPU through the global DSQ, ahead of ops.dispatch. Marked idle from
 * outside, it would draw every task whose slice ends, and the shared DSQ
 * would starve until the watchdog ejects us.
 */
static void dispatch_found_nothing(s32 cpu, struct task_struct *prev)
{
	if (!cid_form || prev)
		return;
	set_cid_idle(cpu, true);
	idle_recheck(cpu);
}

/*
 * 7.3: on a cid we gave a child, whole or for its turn of the shared ones,
 * the child dispatches and we run nothing of ours. Returns whether @cpu is
 * such a cid.
 */
static bool dispatch_delegated(s32 cpu, struct task_struct *prev)
{
	u32 i = cpu;
	s32 owner;

	if (i >= MAX_CIDS)
		return false;
	owner = cid_owner[i];
	if (owner == OWNER_SHARED)
		owner = rr_holder();
	if (owner < 0)
		return false;
	if (!sub_dispatch(owner))
		dispatch_found_nothing(cpu, prev);
	return true;
}

/*
 * 7.2 (no capabilities): the children dispatch when we have nothing of our
 * own, as upstream orders it, and also first on every SUB_TURN_NTH dispatch
 * of a CPU. A parent that is never idle (a child killed, its load back on
 * us) otherwise starved the other child until the watchdog ejected it.
 */
enum { SUB_TURN_NTH = 4 };

static bool sub_turn_due(void)
{
	struct cpu_ctx *cpuc;
	u32 zero = 0;

	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	return cpuc && !(++cpuc->sub_turn % SUB_TURN_NTH);
}

/*
 * Whether this dispatch drains the shared DSQ before the FIFOs, as qmap does
 * for the kthreads that wait there. Not while boosted tasks wait in the
 * FIFOs, and not on every other dispatch while a FIFO is full: its overflow
 * cycles through the shared DSQ, finding the FIFO still full each time it
 * comes back, and always drained first, it kept the full FIFO from moving
 * until the watchdog ejected us (hundreds of CPU hogs of one nice level).
 */
static bool shared_first(struct cpu_ctx *cpuc)
{
	if (nr_highpri_queued)
		return false;
	return !fifos_full() || (++cpuc->shared_turn & 1);
}

void BPF_STRUCT_OPS(qmap_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 batch = dsp_batch ?: 1, zero = 0, moved;
	struct cpu_ctx *cpuc;
	bool here = false;
	int i;

	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	if (!cpuc) {
		scx_bpf_error("failed to look up cpu_ctx");
		return;
	}
	/*
	 * Called with the local DSQ empty: what lat_resume() and
	 * lat_wait_local() put there ran.
	 */
	if (lat_budget_ns) {
		cpuc->resumed_pid = 0;
		if ((u32)cpu < MAX_CIDS)
			lat_local_jumps[cpu] = 0;
	}

	if (highpri_boosting && dispatch_highpri(false))
		return;

	if (caps_hier && dispatch_delegated(cpu, prev))
		return;
	if (cid_form && !caps_hier && sub_turn_due() && dispatch_subs())
		return;

	if (shared_first(cpuc) && move_shared_to_local(cpu))
		return;

	if (dispatch_inf_loop())
		return;

	/* Nothing in the FIFOs: spare the walk (most calls, under load). */
	if (!fifos_queued_from(0))
		goto fifos_empty;

	for (i = 0; i < NR_QUEUES; i++) {
		/* Out of budget for this FIFO: move on, 2^idx tasks for the next. */
		if (!cpuc->dsp_cnt) {
			cpuc->dsp_idx = (cpuc->dsp_idx + 1) % NR_QUEUES;
			cpuc->dsp_cnt = 1 << cpuc->dsp_idx;
		}

		moved = drain_fifo(cpuc, cpuc->dsp_idx, batch, cpu, &here);
		if (moved) {
			if (highpri_boosting && dispatch_highpri(false))
				return;
			/*
			 * 7.3, a CPU held shared: the task heads the shared DSQ,
			 * and the kernel calls us again, as the local DSQ is
			 * still empty.
			 */
			if (here && (take_handoff(cpu) || immed_if_shared(cpu)))
				return;
			move_shared_to_local(cpu);
			return;
		}
		if (lat_keep_prev(cpuc, prev, cpu))
			return;
		/* This FIFO is empty: give up its remaining budget. */
		cpuc->dsp_cnt = 0;
	}

fifos_empty:
	/* Anything left in the shared DSQ goes now. */
	if (move_shared_to_local(cpu))
		return;

	/* 7.3's children have cids of their own, where they are dispatched. */
	if (cid_form && !caps_hier && dispatch_subs())
		return;

	/* Nothing queued: @prev keeps running, or the CPU goes idle. */
	timer_check();
	if (!prev) {
		dispatch_found_nothing(cpu, prev);
		return;
	}
	/* -s holds for @prev too, where the kernel would refill SCX_SLICE_DFL. */
	if ((prev->scx.flags & SCX_TASK_QUEUED) && !prev->scx.slice)
		scx_bpf_task_set_slice(prev, weighted_slice(prev, slice_ns));
	core_sched_requeue(prev);
}

/* Performance level for each FIFO's weights: 0, 1/4, ... of full speed. */
static const u32 idx_to_cpuperf_target[NR_QUEUES] = {
	SCX_CPUPERF_ONE * 0 / 4,
	SCX_CPUPERF_ONE * 1 / 4,
	SCX_CPUPERF_ONE * 2 / 4,
	SCX_CPUPERF_ONE * 3 / 4,
	SCX_CPUPERF_ONE * 4 / 4,
};

/*
 * -L: whether a task waits on this CPU's local DSQ that @p, running there
 * over its budget, gives way to: it can run nowhere else. A light @p does
 * not give way to the task it preempted alone (lat_resume()): cut, it went
 * to the tail of its FIFO behind the CPU hogs. At 4 vCPUs on 2 host cores a
 * cyclictest thread often ran past its budget while the host held its vCPU,
 * and was cut for the hog it had preempted at 1.3-1.9% of its switches;
 * most of those waits passed 2 ms.
 */
static bool lat_local_waits(struct cpu_ctx *cpuc, struct task_struct *p)
{
	s32 nr = scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL);

	if (nr <= 0)
		return false;
	return nr > 1 || !cpuc->resumed_pid || lat_busy(p);
}

/*
 * cpuperf demonstration: ask for a CPU speed that follows the running
 * average of the weights of the tasks that run there. With -L, also end the
 * slice of a task over its budget for one waiting on this CPU's local DSQ
 * (lat_local_waits()), or of a CPU hog for one waiting elsewhere
 * (lat_cut_due()).
 */
void BPF_STRUCT_OPS(qmap_tick, struct task_struct *p)
{
	struct cpu_ctx *cpuc;
	u32 zero = 0;
	int idx;

	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	if (!cpuc) {
		scx_bpf_error("failed to look up cpu_ctx");
		return;
	}

	timer_check();
	if (lat_budget_ns) {
		/* What lat_resume() put back on the local DSQ runs now. */
		if (p->pid == cpuc->resumed_pid)
			cpuc->resumed_pid = 0;
		/* lat_busy() last: it reads the task's storage and the clock. */
		if (over_budget(p) &&
		    (lat_local_waits(cpuc, p) || (lat_cut_due(p) && lat_busy(p)))) {
			scx_bpf_task_set_slice(p, 0);
			__sync_fetch_and_add(&stats.nr_lat_yields, 1);
		}
	}

	cpuc->avg_weight = cpuc->avg_weight * 3 / 4 + p->scx.weight / 4;
	idx = weight_to_idx(cpuc->avg_weight);
	if (idx < 0 || idx >= NR_QUEUES)
		return;
	cpuc->cpuperf_target = idx_to_cpuperf_target[idx];
	cpuperf_set(task_cpu(p), cpuc->cpuperf_target);
}

/*
 * How far @p is from the head of its FIFO: lower means it has waited longer.
 * Each FIFO up is dispatched twice as often, so distances are scaled by
 * 2^(4 - idx) (or 2^idx when behind the head) to compare across FIFOs.
 */
static s64 task_qdist(struct task_struct *p)
{
	int idx = weight_to_idx(p->scx.weight);
	struct task_ctx *tctx;
	s64 qdist;

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return 0;

	qdist = tctx->core_sched_seq - core_sched_head_seqs[idx];
	if (qdist >= 0)
		return qdist << (4 - idx);
	return qdist << idx;
}

/* Core scheduling: of two tasks, the one closer to its FIFO's head goes first. */
bool BPF_STRUCT_OPS(qmap_core_sched_before, struct task_struct *a,
		    struct task_struct *b)
{
	return task_qdist(a) < task_qdist(b);
}

s32 BPF_STRUCT_OPS(qmap_init_task, struct task_struct *p,
		   struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	/* The kernel accepts disallow only while it loads the scheduler. */
	if (disallow_tgid && p->tgid == disallow_tgid && !args->fork)
		p->scx.disallow = true;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -ENOMEM;
	tctx->util = LAT_UTIL_ONE / 2;
	return 0;
}

/* A task leaving with a -H or -L mark still counts as queued: uncount it. */
void BPF_STRUCT_OPS(qmap_exit_task, struct task_struct *p,
		    struct scx_exit_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (!tctx)
		return;
	fifo_uncount(tctx);
}

s32 BPF_STRUCT_OPS(qmap_cgroup_init, struct cgroup *cgrp,
		   struct scx_cgroup_init_args *args)
{
	if (print_msgs)
		bpf_printk("CGRP INIT %llu weight=%u period=%lu quota=%ld burst=%lu",
			   cgrp->kn->id, args->weight, args->bw_period_us,
			   args->bw_quota_us, args->bw_burst_us);
	return 0;
}

void BPF_STRUCT_OPS(qmap_cgroup_set_weight, struct cgroup *cgrp, u32 weight)
{
	u64 cgid = cgrp->kn->id;
	u32 i;

	if (print_msgs)
		bpf_printk("CGRP SET %llu weight=%u", cgid, weight);
	if (!caps_hier)
		return;
	/* A child's share follows its cgroup's weight. */
	for (i = 0; i < MAX_SUBS; i++) {
		if (sub_cgroup_ids[i] == cgid) {
			sub_weights[i] = weight;
			repartition();
			return;
		}
	}
}

void BPF_STRUCT_OPS(qmap_cgroup_set_bandwidth, struct cgroup *cgrp,
		    u64 period_us, u64 quota_us, u64 burst_us)
{
	if (print_msgs)
		bpf_printk("CGRP SET %llu period=%lu quota=%ld burst=%lu",
			   cgrp->kn->id, period_us, quota_us, burst_us);
}

/* 7.3: divide the cids again, from the timer (we do not grant here). */
static void hotplug_repartition(void)
{
	if (!caps_hier)
		return;
	part_stale = 1;
	timer_wake();
}

/* Handling hotplug here keeps the kernel from asking for a restart. */
void BPF_STRUCT_OPS(qmap_cpu_online, s32 cpu)
{
	if (cid_form)
		set_cid_online(cpu, true);
	hotplug_repartition();
	__sync_fetch_and_add(&nr_cpus_online, 1);
	__sync_fetch_and_add(&stats.nr_cpu_online, 1);
	if (print_msgs)
		bpf_printk("CPU %d coming online", cpu);
}

void BPF_STRUCT_OPS(qmap_cpu_offline, s32 cpu)
{
	if (cid_form)
		set_cid_online(cpu, false);
	hotplug_repartition();
	__sync_fetch_and_sub(&nr_cpus_online, 1);
	__sync_fetch_and_add(&stats.nr_cpu_offline, 1);
	if (print_msgs)
		bpf_printk("CPU %d going offline", cpu);
}

void BPF_STRUCT_OPS(qmap_dump, struct scx_dump_ctx *dctx)
{
	s32 i;

	if (suppress_dump)
		return;

	bpf_for(i, 0, NR_QUEUES)
		scx_bpf_dump("FIFO[%d] head_seq=%llu tail_seq=%llu\n", i,
			     core_sched_head_seqs[i], core_sched_tail_seqs[i]);
	scx_bpf_dump("shared DSQ: %d queued\n", scx_bpf_dsq_nr_queued(SHARED_DSQ));
}

void BPF_STRUCT_OPS(qmap_dump_task, struct scx_dump_ctx *dctx,
		    struct task_struct *p)
{
	struct task_ctx *tctx;

	if (suppress_dump)
		return;
	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (!tctx)
		return;
	scx_bpf_dump("QMAP: highpri=%d core_sched_seq=%llu\n",
		     tctx->highpri, tctx->core_sched_seq);
}

/* Scheduling policies of the classes above sched_ext. */
#define SCHED_FIFO	1
#define SCHED_RR	2
#define SCHED_DEADLINE	6

static bool is_rt_or_dl(struct task_struct *p)
{
	return p->policy == SCHED_FIFO || p->policy == SCHED_RR ||
	       p->policy == SCHED_DEADLINE;
}

/*
 * --remote-reenq: ask the kernel to hand the tasks waiting in @cpu's local
 * DSQ back through ops.enqueue (reason KFUNC), where they find another CPU.
 */
static void reenq_local_dsq(s32 cpu)
{
	if (scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL_ON | cpu) <= 0)
		return;
	scx_bpf_dsq_reenq(SCX_DSQ_LOCAL_ON | cpu, 0);
	__sync_fetch_and_add(&stats.remote_reenq_requests, 1);
}

/*
 * Track which CPUs an RT/DL task holds. With --remote-reenq, the CPU's local
 * DSQ is handed back right when such a task takes it, since its tasks would
 * otherwise wait behind the RT task for as long as it runs.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(qmap_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct cpu_ctx *cpuc;
	u32 zero = 0;
	bool rt_busy;

	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	if (!cpuc)
		return 0;
	rt_busy = is_rt_or_dl(next);
	if (rt_busy == cpuc->rt_busy)
		return 0;
	cpuc->rt_busy = rt_busy;
	__sync_fetch_and_add(&nr_rt_busy, rt_busy ? 1 : -1);
	if (remote_reenq && rt_busy) {
		reenq_local_dsq(current_cpu());
		timer_wake();
	}
	return 0;
}

/*
 * --remote-reenq, from the other side: tasks dispatched to a CPU's local DSQ
 * after an RT task took it would wait there too. The 10 ms timer, running on
 * whichever CPU, hands those back.
 */
static void reenq_rt_busy_cpus(void)
{
	u32 nr_cpus = scx_bpf_nr_cpu_ids(), zero = 0;
	struct cpu_ctx *cpuc;
	s32 kcpu;

	bpf_for(kcpu, 0, nr_cpus) {
		cpuc = bpf_map_lookup_percpu_elem(&cpu_ctx_stor, &zero, kcpu);
		if (cpuc && cpuc->rt_busy)
			reenq_local_dsq(form_cpu(kcpu));
	}
}

/*
 * Every 10 ms, ask the kernel to hand the parked low-priority tasks back
 * through ops.enqueue (reason KFUNC), where they go to an idle CPU or the
 * shared DSQ: nice 19 tasks run, but only in the gaps. Also the sweep of
 * --remote-reenq, -L's look at the FIFOs' heads, and 7.3's partition turns
 * and stranded tasks. With none of that left, it sleeps (timer_wake()).
 */
static int lowpri_timerfn(void *map, int *key, struct bpf_timer *timer)
{
	if (scx_bpf_dsq_nr_queued(LOWPRI_DSQ) > 0) {
		scx_bpf_dsq_reenq(LOWPRI_DSQ, 0);
		__sync_fetch_and_add(&stats.lowpri_reenq_requests, 1);
	}
	if (remote_reenq)
		reenq_rt_busy_cpus();
	if (lat_budget_ns)
		lat_fifos_starved = fifos_waited_long(-1);
	if (caps_hier) {
		caps_tick();
		rescue_stranded();
	}
	__sync_fetch_and_add(&stats.nr_timer_runs, 1);
	if (!timer_has_work()) {
		lat_fifos_starved = false;
		/* xchg, fully ordered: work queued from here on sees it asleep. */
		__sync_lock_test_and_set(&timer_asleep, 1);
		if (!timer_has_work() ||
		    __sync_val_compare_and_swap(&timer_asleep, 1, 0) != 1)
			return 0;
	}
	bpf_timer_start(timer, LOWPRI_INTV_NS, 0);
	return 0;
}

/* Aggregate the CPUs' current and target performance levels. */
static void monitor_cpuperf(void)
{
	u64 cap_sum = 0, cur_sum = 0, cur_min = SCX_CPUPERF_ONE, cur_max = 0;
	u64 target_sum = 0, target_min = SCX_CPUPERF_ONE, target_max = 0;
	u32 nr_cpus = scx_bpf_nr_cpu_ids(), zero = 0;
	struct cpu_ctx *cpuc;
	s32 kcpu;

	bpf_for(kcpu, 0, nr_cpus) {
		u32 cap = cpuperf_cap(form_cpu(kcpu));
		u32 cur = cpuperf_cur(form_cpu(kcpu));

		cpuc = bpf_map_lookup_percpu_elem(&cpu_ctx_stor, &zero, kcpu);
		if (!cpuc)
			continue;
		cur_min = cur < cur_min ? cur : cur_min;
		cur_max = cur > cur_max ? cur : cur_max;
		cur_sum += (u64)cur * cap / SCX_CPUPERF_ONE;
		cap_sum += cap;
		target_sum += cpuc->cpuperf_target;
		target_min = cpuc->cpuperf_target < target_min ? cpuc->cpuperf_target : target_min;
		target_max = cpuc->cpuperf_target > target_max ? cpuc->cpuperf_target : target_max;
	}
	/* No per-CPU counter here: it would keep the verifier from converging. */
	if (!nr_cpus || !cap_sum)
		return;

	stats.cpuperf_min = cur_min;
	stats.cpuperf_avg = cur_sum * SCX_CPUPERF_ONE / cap_sum;
	stats.cpuperf_max = cur_max;
	stats.cpuperf_target_min = target_min;
	stats.cpuperf_target_avg = target_sum / nr_cpus;
	stats.cpuperf_target_max = target_max;
}

/* -P: record the shared DSQ's length and its first pids for the loader. */
static void snapshot_shared_dsq(void)
{
	struct task_struct *p;
	s32 i, n = 0;

	shared_dsq_nr = scx_bpf_dsq_nr_queued(SHARED_DSQ);
	bpf_for_each(scx_dsq, p, SHARED_DSQ, 0) {
		if (n >= NR_DSQ_SNAPSHOT)
			break;
		shared_dsq_pids[n++] = p->pid;
	}
	bpf_for(i, n, NR_DSQ_SNAPSHOT)
		shared_dsq_pids[i] = 0;
}

static int monitor_timerfn(void *map, int *key, struct bpf_timer *timer)
{
	bpf_rcu_read_lock();
	if (highpri_boosting)
		dispatch_highpri(true);
	if (print_dsqs_and_events)
		snapshot_shared_dsq();
	bpf_rcu_read_unlock();

	monitor_cpuperf();

	bpf_timer_start(timer, ONE_SEC_IN_NS, 0);
	return 0;
}

static s32 start_timer(void *map, int (*fn)(void *, int *, struct bpf_timer *),
		       u64 nsecs)
{
	struct bpf_timer *timer;
	u32 key = 0;

	timer = bpf_map_lookup_elem(map, &key);
	if (!timer)
		return -ESRCH;
	bpf_timer_init(timer, map, CLOCK_MONOTONIC);
	bpf_timer_set_callback(timer, fn);
	return bpf_timer_start(timer, nsecs, 0);
}

static s32 create_dsqs_and_timers(void)
{
	u32 cpu;
	s32 ret;

	nr_cpus_online = count_online_cpus();

	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(HIGHPRI_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(LOWPRI_DSQ, -1);
	if (ret)
		return ret;
	bpf_for(cpu, 0, nr_form_cpus()) {
		ret = scx_bpf_create_dsq(HANDOFF_DSQ + cpu, -1);
		if (ret)
			return ret;
		nr_handoff_dsqs = cpu + 1;
	}

	ret = start_timer(&lowpri_timer, lowpri_timerfn, LOWPRI_INTV_NS);
	if (ret)
		return ret;
	return start_timer(&monitor_timer, monitor_timerfn, ONE_SEC_IN_NS);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(qmap_init)
{
	return create_dsqs_and_timers();
}

/* The arena reference here is the cid form's use of the arena. */
s32 BPF_STRUCT_OPS_SLEEPABLE(qmap_cid_init)
{
	s32 cid;

	TOUCH_ARENA();
	bpf_for(cid, 0, scx_bpf_nr_online_cids())
		set_cid_online(cid, true);
	bpf_for(cid, 0, MAX_CIDS)
		cid_owner[cid] = OWNER_NONE;
	/* The root holds every cid whole; a child waits for its grants. */
	if (caps_hier && !is_sub) {
		bpf_for(cid, 0, nr_form_cpus()) {
			set_cid_bit(whole_cids, cid, true);
			set_cid_bit(avail_cids, cid, true);
		}
		repartition();
	}
	return create_dsqs_and_timers();
}

void BPF_STRUCT_OPS(qmap_exit, struct scx_exit_info *ei)
{
	s64 kind;

	EXIT_INFO_RECORD(uei, ei);
	kind = ei->kind;
	bpf_ringbuf_output(&exit_ring, &kind, sizeof(kind), BPF_RB_FORCE_WAKEUP);
}

/* cpu.weight of cgroup @cgid (100 when it cannot be read). */
static u32 cgroup_weight(u64 cgid)
{
	struct cgroup_subsys_state *css;
	struct task_group *tg;
	struct cgroup *cgrp;
	u32 weight;

	cgrp = bpf_cgroup_from_id(cgid);
	if (!cgrp)
		return DFL_WEIGHT;
	css = BPF_CORE_READ(cgrp, subsys[cpu_cgrp_id]);
	tg = container_of(css, struct task_group, css);
	weight = css ? BPF_CORE_READ(tg, scx.weight) : 0;
	bpf_cgroup_release(cgrp);
	return weight ?: DFL_WEIGHT;
}

/* cid form only: a sub-scheduler attaches on a cgroup below ours. */
s32 BPF_STRUCT_OPS(qmap_cid_sub_attach, struct scx_sub_attach_args *args)
{
	u64 cgid = args->ops->sub_cgroup_id;
	u32 i;

	for (i = 0; i < MAX_SUBS; i++)
		if (__sync_val_compare_and_swap(&sub_cgroup_ids[i], 0, cgid) == 0)
			break;
	if (i >= MAX_SUBS)
		return -ENOSPC;
	sub_dispatched[i] = 0;
	sub_weights[i] = caps_hier ? cgroup_weight(cgid) : DFL_WEIGHT;
	repartition();
	/* The shared cids' turns now pass between us and the child. */
	timer_wake();
	if (print_msgs)
		bpf_printk("SUB ATTACH %llu %s", cgid, args->cgroup_path);
	return 0;
}

/* What a leaving child held goes with it: forget our grants before its slot. */
static void forget_grants(u32 slot)
{
	s32 cid;

	bpf_for(cid, 0, MAX_CIDS) {
		if (granted_whole[cid] == slot + 1)
			granted_whole[cid] = 0;
		if (granted_shared[cid] == slot + 1)
			granted_shared[cid] = 0;
	}
}

void BPF_STRUCT_OPS(qmap_cid_sub_detach, struct scx_sub_detach_args *args)
{
	u64 cgid = args->ops->sub_cgroup_id;
	u32 i;

	for (i = 0; i < MAX_SUBS; i++)
		if (sub_cgroup_ids[i] == cgid)
			break;
	if (i >= MAX_SUBS)
		return;
	if (caps_hier)
		forget_grants(i);
	sub_weights[i] = 0;
	sub_cgroup_ids[i] = 0;
	repartition();
	if (print_msgs)
		bpf_printk("SUB DETACH %llu %s", cgid, args->cgroup_path);
}

/*
 * 7.3: our parent granted or revoked capabilities. They take effect on each
 * CPU later, which ops.sub_ecaps_updated reports; repartition then.
 */
void BPF_STRUCT_OPS(qmap_cid_sub_caps_updated, const struct scx_cmask *cmask,
		    u64 caps)
{
	TOUCH_ARENA();	/* the kernel wants it: @cmask is an arena pointer */
	part_stale = 1;
	timer_wake();
}

/* 7.3: what we hold on @cid changed, @before to @after. */
void BPF_STRUCT_OPS(qmap_cid_sub_ecaps_updated, s32 cid, u64 before, u64 after)
{
	set_cid_bit(whole_cids, cid, after & SCX_CAP_ENQ);
	set_cid_bit(avail_cids, cid, after & SCX_CAP_ENQ_IMMED);
	part_stale = 1;
	timer_wake();
}

/* cpu form: the kernel keeps the idle CPUs (SCX_OPS_KEEP_BUILTIN_IDLE). */
void BPF_STRUCT_OPS(qmap_update_idle, s32 cpu, bool idle)
{
	if (idle)
		went_idle(cpu);
}

/* cid form: keep idle_cids. */
void BPF_STRUCT_OPS(qmap_cid_update_idle, s32 cid, bool idle)
{
	set_cid_idle(cid, idle);
	if (idle)
		went_idle(cid);
}

SCX_OPS_DEFINE(qmap_ops,
	       .select_cpu		= (void *)qmap_select_cpu,
	       .enqueue			= (void *)qmap_enqueue,
	       .dequeue			= (void *)qmap_dequeue,
	       .dispatch		= (void *)qmap_dispatch,
	       .tick			= (void *)qmap_tick,
	       .core_sched_before	= (void *)qmap_core_sched_before,
	       .update_idle		= (void *)qmap_update_idle,
	       .init_task		= (void *)qmap_init_task,
	       .exit_task		= (void *)qmap_exit_task,
	       .cgroup_init		= (void *)qmap_cgroup_init,
	       .cgroup_set_weight	= (void *)qmap_cgroup_set_weight,
	       .cgroup_set_bandwidth	= (void *)qmap_cgroup_set_bandwidth,
	       .cpu_online		= (void *)qmap_cpu_online,
	       .cpu_offline		= (void *)qmap_cpu_offline,
	       .dump			= (void *)qmap_dump,
	       .dump_task		= (void *)qmap_dump_task,
	       .init			= (void *)qmap_init,
	       .exit			= (void *)qmap_exit,
	       .flags			= SCX_OPS_ENQ_EXITING | SCX_OPS_KEEP_BUILTIN_IDLE,
	       .timeout_ms		= 5000U,
	       .name			= "qmap");

/* The cid form's programs: the callbacks above, in cid-form programs. */
BPF_STRUCT_OPS_TWIN(qmap_select_cpu, qmap_select_cid, struct task_struct *p, s32 prev_cpu, u64 wake_flags);
BPF_STRUCT_OPS_TWIN(qmap_enqueue, qmap_cid_enqueue, struct task_struct *p, u64 enq_flags);
BPF_STRUCT_OPS_TWIN(qmap_dequeue, qmap_cid_dequeue, struct task_struct *p, u64 deq_flags);
BPF_STRUCT_OPS_TWIN(qmap_dispatch, qmap_cid_dispatch, s32 cpu, struct task_struct *prev);
BPF_STRUCT_OPS_TWIN(qmap_tick, qmap_cid_tick, struct task_struct *p);
BPF_STRUCT_OPS_TWIN(qmap_core_sched_before, qmap_cid_core_sched_before, struct task_struct *a, struct task_struct *b);
BPF_STRUCT_OPS_TWIN(qmap_init_task, qmap_cid_init_task, struct task_struct *p, struct scx_init_task_args *args);
BPF_STRUCT_OPS_TWIN(qmap_exit_task, qmap_cid_exit_task, struct task_struct *p, struct scx_exit_task_args *args);
BPF_STRUCT_OPS_TWIN(qmap_cgroup_init, qmap_cid_cgroup_init, struct cgroup *cgrp, struct scx_cgroup_init_args *args);
BPF_STRUCT_OPS_TWIN(qmap_cgroup_set_weight, qmap_cid_cgroup_set_weight, struct cgroup *cgrp, u32 weight);
BPF_STRUCT_OPS_TWIN(qmap_cgroup_set_bandwidth, qmap_cid_cgroup_set_bandwidth, struct cgroup *cgrp, u64 period_us, u64 quota_us, u64 burst_us);
BPF_STRUCT_OPS_TWIN(qmap_cpu_online, qmap_cid_online, s32 cpu);
BPF_STRUCT_OPS_TWIN(qmap_cpu_offline, qmap_cid_offline, s32 cpu);
BPF_STRUCT_OPS_TWIN(qmap_dump, qmap_cid_dump, struct scx_dump_ctx *dctx);
BPF_STRUCT_OPS_TWIN(qmap_dump_task, qmap_cid_dump_task, struct scx_dump_ctx *dctx, struct task_struct *p);
BPF_STRUCT_OPS_TWIN(qmap_exit, qmap_cid_exit, struct scx_exit_info *ei);

SCX_OPS_CID_DEFINE(qmap_cid_ops,
	       .select_cid		= (void *)qmap_select_cid,
	       .enqueue			= (void *)qmap_cid_enqueue,
	       .dequeue			= (void *)qmap_cid_dequeue,
	       .dispatch		= (void *)qmap_cid_dispatch,
	       .tick			= (void *)qmap_cid_tick,
	       .core_sched_before	= (void *)qmap_cid_core_sched_before,
	       .update_idle		= (void *)qmap_cid_update_idle,
	       .init_task		= (void *)qmap_cid_init_task,
	       .exit_task		= (void *)qmap_cid_exit_task,
	       .cgroup_init		= (void *)qmap_cid_cgroup_init,
	       .cgroup_set_weight	= (void *)qmap_cid_cgroup_set_weight,
	       .cgroup_set_bandwidth	= (void *)qmap_cid_cgroup_set_bandwidth,
	       .sub_attach		= (void *)qmap_cid_sub_attach,
	       .sub_detach		= (void *)qmap_cid_sub_detach,
	       .sub_caps_updated	= (void *)qmap_cid_sub_caps_updated,
	       .sub_ecaps_updated	= (void *)qmap_cid_sub_ecaps_updated,
	       .cid_online		= (void *)qmap_cid_online,
	       .cid_offline		= (void *)qmap_cid_offline,
	       .dump			= (void *)qmap_cid_dump,
	       .dump_task		= (void *)qmap_cid_dump_task,
	       .init			= (void *)qmap_cid_init,
	       .exit			= (void *)qmap_cid_exit,
	       .flags			= SCX_OPS_ENQ_EXITING,
	       .timeout_ms		= 5000U,
	       .name			= "qmap");
