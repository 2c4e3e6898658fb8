// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Event is one of the kernel's sched_ext event counters
// (/sys/kernel/sched_ext/root/events), e.g. SCX_EV_SELECT_CPU_FALLBACK.
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

// ReadEvents reads root/events from a sysfs tree rooted at
// /sys/kernel/sched_ext.
func ReadEvents(sysfs fs.FS) ([]Event, error) {
	b, err := fs.ReadFile(sysfs, "root/events")
	if err != nil {
		return nil, fmt.Errorf("reading sched_ext events: %w", err)
	}
	return ParseEvents(string(b))
}

// EventsLine renders events as "NAME=value ..." without the SCX_EV_ prefix.
func EventsLine(events []Event) string {
	parts := make([]string, 0, len(events))
	for _, e := range events {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(e.Name, "SCX_EV_"), e.Value))
	}
	return strings.Join(parts, " ")
}
