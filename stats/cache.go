// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"sync"
	"sync/atomic"
	"time"
)

// Cache holds the latest snapshot for the stats server and the metrics
// endpoint. Given a sampler (Sample), a reader that finds the snapshot older
// than its maximum age takes a new one first: while nobody asks, the loader
// takes none. The lock is held only while sampling, never while a client
// is answered, so a slow client holds up no one.
type Cache struct {
	p atomic.Pointer[published]

	mu     sync.Mutex // held while sampling
	sample func(time.Time) (Snapshot, bool)
	maxAge time.Duration
}

type published struct {
	snap Snapshot
	top  []byte // EncodeTop(snap), encoded once per publish, not per client
}

// Publish makes @s the snapshot every reader sees. @s must not be changed
// afterwards.
func (c *Cache) Publish(s Snapshot) {
	c.p.Store(&published{snap: s, top: EncodeTop(s)})
}

// Sample makes readers take their snapshots with @sample, at most @maxAge
// after the last one; nil stops that, and readers get the last one taken.
func (c *Cache) Sample(sample func(now time.Time) (Snapshot, bool), maxAge time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sample, c.maxAge = sample, maxAge
}

// Refresh takes and publishes a snapshot now, whatever the last one's age;
// false without a sampler or when sampling failed.
func (c *Cache) Refresh(now time.Time) (Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sample == nil {
		return Snapshot{}, false
	}
	s, ok := c.sample(now)
	if ok {
		c.Publish(s)
	}
	return s, ok
}

// current is the latest snapshot, taken anew first when a sampler is set
// and it is older than the maximum age; nil before there is one.
func (c *Cache) current() *published {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.p.Load()
	if c.sample == nil {
		return p
	}
	now := time.Now()
	if p != nil && now.Sub(p.snap.Time) < c.maxAge {
		return p
	}
	if s, ok := c.sample(now); ok {
		c.Publish(s)
	}
	return c.p.Load()
}

// Load returns the latest snapshot, or false before there is one.
func (c *Cache) Load() (Snapshot, bool) {
	p := c.current()
	if p == nil {
		return Snapshot{}, false
	}
	return p.snap, true
}

// topJSON returns the latest snapshot as the "top" response object.
func (c *Cache) topJSON() ([]byte, bool) {
	p := c.current()
	if p == nil {
		return nil, false
	}
	return p.top, true
}
