// SPDX-License-Identifier: Apache-2.0

package stats

import "sync/atomic"

// Cache holds the latest snapshot for the stats server and the metrics
// endpoint. The stats loop publishes; readers never block it, however slow.
type Cache struct {
	p atomic.Pointer[published]
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

// Load returns the latest snapshot, or false before the first Publish.
func (c *Cache) Load() (Snapshot, bool) {
	p := c.p.Load()
	if p == nil {
		return Snapshot{}, false
	}
	return p.snap, true
}

// topJSON returns the latest snapshot as the "top" response object.
func (c *Cache) topJSON() ([]byte, bool) {
	p := c.p.Load()
	if p == nil {
		return nil, false
	}
	return p.top, true
}
