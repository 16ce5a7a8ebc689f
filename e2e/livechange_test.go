//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// testLiveChange rewrites zone files with other MX hosts and a higher
// serial, as a provider's control panel would, while everything runs.
func testLiveChange(t *testing.T, s *suite) {
	old := stsID(t, "example.test")
	mx := []string{"mx1.example.test", "mx3.example.test"}
	s.writeZone(t, "example.test", zoneData{Serial: 2, MX: mx, SubMX: "mail.sub.example.test"})
	id := waitForNewID(t, "example.test", old)
	s.ok(t, "id changed: %s -> %s", old, id)
	s.expect(t, "new id = sha256(new policy)[:32]", id, idOf(policyBody("testing", mx...)))
	s.expect(t, "mta-sts-query example.test OLD_ID", s.stsQuery(t, "example.test", old), stsValid(id, "testing", mx...))
	_, body := s.mustFetch(t, "mta-sts.example.test", 443, "")
	s.expect(t, "id of the body served now", idOf(body), id)
	s.expect(t, "mta-sts-query example.test NEW_ID", s.stsQuery(t, "example.test", id), "NOT_CHANGED")
	s.expect(t, "ACME orders for the change (the certificate stays)", s.pebbleOrders(t), 4)

	// The same in the signed zone: the new records are signed at once. delv
	// asks CoreDNS directly here (unbound would answer from its cache).
	old = stsID(t, "signed.test")
	mx = []string{"mx.signed.test", "mx2.signed.test"}
	s.writeZone(t, "signed.test", zoneData{Serial: 2, MX: mx})
	id = waitForNewID(t, "signed.test", old)
	s.ok(t, "signed.test id changed: %s -> %s", old, id)
	s.expect(t, "new id = sha256(new policy)[:32]", id, idOf(policyBody("enforce", mx...)))
	out := s.delv(t, dnsAddr, "_mta-sts.signed.test")
	if !strings.HasPrefix(out, "; fully validated") || !strings.Contains(out, "id="+id) {
		t.Fatalf("delv @coredns: %s", out)
	}
	s.ok(t, "delv @coredns: the new id is fully validated")
	s.expect(t, "mta-sts-query signed.test OLD_ID", s.stsQuery(t, "signed.test", old), stsValid(id, "enforce", mx...))
}
