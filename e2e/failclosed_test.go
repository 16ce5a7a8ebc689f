//go:build e2e

package e2e

import (
	"testing"
)

// testFailClosed stops CoreDNS: Caddy can no longer vouch for a policy nor
// check a name, so it serves neither.
func testFailClosed(t *testing.T, s *suite) {
	s.daemons["coredns"].stop()
	// No DNS now, so the client is told where Caddy is. The certificate is
	// in Caddy's memory, so the handshake works; the body cannot be vouched
	// for.
	resp, body := s.mustFetch(t, "mta-sts.example.test", 443, webAddr)
	s.expect(t, "mta-sts.example.test status", resp.StatusCode, 503)
	s.expect(t, "mta-sts.example.test Retry-After", resp.Header.Get("Retry-After"), "300")
	s.expect(t, "mta-sts.example.test body", body, "")
	// A name the permission module never saw cannot be checked: refused.
	before := s.pebbleOrders(t)
	s.expectRefused(t, "TLS handshake for mta-sts.new.example.test", "mta-sts.new.example.test")
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
	decisions := permissionDecisions(t)
	if decisions["failed"] == "" {
		t.Fatalf("permission decisions: %v, want failed", decisions)
	}
	s.ok(t, "permission decisions: %v", decisions)
}
