package readiness

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestCache(now *time.Time) *hostCache {
	return &hostCache{interval: time.Hour, now: func() time.Time { return *now }, entries: map[string]*hostEntry{}}
}

func TestHostCacheSharesOneProbe(t *testing.T) {
	now := time.Now()
	c := newTestCache(&now)
	var probes atomic.Int32
	release := make(chan struct{})
	probe := func() HostResult {
		probes.Add(1)
		<-release
		return HostResult{Host: "mx.example", CheckedAt: now, Outcome: OutcomePass}
	}
	var wg sync.WaitGroup
	results := make([]HostResult, 100)
	for i := range results {
		wg.Go(func() { results[i] = c.result(context.Background(), "mx.example", probe) })
	}
	// Let the callers pile up behind the first probe.
	for probes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if probes.Load() != 1 {
		t.Errorf("%d probes for 100 callers at once, want 1", probes.Load())
	}
	for _, r := range results {
		if r.Outcome != OutcomePass {
			t.Fatalf("a caller got %+v", r)
		}
	}
}

func TestHostCacheKeepsResultsForTheInterval(t *testing.T) {
	now := time.Now()
	c := newTestCache(&now)
	var probes int
	probe := func() HostResult {
		probes++
		return HostResult{Host: "mx.example", CheckedAt: now, Outcome: OutcomePass}
	}
	ctx := context.Background()
	c.result(ctx, "mx.example", probe)
	now = now.Add(time.Hour - time.Nanosecond)
	c.result(ctx, "mx.example", probe)
	if probes != 1 {
		t.Errorf("%d probes within the interval, want 1", probes)
	}
	now = now.Add(time.Nanosecond)
	c.result(ctx, "mx.example", probe)
	if probes != 2 {
		t.Errorf("%d probes once the interval passed, want 2", probes)
	}
}

func TestHostCacheDropsCanceledProbes(t *testing.T) {
	now := time.Now()
	c := newTestCache(&now)
	canceled := c.result(context.Background(), "mx.example", func() HostResult {
		return HostResult{Host: "mx.example", CheckedAt: now, Outcome: OutcomeCanceled}
	})
	passed := c.result(context.Background(), "mx.example", func() HostResult {
		return HostResult{Host: "mx.example", CheckedAt: now, Outcome: OutcomePass}
	})
	if canceled.Outcome != OutcomeCanceled || passed.Outcome != OutcomePass {
		t.Errorf("got %s, then %s; want a new probe after the canceled one", canceled.Outcome, passed.Outcome)
	}
}

// TestHostCacheSweepsExpiredResults fills the cache up to its first sweep
// with results that expire before the last one comes.
func TestHostCacheSweepsExpiredResults(t *testing.T) {
	now := time.Now()
	c := newTestCache(&now)
	probe := func() HostResult { return HostResult{CheckedAt: now, Outcome: OutcomePass} }
	for i := range minSweep - 1 {
		c.result(context.Background(), fmt.Sprintf("mx%d.example", i), probe)
	}
	now = now.Add(time.Hour)
	c.result(context.Background(), "mx.example", probe)
	if len(c.entries) != 1 {
		t.Errorf("%d entries after %d expired ones were swept, want 1", len(c.entries), minSweep-1)
	}
}
