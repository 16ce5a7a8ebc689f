//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The slow CA: Pebble sleeps a random 0 to 2 s before each of its three
// validations of a challenge (PEBBLE_VA_SLEEPTIME), and tells a client that
// has finalized an order to come back after slowOrderRetryAfter seconds,
// which CertMagic honours. So every issuance takes longer than
// senderTimeout, the fetch timeout of postfix-mta-sts-resolver's
// mta-sts-query (its defaults.TIMEOUT: 4 s for the whole HTTPS request).
const (
	slowOrderRetryAfter = 6
	senderTimeout       = 4 * time.Second
)

// startSlowPebble starts the cluster's CA. It validates resolving through
// secondary-1, so it reaches whichever node the name's A records give
// first, and that node answers the challenge from the shared storage if
// the other one ordered.
func startSlowPebble(t *testing.T, s *suite) {
	s.startPebbleWith(t, pebbleConfig{ACME: clusterACME, Admin: clusterAdmin, OrderRetryAfter: slowOrderRetryAfter},
		[]string{"PEBBLE_VA_SLEEPTIME=3", "PEBBLE_WFE_NONCEREJECT=0"}, clusterSecondaries[0])
}

// testSlowCA: the first sender to fetch slow.test's policy holds the TLS
// handshake open while Caddy orders the certificate, and gives up at its
// timeout. Issuance must go on without it (CertMagic obtains on demand in
// a context of its own, not the connection's), and the next fetch must
// find the certificate without a second order.
func testSlowCA(t *testing.T, s *suite) {
	before := s.pebbleOrders(t)
	want := stsValid(stsIDAt(t, clusterSecondaries[0], "slow.test"), "testing", "mx.slow.test")
	first := time.Now()
	got := s.stsQueryVia(t, clusterSecondaries[0], "slow.test").String()
	gaveUp := time.Since(first)
	s.expect(t, "the first sender's mta-sts-query slow.test", got, "FETCH_ERROR")
	if gaveUp < senderTimeout {
		t.Fatalf("the first sender gave up after %v, before its %v timeout: not for waiting", gaveUp, senderTimeout)
	}
	s.ok(t, "the first sender gave up after %.1f s (its timeout: %v)", gaveUp.Seconds(), senderTimeout)
	tries := 1
	for got != want {
		if time.Since(first) > time.Minute {
			t.Fatalf("no valid policy a minute after the first contact; the last fetch: %s", got)
		}
		got = s.stsQueryVia(t, clusterSecondaries[0], "slow.test").String()
		tries++
	}
	fetched := time.Since(first)
	s.ok(t, "the first successful fetch %.1f s after the first contact, at try %d: %s", fetched.Seconds(), tries, got)
	// certificates/ISSUER/NAME/NAME.crt, where CertMagic keeps it.
	stored, err := filepath.Glob(s.path("caddy-storage", "certificates", "*", "mta-sts.slow.test", "mta-sts.slow.test.crt"))
	if err != nil || len(stored) != 1 {
		t.Fatalf("the certificate in storage: %v %v", stored, err)
	}
	info, err := os.Stat(stored[0])
	if err != nil {
		t.Fatal(err)
	}
	issued := info.ModTime().Sub(first)
	if issued < senderTimeout {
		t.Fatalf("the certificate was stored %.1f s after the first contact: the CA was not slower than the sender", issued.Seconds())
	}
	s.ok(t, "the certificate was stored %.1f s after the first contact, after the first sender had given up", issued.Seconds())
	s.expect(t, "ACME orders for mta-sts.slow.test", s.pebbleOrders(t)-before, 1)
}
