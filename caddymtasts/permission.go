package caddymtasts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(PermissionByMTASTS{})
}

// Defaults of PermissionByMTASTS.
const (
	defaultAllowTTL   = 10 * time.Minute
	defaultDenyTTL    = 30 * time.Second
	defaultStaleAllow = 24 * time.Hour
	defaultCacheSize  = 10000
	defaultNewCerts   = 10
)

// decisionPool shares the remembered decisions among the permission modules
// of successive configs, so a config reload during a DNS outage does not
// forget which domains were allowed.
var decisionPool = caddy.NewUsagePool()

// PermissionByMTASTS allows on-demand TLS to obtain, or load from storage, a
// certificate for mta-sts.D only while the authoritative DNS publishes a
// valid policy for D at mta-sts.D TXT, the same lookup the handler does.
// Any other name (another host of D, a wildcard, an IP address) is denied
// without asking DNS.
//
// CertMagic asks before it loads a certificate from storage, which for
// on-demand TLS can be on every handshake that misses its in-memory cache,
// so answers are remembered: allowed domains for allow_ttl, denied ones
// for deny_ttl. While DNS fails, a domain allowed within stale_allow stays
// allowed, so stored certificates keep working; a domain never allowed is
// refused, with an error rather than a denial so that Caddy logs it as a
// failure.
//
// A name for which Caddy's storage holds no certificate yet is allowed only
// while its registered domain has had fewer than new_certs_per_domain_hour
// new certificates within the hour, so that one customer's zone cannot use
// up the ACME account all customers share.
type PermissionByMTASTS struct {
	PolicyDNS

	// How long a domain that DNS said is managed stays allowed before DNS
	// is asked again. Default: 10m.
	AllowTTL caddy.Duration `json:"allow_ttl,omitempty"`

	// How long a domain that DNS said is not managed, or that could not be
	// looked up, stays denied before DNS is asked again. Keep it short: a
	// new customer's certificate waits for it. Default: 30s.
	DenyTTL caddy.Duration `json:"deny_ttl,omitempty"`

	// While DNS lookups fail, how long after DNS last said a domain is
	// managed its certificate stays allowed. Default: 24h.
	StaleAllow caddy.Duration `json:"stale_allow,omitempty"`

	// How many allowed domains, and separately how many denied domains,
	// are remembered; the least recently used are forgotten first. Keeping
	// them apart means a flood of bogus names cannot push out the domains
	// whose certificates are being served. As many registered domains have
	// their new certificates counted (new_certs_per_domain_hour).
	// Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	// How many certificates for new names, ones Caddy's storage holds no
	// certificate for, may be allowed within any hour under one registered
	// domain (public suffix plus one label: example.com for
	// mta-sts.a.w.example.com). A wildcard MX record makes every name below
	// it a managed mail domain, and each new name an order on the ACME
	// account all customers share; this keeps one zone from using the
	// account up. Names with a stored certificate (restarts, renewals) do
	// not count and are never refused for it. At least 1. Default: 10.
	NewCertsPerDomainHour int `json:"new_certs_per_domain_hour,omitempty"`

	now       func() time.Time // the clock for every TTL and the budget; time.Now but in tests
	source    *policySource
	stored    *storedCerts // which names have a certificate in Caddy's storage
	decisions *decisions
	poolKey   string
	logger    *zap.Logger
	warnings  *rateLog // the warnings that repeat with every handshake while they last
}

// CaddyModule returns the Caddy module information.
func (PermissionByMTASTS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.permission.mta_sts",
		New: func() caddy.Module { return new(PermissionByMTASTS) },
	}
}

// Provision applies the defaults, sets up the DNS client and joins the
// decisions shared with earlier configs that ask the same servers.
func (p *PermissionByMTASTS) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	if p.now == nil {
		p.now = time.Now
	}
	p.stored = &storedCerts{storage: ctx.Storage(), now: p.now, logger: p.logger}
	p.warnings = newRateLog(p.logger, failureLogInterval)
	p.warnings.now = p.now
	setDefault(&p.AllowTTL, defaultAllowTTL)
	setDefault(&p.DenyTTL, defaultDenyTTL)
	setDefault(&p.StaleAllow, defaultStaleAllow)
	if p.CacheSize == 0 {
		p.CacheSize = defaultCacheSize
	}
	if p.NewCertsPerDomainHour == 0 {
		p.NewCertsPerDomainHour = defaultNewCerts
	}
	if p.CacheSize < 0 {
		return fmt.Errorf("cache_size %d is negative", p.CacheSize)
	}
	source, err := p.PolicyDNS.source()
	if err != nil {
		return err
	}
	p.source = source
	fresh, err := newDecisions(p.CacheSize)
	if err != nil {
		return err
	}
	p.poolKey = fmt.Sprintf("%q %d", source.servers(), p.CacheSize)
	shared, _ := decisionPool.LoadOrStore(p.poolKey, fresh)
	p.decisions = shared.(*decisions)
	return registerMetrics(ctx.GetMetricsRegistry())
}

func setDefault(d *caddy.Duration, def time.Duration) {
	if *d == 0 {
		*d = caddy.Duration(def)
	}
}

// Validate checks the durations and the bound on new certificates.
func (p *PermissionByMTASTS) Validate() error {
	for name, d := range map[string]caddy.Duration{
		"allow_ttl": p.AllowTTL, "deny_ttl": p.DenyTTL, "stale_allow": p.StaleAllow,
	} {
		if d < 0 {
			return fmt.Errorf("%s %s is negative", name, time.Duration(d))
		}
	}
	if p.NewCertsPerDomainHour < 0 {
		return fmt.Errorf("new_certs_per_domain_hour %d is negative", p.NewCertsPerDomainHour)
	}
	return nil
}

// Cleanup lets go of the shared decisions and closes the DNS connections.
func (p *PermissionByMTASTS) Cleanup() error {
	_, err := decisionPool.Delete(p.poolKey)
	return errors.Join(err, p.source.close())
}

// CertificateAllowed implements caddytls.OnDemandPermission. A denial wraps
// caddytls.ErrPermissionDenied; either way CertMagic neither loads a
// certificate from storage nor orders one.
func (p *PermissionByMTASTS) CertificateAllowed(ctx context.Context, name string) error {
	outcome, err := p.decide(ctx, name)
	permissionDecisions.WithLabelValues(outcome).Inc()
	// Check, unlike Debug, builds no fields unless debug logging is on.
	if c := p.logger.Check(zapcore.DebugLevel, "permission decision"); c != nil {
		c.Write(zap.String("name", name), zap.String("outcome", outcome), zap.Error(err))
	}
	return err
}

// decide returns the permission for name and the outcome to count.
func (p *PermissionByMTASTS) decide(ctx context.Context, name string) (string, error) {
	domain, err := policyDomain(name)
	if err != nil {
		return "denied_name", fmt.Errorf("%w: %w", caddytls.ErrPermissionDenied, err)
	}
	if outcome, err := p.remembered(domain); outcome != "" {
		return outcome, err
	}
	lookup := p.decisions.start(p.now())
	_, err = p.source.lookup(ctx, domain)
	switch {
	case err == nil:
		return p.allowManaged(ctx, name, domain, lookup)
	case errors.Is(err, errNotManaged):
		lookup.err = fmt.Errorf("%w: %w", caddytls.ErrPermissionDenied, err)
		p.decisions.record(domain, lookup)
		return "denied", lookup.err
	}
	return p.noAnswer(name, domain, lookup, err)
}

// remembered returns the outcome and the answer remembered for domain, or
// no outcome when nothing is remembered within its TTL.
func (p *PermissionByMTASTS) remembered(domain string) (string, error) {
	now := p.now()
	if a, ok := p.decisions.allowed.Get(domain); ok && now.Sub(a.at) < time.Duration(p.AllowTTL) {
		return "allowed_cached", nil
	}
	if d, ok := p.decisions.denied.Get(domain); ok && now.Sub(d.at) < time.Duration(p.DenyTTL) {
		return "denied_cached", d.err
	}
	return "", nil
}

// allowManaged decides for name, whose domain DNS has just said is
// managed: allowed, unless Caddy's storage has no certificate for name and
// its registered domain has used up its new certificates for the hour.
func (p *PermissionByMTASTS) allowManaged(ctx context.Context, name, domain string, lookup decision) (string, error) {
	if !p.stored.has(ctx, name) {
		registered := registeredDomain(domain)
		if !p.decisions.newCerts.take(registered, lookup.at, p.NewCertsPerDomainHour) {
			lookup.err = fmt.Errorf("%w: names under %s had %d new certificates within the hour, the most new_certs_per_domain_hour allows",
				caddytls.ErrPermissionDenied, registered, p.NewCertsPerDomainHour)
			p.decisions.record(domain, lookup)
			p.warnings.log(zap.WarnLevel, "denied_rate", "refusing a certificate for a new name: its registered domain had as many new certificates within the hour as allowed",
				zap.String("name", name), zap.String("registered_domain", registered),
				zap.Int("new_certs_per_domain_hour", p.NewCertsPerDomainHour))
			return "denied_rate", lookup.err
		}
	}
	p.decisions.record(domain, lookup)
	return "allowed", nil
}

// noAnswer decides for name when DNS failed, or published an invalid
// policy: allowed if DNS said domain is managed within stale_allow, and
// otherwise refused with an error that is no denial.
func (p *PermissionByMTASTS) noAnswer(name, domain string, lookup decision, err error) (string, error) {
	if a, ok := p.decisions.allowed.Peek(domain); ok && lookup.at.Sub(a.at) < time.Duration(p.StaleAllow) {
		p.warnings.log(zap.WarnLevel, "allowed_stale", "DNS lookup failed; allowing a certificate for a domain that was managed recently",
			zap.String("name", name), zap.Time("last_managed", a.at), zap.Error(err))
		return "allowed_stale", nil
	}
	// Remembering the failure spares the handshakes that follow from each
	// waiting out the timeout while DNS is down.
	lookup.err = fmt.Errorf("cannot tell whether %s is managed: %w", domain, err)
	p.decisions.record(domain, lookup)
	return "failed", lookup.err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PermissionByMTASTS)(nil)
	_ caddy.Validator             = (*PermissionByMTASTS)(nil)
	_ caddy.CleanerUpper          = (*PermissionByMTASTS)(nil)
	_ caddytls.OnDemandPermission = (*PermissionByMTASTS)(nil)
)
