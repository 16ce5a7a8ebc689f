//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// soaServed returns nil once server answers authoritatively with the SOA
// of zone: a secondary has transferred it.
func soaServed(server, zone string) error {
	resp, err := ask(server, zone, dns.TypeSOA, false)
	switch {
	case err != nil:
		return err
	case resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1:
		return fmt.Errorf("%s SOA @%s: %s, %d records", zone, server, dns.RcodeToString[resp.Rcode], len(resp.Answer))
	}
	return nil
}

// rcodeAt is the rcode of server's answer.
func rcodeAt(t *testing.T, server, name string, qtype uint16) string {
	t.Helper()
	return dns.RcodeToString[mustAsk(t, server, name, qtype, false).Rcode]
}

func startKnot(t *testing.T, s *suite) {
	s.start(t, "knot", nil, "knotd", "-c", s.path("knot.conf"))
	for _, zone := range clusterZones {
		s.waitUntil(t, "knot", 20*time.Second, func() error { return soaServed(primaryAddr, zone) })
	}
	s.ok(t, "serving %s on %s:53", strings.Join(clusterZones, " "), primaryAddr)
}

// knotc runs one knotc command against the primary, logged in knotc.log.
func (s *suite) knotc(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("knotc", append([]string{"-c", s.path("knot.conf")}, args...)...).CombinedOutput()
	s.appendLog(t, "knotc", fmt.Sprintf("knotc %s: %s", strings.Join(args, " "), out))
	if err != nil {
		t.Fatalf("knotc %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// setMX replaces the MX records at zone's apex in one transaction on the
// primary (none: the customer's mail leaves); Knot raises the serial and
// sends NOTIFY to both secondaries at the commit. It returns when knotc
// was asked to commit.
func (s *suite) setMX(t *testing.T, zone string, mx ...string) time.Time {
	t.Helper()
	s.knotc(t, "zone-begin", zone)
	s.knotc(t, "zone-unset", zone, "@", "MX")
	for i, host := range mx {
		s.knotc(t, "zone-set", zone, "@", "60", "MX", fmt.Sprint(10*(i+1)), host+".")
	}
	committed := time.Now()
	s.knotc(t, "zone-commit", zone)
	return committed
}

func startSecondaries(t *testing.T, s *suite) {
	for i, addr := range clusterSecondaries {
		name := secondaryName(i)
		s.start(t, name, nil, s.bin+"/coredns", "-conf", s.path(name+".Corefile"))
		for _, zone := range clusterZones {
			s.waitUntil(t, name, 30*time.Second, func() error { return soaServed(addr, zone) })
		}
		s.ok(t, "%s on %s:53 transferred %s", name, addr, strings.Join(clusterZones, " "))
	}
	for domain, mx := range map[string]string{"shop.test": "mx1.shop.test", "slow.test": "mx.slow.test", "expiring.test": "mx.expiring.test"} {
		want := idOf(policyBody("testing", mx))
		for _, addr := range clusterSecondaries {
			s.expect(t, "_mta-sts."+domain+" id @"+addr+" (the hash of its policy, computed here)", stsIDAt(t, addr, domain), want)
		}
	}
}

// testNotifyChange changes shop.test's MX on the primary. The zone's
// refresh is an hour, so only the NOTIFY brings the change within the run.
func testNotifyChange(t *testing.T, s *suite) {
	old := stsIDAt(t, clusterSecondaries[0], "shop.test")
	want := idOf(policyBody("testing", "mx2.shop.test"))
	committed := s.setMX(t, "shop.test", "mx2.shop.test")
	for i, addr := range clusterSecondaries {
		waited := pollUntil(t, committed, 10*time.Second, "_mta-sts.shop.test @"+addr+" still "+old, func() bool {
			return stsIDAt(t, addr, "shop.test") == want
		})
		s.ok(t, "%s publishes the new id %s %.3f s after zone-commit", secondaryName(i), want, waited.Seconds())
	}
	for i := range clusterSecondaries {
		if !s.logHas(t, secondaryName(i), "Notify from "+primaryAddr+" for shop.test.") {
			t.Fatalf("%s.log has no NOTIFY from %s for shop.test", secondaryName(i), primaryAddr)
		}
	}
	s.ok(t, "both logged the NOTIFY from %s", primaryAddr)
}

// testExpiredZone stops the primary. expiring.test's SOA says a secondary
// stops answering for it 3 s after its checks of the primary start
// failing; the plugin must then answer SERVFAIL for its names, never an
// NXDOMAIN a resolver would cache. shop.test, a day from expiring, keeps
// its answers.
func testExpiredZone(t *testing.T, s *suite) {
	id := stsIDAt(t, clusterSecondaries[0], "shop.test")
	stopped := time.Now()
	s.daemons["knot"].stop()
	for i, addr := range clusterSecondaries {
		waited := pollUntil(t, stopped, 30*time.Second, "_mta-sts.expiring.test @"+addr+" not SERVFAIL", func() bool {
			return rcodeAt(t, addr, "_mta-sts.expiring.test", dns.TypeTXT) == "SERVFAIL"
		})
		s.ok(t, "%s: expiring.test expired %.1f s after the primary stopped", secondaryName(i), waited.Seconds())
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"_mta-sts.expiring.test", dns.TypeTXT}, {"mta-sts.expiring.test", dns.TypeTXT}, {"mta-sts.expiring.test", dns.TypeA}, {"expiring.test", dns.TypeMX}} {
			s.expect(t, q.name+" "+dns.TypeToString[q.qtype]+" @"+addr, rcodeAt(t, addr, q.name, q.qtype), "SERVFAIL")
		}
		s.expect(t, "_mta-sts.shop.test id @"+addr+" (not expired)", stsIDAt(t, addr, "shop.test"), id)
	}
	before := s.pebbleOrders(t)
	for i, addr := range clusterNodes {
		s.expectRefusedAt(t, caddyName(i)+": TLS handshake for mta-sts.expiring.test", addr, "mta-sts.expiring.test")
	}
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
}

// pollUntil polls cond every 10 ms until it holds, and returns how long
// after since it did; it fails after limit.
func pollUntil(t *testing.T, since time.Time, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	for !cond() {
		if time.Since(since) > limit {
			t.Fatalf("%s after %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(since)
}
