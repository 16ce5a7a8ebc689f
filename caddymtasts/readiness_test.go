package caddymtasts

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/coredns-mtasts/mtasts/caddymtasts/readiness"
)

// readinessCorefile is our CoreDNS, authoritative for readiness.test with
// the mtasts plugin, as the provider runs it.
const readinessCorefile = `readiness.test:{port} {
	bind 127.0.0.1
	mtasts {
		policy_server 127.0.0.1
	}
	file {zone} readiness.test
}`

// mxFixture is our CoreDNS serving readiness.test, whose domains have MX
// hosts with loopback addresses of their own (127.0.0.60 and up), each
// with a test SMTP server on the same port, or nothing listening.
type mxFixture struct {
	dns     string // CoreDNS's address
	port    int    // the SMTP port of every MX host
	ca      *testCA
	servers map[string]*smtpServer // by MX host name
}

// mxHost is an MX host of the fixture: its name below readiness.test and
// its server, nil for none.
type mxHost struct {
	name   string
	server *smtpServer
}

// startMXFixture starts the servers of hosts and CoreDNS with a zone in
// which each domain (below readiness.test) has the MX hosts named.
func startMXFixture(t *testing.T, ca *testCA, hosts []mxHost, domains map[string][]string) *mxFixture {
	t.Helper()
	f, records := startMXHosts(t, ca, hosts, domains)
	zone := "$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n" + records
	zoneFile := filepath.Join(t.TempDir(), "zone")
	if err := os.WriteFile(zoneFile, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	f.dns, _ = startCoreDNS(t, strings.ReplaceAll(readinessCorefile, "{zone}", zoneFile))
	return f
}

// startMXHosts starts the servers of hosts, and returns the fixture
// without DNS and the records of readiness.test that name them: each
// host's address, each domain's MX hosts.
func startMXHosts(t *testing.T, ca *testCA, hosts []mxHost, domains map[string][]string) (*mxFixture, string) {
	t.Helper()
	f := &mxFixture{ca: ca, servers: map[string]*smtpServer{}}
	var zone strings.Builder
	for i, h := range hosts {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(60 + i)})
		fmt.Fprintf(&zone, "%s IN A %s\n", h.name, ip)
		if h.server == nil {
			continue
		}
		// The first server picks a free port; the others take the same
		// one on their own addresses.
		s := startSMTP(t, netip.AddrPortFrom(ip, uint16(f.port)).String(), h.server)
		if f.port == 0 {
			_, port, _ := net.SplitHostPort(s.addr)
			f.port = atoi(t, port)
		}
		f.servers[h.name+".readiness.test"] = s
	}
	for domain, mx := range domains {
		for i, host := range mx {
			fmt.Fprintf(&zone, "%s IN MX %d %s\n", domain, 10*(i+1), host)
		}
	}
	return f, zone.String()
}

// checkerConfig is the config of a checker of the fixture's hosts, as the
// app and the command make it: EHLO readiness-test.provider.test, the
// fixture's port and CA, probes of at most a second.
func (f *mxFixture) checkerConfig(t *testing.T) readiness.Config {
	t.Helper()
	source := newSource(t, 2*time.Second, f.dns)
	t.Cleanup(func() { source.close() })
	cfg, err := ProbeOptions{
		EHLOName:     "readiness-test.provider.test",
		Port:         f.port,
		CAFile:       f.ca.file,
		ProbeTimeout: caddy.Duration(time.Second),
	}.checkerConfig(source)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newChecker(t *testing.T, cfg readiness.Config) *readiness.Checker {
	t.Helper()
	c, err := readiness.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readinessCase is a domain with one MX host and what a check of it gives.
type readinessCase struct {
	domain  string // below readiness.test; its MX host is mx.DOMAIN
	server  *smtpServer
	outcome readiness.Outcome
	failure string // in the host's failure
}

// readinessCases are the MX hosts a sender meets, from the one it
// delivers to under enforce to those it refuses, each with its reason.
func readinessCases(t *testing.T, ca *testCA) []readinessCase {
	now := time.Now()
	tls10 := ca.validTLS(t, "mx.tls10.readiness.test")
	tls10.MinVersion, tls10.MaxVersion = 0x0301, 0x0301 // TLS 1.0 only
	return []readinessCase{
		{"valid", &smtpServer{tls: ca.validTLS(t, "mx.valid.readiness.test")}, readiness.OutcomePass, ""},
		{"expired", &smtpServer{tls: ca.serverTLS(t, []string{"mx.expired.readiness.test"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))},
			readiness.OutcomeExpired, "certificate expired at " + now.Add(-24*time.Hour).UTC().Format("2006-01-02T15")},
		{"othername", &smtpServer{tls: ca.validTLS(t, "mail.other.example")},
			readiness.OutcomeNameMismatch, "certificate is for mail.other.example, not mx.othername.readiness.test"},
		{"selfsigned", &smtpServer{tls: selfSignedTLS(t, "mx.selfsigned.readiness.test")},
			readiness.OutcomeSelfSigned, "self-signed certificate; senders trust only certificates from a CA they know"},
		{"otherca", &smtpServer{tls: newTestCA(t).validTLS(t, "mx.otherca.readiness.test")},
			readiness.OutcomeUntrusted, "certificate chain does not verify: x509: certificate signed by unknown authority"},
		{"wildcard", &smtpServer{tls: ca.validTLS(t, "*.wildcard.readiness.test")}, readiness.OutcomePass, ""},
		// mx.twolabels.readiness.test is two labels below the wildcard's
		// parent, twolabels.readiness.test's parent: no match.
		{"twolabels", &smtpServer{tls: ca.validTLS(t, "*.readiness.test")},
			readiness.OutcomeNameMismatch, "certificate is for *.readiness.test, not mx.twolabels.readiness.test"},
		{"nostarttls", &smtpServer{}, readiness.OutcomeNoSTARTTLS, "STARTTLS not offered in the answer to EHLO"},
		{"refusestarttls", &smtpServer{tls: ca.validTLS(t, "mx.refusestarttls.readiness.test"), refuseTLS: true},
			readiness.OutcomeSTARTTLSRefused, `STARTTLS refused: 454 "4.7.0 TLS not available"`},
		{"tls10", &smtpServer{tls: tls10}, readiness.OutcomeTLSVersion, "TLS 1.0 negotiated; senders require TLS 1.2 or later"},
		{"silent", &smtpServer{silent: true}, readiness.OutcomeSMTP, "timed out after 1s waiting for the SMTP greeting"},
		{"refused", nil, readiness.OutcomeConnect, "connection refused"},
	}
}

// startReadinessCases starts the fixture of the cases.
func startReadinessCases(t *testing.T, ca *testCA, cases []readinessCase) *mxFixture {
	t.Helper()
	var hosts []mxHost
	domains := map[string][]string{}
	for _, c := range cases {
		hosts = append(hosts, mxHost{"mx." + c.domain, c.server})
		domains[c.domain] = []string{"mx." + c.domain}
	}
	return startMXFixture(t, ca, hosts, domains)
}

func TestReadinessOfMXHosts(t *testing.T) {
	ca := newTestCA(t)
	cases := readinessCases(t, ca)
	f := startReadinessCases(t, ca, cases)
	checker := newChecker(t, f.checkerConfig(t))
	for _, c := range cases {
		t.Run(c.domain, func(t *testing.T) {
			t.Parallel()
			r := checker.CheckDomain(context.Background(), c.domain+".readiness.test")
			if len(r.MXHosts) != 1 {
				t.Fatalf("MX hosts %+v, reasons %q", r.MXHosts, r.Reasons)
			}
			h := r.MXHosts[0]
			if h.Outcome != c.outcome || !strings.Contains(h.Failure, c.failure) || (c.failure == "") != (h.Failure == "") {
				t.Errorf("outcome %s, failure %q; want %s, %q", h.Outcome, h.Failure, c.outcome, c.failure)
			}
			if ready := c.outcome == readiness.OutcomePass; r.Ready != ready {
				t.Errorf("ready %v, want %v; reasons %q", r.Ready, ready, r.Reasons)
			}
			if want := []string{h.Host + ": " + h.Failure}; !r.Ready && !slices.Equal(r.Reasons, want) {
				t.Errorf("reasons %q, want %q", r.Reasons, want)
			}
			if r.Mode != "testing" {
				t.Errorf("mode %q, want the plugin's default, testing", r.Mode)
			}
		})
	}
}

// TestReadinessResultShowsTheConnection checks what a passing host's
// result holds, and that the servers heard the configured EHLO name.
func TestReadinessResultShowsTheConnection(t *testing.T) {
	ca := newTestCA(t)
	server := &smtpServer{tls: ca.validTLS(t, "mx.valid.readiness.test", "smtp.valid.readiness.test")}
	f := startMXFixture(t, ca, []mxHost{{"mx.valid", server}}, map[string][]string{"valid": {"mx.valid"}})
	r := newChecker(t, f.checkerConfig(t)).ProbeHost(context.Background(), "MX.Valid.Readiness.Test.")
	want := readiness.HostResult{
		Host:             "mx.valid.readiness.test",
		Address:          "127.0.0.60:" + strconv.Itoa(f.port),
		Reachable:        true,
		STARTTLS:         true,
		TLSVersion:       "TLS 1.3",
		CertificateNames: []string{"mx.valid.readiness.test", "smtp.valid.readiness.test"},
		ChainVerified:    true,
		NameMatches:      true,
		Outcome:          readiness.OutcomePass,
	}
	got := r
	got.CheckedAt, got.NotAfter = time.Time{}, time.Time{}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if time.Since(r.CheckedAt) > time.Minute || r.NotAfter.Before(time.Now().Add(300*24*time.Hour)) {
		t.Errorf("checked at %s, certificate valid until %s", r.CheckedAt, r.NotAfter)
	}
	// Once before STARTTLS, once after it, as senders do (RFC 3207 §4.2).
	if names := server.ehloNames(); !slices.Equal(names, []string{"readiness-test.provider.test", "readiness-test.provider.test"}) {
		t.Errorf("EHLO names heard: %q", names)
	}
}

// TestOneProbePerMXHostPerInterval checks 1,000 domains sharing two MX
// hosts: each host gets one connection, however many domains ask for it
// at once, until the interval has passed.
func TestOneProbePerMXHostPerInterval(t *testing.T) {
	ca := newTestCA(t)
	hosts := []mxHost{
		{"mx1.shared", &smtpServer{tls: ca.validTLS(t, "mx1.shared.readiness.test")}},
		{"mx2.shared", &smtpServer{tls: ca.validTLS(t, "mx2.shared.readiness.test")}},
	}
	domains := map[string][]string{}
	for i := range 1000 {
		domains[fmt.Sprintf("d%d", i)] = []string{"mx1.shared", "mx2.shared"}
	}
	f := startMXFixture(t, ca, hosts, domains)
	cfg := f.checkerConfig(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	var probes atomic.Int64
	cfg.Probed = func(readiness.HostResult) { probes.Add(1) }
	checker := newChecker(t, cfg)

	checkAll := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if r := checker.CheckDomain(context.Background(), fmt.Sprintf("d%d.readiness.test", i)); !r.Ready {
					t.Errorf("d%d: %q", i, r.Reasons)
				}
			})
		}
		wg.Wait()
	}
	connections := func() []int64 {
		return []int64{f.servers["mx1.shared.readiness.test"].conns.Load(), f.servers["mx2.shared.readiness.test"].conns.Load()}
	}
	checkAll(1000)
	if got := connections(); !slices.Equal(got, []int64{1, 1}) || probes.Load() != 2 {
		t.Errorf("1,000 domains: connections to the two hosts %v, probes %d; want 1 each, 2", got, probes.Load())
	}
	t.Logf("1,000 domains sharing two MX hosts: connections %v", connections())

	clock.Add(int64(readiness.DefaultInterval - time.Second))
	checkAll(10)
	if got := connections(); !slices.Equal(got, []int64{1, 1}) {
		t.Errorf("within the interval: connections %v, want no new one", got)
	}
	clock.Add(int64(time.Second))
	checkAll(10)
	if got := connections(); !slices.Equal(got, []int64{2, 2}) || probes.Load() != 4 {
		t.Errorf("after the interval: connections %v, probes %d; want 2 each, 4", got, probes.Load())
	}
}
