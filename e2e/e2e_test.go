//go:build e2e

package e2e

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEndToEnd runs the scenarios in order, one file each; each builds on
// the state the ones before it leave (the daemons, the zones, the
// certificates in Caddy's storage). The first that fails stops the run.
func TestEndToEnd(t *testing.T) {
	s := newSuite(t)
	runSteps(t, s, []step{
		{"setup: the namespace, the binaries, zones, key and configs", setup},
		{"start knot, the hidden primary of autopilot.test", startAutopilotPrimary},
		{"start coredns", startCoreDNS},
		{"apex mail domain example.test: id, policy lines, policy host", testApex},
		{"sub-domain mail domain sub.example.test has its own policy", testSubdomain},
		{"owner-managed owner.test: its own records, unchanged; nothing synthesized", testOwner},
		{"names without MX get nothing: nomail.test, www.example.test", testNoMX},
		{"start unbound, validating signed.test with the zone's key", startUnbound},
		{"DNSSEC: synthesized records of signed.test validate through unbound (ad flag)", testDNSSECThroughUnbound},
		{"DNSSEC: delv through unbound says 'fully validated'", testDelv},
		{"start pebble (ACME on 127.0.0.1:14000, validating through our CoreDNS)", startPebble},
		{"start the provider's webhook receiver on https://hooks.provider.test:10443", startHookReceiver},
		{"start caddy on :80 and :443 with on-demand TLS and the mta_sts modules", startCaddy},
		{"first HTTPS request: a certificate on demand from Pebble, the policy byte for byte", testFirstRequest},
		{"mta-sts-query (postfix-mta-sts-resolver) gets VALID policies", testSTSQuery},
		{"no certificate for what we don't host: handshake refused, no ACME order", testNotHosted},
		{"TLS report: curl posts it to the https rua DNS publishes; the summary from the admin API", testTLSRPT},
		{"readiness for enforce: caddy mta-sts check and the mta_sts app probe MX hosts with good and bad certificates", testReadiness},
		{"the dashboard and the public page in headless Chromium: visible text, screenshots, requests to Caddy only", testDashboard},
		{"live MX change: the id changes, the client fetches the new policy", testLiveChange},
		{"events: the MX change is a policy_changed event, posted signed to the webhook, on the dashboard and in the events JSON", testEvents},
		{"a customer leaves, caddy restarts: stored certificates load only for managed domains", testCustomerLeaves},
		{"a caddy asking a caching CoreDNS never serves a stale policy during an MX change", testCacheInFront},
		{"per-domain settings from the zone: enforce, extra mx, none, invalid, off", testSettings},
		{"moving MX hosts under enforce: refused in both cache windows alone, delivered with the procedure", testMovingMX},
		{"autopilot: promoted to enforce on the evidence, demoted when the MX certificate expires, through the primary", testAutopilot},
		{"all daemons still running", testAllRunning},
		{"fail closed: with coredns stopped, 503 for the policy, no certificate for a new name", testFailClosed},
	})
}

// setup checks where the suite runs and writes what the daemons read.
func setup(t *testing.T, s *suite) {
	checkNamespace(t, s)
	s.writeConfigs(t)
	s.ok(t, "zones, key and configs in %s; the Caddyfiles made from Caddyfile.example", s.work)
}

// checkNamespace checks that the suite runs where e2e/run put it, with
// the binaries it built.
func checkNamespace(t *testing.T, s *suite) {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	s.expect(t, "interfaces in the namespace", strings.Join(names, " "), "lo")
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	s.expect(t, "resolv.conf in the namespace", strings.TrimSpace(string(resolv)), "nameserver "+dnsAddr)
	var versions []string
	for _, cmd := range [][]string{{s.bin + "/coredns", "-version"}, {s.bin + "/caddy", "version"}, {s.bin + "/pebble", "-version"}, {"knotd", "--version"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", cmd[0], err, out)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		first, _, _ = strings.Cut(first, " h1:") // caddy's module hash
		versions = append(versions, first)
	}
	s.ok(t, "binaries: %s", strings.Join(versions, "; "))
}

// startAutopilotPrimary starts Knot, the hidden primary of autopilot.test;
// our CoreDNS, its secondary, transfers the zone when it starts.
func startAutopilotPrimary(t *testing.T, s *suite) {
	s.start(t, "knot", nil, "knotd", "-c", s.path("knot.conf"))
	s.waitUntil(t, "knot", 20*time.Second, func() error { return soaServed(autopilotPrimaryAddr, "autopilot.test") })
	s.ok(t, "answering on %s:53 for autopilot.test", autopilotPrimaryAddr)
}

func startCoreDNS(t *testing.T, s *suite) {
	s.start(t, "coredns", nil, s.bin+"/coredns", "-conf", s.path("Corefile"))
	for _, zone := range []string{"example.test", "signed.test", "autopilot.test"} {
		s.waitUntil(t, "coredns", 20*time.Second, func() error { return soaServed(dnsAddr, zone) })
	}
	s.ok(t, "answering on %s:53", dnsAddr)
}

// testAllRunning checks that no daemon died on the way.
func testAllRunning(t *testing.T, s *suite) {
	for _, name := range s.order {
		if d := s.daemons[name]; !d.running() {
			t.Fatalf("%s %s; see %s", name, d.state(), s.path(name+".log"))
		}
	}
	s.ok(t, "%s", strings.Join(s.order, " "))
}
