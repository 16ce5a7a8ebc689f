package readiness

import (
	"context"
	"sync"
	"time"
)

// minSweep is the number of hosts above which the cache first drops the
// results older than the interval.
const minSweep = 1024

// hostCache keeps each host's result for the interval and lets callers
// that ask for a host while it is being probed wait for that probe, so a
// host shared by any number of domains is probed once per interval.
type hostCache struct {
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*hostEntry
	sweepAt int // the size at which to drop old results next
}

// hostEntry is a host's probe: running until done is closed, then its
// result.
type hostEntry struct {
	done   chan struct{}
	result HostResult
}

// result returns host's result of the interval, waits for the probe
// running for it, or runs probe. A canceled probe is not kept: those
// waiting for it probe again, unless they gave up too.
func (c *hostCache) result(ctx context.Context, host string, probe func() HostResult) HostResult {
	for {
		e, leader := c.entry(host)
		if leader {
			e.result = probe()
			close(e.done)
			if e.result.Outcome == OutcomeCanceled {
				c.remove(host, e)
			}
			return e.result
		}
		select {
		case <-e.done:
			if e.result.Outcome != OutcomeCanceled {
				return e.result
			}
		case <-ctx.Done():
			return HostResult{Host: host, CheckedAt: c.now(), Outcome: OutcomeCanceled, Failure: ctx.Err().Error()}
		}
	}
}

// entry returns host's entry, running or within the interval, or a new
// one that the caller is to fill (leader).
func (c *hostCache) entry(host string) (e *hostEntry, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[host]; ok && !c.expired(e) {
		return e, false
	}
	e = &hostEntry{done: make(chan struct{})}
	c.entries[host] = e
	if len(c.entries) >= c.sweepAt {
		c.sweep()
	}
	return e, true
}

// expired reports whether e is a finished probe older than the interval.
func (c *hostCache) expired(e *hostEntry) bool {
	select {
	case <-e.done:
		return c.now().Sub(e.result.CheckedAt) >= c.interval
	default:
		return false
	}
}

// sweep drops the expired results and sets the size of the next sweep to
// twice what is left, so sweeping costs O(1) per new entry.
func (c *hostCache) sweep() {
	for host, e := range c.entries {
		if c.expired(e) {
			delete(c.entries, host)
		}
	}
	c.sweepAt = max(2*len(c.entries), minSweep)
}

// remove drops e, if it is still host's entry.
func (c *hostCache) remove(host string, e *hostEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[host] == e {
		delete(c.entries, host)
	}
}
