package caddymtasts

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddytls"
	lru "github.com/hashicorp/golang-lru/v2"
)

// decisions remembers what DNS said, per Policy Domain, and how many new
// certificates each registered domain had lately.
type decisions struct {
	lookups atomic.Uint64 // how many lookups have started: the last one's number

	mu        sync.Mutex // held to compare and record; reads go to the caches directly
	size      int        // capacity of each cache
	allowed   *lru.Cache[string, decision]
	denied    *lru.Cache[string, decision]
	forgotten uint64 // the newest lookup whose decision a full cache pushed out

	newCerts *certBudget
}

// A decision is what one lookup found out about a domain: allowed (err
// nil), denied (err wraps caddytls.ErrPermissionDenied) or no answer (any
// other err).
type decision struct {
	lookup uint64    // orders decisions by when their lookups started
	at     time.Time // when the lookup started; TTLs count from here
	err    error
}

func newDecisions(size int) (*decisions, error) {
	allowed, err := lru.New[string, decision](size)
	if err != nil {
		return nil, err
	}
	denied, err := lru.New[string, decision](size)
	if err != nil {
		return nil, err
	}
	newCerts, err := newCertBudget(size)
	if err != nil {
		return nil, err
	}
	return &decisions{size: size, allowed: allowed, denied: denied, newCerts: newCerts}, nil
}

// start numbers a lookup that starts at now. Numbers, unlike times, cannot
// tie, and are shared by every config that shares the decisions.
func (d *decisions) start(now time.Time) decision {
	return decision{lookup: d.lookups.Add(1), at: now}
}

// record remembers dec for domain unless a decision from a lookup that
// started later is remembered, or was and has been pushed out: a lookup
// that was slow, or started just before a customer left, must not bring
// back an allow that a newer denial replaced. It reports whether it
// recorded dec.
//
// An allow replaces a denial and a denial an allow. A lookup that got no
// answer is remembered among the denied but leaves an earlier allow in
// place, for stale_allow.
func (d *decisions) record(domain string, dec decision) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.isNewest(domain, dec.lookup) {
		return false
	}
	switch {
	case dec.err == nil:
		d.denied.Remove(domain)
		d.add(d.allowed, domain, dec)
	case errors.Is(dec.err, caddytls.ErrPermissionDenied):
		d.allowed.Remove(domain)
		d.add(d.denied, domain, dec)
	default:
		d.add(d.denied, domain, dec)
	}
	return true
}

// isNewest reports whether no lookup that started after lookup has been
// recorded for domain. d.mu must be held.
func (d *decisions) isNewest(domain string, lookup uint64) bool {
	if lookup <= d.forgotten {
		return false
	}
	for _, cache := range []*lru.Cache[string, decision]{d.allowed, d.denied} {
		if prev, ok := cache.Peek(domain); ok && prev.lookup > lookup {
			return false
		}
	}
	return true
}

// add adds dec to cache, first pushing out the least recently used entry
// if the cache is full, and noting how new that was: once a decision is
// forgotten, isNewest cannot compare with it, so it refuses every lookup
// that started before it. That costs little: what a full cache pushes out
// is usually old, and a refused decision is only not remembered. d.mu must
// be held.
func (d *decisions) add(cache *lru.Cache[string, decision], domain string, dec decision) {
	if !cache.Contains(domain) && cache.Len() >= d.size {
		if _, old, ok := cache.RemoveOldest(); ok {
			d.forgotten = max(d.forgotten, old.lookup)
		}
	}
	cache.Add(domain, dec)
}
