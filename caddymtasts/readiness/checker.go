// Package readiness checks whether a mail domain is ready for an MTA-STS
// policy in mode enforce: whether every MX host of the domain passes what a
// sender checks under such a policy (RFC 8461 §4.1, §4.2, §5), and whether
// the TLS reports senders sent about it (RFC 8460) show no failures.
//
// MX hosts are shared by many domains (a provider's own MX, the large mail
// services), so a Checker probes each distinct host at most once per
// interval, whatever the number of domains that use it, with a bounded
// number of probes at once.
package readiness

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coredns-mtasts/mtasts/policy"
)

// Defaults of Config.
const (
	DefaultPort        = 25
	DefaultTimeout     = 30 * time.Second
	DefaultInterval    = 24 * time.Hour
	DefaultConcurrency = 10
	DefaultReportDays  = 7
)

// DNS is where a Checker reads what a sender reads before it connects.
type DNS interface {
	// Policy returns the MTA-STS policy the domain publishes now.
	Policy(ctx context.Context, domain string) (policy.Policy, error)
	// MXHosts returns the domain's MX hosts, most preferred first,
	// without a null MX (RFC 7505).
	MXHosts(ctx context.Context, domain string) ([]string, error)
	// Addresses returns the addresses of an MX host, in the order a probe
	// tries them.
	Addresses(ctx context.Context, host string) ([]netip.Addr, error)
}

// TLSReports gives what senders reported about a domain in TLS reports
// (RFC 8460).
type TLSReports interface {
	// Sessions returns the sessions counted in the reports about domain
	// that cover the UTC days from first to last, both included; no
	// reports is Sessions{} and no error.
	Sessions(ctx context.Context, domain string, first, last time.Time) (Sessions, error)
}

// Sessions is what the TLS reports of some days say about one domain.
type Sessions struct {
	Days       int   `json:"days"` // today and the days before it
	Reports    int   `json:"reports"`
	Successful int64 `json:"successful_sessions"`
	Failed     int64 `json:"failed_sessions"`
}

// Config sets up a Checker. Only DNS is required.
type Config struct {
	// Where the policy, the MX hosts and their addresses are read.
	DNS DNS
	// Reports, when set, adds the TLS reports of the last ReportDays days
	// to each domain's verdict. Default for ReportDays: 7.
	Reports    TLSReports
	ReportDays int

	// The name the probes give in EHLO, so that the MX hosts' operators
	// can tell who connects. Default: this machine's host name.
	EHLOName string
	// The SMTP port probed. Default: 25; other ports are for tests.
	Port int
	// The roots a certificate chain must lead to. Default (nil): the
	// system's roots, the ones senders use.
	Roots *x509.CertPool
	// How long one probe may take, from the first connection attempt to
	// the end of the TLS handshake. Default: 30s.
	Timeout time.Duration
	// How long a host's result is used before the host is probed again.
	// Default: 24h.
	Interval time.Duration
	// How many probes run at once. Default: 10.
	Concurrency int
	// Probed, when set, is called with the result of each probe made,
	// not with results reused from the interval.
	Probed func(HostResult)
	// The clock. Default: time.Now.
	Now func() time.Time
}

// Checker checks domains and probes their MX hosts. Its methods may be
// called concurrently.
type Checker struct {
	cfg   Config
	hosts *hostCache
	slots chan struct{} // one per probe running
}

// New applies the defaults and returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.DNS == nil {
		return nil, errors.New("readiness: no DNS")
	}
	if cfg.EHLOName == "" {
		name, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("readiness: no EHLO name given, and no host name: %w", err)
		}
		cfg.EHLOName = name
	}
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.ReportDays = cmp.Or(cfg.ReportDays, DefaultReportDays)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Port < 0 || cfg.Port > 65535:
		return nil, fmt.Errorf("readiness: port %d: want 1 to 65535", cfg.Port)
	case cfg.Concurrency < 0 || cfg.ReportDays < 0 || cfg.Timeout < 0 || cfg.Interval < 0:
		return nil, fmt.Errorf("readiness: negative concurrency %d, report days %d, timeout %s or interval %s",
			cfg.Concurrency, cfg.ReportDays, cfg.Timeout, cfg.Interval)
	case strings.ContainsAny(cfg.EHLOName, " \t\r\n"):
		return nil, fmt.Errorf("readiness: EHLO name %q: one name, no spaces", cfg.EHLOName)
	}
	return &Checker{
		cfg:   cfg,
		hosts: &hostCache{interval: cfg.Interval, now: cfg.Now, entries: map[string]*hostEntry{}},
		slots: make(chan struct{}, cfg.Concurrency),
	}, nil
}

// DomainReport is the verdict on one domain, with the evidence.
type DomainReport struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	// Ready says that a policy in mode enforce would not keep mail from
	// the domain's MX hosts: every one passes a sender's checks, and the
	// TLS reports, if any, show no failed session.
	Ready bool `json:"ready"`
	// Why the domain is not ready; empty when it is.
	Reasons []string `json:"reasons,omitempty"`
	// The mode of the policy the domain publishes now, its id and its mx
	// patterns: what the mta_sts app compares from one run to the next.
	Mode     policy.Mode  `json:"mode,omitempty"`
	PolicyID string       `json:"policy_id,omitempty"`
	PolicyMX []string     `json:"policy_mx,omitempty"`
	MXHosts  []HostResult `json:"mx_hosts"`
	// What the TLS reports say, when the Checker reads them.
	TLSReports *Sessions `json:"tls_reports,omitempty"`
}

// CheckDomain reads the domain's policy and MX hosts, probes every MX host
// (or reuses its result of the interval) and gives the verdict.
func (c *Checker) CheckDomain(ctx context.Context, domain string) DomainReport {
	r := DomainReport{Domain: domain, CheckedAt: c.cfg.Now(), MXHosts: []HostResult{}}
	p, err := c.cfg.DNS.Policy(ctx, domain)
	if err != nil {
		r.Reasons = append(r.Reasons, fmt.Sprintf("no policy to enforce: %v", err))
		return r
	}
	r.Mode, r.PolicyID, r.PolicyMX = p.Mode, p.ID(), p.MX
	hosts, err := c.cfg.DNS.MXHosts(ctx, domain)
	switch {
	case err != nil:
		r.Reasons = append(r.Reasons, fmt.Sprintf("MX lookup: %v", err))
		return r
	case len(hosts) == 0:
		r.Reasons = append(r.Reasons, "no MX hosts")
		return r
	}
	r.MXHosts = c.probeAll(ctx, hosts)
	for _, h := range r.MXHosts {
		switch {
		case h.Outcome != OutcomePass:
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s: %s", h.Host, h.Failure))
		case !p.Matches(h.Host):
			// The plugin lists every MX host in the policy; a host it
			// does not list would be refused by senders (§4.1).
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s: not matched by any mx pattern of the policy %v", h.Host, p.MX))
		}
	}
	if c.cfg.Reports != nil {
		r.Reasons = append(r.Reasons, c.readReports(ctx, &r)...)
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// probeAll probes hosts concurrently and returns their results in order.
func (c *Checker) probeAll(ctx context.Context, hosts []string) []HostResult {
	results := make([]HostResult, len(hosts))
	var wg sync.WaitGroup
	for i, host := range hosts {
		wg.Go(func() { results[i] = c.ProbeHost(ctx, host) })
	}
	wg.Wait()
	return results
}

// readReports sets r.TLSReports and returns the reasons they give against
// enforce.
func (c *Checker) readReports(ctx context.Context, r *DomainReport) []string {
	last := c.cfg.Now()
	s, err := c.cfg.Reports.Sessions(ctx, r.Domain, last.AddDate(0, 0, 1-c.cfg.ReportDays), last)
	if err != nil {
		// Evidence that cannot be read is no evidence of readiness.
		return []string{fmt.Sprintf("TLS reports: %v", err)}
	}
	s.Days = c.cfg.ReportDays
	r.TLSReports = &s
	if s.Failed > 0 {
		return []string{fmt.Sprintf("TLS reports of the last %d days: %d of %d sessions failed",
			s.Days, s.Failed, s.Failed+s.Successful)}
	}
	return nil
}
