//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func startUnbound(t *testing.T, s *suite) {
	if out, err := exec.Command("unbound-checkconf", s.path("unbound.conf")).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v: %s", err, out)
	}
	s.start(t, "unbound", nil, "unbound", "-d", "-c", s.path("unbound.conf"))
	s.waitUntil(t, "unbound", 20*time.Second, func() error {
		_, err := ask(resolverAddr, "signed.test", dns.TypeSOA, false)
		return err
	})
	s.ok(t, "answering on %s:53", resolverAddr)
}

// testDNSSECThroughUnbound asks a validating resolver for what the plugin
// synthesizes in a zone the dnssec plugin signs.
func testDNSSECThroughUnbound(t *testing.T, s *suite) {
	// Denials first: unbound caches their NSEC records and, with aggressive
	// NSEC (RFC 8198, on by default), would use a wrong type bitmap to deny
	// the positive answers asked for after them. _tls.signed.test is the
	// empty non-terminal above the TLS-RPT record, which unbound's QNAME
	// minimisation asks for on its way down.
	for _, q := range []struct {
		name   string
		qtype  uint16
		answer bool
	}{
		{"_mta-sts.signed.test", dns.TypeA, false},
		{"mta-sts.signed.test", dns.TypeMX, false},
		{"_mta-sts.www.signed.test", dns.TypeTXT, false},
		{"_tls.signed.test", dns.TypeTXT, false},
		{"_mta-sts.signed.test", dns.TypeTXT, true},
		{"mta-sts.signed.test", dns.TypeTXT, true},
		{"mta-sts.signed.test", dns.TypeA, true},
		{"_smtp._tls.signed.test", dns.TypeTXT, true},
	} {
		what := q.name + " " + dns.TypeToString[q.qtype]
		resp := mustAsk(t, resolverAddr, q.name, q.qtype, true)
		if !resp.AuthenticatedData {
			t.Fatalf("%s: no ad flag from unbound (%s)", what, dns.RcodeToString[resp.Rcode])
		}
		data := short(t, resolverAddr, q.name, q.qtype, false)
		switch {
		case q.answer && data == "":
			t.Fatalf("%s: want an answer, got none", what)
		case !q.answer && data != "":
			t.Fatalf("%s: want no data, got %s", what, data)
		}
		s.ok(t, "%s: %s, validated (ad)", what, map[bool]string{true: "answer", false: "nodata"}[q.answer])
	}
	s.expect(t, "_mta-sts.signed.test id through unbound", short(t, resolverAddr, "_mta-sts.signed.test", dns.TypeTXT, false),
		`"v=STSv1; id=`+idOf(policyBody("enforce", "mx.signed.test"))+`"`)
	// The same question straight to CoreDNS carries a signature.
	signed := false
	for _, rr := range mustAsk(t, dnsAddr, "_mta-sts.signed.test", dns.TypeTXT, true).Answer {
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeTXT {
			signed = true
		}
	}
	s.expect(t, "_mta-sts.signed.test TXT from coredns carries an RRSIG", signed, true)
}

// delv validates the answer itself, from the zone's key, at server.
func (s *suite) delv(t *testing.T, server, name string) string {
	t.Helper()
	out, _ := exec.Command("delv", "@"+server, "-a", s.path("keys", "delv.anchor"), "+root=signed.test", name, "TXT").CombinedOutput()
	return string(out)
}

func testDelv(t *testing.T, s *suite) {
	out := s.delv(t, resolverAddr, "_mta-sts.signed.test")
	if !strings.HasPrefix(out, "; fully validated") {
		t.Fatalf("delv did not validate: %s", out)
	}
	s.ok(t, "delv @unbound: %s", strings.SplitN(out, "\n", 2)[0])
}
