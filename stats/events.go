// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// Event is one of the kernel's sched_ext event counters
// (/sys/kernel/sched_ext/root/events, or a sub-scheduler's), e.g. SCX_EV_SELECT_CPU_FALLBACK.
// The set differs between kernels, so they are kept by name, in file order.
type Event struct {
	Name  string
	Value int64
}

// ParseEvents parses the events file: one "NAME value" line per counter.
func ParseEvents(text string) ([]Event, error) {
	var events []Event
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("events line %d: want \"NAME value\", got %q", i+1, line)
		}
		name := strings.TrimSuffix(fields[0], ":")
		if !strings.HasPrefix(name, "SCX_EV_") || name == "SCX_EV_" {
			return nil, fmt.Errorf("events line %d: %q is not an SCX_EV_ counter", i+1, name)
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("events line %d: %s: %w", i+1, name, err)
		}
		events = append(events, Event{Name: name, Value: v})
	}
	return events, nil
}

// RootSchedDir is the root scheduler's directory under /sys/kernel/sched_ext.
// A sub-scheduler has its own below its parent's, root/sub/sub-<cgroup id>,
// with event counters of its own.
const RootSchedDir = "root"

// EventsReader reads one scheduler's event counters once per sample through
// one open file. Reading a sysfs file from offset 0 renders it afresh, and an
// open(2) per sample (a path walk) was most of a sample's cost.
type EventsReader struct {
	sysfs fs.FS
	path  string
	f     fs.File
	buf   []byte
}

// NewEventsReader reads the events of the scheduler whose directory is
// @dir in @sysfs, rooted at /sys/kernel/sched_ext; a nil @sysfs means no
// events.
func NewEventsReader(sysfs fs.FS, dir string) *EventsReader {
	return &EventsReader{sysfs: sysfs, path: path.Join(dir, "events"), buf: make([]byte, 4096)}
}

// Read returns the current event counters: none, with no error, when the
// kernel has no events file.
func (r *EventsReader) Read() ([]Event, error) {
	if r.sysfs == nil {
		return nil, nil
	}
	if r.f == nil {
		f, err := r.sysfs.Open(r.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading sched_ext events: %w", err)
		}
		r.f = f
	}
	text, err := r.readAll()
	if err != nil {
		r.Close() // open it again next time
		// The kernel removes the scheduler's sysfs directory as it
		// disables it, under an open file too: no events, no news.
		if errors.Is(err, syscall.ENODEV) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading sched_ext events: %w", err)
	}
	return ParseEvents(text)
}

// readAll reads the whole file from offset 0, growing the buffer as needed;
// files that cannot be read at an offset are opened anew each time.
func (r *EventsReader) readAll() (string, error) {
	ra, ok := r.f.(io.ReaderAt)
	if !ok {
		r.f.Close()
		r.f = nil
		b, err := fs.ReadFile(r.sysfs, r.path)
		return string(b), err
	}
	for {
		n, err := ra.ReadAt(r.buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		if n < len(r.buf) {
			return string(r.buf[:n]), nil
		}
		r.buf = make([]byte, 2*len(r.buf))
	}
}

// Close releases the open file.
func (r *EventsReader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// EventsLine renders events as "NAME=value ..." without the SCX_EV_ prefix.
func EventsLine(events []Event) string {
	parts := make([]string, 0, len(events))
	for _, e := range events {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(e.Name, "SCX_EV_"), e.Value))
	}
	return strings.Join(parts, " ")
}
