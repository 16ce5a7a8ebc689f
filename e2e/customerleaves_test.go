//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testCustomerLeaves removes sub.example.test's MX, then restarts Caddy:
// CertMagic asks the permission module before it loads a certificate from
// storage, so only the managed domains' certificates come back.
func testCustomerLeaves(t *testing.T, s *suite) {
	s.writeZone(t, "example.test", zoneData{Serial: 3, MX: []string{"mx1.example.test", "mx3.example.test"}})
	eventually(t, 15*time.Second, "_mta-sts.sub.example.test still there after its MX went", func() bool {
		return status(t, "_mta-sts.sub.example.test", dns.TypeTXT) == "NXDOMAIN"
	})
	s.ok(t, "_mta-sts.sub.example.test: NXDOMAIN")
	// Its certificate is still in Caddy's memory, but there is no policy
	// (nor an address: DNS has no mta-sts.sub.example.test any more).
	resp, _ := s.mustFetch(t, "mta-sts.sub.example.test", 443, webAddr)
	s.expect(t, "https://mta-sts.sub.example.test status", resp.StatusCode, 404)
	s.daemons["caddy"].stop()
	s.startCaddy(t, "caddy", "Caddyfile", 443)
	before := s.pebbleOrders(t)
	s.expectCertificate(t, "TLS handshake for mta-sts.example.test (from storage)", "mta-sts.example.test")
	s.expectCertificate(t, "TLS handshake for mta-sts.signed.test (from storage)", "mta-sts.signed.test")
	s.expectRefused(t, "TLS handshake for mta-sts.sub.example.test (left)", "mta-sts.sub.example.test")
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
	s.ok(t, "permission decisions: %v", permissionDecisions(t))
}
