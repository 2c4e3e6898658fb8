// SPDX-License-Identifier: Apache-2.0

// Package loader loads the qmap BPF scheduler into the kernel, attaches it
// as the sched_ext scheduler, waits for it to stop and reports why.
package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/scx-qmap-go/scx-qmap-go/bpf"
)

// Config holds the scheduler's tunables, as the CLI flags set them.
type Config struct {
	SliceUs       uint64 // task slice; 0 means the kernel's SCX_SLICE_DFL
	DispatchBatch uint32 // FIFO tasks one dispatch call moves, at least 1
	DisallowTgid  int32  // refuse this process's tasks (0: none)
	FifoDepth     uint32 // tasks each FIFO holds before the rest overflow to the shared DSQ (0: 4096)
	PartialSwitch bool   // schedule only SCHED_EXT tasks
	ExitDumpLen   uint32 // debug dump bytes kept on exit (0: none)
	SuppressDump  bool   // keep the BPF dump callbacks quiet

	HighpriBoost   bool     // -H: boost nice -20 tasks through HIGHPRI_DSQ
	PrintDSQs      bool     // -P: snapshot the shared DSQ every second
	PrintMsgs      bool     // -M: bpf_printk cgroup and hotplug events
	AlwaysEnqImmed bool     // -I: SCX_OPS_ALWAYS_ENQ_IMMED
	ImmedStressNth uint32   // -F: every Nth enqueue to the task's own busy CPU
	RemoteReenq    bool     // --remote-reenq: reenqueue local DSQs behind RT/DL tasks
	LatBudgetUs    uint64   // -L: a task over this much of its slice yields to waiters (0: off)
	Form           Form     // struct_ops form to load (FormAuto: the newest the kernel has)
	SubCgroupID    uint64   // attach as a sub-scheduler of this cgroup (0: the root scheduler); see PreflightSub
	QueueBy        QueueKey // how the FIFOs name tasks (QueueAuto: by tid where the kernel has it)

	// Linux 7.3's capabilities (Kernel.HasCaps); see checkCaps.
	RoundRobinMs       uint32 // -R: each participant's turn of the shared cids (0: DefaultRoundRobinMs)
	RescueBandwidthPpt uint32 // -B: the root's rescue bandwidth in 1/1000 (0: the kernel's default; RescueDisabled: off)
	RescueQuantumUs    uint32 // -q: the root's rescue quantum (0: the kernel's default)
	InjectWrongCid     bool   // -J wrong-cid: a child inserts every 64th task onto a cid it does not hold

	// Fault injection (0: off).
	ErrorAfterEnq     uint32 // -e: scx_bpf_error() on the Nth enqueue
	StallUserNth      uint32 // -t: lose every Nth user task
	StallKernelNth    uint32 // -T: lose every Nth kernel task
	DispatchLoopAfter uint32 // -l: loop in ops.dispatch after N dispatches
	DispatchHoldUs    uint32 // --dispatch-hold-us: wait in ops.dispatch between choosing a task's DSQ and inserting it
}

// MaxExitDumpLen is the size of the BPF side's dump buffer.
const MaxExitDumpLen = 32768

const (
	DefaultRoundRobinMs = 200 // upstream qmap's -R
	MinRoundRobinMs     = 10  // the timer that passes the turns runs every 10 ms

	// RescueDisabled in RescueBandwidthPpt turns rescue off
	// (SCX_RESCUE_DISABLE): a child's inserts onto a cid it does not hold
	// then come back to it with SCX_TASK_REENQ_CAP.
	RescueDisabled   = math.MaxUint32
	MaxRescuePpt     = 250    // SCX_RESCUE_MAX_BW_PPT
	MinRescueQuantum = 1000   // µs, SCX_RESCUE_MIN_QUANTUM_US
	MaxRescueQuantum = 100000 // µs, SCX_RESCUE_MAX_QUANTUM_US
)

// Enum values the scheduler cannot work without; others may be absent on a
// given kernel and then read as 0 in BPF.
var requiredEnums = []string{
	"SCX_SLICE_DFL", "SCX_ENQ_REENQ", "SCX_ENQ_CPU_SELECTED",
	"SCX_TASK_REENQ_REASON_MASK", "SCX_TASK_REENQ_KFUNC",
}

// Scheduler is a loaded (and possibly attached) qmap instance.
type Scheduler struct {
	coll     *ebpf.Collection
	arena    *arena
	opsMap   string
	vars     bpf.Variables // the loaded globals: counters, exit record, -P snapshot
	link     link.Link
	switchTP link.Link // sched_switch tracepoint, with --remote-reenq
	cfg      Config
	SliceNs  uint64
	Form     Form     // the form loaded: FormCPU or FormCID
	QueueBy  QueueKey // what the FIFOs hold: QueueByPID or QueueByTID
	// Caps: 7.3's capability hierarchy is on, and children run on the CPUs
	// it grants them; without it (7.2) they share every CPU.
	Caps bool
}

const switchProgName = bpf.SchedSwitchTP

// Limits of Config.FifoDepth; at the maximum the five queue maps take
// 40 MiB of kernel memory.
const (
	MinFifoDepth = 64
	MaxFifoDepth = 1 << 20
)

// sizeFIFOs sets the five FIFOs' size to @depth tasks (0: the object's
// own) and returns the size they have.
func sizeFIFOs(spec *ebpf.CollectionSpec, depth uint32) (uint32, error) {
	var maps bpf.MapSpecs
	if err := spec.Assign(&maps); err != nil {
		return 0, err
	}
	fifos := []*ebpf.MapSpec{maps.Queue0, maps.Queue1, maps.Queue2, maps.Queue3, maps.Queue4}
	if depth == 0 {
		return fifos[0].MaxEntries, nil
	}
	for _, m := range fifos {
		m.MaxEntries = depth
	}
	if inner := maps.QueueArr.InnerMap; inner != nil {
		inner.MaxEntries = depth
	}
	return depth, nil
}

// Load fills the scheduler's load-time values from the running kernel and
// @cfg, then loads it through the verifier. Nothing is attached yet.
func Load(h Host, kernel *Kernel, cfg Config) (*Scheduler, error) {
	spec, err := bpf.Spec()
	if err != nil {
		return nil, newError(ErrInternal, err, "reading the embedded BPF object")
	}
	kspec, err := kernel.Cache.Kernel()
	if err != nil {
		return nil, newError(ErrNoSchedExt, err, "reading the kernel's BTF")
	}
	form, err := pickForm(kernel, cfg.Form)
	if err != nil {
		return nil, err
	}
	if cfg.SubCgroupID != 0 && form != FormCID {
		return nil, newError(ErrInvalid, nil, "a sub-scheduler needs the cid form, not the %s form", form)
	}
	if err := checkCaps(kernel, form, cfg); err != nil {
		return nil, err
	}
	queueBy, err := pickQueue(kernel, cfg.QueueBy)
	if err != nil {
		return nil, err
	}
	// Before keepForm: the object's maps are all there until then.
	depth, err := sizeFIFOs(spec, cfg.FifoDepth)
	if err != nil {
		return nil, newError(ErrInternal, err, "sizing the FIFOs")
	}
	if err := keepForm(spec, form); err != nil {
		return nil, newError(ErrInternal, err, "picking the %s form out of the BPF object", form)
	}
	if err := matchKernelMembers(spec, kspec, form); err != nil {
		return nil, newError(ErrKernelTooOld, err, "matching the %s form's callbacks to this kernel", form)
	}
	if err := hideKfuncFlavours(kspec, spec.Types); err != nil {
		return nil, newError(ErrInternal, err, "resolving the scheduler's kfuncs")
	}
	if err := adaptVoidKfuncs(kspec, spec.Types); err != nil {
		return nil, newError(ErrInternal, err, "matching the scheduler's kfuncs to this kernel")
	}
	enums := kernel.Enums
	if err := fillEnums(spec, enums); err != nil {
		return nil, err
	}

	sliceNs := enums["SCX_SLICE_DFL"]
	if cfg.SliceUs > 0 {
		sliceNs = cfg.SliceUs * 1000
	}
	if cfg.LatBudgetUs*1000 >= sliceNs {
		return nil, newError(ErrInvalid, nil, "latency budget %d us must be shorter than the slice (%d us), or it never applies",
			cfg.LatBudgetUs, sliceNs/1000)
	}
	var vars bpf.VariableSpecs
	if err := spec.Assign(&vars); err != nil {
		return nil, newError(ErrInternal, err, "reading the BPF object's globals")
	}
	if err := setTunables([]tunable{
		{vars.SliceNs, sliceNs},
		{vars.DspBatch, max(cfg.DispatchBatch, 1)},
		{vars.FifoDepth, depth},
		{vars.DisallowTgid, cfg.DisallowTgid},
		{vars.SuppressDump, cfg.SuppressDump},
		{vars.UeiDumpLen, cfg.ExitDumpLen},
		{vars.HighpriBoosting, cfg.HighpriBoost},
		{vars.PrintDsqsAndEvents, cfg.PrintDSQs},
		{vars.PrintMsgs, cfg.PrintMsgs},
		{vars.ImmedStressNth, cfg.ImmedStressNth},
		{vars.RemoteReenq, cfg.RemoteReenq},
		{vars.LatBudgetNs, cfg.LatBudgetUs * 1000},
		{vars.ErrorAfterEnq, cfg.ErrorAfterEnq},
		{vars.StallUserNth, cfg.StallUserNth},
		{vars.StallKernelNth, cfg.StallKernelNth},
		{vars.DspInfLoopAfter, cfg.DispatchLoopAfter},
		{vars.DispatchHoldUs, cfg.DispatchHoldUs},
		{vars.CidForm, form == FormCID},
		{vars.QueueByTid, queueBy == QueueByTID},
	}); err != nil {
		return nil, newError(ErrInternal, err, "filling the scheduler's load-time values")
	}

	hotplugSeq, err := readUint(h.Sysfs, "hotplug_seq")
	if err != nil {
		return nil, newError(ErrNoSchedExt, err, "reading sched_ext hotplug_seq")
	}
	flags := uint64(0)
	if cfg.PartialSwitch {
		flags |= enums["SCX_OPS_SWITCH_PARTIAL"]
	}
	if queueBy == QueueByTID {
		flags |= enums["SCX_OPS_TID_TO_TASK"]
	}
	if cfg.AlwaysEnqImmed {
		immed, ok := enums["SCX_OPS_ALWAYS_ENQ_IMMED"]
		if !ok {
			return nil, newError(ErrKernelTooOld, nil, "this kernel lacks SCX_OPS_ALWAYS_ENQ_IMMED, which AlwaysEnqImmed needs")
		}
		flags |= immed
	}
	opsMap := formObjectsOf[form].opsMap
	members := map[string]uint64{
		"hotplug_seq":   hotplugSeq,
		"exit_dump_len": uint64(cfg.ExitDumpLen),
		"sub_cgroup_id": cfg.SubCgroupID,
	}
	if cfg.RescueBandwidthPpt != 0 {
		members["rescue_bandwidth_ppt"] = uint64(cfg.RescueBandwidthPpt)
	}
	if cfg.RescueQuantumUs != 0 {
		members["rescue_quantum_us"] = uint64(cfg.RescueQuantumUs)
	}
	if err := patchOps(spec, opsMap, members, flags); err != nil {
		return nil, newError(ErrInternal, err, "filling struct sched_ext_ops")
	}

	ar, err := newArena(spec)
	if err != nil {
		return nil, loadError(err, "setting up the BPF arena")
	}
	if form == FormCID {
		if err := setCaps(h, kernel, cfg, ar, &vars); err != nil {
			ar.Close()
			return nil, loadError(err, "preparing 7.3's capability hierarchy")
		}
	}
	opts := ebpf.CollectionOptions{
		Cache:           kernel.Cache,
		MapReplacements: map[string]*ebpf.Map{bpf.ArenaMap: ar.m},
	}
	coll, err := retryModuleBTFRace(func() (*ebpf.Collection, error) {
		return ebpf.NewCollectionWithOptions(spec, opts)
	}, moduleBTFTries, moduleBTFPause)
	if err != nil {
		ar.Close()
		return nil, loadError(err, "loading the BPF scheduler")
	}
	sched := &Scheduler{coll: coll, arena: ar, opsMap: opsMap, cfg: cfg, SliceNs: sliceNs, Form: form,
		QueueBy: queueBy, Caps: form == FormCID && kernel.HasCaps}
	if err := coll.Assign(&sched.vars); err != nil {
		sched.Close()
		return nil, newError(ErrInternal, err, "reading the loaded scheduler's globals")
	}
	// Under sub-schedulers the kernel acts for a tracepoint's kfunc calls
	// only on behalf of the scheduler it is associated with.
	if form == FormCID {
		if err := associate(coll.Programs[switchProgName], coll.Maps[opsMap]); err != nil {
			sched.Close()
			return nil, loadError(err, "associating the sched_switch tracepoint with the scheduler")
		}
	}
	return sched, nil
}

// loadError classifies a failure to load the BPF object. One for want of
// kernel memory (a memory cgroup's limit, such as a unit's MemoryMax=, or
// the system's) says nothing about the scheduler and may pass on a retry.
// The verifier reports it too, as ENOMEM in a VerifierError, so ENOMEM is
// asked first. Any other failure is final.
func loadError(err error, doing string) *Error {
	if errors.Is(err, unix.ENOMEM) {
		return newError(ErrNoMemory, err, "%s: the kernel had no memory for it (raise the memory cgroup's limit, or retry)", doing)
	}
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		return newError(ErrLoad, err, "the kernel's verifier rejected the scheduler (run with -v for the full log)")
	}
	// Preflight saw the capabilities; what refuses now is a security
	// module, lockdown, or a user namespace's limits.
	if errors.Is(err, unix.EPERM) {
		return newError(ErrNotRoot, err, "%s: the kernel denied the permission (it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, in the initial user namespace; a security module or lockdown may also refuse)", doing)
	}
	return newError(ErrLoad, err, "%s", doing)
}

// A load that resolves a kfunc this kernel lacks reads every module's BTF
// from /sys/kernel/btf, and while udev loads modules at boot, when a service
// starts, a module can be listed and not yet (or no longer) be there. Such a
// load is retried moduleBTFTries times in all, moduleBTFPause apart: ENOENT
// for a path there says nothing about the scheduler.
const (
	moduleBTFTries = 5
	moduleBTFPause = 300 * time.Millisecond
)

// retryModuleBTFRace calls @load until it succeeds, fails for another reason
// than a module's BTF file missing, or has been called @tries times.
func retryModuleBTFRace(load func() (*ebpf.Collection, error), tries int, pause time.Duration) (*ebpf.Collection, error) {
	for try := 1; ; try++ {
		coll, err := load()
		if err == nil || try >= tries || !isModuleBTFRace(err) {
			return coll, err
		}
		time.Sleep(pause)
	}
}

// isModuleBTFRace reports whether @err is a module's BTF file under
// /sys/kernel/btf not found.
func isModuleBTFRace(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && errors.Is(pe.Err, fs.ErrNotExist) &&
		strings.HasPrefix(pe.Path, "/sys/kernel/btf/")
}

// tunable is a read-only global of the BPF object and its value for this load.
type tunable struct {
	v   *ebpf.VariableSpec
	val any
}

func setTunables(ts []tunable) error {
	for _, t := range ts {
		if err := t.v.Set(t.val); err != nil {
			return fmt.Errorf("setting %s: %w", t.v, err)
		}
	}
	return nil
}

// fillEnums sets every "__SCX_*" placeholder from the kernel's enums.
func fillEnums(spec *ebpf.CollectionSpec, enums map[string]uint64) error {
	for _, name := range requiredEnums {
		if _, ok := enums[name]; !ok {
			return newError(ErrKernelTooOld, nil, "kernel lacks %s: boot Linux 7.1 or newer", name)
		}
	}
	for name, vs := range spec.Variables {
		enum, ok := strings.CutPrefix(name, "__")
		if !ok || !strings.HasPrefix(enum, "SCX_") {
			continue
		}
		if err := vs.Set(enums[enum]); err != nil {
			return newError(ErrInternal, err, "setting %s", name)
		}
	}
	return nil
}

// patchOps writes scalar members of the struct_ops value before load; the
// ELF holds only what the C initializer set.
func patchOps(spec *ebpf.CollectionSpec, opsMapName string, members map[string]uint64, orFlags uint64) error {
	ms, ok := spec.Maps[opsMapName]
	if !ok || len(ms.Contents) != 1 {
		return fmt.Errorf("no struct_ops map %q", opsMapName)
	}
	st, ok := ms.Value.(*btf.Struct)
	if !ok {
		return fmt.Errorf("%s: value is %T, not a struct", opsMapName, ms.Value)
	}
	data, ok := ms.Contents[0].Value.([]byte)
	if !ok {
		return fmt.Errorf("%s: contents are %T, not bytes", opsMapName, ms.Contents[0].Value)
	}
	data = append([]byte(nil), data...)

	field := func(name string) ([]byte, error) {
		for _, m := range st.Members {
			if m.Name != name {
				continue
			}
			size, err := btf.Sizeof(m.Type)
			if err != nil {
				return nil, err
			}
			off := int(m.Offset.Bytes())
			if off+size > len(data) {
				return nil, fmt.Errorf("member %s out of bounds", name)
			}
			return data[off : off+size], nil
		}
		return nil, fmt.Errorf("struct %s has no member %s", st.Name, name)
	}
	put := func(b []byte, v uint64) error {
		switch len(b) {
		case 4:
			binary.NativeEndian.PutUint32(b, uint32(v))
		case 8:
			binary.NativeEndian.PutUint64(b, v)
		default:
			return fmt.Errorf("unexpected member size %d", len(b))
		}
		return nil
	}
	for name, v := range members {
		b, err := field(name)
		if err != nil {
			return err
		}
		if err := put(b, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	b, err := field("flags")
	if err != nil {
		return err
	}
	if err := put(b, binary.NativeEndian.Uint64(b)|orFlags); err != nil {
		return err
	}
	ms.Contents[0].Value = data
	return nil
}

func readUint(fsys fs.FS, name string) (uint64, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Attach makes the loaded scheduler the system's sched_ext scheduler.
func (s *Scheduler) Attach() error {
	l, err := link.AttachStructOps(link.StructOpsOptions{Map: s.coll.Maps[s.opsMap]})
	if err != nil {
		// A failing ops.init records its reason like any other exit.
		if ei, _ := s.ExitInfo(); ei.Kind != ExitKindNone {
			return newError(ErrAttach, err, "the kernel refused to enable the scheduler (%s: %s)", ei.Reason, ei.Msg)
		}
		if s.cfg.SubCgroupID != 0 {
			if e := subAttachError(err); e != nil {
				return e
			}
		}
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EEXIST) {
			return newError(ErrBusy, err, "another sched_ext scheduler attached first: stop it, then retry")
		}
		return newError(ErrAttach, err, "attaching the scheduler")
	}
	// The kernel reports a sub-scheduler's enable failure (the parent's
	// ops.sub_attach refusing it, say) through ops.exit and still makes the
	// link; the record is complete by now. The tid refusal is one the caller
	// acts on; any other is a refusal too, not an attach and an ejection.
	ei, _ := s.ExitInfo()
	if err := tidRefusal(ei); err != nil {
		l.Close()
		return err
	}
	// Only a child's: a root's enable failure fails the link above, and an
	// error recorded by now is an ejection right after it enabled.
	if s.cfg.SubCgroupID != 0 && ei.Kind.IsError() {
		l.Close()
		return newError(ErrAttach, nil, "the kernel refused to enable the scheduler (%s: %s)", ei.Reason, ei.Msg)
	}
	s.link = l
	if s.cfg.RemoteReenq {
		tp, err := link.AttachTracing(link.TracingOptions{Program: s.coll.Programs[switchProgName]})
		if err != nil {
			s.link.Close()
			s.link = nil
			return newError(ErrAttach, err, "attaching the sched_switch tracepoint for --remote-reenq")
		}
		s.switchTP = tp
	}
	return nil
}

// Wait blocks until @ctx is done or the scheduler stops on its own (the
// kernel ejected it or it exited). It reports whether it stopped on its own.
//
// An idle loader should cost nothing, so Wait sleeps in poll(2) with no
// timeout: on the ring ops.exit writes one record to, on the struct_ops link
// (hung up when someone detaches it), and on an eventfd that @ctx's
// cancellation writes.
func (s *Scheduler) Wait(ctx context.Context) bool {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return s.waitPolling(ctx)
	}
	written := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(written)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(wake, one[:])
	})
	defer func() {
		// Close the eventfd only once no write to it can be under way: its
		// number could be reused by then.
		if !stop() {
			<-written
		}
		unix.Close(wake)
	}()

	// The link goes last, so that one that cannot be polled can be dropped.
	const (
		cancelled = iota
		exitRing
		linkHup
	)
	fds := []unix.PollFd{
		cancelled: {Fd: int32(wake), Events: unix.POLLIN},
		exitRing:  {Fd: int32(s.coll.Maps[bpf.ExitRingMap].FD()), Events: unix.POLLIN},
	}
	if l, ok := s.link.(interface{ FD() int }); ok {
		fds = append(fds, unix.PollFd{Fd: int32(l.FD()), Events: unix.POLLIN})
	}
	for {
		if s.exited() {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		_, err := unix.Poll(fds, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return s.waitPolling(ctx)
		}
		if fds[exitRing].Revents != 0 {
			return true
		}
		if len(fds) > linkHup {
			switch r := fds[linkHup].Revents; {
			case r&(unix.POLLHUP|unix.POLLERR) != 0:
				return true
			case r != 0: // a link that cannot be polled reads as always ready
				fds = fds[:linkHup]
			}
		}
	}
}

// exitCheckEvery is how often waitPolling reads the exit record.
const exitCheckEvery = time.Second

// waitPolling is Wait for when poll(2) cannot be used: it reads the exit
// record every exitCheckEvery.
func (s *Scheduler) waitPolling(ctx context.Context) bool {
	tick := time.NewTicker(exitCheckEvery)
	defer tick.Stop()
	for !s.exited() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// exited reports whether ops.exit has recorded an exit.
func (s *Scheduler) exited() bool {
	ei, err := s.ExitInfo()
	return err == nil && ei.Kind != ExitKindNone
}

// Detach unregisters the scheduler (if it still is attached) and returns the
// exit record, waiting briefly for ops.exit to have written it.
func (s *Scheduler) Detach() (ExitInfo, error) {
	if s.switchTP != nil {
		s.switchTP.Close()
		s.switchTP = nil
	}
	if s.link != nil {
		if err := s.link.Close(); err != nil {
			return ExitInfo{}, newError(ErrInternal, err, "detaching the scheduler")
		}
		s.link = nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ei, err := s.ExitInfo()
		if err != nil || ei.Kind != ExitKindNone || time.Now().After(deadline) {
			return ei, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close releases the BPF objects; it detaches first if still attached.
func (s *Scheduler) Close() error {
	if s.switchTP != nil {
		s.switchTP.Close()
		s.switchTP = nil
	}
	if s.link != nil {
		s.link.Close()
		s.link = nil
	}
	s.coll.Close()
	if s.arena != nil {
		s.arena.Close()
	}
	return nil
}

// ExitInfo reads what ops.exit recorded; Kind is NONE while running.
func (s *Scheduler) ExitInfo() (ExitInfo, error) {
	var raw bpf.ExitInfoRecord
	if err := s.vars.Uei.Get(&raw); err != nil {
		return ExitInfo{}, fmt.Errorf("reading exit info: %w", err)
	}
	ei := ExitInfo{
		Kind:     ExitKind(raw.Kind),
		ExitCPU:  raw.ExitCpu,
		ExitCode: raw.ExitCode,
		Reason:   cString(raw.Reason[:]),
		Msg:      cString(raw.Msg[:]),
	}
	if ei.Kind != ExitKindNone {
		dump := make([]byte, MaxExitDumpLen)
		if err := s.vars.UeiDump.Get(dump); err == nil {
			ei.Dump = cString(dump)
		}
	}
	return ei, nil
}

// Stats reads every counter and gauge at once.
func (s *Scheduler) Stats() (bpf.Stats, error) {
	var st bpf.Stats
	if err := s.vars.Stats.Get(&st); err != nil {
		return bpf.Stats{}, fmt.Errorf("reading the counters: %w", err)
	}
	return st, nil
}

// VerifiedInstructions returns, per BPF program, how many instructions the
// kernel's verifier processed when loading it.
func (s *Scheduler) VerifiedInstructions() (map[string]uint32, error) {
	counts := make(map[string]uint32, len(s.coll.Programs))
	for name, p := range s.coll.Programs {
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("program %s info: %w", name, err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			continue
		}
		counts[name] = n
	}
	return counts, nil
}

// SharedDSQ returns the shared DSQ's length and first pids as of the last
// monitor tick (-P only; zero otherwise).
func (s *Scheduler) SharedDSQ() (int32, []int32, error) {
	var nr int32
	if err := s.vars.SharedDsqNr.Get(&nr); err != nil {
		return 0, nil, fmt.Errorf("reading shared_dsq_nr: %w", err)
	}
	var pids [16]int32
	if err := s.vars.SharedDsqPids.Get(&pids); err != nil {
		return 0, nil, fmt.Errorf("reading shared_dsq_pids: %w", err)
	}
	var out []int32
	for _, p := range pids {
		if p != 0 {
			out = append(out, p)
		}
	}
	return nr, out, nil
}
