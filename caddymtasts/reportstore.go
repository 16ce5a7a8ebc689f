package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
)

// The TLS reports' keys in Caddy's storage. Days are UTC dates, YYYY-MM-DD:
// the day a report covers (tlsrpt.Report.Day); hashes are
// tlsrpt.Report.Hash, of the organization name and the report id; domains
// are in lowercase A-labels.
//
//	mta_sts/tlsrpt/reports/DAY/HASH.json       a report about managed domains, the JSON as sent
//	mta_sts/tlsrpt/unattributed/DAY/HASH.json  a report that names no policy domain
//	mta_sts/tlsrpt/summaries/DAY/DOMAIN.json   a managed domain's tlsrpt.Summary of the day
//	mta_sts/tlsrpt/last_cleanup                when old days were last removed (RFC 3339)
//
// Keeping the day first makes removing old data one Delete per day and
// kind, whatever the number of domains.
const (
	reportsPrefix      = "mta_sts/tlsrpt/reports"
	unattributedPrefix = "mta_sts/tlsrpt/unattributed"
	summariesPrefix    = "mta_sts/tlsrpt/summaries"
	lastCleanupKey     = "mta_sts/tlsrpt/last_cleanup"
	cleanupLockName    = "mta_sts/tlsrpt/cleanup"
)

// cleanupInterval is how often at most the cluster removes old days.
const cleanupInterval = time.Hour

// errUnattributedFull means the day has as many unattributed reports as
// the receiver keeps.
var errUnattributedFull = errors.New("as many unattributed reports for the day as kept")

// reportStore keeps TLS reports and the summaries of managed domains in
// Caddy's storage, which the nodes of a cluster share. Every change that
// reads before it writes holds a storage lock, so nodes writing at once
// count each report once.
type reportStore struct {
	storage certmagic.Storage
}

func newReportStore(storage certmagic.Storage) *reportStore {
	return &reportStore{storage: storage}
}

// storeReport stores the JSON of report r about managed domains, unless a
// report with its hash is stored for its day already.
func (s *reportStore) storeReport(ctx context.Context, r *tlsrpt.Report, data []byte) error {
	key := path.Join(reportsPrefix, r.Day(), r.Hash()+".json")
	// A report stored meanwhile by another node holds the same JSON, or
	// one of another retry of the sender's; either will do.
	if s.storage.Exists(ctx, key) {
		return nil
	}
	return s.storage.Store(ctx, key, data)
}

// storeUnattributed stores the JSON of report r, which names no policy
// domain, and reports whether it was new. A day keeps at most max such
// reports (errUnattributedFull): no DNS lookup decides whether they are
// ours, so this is what bounds the storage anyone can fill with them.
func (s *reportStore) storeUnattributed(ctx context.Context, r *tlsrpt.Report, data []byte, max int) (bool, error) {
	dir := path.Join(unattributedPrefix, r.Day())
	key := path.Join(dir, r.Hash()+".json")
	var stored bool
	err := withStorageLock(ctx, s.storage, dir, func() error {
		if s.storage.Exists(ctx, key) {
			return nil
		}
		keys, err := listKeys(ctx, s.storage, dir)
		if err != nil {
			return err
		}
		if len(keys) >= max {
			return errUnattributedFull
		}
		stored = true
		return s.storage.Store(ctx, key, data)
	})
	return stored, err
}

// addToSummary counts sessions, what report r says about one managed
// domain, in the domain's summary of r's day, and reports whether r was
// new to it.
func (s *reportStore) addToSummary(ctx context.Context, r *tlsrpt.Report, sessions tlsrpt.DomainSessions) (bool, error) {
	key := summaryKey(r.Day(), sessions.Domain)
	var added bool
	err := withStorageLock(ctx, s.storage, key, func() error {
		summary, err := s.loadSummary(ctx, key, sessions.Domain, r.Day())
		if err != nil {
			return err
		}
		if added, err = summary.Add(r, sessions); !added || err != nil {
			return err
		}
		data, err := json.Marshal(summary)
		if err != nil {
			return err
		}
		return s.storage.Store(ctx, key, data)
	})
	return added, err
}

func summaryKey(day, domain string) string {
	return path.Join(summariesPrefix, day, domain+".json")
}

// loadSummary returns the summary stored at key, or a new one.
func (s *reportStore) loadSummary(ctx context.Context, key, domain, day string) (*tlsrpt.Summary, error) {
	summary := tlsrpt.NewSummary(domain, day)
	if _, err := loadJSON(ctx, s.storage, key, summary); err != nil {
		return nil, err
	}
	return summary, nil
}

// summaries returns the stored summaries of domain from day from to day to
// (both YYYY-MM-DD, both included; "" for no bound), oldest first.
func (s *reportStore) summaries(ctx context.Context, domain, from, to string) ([]*tlsrpt.Summary, error) {
	days, err := s.daysBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return s.summariesOf(ctx, domain, days)
}

// daysBetween returns the days with summaries from day from to day to, as
// summaries takes them.
func (s *reportStore) daysBetween(ctx context.Context, from, to string) ([]string, error) {
	days, err := storedDays(ctx, s.storage, summariesPrefix)
	return slices.DeleteFunc(days, func(day string) bool { return day < from || to != "" && day > to }), err
}

// summariesOf returns the stored summaries of domain of the given days, in
// their order; a day without one has none.
func (s *reportStore) summariesOf(ctx context.Context, domain string, days []string) ([]*tlsrpt.Summary, error) {
	found := []*tlsrpt.Summary{}
	err := s.loadSummaries(ctx, domain, days, func(day string, data []byte) error {
		summary := tlsrpt.NewSummary(domain, day)
		found = append(found, summary)
		return json.Unmarshal(data, summary)
	})
	return found, err
}

// loadSummaries calls decode with the JSON of each stored summary of
// domain of the given days, in their order.
func (s *reportStore) loadSummaries(ctx context.Context, domain string, days []string, decode func(day string, data []byte) error) error {
	for _, day := range days {
		key := summaryKey(day, domain)
		data, err := s.storage.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := decode(day, data); err != nil {
			return fmt.Errorf("summary %s: %w", key, err)
		}
	}
	return nil
}

// Sessions adds up the summaries of domain of the UTC days from first to
// last, both included: what the readiness checks take from the reports.
func (s *reportStore) Sessions(ctx context.Context, domain string, first, last time.Time) (readiness.Sessions, error) {
	days, err := s.daysBetween(ctx, first.UTC().Format(time.DateOnly), last.UTC().Format(time.DateOnly))
	if err != nil {
		return readiness.Sessions{}, err
	}
	return s.sessionsOf(ctx, domain, days)
}

// sessionsOf adds up the summaries of domain of the given days. It reads
// only their counts, which a summary's JSON keeps under the keys of
// readiness.Sessions: the dashboard's table adds up 30 days for each of
// its rows.
func (s *reportStore) sessionsOf(ctx context.Context, domain string, days []string) (readiness.Sessions, error) {
	var total readiness.Sessions
	err := s.loadSummaries(ctx, domain, days, func(_ string, data []byte) error {
		var counts readiness.Sessions
		if err := json.Unmarshal(data, &counts); err != nil {
			return err
		}
		total.Reports += counts.Reports
		total.Successful += counts.Successful
		total.Failed += counts.Failed
		return nil
	})
	return total, err
}

// storedDays returns the days stored under prefix, sorted.
func storedDays(ctx context.Context, storage certmagic.Storage, prefix string) ([]string, error) {
	keys, err := listKeys(ctx, storage, prefix)
	if err != nil {
		return nil, err
	}
	var days []string
	for _, key := range keys {
		if day := path.Base(key); isDay(day) {
			days = append(days, day)
		}
	}
	slices.Sort(days)
	return days, nil
}

// listKeys lists the keys right under prefix: none when nothing was ever
// stored there, which some storages tell with fs.ErrNotExist.
func listKeys(ctx context.Context, storage certmagic.Storage, prefix string) ([]string, error) {
	keys, err := storage.List(ctx, prefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return keys, err
}

// loadJSON decodes the JSON stored at key into v, and reports whether
// there was any.
func loadJSON(ctx context.Context, storage certmagic.Storage, key string, v any) (bool, error) {
	data, err := storage.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	return true, nil
}

func isDay(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// removeExpired deletes the reports and summaries of the days that ended
// more than retention before now. One node at a time does it, at most once
// per cleanupInterval across the cluster (lastCleanupKey); it reports
// whether this call did.
func (s *reportStore) removeExpired(ctx context.Context, now time.Time, retention time.Duration) (bool, error) {
	return removeOldDays(ctx, s.storage, dayCleanup{lock: cleanupLockName, last: lastCleanupKey,
		prefixes: []string{reportsPrefix, unattributedPrefix, summariesPrefix}}, now, retention)
}

// dayCleanup names what removeOldDays removes (the days under prefixes),
// the lock it holds and where it notes when it last ran.
type dayCleanup struct {
	lock, last string
	prefixes   []string
}

// removeOldDays deletes the days under c.prefixes that ended more than
// retention before now, holding c.lock, unless c.last says this was done
// within cleanupInterval. It reports whether this call did it.
func removeOldDays(ctx context.Context, storage certmagic.Storage, c dayCleanup, now time.Time, retention time.Duration) (bool, error) {
	var ran bool
	err := withStorageLock(ctx, storage, c.lock, func() error {
		if last, err := storage.Load(ctx, c.last); err == nil {
			if t, err := time.Parse(time.RFC3339, string(last)); err == nil && now.Sub(t) >= 0 && now.Sub(t) < cleanupInterval {
				return nil
			}
		}
		// A day ends at the next day's midnight, and is removed once that
		// is more than retention ago: every day before the date of
		// now-retention.
		oldest := now.UTC().Add(-retention).Format(time.DateOnly)
		for _, prefix := range c.prefixes {
			days, err := storedDays(ctx, storage, prefix)
			if err != nil {
				return err
			}
			for _, day := range days {
				if day >= oldest {
					break
				}
				if err := storage.Delete(ctx, path.Join(prefix, day)); err != nil {
					return err
				}
			}
		}
		ran = true
		return storage.Store(ctx, c.last, []byte(now.UTC().Format(time.RFC3339)))
	})
	return ran, err
}

// withStorageLock runs f holding the storage lock name. Callers in this
// process queue for it here first: CertMagic's file system storage polls
// a lock held by someone else once a second, so concurrent requests of one
// node would otherwise wait up to a second each. The storage lock then
// only orders the nodes.
func withStorageLock(ctx context.Context, storage certmagic.Storage, name string, f func() error) error {
	unlock, err := processLocks.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := storage.Lock(ctx, name); err != nil {
		return fmt.Errorf("storage lock %s: %w", name, err)
	}
	// Unlocked even when the request was canceled meanwhile.
	defer storage.Unlock(context.WithoutCancel(ctx), name)
	return f()
}

// processLocks are the locks of every reportStore in the process: the
// stores of successive configs share the storage, so they share these.
var processLocks = &localLocks{held: map[string]*localLock{}}

// localLocks is a set of named locks within one process.
type localLocks struct {
	mu   sync.Mutex
	held map[string]*localLock
}

type localLock struct {
	token   chan struct{} // holds one value while the lock is free
	waiters int           // holders and waiters; the lock is dropped at 0
}

// lock takes the lock name, waiting for it as long as ctx allows, and
// returns the function that releases it.
func (l *localLocks) lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	lk := l.held[name]
	if lk == nil {
		lk = &localLock{token: make(chan struct{}, 1)}
		lk.token <- struct{}{}
		l.held[name] = lk
	}
	lk.waiters++
	l.mu.Unlock()
	select {
	case <-lk.token:
		return func() { lk.token <- struct{}{}; l.leave(name, lk) }, nil
	case <-ctx.Done():
		l.leave(name, lk)
		return nil, ctx.Err()
	}
}

// leave counts one holder or waiter of lk out, and forgets lk when none is
// left, so the set holds only the locks in use.
func (l *localLocks) leave(name string, lk *localLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lk.waiters--; lk.waiters == 0 {
		delete(l.held, name)
	}
}
