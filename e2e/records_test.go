//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// lines is a policy file as the strings of its TXT record, one per line.
func lines(body string) string {
	return strings.TrimSuffix(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
}

func testApex(t *testing.T, s *suite) {
	want := policyBody("testing", "mx1.example.test", "mx2.example.test")
	s.expect(t, "mta-sts.example.test TXT", policyLines(t, "example.test"), lines(want))
	s.expect(t, "_mta-sts.example.test id = sha256(policy)[:32]", stsID(t, "example.test"), idOf(want))
	s.expect(t, "mta-sts.example.test A", short(t, dnsAddr, "mta-sts.example.test", dns.TypeA, false), webAddr)
	s.expect(t, "mta-sts.example.test AAAA (no IPv6 policy server)", short(t, dnsAddr, "mta-sts.example.test", dns.TypeAAAA, false), "")
	s.expect(t, "_smtp._tls.example.test TXT", short(t, dnsAddr, "_smtp._tls.example.test", dns.TypeTXT, false),
		`"v=TLSRPTv1; rua=mailto:tlsrpt+example.test@provider.test,https://reports.provider.test/v1/tlsrpt"`)
}

func testSubdomain(t *testing.T, s *suite) {
	want := policyBody("testing", "mail.sub.example.test")
	s.expect(t, "mta-sts.sub.example.test TXT", policyLines(t, "sub.example.test"), lines(want))
	s.expect(t, "_mta-sts.sub.example.test id", stsID(t, "sub.example.test"), idOf(want))
	s.expect(t, "mta-sts.sub.example.test A", short(t, dnsAddr, "mta-sts.sub.example.test", dns.TypeA, false), webAddr)
}

func testOwner(t *testing.T, s *suite) {
	s.expect(t, "_mta-sts.owner.test TXT (the owner's)", short(t, dnsAddr, "_mta-sts.owner.test", dns.TypeTXT, false),
		`"v=STSv1; id=owner20261129"`)
	s.expect(t, "mta-sts.owner.test A (the owner's host)", short(t, dnsAddr, "mta-sts.owner.test", dns.TypeA, false), ownerWebAddr)
	s.expect(t, "mta-sts.owner.test TXT (no policy lines)", short(t, dnsAddr, "mta-sts.owner.test", dns.TypeTXT, false), "")
	s.expect(t, "mta-sts.owner.test TXT status", status(t, "mta-sts.owner.test", dns.TypeTXT), "NOERROR")
	s.expect(t, "_smtp._tls.owner.test TXT (the owner's)", short(t, dnsAddr, "_smtp._tls.owner.test", dns.TypeTXT, false),
		`"v=TLSRPTv1; rua=mailto:reports@owner.test"`)
}

func testNoMX(t *testing.T, s *suite) {
	for _, d := range []string{"nomail.test", "www.example.test"} {
		s.expect(t, "_mta-sts."+d+" TXT", status(t, "_mta-sts."+d, dns.TypeTXT), "NXDOMAIN")
		s.expect(t, "mta-sts."+d+" A", status(t, "mta-sts."+d, dns.TypeA), "NXDOMAIN")
	}
	s.expect(t, "_mta-sts.not-hosted.test TXT (no zone here)", status(t, "_mta-sts.not-hosted.test", dns.TypeTXT), "REFUSED")
}
