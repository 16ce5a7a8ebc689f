package caddymtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testContext returns a context like the one Caddy provisions a config
// in: its storage (certmagic.FileStorage) in a temporary directory, its
// logs at level, written nowhere.
func testContext(tb testing.TB, level string) caddy.Context {
	tb.Helper()
	var cfg caddy.Config
	err := json.Unmarshal(fmt.Appendf(nil, `{
		"storage": {"module": "file_system", "root": %q},
		"logging": {"logs": {"default": {"level": %q, "writer": {"output": "discard"}}}}
	}`, tb.TempDir(), level), &cfg)
	if err != nil {
		tb.Fatal(err)
	}
	base, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(base)
	tb.Cleanup(cancel)
	return ctx
}

// provision provisions and validates p like Caddy does when it loads a
// config, with debug logs on so that each decision is logged; the caller
// cleans it up (Caddy does when the config is unloaded).
func provision(t *testing.T, p *PermissionByMTASTS) *PermissionByMTASTS {
	t.Helper()
	ctx := testContext(t, "DEBUG")
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func provisioned(t *testing.T, p *PermissionByMTASTS) *PermissionByMTASTS {
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

func expectVerdicts(t *testing.T, p *PermissionByMTASTS, want map[string]verdict) {
	t.Helper()
	for name, v := range want {
		if err := p.CertificateAllowed(context.Background(), name); verdictOf(err) != v {
			t.Errorf("CertificateAllowed(%q) = %v, want %v", name, err, v)
		}
	}
}

func TestPermissionAllowsOnlyManagedDomains(t *testing.T) {
	d := startDNS(t)
	p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}})
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
	p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{freeAddr(t)}}})
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

// testClock is a clock that moves only when told to.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// expectOutcome checks what decide answers for name, and that the error
// goes with the outcome.
func expectOutcome(t *testing.T, p *PermissionByMTASTS, name, want string) {
	t.Helper()
	outcome, err := p.decide(context.Background(), name)
	if outcome != want {
		t.Errorf("decide(%q) = %s, %v; want %s", name, outcome, err, want)
	}
	if wantVerdict := outcomeVerdict(want); verdictOf(err) != wantVerdict {
		t.Errorf("decide(%q) = %s, %v; want %v", name, outcome, err, wantVerdict)
	}
}

func outcomeVerdict(outcome string) verdict {
	switch {
	case strings.HasPrefix(outcome, "allowed"):
		return allow
	case strings.HasPrefix(outcome, "denied"):
		return deny
	}
	return fail
}

func TestPermissionRemembersDecisions(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	const ttl = time.Minute
	p := provisioned(t, &PermissionByMTASTS{
		PolicyDNS: PolicyDNS{Servers: []string{d.addr}},
		AllowTTL:  caddy.Duration(ttl),
		DenyTTL:   caddy.Duration(ttl),
		now:       clock.now,
	})
	for name, outcome := range map[string]string{"mta-sts.example.com": "allowed", "mta-sts.not-hosted.example": "denied"} {
		before := lookupCount(t)
		expectOutcome(t, p, name, outcome)
		clock.advance(ttl - 1)
		expectOutcome(t, p, name, outcome+"_cached")
		if n := lookupCount(t) - before; n != 1 {
			t.Errorf("%s: %v DNS lookups for two handshakes within the TTL, want 1", name, n)
		}
		clock.advance(1)
		expectOutcome(t, p, name, outcome)
		if n := lookupCount(t) - before; n != 2 {
			t.Errorf("%s: %v DNS lookups after the TTL passed, want 2", name, n)
		}
	}
}

func TestPermissionDuringDNSOutage(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	const ttl, stale = time.Minute, time.Hour
	p := provisioned(t, &PermissionByMTASTS{
		PolicyDNS:  PolicyDNS{Servers: []string{d.addr}, Timeout: caddy.Duration(time.Second)},
		AllowTTL:   caddy.Duration(ttl),
		StaleAllow: caddy.Duration(stale),
		now:        clock.now,
	})
	expectOutcome(t, p, "mta-sts.example.com", "allowed")
	d.stop()
	clock.advance(ttl)

	expectOutcome(t, p, "mta-sts.example.com", "allowed_stale") // allowed recently
	expectOutcome(t, p, "mta-sts.example.net", "failed")        // never allowed
	clock.advance(stale - ttl - 1)
	expectOutcome(t, p, "mta-sts.example.com", "allowed_stale")
	clock.advance(1)
	expectOutcome(t, p, "mta-sts.example.com", "failed")
}

func TestPermissionDecisionsSurviveReload(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	config := PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}, now: clock.now}
	old := config
	provision(t, &old)
	expectOutcome(t, &old, "mta-sts.example.com", "allowed")

	// A reload provisions the new config before it cleans up the old one.
	next := config
	provision(t, &next)
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	d.stop()
	clock.advance(defaultAllowTTL)
	expectOutcome(t, &next, "mta-sts.example.com", "allowed_stale")

	// Once no config uses them, the decisions are gone.
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	fresh := provisioned(t, &config)
	expectOutcome(t, fresh, "mta-sts.example.com", "failed")
}

func TestPermissionConfigErrors(t *testing.T) {
	ctx := testContext(t, "ERROR")
	for name, p := range map[string]*PermissionByMTASTS{
		"negative allow_ttl":                 {AllowTTL: -1},
		"negative deny_ttl":                  {DenyTTL: -1},
		"negative stale_allow":               {StaleAllow: -1},
		"negative cache_size":                {CacheSize: -1},
		"negative new_certs_per_domain_hour": {NewCertsPerDomainHour: -1},
		"negative timeout":                   {PolicyDNS: PolicyDNS{Timeout: -1}},
		"server without host":                {PolicyDNS: PolicyDNS{Servers: []string{":53"}}},
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

// total adds up the counts of all series of c: counter and gauge values
// and the number of observations of histograms.
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
		n += pb.GetCounter().GetValue() + pb.GetGauge().GetValue() + float64(pb.GetHistogram().GetSampleCount())
	}
	return n
}

func TestPermissionOlderLookupsLoseToNewerOnes(t *testing.T) {
	d := startDNS(t)
	for _, tc := range []struct {
		name, domain string
		fresh        string // the outcome of the newer lookup
		old          error  // what the older lookup finished with
	}{
		// A lookup starts while the domain is still managed, a newer one
		// finds it gone, then the older one finishes.
		{"mta-sts.not-hosted.example", "not-hosted.example", "denied", nil},
		// And the other way round: a domain that has just been added.
		{"mta-sts.example.com", "example.com", "allowed", fmt.Errorf("%w: gone", caddytls.ErrPermissionDenied)},
		{"mta-sts.example.net", "example.net", "allowed", errors.New("timeout")},
	} {
		clock := newTestClock()
		p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}, now: clock.now})
		old := p.decisions.start(clock.now())
		old.err = tc.old
		clock.advance(time.Second)
		expectOutcome(t, p, tc.name, tc.fresh)
		if p.decisions.record(tc.domain, old) {
			t.Errorf("%s: the older lookup's decision was recorded over the newer one", tc.name)
		}
		expectOutcome(t, p, tc.name, tc.fresh+"_cached")
	}
}

func TestPermissionOlderLookupsLoseToForgottenOnes(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	p := provisioned(t, &PermissionByMTASTS{PolicyDNS: PolicyDNS{Servers: []string{d.addr}}, CacheSize: 2, now: clock.now})
	old := p.decisions.start(clock.now())
	expectOutcome(t, p, "mta-sts.not-hosted.example", "denied")
	// Bogus names push the newer denial out of the full cache.
	expectOutcome(t, p, "mta-sts.bogus1.example", "denied")
	expectOutcome(t, p, "mta-sts.bogus2.example", "denied")
	if p.decisions.record("not-hosted.example", old) {
		t.Error("the older lookup's allow was recorded once the newer denial was forgotten")
	}
	expectOutcome(t, p, "mta-sts.not-hosted.example", "denied")
}
