package caddymtasts

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// addWildcardMX adds the record *.w IN MX 10 mail.example.com. to the test
// zones, which makes every name below w.example.com a managed mail domain,
// and waits until CoreDNS publishes a policy for one.
func addWildcardMX(t *testing.T, d *testDNS, p *PermissionByMTASTS) {
	t.Helper()
	// The MX host ends its line in the zone template, so a record can
	// follow it.
	d.writeZone(t, 2, "mx1\n*.w IN MX 10 mail.example.com.")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := p.source.lookup(context.Background(), "probe.w.example.com")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CoreDNS did not pick up the wildcard MX: %v", err)
		}
	}
}

// storeCert stores a certificate for name the way CertMagic does for an
// issuer. Only its presence matters to the permission.
func storeCert(t *testing.T, p *PermissionByMTASTS, issuerKey, name string) {
	t.Helper()
	err := p.stored.storage.Store(context.Background(), certmagic.StorageKeys.SiteCert(issuerKey, name),
		[]byte("-----BEGIN CERTIFICATE-----\n"))
	if err != nil {
		t.Fatal(err)
	}
}

// wildcardName is the policy host of the i-th mail domain below the
// wildcard MX.
func wildcardName(i int) string { return fmt.Sprintf("mta-sts.n%d.w.example.com", i) }

func TestPermissionBoundsNewCertsPerRegisteredDomain(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	const bound = 3
	p := provisioned(t, &PermissionByMTASTS{
		PolicyDNS:             PolicyDNS{Servers: []string{d.addr}},
		NewCertsPerDomainHour: bound,
		now:                   clock.now,
	})
	addWildcardMX(t, d, p)

	rateBefore := total(t, permissionDecisions.WithLabelValues("denied_rate"))
	for i := range bound {
		expectOutcome(t, p, wildcardName(i), "allowed")
		expectOutcome(t, p, wildcardName(i), "allowed_cached") // counts once
	}
	expectOutcome(t, p, wildcardName(bound), "denied_rate")
	expectOutcome(t, p, wildcardName(bound+1), "denied_rate")
	expectOutcome(t, p, wildcardName(bound+1), "denied_cached")
	expectVerdicts(t, p, map[string]verdict{wildcardName(bound + 2): deny})
	if n := total(t, permissionDecisions.WithLabelValues("denied_rate")) - rateBefore; n != 1 {
		t.Errorf("%v denials for the rate counted, want 1", n)
	}
	// Another registered domain has a budget of its own.
	expectOutcome(t, p, "mta-sts.example.net", "allowed")

	clock.advance(time.Hour - 1)
	expectOutcome(t, p, wildcardName(100), "denied_rate")
	clock.advance(1) // an hour after the first were allowed
	for i := range bound {
		expectOutcome(t, p, wildcardName(bound+i), "allowed")
	}
	expectOutcome(t, p, wildcardName(2*bound), "denied_rate")
}

func TestPermissionAllowsStoredCertsBeyondTheBound(t *testing.T) {
	d := startDNS(t)
	clock := newTestClock()
	const bound = 2
	p := provisioned(t, &PermissionByMTASTS{
		PolicyDNS:             PolicyDNS{Servers: []string{d.addr}},
		NewCertsPerDomainHour: bound,
		now:                   clock.now,
	})
	addWildcardMX(t, d, p)
	// Certificates from two issuers, as after a fallback from one CA to
	// another; names 0 to 4 have one, names from 5 on none.
	for i := range 5 {
		storeCert(t, p, []string{"acme-v02.api.letsencrypt.org-directory", "acme.zerossl.com-v2-dv90"}[i%2], wildcardName(i))
	}

	for i := range 5 { // a restart: each is loaded from storage
		expectOutcome(t, p, wildcardName(i), "allowed")
	}
	for i := range bound {
		expectOutcome(t, p, wildcardName(5+i), "allowed")
	}
	expectOutcome(t, p, wildcardName(5+bound), "denied_rate")

	clock.advance(defaultAllowTTL) // renewals of the stored ones, over budget
	for i := range 5 {
		expectOutcome(t, p, wildcardName(i), "allowed")
	}

	// The first certificate from a third CA; its directory is seen once
	// the issuers are listed again.
	storeCert(t, p, "local", wildcardName(20))
	clock.advance(issuersListInterval)
	expectOutcome(t, p, wildcardName(20), "allowed")
}

func TestRegisteredDomain(t *testing.T) {
	for domain, want := range map[string]string{
		"example.com":             "example.com",
		"a.w.example.com":         "example.com",
		"a.b.example.co.uk":       "example.co.uk",
		"customer.github.io":      "customer.github.io", // a private suffix
		"a.customer.github.io":    "customer.github.io",
		"co.uk":                   "co.uk",      // a public suffix itself
		"a.w.bench.test":          "bench.test", // not in the list: its default rule
		"xn--bcher-kva.example":   "xn--bcher-kva.example",
		"a.xn--bcher-kva.example": "xn--bcher-kva.example",
	} {
		if got := registeredDomain(domain); got != want {
			t.Errorf("registeredDomain(%q) = %q, want %q", domain, got, want)
		}
	}
}

func TestPermissionBoundHoldsUnderConcurrentHandshakes(t *testing.T) {
	d := startDNS(t)
	const bound, names = 5, 40
	p := provisioned(t, &PermissionByMTASTS{
		PolicyDNS:             PolicyDNS{Servers: []string{d.addr}},
		NewCertsPerDomainHour: bound,
	})
	addWildcardMX(t, d, p)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			if p.CertificateAllowed(context.Background(), wildcardName(i)) == nil {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != bound {
		t.Errorf("%d of %d new names allowed at once, want %d", n, names, bound)
	}
}
