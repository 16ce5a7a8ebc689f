package caddymtasts

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
	"github.com/coredns-mtasts/mtasts/policy"
)

// reportWindowDays is how many days of TLS reports the dashboard adds up,
// today included: senders report daily, so a month shows a trend and a
// failure that stopped.
const reportWindowDays = 30

// rowReaders is how many rows of a page are read at once. A row waits for
// one DNS lookup and a few dozen storage reads; eight keep two cores busy
// without queuing the page's lookups behind each other.
const rowReaders = 8

// The states of a domain's policy, as the policy handler would answer.
const (
	policyManaged    = "managed"     // 200: DNS vouches for a valid policy
	policyNotManaged = "not_managed" // 404
	policyFailed     = "failed"      // 503: DNS failed, or publishes something invalid
)

// domainStatus is a row of the dashboard's table: what DNS and Caddy's
// storage say about one domain now.
type domainStatus struct {
	Domain      string                  `json:"domain"`
	Policy      publishedPolicy         `json:"policy"`
	Certificate *storedCertificate      `json:"certificate"` // null: none stored
	TLSReports  readiness.Sessions      `json:"tls_reports"` // of the last reportWindowDays days
	Readiness   *readiness.DomainReport `json:"readiness"`   // the mta_sts app's latest; null: not checked
	// What could not be read from the storage.
	Errors []string `json:"errors,omitempty"`
}

// publishedPolicy is the domain's policy as the policy handler reads it.
type publishedPolicy struct {
	State  string      `json:"state"` // policyManaged, policyNotManaged or policyFailed
	Mode   policy.Mode `json:"mode,omitempty"`
	ID     string      `json:"id,omitempty"`
	MX     []string    `json:"mx,omitempty"`
	MaxAge uint32      `json:"max_age,omitempty"`
	Error  string      `json:"error,omitempty"` // why not managed, or what failed
	text   string      // the policy as served
}

// storedCertificate is the certificate for mta-sts.D in Caddy's storage.
type storedCertificate struct {
	Issuer        string    `json:"issuer"` // CertMagic's issuer key, the directory it is stored under
	NotAfter      time.Time `json:"not_after"`
	ExpiresInDays int       `json:"expires_in_days"` // whole days from now; negative once expired
}

// statusReader reads what the dashboard shows about domains.
type statusReader struct {
	source  *policySource
	storage certmagic.Storage
	reports *reportStore
}

// readRows reads the row of each domain of the page, rowReaders at a time.
func (s *statusReader) readRows(ctx context.Context, page domainPage) []domainStatus {
	rows := make([]domainStatus, len(page.domains))
	days := s.windowDays(page.sumsDays)
	slots := make(chan struct{}, rowReaders)
	var wg sync.WaitGroup
	for i, domain := range page.domains {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			rows[i] = s.read(ctx, domain, page.issuers, days)
		})
	}
	wg.Wait()
	return rows
}

// read reads the row of domain, from the certificates of issuers and the
// summaries of days.
func (s *statusReader) read(ctx context.Context, domain string, issuers, days []string) domainStatus {
	row := domainStatus{Domain: domain, Policy: s.readPolicy(ctx, domain)}
	var err error
	if row.Certificate, err = readCertificate(ctx, s.storage, domain, issuers); err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	if c := row.Certificate; c != nil {
		c.ExpiresInDays = int(math.Floor(c.NotAfter.Sub(time.Now()).Hours() / 24))
	}
	if row.TLSReports, err = s.reports.sessionsOf(ctx, domain, days); err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	row.TLSReports.Days = reportWindowDays
	if row.Readiness, err = loadReadiness(ctx, s.storage, domain); err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	return row
}

// readPolicy looks the policy of domain up exactly as the policy handler
// does, so the dashboard shows what senders get.
func (s *statusReader) readPolicy(ctx context.Context, domain string) publishedPolicy {
	body, err := s.source.lookup(ctx, domain)
	switch {
	case errors.Is(err, errNotManaged):
		return publishedPolicy{State: policyNotManaged, Error: err.Error()}
	case err != nil:
		return publishedPolicy{State: policyFailed, Error: err.Error()}
	}
	// The lookup parsed and checked the body already.
	p, _ := policy.Parse(body)
	return publishedPolicy{State: policyManaged, Mode: p.Mode, ID: policy.IDOf(body), MX: p.MX, MaxAge: p.MaxAge, text: string(body)}
}

// windowDays returns those of days (sorted) within the report window that
// ends today.
func (s *statusReader) windowDays(days []string) []string {
	now := time.Now().UTC()
	first := now.AddDate(0, 0, 1-reportWindowDays).Format(time.DateOnly)
	last := now.Format(time.DateOnly)
	var in []string
	for _, day := range days {
		if day >= first && day <= last {
			in = append(in, day)
		}
	}
	return in
}

// readCertificate returns the certificate for mta-sts.D that CertMagic
// keeps in the storage (certmagic.StorageKeys.SiteCert) under any of
// issuers, the one that expires last; nil when there is none.
func readCertificate(ctx context.Context, storage certmagic.Storage, domain string, issuers []string) (*storedCertificate, error) {
	name := policyHostPrefix + domain
	var found *storedCertificate
	for _, issuer := range issuers {
		data, err := storage.Load(ctx, certmagic.StorageKeys.SiteCert(issuer, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return found, err
		}
		notAfter, err := leafNotAfter(data)
		if err != nil {
			return found, fmt.Errorf("certificate for %s from %s: %w", name, issuer, err)
		}
		if found == nil || notAfter.After(found.NotAfter) {
			found = &storedCertificate{Issuer: issuer, NotAfter: notAfter}
		}
	}
	return found, nil
}

// loadReadiness returns the latest readiness result of domain that the
// mta_sts app keeps in the storage, nil if it was never checked.
func loadReadiness(ctx context.Context, storage certmagic.Storage, domain string) (*readiness.DomainReport, error) {
	key := domainReportKey(domain)
	data, err := storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r readiness.DomainReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("readiness result %s: %w", key, err)
	}
	return &r, nil
}

// leafNotAfter returns the expiry of the first certificate of a PEM chain,
// the leaf in the chains CertMagic stores.
func leafNotAfter(chain []byte) (time.Time, error) {
	block, _ := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	return cert.NotAfter, nil
}

// domainFromPath returns the domain a path names, in canonical form.
func domainFromPath(p string) (string, error) {
	if strings.Contains(p, "/") {
		return "", fmt.Errorf("%q is no domain name", p)
	}
	return policy.NormalizeHost(p)
}
