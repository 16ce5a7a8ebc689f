//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// testSettings: the settings records of customers.test change what the
// plugin publishes for each domain, and what a sender fetches follows.
func testSettings(t *testing.T, s *suite) {
	for _, c := range []struct {
		domain, mode string
		mx           []string
		maxAge       int
	}{
		{"enforced.customers.test", "enforce", []string{"mx.enforced.customers.test"}, 1209600},
		{"extra.customers.test", "testing", []string{"*.mail.new-host.test", "mx.extra.customers.test"}, maxAge},
		{"retiring.customers.test", "none", []string{"mx.retiring.customers.test"}, maxAge},
		// An invalid record leaves the domain on the Corefile's defaults.
		{"broken.customers.test", "testing", []string{"mx.broken.customers.test"}, maxAge},
	} {
		id := stsID(t, c.domain)
		want := stsResult{Status: "VALID", ID: id, Mode: c.mode, MX: c.mx, MaxAge: c.maxAge}
		s.expect(t, "mta-sts-query "+c.domain, s.stsQuery(t, c.domain), want.String())
		_, body := s.mustFetch(t, "mta-sts."+c.domain, 443, "")
		s.expect(t, "id of the policy caddy serves for "+c.domain, idOf(body), id)
		// Senders see the one v=STSv1 record, not the settings.
		s.expect(t, "_mta-sts."+c.domain+" TXT", short(t, dnsAddr, "_mta-sts."+c.domain, dns.TypeTXT, false),
			`"v=STSv1; id=`+id+`"`)
	}
	log, err := os.ReadFile(s.path("coredns.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.expect(t, "coredns.log: the invalid settings of broken.customers.test, logged once",
		strings.Count(string(log), "broken.customers.test.: settings ignored"), 1)

	// Opted out: the zone's data as it is, no policy, no certificate.
	s.expect(t, "_mta-sts.optout.customers.test TXT (the zone's, untouched)",
		short(t, dnsAddr, "_mta-sts.optout.customers.test", dns.TypeTXT, false), `"v=STSCFG1; off"`)
	s.expect(t, "mta-sts.optout.customers.test A", status(t, "mta-sts.optout.customers.test", dns.TypeA), "NXDOMAIN")
	s.expect(t, "mta-sts-query optout.customers.test", s.stsQuery(t, "optout.customers.test"), "NONE")
	before := s.pebbleOrders(t)
	s.expectRefused(t, "TLS handshake for mta-sts.optout.customers.test", "mta-sts.optout.customers.test")
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
}
