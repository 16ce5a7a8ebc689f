package caddymtasts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Permission{})
}

// Defaults of Permission.
const (
	defaultAllowTTL   = 10 * time.Minute
	defaultDenyTTL    = 30 * time.Second
	defaultStaleAllow = 24 * time.Hour
	defaultCacheSize  = 10000
)

// decisionPool shares the remembered decisions among the permission modules
// of successive configs, so a config reload during a DNS outage does not
// forget which domains were allowed.
var decisionPool = caddy.NewUsagePool()

// Permission allows on-demand TLS to obtain, or load from storage, a
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
type Permission struct {
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
	// whose certificates are being served. Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	source    *policySource
	decisions *decisions
	poolKey   string
	logger    *zap.Logger
}

// decisions remembers what DNS said, per Policy Domain.
type decisions struct {
	allowed *lru.Cache[string, time.Time] // when DNS last said the domain is managed
	denied  *lru.Cache[string, denial]
}

type denial struct {
	at  time.Time
	err error
}

// CaddyModule returns the Caddy module information.
func (Permission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.permission.mta_sts",
		New: func() caddy.Module { return new(Permission) },
	}
}

// Provision applies the defaults, sets up the DNS client and joins the
// decisions shared with earlier configs that ask the same servers.
func (p *Permission) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	setDefault(&p.AllowTTL, defaultAllowTTL)
	setDefault(&p.DenyTTL, defaultDenyTTL)
	setDefault(&p.StaleAllow, defaultStaleAllow)
	if p.CacheSize == 0 {
		p.CacheSize = defaultCacheSize
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

func newDecisions(size int) (*decisions, error) {
	allowed, err := lru.New[string, time.Time](size)
	if err != nil {
		return nil, err
	}
	denied, err := lru.New[string, denial](size)
	if err != nil {
		return nil, err
	}
	return &decisions{allowed: allowed, denied: denied}, nil
}

// Validate checks the durations.
func (p *Permission) Validate() error {
	for name, d := range map[string]caddy.Duration{
		"allow_ttl": p.AllowTTL, "deny_ttl": p.DenyTTL, "stale_allow": p.StaleAllow,
	} {
		if d < 0 {
			return fmt.Errorf("%s %s is negative", name, time.Duration(d))
		}
	}
	return nil
}

// Cleanup lets go of the shared decisions and closes the DNS connections.
func (p *Permission) Cleanup() error {
	_, err := decisionPool.Delete(p.poolKey)
	return errors.Join(err, p.source.close())
}

// CertificateAllowed implements caddytls.OnDemandPermission. A denial wraps
// caddytls.ErrPermissionDenied; either way CertMagic neither loads a
// certificate from storage nor orders one.
func (p *Permission) CertificateAllowed(ctx context.Context, name string) error {
	outcome, err := p.decide(ctx, name)
	permissionDecisions.WithLabelValues(outcome).Inc()
	return err
}

// decide returns the permission for name and the outcome to count.
func (p *Permission) decide(ctx context.Context, name string) (string, error) {
	domain, err := policyDomain(name)
	if err != nil {
		return "denied_name", fmt.Errorf("%w: %w", caddytls.ErrPermissionDenied, err)
	}
	now := time.Now()
	allowedAt, wasAllowed := p.decisions.allowed.Get(domain)
	if wasAllowed && now.Sub(allowedAt) < time.Duration(p.AllowTTL) {
		return "allowed_cached", nil
	}
	if d, ok := p.decisions.denied.Get(domain); ok && now.Sub(d.at) < time.Duration(p.DenyTTL) {
		return "denied_cached", d.err
	}

	_, err = p.source.lookup(ctx, domain)
	switch {
	case err == nil:
		p.decisions.allowed.Add(domain, now)
		p.decisions.denied.Remove(domain)
		return "allowed", nil
	case errors.Is(err, errNotManaged):
		p.decisions.allowed.Remove(domain)
		err = fmt.Errorf("%w: %w", caddytls.ErrPermissionDenied, err)
		p.decisions.denied.Add(domain, denial{at: now, err: err})
		return "denied", err
	}

	// DNS failed, or published an invalid policy: there is no answer.
	if wasAllowed && now.Sub(allowedAt) < time.Duration(p.StaleAllow) {
		p.logger.Warn("DNS lookup failed; allowing a certificate for a domain that was managed recently",
			zap.String("name", name), zap.Time("last_managed", allowedAt), zap.Error(err))
		return "allowed_stale", nil
	}
	// Remembering the failure spares the handshakes that follow from each
	// waiting out the timeout while DNS is down.
	err = fmt.Errorf("cannot tell whether %s is managed: %w", domain, err)
	p.decisions.denied.Add(domain, denial{at: now, err: err})
	return "failed", err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Permission)(nil)
	_ caddy.Validator             = (*Permission)(nil)
	_ caddy.CleanerUpper          = (*Permission)(nil)
	_ caddytls.OnDemandPermission = (*Permission)(nil)
)
