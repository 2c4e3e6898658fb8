// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * scx-qmap-go: a port of the kernel's classic scx_qmap scheduler.
 *
 * Runnable tasks are kept, by PID, in five global FIFOs chosen by their
 * weight. Each CPU's dispatch walks the FIFOs round-robin, taking 1, 2, 4, 8
 * and 16 tasks from queue 0..4 in turn, so heavier tasks get proportionally
 * more dispatches. Tasks that find an idle CPU on wakeup skip the FIFOs and go
 * straight to that CPU's local DSQ. Everything dispatched out of a FIFO goes
 * through the shared DSQ, which any CPU the task may run on can consume.
 *
 * This is a demonstration scheduler: the FIFOs are global and never
 * load-balanced by locality. It exists to exercise the sched_ext interfaces.
 */
#include "scx_qmap_go.bpf.h"

char _license[] SEC("license") = "GPL";

enum consts {
	NR_QUEUES	= 5,
	QUEUE_DEPTH	= 4096,
	SHARED_DSQ	= 0,
	LOWPRI_DSQ	= 2,
	/* How often the low-priority DSQ is handed back through ops.enqueue. */
	LOWPRI_INTV_NS	= 10 * 1000 * 1000,
	/* Weight below which a user task is parked in LOWPRI_DSQ (nice 19 is 1). */
	LOWPRI_WEIGHT	= 2,
};

#define CLOCK_MONOTONIC 1

/* Tunables: written by the loader before load. */

/* Slice given to every task; the loader sets it from -s or SCX_SLICE_DFL. */
const volatile u64 slice_ns;
/* How many tasks one ops.dispatch call moves out of the FIFOs at most. */
const volatile u32 dsp_batch;
/* A tgid whose tasks are refused by ops.init_task (0: none). */
const volatile s32 disallow_tgid;
/* Leave the debug dump callbacks quiet. */
const volatile bool suppress_dump;

/*
 * Counters, read by the loader through the mmapped .bss. Updated with atomic
 * adds because every CPU writes them.
 */
u64 nr_enqueued;	/* tasks pushed onto a FIFO by ops.enqueue */
u64 nr_dispatched;	/* tasks moved from a FIFO to the shared DSQ */
u64 nr_dequeued;	/* ops.dequeue calls: tasks taken back from us */
u64 nr_ddsp_from_enq;	/* direct dispatches decided in ops.enqueue */
u64 nr_ddsp_from_select; /* direct dispatches decided in ops.select_cpu */
u64 nr_overflow;	/* FIFO full: task went to the shared DSQ instead */
u64 nr_core_sched_execed; /* dequeues forced by core scheduling */
u64 nr_lowpri_queued;	/* nice 19 user tasks parked in LOWPRI_DSQ */

/*
 * Reenqueues: tasks the kernel handed back to ops.enqueue with SCX_ENQ_REENQ,
 * in total, on CPU 0, and by p->scx.flags' reason (mask and values come from
 * the running kernel's BTF: 7.2 has KFUNC/IMMED/PREEMPTED, 7.3 adds CAP).
 */
u64 reenq_total;
u64 reenq_cpu0;
u64 reenq_kfunc;	/* asked for by scx_bpf_dsq_reenq() */
u64 reenq_immed;	/* an SCX_ENQ_IMMED insert could not run at once */
u64 reenq_preempted;	/* an IMMED task lost its CPU to a higher class */
u64 reenq_cap;		/* a sub-scheduler capability was missing (7.3+) */
u64 reenq_other;	/* a reason this build does not know */
/* scx_bpf_dsq_reenq() calls on LOWPRI_DSQ by the 10 ms timer. */
u64 lowpri_reenq_requests;

/*
 * Core-scheduling order: each FIFO hands out a sequence number per enqueue
 * (tail) and records the number of the last task dispatched out of it (head).
 * A task's distance from its queue's head tells how long it has waited.
 */
u64 core_sched_head_seqs[NR_QUEUES];
u64 core_sched_tail_seqs[NR_QUEUES];

EXIT_INFO_DEFINE(uei);

struct fifo {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, QUEUE_DEPTH);
	__type(value, u32);
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
	bool force_local;	/* select_cpu found an idle CPU: dispatch there */
	u64 core_sched_seq;	/* position in its FIFO, for core_sched_before */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctx_stor SEC(".maps");

/* Drives the low-priority reenqueues. */
struct lowpri_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct lowpri_timer);
} lowpri_timer SEC(".maps");

/* Per-CPU dispatch cursor: which FIFO, and how many more to take from it. */
struct cpu_ctx {
	u64 dsp_idx;
	u64 dsp_cnt;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctx_stor SEC(".maps");

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

/* An idle CPU @p can run on right away, preferring @prev_cpu; -1 if none. */
static s32 pick_direct_dispatch_cpu(struct task_struct *p, s32 prev_cpu)
{
	s32 cpu;

	if (p->nr_cpus_allowed == 1 || scx_bpf_test_and_clear_cpu_idle(prev_cpu))
		return prev_cpu;

	cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (cpu >= 0)
		return cpu;
	return -1;
}

s32 BPF_STRUCT_OPS(qmap_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
{
	struct task_ctx *tctx;
	s32 cpu;

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return -ESRCH;

	cpu = pick_direct_dispatch_cpu(p, prev_cpu);
	if (cpu < 0)
		return prev_cpu;

	tctx->force_local = true;
	return cpu;
}

/* Queue @p on a FIFO; falls back to the shared DSQ when the FIFO is full. */
static void fifo_enqueue(struct task_struct *p, int idx, u64 enq_flags)
{
	u32 pid = p->pid;
	void *fifo;

	fifo = bpf_map_lookup_elem(&queue_arr, &idx);
	if (!fifo) {
		scx_bpf_error("failed to find FIFO %d", idx);
		return;
	}

	if (bpf_map_push_elem(fifo, &pid, 0)) {
		__sync_fetch_and_add(&nr_overflow, 1);
		scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, enq_flags);
		return;
	}

	__sync_fetch_and_add(&nr_enqueued, 1);
}

/* Count a reenqueue by the reason the kernel gave in p->scx.flags. */
static void account_reenq(struct task_struct *p)
{
	u64 reason = p->scx.flags & SCX_TASK_REENQ_REASON_MASK;

	__sync_fetch_and_add(&reenq_total, 1);
	if (scx_bpf_task_cpu(p) == 0)
		__sync_fetch_and_add(&reenq_cpu0, 1);

	if (reason == SCX_TASK_REENQ_KFUNC)
		__sync_fetch_and_add(&reenq_kfunc, 1);
	else if (reason == SCX_TASK_REENQ_IMMED)
		__sync_fetch_and_add(&reenq_immed, 1);
	else if (reason == SCX_TASK_REENQ_PREEMPTED)
		__sync_fetch_and_add(&reenq_preempted, 1);
	else if (SCX_TASK_REENQ_CAP && reason == SCX_TASK_REENQ_CAP)
		__sync_fetch_and_add(&reenq_cap, 1);
	else
		__sync_fetch_and_add(&reenq_other, 1);
}

/*
 * A reenqueued task should run soon, elsewhere if its CPU is taken: an idle
 * CPU if there is one, else the shared DSQ, which every CPU drains first.
 * It keeps the slice it had left (slice 0 keeps p->scx.slice).
 */
static void enqueue_reenqueued(struct task_struct *p, u64 enq_flags)
{
	u64 slice = p->scx.slice ? 0 : slice_ns;
	s32 cpu;

	cpu = pick_direct_dispatch_cpu(p, scx_bpf_task_cpu(p));
	if (cpu >= 0) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, enq_flags);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	scx_bpf_dsq_insert(p, SHARED_DSQ, slice, enq_flags);
	cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

static bool is_lowpri(struct task_struct *p)
{
	return p->scx.weight < LOWPRI_WEIGHT && !(p->flags & PF_KTHREAD);
}

void BPF_STRUCT_OPS(qmap_enqueue, struct task_struct *p, u64 enq_flags)
{
	int idx = weight_to_idx(p->scx.weight);
	struct task_ctx *tctx;
	s32 cpu;

	if (enq_flags & SCX_ENQ_REENQ)
		account_reenq(p);

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;

	/* Every enqueue takes a place in its FIFO's core-sched order. */
	tctx->core_sched_seq = core_sched_tail_seqs[idx]++;

	if (tctx->force_local) {
		tctx->force_local = false;
		__sync_fetch_and_add(&nr_ddsp_from_select, 1);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, enq_flags);
		return;
	}

	if (enq_flags & SCX_ENQ_REENQ) {
		enqueue_reenqueued(p, enq_flags);
		return;
	}

	/*
	 * Nice 19 user tasks wait in LOWPRI_DSQ, which dispatch never drains:
	 * they run only when lowpri_timerfn() hands them back.
	 */
	if (is_lowpri(p)) {
		__sync_fetch_and_add(&nr_lowpri_queued, 1);
		scx_bpf_dsq_insert(p, LOWPRI_DSQ, slice_ns, enq_flags);
		return;
	}

	/* ops.select_cpu was skipped (e.g. not a wakeup): look for idle here. */
	if (!(enq_flags & SCX_ENQ_CPU_SELECTED)) {
		cpu = pick_direct_dispatch_cpu(p, scx_bpf_task_cpu(p));
		if (cpu >= 0) {
			__sync_fetch_and_add(&nr_ddsp_from_enq, 1);
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice_ns,
					   enq_flags);
			return;
		}
	}

	fifo_enqueue(p, idx, enq_flags);
}

void BPF_STRUCT_OPS(qmap_dequeue, struct task_struct *p, u64 deq_flags)
{
	__sync_fetch_and_add(&nr_dequeued, 1);
	if (deq_flags & SCX_DEQ_CORE_SCHED_EXEC)
		__sync_fetch_and_add(&nr_core_sched_execed, 1);
}

static void update_core_sched_head_seq(struct task_struct *p)
{
	int idx = weight_to_idx(p->scx.weight);
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctx_stor, p, 0, 0);
	if (tctx)
		core_sched_head_seqs[idx] = tctx->core_sched_seq;
}

/*
 * Move up to @batch tasks from FIFO @idx to the shared DSQ, charging them to
 * @cpuc's round-robin budget. Returns how many were moved.
 */
static u32 drain_fifo(struct cpu_ctx *cpuc, int idx, u32 batch)
{
	struct task_struct *p;
	u32 moved = 0, pid;
	void *fifo;

	fifo = bpf_map_lookup_elem(&queue_arr, &idx);
	if (!fifo) {
		scx_bpf_error("failed to find FIFO %d", idx);
		return 0;
	}

	bpf_repeat(QUEUE_DEPTH) {
		if (moved >= batch || !cpuc->dsp_cnt || !scx_bpf_dispatch_nr_slots())
			break;
		if (bpf_map_pop_elem(fifo, &pid))
			break;

		/* The task may have exited since it was queued. */
		p = bpf_task_from_pid(pid);
		if (!p)
			continue;

		update_core_sched_head_seq(p);
		__sync_fetch_and_add(&nr_dispatched, 1);
		scx_bpf_dsq_insert(p, SHARED_DSQ, slice_ns, 0);
		bpf_task_release(p);
		moved++;
		cpuc->dsp_cnt--;
	}
	return moved;
}

void BPF_STRUCT_OPS(qmap_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 batch = dsp_batch ?: 1, zero = 0, moved;
	struct task_ctx *tctx;
	struct cpu_ctx *cpuc;
	int i;

	if (scx_bpf_dsq_move_to_local(SHARED_DSQ))
		return;

	cpuc = bpf_map_lookup_elem(&cpu_ctx_stor, &zero);
	if (!cpuc) {
		scx_bpf_error("failed to look up cpu_ctx");
		return;
	}

	for (i = 0; i < NR_QUEUES; i++) {
		/* Out of budget for this FIFO: move on, 2^idx tasks for the next. */
		if (!cpuc->dsp_cnt) {
			cpuc->dsp_idx = (cpuc->dsp_idx + 1) % NR_QUEUES;
			cpuc->dsp_cnt = 1 << cpuc->dsp_idx;
		}

		moved = drain_fifo(cpuc, cpuc->dsp_idx, batch);
		if (moved) {
			scx_bpf_dsq_move_to_local(SHARED_DSQ);
			return;
		}
		/* This FIFO is empty: give up its remaining budget. */
		cpuc->dsp_cnt = 0;
	}

	/*
	 * Nothing queued: @prev keeps running. Give it a new place in its
	 * FIFO's core-sched order as if it had been enqueued and dispatched.
	 */
	if (!prev)
		return;
	tctx = bpf_task_storage_get(&task_ctx_stor, prev, 0, 0);
	if (tctx)
		tctx->core_sched_seq =
			core_sched_tail_seqs[weight_to_idx(prev->scx.weight)]++;
}

/* How long @p has waited in its FIFO, in enqueues since it was queued. */
static s64 task_qdist(struct task_struct *p)
{
	int idx = weight_to_idx(p->scx.weight);
	struct task_ctx *tctx;
	s64 qdist;

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return 0;

	qdist = tctx->core_sched_seq - core_sched_head_seqs[idx];
	/* Heavier queues are drained more often: scale their wait up. */
	if (qdist >= 0)
		return qdist * (NR_QUEUES - idx);
	return qdist;
}

/* Core scheduling: the task that has waited longer in its FIFO goes first. */
bool BPF_STRUCT_OPS(qmap_core_sched_before, struct task_struct *a,
		    struct task_struct *b)
{
	return task_qdist(a) > task_qdist(b);
}

s32 BPF_STRUCT_OPS(qmap_init_task, struct task_struct *p,
		   struct scx_init_task_args *args)
{
	if (disallow_tgid && p->tgid == disallow_tgid)
		p->scx.disallow = true;

	if (!bpf_task_storage_get(&task_ctx_stor, p, 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
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
	scx_bpf_dump("QMAP: force_local=%d core_sched_seq=%llu\n",
		     tctx->force_local, tctx->core_sched_seq);
}

/*
 * Every 10 ms, ask the kernel to hand the parked low-priority tasks back
 * through ops.enqueue (reason KFUNC), where they go to an idle CPU or the
 * shared DSQ: nice 19 tasks run, but only in the gaps.
 */
static int lowpri_timerfn(void *map, int *key, struct bpf_timer *timer)
{
	if (scx_bpf_dsq_nr_queued(LOWPRI_DSQ) > 0) {
		scx_bpf_dsq_reenq(LOWPRI_DSQ, 0);
		__sync_fetch_and_add(&lowpri_reenq_requests, 1);
	}
	bpf_timer_start(timer, LOWPRI_INTV_NS, 0);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(qmap_init)
{
	struct bpf_timer *timer;
	u32 key = 0;
	s32 ret;

	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(LOWPRI_DSQ, -1);
	if (ret)
		return ret;

	timer = bpf_map_lookup_elem(&lowpri_timer, &key);
	if (!timer)
		return -ESRCH;
	bpf_timer_init(timer, &lowpri_timer, CLOCK_MONOTONIC);
	bpf_timer_set_callback(timer, lowpri_timerfn);
	return bpf_timer_start(timer, LOWPRI_INTV_NS, 0);
}

void BPF_STRUCT_OPS(qmap_exit, struct scx_exit_info *ei)
{
	EXIT_INFO_RECORD(uei, ei);
}

SCX_OPS_DEFINE(qmap_ops,
	       .select_cpu		= (void *)qmap_select_cpu,
	       .enqueue			= (void *)qmap_enqueue,
	       .dequeue			= (void *)qmap_dequeue,
	       .dispatch		= (void *)qmap_dispatch,
	       .core_sched_before	= (void *)qmap_core_sched_before,
	       .init_task		= (void *)qmap_init_task,
	       .dump			= (void *)qmap_dump,
	       .dump_task		= (void *)qmap_dump_task,
	       .init			= (void *)qmap_init,
	       .exit			= (void *)qmap_exit,
	       .flags			= SCX_OPS_ENQ_EXITING,
	       .timeout_ms		= 5000U,
	       .name			= "qmap");
