package caddymtasts

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/coredns-mtasts/mtasts/caddymtasts/tlsrpt"
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
	Domain      string            `json:"domain"`
	Policy      policyState       `json:"policy"`
	Certificate *certificateState `json:"certificate"` // null: none stored
	TLSReports  reportTotals      `json:"tls_reports"`
	Readiness   *readinessResult  `json:"readiness"` // null: not checked
	// What could not be read from the storage.
	Errors []string `json:"errors,omitempty"`
}

// policyState is the domain's policy as the policy handler reads it.
type policyState struct {
	State  string      `json:"state"` // policyManaged, policyNotManaged or policyFailed
	Mode   policy.Mode `json:"mode,omitempty"`
	ID     string      `json:"id,omitempty"`
	MX     []string    `json:"mx,omitempty"`
	MaxAge uint32      `json:"max_age,omitempty"`
	Error  string      `json:"error,omitempty"` // why not managed, or what failed
	text   string      // the policy as served
}

// certificateState is the certificate for mta-sts.D in Caddy's storage.
type certificateState struct {
	Issuer        string    `json:"issuer"` // CertMagic's issuer key, the directory it is stored under
	NotAfter      time.Time `json:"not_after"`
	ExpiresInDays int       `json:"expires_in_days"` // whole days from now; negative once expired
}

// reportTotals adds up a domain's TLS report summaries of the window.
type reportTotals struct {
	Days       int   `json:"days"`
	Reports    int   `json:"reports"`
	Successful int64 `json:"successful_sessions"`
	Failed     int64 `json:"failed_sessions"`
}

// statusReader reads what the dashboard shows about domains.
type statusReader struct {
	source  *policySource
	storage certmagic.Storage
	reports *reportStore
	now     func() time.Time
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
			rows[i], _ = s.read(ctx, domain, page.issuers, days)
		})
	}
	wg.Wait()
	return rows
}

// read reads the row of domain, from the certificates of issuers and the
// summaries of days, and returns it with those summaries.
func (s *statusReader) read(ctx context.Context, domain string, issuers, days []string) (domainStatus, []*tlsrpt.Summary) {
	row := domainStatus{Domain: domain, Policy: s.readPolicy(ctx, domain)}
	var err error
	if row.Certificate, err = readCertificate(ctx, s.storage, domain, issuers); err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	if c := row.Certificate; c != nil {
		c.ExpiresInDays = int(math.Floor(c.NotAfter.Sub(s.now()).Hours() / 24))
	}
	summaries, err := s.reports.summariesOf(ctx, domain, days)
	if err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	row.TLSReports.Days = reportWindowDays
	for _, sum := range summaries {
		row.TLSReports.Reports += sum.Reports
		row.TLSReports.Successful += sum.SuccessfulSessions
		row.TLSReports.Failed += sum.FailedSessions
	}
	if row.Readiness, err = loadReadiness(ctx, s.storage, domain); err != nil {
		row.Errors = append(row.Errors, err.Error())
	}
	return row, summaries
}

// readPolicy looks the policy of domain up exactly as the policy handler
// does, so the dashboard shows what senders get.
func (s *statusReader) readPolicy(ctx context.Context, domain string) policyState {
	body, err := s.source.lookup(ctx, domain)
	switch {
	case errors.Is(err, errNotManaged):
		return policyState{State: policyNotManaged, Error: err.Error()}
	case err != nil:
		return policyState{State: policyFailed, Error: err.Error()}
	}
	// The lookup parsed and checked the body already.
	p, _ := policy.Parse(body)
	return policyState{State: policyManaged, Mode: p.Mode, ID: policy.IDOf(body), MX: p.MX, MaxAge: p.MaxAge, text: string(body)}
}

// windowDays returns those of days (sorted) within the report window that
// ends today.
func (s *statusReader) windowDays(days []string) []string {
	now := s.now().UTC()
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
func readCertificate(ctx context.Context, storage certmagic.Storage, domain string, issuers []string) (*certificateState, error) {
	name := policyHostPrefix + domain
	var found *certificateState
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
			found = &certificateState{Issuer: issuer, NotAfter: notAfter}
		}
	}
	return found, nil
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
