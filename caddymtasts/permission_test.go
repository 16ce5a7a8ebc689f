package caddymtasts

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// provision provisions and validates p like Caddy does when it loads a
// config; the caller cleans it up (Caddy does when the config is unloaded).
func provision(t *testing.T, p *Permission) *Permission {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func provisioned(t *testing.T, p *Permission) *Permission {
	t.Helper()
	provision(t, p)
	t.Cleanup(func() {
		if err := p.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return p
}

type verdict int

const (
	allow verdict = iota
	deny          // wraps caddytls.ErrPermissionDenied
	fail          // refused with an error that is no denial
)

func (v verdict) String() string { return [...]string{"allow", "deny", "fail"}[v] }

func verdictOf(err error) verdict {
	switch {
	case err == nil:
		return allow
	case errors.Is(err, caddytls.ErrPermissionDenied):
		return deny
	}
	return fail
}

func expectVerdicts(t *testing.T, p *Permission, want map[string]verdict) {
	t.Helper()
	for name, v := range want {
		if err := p.CertificateAllowed(context.Background(), name); verdictOf(err) != v {
			t.Errorf("CertificateAllowed(%q) = %v, want %v", name, err, v)
		}
	}
}

func TestPermissionAllowsOnlyManagedDomains(t *testing.T) {
	d := startDNS(t)
	p := provisioned(t, &Permission{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}})
	expectVerdicts(t, p, map[string]verdict{
		"mta-sts.example.com":           allow,
		"mta-sts.example.net":           allow,
		"mta-sts.xn--bcher-kva.example": allow,
		"mta-sts.www.example.com":       deny, // no MX
		"mta-sts.child.example.com":     deny, // delegated away
		"mta-sts.not-hosted.example":    deny, // no zone of ours
		"www.example.com":               deny,
		"example.com":                   deny,
		"*.example.com":                 deny,
		"mta-sts.*.example.com":         deny,
		"127.0.0.1":                     deny,
		"::1":                           deny,
		"mta-sts.broken.example.com":    fail, // the MX backend fails
	})
}

func TestPermissionDeniesOtherNamesWithoutDNS(t *testing.T) {
	// Had DNS been asked, the closed port would have made each a failure.
	p := provisioned(t, &Permission{PolicyDNS: PolicyDNS{Servers: []string{freeAddr(t)}}})
	before := lookupCount(t)
	expectVerdicts(t, p, map[string]verdict{
		"www.example.com":       deny,
		"*.example.com":         deny,
		"mta-sts.*.example.com": deny,
		"192.0.2.1":             deny,
		"2001:db8::1":           deny,
		"mta-sts":               deny,
	})
	if n := lookupCount(t) - before; n != 0 {
		t.Errorf("%v DNS lookups for names that are no policy hosts", n)
	}
}

func TestPermissionRemembersDecisions(t *testing.T) {
	d := startDNS(t)
	const ttl = 300 * time.Millisecond
	p := provisioned(t, &Permission{
		PolicyDNS: PolicyDNS{Servers: []string{d.addr}},
		AllowTTL:  caddy.Duration(ttl),
		DenyTTL:   caddy.Duration(ttl),
	})
	for name, v := range map[string]verdict{"mta-sts.example.com": allow, "mta-sts.not-hosted.example": deny} {
		before := lookupCount(t)
		expectVerdicts(t, p, map[string]verdict{name: v})
		expectVerdicts(t, p, map[string]verdict{name: v})
		if n := lookupCount(t) - before; n != 1 {
			t.Errorf("%s: %v DNS lookups for two handshakes within the TTL, want 1", name, n)
		}
		time.Sleep(ttl + 50*time.Millisecond)
		expectVerdicts(t, p, map[string]verdict{name: v})
		if n := lookupCount(t) - before; n != 2 {
			t.Errorf("%s: %v DNS lookups after the TTL passed, want 2", name, n)
		}
	}
}

func TestPermissionDuringDNSOutage(t *testing.T) {
	d := startDNS(t)
	const stale = 500 * time.Millisecond
	p := provisioned(t, &Permission{
		PolicyDNS:  PolicyDNS{Servers: []string{d.addr}, Timeout: caddy.Duration(time.Second)},
		AllowTTL:   1, // nanosecond: ask DNS every time
		DenyTTL:    1,
		StaleAllow: caddy.Duration(stale),
	})
	expectVerdicts(t, p, map[string]verdict{"mta-sts.example.com": allow})
	allowedAt := time.Now()
	d.stop()

	staleBefore := total(t, permissionDecisions.WithLabelValues("allowed_stale"))
	expectVerdicts(t, p, map[string]verdict{
		"mta-sts.example.com": allow, // allowed recently
		"mta-sts.example.net": fail,  // never allowed
	})
	if n := total(t, permissionDecisions.WithLabelValues("allowed_stale")) - staleBefore; n != 1 {
		t.Errorf("%v stale allowances counted, want 1", n)
	}
	time.Sleep(time.Until(allowedAt.Add(stale + 50*time.Millisecond)))
	expectVerdicts(t, p, map[string]verdict{"mta-sts.example.com": fail})
}

func TestPermissionDecisionsSurviveReload(t *testing.T) {
	d := startDNS(t)
	config := Permission{
		PolicyDNS: PolicyDNS{Servers: []string{d.addr}},
		AllowTTL:  1, // nanosecond: ask DNS every time
	}
	old := config
	provision(t, &old)
	expectVerdicts(t, &old, map[string]verdict{"mta-sts.example.com": allow})

	// A reload provisions the new config before it cleans up the old one.
	next := config
	provision(t, &next)
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	d.stop()
	expectVerdicts(t, &next, map[string]verdict{"mta-sts.example.com": allow})

	// Once no config uses them, the decisions are gone.
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	fresh := provisioned(t, &config)
	expectVerdicts(t, fresh, map[string]verdict{"mta-sts.example.com": fail})
}

func TestPermissionConfigErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for name, p := range map[string]*Permission{
		"negative allow_ttl":   {AllowTTL: -1},
		"negative deny_ttl":    {DenyTTL: -1},
		"negative stale_allow": {StaleAllow: -1},
		"negative cache_size":  {CacheSize: -1},
		"negative timeout":     {PolicyDNS: PolicyDNS{Timeout: -1}},
		"server without host":  {PolicyDNS: PolicyDNS{Servers: []string{":53"}}},
	} {
		err := p.Provision(ctx)
		if err == nil {
			err = p.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := p.Cleanup(); err != nil {
			t.Errorf("%s: cleanup: %v", name, err)
		}
	}
}

// lookupCount returns how many policy lookups the process has done.
func lookupCount(t *testing.T) float64 {
	t.Helper()
	return total(t, lookupDuration)
}

// total adds up the counts of all series of c: counter values and the
// number of observations of histograms.
func total(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 8)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var n float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		n += pb.GetCounter().GetValue() + float64(pb.GetHistogram().GetSampleCount())
	}
	return n
}
