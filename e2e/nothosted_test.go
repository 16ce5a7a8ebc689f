//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
)

// testNotHosted: Caddy gets no certificate for a name that is not the policy
// host of a domain our CoreDNS manages, and Pebble hears nothing of it.
func testNotHosted(t *testing.T, s *suite) {
	before := s.pebbleOrders(t)
	for _, name := range []string{"mta-sts.not-hosted.test", "www.example.test", "mta-sts.owner.test",
		"mta-sts.nomail.test", "mta-sts.www.example.test", "example.test"} {
		s.expectRefused(t, "TLS handshake for "+name, name)
	}
	// The owner's host, resolved through DNS like a sender would: its
	// address reaches our Caddy too.
	_, _, err := s.fetch(t, "mta-sts.owner.test", 443, "")
	if !refused(err) {
		t.Fatalf("https://mta-sts.owner.test (at the owner's %s): want the handshake refused, got %v", ownerWebAddr, err)
	}
	s.ok(t, "https://mta-sts.owner.test (at the owner's %s): refused", ownerWebAddr)
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
	log, err := os.ReadFile(s.path("pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"not-hosted.test", "www.example.test", "owner.test", "nomail.test"} {
		for _, quoted := range []string{`"` + name + `"`, `"mta-sts.` + name + `"`} {
			if strings.Contains(strings.ToLower(string(log)), quoted) {
				t.Fatalf("Pebble was asked about %s", name)
			}
		}
	}
	s.ok(t, "Pebble's log names none of them")
	// It was the permission module that said no: after DNS said "not
	// managed" (denied), or without asking, for no policy host (denied_name).
	decisions := permissionDecisions(t)
	if decisions["denied"] == "" || decisions["denied_name"] == "" {
		t.Fatalf("permission decisions: %v, want denied and denied_name", decisions)
	}
	s.ok(t, "permission decisions: %v", decisions)
	s.expect(t, "certificates in caddy storage", s.storedCerts(t), hostedCerts)
	// Still serving the hosted ones, so the failures above were refusals.
	s.expectCertificate(t, "TLS handshake for mta-sts.example.test", "mta-sts.example.test")
}
