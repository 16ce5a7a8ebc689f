package caddymtasts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Zone data that imitates a policy where the plugin manages nothing (a
// wildcard TXT, a name without MX, a domain that runs MTA-STS itself) gets
// neither a certificate nor a 200: only what the plugin synthesized counts.
func TestZoneDataImitatingAPolicy(t *testing.T) {
	d := startDNS(t)
	c := startCaddy(t, d.addr, nil)
	s := newSource(t, 2*time.Second, d.addr)
	names := []string{"nomx.example.com", "self.example.com"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("host%d.w.example.com", i))
	}
	for _, domain := range names {
		if body, err := s.lookup(context.Background(), domain); !errors.Is(err, errNotManaged) {
			t.Errorf("%s: lookup got %q, %v; want %v", domain, body, err, errNotManaged)
		}
		if _, err := c.handshake("mta-sts." + domain); err == nil {
			t.Errorf("mta-sts.%s: handshake succeeded", domain)
		}
		// With the certificate of a managed domain, asking for another host.
		if r := c.request(t, http.MethodGet, "mta-sts.example.com", "mta-sts."+domain, policyPath); r.status != http.StatusNotFound {
			t.Errorf("mta-sts.%s: got %d %q, want 404", domain, r.status, r.body)
		}
	}
	if names := c.storedNames(t); len(names) != 1 || names[0] != "mta-sts.example.com" {
		t.Errorf("stored certificates %v, want only mta-sts.example.com's", names)
	}
}

// startFront starts a CoreDNS that answers from its cache or, with cache
// false, only forwards, in front of the authoritative server auth.
func startFront(t *testing.T, auth string, cache bool) string {
	t.Helper()
	corefile := fmt.Sprintf(".:{port} {\n\tbind 127.0.0.1\n\tforward . %s {\n\t\tforce_tcp\n\t}\n}", auth)
	if cache {
		corefile = fmt.Sprintf(".:{port} {\n\tbind 127.0.0.1\n\tcache 30\n\tforward . %s {\n\t\tforce_tcp\n\t}\n}", auth)
	}
	addr, _ := startCoreDNS(t, corefile)
	return addr
}

// The tester's setup: Caddy's servers point at CoreDNS's cache and forward
// in front of the authoritative server. Its answers keep AA=1, and before
// the fix Caddy served the old body for about 20 s after an MX change. Now
// it never serves the cache's policy at all, before or after the change,
// while forward alone passes the plugin's vouched answer through.
func TestCacheInFrontNeverServesAStalePolicy(t *testing.T) {
	d := startDNS(t)
	cached := newSource(t, 2*time.Second, startFront(t, d.addr, true))
	forwarded := newSource(t, 2*time.Second, startFront(t, d.addr, false))
	// The handler asks the cache; the permission asks the authoritative
	// server, so that there is a certificate to ask the handler with.
	c := startCaddy(t, startFront(t, d.addr, true), map[string]any{"servers": []string{d.addr}})

	check := func(mx string) {
		t.Helper()
		if body, err := cached.lookup(context.Background(), "example.com"); !errors.Is(err, errUnvouched) {
			t.Errorf("MX %s, through the cache: got %q, %v; want %v", mx, body, err, errUnvouched)
		}
		if r := c.get(t, "mta-sts.example.com"); r.status != http.StatusServiceUnavailable {
			t.Errorf("MX %s, handler asking the cache: got %d %q, want 503", mx, r.status, r.body)
		}
		want := expectedPolicy(t, mx+".example.com").Encode()
		if body, err := forwarded.lookup(context.Background(), "example.com"); err != nil || string(body) != string(want) {
			t.Errorf("MX %s, through forward: got %q, %v; want %q", mx, body, err, want)
		}
	}
	check("mx1")
	d.setMX(t, 2, "mx2")
	check("mx2")
}
