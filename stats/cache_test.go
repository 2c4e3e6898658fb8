// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"testing"
	"time"
)

func TestCacheSampling(t *testing.T) {
	published := Snapshot{Time: time.Unix(1, 0), Values: map[string]uint64{"enq": 1}}
	tests := []struct {
		name      string
		maxAge    time.Duration
		fails     bool
		noSampler bool
		read      func(c *Cache) (Snapshot, bool)
		reads     int
		wantTaken int
		wantEnq   uint64
	}{
		{"no sampler: what was published", 0, false, true, (*Cache).Load, 2, 0, 1},
		{"a stale snapshot is taken anew", time.Hour, false, false, (*Cache).Load, 2, 1, 2},
		{"within the maximum age, once", time.Hour, false, false, func(c *Cache) (Snapshot, bool) {
			c.Load()
			return c.Load()
		}, 1, 1, 2},
		{"at age 0, every read", 0, false, false, (*Cache).Load, 3, 3, 4},
		{"a failed sample keeps the last", 0, true, false, (*Cache).Load, 2, 2, 1},
		{"Refresh whatever the age", time.Hour, false, false, func(c *Cache) (Snapshot, bool) {
			return c.Refresh(time.Now())
		}, 2, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cache{}
			c.Publish(published)
			taken := 0
			if !tt.noSampler {
				c.Sample(func(now time.Time) (Snapshot, bool) {
					taken++
					return Snapshot{Time: now, Values: map[string]uint64{"enq": uint64(1 + taken)}}, !tt.fails
				}, tt.maxAge)
			}
			var s Snapshot
			var ok bool
			for range tt.reads {
				s, ok = tt.read(c)
			}
			if !ok || taken != tt.wantTaken || s.Values["enq"] != tt.wantEnq {
				t.Errorf("took %d, read enq=%d (%v); want %d taken, enq=%d", taken, s.Values["enq"], ok, tt.wantTaken, tt.wantEnq)
			}
		})
	}
}

func TestCacheSamplerStopped(t *testing.T) {
	c := &Cache{}
	taken := 0
	c.Sample(func(now time.Time) (Snapshot, bool) {
		taken++
		return Snapshot{Time: now}, true
	}, 0)
	if _, ok := c.Load(); !ok || taken != 1 {
		t.Fatalf("first read: ok %v, %d taken", ok, taken)
	}
	c.Sample(nil, 0)
	if _, ok := c.Load(); !ok || taken != 1 {
		t.Errorf("after Sample(nil): ok %v, %d taken; want the last, none taken", ok, taken)
	}
	if _, ok := c.Refresh(time.Now()); ok || taken != 1 {
		t.Errorf("Refresh without a sampler: ok %v, %d taken", ok, taken)
	}
}
