//go:build e2e

package e2e

import (
	"crypto/x509"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startCaddyCluster starts both nodes, each bound to its own address and
// sharing caddy-storage (Caddy's file_system storage: its documented
// cluster mode is a shared directory). Both order the report site's
// certificate when they start; the storage lock lets one of them.
func startCaddyCluster(t *testing.T, s *suite) {
	s.startCaddyNodes(t)
	var serials []string
	for i, addr := range clusterNodes {
		var cert *x509.Certificate
		s.waitUntil(t, caddyName(i), 60*time.Second, func() (err error) {
			cert, err = s.handshakeAt(t, addr, reportHost)
			return err
		})
		serials = append(serials, cert.SerialNumber.String())
	}
	s.expect(t, "ACME orders for the report site, which both nodes obtain at their start", s.pebbleOrders(t), 1)
	s.expect(t, "the report site's certificate on "+caddyName(1)+" (serial)", serials[1], serials[0])
	s.expectOrderedByOne(t, reportHost)
}

// startCaddyNodes starts the nodes one after the other (each waits for its
// port), with the Caddyfiles setupCluster wrote.
func (s *suite) startCaddyNodes(t *testing.T) {
	t.Helper()
	for i, addr := range clusterNodes {
		s.startCaddyAt(t, caddyName(i), caddyName(i)+".Caddyfile", addr, 443)
	}
}

// fetchResult is one node's answer to a fetch.
type fetchResult struct {
	status int
	body   string
	err    error
}

// fetchOnAllNodes fetches host's policy from every node at the same moment,
// each on a connection of its own.
func (s *suite) fetchOnAllNodes(t *testing.T, host string) []fetchResult {
	t.Helper()
	results := make([]fetchResult, len(clusterNodes))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, addr := range clusterNodes {
		wg.Go(func() {
			<-start
			resp, body, err := s.fetch(t, host, 443, addr)
			results[i] = fetchResult{body: body, err: err}
			if resp != nil {
				results[i].status = resp.StatusCode
			}
		})
	}
	close(start)
	wg.Wait()
	return results
}

// expectSameCertificate checks that every node serves host with one and
// the same certificate, and returns its serial.
func (s *suite) expectSameCertificate(t *testing.T, host string) string {
	t.Helper()
	var serial string
	for i, addr := range clusterNodes {
		got := s.expectCertificateAt(t, caddyName(i)+": TLS handshake for "+host, addr, host).SerialNumber.String()
		if i == 0 {
			serial = got
		}
		s.expect(t, caddyName(i)+": serial of the certificate for "+host, got, serial)
	}
	return serial
}

// testConcurrentFirstContact makes the first contact for mta-sts.shop.test
// on both nodes at once. Each asks the permission module, finds no
// certificate in the storage and wants one; CertMagic's storage lock lets
// one order while the other waits, then loads what the first stored.
func testConcurrentFirstContact(t *testing.T, s *suite) {
	before := s.pebbleOrders(t)
	id := stsIDAt(t, clusterSecondaries[0], "shop.test")
	for i, r := range s.fetchOnAllNodes(t, "mta-sts.shop.test") {
		if r.err != nil {
			t.Fatalf("%s: %v", caddyName(i), r.err)
		}
		s.expect(t, caddyName(i)+": status", r.status, http.StatusOK)
		s.expect(t, caddyName(i)+": id of the body", idOf(r.body), id)
	}
	s.expect(t, "ACME orders for mta-sts.shop.test, first contact on both nodes at once", s.pebbleOrders(t)-before, 1)
	s.expectSameCertificate(t, "mta-sts.shop.test")
	s.expectOrderedByOne(t, "mta-sts.shop.test")
}

// expectOrderedByOne checks in the nodes' logs that both wanted a
// certificate for name: one obtained it, the other got the storage lock
// after it and found the certificate stored.
func (s *suite) expectOrderedByOne(t *testing.T, name string) {
	t.Helper()
	var ordered, found []string
	for i := range clusterNodes {
		if s.logHas(t, caddyName(i), `"msg":"certificate obtained successfully"`, `"identifier":"`+name+`"`) {
			ordered = append(ordered, caddyName(i))
		}
		if s.logHas(t, caddyName(i), `"msg":"certificate already exists in storage"`, `"identifier":"`+name+`"`) {
			found = append(found, caddyName(i))
		}
	}
	if len(ordered) != 1 || len(found) != 1 {
		t.Fatalf("%s: nodes that obtained the certificate: %v, that found it stored once they had the lock: %v; want one each", name, ordered, found)
	}
	s.ok(t, "%s: %s ordered it; %s waited on the storage lock and found it stored", name, ordered[0], found[0])
}

// testClusterLeave: slow.test's customer removes its MX records on the
// primary. Both nodes hold its certificate in memory and answer 404 for
// the policy; restarted, neither loads the certificate again (CertMagic
// asks the permission module first), and shop.test's loads on both.
func testClusterLeave(t *testing.T, s *suite) {
	for i, r := range s.fetchOnAllNodes(t, "mta-sts.slow.test") {
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s: mta-sts.slow.test before it leaves: %d %v", caddyName(i), r.status, r.err)
		}
	}
	s.expectSameCertificate(t, "mta-sts.slow.test")
	committed := s.setMX(t, "slow.test")
	for _, addr := range clusterSecondaries {
		waited := pollUntil(t, committed, 10*time.Second, "_mta-sts.slow.test @"+addr+" not NXDOMAIN", func() bool {
			return rcodeAt(t, addr, "_mta-sts.slow.test", dns.TypeTXT) == "NXDOMAIN"
		})
		s.ok(t, "_mta-sts.slow.test @%s: NXDOMAIN %.3f s after zone-commit", addr, waited.Seconds())
	}
	for i, r := range s.fetchOnAllNodes(t, "mta-sts.slow.test") {
		if r.err != nil {
			t.Fatalf("%s: %v", caddyName(i), r.err)
		}
		s.expect(t, caddyName(i)+": mta-sts.slow.test status (its certificate still in memory)", r.status, http.StatusNotFound)
	}
	before := s.pebbleOrders(t)
	for i := range clusterNodes {
		s.daemons[caddyName(i)].stop()
	}
	s.startCaddyNodes(t)
	s.expectSameCertificate(t, "mta-sts.shop.test")
	for i, addr := range clusterNodes {
		s.expectRefusedAt(t, caddyName(i)+": TLS handshake for mta-sts.slow.test (left)", addr, "mta-sts.slow.test")
	}
	s.expect(t, "new ACME orders", s.pebbleOrders(t)-before, 0)
}

// testSecondaryDown stops secondary-1, the first server both nodes ask:
// each falls over to secondary-2 within the lookup's timeout. Then
// secondary-1 comes back, transferring every zone anew.
func testSecondaryDown(t *testing.T, s *suite) {
	id := stsIDAt(t, clusterSecondaries[1], "shop.test")
	s.daemons[secondaryName(0)].stop()
	for i, r := range s.fetchOnAllNodes(t, "mta-sts.shop.test") {
		if r.err != nil {
			t.Fatalf("%s: %v", caddyName(i), r.err)
		}
		s.expect(t, caddyName(i)+": status with "+secondaryName(0)+" down", r.status, http.StatusOK)
		s.expect(t, caddyName(i)+": id of the body", idOf(r.body), id)
	}
	s.start(t, secondaryName(0), nil, s.bin+"/coredns", "-conf", s.path(secondaryName(0)+".Corefile"))
	for _, zone := range clusterZones {
		s.waitUntil(t, secondaryName(0), 30*time.Second, func() error { return soaServed(clusterSecondaries[0], zone) })
	}
	// The secondary plugin keeps no copy on disk: the zones came by AXFR.
	s.expect(t, secondaryName(0)+" back, the zones transferred anew: _mta-sts.shop.test id", stsIDAt(t, clusterSecondaries[0], "shop.test"), id)
}
