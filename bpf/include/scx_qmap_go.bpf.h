/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The project's own BPF header for sched_ext schedulers: struct_ops glue,
 * error/exit helpers, load-time enum values and exit-info recording.
 *
 * It builds on vmlinux.h (generated from the 7.2 kernel's BTF, kfunc
 * prototypes included) and on libbpf's bpf_helpers.h.
 */
#ifndef __SCX_QMAP_GO_BPF_H
#define __SCX_QMAP_GO_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#ifndef ENOMEM
#define ENOMEM 12
#endif
#ifndef ENOENT
#define ENOENT 2
#endif
#ifndef ESRCH
#define ESRCH 3
#endif
#ifndef ENOSPC
#define ENOSPC 28
#endif
#ifndef EINVAL
#define EINVAL 22
#endif

#define PF_IDLE		0x00000002
#define PF_KTHREAD	0x00200000
#define PF_EXITING	0x00000004

#define BPF_STRUCT_OPS(name, args...) \
	SEC("struct_ops/" #name) BPF_PROG(name, ##args)

#define BPF_STRUCT_OPS_SLEEPABLE(name, args...) \
	SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

/* cilium/ebpf loads only the auto-attaching ".struct_ops.link" flavour. */
#define SCX_OPS_DEFINE(name, ...) \
	SEC(".struct_ops.link") struct sched_ext_ops name = { __VA_ARGS__ }

/*
 * The cid form (7.2+): CPUs named by cid; needs a BPF arena map. vmlinux.h
 * is made from 7.2's BTF, so the object declares the members it sets itself,
 * 7.3's among them; the loader loads it as the kernel's sched_ext_ops_cid,
 * matching members by name and dropping those the kernel lacks.
 */
struct sched_ext_ops_cid___qmap {
	s32 (*select_cid)(struct task_struct *, s32, u64);
	void (*enqueue)(struct task_struct *, u64);
	void (*dequeue)(struct task_struct *, u64);
	void (*dispatch)(s32, struct task_struct *);
	void (*tick)(struct task_struct *);
	bool (*core_sched_before)(struct task_struct *, struct task_struct *);
	void (*update_idle)(s32, bool);
	s32 (*init_task)(struct task_struct *, struct scx_init_task_args *);
	void (*exit_task)(struct task_struct *, struct scx_exit_task_args *);
	void (*dump)(struct scx_dump_ctx *);
	void (*dump_task)(struct scx_dump_ctx *, struct task_struct *);
	/* 7.3 calls the cgroup callbacks cpuctl_*. */
	s32 (*cgroup_init)(struct cgroup *, struct scx_cgroup_init_args *);
	void (*cgroup_set_weight)(struct cgroup *, u32);
	void (*cgroup_set_bandwidth)(struct cgroup *, u64, u64, u64);
	s32 (*sub_attach)(struct scx_sub_attach_args *);
	void (*sub_detach)(struct scx_sub_detach_args *);
	void (*sub_caps_updated)(const struct scx_cmask *, u64);	/* 7.3 */
	void (*sub_ecaps_updated)(s32, u64, u64);			/* 7.3 */
	void (*cid_online)(s32);
	void (*cid_offline)(s32);
	s32 (*init)(void);
	void (*exit)(struct scx_exit_info *);
	u64 flags;
	u32 timeout_ms;
	u32 exit_dump_len;
	u64 hotplug_seq;
	u32 rescue_bandwidth_ppt;					/* 7.3 */
	u32 rescue_quantum_us;						/* 7.3 */
	u64 sub_cgroup_id;
	char name[128];
};

#define SCX_OPS_CID_DEFINE(name, ...) \
	SEC(".struct_ops.link") struct sched_ext_ops_cid___qmap name = { __VA_ARGS__ }

/*
 * A struct_ops program belongs to one struct_ops type, so a callback that
 * serves both forms needs a second program. BPF_STRUCT_OPS_TWIN(name, twin,
 * args...) defines program @twin with the body of BPF_STRUCT_OPS(name,
 * args...), which it inlines: the callback is written once.
 */
#define ___BPF_STRUCT_OPS_TWIN(sec, name, twin, args...)			\
SEC(sec) typeof(name(0)) twin(unsigned long long *ctx)				\
{										\
	_Pragma("GCC diagnostic push")						\
	_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")			\
	return ____##name(___bpf_ctx_cast(args));				\
	_Pragma("GCC diagnostic pop")						\
}

#define BPF_STRUCT_OPS_TWIN(name, twin, args...) \
	___BPF_STRUCT_OPS_TWIN("struct_ops/" #twin, name, twin, ##args)

#define BPF_STRUCT_OPS_SLEEPABLE_TWIN(name, twin, args...) \
	___BPF_STRUCT_OPS_TWIN("struct_ops.s/" #twin, name, twin, ##args)

#define BPF_MAX_LOOPS (8 * 1024 * 1024)

/*
 * 7.3+, not in vmlinux.h (made from 7.2's BTF): give direct child sub-scheduler
 * @cgroup_id capabilities @caps on the cids of an arena cmask.
 */
extern s32 scx_bpf_sub_grant(u64 cgroup_id, u64 caps,
			     const struct scx_cmask *cmask__arena,
			     struct scx_cmask *denied_out__arena__nullable) __weak __ksym;

/* 7.3+: take capabilities @caps on an arena cmask's cids back from a child. */
extern void scx_bpf_sub_revoke(u64 cgroup_id, u64 caps,
			       const struct scx_cmask *cmask__arena) __weak __ksym;

/* The iterator of the innermost bpf_for_each() (libbpf names it ___it). */
#define BPF_FOR_EACH_ITER (&___it)

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/*
 * Format helpers over the kernel's *_bstr kfuncs: the arguments are packed
 * into a u64 array that the kernel formats like bpf_trace_printk().
 */
#define ___scx_bstr_pack(fmt, args...)						\
	static char ___fmt[] = fmt;						\
	unsigned long long ___param[___bpf_narg(args)];				\
	_Pragma("GCC diagnostic push")						\
	_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")			\
	___bpf_fill(___param, args);						\
	_Pragma("GCC diagnostic pop")

/* Abort the scheduler with an error; the message reaches the exit report. */
#define scx_bpf_error(fmt, args...)						\
({										\
	___scx_bstr_pack(fmt, ##args);						\
	scx_bpf_error_bstr(___fmt, ___param, sizeof(___param));			\
})

/* Exit the scheduler with @code, e.g. to ask the loader for a restart. */
#define scx_bpf_exit(code, fmt, args...)					\
({										\
	___scx_bstr_pack(fmt, ##args);						\
	scx_bpf_exit_bstr(code, ___fmt, ___param, sizeof(___param));		\
})

/* Append to the debug dump (dump callbacks only); "\n" ends a line. */
#define scx_bpf_dump(fmt, args...)						\
({										\
	___scx_bstr_pack(fmt, ##args);						\
	scx_bpf_dump_bstr(___fmt, ___param, sizeof(___param));			\
})

/*
 * Load-time enum values. Enums whose values differ between kernels are read
 * through read-only globals named "__<ENUM>" that the loader fills from the
 * running kernel's BTF before load (a name the kernel lacks stays 0). The
 * macros make the rest of the code read the same as with vmlinux.h values.
 */
#define SCX_ENUM(name) const volatile u64 __##name

SCX_ENUM(SCX_TASK_REENQ_REASON_MASK);
SCX_ENUM(SCX_TASK_REENQ_KFUNC);
SCX_ENUM(SCX_TASK_REENQ_IMMED);
SCX_ENUM(SCX_TASK_REENQ_PREEMPTED);
SCX_ENUM(SCX_TASK_REENQ_CAP);
SCX_ENUM(SCX_ENQ_REENQ);
SCX_ENUM(SCX_ENQ_IMMED);
SCX_ENUM(SCX_ENQ_CPU_SELECTED);
SCX_ENUM(SCX_SLICE_DFL);
SCX_ENUM(SCX_ENQ_RESCUE);		/* 7.3 */
SCX_ENUM(SCX_CAP_ENQ_IMMED);		/* 7.3 */
SCX_ENUM(SCX_CAP_ENQ);			/* 7.3 */
SCX_ENUM(SCX_CAP_PREEMPT);		/* 7.3 */
SCX_ENUM(SCX_CAP_PERF);			/* 7.3 */

#define SCX_TASK_REENQ_REASON_MASK	__SCX_TASK_REENQ_REASON_MASK
#define SCX_TASK_REENQ_KFUNC		__SCX_TASK_REENQ_KFUNC
#define SCX_TASK_REENQ_IMMED		__SCX_TASK_REENQ_IMMED
#define SCX_TASK_REENQ_PREEMPTED	__SCX_TASK_REENQ_PREEMPTED
#define SCX_TASK_REENQ_CAP		__SCX_TASK_REENQ_CAP
#define SCX_ENQ_REENQ			__SCX_ENQ_REENQ
#define SCX_ENQ_IMMED			__SCX_ENQ_IMMED
#define SCX_ENQ_CPU_SELECTED		__SCX_ENQ_CPU_SELECTED
#define SCX_SLICE_DFL			__SCX_SLICE_DFL
#define SCX_ENQ_RESCUE			__SCX_ENQ_RESCUE
#define SCX_CAP_ENQ_IMMED		__SCX_CAP_ENQ_IMMED
#define SCX_CAP_ENQ			__SCX_CAP_ENQ
#define SCX_CAP_PREEMPT			__SCX_CAP_PREEMPT
#define SCX_CAP_PERF			__SCX_CAP_PERF

/*
 * Exit info, copied out of the kernel's scx_exit_info in ops.exit so the
 * loader can report why the scheduler stopped. @kind is written last with a
 * full barrier: userspace treats a non-zero kind as "the record is complete".
 */
#define EXIT_REASON_LEN	128
#define EXIT_MSG_LEN	1024
#define EXIT_DUMP_MAX	32768

struct exit_info {
	s32 kind;
	s32 exit_cpu;
	s64 exit_code;
	char reason[EXIT_REASON_LEN];
	char msg[EXIT_MSG_LEN];
};

#define EXIT_INFO_DEFINE(name)							\
	struct exit_info name SEC(".data");					\
	char name##_dump[EXIT_DUMP_MAX] SEC(".data.exit_dump");		\
	const volatile u32 name##_dump_len = EXIT_DUMP_MAX

#define EXIT_INFO_RECORD(name, ei)						\
({										\
	bpf_probe_read_kernel_str(name.reason, sizeof(name.reason),		\
				  (ei)->reason);				\
	bpf_probe_read_kernel_str(name.msg, sizeof(name.msg), (ei)->msg);	\
	if (name##_dump_len)							\
		bpf_probe_read_kernel_str(name##_dump,				\
			name##_dump_len <= EXIT_DUMP_MAX ?			\
			name##_dump_len : EXIT_DUMP_MAX, (ei)->dump);		\
	name.exit_code = (ei)->exit_code;					\
	name.exit_cpu = (ei)->exit_cpu;						\
	__sync_val_compare_and_swap(&name.kind, name.kind, (ei)->kind);	\
})

#endif /* __SCX_QMAP_GO_BPF_H */
