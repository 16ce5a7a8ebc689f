package caddymtasts

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/net/publicsuffix"
)

// newCertWindow is the span over which new_certs_per_domain_hour counts.
const newCertWindow = time.Hour

// certBudget counts, per registered domain, the certificates for new names
// allowed within the last newCertWindow.
type certBudget struct {
	mu sync.Mutex
	// When each of the latest new certificates was allowed, oldest first;
	// no more than the limit, so an entry stays small. The LRU bounds the
	// number of registered domains.
	spent *lru.Cache[string, []time.Time]
}

func newCertBudget(size int) (*certBudget, error) {
	spent, err := lru.New[string, []time.Time](size)
	if err != nil {
		return nil, err
	}
	return &certBudget{spent: spent}, nil
}

// take counts one new certificate for registered at now and reports true,
// unless limit of them were allowed within the window before now.
func (b *certBudget) take(registered string, now time.Time, limit int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	times, _ := b.spent.Get(registered)
	for len(times) > 0 && now.Sub(times[0]) >= newCertWindow {
		times = times[1:]
	}
	if len(times) >= limit {
		b.spent.Add(registered, times)
		return false
	}
	b.spent.Add(registered, append(times, now))
	return true
}

// registeredDomain returns the domain under which domain was registered:
// its public suffix plus one label, example.com for a.w.example.com or
// example.co.uk for a.example.co.uk. Under a TLD the Public Suffix List does
// not know (.test, an internal one) the list's default rule applies: the
// TLD is the suffix, so a.w.example.test counts under example.test.
func registeredDomain(domain string) string {
	registered, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil { // domain is a public suffix itself
		return domain
	}
	return registered
}

// certsPrefix is where CertMagic stores certificates: one directory per
// issuer, certmagic.StorageKeys.CertsPrefix(issuerKey).
const certsPrefix = "certificates"

// issuersListInterval is how long a listing of the issuer directories is
// used. Listing is slow: FileStorage walks, reading the directory of every
// name of every issuer; listed on every check, 1,000 stored names made an
// uncached check take about 1.5 ms instead of 0.1 ms (BenchmarkPermission).
// And a new issuer directory only appears with the first certificate
// CertMagic stores from that CA, which it has just obtained: the next check
// for the name comes when it is loaded again, usually much later.
const issuersListInterval = time.Minute

// storedCerts tells whether Caddy's storage holds a certificate for a name.
type storedCerts struct {
	storage certmagic.Storage
	now     func() time.Time
	logger  *zap.Logger

	mu      sync.Mutex
	issuers []string  // the issuer keys under certsPrefix
	listed  time.Time // when issuers was listed; zero: never
}

// has reports whether the storage holds a certificate for name from any
// issuer, where CertMagic keeps it (certmagic.StorageKeys.SiteCert).
func (s *storedCerts) has(ctx context.Context, name string) bool {
	for _, issuer := range s.issuerKeys(ctx) {
		if s.storage.Exists(ctx, certmagic.StorageKeys.SiteCert(issuer, name)) {
			return true
		}
	}
	return false
}

// issuerKeys returns the issuers that have certificates in the storage,
// as listed within issuersListInterval. If the storage cannot be listed,
// the last listing stands, and before the first one every name counts as
// new: a renewal may be refused, but no name is ordered without a bound.
func (s *storedCerts) issuerKeys(ctx context.Context) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.listed.IsZero() && now.Sub(s.listed) < issuersListInterval {
		return s.issuers
	}
	keys, err := s.storage.List(ctx, certsPrefix, false)
	switch {
	case errors.Is(err, fs.ErrNotExist): // no certificate stored yet
		keys = nil
	case err != nil:
		s.logger.Warn("cannot list the certificates in storage; using the last listing",
			zap.Strings("issuers", s.issuers), zap.Error(err))
		return s.issuers
	}
	issuers := make([]string, len(keys)) // new: callers range over the old one unlocked
	for i, key := range keys {
		issuers[i] = path.Base(key)
	}
	s.issuers, s.listed = issuers, now
	return issuers
}
