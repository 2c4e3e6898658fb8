// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"testing"
	"testing/fstest"
	"time"
)

// BenchmarkSample is one stats-loop iteration: read every counter and the
// kernel events, publish (which encodes the socket's JSON) and render.
func BenchmarkSample(b *testing.B) {
	src := allCounters(123456789)
	sysfs := fstest.MapFS{"root/events": {Data: []byte(
		"SCX_EV_SELECT_CPU_FALLBACK 12\nSCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE 0\nSCX_EV_DISPATCH_KEEP_LAST 3\n" +
			"SCX_EV_ENQ_SKIP_EXITING 0\nSCX_EV_ENQ_SKIP_MIGRATION_DISABLED 0\nSCX_EV_REFILL_SLICE_DFL 77\n" +
			"SCX_EV_BYPASS_DURATION 0\nSCX_EV_BYPASS_DISPATCH 0\nSCX_EV_BYPASS_ACTIVATE 0\n")}}
	events := NewEventsReader(sysfs, RootSchedDir)
	cache := &Cache{}
	prev, _ := Take(src, time.Unix(0, 0))
	now := time.Unix(1, 0)
	b.ReportAllocs()
	for b.Loop() {
		cur, err := Take(src, now)
		if err != nil {
			b.Fatal(err)
		}
		if cur, err = cur.WithEvents(events); err != nil {
			b.Fatal(err)
		}
		cache.Publish(cur)
		_ = Render(prev, cur)
		prev = cur
		now = now.Add(time.Second)
	}
}
