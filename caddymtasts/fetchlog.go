package caddymtasts

import (
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Bounds of a fetchLog.
const (
	// Domains served between two flushes; more are left for a later
	// request to record.
	maxPendingFetches = 10_000
	// Domains whose last write this node remembers, so that it writes each
	// at most once per interval; a domain it forgot costs one write more.
	maxRememberedFetches = 100_000
	// How often the served domains go to storage at most.
	fetchFlushInterval = 10 * time.Second
)

// fetchLog records the managed domains whose policy the handler served,
// which is what a sender fetches before it applies a policy, and writes
// them to Caddy's storage (fetchedPrefix) in the background: no request
// waits for storage. Each domain is written at most once per interval by
// each node, since the checks need no more.
type fetchLog struct {
	interval time.Duration

	mu      sync.Mutex
	pending map[string]time.Time // served since the last flush: when last
	written *lru.Cache[string, time.Time]
}

func newFetchLog(interval time.Duration) (*fetchLog, error) {
	written, err := lru.New[string, time.Time](maxRememberedFetches)
	if err != nil {
		return nil, err
	}
	return &fetchLog{interval: interval, pending: map[string]time.Time{}, written: written}, nil
}

// record notes that the policy of domain was served at at. It costs a map
// lookup or two under a lock.
func (l *fetchLog) record(domain string, at time.Time) {
	if last, ok := l.written.Get(domain); ok && at.Sub(last) < l.interval {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pending[domain]; ok || len(l.pending) < maxPendingFetches {
		l.pending[domain] = at
	}
}

// flush writes the domains recorded since the last flush to storage.
// Those it could not write are recorded again by their next request.
func (l *fetchLog) flush(ctx context.Context, storage certmagic.Storage) error {
	l.mu.Lock()
	pending := l.pending
	l.pending = map[string]time.Time{}
	l.mu.Unlock()
	var failed int
	var first error
	for domain, at := range pending {
		if err := storage.Store(ctx, fetchedKey(domain), []byte(at.UTC().Format(time.RFC3339))); err != nil {
			failed++
			if first == nil {
				first = err
			}
			continue
		}
		l.written.Add(domain, at)
	}
	if first != nil {
		return fmt.Errorf("%d of %d served domains not written to storage: %w", failed, len(pending), first)
	}
	return nil
}

func fetchedKey(domain string) string {
	return path.Join(fetchedPrefix, domain)
}
